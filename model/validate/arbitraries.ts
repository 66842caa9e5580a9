/**
 * fast-check arbitraries for testing recorders and validators against a model: random model behaviours as
 * Traces, and drop masks that turn a full log into a partial one. Plus `firstDeparture`: where a trace of one
 * system stops being a behaviour of another (step by step, by labels).
 */
import fc from 'fast-check';
import { type Data, equalData } from '../data.ts';
import { replay } from '../explorer.ts';
import { walkPath } from '../simulate.ts';
import type { System } from '../system.ts';
import type { Trace } from '../trace.ts';

/** Random walks of a system (at most `maxLength` steps), as Traces. */
export function walkTraceArb<S>(system: System<S>, maxLength: number): fc.Arbitrary<Trace> {
  return fc
    .tuple(fc.nat(system.inits.length - 1), fc.array(fc.nat(0xffff), { maxLength, size: 'max' }))
    .map(([init, choices]) => replay(system.inits[init], walkPath(system, init, choices)));
}

/** Which steps a recorder logs: true = logged; never more than `maxGap` unlogged steps in a row. */
export function keepMaskArb(maxGap: number, maxLength = 1000): fc.Arbitrary<boolean[]> {
  return fc.array(fc.boolean(), { maxLength, size: 'max' }).map((bits) => {
    let run = 0;
    return bits.map((keep) => {
      if (!keep && run < maxGap) {
        run++;
        return false;
      }
      run = 0;
      return true;
    });
  });
}

/**
 * The first step of `trace` that `system` cannot take the same way: its label names no instance of the
 * system, the instance is not enabled, or it leads to a different state: compared whole (`compare` true, the
 * default), through a projection (a function: e.g. the protocol's own fields), or not at all (false).
 * `index` is 0-based; it equals the trace's length when the system replays the whole trace.
 */
export function firstDeparture<S>(
  system: System<S>,
  trace: Trace,
  compare: boolean | ((state: Data) => Data) = true,
): { index: number; reason: 'unknown-action' | 'no-instance' | 'disabled' | 'different-state' | 'none' } {
  let s = system.inits.find((i) => equalData(i as never, trace.initial)) ?? system.inits[0];
  for (let i = 0; i < trace.steps.length; i++) {
    const st = trace.steps[i];
    if (!system.instances.some((x) => x.action.name === st.action)) return { index: i, reason: 'unknown-action' };
    const inst = system.instances.find((x) => x.action.name === st.action && equalData(x.params, st.params));
    if (!inst) return { index: i, reason: 'no-instance' };
    if (inst.action.spec.guard && !inst.action.spec.guard(s, inst.params)) return { index: i, reason: 'disabled' };
    s = inst.action.spec.effect(s, inst.params);
    const differs =
      compare === true ? !equalData(s as never, st.state) : compare === false ? false : !equalData(compare(s as never), compare(st.state));
    if (differs) return { index: i, reason: 'different-state' };
  }
  return { index: trace.steps.length, reason: 'none' };
}
