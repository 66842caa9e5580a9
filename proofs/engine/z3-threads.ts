/**
 * Keeps the worker threads of z3-solver's WASM build (Emscripten pthreads) from failing the process that
 * hosts them.
 *
 * Every `solver.check()` runs on a pthread, and every query's timeout starts a timer thread. Emscripten ends a
 * pthread by throwing the string 'unwind', which its own handler normally catches. When it escapes (seen in CI:
 * hundreds of "Uncaught Exception: unwind" from one vitest process, and the queries after them never answered),
 * Node stops that worker and the main thread's handler re-throws the string as an uncaught exception. The
 * thread was exiting anyway, so the guard here treats an escaped 'unwind' as the exit it is: it counts it
 * instead of re-throwing it, and it drops a stopped worker from the pool of idle ones so that no later thread
 * is handed to a dead worker. Any other error from a worker still reaches the original handler. A query whose
 * thread died before answering is caught by the watchdog in `z3.ts`, not here.
 */

/** The slice of Emscripten's PThread object the guard touches. */
export interface PthreadPool {
  unusedWorkers: PoolWorker[];
  runningWorkers: PoolWorker[];
  loadWasmModuleToWorker: (worker: PoolWorker) => unknown;
}

/** The slice of a Node worker (as Emscripten decorates it) the guard touches. */
export interface PoolWorker {
  onerror?: ((e: unknown) => unknown) | null;
  on(event: 'exit', listener: () => void): unknown;
}

export interface ThreadGuard {
  /** Escaped 'unwind' exits absorbed so far. */
  readonly unwinds: () => number;
  /** Workers that stopped and were dropped from the idle pool. */
  readonly dropped: () => number;
}

const WATCHED = Symbol('interleave.z3.watched');
const WRAPPER = Symbol('interleave.z3.wrapper');

/** Installs the guard on every worker the pool has and on every worker it loads from now on. */
export function guardPthreads(pool: PthreadPool): ThreadGuard {
  let unwinds = 0;
  let dropped = 0;

  const guard = (worker: PoolWorker) => {
    const w = worker as PoolWorker & { [WATCHED]?: true };
    const current = w.onerror as (((e: unknown) => unknown) & { [WRAPPER]?: true }) | null | undefined;
    // Wrap whatever handler the worker holds now, unless it is already ours (a reload sets a fresh one).
    if (!current?.[WRAPPER]) {
      const wrapper = Object.assign(
        (e: unknown) => {
          if (e === 'unwind') {
            unwinds++;
            return undefined;
          }
          return current?.call(w, e);
        },
        { [WRAPPER]: true as const },
      );
      w.onerror = wrapper;
    }
    if (w[WATCHED]) return;
    w[WATCHED] = true;
    w.on('exit', () => {
      const i = pool.unusedWorkers.indexOf(w);
      if (i >= 0) {
        pool.unusedWorkers.splice(i, 1);
        dropped++;
      }
    });
  };

  const load = pool.loadWasmModuleToWorker;
  pool.loadWasmModuleToWorker = (worker: PoolWorker) => {
    // Emscripten sets `onerror` synchronously while it starts loading; wrap it right after.
    const loading = load.call(pool, worker);
    guard(worker);
    return loading;
  };
  for (const w of [...pool.unusedWorkers, ...pool.runningWorkers]) guard(w);

  return { unwinds: () => unwinds, dropped: () => dropped };
}
