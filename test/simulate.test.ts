/**
 * Simulation against the explorer: on configurations small enough to enumerate, every state a walk reaches
 * is reachable (the explorer's set, rebuilt by an independent BFS), and every safety violation the explorer
 * finds (invariant, step property, deadlock) simulation finds too, within SIM_RUNS walks of SIM_DEPTH steps.
 */
import { describe, expect, it, vi } from 'vitest';
import { simulateCommand, simulationAsExpected } from '../model/cli/simulate.ts';
import type { Target } from '../model/cli/targets.ts';
import { check } from '../model/explorer.ts';
import type { Protocol } from '../model/registry.ts';
import { type SimulationResult, type SwarmConfig, reachableStates, simulate, stateKey } from '../model/simulate.ts';
import { type System, actionsOf, defineSystem } from '../model/system.ts';
import dining from '../spec/examples/dining-philosophers.ts';
import peterson from '../spec/examples/peterson.ts';
import { twoPhase } from '../spec/examples/two-phase.ts';

/** The stated budget: every explorer-found safety violation is found within this many walks. */
const SIM_RUNS = 2000;
const SIM_DEPTH = 200;
const SEED = 20240611;

const examples: { name: string; protocol: Protocol; config?: unknown }[] = [
  { name: 'peterson', protocol: peterson },
  { name: 'dining-philosophers', protocol: dining, config: 4 },
];

function variantsOf(p: Protocol, config?: unknown): { name: string; expect: Protocol['variants'][number]['expect']; build: () => System<any> }[] {
  return p.variants.map((v) => ({
    name: `${p.name}:${v.name}`,
    expect: v.expect,
    build: () => v.build(config ?? v.config ?? p.configs.check),
  }));
}

describe('simulation only reaches reachable states', () => {
  const systems: [string, () => System<any>][] = [
    ...examples.flatMap((e) => variantsOf(e.protocol, e.config).map((v) => [v.name, v.build] as [string, () => System<any>])),
    ['two-phase(3)', () => twoPhase(3)],
  ];
  for (const [name, build] of systems) {
    it(name, () => {
      const sys = build();
      const { keys, complete } = reachableStates(sys, 200_000);
      expect(complete).toBe(true);
      const holds = check(sys);
      if (holds.verdict === 'holds') expect(keys.size).toBe(holds.stats.states);
      const seen = new Set<string>();
      simulate(sys, { runs: 300, depth: 60, seed: SEED, onState: (s) => seen.add(stateKey(s)) });
      expect(seen.size).toBeGreaterThan(1);
      for (const k of seen) expect(keys.has(k)).toBe(true);
    });
  }
});

describe(`every safety violation the explorer finds, simulation finds within ${SIM_RUNS} walks`, () => {
  const cases = examples.flatMap((e) => variantsOf(e.protocol, e.config)).filter((v) => v.expect.verdict === 'violated');
  for (const v of cases) {
    it(v.name, () => {
      const sys = v.build();
      const ex = check(sys);
      expect(ex.verdict).toBe('violated');
      const sim = simulate(sys, { runs: SIM_RUNS, depth: SIM_DEPTH, seed: SEED });
      expect(sim.verdict).toBe('violated');
      expect(sim.property).toBe(ex.property);
      expect(sim.stats.runs).toBeLessThanOrEqual(SIM_RUNS);
      // Shrunk to the explorer's shortest length here (small examples): no step the violation does not need.
      expect(sim.trace!.steps.length).toBe(ex.trace!.steps.length);
    });
  }
});

describe('simulation: determinism, shrinking, replay', () => {
  const broken = () => peterson.variants.find((v) => v.name === 'turn-before-flag')!.build(null);

  it('the same seed gives the same walks and the same shrunk trace', () => {
    const a = simulate(broken(), { seed: 99, runs: 500 });
    const b = simulate(broken(), { seed: 99, runs: 500 });
    expect(a.verdict).toBe('violated');
    expect(b.stats.runs).toBe(a.stats.runs);
    expect(b.path).toBe(a.path);
    expect(b.trace).toEqual(a.trace);
  });

  it('a fast-check path replays exactly the counterexample', () => {
    const a = simulate(broken(), { seed: 5, runs: 500 });
    const b = simulate(broken(), { seed: 5, runs: 500, path: a.path! });
    expect(b.stats.runs).toBe(1);
    expect(b.trace).toEqual(a.trace);
  });

  it('shrinks a long failing walk to the short core (found long, reported short)', () => {
    // A counter that may wander; the bug needs only `arm` then `fire`.
    type S = { readonly n: number; readonly armed: boolean; readonly fired: boolean };
    const act = actionsOf<S>();
    const sys = defineSystem<S>({
      name: 'wander',
      init: { n: 0, armed: false, fired: false },
      actions: [
        act('wander', { params: { d: [1, -1] }, guard: (s, { d }) => Math.abs(s.n + d) <= 5, effect: (s, { d }) => ({ ...s, n: s.n + d }) }),
        act('arm', { guard: (s) => !s.armed, effect: (s) => ({ ...s, armed: true }) }),
        act('fire', { guard: (s) => s.armed && s.n === 3, effect: (s) => ({ ...s, fired: true }) }),
      ],
      invariants: { neverFires: (s) => !s.fired },
    });
    const r = simulate(sys, { seed: 1, runs: 2000, depth: 100 });
    expect(r.verdict).toBe('violated');
    expect(r.foundLength!).toBeGreaterThan(5);
    // 3 wanders up, arm (any order), fire: 5 steps.
    expect(r.trace!.steps.length).toBe(5);
  });

  it('reports a step property with the step that breaks it', () => {
    type S = { readonly x: number };
    const act = actionsOf<S>();
    const sys = defineSystem<S>({
      name: 'monotone',
      init: { x: 0 },
      actions: [
        act('inc', { guard: (s) => s.x < 4, effect: (s) => ({ x: s.x + 1 }) }),
        act('reset', { guard: (s) => s.x >= 3, effect: () => ({ x: 0 }) }),
      ],
      actionProperties: { neverDecreases: (b, _l, a) => a.x >= b.x },
      terminal: () => true,
    });
    const r = simulate(sys, { seed: 3, runs: 500 });
    expect(r.verdict).toBe('violated');
    expect(r.propertyKind).toBe('action-property');
    expect(r.trace!.steps.map((s) => s.action)).toEqual(['inc', 'inc', 'inc', 'reset']);
  });

  it('a model that mutates its state is a model error, naming the action', () => {
    type S = { readonly n: { v: number } };
    const act = actionsOf<S>();
    const sys = defineSystem<S>({
      name: 'mutator',
      init: { n: { v: 0 } },
      actions: [act('bump', { guard: (s) => s.n.v < 3, effect: (s) => ((s.n as { v: number }).v++, s) })],
      terminal: () => true,
    });
    const r = simulate(sys, { seed: 3, runs: 50 });
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/effect of action bump mutated its input state/);
  });

  it('names the reachability goals no walk reached, without calling them violated', () => {
    type S = { readonly x: number };
    const act = actionsOf<S>();
    const sys = defineSystem<S>({
      name: 'goals',
      init: { x: 0 },
      actions: [act('inc', { guard: (s) => s.x < 3, effect: (s) => ({ x: s.x + 1 }) })],
      reachable: { three: (s) => s.x === 3, four: (s) => s.x === 4 },
      terminal: () => true,
    });
    const r = simulate(sys, { seed: 3, runs: 100 });
    expect(r.verdict).toBe('no-violation');
    expect(r.unreached).toEqual(['four']);
  });
});

describe('swarm testing: per-walk scheduling bias', () => {
  // A consumer that must be kept off the CPU for 25 producer steps in a row to see the bug: a uniform walk takes
  // the consumer with probability 1/2 at each of them (2^-25), a swarm walk that slows the consumer about 1/3.
  type S = { readonly produced: number; readonly consumedAt: number | null };
  const act = actionsOf<S>();
  const STARVE = 25;
  const starved = () =>
    defineSystem<S>({
      name: 'starved-consumer',
      init: { produced: 0, consumedAt: null },
      actions: [
        act('produce', { actor: 'producer', guard: (s) => s.produced < 30, effect: (s) => ({ ...s, produced: s.produced + 1 }) }),
        act('consume', { actor: 'consumer', guard: (s) => s.consumedAt === null, effect: (s) => ({ ...s, consumedAt: s.produced }) }),
      ],
      invariants: { consumerKeepsUp: (s) => s.consumedAt === null || s.consumedAt < STARVE },
      terminal: () => true,
    });

  it('uniform walks never starve an actor that long; swarm walks do, within a few hundred walks', () => {
    const uniform = simulate(starved(), { seed: SEED, runs: SIM_RUNS, swarm: false });
    expect(uniform.verdict).toBe('no-violation');
    for (const seed of [SEED, 1, 2, 3]) {
      const r = simulate(starved(), { seed, runs: SIM_RUNS });
      expect(r.verdict, `seed ${seed}`).toBe('violated');
      expect(r.property).toBe('consumerKeepsUp');
      expect(r.stats.runs).toBeLessThan(500);
      // Shrunk to the shortest counterexample: 25 productions, then the consumer.
      expect(r.trace!.steps.map((st) => st.action)).toEqual([...Array(STARVE).fill('produce'), 'consume']);
    }
  });

  it('the walk that finds it is a swarm walk slowing the consumer; shrinking keeps the trace shortest', () => {
    const r = simulate(starved(), { seed: 7, runs: SIM_RUNS, shrinkBudget: 0 });
    expect(r.verdict).toBe('violated');
    // With no shrinking, the reported walk is the one found: its bias slows the consumer and not the producer.
    expect(r.swarmConfig?.slowed).toContain('consumer');
    expect(r.swarmConfig?.slowed).not.toContain('producer');
    // With shrinking: the same first failing walk, shrunk (bias and choices) and minimised to 26 steps.
    const shrunk = simulate(starved(), { seed: 7, runs: SIM_RUNS });
    expect(shrunk.stats.runs).toBe(r.stats.runs);
    expect(shrunk.trace!.steps).toHaveLength(STARVE + 1);
  });

  it('a seed replays a swarm walk exactly: same walks, same shrink, same trace; its path replays it alone', () => {
    const a = simulate(starved(), { seed: 11, runs: SIM_RUNS });
    const b = simulate(starved(), { seed: 11, runs: SIM_RUNS });
    expect(a.verdict).toBe('violated');
    expect(b.stats.runs).toBe(a.stats.runs);
    expect(b.path).toBe(a.path);
    expect(b.swarmConfig).toEqual(a.swarmConfig);
    expect(b.trace).toEqual(a.trace);
    const c = simulate(starved(), { seed: 11, runs: SIM_RUNS, path: a.path! });
    expect(c.stats.runs).toBe(1);
    expect(c.trace).toEqual(a.trace);
    // Without shrinking too (the reported walk is then the biased one itself).
    const d = simulate(starved(), { seed: 11, runs: SIM_RUNS, shrinkBudget: 0 });
    const e = simulate(starved(), { seed: 11, runs: SIM_RUNS, shrinkBudget: 0 });
    expect(d.swarmConfig).toBeDefined();
    expect(e.swarmConfig).toEqual(d.swarmConfig);
    expect(e.trace).toEqual(d.trace);
  });

  it('a paused action name delays the actor that took it: a window between two statements stays open', () => {
    // The writer sets `ready` and releases `lock` in two steps; the reader, once it sees `ready`, takes READS
    // steps; the bug is all of them landing inside that window. A uniform walk keeps it open with probability
    // 2^-READS; a swarm walk that pauses the writer after `publish` (or slows the writer) nearly always.
    type W = { readonly work: number; readonly ready: boolean; readonly lock: boolean; readonly reads: number; readonly doneHeld: boolean };
    const READS = 12;
    const w = actionsOf<W>();
    const sys = defineSystem<W>({
      name: 'window',
      init: { work: 0, ready: false, lock: true, reads: 0, doneHeld: false },
      actions: [
        w('work', { actor: 'writer', guard: (s) => s.work < 6, effect: (s) => ({ ...s, work: s.work + 1 }) }),
        w('publish', { actor: 'writer', guard: (s) => s.work === 6 && !s.ready, effect: (s) => ({ ...s, ready: true }) }),
        w('release', { actor: 'writer', guard: (s) => s.ready && s.lock, effect: (s) => ({ ...s, lock: false }) }),
        w('read', {
          actor: 'reader',
          guard: (s) => s.ready && s.reads < READS,
          effect: (s) => ({ ...s, reads: s.reads + 1, doneHeld: s.reads + 1 === READS && s.lock }),
        }),
      ],
      invariants: { readerNeverFinishesUnderLock: (s) => !s.doneHeld },
      terminal: () => true,
    });
    expect(simulate(sys, { seed: SEED, runs: 300, swarm: false }).verdict).toBe('no-violation');
    const swarm = simulate(sys, { seed: SEED, runs: 300 });
    expect(swarm.verdict).toBe('violated');
    expect(swarm.stats.runs).toBeLessThan(50);
    expect(swarm.trace!.steps.map((st) => st.action)).toEqual([...Array(6).fill('work'), 'publish', ...Array(READS).fill('read')]);
  });
});

describe('interleave simulate (command)', () => {
  async function run(...args: string[]) {
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    try {
      const code = await simulateCommand(args);
      return { code, out };
    } finally {
      spy.mockRestore();
    }
  }

  it('prints the seed, the verdict table, the shrunk trace and a replay line; exit 0 as expected', async () => {
    const r = await run('spec/examples/peterson.ts', '--seed', '11', '--runs', '500');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^seed 11: 500 walks/);
    expect(r.out).toMatch(/turn-before-flag\s+violated:mutualExclusion\s+violated\s+mutualExclusion/);
    expect(r.out).toMatch(/correct\s+holds\s+no-violation/);
    expect(r.out).toMatch(/replay: interleave simulate spec\/examples\/peterson.ts:turn-before-flag --seed 11 --runs 500 --depth 200 --path \d/);
    expect(r.out).toMatch(/8\. \[thread \d\] acquire/);
  });

  it('the printed replay line reproduces the same trace', async () => {
    const a = await run('spec/examples/peterson.ts:turn-before-flag', '--seed', '12', '--json');
    const ja = JSON.parse(a.out).results[0];
    const b = await run('spec/examples/peterson.ts:turn-before-flag', '--seed', '12', '--path', ja.path, '--json');
    const jb = JSON.parse(b.out).results[0];
    expect(jb.trace).toEqual(ja.trace);
    expect(jb.runs).toBe(1);
  });

  it('exit 1 when a user system is violated (JSON names the property and the seed)', async () => {
    const r = await run('test/fixtures/violated-system.ts', '--seed', '4', '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.seed).toBe(4);
    expect(j.results[0]).toMatchObject({ verdict: 'violated', property: 'belowTwo', seed: 4, asExpected: false });
    expect(j.results[0].trace.steps).toHaveLength(2);
  });

  it('--no-swarm: uniform walks, said in the header, the JSON and the replay line; the last of the two flags wins', async () => {
    const a = await run('spec/examples/peterson.ts:turn-before-flag', '--seed', '13', '--runs', '500', '--no-swarm');
    expect(a.out).toMatch(/^seed 13: 500 walks of at most 200 steps per target, all uniform/);
    expect(a.out).toMatch(/replay: interleave simulate spec\/examples\/peterson.ts:turn-before-flag --seed 13 --runs 500 --depth 200 --no-swarm --path \d/);
    const j = JSON.parse((await run('spec/examples/peterson.ts:turn-before-flag', '--seed', '13', '--no-swarm', '--json')).out);
    expect(j.swarm).toBe(false);
    const k = JSON.parse((await run('spec/examples/peterson.ts:turn-before-flag', '--seed', '13', '--no-swarm', '--swarm', '--json')).out);
    expect(k.swarm).toBe(true);
    const b = await run('spec/examples/peterson.ts:turn-before-flag', '--seed', '13', '--runs', '500');
    expect(b.out).toMatch(/two in three swarm-biased/);
    expect(b.out).toMatch(/the shrunk walk is a (uniform walk|swarm walk)/);
    expect(b.out).not.toMatch(/--no-swarm/);
    // The replay line of a --no-swarm run reproduces its trace.
    const ja = JSON.parse((await run('spec/examples/peterson.ts:turn-before-flag', '--seed', '14', '--no-swarm', '--json')).out).results[0];
    const jb = JSON.parse((await run('spec/examples/peterson.ts:turn-before-flag', '--seed', '14', '--no-swarm', '--path', ja.path, '--json')).out).results[0];
    expect(jb.trace).toEqual(ja.trace);
  });

  it('bad flags are usage errors', async () => {
    await expect(run('spec/examples/peterson.ts', '--runs', 'many')).rejects.toThrow(/--runs expects an integer/);
    await expect(run('spec/examples/peterson.ts', '--seed', 'x')).rejects.toThrow(/--seed expects an integer/);
    await expect(run('spec/examples/peterson.ts', '--path', 'a:b')).rejects.toThrow(/--path expects a fast-check path/);
    await expect(run('spec/examples/peterson.ts', '--path', '1:2')).rejects.toThrow(/name exactly one target/);
  });
});

describe('simulate CLI expectations', () => {
  const target = (expectLiveness: boolean): Target => ({
    protocol: 'p',
    variant: 'v',
    summary: '',
    expected: { verdict: 'violated', property: 'same-step' },
    expectedLiveness: expectLiveness ? { verdict: 'violated', property: 'no-rank-waits-forever' } : { verdict: 'holds' },
    build: () => {
      throw new Error('not built');
    },
  });
  const found = (property: string) => ({ verdict: 'violated', property }) as unknown as SimulationResult;

  it('a deadlock counts as the expected bug only for a variant that declares it hangs', () => {
    expect(simulationAsExpected(target(false), found('same-step'), [])).toBe(true);
    expect(simulationAsExpected(target(false), found('deadlock'), [])).toBe(false);
    expect(simulationAsExpected(target(true), found('deadlock'), [])).toBe(true);
    expect(simulationAsExpected(target(true), found('other-invariant'), [])).toBe(false);
  });
});
