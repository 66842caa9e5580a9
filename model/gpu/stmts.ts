/**
 * The statements a CPU thread of a rank runs, as plain tagged data built by small constructors, so that a
 * thread's program reads like the code it models:
 *
 *   main: [
 *     launch('C', 'matmul', { reads: ['a'], writes: ['out'] }),
 *     record('done', 'C'),
 *     waitEvent('S', 'done'),
 *     copy('S', 'out', 'side'),
 *   ]
 *
 * Programs are straight-line: unroll bounded loops with ordinary TypeScript (`for`, `map`, `flatMap`), branch
 * on shared state with `when(...)`, and mark where an exception can happen with `mayRaise(...)`. Statement
 * lists may nest (arrays of statements are flattened), and `undefined`/`false` entries are skipped, so
 * `cond && stmt` works inside a list.
 */
import type { Data } from '../data.ts';
import type { Ctx, Update } from './types.ts';

/** A read operand: a buffer name, or a buffer with the value tag it must hold (else `no-stale-read`). */
export type ReadSpec = string | { readonly buf: string; readonly expect: string };

/** What a device op writes into its output buffers: a fixed tag, or a function of the values it read. */
export type ValueSpec = string | ((inputs: readonly (string | null)[]) => string);

export type Backend = 'nccl' | 'gloo';
export type CollectiveKind = 'all_reduce' | 'all_gather' | 'reduce_scatter' | 'broadcast' | 'barrier' | 'all_to_all';

/** A condition on the rank's shared variables, the protocol state and buffer contents. */
export type Cond<U> = (c: Ctx<U>) => boolean;

/**
 * For partial-order reduction: the state fields a closure (a condition, a custom step, a computed `set`) reads
 * or writes, as field paths of the whole state (`vars[2].phase`, `user.delivered[0][1]`, `threads[2].compute`),
 * or a function of the rank. Without it the kit assumes the closure reads the whole state (sound, but every
 * other step then depends on it); a custom step writes `vars[rank]` and `user` by default.
 */
export type Footprint = readonly string[] | ((rank: number) => readonly string[]);

export type Stmt<U = any> =
  | { readonly op: 'launch'; readonly stream: string; readonly name: string; readonly reads: readonly ReadSpec[]; readonly writes: readonly string[]; readonly value?: ValueSpec }
  | { readonly op: 'record'; readonly event: string; readonly stream: string }
  | { readonly op: 'waitEvent'; readonly stream: string; readonly event: string }
  | { readonly op: 'waitStream'; readonly stream: string; readonly other: string }
  | { readonly op: 'syncStream'; readonly stream: string }
  | { readonly op: 'syncEvent'; readonly event: string }
  | { readonly op: 'syncDevice' }
  | { readonly op: 'alloc'; readonly buf: string; readonly stream: string }
  | { readonly op: 'free'; readonly buf: string }
  | { readonly op: 'recordStream'; readonly buf: string; readonly stream: string }
  | { readonly op: 'p2p'; readonly dir: 'send' | 'recv'; readonly peer: number; readonly buf: string; readonly backend: Backend; readonly handle?: string; readonly stream?: string }
  | { readonly op: 'batch'; readonly ops: readonly Extract<Stmt<any>, { op: 'p2p' }>[]; readonly handle?: string; readonly stream?: string }
  | { readonly op: 'wait'; readonly handle: string; readonly stream?: string }
  | { readonly op: 'collective'; readonly kind: CollectiveKind; readonly buf?: string; readonly group: string; readonly backend: Backend; readonly handle?: string; readonly stream?: string }
  | { readonly op: 'cpuRead'; readonly buf: string; readonly into?: string; readonly expect?: string }
  | { readonly op: 'cpuWrite'; readonly buf: string; readonly value: string }
  | { readonly op: 'set'; readonly name: string; readonly value: Data | ((c: Ctx<U>) => Data); readonly reads?: Footprint }
  | { readonly op: 'until'; readonly cond: Cond<U>; readonly what: string; readonly reads?: Footprint }
  | { readonly op: 'when'; readonly cond: Cond<U>; readonly what: string; readonly then: readonly Stmt<U>[]; readonly else: readonly Stmt<U>[]; readonly reads?: Footprint }
  | { readonly op: 'start'; readonly thread: string }
  | { readonly op: 'join'; readonly thread: string }
  | { readonly op: 'raise'; readonly reason: string }
  | { readonly op: 'mayRaise'; readonly reason: string }
  | { readonly op: 'tryFinally'; readonly body: readonly Stmt<U>[]; readonly finally: readonly Stmt<U>[] }
  | { readonly op: 'tryCatch'; readonly body: readonly Stmt<U>[]; readonly handler: readonly Stmt<U>[] }
  | {
      readonly op: 'step';
      readonly name: string;
      readonly guard?: Cond<U>;
      readonly effect: (c: Ctx<U>) => Update<U>;
      readonly describe?: (c: Ctx<U>) => string;
      /** What the guard and the effect read (default: the whole state). */
      readonly reads?: Footprint;
      /** What the effect's update may change (default: `vars[rank]` and `user`). */
      readonly writes?: Footprint;
    };

/** What a statement list may contain: statements, nested lists, and skipped `undefined`/`false`/`null`/`''`. */
export type Body<U = any> = readonly (Stmt<U> | Body<U> | undefined | null | false | '')[];

export function flat<U>(b: Body<U>): Stmt<U>[] {
  const out: Stmt<U>[] = [];
  for (const x of b) {
    if (x === undefined || x === null || x === false || x === '') continue;
    if (Array.isArray(x)) out.push(...flat(x as Body<U>));
    else out.push(x as Stmt<U>);
  }
  return out;
}

// ---- device work ----------------------------------------------------------------------------------------

/** `with torch.cuda.stream(stream): op(...)`: queue a device op on `stream` that reads and writes buffers. */
export function launch(
  stream: string,
  name: string,
  io: { readonly reads?: readonly ReadSpec[]; readonly writes?: readonly string[]; readonly value?: ValueSpec } = {},
): Stmt<any> {
  return { op: 'launch', stream, name, reads: io.reads ?? [], writes: io.writes ?? [], ...(io.value !== undefined ? { value: io.value } : {}) };
}

/** `dst.copy_(src)` on `stream`: `dst` gets the value `src` holds when the copy runs. */
export function copy(stream: string, src: ReadSpec, dst: string): Stmt<any> {
  return { op: 'launch', stream, name: 'copy', reads: [src], writes: [dst], value: (ins) => ins[0] ?? 'garbage' };
}

/** `event.record(stream)`: captures the work queued on `stream` so far. */
export function record(event: string, stream: string): Stmt<any> {
  return { op: 'record', event, stream };
}

/** `stream.wait_event(event)`: later work on `stream` waits for the event's capture point. A no-op if `event` was never recorded. */
export function waitEvent(stream: string, event: string): Stmt<any> {
  return { op: 'waitEvent', stream, event };
}

/** `stream.wait_stream(other)`: later work on `stream` waits for the work queued on `other` so far. */
export function waitStream(stream: string, other: string): Stmt<any> {
  return { op: 'waitStream', stream, other };
}

/** `stream.synchronize()`: blocks the CPU thread until the work queued on `stream` so far is done. */
export function syncStream(stream: string): Stmt<any> {
  return { op: 'syncStream', stream };
}

/** `event.synchronize()`: blocks the CPU thread until the event's last recorded capture point is done (returns at once if never recorded). */
export function syncEvent(event: string): Stmt<any> {
  return { op: 'syncEvent', event };
}

/** `torch.cuda.synchronize()`: blocks until every stream of the rank (compute and communication) is idle. */
export function syncDevice(): Stmt<any> {
  return { op: 'syncDevice' };
}

// ---- caching allocator ----------------------------------------------------------------------------------

/** `buf = torch.empty(..)` with `stream` current: takes a free block owned by `stream` (reused at once) or a fresh one. Re-allocating a live buffer frees it first. */
export function alloc(buf: string, stream: string): Stmt<any> {
  return { op: 'alloc', buf, stream };
}

/** `del buf`: returns its block to the allocation stream's pool (delayed by `recordStream` on other streams). */
export function free(buf: string): Stmt<any> {
  return { op: 'free', buf };
}

/** `buf.record_stream(stream)`: at free, reuse waits for the work queued on `stream` by then. Ignored when `stream` is the allocation stream. */
export function recordStream(buf: string, stream: string): Stmt<any> {
  return { op: 'recordStream', buf, stream };
}

// ---- communication --------------------------------------------------------------------------------------

export interface CommOptions {
  /** `nccl` (device, default) or `gloo` (CPU tensors). */
  readonly backend?: Backend;
  /** Keep the work handle under this name (for `wait`); without it the op is fire-and-forget. */
  readonly handle?: string;
  /** The stream current when the op is issued (NCCL: the comm stream first waits for its queued work); default the thread's stream. */
  readonly stream?: string;
}

/**
 * `dist.isend(buf, peer)`: completes only once `peer` posted the matching receive. NCCL: the ops of a pair, both
 * directions, run in issue order on the pair's queue `p2p:<peer>` (so two ranks that both send first deadlock,
 * as ungrouped NCCL P2P does). gloo: one queue per direction (`gloo-send:<peer>`, `gloo-recv:<peer>`).
 */
export function isend(peer: number, buf: string, o: CommOptions = {}): Stmt<any> {
  return { op: 'p2p', dir: 'send', peer, buf, backend: o.backend ?? 'nccl', ...(o.handle ? { handle: o.handle } : {}), ...(o.stream ? { stream: o.stream } : {}) };
}

/** `dist.irecv(buf, peer)`: writes `buf` with the value of the matching send. */
export function irecv(peer: number, buf: string, o: CommOptions = {}): Stmt<any> {
  return { op: 'p2p', dir: 'recv', peer, buf, backend: o.backend ?? 'nccl', ...(o.handle ? { handle: o.handle } : {}), ...(o.stream ? { stream: o.stream } : {}) };
}

/**
 * `dist.batch_isend_irecv([...])` (NCCL): the isend/irecv ops are posted as one group, so the two directions
 * between a pair no longer block each other (two ranks that both send first do not deadlock). Between a pair,
 * a batch completes in one step with the peer's batch when their sends and receives mirror each other (matched
 * in order per direction). `handle` names the whole batch.
 */
export function batchIsendIrecv(ops: readonly Stmt<any>[], o: { readonly handle?: string; readonly stream?: string } = {}): Stmt<any> {
  const p2p = ops.map((x) => {
    if (x.op !== 'p2p' || x.backend !== 'nccl') throw new Error('batchIsendIrecv takes NCCL isend(...)/irecv(...) statements');
    return x;
  });
  return { op: 'batch', ops: p2p, ...(o.handle ? { handle: o.handle } : {}), ...(o.stream ? { stream: o.stream } : {}) };
}

/**
 * `handle.wait()`. NCCL: the current stream (default the thread's) waits for the work; the CPU does not block.
 * gloo: the CPU thread blocks until the work is done. Waiting a handle never set, or already waited, is a no-op.
 */
export function wait(handle: string, o: { readonly stream?: string } = {}): Stmt<any> {
  return { op: 'wait', handle, ...(o.stream ? { stream: o.stream } : {}) };
}

export interface CollectiveOptions extends CommOptions {
  /** Group name from the system's `groups` (default `world`: every rank). */
  readonly group?: string;
}

/**
 * A collective over a group. Every rank of the group must reach the same kind in the same order, else the
 * group hangs (a deadlock). NCCL without `handle`: the current stream waits for it (CPU does not block);
 * NCCL with `handle` (`async_op=True`): nothing waits until `wait(handle)`. gloo: the CPU thread blocks in it.
 * `barrier` blocks the CPU thread on either backend.
 */
export function collective(kind: CollectiveKind, buf: string | undefined, o: CollectiveOptions = {}): Stmt<any> {
  return {
    op: 'collective',
    kind,
    ...(buf !== undefined ? { buf } : {}),
    group: o.group ?? 'world',
    backend: o.backend ?? 'nccl',
    ...(o.handle ? { handle: o.handle } : {}),
    ...(o.stream ? { stream: o.stream } : {}),
  };
}
export const allReduce = (buf: string, o: CollectiveOptions = {}) => collective('all_reduce', buf, o);
export const allGather = (buf: string, o: CollectiveOptions = {}) => collective('all_gather', buf, o);
export const reduceScatter = (buf: string, o: CollectiveOptions = {}) => collective('reduce_scatter', buf, o);
export const broadcast = (buf: string, o: CollectiveOptions = {}) => collective('broadcast', buf, o);
export const allToAll = (buf: string, o: CollectiveOptions = {}) => collective('all_to_all', buf, o);
export const barrier = (o: CollectiveOptions = {}) => collective('barrier', undefined, o);

// ---- CPU side -------------------------------------------------------------------------------------------

/** The CPU reads `buf` now (`.item()`, `.tolist()`, a CPU tensor): its value goes into variable `into`. Checked like a device read. */
export function cpuRead(buf: string, o: { readonly into?: string; readonly expect?: string } = {}): Stmt<any> {
  return { op: 'cpuRead', buf, ...(o.into ? { into: o.into } : {}), ...(o.expect ? { expect: o.expect } : {}) };
}

/** The CPU writes `buf` now (a CPU tensor). Checked like a device write. */
export function cpuWrite(buf: string, value: string): Stmt<any> {
  return { op: 'cpuWrite', buf, value };
}

/** Sets a shared variable (flag, mailbox slot) of the rank. */
export function set<U = any>(name: string, value: Data | ((c: Ctx<U>) => Data), o: { readonly reads?: Footprint } = {}): Stmt<U> {
  return { op: 'set', name, value, ...(o.reads ? { reads: o.reads } : {}) };
}

/**
 * A polling loop (`while not cond: sleep()`): one step, enabled only once `cond` holds. A poll that can never
 * succeed leaves the thread blocked: a deadlock whose explanation names `what`.
 */
export function until<U = any>(cond: Cond<U>, what: string, o: { readonly reads?: Footprint } = {}): Stmt<U> {
  return { op: 'until', cond, what, ...(o.reads ? { reads: o.reads } : {}) };
}

/** `if cond: then else: otherwise`, evaluated as one step when reached. */
export function when<U = any>(cond: Cond<U>, what: string, then: Body<U>, otherwise: Body<U> = [], o: { readonly reads?: Footprint } = {}): Stmt<U> {
  return { op: 'when', cond, what, then: flat(then), else: flat(otherwise), ...(o.reads ? { reads: o.reads } : {}) };
}

/** `thread.start()`: a thread declared with `autoStart: false` begins. */
export function start(thread: string): Stmt<any> {
  return { op: 'start', thread };
}

/** `thread.join()`: blocks until the thread has finished (normally or by an exception). */
export function join(thread: string): Stmt<any> {
  return { op: 'join', thread };
}

/** An exception raised here: runs the enclosing `finally`/`except` blocks, or ends the thread (nothing after it runs). */
export function raise(reason: string): Stmt<any> {
  return { op: 'raise', reason };
}

/** The next statement may raise instead of running: the checker explores both. */
export function mayRaise(reason: string): Stmt<any> {
  return { op: 'mayRaise', reason };
}

/** `try: body finally: cleanup`: cleanup runs on the normal path and when the body raises (then the exception goes on). */
export function tryFinally<U = any>(body: Body<U>, cleanup: Body<U>): Stmt<U> {
  return { op: 'tryFinally', body: flat(body), finally: flat(cleanup) };
}

/** `try: body except: handler`: the handler runs when the body raises, and the exception stops there. */
export function tryCatch<U = any>(body: Body<U>, handler: Body<U>): Stmt<U> {
  return { op: 'tryCatch', body: flat(body), handler: flat(handler) };
}

/**
 * A protocol-specific step: enabled when `guard` holds; `effect` returns the variables and/or protocol state
 * to update. Its `name` becomes the action name in traces.
 */
export function step<U = any>(
  name: string,
  spec: {
    readonly guard?: Cond<U>;
    readonly effect: (c: Ctx<U>) => Update<U>;
    readonly describe?: (c: Ctx<U>) => string;
    readonly reads?: Footprint;
    readonly writes?: Footprint;
  },
): Stmt<U> {
  return { op: 'step', name, ...spec };
}
