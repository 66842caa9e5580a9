import { describe, expect, it } from 'vitest';
import { type System, check, defineSystem } from '../model/index.ts';
import eplb, { type Bugs, type EplbAsyncConfig, type EplbState, type RankVars, buildEplbAsync } from '../spec/eplb-async-rebalance.ts';

const cfg = eplb.configs.check;
const V = (s: EplbState, r: number) => s.vars[r] as unknown as RankVars;
const ranksOf = (s: EplbState) => [...s.vars.keys()];
/** A fast timing configuration: the plan at the first check, Tc never raises (timing is all that matters). */
const timing = (delay: number, margin: number): EplbAsyncConfig => ({ ...cfg, computeTicks: 0, computeMayRaise: false, delay, margin });

/** The same system with extra `reachable` goals (each must be met by some reachable state). */
function withGoals(sys: System<EplbState>, goals: Record<string, (s: EplbState) => boolean>): System<EplbState> {
  return defineSystem<EplbState>({ ...sys.spec, reachable: { ...(sys.spec.reachable ?? {}), ...goals } });
}

describe('eplb-async-rebalance: every variant gets its expected verdict, with a shortest counterexample', () => {
  for (const v of eplb.variants) {
    it(`${v.name}: ${v.expect.verdict === 'holds' ? 'holds' : `violates ${v.expect.property}`}`, () => {
      const sys = v.build(v.config ?? cfg);
      const r = check(sys);
      expect(r.verdict).toBe(v.expect.verdict);
      if (v.expect.verdict === 'holds') return;
      expect(r.property).toBe(v.expect.property);
      const steps = r.trace!.steps;
      expect(steps.length).toBeGreaterThan(0);
      const last = steps[steps.length - 1].state as unknown as EplbState;
      if (r.propertyKind === 'invariant') {
        // The trace ends in the violation: the invariant is false in its last state, true in the one before.
        const inv = sys.spec.invariants![v.expect.property];
        expect(inv(last)).toBe(false);
        const before = (steps.length > 1 ? steps[steps.length - 2].state : r.trace!.initial) as unknown as EplbState;
        expect(inv(before)).toBe(true);
      } else if (r.propertyKind === 'deadlock') {
        expect(r.stuck!.length).toBeGreaterThan(0);
      }
      // Shortest: nothing is violated within one step fewer.
      const shorter = check(sys, { maxDepth: steps.length - 1 });
      expect(shorter.verdict).not.toBe('violated');
    });
  }
});

describe('eplb-async-rebalance: the margin bound (M >= D + 1) is exact', () => {
  for (const d of [0, 1, 2, 3]) {
    it(`D = ${d}: margin ${d + 1} holds, margin ${d} lets a rank learn begin_step after passing it`, () => {
      expect(check(buildEplbAsync(timing(d, d + 1))).verdict).toBe('holds');
      const late = check(buildEplbAsync(timing(d, d)));
      expect(late.verdict).toBe('violated');
      expect(late.property).toBe('begin-step-not-passed');
      const last = late.trace!.steps.at(-1)!.state as unknown as EplbState;
      expect(ranksOf(last).some((r) => V(last, r).learnedAt === (V(last, r).begin as number) + 1)).toBe(true);
    });
  }

  it('at the safe bound the worst case is reached: some rank learns begin_step exactly at begin_step (the bound is tight)', () => {
    const sys = withGoals(buildEplbAsync(timing(1, 2)), {
      'learns-at-begin': (s) => ranksOf(s).some((r) => V(s, r).learnedAt !== null && V(s, r).learnedAt === V(s, r).begin),
    });
    expect(check(sys).verdict).toBe('holds');
  });

  it("the PR's margin +2 holds at D = 1 and fails at D = 2", () => {
    expect(check(buildEplbAsync(timing(1, 2))).verdict).toBe('holds');
    expect(check(buildEplbAsync(timing(2, 2))).property).toBe('begin-step-not-passed');
  });
});

describe('eplb-async-rebalance: the fixed design is not vacuous', () => {
  it('the transfer completes on every rank, the ranks post at different ticks, and a raising Tc aborts the round everywhere', () => {
    const K = cfg.layers / cfg.layersPerChunk;
    const sys = withGoals(buildEplbAsync(cfg), {
      'transfer-completes': (s) => ranksOf(s).every((r) => V(s, r).phase === 'done' && V(s, r).chunkAt.length === K),
      'posts-at-different-ticks': (s) => V(s, 0).sendStep !== null && V(s, 1).sendStep !== null && V(s, 0).sendStep !== V(s, 1).sendStep,
      'abort-on-every-rank': (s) => ranksOf(s).every((r) => V(s, r).begin === 'skip') && ranksOf(s).some((r) => V(s, r).reported !== null),
      'weights-and-maps-new': (s) => s.threads.every((t) => t.forward === 'done') && ranksOf(s).every((r) => V(s, r).chunkAt.length === K),
    });
    expect(check(sys).verdict).toBe('holds');
  });

  it('the fixed design holds whatever the plan takes (C = 0, 2)', () => {
    for (const computeTicks of [0, 2]) expect(check(buildEplbAsync({ ...cfg, computeTicks })).verdict).toBe('holds');
  });

  it('fixed with a single chunk (all layers at once) holds', () => {
    expect(check(buildEplbAsync({ ...cfg, layersPerChunk: 2 })).verdict).toBe('holds');
  });
});

describe('eplb-async-rebalance: each property can fail', () => {
  const fails = (c: EplbAsyncConfig, bugs: Bugs, property: string) => {
    const r = check(buildEplbAsync(c, bugs));
    expect(r.verdict).toBe('violated');
    expect(r.property).toBe(property);
    return r;
  };

  it('same-plan-and-begin-step: a stale compute flag (missing plan), a stale sync flag (begin from a tensor never written)', () => {
    const a = fails(cfg, { computeFlagInThread: true }, 'same-plan-and-begin-step');
    const sa = a.trace!.steps.at(-1)!.state as unknown as EplbState;
    expect(ranksOf(sa).some((r) => V(sa, r).sendStep !== null && V(sa, r).plan === null)).toBe(true);
    const b = fails(cfg, { syncFlagInThread: true }, 'same-plan-and-begin-step');
    const sb = b.trace!.steps.at(-1)!.state as unknown as EplbState;
    expect(ranksOf(sb).some((r) => V(sb, r).begin === 'garbage')).toBe(true);
  });

  it('chunk-starts-together: a late rank whose forward pass does not wait for the GPU starts chunk 0 a tick after its peers', () => {
    const r = fails(timing(2, 2), { omit: ['begin-step-not-passed'], noSyncBeforeForward: true }, 'chunk-starts-together');
    const s = r.trace!.steps.at(-1)!.state as unknown as EplbState;
    // Chunk 0 started at two different ticks (the late rank issues it in its next generator step).
    const starts = new Set(ranksOf(s).map((q) => V(s, q).chunkAt[0] ?? 'none'));
    expect(starts.size).toBe(2);
  });

  it('begin-step-not-passed: the PR margin with one tick too much delay', () => {
    fails(timing(2, 2), {}, 'begin-step-not-passed');
  });

  it('deadlock: with the timing properties left out, the late rank blocks in the all-to-all, its peers in the P2P exchange', () => {
    const r = check(buildEplbAsync(timing(2, 2), { omit: ['begin-step-not-passed', 'chunk-starts-together'] }));
    expect(r.property).toBe('deadlock');
    const text = r.stuck!.join('\n');
    expect(text).toMatch(/blocked in all_to_all #\d+ \(gloo, group forward_pass/);
    expect(text).toMatch(/blocked in all_to_all #\d+ \(peers: rank \d has not issued/);
  });

  it('weights-and-map-switch-together: a dispatch map updated on a stream the forward pass does not wait for', () => {
    fails(cfg, { mapOnSideStream: true }, 'weights-and-map-switch-together');
  });

  it('no-spin-forever: Tc raises without try/finally; Ts raises without try/finally', () => {
    fails(cfg, { noTryFinally: true }, 'no-spin-forever');
    fails({ ...cfg, computeMayRaise: false }, { noTryFinally: true, syncMayRaise: true }, 'no-spin-forever');
  });

  it('raised-thread-reported: finally clears the flag but nothing reports the exception', () => {
    fails(cfg, { finallyWithoutReport: true }, 'raised-thread-reported');
  });

  it('forward-thread-never-raises: W = 1 stacks an empty list; a group rank used as a global rank', () => {
    fails({ ...cfg, tpSize: 1 }, { stackReceived: true }, 'forward-thread-never-raises');
    const c2: EplbAsyncConfig = { ...cfg, tpSize: 2, tpGroups: 2, computeTicks: 0, delay: 0, margin: 1, computeMayRaise: false };
    const r = fails(c2, { groupRankAsGlobal: true }, 'forward-thread-never-raises');
    expect(r.trace!.steps.at(-1)!.text).toMatch(/Global rank [01] is not part of group tp1/);
  });

  it('the PR code at W > 1 with one TP group does not stack an empty list, and its group ranks are global ranks', () => {
    expect(check(buildEplbAsync(cfg, { stackReceived: true, groupRankAsGlobal: true })).verdict).toBe('holds');
  });

  it('model-horizon: with no-spin-forever left out, the spinning rank runs out of unrolled ticks', () => {
    fails(cfg, { noTryFinally: true, omit: ['no-spin-forever'] }, 'model-horizon');
  });
});
