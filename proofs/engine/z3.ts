/**
 * The one Z3 context every proof runs in (z3-solver, WASM), created on first use, plus what the WASM build
 * needs from its callers: queries in one context must not overlap (`serial`), each query is watched so that a
 * worker thread that dies cannot hang the caller (`answered`, after which `z3()` starts a fresh module), and the
 * worker threads must be stopped before the process can exit (`shutdownZ3`).
 */
import type { Arith, BitVec, Bool, Context, Expr, SMTArray } from 'z3-solver';
import { guardPthreads, type PthreadPool, type ThreadGuard } from './z3-threads.ts';

export type Ctx = Context<'main'>;
export type Z3Bool = Bool<'main'>;
export type Z3Int = Arith<'main'>;
export type Z3BitVec = BitVec<number, 'main'>;
export type Z3Array = SMTArray<'main'>;
export type Z3Expr = Expr<'main'>;

interface Api {
  ctx: Ctx;
  em: unknown;
  guard: ThreadGuard;
  killThreads: (em: unknown) => Promise<void>;
}

let api: Promise<Api> | undefined;
let stopped = false;
/** Set once a query went unanswered: that module's context is unusable, and `z3()` starts a fresh one. */
let broken: string | undefined;
/** The module once initialised (what `api` resolves to), for the guard's figures in a Z3Unresponsive error. */
let loaded: Api | undefined;

/** Z3 did not answer a query in time, or an earlier query left it unusable. */
export class Z3Unresponsive extends Error {
  override name = 'Z3Unresponsive';
}

/** Z3's memory limit in MB (`memory_max_size`), half of the WASM build's fixed heap. */
export const Z3_MEMORY_MB = 1024;

/** How many times a process may start a fresh Z3 module after one stopped answering. */
export const MAX_RESTARTS = 3;
let restarts = 0;

/**
 * The shared context (initialising the WASM module the first time: about half a second). After a query went
 * unanswered (see `answered`), the next call starts a fresh module, at most MAX_RESTARTS times a process: the
 * old module's threads are stopped as far as they still can be, and the new module shares nothing with it.
 */
export async function z3(): Promise<Ctx> {
  if (stopped) throw new Error('Z3 was shut down in this process (shutdownZ3); it cannot be restarted');
  if (broken !== undefined) {
    if (restarts >= MAX_RESTARTS) throw new Z3Unresponsive(`${broken} (and ${restarts} fresh starts did not help)`);
    restarts++;
    const old = api;
    api = undefined;
    loaded = undefined;
    broken = undefined;
    if (old !== undefined) await old.then((a) => a.killThreads(a.em)).catch(() => undefined);
  }
  api ??= (async () => {
    const mod = await import('z3-solver');
    const { Context, em, setParam } = await mod.init();
    // The WASM heap is a fixed 2 GB: a query that outgrows it aborts inside malloc, holding the allocator's lock,
    // and the next call into Z3 from any thread waits on that lock for ever (seen once in a stress run of the
    // proof tests: a hang after "Cannot enlarge memory arrays"). Z3's own limit turns such a query into
    // 'unknown' (memout) well before that. Every proof here peaks far below it (all 19: 417 MB resident).
    setParam('memory_max_size', Z3_MEMORY_MB);
    const guard = guardPthreads((em as { PThread: PthreadPool }).PThread, (message) => {
      // Only this module's own abort breaks it (a late one from a module already replaced changes nothing).
      if (loaded?.em !== em) return;
      broken = `a Z3 worker thread aborted (${message}): that module is not to be trusted; the next query starts a fresh Z3`;
      for (const fail of owed) fail(new Z3Unresponsive(broken));
    });
    loaded = { ctx: Context('main'), em, guard, killThreads: mod.killThreads as (em: unknown) => Promise<void> };
    return loaded;
  })();
  return (await api).ctx;
}

/** Z3's worker pool and its guard's figures once the module is loaded (for diagnostics and the guard's test). */
export async function z3Threads(): Promise<{ pool: PthreadPool; guard: ThreadGuard } | undefined> {
  if (api === undefined) return undefined;
  const a = await api;
  return { pool: (a.em as { PThread: PthreadPool }).PThread, guard: a.guard };
}

/** Stops Z3's worker threads so that the process can exit. Z3 cannot be used again afterwards. */
export async function shutdownZ3(): Promise<void> {
  if (api === undefined || stopped) return;
  stopped = true;
  const a = await api;
  await a.killThreads(a.em);
}

/** The rejecters of the queries in flight (`answered`): an abort fails them at once rather than at their watchdog. */
const owed = new Set<(e: Error) => void>();

let queue: Promise<unknown> = Promise.resolve();

/** Runs `fn` after every earlier `serial` call has settled: Z3 calls in one context must not run concurrently. */
export function serial<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}

/** How long past its own timeout a query may stay unanswered before the worker running it counts as dead. */
export const GRACE_MS = 30_000;

/**
 * Z3's answer to one query (a `check()` promise whose solver has a `timeoutMs` timeout), or a Z3Unresponsive
 * error when none comes within that timeout plus `graceMs`. Z3 stops a query itself at its timeout, so only a
 * worker thread that died can pass the grace period; the module is then marked unusable: later queries on its
 * context fail at once with the reason instead of each waiting out its caller's timeout, and the next `z3()`
 * starts a fresh module.
 */
export async function answered<T>(query: Promise<T>, timeoutMs: number, graceMs = GRACE_MS): Promise<T> {
  // A query of the module that stopped answering (its caller got the context before that) cannot run.
  if (broken !== undefined) throw new Z3Unresponsive(broken);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let fail: ((e: Error) => void) | undefined;
  const limit = timeoutMs + graceMs;
  const watchdog = new Promise<never>((_, reject) => {
    fail = reject;
    owed.add(reject);
    timer = setTimeout(() => {
      const g = loaded?.guard;
      const exits = g === undefined ? '' : ` (${g.unwinds()} Z3 worker threads had ended with an escaped 'unwind', ${g.dropped()} stopped idle workers were dropped)`;
      broken =
        `Z3 did not answer a query within ${(limit / 1000).toFixed(1)} s (its own timeout is ${(timeoutMs / 1000).toFixed(1)} s): ` +
        `the worker thread running it stopped${exits}; the next query starts a fresh Z3`;
      reject(new Z3Unresponsive(broken));
    }, limit);
  });
  try {
    return await Promise.race([query, watchdog]);
  } finally {
    clearTimeout(timer);
    if (fail !== undefined) owed.delete(fail);
  }
}
