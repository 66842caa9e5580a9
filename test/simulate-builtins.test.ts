/**
 * Simulation on the built-in protocols (whatever spec/index.ts registers when the tests run): every safety
 * violation a variant is expected to have (invariant, step property, deadlock) is found within SIM_RUNS walks
 * of SIM_DEPTH steps, with the explorer's property where the explorer finishes within a small budget; a
 * reachability failure is reported as an unreached goal (walks never prove unreachability); and on the
 * variants the explorer enumerates quickly, every state a walk reaches is in the reachable set.
 */
import { describe, expect, it } from 'vitest';
import { defineSystem } from '../model/index.ts';
import { check } from '../model/explorer.ts';
import { reachableStates, simulate, stateKey } from '../model/simulate.ts';
import { builtinProtocols } from '../spec/index.ts';

const SIM_RUNS = 2000;
const SIM_DEPTH = 200;
const SEED = 20240611;

/**
 * Every expected safety violation is found within SIM_RUNS walks, with swarm walks (the default) among the
 * uniform ones. One is found only most of the time: `eplb-staged-transfer:nonblocking-lock` needs a
 * one-statement window (the worker sets `ready` and releases the lock in two statements; main's non-blocking
 * acquire must land between them) *and* the rank that skipped the layer must run its next forward pass before
 * its peer clears `ready`. No uniform walk in 20,000 does both; about one walk in 800 of the swarm mix does
 * (main paused after `start_rebalance`, the worker after `publish_layer_0`, the other main somewhere in its
 * copy-out), so a given seed finds it within 2,000 walks about 9 times in 10 (38 of 40 seeds measured; this
 * test's seed needs 3,070). It is asked of 5 consecutive seeds, at least 4 of which must find it.
 */
const MOST_SEEDS = new Map([['eplb-staged-transfer:nonblocking-lock', { seeds: 5, atLeast: 4 }]]);

describe(`built-in protocols: simulation finds every expected safety violation within ${SIM_RUNS} walks`, () => {
  if (builtinProtocols.length === 0) it.skip('no built-in protocol is registered yet', () => {});
  for (const entry of builtinProtocols) {
    it(entry.name, async () => {
      const p = await entry.load();
      const report: string[] = [];
      for (const v of p.variants) {
        const sys = v.build(v.config ?? p.configs.check);
        const goals = Object.keys(sys.spec.reachable ?? {});
        // The explorer, on a small budget: where it finishes, simulation must agree with it (the expectations
        // themselves are the explorer's verdicts, checked by `interleave check`).
        const ex = check(sys, { maxStates: 2_000 });
        if (v.expect.verdict === 'holds') {
          const seen = new Set<string>();
          const sim = simulate(sys, { runs: 30, depth: 80, seed: SEED, onState: (s) => seen.add(stateKey(s)) });
          expect(sim.verdict, `${p.name}:${v.name}`).toBe('no-violation');
          if (ex.verdict === 'holds') {
            const { keys, complete } = reachableStates(sys, 2_000);
            if (complete) for (const k of seen) expect(keys.has(k), `${p.name}:${v.name}: a walk left the reachable set`).toBe(true);
          }
          continue;
        }
        const property = v.expect.property;
        if (ex.verdict === 'violated') expect(ex.property, `${p.name}:${v.name} (explorer)`).toBe(property);
        if (goals.includes(property)) {
          const sim = simulate(sys, { runs: 100, depth: SIM_DEPTH, seed: SEED });
          expect(sim.unreached, `${p.name}:${v.name}`).toContain(property);
          report.push(`${v.name}: '${property}' unreached in 100 walks (reachability: not for walks to decide)`);
          continue;
        }
        // A buggy variant may break several properties; a walk is asked about the one the explorer reports
        // (the other invariants are left out, so a walk that meets another violation first goes on).
        const inv = sys.spec.invariants?.[property];
        const stepProp = sys.spec.actionProperties?.[property];
        // A deadlock is asked about on its own too (a walk that breaks an invariant first goes on).
        const focused =
          property === 'deadlock'
            ? defineSystem({ ...sys.spec, invariants: {}, actionProperties: {} })
            : inv || stepProp
            ? defineSystem({
                ...sys.spec,
                invariants: inv ? { [property]: inv } : {},
                actionProperties: stepProp ? { [property]: stepProp } : {},
                // A walk that ends in a deadlock first is not an answer about this property: let it end there.
                terminal: () => true,
              })
            : sys;
        const most = MOST_SEEDS.get(`${p.name}:${v.name}`);
        if (most !== undefined) {
          const found: string[] = [];
          for (let k = 0; k < most.seeds; k++) {
            const r = simulate(focused, { runs: SIM_RUNS, depth: SIM_DEPTH, seed: SEED + k, shrinkBudget: 300 });
            found.push(r.verdict === 'violated' && r.property === property ? `${r.stats.runs}` : `not within ${r.stats.runs}`);
          }
          report.push(`${v.name}: ${property} with seeds ${SEED}..${SEED + most.seeds - 1} after ${found.join(', ')} walk(s)`);
          expect(found.filter((f) => !f.startsWith('not')).length, `${p.name}:${v.name}: ${found.join(', ')}`).toBeGreaterThanOrEqual(most.atLeast);
          continue;
        }
        const sim = simulate(focused, { runs: SIM_RUNS, depth: SIM_DEPTH, seed: SEED, shrinkBudget: 300 });
        report.push(
          `${v.name}: ${sim.property} after ${sim.stats.runs} walk(s), found at ${sim.foundLength} steps, shrunk to ${sim.trace?.steps.length}` +
            (ex.trace ? ` (explorer's shortest: ${ex.trace.steps.length})` : ` (explorer: ${ex.verdict} within its budget)`) +
            `, ${sim.stats.seconds.toFixed(2)} s` +
            (sim.swarmConfig ? ' (a swarm walk)' : ''),
        );
        expect(sim.verdict, `${p.name}:${v.name}: ${sim.message ?? ''}`).toBe('violated');
        expect(sim.property, `${p.name}:${v.name}`).toBe(property);
        expect(sim.stats.runs).toBeLessThanOrEqual(SIM_RUNS);
      }
      console.log(`${p.name}:\n  ${report.join('\n  ')}`);
    });
  }
});
