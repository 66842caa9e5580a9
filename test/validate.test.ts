/**
 * Trace validation against the models: a fixed model accepts the traces of its own behaviours (random walks,
 * every step logged or some dropped, with or without observed fields), and rejects a buggy variant's
 * counterexample at the event where the bug's step is one the fixed model cannot take.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { validateCommand } from '../model/cli/validate.ts';
import { check } from '../model/explorer.ts';
import type { Protocol } from '../model/registry.ts';
import { type System, actionsOf, defineSystem } from '../model/system.ts';
import type { Trace } from '../model/trace.ts';
import { firstDeparture, keepMaskArb, walkTraceArb } from '../model/validate/arbitraries.ts';
import { TraceInputError } from '../model/validate/events.ts';
import { eventsToJsonl, numbered, traceToEvents } from '../model/validate/export.ts';
import { readJsonl } from '../model/validate/jsonl.ts';
import { validateEvents } from '../model/validate/validator.ts';
import dining from '../spec/examples/dining-philosophers.ts';
import peterson from '../spec/examples/peterson.ts';
import { twoPhase } from '../spec/examples/two-phase.ts';

const variant = (p: Protocol, name: string, config?: unknown) => {
  const v = p.variants.find((x) => x.name === name)!;
  return v.build(config ?? v.config ?? p.configs.check);
};

const walkArb = walkTraceArb;
const keepArb = (gap: number) => keepMaskArb(gap, 400);

const fixedSystems: [string, () => System<any>, number][] = [
  ['peterson:correct', () => variant(peterson, 'correct'), 60],
  ['dining-philosophers:ordered (4)', () => variant(dining, 'ordered', 4), 60],
  ['two-phase (3 RMs)', () => twoPhase(3), 40],
];

const speeds: string[] = [];

describe('a fixed model accepts the traces of its own behaviours', () => {
  for (const [name, build, depth] of fixedSystems) {
    it(`${name}: 1,000 walks with every step logged (gap 0 and default gap), 1,000 with steps dropped`, () => {
      const sys = build();
      let events = 0;
      let seconds = 0;
      fc.assert(
        fc.property(walkArb(sys, depth), fc.constantFrom<'none' | 'changes' | 'state'>('none', 'changes', 'state'), (trace, observe) => {
          const evs = numbered(traceToEvents(trace, { observe }));
          if (evs.length === 0) return;
          const r0 = validateEvents(sys, evs, { maxGap: 0 });
          expect(r0.verdict).toBe('accepted');
          expect(r0.hiddenSteps).toBe(0);
          const r8 = validateEvents(sys, evs);
          expect(r8.verdict).toBe('accepted');
          events += evs.length;
          seconds += r0.stats.seconds;
        }),
        { numRuns: 1000, seed: 42 },
      );
      let dEvents = 0;
      let dSeconds = 0;
      fc.assert(
        fc.property(walkArb(sys, depth), keepArb(3), fc.boolean(), (trace, keep, observe) => {
          const evs = numbered(traceToEvents(trace, { keep: (s) => keep[s.index - 1] ?? true, observe: observe ? 'changes' : 'none' }));
          if (evs.length === 0) return;
          const r = validateEvents(sys, evs, { maxGap: 3 });
          expect(r.verdict, JSON.stringify(r.rejection?.message)).toBe('accepted');
          dEvents += evs.length;
          dSeconds += r.stats.seconds;
        }),
        { numRuns: 1000, seed: 43 },
      );
      speeds.push(
        `${name}: all logged ${Math.round(events / seconds).toLocaleString('en-US')} events/s; ` +
          `dropped (gap <= 3) ${Math.round(dEvents / dSeconds).toLocaleString('en-US')} events/s`,
      );
    });
  }

  it('(validation speed)', () => {
    console.log(`validation speed:\n  ${speeds.join('\n  ')}`);
  });
});

function expectRejectedAtDivergence(fixed: System<any>, buggyTrace: Trace, label: string) {
  const dep = firstDeparture(fixed, buggyTrace);
  const div = { index: dep.index, unknownAction: dep.reason === 'unknown-action' };
  expect(div.index, `${label}: the fixed model replays the whole counterexample`).toBeLessThan(buggyTrace.steps.length);
  const evs = numbered(traceToEvents(buggyTrace, { observe: 'state' }));
  if (div.unknownAction) {
    expect(() => validateEvents(fixed, evs, { maxGap: 0 })).toThrow(TraceInputError);
    expect(() => validateEvents(fixed, evs, { maxGap: 0 })).toThrow(new RegExp(`line ${div.index + 1}: unknown action`));
    return;
  }
  const exact = validateEvents(fixed, evs, { maxGap: 0 });
  expect(exact.verdict, label).toBe('rejected');
  expect(exact.rejection!.index, label).toBe(div.index);
  expect(exact.rejection!.line).toBe(div.index + 1);
  // With unlogged steps allowed the fixed model may explain a little more, never the whole violating run.
  const gapped = validateEvents(fixed, evs);
  expect(gapped.verdict, label).toBe('rejected');
  expect(gapped.rejection!.index).toBeGreaterThanOrEqual(div.index);
}

describe("a buggy variant's counterexample, replayed against the fixed variant, is rejected at the right event", () => {
  it("peterson: turn-before-flag's trace against correct", () => {
    const bug = check(variant(peterson, 'turn-before-flag'));
    expectRejectedAtDivergence(variant(peterson, 'correct'), bug.trace!, 'peterson');
  });

  it("dining philosophers: left-first's deadlock against ordered, with no observed fields: the event ordered cannot take", () => {
    const bug = check(variant(dining, 'left-first', 5));
    const fixed = variant(dining, 'ordered', 5);
    const evs = numbered(traceToEvents(bug.trace!));
    const r = validateEvents(fixed, evs, { maxGap: 0 });
    expect(r.verdict).toBe('rejected');
    // Philosopher 0 took fork 4 first in the ordered design, so philosopher 4 cannot take it: event 5.
    expect(r.rejection!.line).toBe(5);
    expect(r.rejection!.reasons[0]).toMatch(/takeFirst\(p=4\) is not enabled in any of the 1 possible state/);
    expectRejectedAtDivergence(fixed, bug.trace!, 'dining');
  });
});

describe('rejections say which event and which states', () => {
  type S = { readonly flag: boolean; readonly plan: number | null; readonly used: number | null };
  const act = actionsOf<S>();
  const sys = defineSystem<S>({
    name: 'flag',
    init: { flag: false, plan: null, used: null },
    actions: [
      act('start', { actor: 'main', guard: (s) => !s.flag && s.plan === null, effect: (s) => ({ ...s, flag: true }) }),
      act('compute', { actor: 'worker', guard: (s) => s.flag && s.plan === null, effect: (s) => ({ ...s, plan: 7 }) }),
      act('clear', { actor: 'worker', guard: (s) => s.flag && s.plan !== null, effect: (s) => ({ ...s, flag: false }) }),
      act('use', { actor: 'main', guard: (s) => !s.flag && s.plan !== null && s.used === null, effect: (s) => ({ ...s, used: s.plan }) }),
    ],
    terminal: (s) => s.used !== null,
  });

  it('names the first event the model cannot explain, the reasons and the possible states', () => {
    const evs = numbered([{ action: 'start' }, { action: 'use', observed: { used: null } }]);
    const r = validateEvents(sys, evs, { maxGap: 0 });
    expect(r.verdict).toBe('rejected');
    expect(r.rejection!.line).toBe(2);
    expect(r.rejection!.message).toMatch(/event 2 \(line 2\) use observing used=null is not a step the model can take with every step logged/);
    expect(r.rejection!.reasons).toEqual(['use is not enabled in any of the 1 possible state']);
    expect(r.rejection!.possibleStates).toEqual([{ flag: true, plan: null, used: null }]);
  });

  it('with gaps: explains the unlogged compute and clear, and then sees the observed value differ', () => {
    const evs = numbered([{ action: 'start' }, { action: 'use', observed: { used: 8 } }]);
    const r = validateEvents(sys, evs, { maxGap: 4 });
    expect(r.verdict).toBe('rejected');
    expect(r.rejection!.reasons[0]).toMatch(/use is enabled in 1 of the 4 states reachable with up to 4 unlogged steps, but the recorder saw used = 8 where the model has 7/);
    const ok = validateEvents(sys, numbered([{ action: 'start' }, { action: 'use', observed: { used: 7 } }]), { maxGap: 4, witness: true });
    expect(ok.verdict).toBe('accepted');
    expect(ok.hiddenSteps).toBe(2);
    expect(ok.witness!.trace.steps.map((s) => s.action)).toEqual(['start', 'compute', 'clear', 'use']);
    expect(ok.witness!.hidden).toEqual([false, true, true, false]);
  });

  it('a gap larger than --max-gap is rejected, and says how many unlogged steps it allowed', () => {
    const evs = numbered([{ action: 'use' }]);
    const r = validateEvents(sys, evs, { maxGap: 2 });
    expect(r.verdict).toBe('rejected');
    expect(r.rejection!.message).toMatch(/with up to 2 unlogged steps before it/);
    expect(validateEvents(sys, evs, { maxGap: 3 }).verdict).toBe('accepted');
  });

  it('alwaysLogged actions are never assumed unlogged', () => {
    const evs = numbered([{ action: 'use' }]);
    expect(validateEvents(sys, evs, { maxGap: 3, alwaysLogged: ['start'] }).verdict).toBe('rejected');
  });

  it('a state cap reports the search as truncated', () => {
    const big = twoPhase(5);
    const r = validateEvents(big, numbered([{ action: 'TMCommit' }]), { maxGap: 10, maxStates: 50 });
    expect(r.truncated).toBe(true);
    expect(r.verdict).toBe('rejected');
    expect(r.rejection!.message).toMatch(/search was cut at 50 states/);
  });
});

describe('interleave validate (command)', () => {
  async function run(...args: string[]) {
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    try {
      return { code: await validateCommand(args), out };
    } finally {
      spy.mockRestore();
    }
  }
  const dir = mkdtempSync(`${tmpdir()}/interleave-validate-`);
  const file = (name: string, text: string) => {
    const p = `${dir}/${name}`;
    writeFileSync(p, text);
    return p;
  };

  const bug = check(variant(peterson, 'turn-before-flag'));
  const buggy = file('pet.jsonl', eventsToJsonl(traceToEvents(bug.trace!)));

  it('exit 0 when accepted, naming the model variant', async () => {
    const r = await run(buggy, '--against', 'spec/examples/peterson.ts:turn-before-flag');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^accepted: the 8 events of .*pet.jsonl are a behaviour of peterson:turn-before-flag, every step logged/);
  });

  it('exit 1 when rejected: the line, the reasons, the possible states', async () => {
    const r = await run(buggy, '--against', 'spec/examples/peterson.ts:correct', '--max-gap', '0');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/rejected: .*pet.jsonl:\d+: event \d+ \(line \d+\) \[thread \d\] \w+\(t=\d\) is not a step the model can take with every step logged/);
    expect(r.out).toMatch(/ why:\n {4}- \w+\(t=\d\) is not enabled in any of the 1 possible state/);
    expect(r.out).toMatch(/model states possible just before it \(after line \d+\): 1\n {4}state 1: \{pc: /);
  });

  it('a protocol named without a variant means its one variant expected to hold; a header can name it', async () => {
    const withHeader = file('hdr.jsonl', eventsToJsonl(traceToEvents(bug.trace!), { protocol: 'spec/examples/peterson.ts' }));
    const r = await run(withHeader, '--json', '--max-gap', '0');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.against).toBe('peterson:correct');
    expect(j.rejection.line).toBeGreaterThan(1);
  });

  it('--witness prints the explanation with unlogged steps marked', async () => {
    const partial = file('partial.jsonl', eventsToJsonl(traceToEvents(bug.trace!, { keep: (s) => s.index !== 3 })));
    const r = await run(partial, '--against', 'spec/examples/peterson.ts:turn-before-flag', '--witness');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/explained with 1 unlogged step/);
    expect(r.out).toMatch(/\n {5}\*\d\. \[thread \d\] \w+\(t=\d\)\n/);
  });

  it('reads what it writes: eventsToJsonl then readJsonl gives the same events', () => {
    const evs = traceToEvents(bug.trace!, { observe: 'changes' });
    const back = readJsonl(eventsToJsonl(evs, { protocol: 'peterson' }));
    expect(back.header?.protocol).toBe('peterson');
    expect(back.events.map(({ line: _l, ...e }) => e)).toEqual(evs);
  });
});
