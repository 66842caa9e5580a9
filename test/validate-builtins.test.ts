/**
 * Trace validation on the built-in protocols (whatever spec/index.ts registers when the tests run): each
 * variant expected to hold accepts the traces of its own random walks (every step logged, and with steps
 * dropped), and each safety counterexample of a buggy variant, replayed against the fixed design built with
 * the same configuration, is rejected at the first step the fixed design cannot take.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { simulate } from '../model/simulate.ts';
import type { Data } from '../model/data.ts';
import type { Trace } from '../model/trace.ts';
import { firstDeparture, keepMaskArb, walkTraceArb } from '../model/validate/arbitraries.ts';
import { numbered, traceToEvents } from '../model/validate/export.ts';
import { validateEvents } from '../model/validate/validator.ts';
import { builtinProtocols } from '../spec/index.ts';

describe('built-in protocols: validation accepts their behaviours and rejects their bugs at the right event', () => {
  if (builtinProtocols.length === 0) it.skip('no built-in protocol is registered yet', () => {});
  for (const entry of builtinProtocols) {
    it(`${entry.name}: walks of the variants expected to hold are accepted`, async () => {
      const p = await entry.load();
      const speeds: string[] = [];
      for (const v of p.variants) {
        if (v.expect.verdict !== 'holds') continue;
        const sys = v.build(v.config ?? p.configs.check);
        let events = 0;
        let seconds = 0;
        fc.assert(
          fc.property(walkTraceArb(sys, 60), fc.constantFrom<'none' | 'changes'>('none', 'changes'), (trace, observe) => {
            const evs = numbered(traceToEvents(trace, { observe }));
            if (evs.length === 0) return;
            const r = validateEvents(sys, evs, { maxGap: 0 });
            expect(r.verdict, `${p.name}:${v.name}: ${r.rejection?.message}`).toBe('accepted');
            events += evs.length;
            seconds += r.stats.seconds;
          }),
          { numRuns: 60, seed: 44 },
        );
        let dEvents = 0;
        let dSeconds = 0;
        fc.assert(
          fc.property(walkTraceArb(sys, 25), keepMaskArb(1, 25), (trace, keep) => {
            const evs = numbered(traceToEvents(trace, { observe: 'changes', keep: (s) => keep[s.index - 1] ?? true }));
            if (evs.length === 0) return;
            const r = validateEvents(sys, evs, { maxGap: 1 });
            expect(r.verdict, `${p.name}:${v.name} (steps dropped): ${r.rejection?.message}`).toBe('accepted');
            dEvents += evs.length;
            dSeconds += r.stats.seconds;
          }),
          { numRuns: 20, seed: 45 },
        );
        speeds.push(
          `${v.name}: all logged ${Math.round(events / seconds).toLocaleString('en-US')} events/s; ` +
            `one step in two dropped (gap 1) ${Math.round(dEvents / dSeconds).toLocaleString('en-US')} events/s`,
        );
      }
      console.log(`${p.name} validation speed:\n  ${speeds.join('\n  ')}`);
    });

    it(`${entry.name}: each buggy variant's counterexample is rejected by the fixed design at its first departure`, async () => {
      const p = await entry.load();
      // Only a protocol whose variants are one design and its bugs (a variant named `fixed`) pairs them.
      const fixed = p.variants.find((v) => v.expect.verdict === 'holds' && v.name === 'fixed');
      if (!fixed) return;
      const report: string[] = [];
      for (const v of p.variants) {
        if (v.expect.verdict !== 'violated') continue;
        const config = v.config ?? p.configs.check;
        const buggy = v.build(config);
        if (Object.keys(buggy.spec.reachable ?? {}).includes(v.expect.property)) continue; // no counterexample trace
        // A counterexample from simulation (the explorer's would do as well; walks are cheaper on large models).
        const trace: Trace | undefined = simulate(buggy, { runs: 500, depth: 200, seed: 7, shrinkBudget: 300 }).trace;
        if (!trace || trace.steps.length === 0) continue;
        const fixedSys = fixed.build(config);
        // First by labels only (what a recorder of action names sees); where the fixed design takes every step by
        // name, by the protocol's own state too (a kit model's `vars` and `user`: its internal keys depend on the
        // program's layout, so whole states of two variants differ even where they behave alike).
        let dep = firstDeparture(fixedSys, trace, false);
        let observe: readonly string[] = [];
        const init = trace.initial as Record<string, unknown>;
        if (dep.reason === 'none' && init !== null && typeof init === 'object' && 'vars' in init) {
          const own = (st: Data) => ({ vars: (st as Record<string, Data>).vars, user: (st as Record<string, Data>).user ?? null });
          dep = firstDeparture(fixedSys, trace, own);
          observe = 'user' in init ? ['vars', 'user'] : ['vars'];
        }
        if (dep.reason === 'none') {
          report.push(`${v.name}: the fixed design takes every step of the counterexample (by name and in the protocol's own state)`);
          continue;
        }
        const evs = numbered(traceToEvents(trace, { observe, keep: (st) => st.index <= dep.index + 1 }));
        if (dep.reason === 'unknown-action' || dep.reason === 'no-instance') {
          expect(() => validateEvents(fixedSys, evs, { maxGap: 0 }), v.name).toThrow(new RegExp(`line ${dep.index + 1}: `));
          report.push(`${v.name}: line ${dep.index + 1} names a step the fixed design does not have (input error, exit 2)`);
          continue;
        }
        const r = validateEvents(fixedSys, evs, { maxGap: 0 });
        expect(r.verdict, v.name).toBe('rejected');
        expect(r.rejection!.index, `${p.name}:${v.name}: rejected at the wrong event (${r.rejection!.message})`).toBe(dep.index);
        report.push(
          `${v.name}: rejected at line ${r.rejection!.line} of ${trace.steps.length}${observe.length ? ` (observing ${observe.join(', ')})` : ''}: ${r.rejection!.reasons[0] ?? r.rejection!.message}`,
        );
      }
      console.log(`${p.name} counterexamples against ${fixed.name}:\n  ${report.join('\n  ')}`);
    });
  }
});
