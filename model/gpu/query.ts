/** Read-only helpers for a protocol's own invariants over a `GpuState`. */
import type { GpuState, Pc } from './types.ts';

/** The value tag buffer `buf` of rank `rank` holds (null: never written through it, or not allocated). Preallocated buffers are found by name. */
export function bufferValue(s: GpuState<any>, rank: number, buf: string): string | null {
  for (const blk of s.blocks[rank]) {
    if (blk.buf !== buf || blk.data === null) continue;
    const i = blk.data.indexOf('=');
    return blk.data.slice(0, i) === buf ? blk.data.slice(i + 1) : null;
  }
  return null;
}

/** Keys of the queued ops that may still touch buffer `buf`'s block on rank `rank`, oldest first. */
export function pendingOps(s: GpuState<any>, rank: number, buf: string): string[] {
  for (const blk of s.blocks[rank]) {
    if (blk.buf === buf) return blk.pending.map((e) => e.split(' ').slice(2).join(' '));
  }
  return [];
}

/** A thread's pc: an instruction index, 'new', 'done' or 'raised'. */
export function threadPc(s: GpuState<any>, rank: number, thread: string): Pc {
  return s.threads[rank][thread];
}

/** Whether a thread has ended, normally or by an exception. */
export function isFinished(s: GpuState<any>, rank: number, thread: string): boolean {
  const pc = s.threads[rank][thread];
  return pc === 'done' || pc === 'raised';
}

/** The kit fault recorded in the state (the lowest rank's, if several), as [property, sentence], or undefined. */
export function faultOf(s: GpuState<any>): [string, string] | undefined {
  const f = s.faults.find((x) => x !== null);
  if (f === undefined || f === null) return undefined;
  const i = f.indexOf(': ');
  return [f.slice(0, i), f.slice(i + 2)];
}

/**
 * The queued items of a rank (one queue, or all), oldest first, as keys such as `"matmul#3"`,
 * `"recv y from 0#7"`, `"all_reduce #2 g#9"`: for reachability properties like "a receive is in flight while
 * the forward runs" (`queued(s, 1, 'p2p:0').some((k) => k.startsWith('recv'))`).
 */
export function queued(s: GpuState<any>, rank: number, queue?: string): string[] {
  const qs = s.streams[rank];
  if (queue !== undefined) return [...(qs[queue] ?? [])];
  return Object.values(qs).flat();
}

/**
 * Every started thread of every rank has ended (normally or by an exception) and every queue is empty: the program
 * ran to its end. `eventually(allDone)` is "no rank waits forever" for a kit model, whose programs are
 * straight-line: a behaviour that never gets here is stuck (a spin on a flag nobody clears, a collective or a
 * transfer whose peer never comes), and with `check --no-deadlock` it is reported as a lasso that stutters
 * in the stuck state, with what each blocked thread waits for.
 */
export function allDone(s: GpuState<any>): boolean {
  for (let r = 0; r < s.threads.length; r++) {
    const th = s.threads[r];
    for (const t in th) if (typeof th[t] === 'number') return false; // 'new': never started, nothing waits on it
    const qs = s.streams[r];
    for (const q in qs) if (qs[q].length > 0) return false;
  }
  return true;
}
