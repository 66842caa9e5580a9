/**
 * `interleave/vitest`: checkModel, variantOf and the matchers toHold / toViolate / toMeetExpectations, imported
 * the way a user's own test suite imports them (the package's `./vitest` export).
 */
import { describe, expect, it } from 'vitest';
import { actionsOf, defineProtocol, defineSystem } from 'interleave';
import { checkModel, explainResult, interleaveMatchers, variantOf } from 'interleave/vitest';
import peterson from '../spec/examples/peterson.ts';
import kv from '../docs/examples/kv-double-buffer.ts';

type S = { readonly n: number };
const act = actionsOf<S>();
const counter = (limit: number) =>
  defineSystem<S>({
    name: `counter(${limit})`,
    init: { n: 0 },
    actions: [act('inc', { actor: 'rank 0 main', guard: (s) => s.n < limit, effect: (s) => ({ n: s.n + 1 }) })],
    invariants: { belowThree: (s) => s.n < 3 },
    terminal: (s) => s.n === limit,
  });

/** The message a failing assertion throws. */
function failure(f: () => void): string {
  try {
    f();
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  throw new Error('the assertion did not fail');
}

describe('checkModel and variantOf', () => {
  it('checkModel returns the explorer result', () => {
    expect(checkModel(counter(2))).toMatchObject({ verdict: 'holds', stats: { states: 3 } });
    const r = checkModel(counter(5));
    expect(r).toMatchObject({ verdict: 'violated', property: 'belowThree', propertyKind: 'invariant' });
    expect(r.trace?.steps).toHaveLength(3);
    expect(checkModel(counter(5), { maxStates: 2 }).verdict).toBe('incomplete');
  });

  it('variantOf builds a variant with its own or a named configuration', () => {
    expect(variantOf(kv, 'reuse-after-wait').name).toBe('kv-double-buffer(3 chunks, reuse after-wait)');
    expect(variantOf(kv, 'reuse-after-wait', 'pr').name).toBe('kv-double-buffer(8 chunks, reuse after-wait)');
    expect(() => variantOf(kv, 'nope')).toThrow(/has no variant 'nope' \(variants: reuse-on-post, reuse-after-wait, blocking-send\)/);
    expect(() => variantOf(kv, 'reuse-on-post', 'huge')).toThrow(/has no configuration 'huge'/);
  });

  it('explainResult prints the counterexample as interleave check does', () => {
    const text = explainResult(checkModel(counter(5)), 'counter');
    expect(text).toMatch(/^counter: invariant 'belowThree' is violated after 3 steps/);
    expect(text).toMatch(/3\. \[rank 0 main\] inc\n\s+n: 2 -> 3/);
  });
});

describe('matchers', () => {
  it('toHold passes on a system that holds, and prints the counterexample when it does not', () => {
    expect(counter(2)).toHold();
    expect(variantOf(peterson, 'correct')).toHold();
    const msg = failure(() => expect(counter(5)).toHold());
    expect(msg).toMatch(/expected system 'counter\(5\)' to hold, but:/);
    expect(msg).toMatch(/invariant 'belowThree' is violated after 3 steps/);
    expect(msg).toMatch(/initial state: \{n: 0\}/);
    expect(msg).toMatch(/3\. \[rank 0 main\] inc/);
    expect(failure(() => expect(counter(2)).not.toHold())).toMatch(/expected system 'counter\(2\)' not to hold, but it holds \(3 states explored\)/);
  });

  it('toHold never passes on an incomplete search', () => {
    expect(failure(() => expect(counter(2)).toHold({ maxStates: 1 }))).toMatch(/the search is incomplete \(state limit 1 reached/);
  });

  it('toViolate checks the property that fails', () => {
    expect(counter(5)).toViolate('belowThree');
    expect(counter(5)).toViolate();
    expect(variantOf(peterson, 'turn-before-flag')).toViolate('mutualExclusion');
    expect(variantOf(kv, 'reuse-on-post')).toViolate('kvIntact');
    expect(counter(2)).not.toViolate();
    expect(failure(() => expect(counter(2)).toViolate('belowThree'))).toMatch(/expected system 'counter\(2\)' to violate 'belowThree', but:\nsystem 'counter\(2\)' holds \(3 states/);
    expect(failure(() => expect(counter(5)).toViolate('other'))).toMatch(/to violate 'other', but 'belowThree' fails instead:[\s\S]*3\. \[rank 0 main\] inc/);
    expect(failure(() => expect(counter(5)).not.toViolate('belowThree'))).toMatch(/not to violate 'belowThree', but it does:[\s\S]*n: 2 -> 3/);
  });

  it('accepts a result from checkModel as well as a system', () => {
    const r = checkModel(counter(5));
    expect(r).toViolate('belowThree');
    expect(checkModel(counter(2))).toHold();
  });

  it('reports a malformed model as a model error, not a pass', () => {
    const broken = { ...counter(2), spec: { ...counter(2).spec, invariants: { boom: () => { throw new Error('kaput'); } } } };
    expect(failure(() => expect(broken).toHold())).toMatch(/model error: invariant 'boom' threw: kaput/);
  });

  it('toMeetExpectations checks every variant of a protocol against its declared verdict', () => {
    expect(kv).toMeetExpectations();
    expect(kv).toMeetExpectations({ config: 'pr' });
    expect(peterson).toMeetExpectations();
    const wrong = defineProtocol<number>({
      name: 'counters',
      summary: 'two counters with wrong expectations',
      configs: { check: 0 },
      variants: [
        { name: 'short', summary: 'holds', expect: { verdict: 'violated', property: 'belowThree' }, build: () => counter(2) },
        { name: 'long', summary: 'fails', expect: { verdict: 'violated', property: 'belowThree' }, build: () => counter(5) },
      ],
    });
    const msg = failure(() => expect(wrong).toMeetExpectations());
    expect(msg).toMatch(/but 1 do not:\n- short: expected violated:belowThree, got holds\(3 states\)/);
    expect(msg).not.toMatch(/- long/);
  });

  it('rejects what is not a model with a clear error', () => {
    expect(() => expect(42).toHold()).toThrow(/toHold expects a system \(defineSystem\(\.\.\.\)\) or a check result/);
    expect(() => expect(counter(2)).toMeetExpectations()).toThrow(/toMeetExpectations expects a protocol/);
    expect(() => checkModel({} as never)).toThrow(/checkModel expects a system/);
  });

  it('exports the matchers for expect.extend in other set-ups', () => {
    expect(Object.keys(interleaveMatchers).sort()).toEqual(['toHold', 'toMeetExpectations', 'toViolate']);
  });
});
