/**
 * spec/eplb-staged-transfer.ts: every variant gets its expected verdict, every counterexample is non-empty and
 * ends in the violation it names, every property of the brief is refuted by some variant or test-only design
 * (none is vacuous), the planner gives valid placements for every configuration, and the fixed design holds
 * on the `large` configuration.
 */
import { describe, expect, it } from 'vitest';
import { faultOf } from '../model/gpu/index.ts';
import { type CheckResult, type System, check, defineSystem } from '../model/index.ts';
import eplb, {
  type Design,
  type EplbConfig,
  type Planner,
  VARIANTS,
  buildEplb,
  goodPlanner,
  initialPlacement,
  invert,
  movesOf,
  planProblem,
  rebalance,
} from '../spec/eplb-staged-transfer.ts';

const PROPERTIES = [
  'layer-weights-and-maps-change-together',
  'no-write-while-reading',
  'no-read-while-writing',
  'all-ranks-apply-layer-at-same-step',
  'plan-is-valid-placement',
  'cycle-spans-at-least-L-steps',
  'rebalance-never-wedged',
  'deadlock',
] as const;

const CHECK = eplb.configs.check;

// The kit registers queue items while it explores, so a trace's states are read with the system that made them.
const runs = new Map<string, { sys: System<any>; result: CheckResult }>();
const runOf = (name: string) => {
  let x = runs.get(name);
  if (!x) {
    const v = eplb.variants.find((y) => y.name === name)!;
    const sys = v.build(v.config ?? CHECK);
    x = { sys, result: check(sys) };
    runs.set(name, x);
  }
  return x;
};
const runDesign = (design: Design, cfg: EplbConfig = CHECK) => {
  const sys = buildEplb(cfg, design);
  return { sys, result: check(sys) };
};

/** Whether any action is enabled in state s of system sys. */
const anyEnabled = (sys: System<any>, s: any) => sys.instances.some((i) => !i.action.spec.guard || i.action.spec.guard(s, i.params));

/** The counterexample is non-empty and its last state is the violation it names. */
function expectEndsInViolation(sys: System<any>, r: CheckResult, property: string) {
  expect(r.verdict).toBe('violated');
  expect(r.property).toBe(property);
  expect(r.trace).toBeDefined();
  const steps = r.trace!.steps;
  expect(steps.length).toBeGreaterThan(0);
  const last = steps[steps.length - 1].state as any;
  const before = steps.length > 1 ? (steps[steps.length - 2].state as any) : r.trace!.initial;
  if (property === 'deadlock') {
    expect(anyEnabled(sys, last)).toBe(false);
    expect(r.stuck?.length).toBeGreaterThan(0);
  } else {
    const inv = sys.spec.invariants![property];
    expect(inv(last)).toBe(false);
    expect(inv(before)).toBe(true);
  }
  // Every step names who took it and says what happened.
  for (const st of steps) {
    expect(st.actor).toBeTruthy();
    expect(st.text).toBeTruthy();
  }
}

describe('eplb-staged-transfer', () => {
  it('is named as the brief asks and carries the check, large, pr and qwen3 configurations', () => {
    expect(eplb.name).toBe('eplb-staged-transfer');
    expect(eplb.configs.check).toMatchObject({ ranks: 2, layers: 2, logical: 3, redundant: 1 });
    expect(eplb.configs.large).toMatchObject({ ranks: 2, layers: 3 });
    expect(eplb.configs.pr).toMatchObject({ ranks: 32, layers: 58, logical: 256, redundant: 32, expertMB: 44, windowSteps: 1000, intervalSteps: 3000 });
    expect(eplb.configs.qwen3).toMatchObject({ layers: 48, logical: 128 });
    expect((eplb.configs.pr.logical + eplb.configs.pr.redundant) / eplb.configs.pr.ranks).toBe(9);
    expect(eplb.variants[0].name).toBe('fixed');
    expect(eplb.variants.map((v) => v.name)).toEqual(VARIANTS.map((v) => v.name));
  });

  it('every violated variant names a property of the model, and every property is refuted somewhere', () => {
    const sys = buildEplb(CHECK);
    const named = new Set([...Object.keys(sys.spec.invariants ?? {}), 'deadlock']);
    for (const p of PROPERTIES) expect(named.has(p)).toBe(true);
    const refuted = new Set(eplb.variants.flatMap((v) => (v.expect.verdict === 'violated' ? [v.expect.property] : [])));
    for (const p of refuted) expect(named.has(p)).toBe(true);
    // plan-is-valid-placement and cycle-spans-at-least-L-steps are refuted by test-only designs below.
    for (const p of PROPERTIES.filter((x) => x !== 'plan-is-valid-placement' && x !== 'cycle-spans-at-least-L-steps')) {
      expect(refuted.has(p)).toBe(true);
    }
  });

  for (const v of eplb.variants) {
    it(`${v.name}: ${v.expect.verdict === 'holds' ? 'holds' : `violates ${v.expect.property}`}`, () => {
      const { sys, result } = runOf(v.name);
      if (v.expect.verdict === 'holds') {
        expect(result.verdict, result.message).toBe('holds');
        expect(result.stats.states).toBeLessThan(100_000);
      } else {
        expectEndsInViolation(sys, result, v.expect.property);
        expect(result.stats.states).toBeLessThan(20_000);
      }
    });
  }

  describe('counterexamples read like the bug', () => {
    const lastText = (name: string) => {
      const steps = runOf(name).result.trace!.steps;
      return steps.map((s) => s.text).join('\n');
    };
    const fault = (name: string) => {
      const steps = runOf(name).result.trace!.steps;
      return faultOf(steps[steps.length - 1].state as never)!.join(': ');
    };

    it('stale-plan-maps: the forward routes with the stale map to the new weights', () => {
      expect(lastText('stale-plan-maps')).toMatch(/map rows of layer 0 <- the stale plan/);
      expect(lastText('stale-plan-maps')).toMatch(/weights hold L0:e2, the map routes L0:e0/);
    });

    it('noop-synchronize and ready-after-stream-wait: the copy-out reads a staging row still being received', () => {
      for (const name of ['noop-synchronize', 'ready-after-stream-wait']) {
        expect(fault(name)).toMatch(/copy on stream M reads buf0 while the batched exchange/);
      }
      expect(lastText('noop-synchronize')).toMatch(/backend\.synchronize\(\), a no-op/);
      expect(lastText('ready-after-stream-wait')).toMatch(/ordered only stream W/);
    });

    it('no-consumed-event and consumed-event-recorded-late: layer 1 is received into the row M still copies out', () => {
      for (const name of ['no-consumed-event', 'consumed-event-recorded-late']) {
        expect(fault(name)).toMatch(/receives buf0\) writes buf0 while copy on stream M/);
      }
      expect(lastText('consumed-event-recorded-late')).toMatch(/waits event consumed \(never recorded: a no-op\)[\s\S]*batch_isend_irecv\(irecv buf0 from rank 1\)/);
    });

    it('nonblocking-lock: one rank skips the layer because the worker still holds the lock', () => {
      expect(lastText('nonblocking-lock')).toMatch(/acquire\(blocking=False\) fails \(the worker still holds it\)/);
    });

    it('rank-local-guard and noop-agreement-one-rank: one rank in the all-reduce, its peer in the all-to-all', () => {
      for (const name of ['rank-local-guard', 'noop-agreement-one-rank', 'worker-raise-finally-clears']) {
        const stuck = runOf(name).result.stuck!.join('\n');
        expect(stuck).toMatch(/blocked in all_reduce #\d+ \(gloo, group world; peers: rank \d is in all_to_all/);
      }
    });

    it('worker-raise-unreported: the worker dies holding nothing, with rebalanced still set', () => {
      const r = runOf('worker-raise-unreported').result;
      expect(lastText('worker-raise-unreported')).toMatch(/raises \(transfer_layer\(0\) raises\)[\s\S]*buffer_lock\.release\(\)[\s\S]*the thread ends/);
      expect(r.trace!.steps.length).toBeLessThan(10);
    });
  });

  describe('no property is vacuous', () => {
    it('plan-is-valid-placement: a planner that leaves an expert without a replica is caught when it plans', () => {
      const dropColdest: Planner = (cfg, old) => {
        const p = goodPlanner(cfg, old);
        return { ...p, count: p.count.map((row) => row.map((x, e) => (e === 0 ? 0 : x))) };
      };
      const { sys, result } = runDesign({ planner: dropColdest });
      expectEndsInViolation(sys, result, 'plan-is-valid-placement');
      expect(result.trace!.steps.at(-1)!.action).toBe('compute_plan');
    });

    it('plan-is-valid-placement: maps that are not inverse are caught', () => {
      const skewed: Planner = (cfg, old) => {
        const p = goodPlanner(cfg, old);
        return { ...p, l2p: p.l2p.map((layer) => layer.map((ps, e) => (e === 1 ? [...ps].reverse().map((x) => (x + 1) % 4) : ps))) };
      };
      expect(planProblem(skewed(CHECK, initialPlacement(3, 1)), CHECK)).toMatch(/logical_to_physical|missing/);
      expect(runDesign({ planner: skewed }).result.property).toBe('plan-is-valid-placement');
    });

    it('cycle-spans-at-least-L-steps: moving two layers in one step (a second agreement round) ends the cycle early', () => {
      const { sys, result } = runDesign({ roundsPerStep: 2 });
      expectEndsInViolation(sys, result, 'cycle-spans-at-least-L-steps');
    });

    it('nonblocking-lock: past the divergence, the peers exchange layer 1 with a rank still on layer 0 and hang', () => {
      const sys = buildEplb(CHECK, VARIANTS.find((v) => v.name === 'nonblocking-lock')!.design);
      const { 'all-ranks-apply-layer-at-same-step': _, ...rest } = sys.spec.invariants!;
      const weaker = defineSystem({ ...sys.spec, invariants: rest });
      const r = check(weaker);
      expect(r.verdict).toBe('violated');
      expect(r.property).toBe('deadlock');
      expect(r.stuck!.join('\n')).toMatch(/the batched exchange with rank 1 \(receives buf0\) cannot complete: rank 1 has posted no matching batch/);
    });

    it('the kit checks that cover the staging buffer are on in the fixed design', () => {
      const sys = buildEplb(CHECK, VARIANTS[0].design);
      for (const p of ['no-read-while-writing', 'no-write-while-reading', 'no-write-while-writing', 'no-uninitialised-read']) {
        expect(Object.keys(sys.spec.invariants!)).toContain(p);
      }
    });
  });

  describe('the planner and the moves it implies', () => {
    it('gives a valid placement for every configuration', () => {
      for (const [name, cfg] of Object.entries(eplb.configs)) {
        const plan = goodPlanner(cfg, initialPlacement(cfg.logical, cfg.redundant));
        expect(planProblem(plan, cfg), name).toBeNull();
      }
    });

    it('check: layer 0 swaps a row between the ranks, layer 1 sends one row into the same staging row', () => {
      const old = initialPlacement(3, 1);
      expect(old).toEqual([0, 1, 2, 0]);
      expect(rebalance([10, 50, 20], old, 2)).toEqual([2, 1, 1, 0]);
      expect(rebalance([10, 20, 50], old, 2)).toEqual([2, 1, 2, 0]);
      const m0 = movesOf(old, [2, 1, 1, 0], 2);
      expect(m0[0].recvs).toEqual([{ slot: 0, from: 1, fromSlot: 0 }]);
      expect(m0[1].recvs).toEqual([{ slot: 0, from: 0, fromSlot: 1 }]);
      const m1 = movesOf(old, [2, 1, 2, 0], 2);
      expect(m1[0].recvs).toEqual([{ slot: 0, from: 1, fromSlot: 0 }]);
      expect(m1[1].sends).toEqual([{ to: 0, toSlot: 0, fromSlot: 0 }]);
    });

    it('every changed slot gets exactly one row, and every receive has its send (pr numbers)', () => {
      const cfg = eplb.configs.pr;
      const old = initialPlacement(cfg.logical, cfg.redundant);
      const plan = goodPlanner(cfg, old);
      const S = (cfg.logical + cfg.redundant) / cfg.ranks;
      for (const row of plan.p2l.slice(0, 4)) {
        const moves = movesOf(old, row, cfg.ranks);
        moves.forEach((m, r) => {
          expect(m.recvs.length + m.locals.length).toBe(m.changed.length);
          for (const x of m.recvs) {
            expect(moves[x.from].sends).toContainEqual({ to: r, toSlot: x.slot, fromSlot: x.fromSlot });
            expect(old[x.from * S + x.fromSlot]).toBe(row[r * S + x.slot]);
          }
        });
        expect(invert(row, cfg.logical).count.reduce((a, b) => a + b, 0)).toBe(cfg.logical + cfg.redundant);
      }
    });
  });

  it('the fixed design holds on the large configuration (3 layers)', () => {
    const r = check(buildEplb(eplb.configs.large, VARIANTS[0].design));
    expect(r.verdict, r.message).toBe('holds');
    expect(r.stats.states).toBeGreaterThan(runOf('fixed').result.stats.states);
  });
});
