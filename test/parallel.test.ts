/**
 * checkParallel against check: the same verdict, property, message, counts and counterexample (worker threads
 * load the system themselves, from a module or a built-in protocol), limits, fallbacks, failures, the CLI.
 * Never about speed: `npm run bench` measures that.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type CheckOptions, type CheckResult, type SystemSource, check, checkParallel } from '../model/index.ts';
import { builtinProtocols } from '../spec/index.ts';
import { knownStateCounts, twoPhase } from '../spec/examples/two-phase.ts';
import { twoPhasePacked } from '../spec/examples/two-phase-packed.ts';

const twoPhaseSource = (n: number): SystemSource => ({
  module: new URL('../spec/examples/two-phase.ts', import.meta.url).href,
  export: 'twoPhase',
  args: [n],
});

/** Everything but the clock: verdict, property, message, counts, depth, the whole counterexample. */
function expectSame(par: CheckResult, single: CheckResult): void {
  const strip = (r: CheckResult) => ({
    verdict: r.verdict,
    property: r.property,
    propertyKind: r.propertyKind,
    message: r.message,
    reason: r.reason,
    stuck: r.stuck,
    trace: r.trace,
    states: r.stats.states,
    transitions: r.stats.transitions,
    depth: r.stats.depth,
  });
  expect(strip(par)).toEqual(strip(single));
}

// Models written for these tests live in a temporary ESM folder, each importing the checker by file URL.
const dir = mkdtempSync(join(tmpdir(), 'interleave-parallel-'));
writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
const modelIndex = pathToFileURL(fileURLToPath(new URL('../model/index.ts', import.meta.url))).href;
function modelFile(name: string, body: string): string {
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, `import { actionsOf, defineSystem, eventually } from '${modelIndex}';\n${body}\n`);
  return pathToFileURL(file).href;
}
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('two-phase commit: the same state counts as the single-threaded explorer', () => {
  for (const n of [3, 4, 5]) {
    it(`${n} resource managers, 2 workers: ${knownStateCounts[n]} states`, async () => {
      const r = await checkParallel(twoPhaseSource(n), { workers: 2 });
      expect(r.verdict).toBe('holds');
      expect(r.stats.states).toBe(knownStateCounts[n]);
      expectSame(r, check(twoPhase(n)));
      expect(r.notes).toContain('parallel: 2 workers');
      expect(r.stats.bytesPerState).toBeGreaterThan(0);
      expect(r.stats.peakRssMB).toBeGreaterThan(0);
    });
  }

  it('6 resource managers: one sweep over a shared table that grows, also within a level, gives check\'s counts', async () => {
    const r = await checkParallel(twoPhaseSource(6), { workers: 2 });
    expect(r.verdict).toBe('holds');
    expect(r.stats.states).toBe(knownStateCounts[6]);
    expectSame(r, check(twoPhase(6)));
    const note = r.notes?.find((n) => n.includes('one sweep'));
    expect(note).toMatch(/one sweep over a shared fingerprint table \([\d,]+ slots; it grew [1-9]\d* times, [1-9]\d* of them within a level\)/);
    // The table's 8 bytes a slot, at most 75% full after the last level: under 16 bytes a state.
    expect(r.stats.bytesPerState).toBeLessThan(16);
  });

  it('a level 300 times the last: the table grows again and again within it, each cut chunk resumes, check\'s counts', async () => {
    // Levels of 1, 300 and 90,000 states; the table starts at 16,384 slots.
    const file = join(dir, 'burst.ts');
    writeFileSync(
      file,
      `import { actionsOf, defineSystem } from '${modelIndex}';
type S = { readonly a: number; readonly b: number };
const act = actionsOf<S>();
const i = [...Array(300).keys()];
export const burst = () => defineSystem<S>({
  name: 'burst', init: { a: -1, b: -1 },
  actions: [
    act<{ i: number }>('first', { params: { i }, guard: (s) => s.a < 0, effect: (_s, p) => ({ a: p.i, b: -1 }) }),
    act<{ i: number }>('second', { params: { i }, guard: (s) => s.a >= 0 && s.b < 0, effect: (s, p) => ({ ...s, b: p.i }) }),
  ],
  terminal: (s) => s.b >= 0,
});
`,
    );
    const mod = await import(pathToFileURL(file).href);
    const single = check(mod.burst());
    expect(single.stats.states).toBe(1 + 300 + 90_000);
    const r = await checkParallel({ module: pathToFileURL(file).href, export: 'burst' }, { workers: 2 });
    expectSame(r, single);
    expect(r.notes?.find((n) => n.includes('one sweep'))).toMatch(/it grew ([3-9]|\d\d+) times, ([3-9]|\d\d+) of them within a level\)/);
    expect(r.stats.bytesPerState).toBeLessThan(16);
  });

  it('a sweep stopped by the time limit is incomplete, with the counts it reached', async () => {
    const r = await checkParallel(twoPhaseSource(8), { workers: 2, timeLimit: 0.5 });
    expect(r.verdict).toBe('incomplete');
    expect(r.reason).toBe('time limit 0.5 s reached');
    expect(r.stats.states).toBeGreaterThan(0);
    expect(r.stats.states).toBeLessThan(knownStateCounts[8]);
    expect(r.notes?.join('\n')).toMatch(/one sweep/);
  });

  it('one worker and three workers give the same result', async () => {
    const single = check(twoPhase(4));
    const one = await checkParallel(twoPhaseSource(4), { workers: 1 });
    const three = await checkParallel(twoPhaseSource(4), { workers: 3 });
    expectSame(one, single);
    expectSame(three, single);
    expect(one.notes).toContain('parallel: 1 worker');
    expect(three.notes).toContain('parallel: 3 workers');
  });

  it('stops at --max-states and --max-depth exactly where check stops', async () => {
    for (const opts of [{ maxStates: 1000 }, { maxStates: 1 }, { maxDepth: 6 }, { maxDepth: 0 }] as CheckOptions[]) {
      const r = await checkParallel(twoPhaseSource(5), { ...opts, workers: 2 });
      expect(r.verdict).toBe('incomplete');
      expectSame(r, check(twoPhase(5), opts));
    }
  });
});

describe('packed systems: the workers take the fast path, with the same results', () => {
  const packedSource = (n: number, commitOnFirstPrepared = false): SystemSource => ({
    module: new URL('../spec/examples/two-phase-packed.ts', import.meta.url).href,
    export: 'twoPhasePacked',
    args: commitOnFirstPrepared ? [n, { commitOnFirstPrepared: true }] : [n],
  });

  it('two-phase 4 and 5 RMs over a layout, 2 workers: the known counts, and the generic workers agree', async () => {
    for (const n of [4, 5]) {
      const r = await checkParallel(packedSource(n), { workers: 2 });
      expectSame(r, check(twoPhasePacked(n)));
      expect(r.stats.states).toBe(knownStateCounts[n]);
      expect(r.notes).toContain('packed states: 1 word each');
      // The packed sweep (packed-sweep.ts) met nothing, so its counts are the result.
      expect(r.notes?.join('\n')).toMatch(/parallel: one sweep over a shared fingerprint table/);
      const generic = await checkParallel(packedSource(n), { workers: 2, packed: false });
      expectSame(generic, r);
      expect(generic.notes?.join('\n')).not.toMatch(/packed states/);
    }
  });

  it('the commit-on-first-prepared bug: the same shortest counterexample from 1 and 3 workers', async () => {
    const single = check(twoPhasePacked(3, { commitOnFirstPrepared: true }));
    expect(single.verdict).toBe('violated');
    for (const workers of [1, 3]) {
      const r = await checkParallel(packedSource(3, true), { workers });
      expectSame(r, single);
      expect(r.notes?.join('\n')).toMatch(/the sweep stopped at depth \d+ on a violation/);
    }
  });

  it('an effect writing outside its field: the same error, naming the action and the field', async () => {
    const file = join(dir, 'packed-overflow.ts');
    writeFileSync(
      file,
      `import { defineLayout, definePackedSystem, field, packedActionsOf } from '${modelIndex}';
const layout = defineLayout({ n: field.int(0, 5), m: field.int(0, 3) });
const pact = packedActionsOf<typeof layout.fields>();
export const overflow = () => definePackedSystem({
  name: 'overflow', layout, init: { n: 0, m: 0 },
  actions: [
    pact('incN', { guard: (s) => s.n < 5, effect: (d) => { d.n = d.n + 1; } }),
    pact('incM', { guard: (s) => s.n >= 2, effect: (d) => { d.m = d.m + 1; } }),
  ],
  terminal: () => true,
});
`,
    );
    const mod = await import(pathToFileURL(file).href);
    const single = check(mod.overflow());
    expect(single.verdict).toBe('error');
    expect(single.message).toMatch(/incM.*\n?.*field m: 4 is not/s);
    expectSame(await checkParallel({ module: pathToFileURL(file).href, export: 'overflow' }, { workers: 2 }), single);
  });

  it('stops at --max-states and --max-depth where check stops', async () => {
    for (const opts of [{ maxStates: 700 }, { maxDepth: 5 }] as CheckOptions[]) {
      expectSame(await checkParallel(packedSource(5), { ...opts, workers: 2 }), check(twoPhasePacked(5), opts));
    }
  });
});

/** The note of a search spread over two workers, or of one the single-threaded explorer took over. */
const spreadOrNot = /^parallel: 2 workers$|^parallel: not used: the model failed when its states moved between worker threads/m;

describe('built-in protocols: the same verdict, property, counts and shortest counterexample', () => {
  const cases: [string, string, string][] = [
    ['pp-async-p2p', 'b5-lazy-postprocess-hang', 'deadlock'],
    ['pp-async-p2p', 'b1-tuple-as-dict', 'invariant'],
    ['overlap-linear', 'comm-skips-compute-wait', 'action-property'],
    ['overlap-linear', 'serialised-branch', 'reachability'],
    ['overlap-linear', 'fixed', 'holds'],
    ['eplb-staged-transfer', 'noop-agreement-one-rank', 'deadlock'],
    ['eplb-async-rebalance', 'group-rank-as-global', 'invariant'],
    ['gpu-semantics', 'wait-unrecorded-event', 'invariant'],
  ];
  for (const [protocol, variant, kind] of cases) {
    it(`${protocol}:${variant} (${kind})`, async () => {
      const p = await builtinProtocols.find((x) => x.name === protocol)!.load();
      const v = p.variants.find((x) => x.name === variant)!;
      // Liveness needs the whole graph in one thread: these compare the safety search. Partial-order reduction
      // (which the GPU kit's models now get) stays single-threaded: off here, so that the search is spread.
      const single = check(v.build(v.config ?? p.configs.check), { liveness: false, por: false });
      const r = await checkParallel({ protocol, variant }, { workers: 2, liveness: false, por: false });
      expectSame(r, single);
      expect(kind === 'holds' ? r.verdict : r.propertyKind).toBe(kind);
      // The GPU kit's models may fail when their states move between threads (see the next test): then the
      // single-threaded explorer decides, and says so. Either way the result is the same.
      expect(r.notes?.join('\n')).toMatch(spreadOrNot);
    });
  }

  it('partial-order reduction stays single-threaded, and --no-por spreads the full search', async () => {
    const source: SystemSource = { module: new URL('../spec/examples/compute-then-barrier.ts', import.meta.url).href, variant: 'fixed' };
    const { default: p } = await import('../spec/examples/compute-then-barrier.ts');
    const v = p.variants.find((x) => x.name === 'fixed')!;
    const sys = () => v.build(v.config ?? p.configs.check);
    const reduced = await checkParallel(source, { workers: 2 });
    expectSame(reduced, check(sys()));
    expect(reduced.notes?.join('\n')).toMatch(/parallel: not used \(partial-order reduction/);
    const full = await checkParallel(source, { workers: 2, por: false });
    expectSame(full, check(sys(), { por: false }));
    expect(full.notes).toContain('parallel: 2 workers');
  });

  it('a model whose steps rely on state kept in their thread still gets the single-threaded result', async () => {
    // The GPU kit registers queue items as its steps run: a state made in one worker may fail in another (as
    // the workers share out the states differently from run to run); the single-threaded explorer then decides.
    const p = await builtinProtocols.find((x) => x.name === 'gpu-semantics')!.load();
    const v = p.variants.find((x) => x.name === 'send-without-matching-recv')!;
    const r = await checkParallel({ protocol: 'gpu-semantics', variant: v.name }, { workers: 2, liveness: false, por: false });
    expectSame(r, check(v.build(p.configs.check), { liveness: false, por: false }));
    expect(r.notes?.join('\n')).toMatch(spreadOrNot);
  });
});

describe('models of its own', () => {
  const counter = modelFile(
    'counter',
    `type S = { readonly x: number; readonly y: number; readonly log: readonly string[] };
const act = actionsOf<S>();
export const counter = (bound: number, inits: number[] = [0], terminalFrom = bound - 1) =>
  defineSystem<S>({
    name: 'counter',
    inits: inits.map((x) => ({ x, y: 0, log: [] })),
    actions: [
      act('inc', { params: { by: [1, 2] }, guard: (s, { by }) => s.x + by <= bound, effect: (s, { by }) => ({ ...s, x: s.x + by, log: [...s.log, 'inc ' + by].slice(-2) }) }),
      act('side', { guard: (s) => s.y < 2, effect: (s) => ({ ...s, y: s.y + 1 }) }),
    ],
    invariants: { belowSeven: (s) => s.x < 7 },
    actionProperties: { neverJumpsToSix: (b, step, a) => !(a.x === 6 && b.x === 4) },
    reachable: { reachesThree: (s) => s.x === 3, reachesNine: (s) => s.x === 9 },
    terminal: (s) => s.x >= terminalFrom,
  });
export const faulty = defineSystem<S>({
  name: 'faulty',
  init: { x: 0, y: 0, log: [] },
  actions: [act('inc', { effect: (s) => { if (s.x === 3 && s.y === 1) throw new Error('boom'); return { ...s, x: s.x + 1 }; } }), act('side', { guard: (s) => s.y < 1, effect: (s) => ({ ...s, y: 1 }) })],
});
export const live = defineSystem<S>({
  name: 'live',
  init: { x: 0, y: 0, log: [] },
  actions: [act('inc', { guard: (s) => s.x < 3, effect: (s) => ({ ...s, x: s.x + 1 }) })],
  liveness: { reachesThree: eventually((s) => s.x === 3) },
  fairness: 'weak',
});`,
  );
  // Each: the module's export, its args, options; all compared with check on the same system.
  const cases: [string, unknown[], CheckOptions][] = [
    ['an invariant, a step property and a deadlock met in one search', [20], {}],
    ['a deadlock (no terminal state)', [3, [0], 99], { properties: ['deadlock', 'belowSeven'] }],
    ['a goal never reached', [5], { properties: ['reachesNine', 'belowSeven'] }],
    ['a goal reached, no deadlock check: holds', [8, [0], 99], { deadlock: false, properties: ['reachesThree'] }],
    ['several initial states, two of them the same', [20, [2, 0, 2, 1]], {}],
    ['the first initial state breaks the invariant', [20, [8, 0]], {}],
  ].map(([name, args, opts]) => [name as string, args as unknown[], opts as CheckOptions]);
  for (const [name, args, opts] of cases) {
    it(name, async () => {
      const mod = (await import(counter)) as { counter: (...a: unknown[]) => Parameters<typeof check>[0] };
      const single = check(mod.counter(...args), opts);
      const r = await checkParallel({ module: counter, export: 'counter', args: args as never }, { ...opts, workers: 2 });
      expectSame(r, single);
    });
  }

  it('a step that throws is a model error, as single-threaded', async () => {
    const mod = (await import(counter)) as { faulty: Parameters<typeof check>[0] };
    const single = check(mod.faulty);
    expect(single.verdict).toBe('error');
    const r = await checkParallel({ module: counter, export: 'faulty' }, { workers: 2 });
    expectSame(r, single);
    expect(r.message).toMatch(/boom/);
  });

  it('an effect that mutates its input is blamed by name, as single-threaded', async () => {
    const file = new URL('./fixtures/mutating-model.ts', import.meta.url).href;
    const mod = (await import(file)) as { default: Parameters<typeof check>[0] };
    const single = check(mod.default);
    expect(single.verdict).toBe('error');
    const r = await checkParallel({ module: file, export: 'default' }, { workers: 2 });
    expectSame(r, single);
    expect(r.message).toMatch(/action bump mutated its input state \(field 'n'\)/);
  });

  it('a sweep that meets a violation hands the search to the exact scheme, which reports what one thread does', async () => {
    const mod = (await import(counter)) as { counter: (...a: unknown[]) => Parameters<typeof check>[0] };
    const single = check(mod.counter(20));
    expect(single.verdict).toBe('violated');
    const r = await checkParallel({ module: counter, export: 'counter', args: [20] as never }, { workers: 2 });
    expectSame(r, single);
    expect(r.notes?.join('\n')).toMatch(/the sweep stopped at depth \d+ on a violation, a deadlock or a model fault, so the exact scheme searched again/);
  });

  it('liveness is checked by the single-threaded explorer, and the result says so', async () => {
    const mod = (await import(counter)) as { live: Parameters<typeof check>[0] };
    const r = await checkParallel({ module: counter, export: 'live' }, { workers: 2 });
    expectSame(r, check(mod.live));
    expect(r.notes?.join('\n')).toMatch(/parallel: not used \(liveness/);
    const off = await checkParallel({ module: counter, export: 'live' }, { workers: 2, liveness: false });
    expect(off.notes).toContain('parallel: 2 workers');
  });
});

describe('failures are reported, never a hang', () => {
  it('a module that does not exist', async () => {
    await expect(checkParallel({ module: join(dir, 'missing.ts') }, { workers: 2 })).rejects.toThrow(/missing\.ts' does not load/);
  });

  it('a source a worker cannot load', async () => {
    const url = modelFile(
      'main-only',
      `import { isMainThread } from 'node:worker_threads';
if (!isMainThread) throw new Error('this model only loads on the main thread');
const act = actionsOf<{ readonly n: number }>();
export default defineSystem({ name: 'main-only', init: { n: 0 }, actions: [act('inc', { guard: (s) => s.n < 3, effect: (s) => ({ n: s.n + 1 }) })] });`,
    );
    const started = Date.now();
    await expect(checkParallel({ module: url }, { workers: 2 })).rejects.toThrow(
      /worker \d could not load the system: .*this model only loads on the main thread/,
    );
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('a bad worker count', async () => {
    await expect(checkParallel(twoPhaseSource(3), { workers: 0 })).rejects.toThrow(/workers must be an integer/);
  });
});

describe('interleave check --workers', () => {
  const bin = fileURLToPath(new URL('../bin/interleave.mjs', import.meta.url));
  const root = fileURLToPath(new URL('..', import.meta.url));
  const cli = (...args: string[]) => spawnSync(process.execPath, [bin, 'check', ...args], { encoding: 'utf8', cwd: root });

  it('checks a built-in variant and model files with worker threads', () => {
    const r = cli('gpu-semantics:wait-event', 'spec/examples/two-phase.ts:rm3', 'spec/examples/peterson.ts:turn-before-flag', '--workers', '2', '--no-por', '--json', '--quiet');
    expect(r.status, r.stderr).toBe(0);
    const [gpu, tp, pet] = JSON.parse(r.stdout).results;
    expect(gpu).toMatchObject({ verdict: 'holds', states: 10 });
    expect(gpu.notes.join('\n')).toMatch(spreadOrNot);
    expect(tp).toMatchObject({ verdict: 'holds', states: 288 });
    expect(tp.notes).toEqual(['parallel: 2 workers', expect.stringMatching(/^parallel: one sweep over a shared fingerprint table \([\d,]+ slots; it grew 0 times, 0 of them within a level\)$/)]);
    expect(pet).toMatchObject({ verdict: 'violated', property: 'mutualExclusion' });
    expect(pet.notes).toEqual(['parallel: 2 workers', expect.stringMatching(/^parallel: the sweep stopped at depth 8 on a violation, a deadlock or a model fault, so the exact scheme searched again/)]);
    expect(pet.trace.steps).toHaveLength(8);
  });

  it('refuses a bad worker count with a usage error', () => {
    for (const bad of ['0', 'two', '-1']) {
      const r = cli('spec/examples/two-phase.ts:rm3', `--workers=${bad}`);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/--workers expects an integer >= 1/);
    }
  });
});
