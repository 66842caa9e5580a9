/**
 * Model-based tests of a real implementation: the async-rebalance manager (spec/implementations/
 * eplb-rebalance.ts) under fast-check's scheduler (every thread switch point is a scheduled task) driven by
 * fast-check commands (forward passes; "the next plan computation raises"). Each run checks the manager's
 * observable behaviour (it applies only the plan computed for this rebalance; a thread that raises is
 * reported; the generator does not spin on a flag no thread will clear: bounded by SPIN_BUDGET forward
 * passes) and validates the events it recorded against the model of the same control logic
 * (spec/implementations/eplb-control-model.ts).
 *
 * fast-check must find the flag race (flag set inside the thread) and the stuck flag (no try/finally) in the
 * buggy versions and shrink them, and the fixed version must pass FIXED_RUNS schedules.
 */
import { fc, it as itProp } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { type EplbConfig, type EplbVariant, eplbControl } from '../spec/implementations/eplb-control-model.ts';
import { EplbRebalancer, type Plan } from '../spec/implementations/eplb-rebalance.ts';
import { SchedulerRuntime } from '../spec/implementations/runtime.ts';
import { numbered } from '../model/validate/export.ts';
import { validateEvents } from '../model/validate/validator.ts';
import type { RecordedEvent } from '../model/validate/export.ts';

const CFG: EplbConfig = { window: 2, layers: 2, cycles: 3 };
/** Forward passes the generator may spend polling a flag after every thread has ended. */
const SPIN_BUDGET = 20;
export const FIXED_RUNS = 2000;
/** The budget within which each bug must be found (measured: a handful of runs; see the logged numbers). */
const BUG_BUDGET = 500;

class TestDeps {
  failNext = false;
  failures = 0;
  constructor(private readonly rt: SchedulerRuntime) {}
  loadWindow(): number[] {
    return [5, 1, 3, 2];
  }
  async computePlan(load: readonly number[], cycle: number): Promise<Plan> {
    await this.rt.preempt('rank 0 compute', 'rebalance algorithm');
    if (this.failNext) {
      this.failNext = false;
      this.failures++;
      throw new Error(`init_by_eplb failed (cycle ${cycle})`);
    }
    const order = load.map((_, i) => i).sort((a, b) => load[b] - load[a]);
    return { cycle, placement: [...order, order[0]] };
  }
}

interface Real {
  readonly s: fc.Scheduler;
  readonly rt: SchedulerRuntime;
  readonly deps: TestDeps;
  readonly mgr: EplbRebalancer;
}
type Model = { passes: number };

/** The manager's observable safety: only this rebalance's plan is ever applied. */
function checkApplied(r: Real): void {
  for (const a of r.mgr.applied) {
    if (a.planCycle !== a.cycle) {
      throw new Error(
        `missing plan: layer ${a.layer} of rebalance ${a.cycle} was applied from ${a.planCycle === null ? 'a plan that was never computed (_rebalance_result is None)' : `the plan of rebalance ${a.planCycle}`}: the generator read _compute_ongoing before the compute thread set it`,
      );
    }
  }
}

class ForwardPass implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    await r.s.waitFor(r.mgr.forwardPass());
    m.passes++;
    checkApplied(r);
  }
  toString = () => 'forwardPass';
}

class FailNextCompute implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(_m: Model, r: Real): Promise<void> {
    r.deps.failNext = true;
  }
  toString = () => 'failNextCompute';
}

const commands = fc.commands([fc.constant(new ForwardPass()), fc.constant(new ForwardPass()), fc.constant(new FailNextCompute())], {
  maxCommands: 60,
  size: 'max',
});

function makeReal(variant: EplbVariant, s: fc.Scheduler): Real {
  const rt = new SchedulerRuntime(s);
  const deps = new TestDeps(rt);
  return { s, rt, deps, mgr: new EplbRebalancer(variant, CFG, rt, deps) };
}

/** One scheduled run of an implementation variant; throws (with the reason) when a property fails. */
async function runOnce(variant: EplbVariant, real: Real, cmds: Iterable<fc.AsyncCommand<Model, Real>>): Promise<void> {
  const { s, rt, deps, mgr } = real;
  await fc.asyncModelRun(() => ({ model: { passes: 0 }, real }), cmds);
  // Let every thread finish, then keep the forward loop going while it polls: it must get past the flag.
  await s.waitIdle();
  for (let i = 0; i < SPIN_BUDGET && mgr.phase === 'polling'; i++) {
    await s.waitFor(mgr.forwardPass());
    await s.waitIdle();
    checkApplied(real);
  }
  if (mgr.phase === 'polling' && !rt.alive('rank 0 compute')) {
    throw new Error(
      `stuck flag: the generator spun ${mgr.spins} forward passes on _compute_ongoing after the compute thread ended (${rt.logged.join('; ') || 'no exception logged'}): it spins forever`,
    );
  }
  if (variant !== 'no-finally' && mgr.reportedFailures.length !== deps.failures) {
    throw new Error(`unreported failure: ${deps.failures} computations raised, the generator reported ${mgr.reportedFailures.length}`);
  }
}

const FORWARD_ACTIONS = ['idleTick', 'park', 'startCompute', 'spin', 'readPlan', 'reportFailure', 'applyLayer'];

const events = (r: Real): RecordedEvent[] => r.rt.events.map((e) => ({ ...e }));

describe('async rebalance manager: model-based tests under fast-check schedules', () => {
  const fixedModel = eplbControl('fixed', CFG);
  let validated = 0;
  let eventsSeen = 0;
  let seconds = 0;
  let longest = 0;
  let withFailure = 0;
  let withPlan = 0;

  itProp.prop([fc.scheduler(), commands], { numRuns: FIXED_RUNS, seed: 1 })(
    `fixed: ${FIXED_RUNS} schedules, no missing plan, no stuck flag, failures reported, every run a behaviour of the fixed model`,
    async (s, cmds) => {
      const r = makeReal('fixed', s);
      await runOnce('fixed', r, cmds);
      const evs = numbered(events(r));
      if (evs.length === 0) return;
      const v = validateEvents(fixedModel, evs, { maxGap: 0 });
      if (v.verdict !== 'accepted') throw new Error(`the implementation left its model: ${v.rejection!.message}\n${v.rejection!.reasons.join('\n')}`);
      validated++;
      eventsSeen += evs.length;
      longest = Math.max(longest, evs.length);
      if (r.mgr.reportedFailures.length > 0) withFailure++;
      if (r.mgr.applied.length > 0) withPlan++;
      seconds += v.stats.seconds;
    },
  );

  it('(validation of the recorded runs: count and speed)', () => {
    expect(validated).toBeGreaterThan(FIXED_RUNS / 2);
    console.log(`eplb: ${validated} recorded runs validated against the fixed model, ${eventsSeen} events (longest run ${longest}), ${Math.round(eventsSeen / seconds).toLocaleString('en-US')} events/s; runs with a failure reported: ${withFailure}, with a plan applied: ${withPlan}`);
  });

  const bugs: [EplbVariant, RegExp, string][] = [
    ['flag-in-thread', /^missing plan: layer 0 of rebalance 1 was applied from a plan that was never computed/, 'readPlan'],
    ['no-finally', /^stuck flag: the generator spun \d+ forward passes on _compute_ongoing after the compute thread ended \(Exception in thread rank 0 compute: init_by_eplb failed/, 'spin'],
  ];
  for (const [variant, message, rejectedAt] of bugs) {
    it(`${variant}: fast-check finds the bug within ${BUG_BUDGET} runs and shrinks it; the fixed model rejects the run at '${rejectedAt}'`, async () => {
      // The last failing run is the shrunk counterexample (every later shrink attempt passed).
      let lastFailing: RecordedEvent[] = [];
      const details = await fc.check(
        fc.asyncProperty(fc.scheduler(), commands, async (s, cmds) => {
          const real = makeReal(variant, s);
          try {
            await runOnce(variant, real, cmds);
          } catch (e) {
            lastFailing = events(real);
            throw e;
          }
        }),
        { numRuns: BUG_BUDGET, seed: 2 },
      );
      expect(details.failed).toBe(true);
      const err = details.errorInstance as Error;
      expect(err.message).toMatch(message);
      const [sched, cmds] = details.counterexample!;
      const cmdList = String(cmds).split(',');
      console.log(
        `eplb ${variant}: found after ${details.numRuns} runs, ${details.numShrinks} shrinks; counterexample: ${cmdList.length} commands (${String(cmds)})\n  ${err.message}\n  schedule:\n${String(sched)}`,
      );
      expect(details.numRuns).toBeLessThanOrEqual(BUG_BUDGET);
      // Shrunk: the flag race needs the window's forward passes and one more; the stuck flag one failure too.
      expect(cmdList.length).toBeLessThanOrEqual(variant === 'flag-in-thread' ? 4 : 5);

      // Validate what the shrunk counterexample recorded.
      const evs = numbered(lastFailing);
      // The buggy implementation conforms to its own (buggy) model...
      const own = validateEvents(eplbControl(variant, CFG), evs, { maxGap: 0 });
      expect(own.verdict, own.rejection?.message).toBe('accepted');
      // ...and the fixed model rejects it at the event where the bug shows.
      // (The forward loop logs every step; the compute thread's steps may go unlogged.)
      const fixed = validateEvents(fixedModel, evs, { maxGap: 4, alwaysLogged: FORWARD_ACTIONS });
      expect(fixed.verdict).toBe('rejected');
      // With every step logged, the rejection comes no later (for the stuck flag: at the thread's exit, which
      // the fixed design only reaches after clearing the flag).
      expect(validateEvents(fixedModel, evs, { maxGap: 0 }).rejection!.line).toBeLessThanOrEqual(fixed.rejection!.line);
      expect(fixed.rejection!.event.action).toBe(rejectedAt);
      console.log(`  fixed model: ${fixed.rejection!.message}\n    ${fixed.rejection!.reasons.join('\n    ')}`);
    });
  }
});
