/** How rows are cut into chunks and the reduction dimension into TP shards. */

/** Half-open index range [start, end). */
export interface Range {
  readonly start: number;
  readonly end: number;
}

function checkCount(value: number, what: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${what} must be an integer >= ${min}, got ${value}`);
}

/**
 * Row chunks of size `chunkSize`: k = ceil(n / chunkSize) chunks, the last one
 * holding the remainder (possibly a single row). With k < 2 the input is not
 * chunked at all and one range covers every row.
 */
export function chunkBoundaries(n: number, chunkSize: number): Range[] {
  checkCount(n, 'row count', 0);
  checkCount(chunkSize, 'chunk size', 1);
  const k = Math.ceil(n / chunkSize);
  if (k < 2) return [{ start: 0, end: n }];
  return Array.from({ length: k }, (_, i) => ({ start: i * chunkSize, end: Math.min(n, (i + 1) * chunkSize) }));
}

export const PR_CHUNK_ROWS = 5120;
export const PR_LARGE_ROWS = 16384;

/**
 * The chunk size rule under test: 5120 rows, or n // 3 once n >= 16384.
 * n // 3 gives k = 3 when 3 | n and k = 4 (last chunk n mod 3 rows) otherwise.
 */
export function prChunkSize(n: number): number {
  checkCount(n, 'row count', 0);
  return n >= PR_LARGE_ROWS ? Math.floor(n / 3) : PR_CHUNK_ROWS;
}

/** Near-even split of K into `tp` shards; the first K mod tp shards get one extra. */
export function shardBoundaries(k: number, tp: number): Range[] {
  checkCount(tp, 'tp', 1);
  checkCount(k, 'reduction dimension', tp);
  const base = Math.floor(k / tp);
  const extra = k % tp;
  const out: Range[] = [];
  let start = 0;
  for (let t = 0; t < tp; t++) {
    const end = start + base + (t < extra ? 1 : 0);
    out.push({ start, end });
    start = end;
  }
  return out;
}

export const sizes = (ranges: readonly Range[]): number[] => ranges.map((r) => r.end - r.start);
