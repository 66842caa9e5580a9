/**
 * Symmetry reduction for GPU-kit systems (`symmetry` in gpuSystem): on small kit systems and on the two seed
 * protocols at 2 and 3 ranks, the reduction keeps every verdict and property, explores fewer states (one per
 * class of states that differ by a renaming of ranks, exactly), and its counterexamples are real behaviours;
 * a wrong declaration is refused with a clear message.
 */
import { describe, expect, it } from 'vitest';
import { Encoder } from '../model/data.ts';
import { type CheckResult, type Data, type System, check, equalData } from '../model/index.ts';
import {
  type GpuState,
  allReduce,
  alloc,
  batchIsendIrecv,
  cpuRead,
  free,
  gpuSystem,
  irecv,
  isend,
  join,
  launch,
  mayRaise,
  record,
  set,
  start,
  step,
  syncDevice,
  until,
  wait,
  waitEvent,
} from '../model/gpu/index.ts';
import eplb, { type EplbAsyncConfig, buildEplbAsync } from '../spec/eplb-async-rebalance.ts';
import dp, { configs as dpConfigs, dpPadding } from '../spec/dp-padding.ts';

type St = GpuState<any>;

/** Replays a counterexample on the system without symmetry: every step enabled, every state as printed. */
function expectRealBehaviour(sys: System<any>, r: CheckResult): void {
  const trace = r.trace!;
  expect(sys.inits.some((i) => equalData(i as Data, trace.initial))).toBe(true);
  let s = trace.initial as unknown;
  for (const st of trace.steps) {
    const inst = sys.instances.find((i) => i.action.name === st.action && equalData(i.params, st.params));
    expect(inst, `step ${st.index} ${st.action}`).toBeDefined();
    expect(!inst!.action.spec.guard || inst!.action.spec.guard(s, inst!.params)).toBe(true);
    s = inst!.action.spec.effect(s, inst!.params);
    expect(equalData(s as Data, st.state)).toBe(true);
  }
}

/**
 * Checks with and without symmetry: same verdict and property, fewer states, real counterexamples. Symmetry on
 * its own (partial-order reduction, which kit models now get too, off on both sides; test/kit-por.test.ts
 * compares it).
 */
function compare(sys: System<any>, opts: { strictlySmaller?: boolean } = {}) {
  const on = check(sys, { liveness: false, por: false });
  const off = check(sys, { liveness: false, symmetry: false, por: false });
  expect(on.verdict).toBe(off.verdict);
  expect(on.property).toBe(off.property);
  expect(on.notes ?? []).toContain(`symmetry reduction over ${sys.spec.symmetry!.size} interchangeable ranks`);
  if (on.verdict === 'holds') {
    if (opts.strictlySmaller !== false) expect(on.stats.states).toBeLessThan(off.stats.states);
  } else {
    expect(on.verdict).toBe('violated');
    // The shortest counterexample has the same length either way, and it is a real behaviour.
    expect(on.trace!.steps.length).toBe(off.trace!.steps.length);
    expectRealBehaviour(sys, on);
  }
  return { on, off };
}

const enc = new Encoder();
/** A state's encoding as a string key (object keys sorted: equal data, equal key). */
const keyOf = (s: unknown) => {
  enc.encode(s);
  return enc.words.subarray(0, enc.length).join(',');
};

/** Every state reachable without symmetry (a plain DFS over guards and effects). */
function reachable(sys: System<any>): unknown[] {
  const seen = new Map<string, unknown>();
  const stack = [...sys.inits];
  while (stack.length > 0) {
    const s = stack.pop()!;
    const k = keyOf(s);
    if (seen.has(k)) continue;
    seen.set(k, s);
    for (const i of sys.instances) if (!i.action.spec.guard || i.action.spec.guard(s, i.params)) stack.push(i.action.spec.effect(s, i.params));
  }
  return [...seen.values()];
}

/** The classes of states under renaming ranks, counted by brute force: the least renaming over all n! orders. */
function countOrbits(sys: System<any>): number {
  const sym = sys.spec.symmetry!;
  const perms = permutations([...Array(sym.size).keys()]);
  const keys = new Set<string>();
  for (const s of reachable(sys)) {
    let best: string | undefined;
    for (const p of perms) {
      const k = keyOf(sym.permute(s, p));
      if (best === undefined || k < best) best = k;
    }
    keys.add(best!);
  }
  return keys.size;
}

function permutations(xs: number[]): number[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

// ---- small kit systems ------------------------------------------------------------------------------------

/** Each rank fills y on C, all-reduces it from S (after an event wait, unless `race`), and a worker thread may raise. */
const collectives = (ranks: number, race: boolean) =>
  gpuSystem({
    name: `collectives-${ranks}${race ? '-race' : ''}`,
    ranks,
    streams: ['C', 'S'],
    buffers: { x: { init: 'x' }, y: {} },
    vars: { got: null, flag: false },
    symmetry: true,
    threads: () => ({
      main: [
        start('worker'),
        launch('C', 'fill', { reads: ['x'], writes: ['y'] }),
        record('filled', 'C'),
        !race && waitEvent('S', 'filled'),
        allReduce('y', { stream: 'S' }),
        syncDevice(),
        cpuRead('y', { into: 'got' }),
        join('worker'),
      ],
      worker: { autoStart: false, body: [mayRaise('the worker fails'), set('flag', true)] },
    }),
  });

/** Two ranks exchange a freshly allocated tensor (release markers on the pair's queue), batched or not. */
const exchange = (how: 'batch' | 'send-first' | 'no-wait' | 'gloo') =>
  gpuSystem({
    name: `exchange-${how}`,
    ranks: 2,
    streams: ['C'],
    buffers: { x: { alloc: true }, y: {} },
    vars: { got: null },
    symmetry: true,
    threads: (r) => {
      const peer = 1 - r;
      const backend = how === 'gloo' ? 'gloo' : 'nccl';
      return {
        main: [
          alloc('x', 'C'),
          launch('C', 'fill', { writes: ['x'], value: 'mine' }),
          // gloo reads the tensor on the CPU, not in stream order: wait for the fill first.
          how === 'gloo' && syncDevice(),
          how === 'batch' || how === 'no-wait'
            ? batchIsendIrecv([isend(peer, 'x'), irecv(peer, 'y')], { handle: 'h' })
            : how === 'send-first'
              ? [isend(peer, 'x', { handle: 's' }), irecv(peer, 'y', { handle: 'h' })]
              : [irecv(peer, 'y', { backend, handle: 'h' }), isend(peer, 'x', { backend, handle: 's' })],
          how !== 'batch' && how !== 'no-wait' && wait('s'),
          how !== 'no-wait' && wait('h'),
          free('x'),
          launch('C', 'use', { reads: [{ buf: 'y', expect: 'mine' }], writes: [] }),
          syncDevice(),
          cpuRead('y', { into: 'got' }),
        ],
      };
    },
  });

describe('symmetry on small kit systems', () => {
  it('collectives and a worker thread: same verdicts, fewer states, exactly one state per class', () => {
    expect(compare(collectives(3, false)).on.verdict).toBe('holds');
    const { on } = compare(collectives(2, false));
    expect(on.stats.states).toBe(countOrbits(collectives(2, false)));
    const race = compare(collectives(3, true));
    expect(race.on.property).toBe('no-read-while-writing');
  });

  it('point-to-point at 2 ranks (peers in queue names and keys are renamed): batched, send-first deadlock, missing wait, gloo', () => {
    const batch = compare(exchange('batch'));
    expect(batch.on.verdict).toBe('holds');
    expect(batch.on.stats.states).toBe(countOrbits(exchange('batch')));
    const hang = compare(exchange('send-first'));
    expect(hang.on.property).toBe('deadlock');
    expect(compare(exchange('no-wait')).on.property).toBe('no-read-while-writing');
    const gloo = compare(exchange('gloo'));
    expect(gloo.on.verdict).toBe('holds');
    expect(gloo.on.stats.states).toBe(countOrbits(exchange('gloo')));
  });

  it('keys are numbered per rank: the same statement has the same key on every rank', () => {
    const sys = collectives(2, false);
    const s = check(sys, { liveness: false, symmetry: false });
    expect(s.verdict).toBe('holds');
    let t = sys.inits[0] as St;
    for (const rank of [0, 1]) {
      const inst = sys.instances.find((i) => i.action.name === 'start' && i.params.rank === rank)!;
      t = inst.action.spec.effect(t, inst.params);
      const l = sys.instances.find((i) => i.action.name === 'launch' && i.params.rank === rank)!;
      t = l.action.spec.effect(t, l.params);
    }
    expect(t.streams[0].C).toEqual(t.streams[1].C);
    expect(t.streams[0].C).toEqual(['fill#1']);
  });
});

// ---- wrong declarations -----------------------------------------------------------------------------------

describe('a wrong symmetry declaration is refused', () => {
  it('programs that depend on the rank number: refused when the system is built', () => {
    const build = () =>
      gpuSystem({
        name: 'leader',
        ranks: 3,
        streams: ['C'],
        buffers: { x: { init: 'x' } },
        symmetry: true,
        threads: (r) => ({ main: r === 0 ? [launch('C', 'lead', { reads: ['x'] })] : [launch('C', 'follow', { reads: ['x'] })] }),
      });
    expect(build).toThrow(/`symmetry` is declared but ranks are not interchangeable: statement 0 of main is 'launch follow on stream C' on rank 1 but 'launch lead on stream C' on rank 0/);
  });

  it('a peer named with 3 ranks: refused when built', () => {
    expect(() =>
      gpuSystem({ name: 'ring', ranks: 3, streams: ['C'], buffers: ['x', 'y'], symmetry: true, threads: (r) => ({ main: [isend((r + 1) % 3, 'x'), irecv((r + 2) % 3, 'y')] }) }),
    ).toThrow(/names a specific peer; with 3 ranks/);
  });

  it('a condition that singles out a rank: the explorer refuses it (steps do not commute with renaming)', () => {
    const sys = gpuSystem({
      name: 'rank-zero-first',
      ranks: 3,
      streams: ['C'],
      vars: { x: 0 },
      symmetry: true,
      threads: () => ({ main: [until((c) => c.rank === 0 || c.s.vars[0].x === 1, 'rank 0 has set x'), set('x', 1)] }),
    });
    const r = check(sys);
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/symmetry: the steps do not commute with renaming ranks by \[[\d, ]+\]/);
    expect(check(sys, { symmetry: false }).verdict).toBe('holds');
  });

  it('rank-indexed protocol state without permuteUser: the explorer refuses it', () => {
    const sys = gpuSystem<{ done: boolean[] }>({
      name: 'forgotten-user',
      ranks: 3,
      streams: ['C'],
      user: { done: [false, false, false] },
      symmetry: true,
      threads: () => ({
        main: [
          step('finish', { effect: (c) => ({ user: { done: c.user.done.with(c.rank, true) } }) }),
          until((c) => c.user.done[c.rank], 'its own entry is set'),
        ],
      }),
    });
    const r = check(sys);
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/do not commute with renaming ranks/);
    const fixed = gpuSystem<{ done: boolean[] }>({
      name: 'declared-user',
      ranks: 3,
      streams: ['C'],
      user: { done: [false, false, false] },
      symmetry: {
        permuteUser: (u, perm) => {
          const done = [...u.done];
          u.done.forEach((d, r) => (done[perm[r]] = d));
          return { done };
        },
      },
      threads: () => ({
        main: [
          step('finish', { effect: (c) => ({ user: { done: c.user.done.with(c.rank, true) } }) }),
          until((c) => c.user.done[c.rank], 'its own entry is set'),
        ],
      }),
    });
    expect(compare(fixed).on.verdict).toBe('holds');
  });
});

// ---- the seed protocols -----------------------------------------------------------------------------------

/** The eplb variants that declare symmetry on a configuration (one TP group). */
const symmetricEplb = eplb.variants.filter((v) => v.build(eplb.configs.check).spec.symmetry !== undefined);

describe('eplb-async-rebalance with symmetry', () => {
  it('the symmetric variants are every one-group variant (the two-group ones and W = 1 declare none)', () => {
    expect(symmetricEplb.map((v) => v.name)).toEqual(
      eplb.variants.map((v) => v.name).filter((n) => !['group-rank-as-global', 'fixed-two-tp-groups', 'w1-empty-stack', 'fixed-w1'].includes(n)),
    );
  });

  for (const v of symmetricEplb) {
    it(`${v.name} at 2 ranks: ${v.expect.verdict === 'holds' ? 'holds' : v.expect.property} either way`, () => {
      const { on } = compare(v.build(eplb.configs.check));
      expect(on.verdict).toBe(v.expect.verdict);
      if (v.expect.verdict === 'violated') expect(on.property).toBe(v.expect.property);
    });
  }

  it('at 3 ranks: fixed holds with one state per class (C = 0, D = 0, one layer), and the stale-flag bugs are found', () => {
    const small: EplbAsyncConfig = { ...eplb.configs.check, tpSize: 3, computeTicks: 0, delay: 0, margin: 1, layers: 1, computeMayRaise: false };
    const fixed = buildEplbAsync(small);
    const { on, off } = compare(fixed);
    expect(on.stats.states).toBe(countOrbits(fixed));
    console.log(`eplb-async-rebalance W = 3 (C = 0, D = 0, 1 layer): ${off.stats.states} states without symmetry, ${on.stats.states} with (x${(off.stats.states / on.stats.states).toFixed(2)})`);
    // The stale flags need a forward pass between start() and the thread's first statement (C >= 1).
    const late: EplbAsyncConfig = { ...eplb.configs.check, tpSize: 3 };
    expect(compare(buildEplbAsync(late, { computeFlagInThread: true })).on.property).toBe('same-plan-and-begin-step');
    expect(compare(buildEplbAsync(late, { syncFlagInThread: true })).on.property).toBe('same-plan-and-begin-step');
  });

  it('the sequential waits single out ranks from W = 3: no symmetry declared there', () => {
    const small: EplbAsyncConfig = { ...eplb.configs.check, tpSize: 3 };
    expect(buildEplbAsync(small, { sequentialWaits: true }).spec.symmetry).toBeUndefined();
    expect(buildEplbAsync(small).spec.symmetry?.size).toBe(3);
  });
});

describe('dp-padding with symmetry', () => {
  for (const v of dp.variants) {
    it(`${v.name} at 2 ranks: ${v.expect.verdict === 'holds' ? 'holds' : v.expect.property} either way`, () => {
      const { on } = compare(v.build(dpConfigs.check));
      expect(on.verdict).toBe(v.expect.verdict);
      if (v.expect.verdict === 'violated') expect(on.property).toBe(v.expect.property);
    });
  }

  it('at 3 ranks (counts 0..2): one state per class; the rank-local graph flag and the idle router are found', () => {
    const cfg = { dp: 3, iterations: 1, maxCount: 2, attnTp: 2, graphMax: 1 };
    const fixed = dpPadding(cfg);
    const { on, off } = compare(fixed);
    expect(on.stats.states).toBe(countOrbits(fixed));
    console.log(`dp-padding dp = 3 (counts 0..2): ${off.stats.states} states without symmetry, ${on.stats.states} with (x${(off.stats.states / on.stats.states).toFixed(2)})`);
    expect(compare(dpPadding(cfg, { localGraphFlag: true })).on.property).toBe('same-mode-on-every-rank');
    expect(compare(dpPadding(cfg, { idleRouter: true })).on.property).toBe('padding-never-touches-real-rows');
  });

  it('the 8-rank configuration declares symmetry over 8 ranks and every count vector of {0, 1, 2}', () => {
    const sys = dpPadding(dpConfigs.ranks8);
    expect(sys.spec.symmetry?.size).toBe(8);
    expect(sys.inits).toHaveLength(3 ** 8);
  });
});
