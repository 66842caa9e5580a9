/**
 * Bad traces: each malformed input gets a one-line error naming the line and exit code 2; and a fuzzer
 * (random and mutated lines) finds no crash and no hang: always a verdict or a clear input error.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { main, registerCommand } from '../model/cli/main.ts';
import { validateCommand, validateHelp } from '../model/cli/validate.ts';
import { check } from '../model/explorer.ts';
import { TraceInputError } from '../model/validate/events.ts';
import { eventsToJsonl, traceToEvents } from '../model/validate/export.ts';
import { readJsonl } from '../model/validate/jsonl.ts';
import { validateEvents } from '../model/validate/validator.ts';
import { dining as diningSystem } from '../spec/examples/dining-philosophers.ts';
import peterson from '../spec/examples/peterson.ts';
import { twoPhase } from '../spec/examples/two-phase.ts';

registerCommand('validate', { run: validateCommand, help: validateHelp });

const dir = mkdtempSync(`${tmpdir()}/interleave-bad-`);
let n = 0;
const file = (text: string) => {
  const p = `${dir}/t${n++}.jsonl`;
  writeFileSync(p, text);
  return p;
};

async function cli(...args: string[]) {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((out += String(c)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((err += String(c)), true));
  try {
    return { code: await main(args), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

const good = [
  '{"action":"enter","params":{"t":0},"actor":"thread 0"}',
  '{"action":"raiseFlag","params":{"t":0}}',
  '{"action":"yieldTurn","params":{"t":0}}',
];
const PETERSON = ['--against', 'spec/examples/peterson.ts:correct'];

describe('bad input: a one-line error naming the line, exit 2', () => {
  const cases: [string, string, RegExp][] = [
    ['a line that is not JSON', `${good[0]}\n{"action": enter}\n${good[2]}\n`, /t\d+\.jsonl:line 2: not valid JSON \(/],
    ['a truncated file (last line cut)', `${good[0]}\n${good[1]}\n{"action":"yieldTurn","par`, /line 3: truncated: the file ends in the middle of an event/],
    ['an empty file', '', /line 1: empty trace: the file has no events/],
    ['a file of blank lines', '\n\n  \n', /line 1: empty trace: the file has no events/],
    ['a header and no events', '{"format":"interleave-events","version":1}\n', /line 2: empty trace: a header but no events/],
    ['an unknown action', `${good[0]}\n{"action":"enterr","params":{"t":1}}\n`, /line 2: unknown action "enterr" \(the model's actions: enter, raiseFlag, yieldTurn, acquire, release\); did you mean 'enter'\?/],
    ['an unknown parameter', `{"action":"enter","params":{"thread":0}}\n`, /line 1: action 'enter' has no parameter 'thread' \(its parameters: t\)/],
    ['a parameter value out of range', `{"action":"enter","params":{"t":2}}\n`, /line 1: action 'enter' has no step with t=2 \(t ranges over 0, 1\)/],
    ['an unknown actor', `{"action":"enter","actor":"thread 9"}\n`, /line 1: action 'enter' has no step by actor "thread 9"/],
    ['an observed field the state lacks', `{"action":"enter","params":{"t":0},"observed":{"pcs[0]":"flag"}}\n`, /line 1: observed field "pcs\[0\]" is not a field of the model state \(the model's state has: pc, flag, turn\)/],
    ['an event that is not an object', `${good[0]}\n[1,2]\n`, /line 2: an event must be a JSON object, got an array/],
    ['an event without an action', `{"params":{"t":0}}\n`, /line 1: the event has no "action"/],
    ['a misspelt field', `{"action":"enter","param":{"t":0}}\n`, /line 1: unknown field "param"/],
    ['a bad rank', `{"action":"enter","rank":-1}\n`, /line 1: "rank" must be a non-negative integer, got number -1/],
    ['a bad time', `{"action":"enter","time":"soon"}\n`, /line 1: "time" must be a finite number/],
    ['a malformed observed path', `{"action":"enter","observed":{"pc[0":1}}\n`, /line 1: observed field "pc\[0": unclosed '\['/],
    ['a header after events', `${good[0]}\n{"format":"interleave-events","version":1}\n`, /line 2: a header line .* may only come first/],
  ];
  for (const [what, text, pattern] of cases) {
    it(what, async () => {
      const r = await cli('validate', file(text), ...PETERSON);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(pattern);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.out).toBe('');
    });
  }

  it('an unknown rank (for a model with ranks)', () => {
    // A model whose instances carry ranks: dining philosophers' actors are not ranks, so build one.
    const evs = [{ line: 1, action: 'takeFirst', rank: 3 }];
    const sys = diningSystem(3, false);
    // No ranks in this model: a rank is then ignored, not an error.
    expect(() => validateEvents(sys, evs)).not.toThrow();
  });

  it('usage errors: no trace, no model, missing file, unknown format', async () => {
    expect((await cli('validate')).err).toMatch(/validate takes one trace file \(got none\)/);
    expect((await cli('validate', file(`${good[0]}\n`))).err).toMatch(/name the model with --against/);
    const missing = await cli('validate', `${dir}/absent.jsonl`, ...PETERSON);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/trace file '.*absent.jsonl' does not exist/);
    expect((await cli('validate', file(`${good[0]}\n`), ...PETERSON, '--format', 'pickle')).err).toMatch(/unknown trace format 'pickle' \(known: jsonl\)/);
    expect((await cli('validate', file(`${good[0]}\n`), '--against', 'spec/examples/peterson.ts:nope')).err).toMatch(/has no variant 'nope'/);
    expect((await cli('validate', file(`${good[0]}\n`), ...PETERSON, '--max-gap', 'x')).err).toMatch(/--max-gap expects an integer >= 0/);
    expect((await cli('validate', file(`${good[0]}\n`), ...PETERSON, '--logged', 'nope')).err).toMatch(/--logged names an unknown action 'nope'/);
  });

  it('CRLF line ends, a byte-order mark and blank lines are fine', async () => {
    const r = await cli('validate', file(`\ufeff${good[0]}\r\n\r\n${good[1]}\r\n`), ...PETERSON, '--max-gap', '0');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^accepted: the 2 events/);
  });

  it('ranks: an unknown rank is an input error in a model whose instances have ranks', async () => {
    const { actionsOf, defineSystem } = await import('../model/system.ts');
    const act = actionsOf<{ readonly step: readonly number[] }>();
    const sys = defineSystem<{ readonly step: readonly number[] }>({
      name: 'ranks',
      init: { step: [0, 0] },
      actions: [act('tick', { params: { rank: [0, 1] }, actor: ({ rank }) => `rank ${rank}`, effect: (s, { rank }) => ({ step: s.step.with(rank, s.step[rank] + 1) }) })],
    });
    expect(() => validateEvents(sys, [{ line: 4, action: 'tick', rank: 2 }])).toThrow(/line 4: unknown rank 2 \(the model's ranks: 0, 1\)/);
    const r = validateEvents(sys, [{ line: 1, action: 'tick', rank: 1, observed: { 'step[1]': 1, 'step.0': 0 } }]);
    expect(r.verdict).toBe('accepted');
  });
});

describe('fuzzing the reader and the validator: no crash, no hang', () => {
  const sys = peterson.variants.find((v) => v.name === 'correct')!.build(null);
  const bug = check(peterson.variants.find((v) => v.name === 'turn-before-flag')!.build(null));
  const valid = eventsToJsonl(traceToEvents(bug.trace!, { observe: 'changes' }), { protocol: 'peterson' });
  const validLines = valid.split('\n');

  /** Reads and validates; returns what happened, and fails the property on any other exception. */
  function outcome(text: string): string {
    let read: ReturnType<typeof readJsonl>;
    try {
      read = readJsonl(text, 'fuzz');
    } catch (e) {
      if (e instanceof TraceInputError) {
        expect(e.message).not.toMatch(/\n/);
        expect(e.message).toMatch(/^fuzz:line \d+: /);
        return 'input error';
      }
      throw e;
    }
    try {
      const r = validateEvents(sys, read.events, { maxGap: 3, maxStates: 2000 });
      expect(['accepted', 'rejected']).toContain(r.verdict);
      if (r.verdict === 'rejected') expect(r.rejection!.line).toBeGreaterThan(0);
      return r.verdict;
    } catch (e) {
      if (e instanceof TraceInputError) {
        expect(e.message).not.toMatch(/\n/);
        return 'input error';
      }
      throw e;
    }
  }

  it('random lines (strings, JSON values, event-like objects)', () => {
    const eventLike = fc.record(
      {
        action: fc.oneof(fc.constantFrom('enter', 'raiseFlag', 'yieldTurn', 'acquire', 'release'), fc.string()),
        params: fc.oneof(fc.record({ t: fc.oneof(fc.constantFrom(0, 1), fc.jsonValue()) }), fc.jsonValue()),
        actor: fc.oneof(fc.constantFrom('thread 0', 'thread 1'), fc.jsonValue()),
        rank: fc.jsonValue(),
        time: fc.oneof(fc.double(), fc.jsonValue()),
        observed: fc.oneof(fc.dictionary(fc.constantFrom('pc[0]', 'turn', 'flag.1', 'x', '[', 'pc["a"]'), fc.jsonValue()), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const line = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.jsonValue().map((v) => JSON.stringify(v) ?? ''),
      eventLike.map((v) => JSON.stringify(v)),
    );
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), fc.boolean(), (lines, finalNewline) => {
        const o = outcome(lines.join('\n') + (finalNewline ? '\n' : ''));
        seen.set(o, (seen.get(o) ?? 0) + 1);
      }),
      { numRuns: 3000, seed: 7 },
    );
    expect(seen.get('input error')).toBeGreaterThan(0);
  });

  it('mutated valid traces (characters dropped, inserted or replaced, lines swapped, duplicated, cut)', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom('"', '{', '}', ',', '\n', '1', 'null', ':')) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
      fc.record({ kind: fc.constant('dup' as const), a: fc.nat() }),
      fc.record({ kind: fc.constant('value' as const), a: fc.nat(), key: fc.constantFrom('action', 'params', 'actor', 'observed', 'time', 'rank'), v: fc.jsonValue() }),
    );
    const counts = new Map<string, number>();
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => {
        let text = valid;
        for (const m of muts) {
          if (m.kind === 'delete') {
            const at = m.at % (text.length + 1);
            text = text.slice(0, at) + text.slice(at + m.len);
          } else if (m.kind === 'insert') {
            const at = m.at % (text.length + 1);
            text = text.slice(0, at) + m.text + text.slice(at);
          } else if (m.kind === 'cut') {
            text = text.slice(0, m.at % (text.length + 1));
          } else {
            const lines = text.split('\n');
            if (m.kind === 'swap') {
              const a = m.a % lines.length;
              const b = m.b % lines.length;
              [lines[a], lines[b]] = [lines[b], lines[a]];
            } else if (m.kind === 'dup') {
              lines.splice(m.a % lines.length, 0, lines[m.a % lines.length]);
            } else {
              const a = m.a % lines.length;
              try {
                const o = JSON.parse(lines[a]);
                if (o && typeof o === 'object') {
                  o[m.key] = m.v;
                  lines[a] = JSON.stringify(o);
                }
              } catch {
                // leave the line as it is
              }
            }
            text = lines.join('\n');
          }
        }
        const o = outcome(text);
        counts.set(o, (counts.get(o) ?? 0) + 1);
      }),
      { numRuns: 3000, seed: 8 },
    );
    // The mutations reach every outcome: errors, rejections, and (when the mutation was harmless) acceptance.
    expect(counts.get('input error')).toBeGreaterThan(0);
    expect(counts.get('rejected')).toBeGreaterThan(0);
    expect(validLines.length).toBeGreaterThan(2);
  });

  it('a huge gap budget on a wide model stays bounded by --max-states', () => {
    const wide = twoPhase(7);
    const t0 = performance.now();
    const r = validateEvents(wide, [{ line: 1, action: 'TMCommit', observed: { tm: 'aborted' } }], { maxGap: 1000, maxStates: 5_000 });
    expect(r.verdict).toBe('rejected');
    expect(r.truncated).toBe(true);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });
});
