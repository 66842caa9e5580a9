/**
 * The one Z3 context every proof runs in (z3-solver, WASM), created on first use, plus the two things the
 * WASM build needs from its callers: queries in one context must not overlap (`serial`), and the worker
 * threads it starts must be stopped before the process can exit (`shutdownZ3`).
 */
import type { Arith, BitVec, Bool, Context, Expr, SMTArray } from 'z3-solver';

export type Ctx = Context<'main'>;
export type Z3Bool = Bool<'main'>;
export type Z3Int = Arith<'main'>;
export type Z3BitVec = BitVec<number, 'main'>;
export type Z3Array = SMTArray<'main'>;
export type Z3Expr = Expr<'main'>;

interface Api {
  ctx: Ctx;
  em: unknown;
  killThreads: (em: unknown) => Promise<void>;
}

let api: Promise<Api> | undefined;
let stopped = false;

/** The shared context (initialising the WASM module the first time: about half a second). */
export async function z3(): Promise<Ctx> {
  if (stopped) throw new Error('Z3 was shut down in this process (shutdownZ3); it cannot be restarted');
  api ??= (async () => {
    const mod = await import('z3-solver');
    const { Context, em } = await mod.init();
    return { ctx: Context('main'), em, killThreads: mod.killThreads as (em: unknown) => Promise<void> };
  })();
  return (await api).ctx;
}

/** Stops Z3's worker threads so that the process can exit. Z3 cannot be used again afterwards. */
export async function shutdownZ3(): Promise<void> {
  if (api === undefined || stopped) return;
  stopped = true;
  const a = await api;
  await a.killThreads(a.em);
}

let queue: Promise<unknown> = Promise.resolve();

/** Runs `fn` after every earlier `serial` call has settled: Z3 calls in one context must not run concurrently. */
export function serial<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}
