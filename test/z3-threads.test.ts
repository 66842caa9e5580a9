import { EventEmitter } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { answered, MAX_RESTARTS, satisfiable, shutdownZ3, z3, z3Threads, Z3Unresponsive } from '../proofs/engine/index.ts';
import { allProofs, type Proof, runProof } from '../proofs/index.ts';
import { guardPthreads, type PoolWorker, type PthreadPool } from '../proofs/engine/z3-threads.ts';

afterAll(async () => {
  await shutdownZ3();
});

/** A worker as Emscripten decorates it: Node's 'error' event calls whatever `onerror` holds at the time. */
class FakeWorker extends EventEmitter implements PoolWorker {
  onerror?: ((e: unknown) => unknown) | null;
  onmessage?: ((e: unknown) => unknown) | null;
  readonly seen: unknown[] = [];
  readonly handled: unknown[] = [];
  constructor() {
    super();
    this.on('error', (e) => this.onerror?.(e));
    this.on('message', (data) => this.onmessage?.({ data }));
  }
  load() {
    this.onerror = (e) => {
      this.seen.push(e);
      throw e;
    };
    // Emscripten's main-thread handler: its thread cleanup may run queued work that throws.
    this.onmessage = (e) => {
      const { data } = e as { data: { throws?: unknown } };
      if (data.throws !== undefined) throw data.throws;
      this.handled.push(data);
    };
  }
}

function fakePool(idle: number): PthreadPool & { unusedWorkers: FakeWorker[] } {
  const unusedWorkers = Array.from({ length: idle }, () => {
    const w = new FakeWorker();
    w.load();
    return w;
  });
  return {
    unusedWorkers,
    runningWorkers: [],
    loadWasmModuleToWorker: (w) => (w as FakeWorker).load(),
  };
}

describe('z3 worker-thread guard', () => {
  it("absorbs an escaped 'unwind' and counts it; any other error still reaches Emscripten's handler", () => {
    const pool = fakePool(1);
    const guard = guardPthreads(pool);
    const [w] = pool.unusedWorkers;
    expect(() => w.emit('error', 'unwind')).not.toThrow();
    expect(guard.unwinds()).toBe(1);
    expect(w.seen).toEqual([]);
    const boom = new Error('pthread crashed');
    expect(() => w.emit('error', boom)).toThrow('pthread crashed');
    expect(w.seen).toEqual([boom]);
  });

  it("absorbs an 'unwind' thrown by the main thread's message handler; other messages and errors pass as before", () => {
    const pool = fakePool(1);
    const guard = guardPthreads(pool);
    const [w] = pool.unusedWorkers;
    w.emit('message', { cmd: 'loaded' });
    expect(w.handled).toEqual([{ cmd: 'loaded' }]);
    expect(() => w.emit('message', { cmd: 'cleanupThread', throws: 'unwind' })).not.toThrow();
    expect(guard.unwinds()).toBe(1);
    expect(() => w.emit('message', { throws: new RangeError('bad pthread') })).toThrow('bad pthread');
    expect(guard.unwinds()).toBe(1);
  });

  it('absorbs an Emscripten abort in a pthread from either handler, counts it and reports it; other errors still propagate', () => {
    const pool = fakePool(1);
    const heard: string[] = [];
    const guard = guardPthreads(pool, (m) => heard.push(m));
    const [w] = pool.unusedWorkers;
    const abort = new Error('Aborted(Runtime error: The application has corrupted its heap memory area (address zero)!)\nmore');
    expect(() => w.emit('error', abort)).not.toThrow();
    expect(() => w.emit('message', { throws: abort })).not.toThrow();
    expect(guard.aborts()).toBe(2);
    expect(heard).toEqual([
      'Aborted(Runtime error: The application has corrupted its heap memory area (address zero)!)',
      'Aborted(Runtime error: The application has corrupted its heap memory area (address zero)!)',
    ]);
    expect(w.seen).toEqual([]);
    // An error that merely mentions an abort is not one.
    expect(() => w.emit('error', new Error('the query was Aborted(by the user)'))).toThrow('Aborted(by the user)');
    expect(guard.aborts()).toBe(2);
  });

  it('guards workers the pool loads later, once each, and drops a stopped idle worker from the pool', () => {
    const pool = fakePool(0);
    const guard = guardPthreads(pool);
    const late = new FakeWorker();
    pool.unusedWorkers.push(late);
    pool.loadWasmModuleToWorker(late);
    pool.loadWasmModuleToWorker(late); // loading twice must not stack two guards
    late.emit('error', 'unwind');
    expect(guard.unwinds()).toBe(1);
    late.emit('exit');
    expect(pool.unusedWorkers).toEqual([]);
    expect(guard.dropped()).toBe(1);
    // A running worker that stops stays where Emscripten keeps it; only idle ones are handed out again.
    const running = new FakeWorker();
    running.load();
    pool.runningWorkers.push(running);
    pool.loadWasmModuleToWorker(running);
    running.emit('exit');
    expect(pool.runningWorkers).toEqual([running]);
    expect(guard.dropped()).toBe(1);
  });

  it("is installed on the real module: an 'unwind' error event on a Z3 worker is absorbed and queries still answer", async () => {
    const ctx = await z3();
    const x = ctx.Int.const('x');
    expect((await satisfiable(ctx, [x.gt(3)])).result).toBe('proved');
    const threads = await z3Threads();
    expect(threads).toBeDefined();
    if (threads === undefined) return;
    const workers = [...threads.pool.unusedWorkers, ...threads.pool.runningWorkers] as unknown as EventEmitter[];
    expect(workers.length).toBeGreaterThan(0);
    const before = threads.guard.unwinds();
    expect(() => workers[0].emit('error', 'unwind')).not.toThrow();
    expect(threads.guard.unwinds()).toBe(before + 1);
    expect((await satisfiable(ctx, [x.lt(-3)])).result).toBe('proved');
  });
});

describe('answered: the per-query watchdog', () => {
  it('passes an answer through', async () => {
    expect(await answered(Promise.resolve('sat'), 1_000, 1_000)).toBe('sat');
  });

  it('rejects a query that no thread answers and refuses that module, then z3() starts a fresh module that answers', async () => {
    const before = await z3();
    const never = new Promise<string>(() => undefined);
    const err = await answered(never, 20, 30).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Z3Unresponsive);
    expect(String((err as Error).message)).toMatch(/did not answer a query within .* s \(its own timeout is .* s\): the worker thread running it stopped/);
    // Queries queued on the old module fail at once with the reason.
    await expect(answered(Promise.resolve('sat'), 1_000)).rejects.toThrow(Z3Unresponsive);
    const after = await z3();
    expect(after).not.toBe(before);
    const x = after.Int.const('x');
    expect((await satisfiable(after, [x.gt(7)])).result).toBe('proved');
  });

  it('a proof whose Z3 stops answering runs again on a fresh module and gives its real verdict', async () => {
    const proof = allProofs.find((p) => p.protocol === 'eplb-async-rebalance' && p.expectation === 'proved');
    expect(proof).toBeDefined();
    if (proof === undefined) return;
    let runs = 0;
    const flaky: Proof = {
      ...proof,
      run: async (opts) => {
        runs++;
        if (runs === 1) await answered(new Promise<never>(() => undefined), 10, 20);
        return proof.run(opts);
      },
    };
    const r = await runProof(flaky);
    expect(runs).toBe(2);
    expect(r.outcome.result).toBe('proved');
    expect(r.asExpected).toBe(true);
  });

  it('an abort in a Z3 worker fails the queries in flight at once, refuses that module, and z3() starts a fresh one', async () => {
    const before = await z3();
    const threads = await z3Threads();
    expect(threads).toBeDefined();
    if (threads === undefined) return;
    const workers = [...threads.pool.unusedWorkers, ...threads.pool.runningWorkers] as unknown as EventEmitter[];
    expect(workers.length).toBeGreaterThan(0);
    // A query that would otherwise wait out its watchdog (an hour here).
    const inFlight = answered(new Promise<never>(() => undefined), 3_600_000, 0).catch((e: unknown) => e);
    expect(() => workers[0].emit('error', new Error('Aborted(Runtime error: test abort)'))).not.toThrow();
    const err = await inFlight;
    expect(err).toBeInstanceOf(Z3Unresponsive);
    expect(String((err as Error).message)).toMatch(/a Z3 worker thread aborted \(Aborted\(Runtime error: test abort\)\)/);
    expect(threads.guard.aborts()).toBe(1);
    await expect(answered(Promise.resolve('sat'), 1_000)).rejects.toThrow(Z3Unresponsive);
    const after = await z3();
    expect(after).not.toBe(before);
    const x = after.Int.const('x');
    expect((await satisfiable(after, [x.gt(11)])).result).toBe('proved');
  });

  it(`gives up after ${MAX_RESTARTS} fresh starts, naming the reason`, async () => {
    for (;;) {
      await z3().catch(() => undefined);
      const e = await answered(new Promise<never>(() => undefined), 5, 5).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(Z3Unresponsive);
      const next = await z3().catch((x: unknown) => x);
      if (next instanceof Error) {
        expect(next.message).toMatch(/did not answer a query .* fresh starts did not help/);
        break;
      }
    }
  });
});
