/**
 * The machine's own ceiling for worker threads, printed beside the parallel rows: the same loop run by one
 * thread and by N threads at once (each doing the whole loop), as throughput ratios. A CPU-bound loop (integer
 * arithmetic in registers) shows how many cores there really are; a memory-bound loop (random reads and writes
 * in a 32 MB table, as a visited-set probe does) shows what the shared caches and memory allow. The explorer's
 * packed fast path is mostly the second kind, so its parallel ratio cannot exceed the second figure.
 */
import { Worker } from 'node:worker_threads';

/** Runs in each thread (as eval'd source, so no TypeScript loader is needed): returns its milliseconds. */
const LOOPS = `
const { parentPort, workerData } = require('node:worker_threads');
const t0 = performance.now();
let x = 1;
if (workerData.kind === 'cpu') {
  for (let i = 0; i < workerData.n; i++) x = (Math.imul(x, 1103515245) + 12345) | 0;
} else {
  const t = new Uint32Array(1 << 23);
  for (let i = 0; i < workerData.n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    const j = (x >>> 9) & ((1 << 23) - 1);
    t[j] = t[j] + i;
  }
}
parentPort.postMessage({ ms: performance.now() - t0, x });
`;

export interface ScalingRow {
  readonly kind: 'cpu-bound' | 'memory-bound';
  readonly threads: number;
  /** Throughput of `threads` threads against one thread (ideal: `threads`). */
  readonly ratio: number;
}

async function wall(kind: 'cpu' | 'mem', n: number, threads: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    Array.from(
      { length: threads },
      () =>
        new Promise<void>((resolve, reject) => {
          const w = new Worker(LOOPS, { eval: true, workerData: { kind, n } });
          w.once('message', () => resolve());
          w.once('error', reject);
        }),
    ),
  );
  return performance.now() - t0;
}

export async function scalingRows(threads: number): Promise<ScalingRow[]> {
  const rows: ScalingRow[] = [];
  for (const [kind, n] of [['cpu', 4e8], ['mem', 3e7]] as const) {
    const one = await wall(kind, n, 1);
    const many = await wall(kind, n, threads);
    rows.push({ kind: kind === 'cpu' ? 'cpu-bound' : 'memory-bound', threads, ratio: (threads * one) / many });
  }
  return rows;
}
