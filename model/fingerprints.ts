/**
 * The visited set: 64-bit fingerprints of encoded states in one open-addressing table of Uint32 pairs.
 * A JS Set of strings tops out at 16.7 M entries and costs ~200 bytes a key; this costs 8 bytes a slot.
 * Two distinct states share a fingerprint with probability about n² / 2⁶⁵ (1.7 M states: ~1e-7).
 */

/** 64-bit hash of words[0..length) as two 32-bit lanes (murmur3-style mixing with different seeds). */
export function hashWords(words: Int32Array, length: number, out: Uint32Array): void {
  let h1 = 0x9747b28c | 0;
  let h2 = 0x85ebca6b | 0;
  for (let i = 0; i < length; i++) {
    let k = Math.imul(words[i], 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h1 ^= k;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
    h2 = Math.imul(h2 ^ words[i], 0x01000193);
  }
  h1 ^= length;
  h1 = fmix(h1);
  h2 = fmix(h2 ^ h1);
  out[0] = h1 >>> 0;
  out[1] = h2 >>> 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** The table grows when this full, by GROWTH: between 0.77 and 0.92 full, 8.7 to 10.5 bytes a state. */
const MAX_LOAD = 0.92;
const GROWTH = 1.2;

export class FingerprintSet {
  private table: Uint32Array;
  /** Slots; any size (not a power of two), so the table can grow by a quarter and stay dense. */
  private cap: number;
  private scale: number;
  private limit: number;
  /** Graph mode only: the state index stored beside each fingerprint (4 more bytes a slot). */
  private indices: Uint32Array | undefined;
  size = 0;

  constructor(initialCapacity = 1 << 16, withIndices = false) {
    this.cap = Math.max(1024, Math.ceil(initialCapacity));
    this.scale = this.cap / 4294967296;
    this.limit = Math.floor(this.cap * MAX_LOAD);
    this.table = new Uint32Array(this.cap * 2);
    if (withIndices) this.indices = new Uint32Array(this.cap);
  }

  /** Graph mode: inserts with `index` and returns -1, or returns the index already stored for it. */
  addOrFind(hi: number, lo: number, index: number): number {
    if (hi === 0 && lo === 0) lo = 1;
    const i = this.slotOf(hi, lo);
    if (this.occupied(i)) return this.indices![i];
    this.indices![i] = index;
    this.insertAt(i, hi, lo);
    return -1;
  }

  get capacity(): number {
    return this.cap;
  }

  get bytes(): number {
    return this.table.byteLength + (this.indices?.byteLength ?? 0);
  }

  /** Inserts the fingerprint (hi, lo); returns true when it was not there before. */
  add(hi: number, lo: number): boolean {
    if (hi === 0 && lo === 0) lo = 1;
    const i = this.slotOf(hi, lo);
    if (this.occupied(i)) return false;
    this.insertAt(i, hi, lo);
    return true;
  }

  has(hi: number, lo: number): boolean {
    if (hi === 0 && lo === 0) lo = 1;
    return this.occupied(this.slotOf(hi, lo));
  }

  /**
   * Linear probing from a home slot chosen by multiply-shift over the table's size: the slot holding (hi, lo),
   * or the empty slot where it belongs. (0, 0) marks an empty slot, so callers nudge the one fingerprint that
   * equals it to (0, 1).
   */
  private slotOf(hi: number, lo: number): number {
    const t = this.table;
    const cap = this.cap;
    // The mixed hash as a fraction of 2^32, times the size: below the size for any size under 2^31.
    let i = Math.floor(((lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0) * this.scale);
    for (;;) {
      const a = t[2 * i];
      const b = t[2 * i + 1];
      if ((a === 0 && b === 0) || (a === hi && b === lo)) return i;
      if (++i === cap) i = 0;
    }
  }

  private occupied(i: number): boolean {
    return this.table[2 * i] !== 0 || this.table[2 * i + 1] !== 0;
  }

  private insertAt(i: number, hi: number, lo: number): void {
    this.table[2 * i] = hi;
    this.table[2 * i + 1] = lo;
    if (++this.size > this.limit) this.grow();
  }

  private grow(): void {
    const old = this.table;
    const oldIndices = this.indices;
    this.cap = Math.ceil(this.cap * GROWTH);
    this.scale = this.cap / 4294967296;
    this.limit = Math.floor(this.cap * MAX_LOAD);
    this.table = new Uint32Array(this.cap * 2);
    this.size = 0;
    if (oldIndices) {
      this.indices = new Uint32Array(this.cap);
      for (let i = 0; i < old.length; i += 2) {
        if (old[i] !== 0 || old[i + 1] !== 0) this.addOrFind(old[i], old[i + 1], oldIndices[i >> 1]);
      }
      return;
    }
    for (let i = 0; i < old.length; i += 2) {
      if (old[i] !== 0 || old[i + 1] !== 0) this.add(old[i], old[i + 1]);
    }
  }
}

type ColumnArray = Uint8Array | Uint32Array;

/** A growable typed column, one entry per state: parent links and action ids (Uint32), predicate labels (Uint8). */
class Column<A extends ColumnArray> {
  length = 0;

  constructor(
    public data: A,
    private readonly make: (n: number) => A,
  ) {}

  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = this.make(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }

  get(i: number): number {
    return this.data[i];
  }

  get bytes(): number {
    return this.data.byteLength;
  }
}

export class U32Column extends Column<Uint32Array> {
  constructor() {
    super(new Uint32Array(1 << 16), (n) => new Uint32Array(n));
  }
}

export class U8Column extends Column<Uint8Array> {
  constructor() {
    super(new Uint8Array(1 << 16), (n) => new Uint8Array(n));
  }
}

type ChunkArray = Uint8Array | Uint16Array | Uint32Array;
const CHUNK_BITS = 12;
const CHUNK = 1 << CHUNK_BITS;

/**
 * A column that grows by fixed chunks of 4,096 entries, never by doubling: it holds at most one chunk more
 * than it uses (the visited set's per-state bytes stay what the entry width says).
 */
export class ChunkedColumn {
  length = 0;
  private readonly chunks: ChunkArray[] = [];
  private last: ChunkArray | undefined;

  private constructor(private readonly make: (n: number) => ChunkArray) {}

  /** Entries below 2^8, 2^16 or 2^32, in 1, 2 or 4 bytes each. */
  static forValuesBelow(bound: number): ChunkedColumn {
    if (bound <= 1 << 8) return new ChunkedColumn((n) => new Uint8Array(n));
    if (bound <= 1 << 16) return new ChunkedColumn((n) => new Uint16Array(n));
    return new ChunkedColumn((n) => new Uint32Array(n));
  }

  push(v: number): void {
    const j = this.length & (CHUNK - 1);
    if (j === 0) {
      this.last = this.make(CHUNK);
      this.chunks.push(this.last);
    }
    this.last![j] = v;
    this.length++;
  }

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS][i & (CHUNK - 1)];
  }

  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.byteLength, 0);
  }
}
