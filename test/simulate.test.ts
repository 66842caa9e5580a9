/**
 * Simulation against the explorer: on configurations small enough to enumerate, every state a walk reaches
 * is reachable (the explorer's set, rebuilt by an independent BFS), and every safety violation the explorer
 * finds (invariant, step property, deadlock) simulation finds too, within SIM_RUNS walks of SIM_DEPTH steps.
 */
import { describe, expect, it, vi } from 'vitest';
import { simulateCommand } from '../model/cli/simulate.ts';
import { check } from '../model/explorer.ts';
import type { Protocol } from '../model/registry.ts';
import { reachableStates, simulate, stateKey } from '../model/simulate.ts';
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

  it('bad flags are usage errors', async () => {
    await expect(run('spec/examples/peterson.ts', '--runs', 'many')).rejects.toThrow(/--runs expects an integer/);
    await expect(run('spec/examples/peterson.ts', '--seed', 'x')).rejects.toThrow(/--seed expects an integer/);
    await expect(run('spec/examples/peterson.ts', '--path', 'a:b')).rejects.toThrow(/--path expects a fast-check path/);
    await expect(run('spec/examples/peterson.ts', '--path', '1:2')).rejects.toThrow(/name exactly one target/);
  });
});
