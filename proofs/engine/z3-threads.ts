/**
 * Keeps the worker threads of z3-solver's WASM build (Emscripten pthreads) from failing the process that
 * hosts them.
 *
 * Every `solver.check()` runs on a pthread, and every query's timeout starts a timer thread. Emscripten unwinds
 * to the JavaScript event loop (a thread's exit among other things) by throwing the string 'unwind', which its
 * own callback wrapper normally catches. Two handlers run Emscripten code without that wrapper in this build:
 * the worker's own message loop (an escape there stops the worker, and the main thread's `onerror` re-throws
 * the string) and the main thread's `onmessage` for a worker (its thread cleanup can run queued work while it
 * waits for a lock; upstream wrapped it in emscripten-core/emscripten#24711). Seen in CI: 391 "Uncaught
 * Exception: unwind" from one vitest process, about one per query, and the queries after them never answered.
 *
 * The guard gives both handlers the wrapper's rule: an 'unwind' means "return to the event loop", so it is
 * counted and not re-thrown; anything else still propagates as before. It also drops a stopped worker from the
 * pool of idle ones, so that no later thread is handed to a dead worker. A query whose thread died before
 * answering is caught by the watchdog in `z3.ts`, not here.
 *
 * One more failure is the module's, not the process's: an Emscripten abort inside a pthread (`Aborted(...)`, a
 * RuntimeError the main thread's `onerror` re-throws). Seen once in CI, in a clean run whose proofs all passed:
 * "The application has corrupted its heap memory area (address zero)!", the check Emscripten makes when a
 * thread's entry point returns, i.e. some Z3 code wrote through a null pointer. The guard counts it and hands it
 * to `onAbort` (z3.ts marks that module unusable, fails the queries it still owes, and starts a fresh one for
 * the next), instead of letting it end the process.
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
  onmessage?: ((e: unknown) => unknown) | null;
  on(event: 'exit', listener: () => void): unknown;
}

export interface ThreadGuard {
  /** Escaped 'unwind's absorbed so far (from either handler). */
  readonly unwinds: () => number;
  /** Emscripten aborts in a pthread absorbed so far (each handed to `onAbort`). */
  readonly aborts: () => number;
  /** Workers that stopped and were dropped from the idle pool. */
  readonly dropped: () => number;
}

const WATCHED = Symbol('interleave.z3.watched');
const WRAPPER = Symbol('interleave.z3.wrapper');

/** An Emscripten abort (`abort()` throws a RuntimeError whose message starts `Aborted(`), as a one-line text. */
export function abortText(e: unknown): string | undefined {
  const message = typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string' ? (e as { message: string }).message : undefined;
  return message !== undefined && message.startsWith('Aborted(') ? message.split('\n')[0] : undefined;
}

/**
 * Installs the guard on every worker the pool has and on every worker it loads from now on. `onAbort` hears of
 * every Emscripten abort in a pthread (the module is then not to be trusted).
 */
export function guardPthreads(pool: PthreadPool, onAbort: (message: string) => void = () => undefined): ThreadGuard {
  let unwinds = 0;
  let dropped = 0;
  let aborts = 0;
  /** True when `e` was absorbed: an 'unwind', or an abort (then reported). */
  const absorbed = (e: unknown): boolean => {
    if (e === 'unwind') {
      unwinds++;
      return true;
    }
    const abort = abortText(e);
    if (abort === undefined) return false;
    aborts++;
    onAbort(abort);
    return true;
  };

  const guard = (worker: PoolWorker) => {
    const w = worker as PoolWorker & { [WATCHED]?: true };
    type Handler = ((e: unknown) => unknown) & { [WRAPPER]?: true };
    // Wrap whatever handlers the worker holds now, unless they are already ours (a reload sets fresh ones).
    const onerror = w.onerror as Handler | null | undefined;
    if (!onerror?.[WRAPPER]) {
      w.onerror = Object.assign(
        (e: unknown) => (absorbed(e) ? undefined : onerror?.call(w, e)),
        { [WRAPPER]: true as const },
      );
    }
    const onmessage = w.onmessage as Handler | null | undefined;
    if (onmessage && !onmessage[WRAPPER]) {
      w.onmessage = Object.assign(
        (e: unknown) => {
          try {
            return onmessage.call(w, e);
          } catch (x) {
            if (!absorbed(x)) throw x;
            return undefined;
          }
        },
        { [WRAPPER]: true as const },
      );
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
    // Emscripten sets the handlers synchronously while it starts loading; wrap them right after.
    const loading = load.call(pool, worker);
    guard(worker);
    return loading;
  };
  for (const w of [...pool.unusedWorkers, ...pool.runningWorkers]) guard(w);

  return { unwinds: () => unwinds, aborts: () => aborts, dropped: () => dropped };
}
