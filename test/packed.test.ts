/**
 * Layouts and packed systems: the fast path must agree with the generic explorer on everything a user reads
 * (verdict, property, counts, transitions, the shortest trace), and bad layouts, bad initial states and effects
 * that write values outside a field's domain must be reported naming the field and the action.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelError, check, defineLayout, definePackedSystem, eventually, field, packedActionsOf } from '../model/index.ts';
import type { CheckOptions, CheckResult } from '../model/explorer.ts';
import type { System } from '../model/system.ts';
import { twoPhasePacked } from '../spec/examples/two-phase-packed.ts';
import { twoPhase } from '../spec/examples/two-phase.ts';

/** What a reader of the result sees, without the timings. */
function visible(r: CheckResult) {
  return {
    verdict: r.verdict,
    property: r.property,
    reason: r.reason,
    states: r.stats.states,
    transitions: r.stats.transitions,
    depth: r.stats.depth,
    trace: r.trace?.steps.map((s) => [s.action, JSON.stringify(s.params), JSON.stringify(s.state)]),
    stuck: r.stuck,
  };
}

function bothWays<S>(sys: System<S>, opts: CheckOptions = {}) {
  const fast = check(sys, opts);
  const slow = check(sys, { ...opts, packed: false });
  return { fast, slow };
}

describe('defineLayout', () => {
  it('packs and unpacks every field kind, and refuses values outside the domain naming the field', () => {
    const layout = defineLayout({
      flag: field.bool(),
      step: field.int(-3, 40),
      phase: field.oneOf('idle', 'send', 'done'),
      ranks: field.array(5, field.int(0, 9)),
      seen: field.array(3, field.bool()),
    });
    const state = { flag: true, step: -2, phase: 'send', ranks: [0, 9, 3, 4, 1], seen: [true, false, true] } as const;
    const words = new Int32Array(layout.words);
    layout.pack(state, words, 0, 'test');
    expect(layout.unpack(words)).toEqual(state);
    expect(() => layout.pack({ ...state, step: 41 }, words, 0, 'init')).toThrow(/init: field step: 41 is not/);
    expect(() => layout.pack({ ...state, phase: 'sent' as 'send' }, words, 0, 'init')).toThrow(/field phase: "sent" is not/);
    expect(() => layout.pack({ ...state, ranks: [1, 2] }, words, 0, 'init')).toThrow(/field ranks: must be an array of 5/);
    expect(() => layout.pack({ ...state, extra: 1 } as typeof state, words, 0, 'init')).toThrow(/field 'extra' is not in the layout/);
  });

  it('round-trips random states of a random-ish layout through its words', () => {
    const layout = defineLayout({
      a: field.int(0, 1000),
      b: field.array(7, field.oneOf('x', 'y', 'z')),
      c: field.array(11, field.int(-5, 5)),
      d: field.bool(),
    });
    fc.assert(
      fc.property(
        fc.record({
          a: fc.integer({ min: 0, max: 1000 }),
          b: fc.array(fc.constantFrom('x' as const, 'y' as const, 'z' as const), { minLength: 7, maxLength: 7 }),
          c: fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 11, maxLength: 11 }),
          d: fc.boolean(),
        }),
        (s) => {
          const w = new Int32Array(layout.words);
          layout.pack(s, w, 0, 'prop');
          expect(layout.unpack(w)).toEqual(s);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses malformed fields with a message naming them', () => {
    expect(() => defineLayout({ n: field.int(3, 1) })).toThrow(ModelError);
    expect(() => defineLayout({ n: field.int(3, 1) })).toThrow(/field 'n': field.int\(min, max\) needs integers/);
    expect(() => defineLayout({ p: field.oneOf() })).toThrow(/field.oneOf\(...\) needs at least one name/);
    expect(() => defineLayout({ p: field.oneOf('a', 'a') })).toThrow(/lists a name twice/);
    expect(() => defineLayout({ length: field.bool() })).toThrow(/not a usable field name/);
    expect(() => defineLayout({ q: field.array(0, field.bool()) })).toThrow(/length of at least 1/);
    expect(() => defineLayout({ q: field.array(2, field.array(2, field.bool()) as never) })).toThrow(/arrays of arrays/);
    expect(() => defineLayout({ r: 5 as never })).toThrow(/not a field/);
    expect(() => defineLayout({})).toThrow(/at least one field/);
  });
});

describe('definePackedSystem', () => {
  const layout = defineLayout({ n: field.int(0, 3), mode: field.oneOf('a', 'b') });
  const pact = packedActionsOf<typeof layout.fields>();

  it('refuses an initial state outside the layout, naming the field', () => {
    expect(() =>
      definePackedSystem({ name: 'bad-init', layout, init: { n: 9, mode: 'a' }, actions: [pact('x', { effect: () => {} })] }),
    ).toThrow(/bad-init.*field n: 9 is not/);
  });

  it('reports an effect writing outside a field as an error naming the action, the field and the value', () => {
    const sys = definePackedSystem({
      name: 'overflow',
      layout,
      init: { n: 0, mode: 'a' },
      actions: [pact('inc', { guard: (s) => s.mode === 'a', effect: (d) => void (d.n = d.n + 1) })],
      terminal: () => true,
    });
    const { fast, slow } = bothWays(sys);
    for (const r of [fast, slow]) {
      expect(r.verdict).toBe('error');
      expect(r.message).toMatch(/inc/);
      expect(r.message).toMatch(/field n: 4 is not/);
    }
  });

  it('reports a throwing guard and a throwing invariant as errors naming them', () => {
    const throwing = definePackedSystem({
      name: 'throws',
      layout,
      init: { n: 0, mode: 'a' },
      actions: [
        pact('ok', { guard: (s) => s.n < 2, effect: (d) => void (d.n = d.n + 1) }),
        pact('boom', {
          guard: (s) => {
            if (s.n === 2) throw new Error('guard exploded');
            return false;
          },
          effect: () => {},
        }),
      ],
      terminal: () => true,
    });
    const { fast, slow } = bothWays(throwing);
    for (const r of [fast, slow]) {
      expect(r.verdict).toBe('error');
      expect(r.message).toMatch(/boom/);
      expect(r.message).toMatch(/guard exploded/);
    }
    const badInvariant = definePackedSystem({
      name: 'bad-invariant',
      layout,
      init: { n: 0, mode: 'a' },
      actions: [pact('ok', { guard: (s) => s.n < 3, effect: (d) => void (d.n = d.n + 1) })],
      invariants: {
        small: (s) => {
          if (s.n === 3) throw new Error('cannot judge 3');
          return true;
        },
      },
      terminal: () => true,
    });
    const both = bothWays(badInvariant);
    for (const r of [both.fast, both.slow]) {
      expect(r.verdict).toBe('error');
      expect(r.message).toMatch(/invariant 'small'/);
      expect(r.message).toMatch(/cannot judge 3/);
    }
  });

  it('finds a deadlock with the same trace and the model explanation on both paths', () => {
    const sys = definePackedSystem({
      name: 'stuck',
      layout,
      init: { n: 0, mode: 'a' },
      actions: [
        pact('inc', { guard: (s) => s.n < 3, effect: (d) => void (d.n = d.n + 1) }),
        pact('flip', { guard: (s) => s.mode === 'a' && s.n === 1, effect: (d) => void (d.mode = 'b') }),
        pact('reset', { guard: (s) => s.mode === 'b' && s.n < 3, effect: (d) => void (d.n = 0) }),
      ],
      terminal: (s) => s.mode === 'a',
      explainStuck: (s) => [`n is ${s.n} in mode ${s.mode}`],
    });
    const { fast, slow } = bothWays(sys);
    expect(fast.verdict).toBe('violated');
    expect(fast.property).toBe('deadlock');
    expect(fast.stuck).toEqual(['n is 3 in mode b']);
    expect(visible(fast)).toEqual(visible(slow));
  });
});

describe('the packed fast path agrees with the generic explorer', () => {
  it('two-phase 3..5 RMs: the known state counts, and the same transitions as the object model', () => {
    for (const [n, states] of [[3, 288], [4, 1568], [5, 8832]] as const) {
      const { fast, slow } = bothWays(twoPhasePacked(n));
      expect(fast.verdict).toBe('holds');
      expect(fast.stats.states).toBe(states);
      expect(visible(fast)).toEqual(visible(slow));
      const objectModel = check(twoPhase(n));
      expect(objectModel.stats.states).toBe(states);
      expect(objectModel.stats.transitions).toBe(fast.stats.transitions);
      expect(fast.notes?.some((note) => /packed states: \d word/.test(note))).toBe(true);
      expect(slow.notes?.some((note) => /packed states/.test(note)) ?? false).toBe(false);
    }
  });

  it('the commit-on-first-prepared bug: the same shortest counterexample', () => {
    const { fast, slow } = bothWays(twoPhasePacked(3, { commitOnFirstPrepared: true }));
    expect(fast.verdict).toBe('violated');
    expect(fast.property).toBe('TCConsistent');
    expect(visible(fast)).toEqual(visible(slow));
    const last = fast.trace!.steps.at(-1)!.state as { rm: readonly string[] };
    expect(last.rm).toContain('committed');
    expect(last.rm).toContain('aborted');
  });

  it('stops at maxStates and maxDepth the same way', () => {
    for (const opts of [{ maxStates: 500 }, { maxDepth: 4 }]) {
      const { fast, slow } = bothWays(twoPhasePacked(4), opts);
      expect(fast.verdict).toBe('incomplete');
      expect(visible(fast)).toEqual(visible(slow));
    }
  });

  it('reachability goals: reached on both, and an unreachable one reported the same way', () => {
    const layout = defineLayout({ x: field.int(0, 7), y: field.int(0, 7) });
    const pact = packedActionsOf<typeof layout.fields>();
    const sys = definePackedSystem({
      name: 'grid',
      layout,
      init: { x: 0, y: 0 },
      actions: [
        pact('right', { guard: (s) => s.x < 7, effect: (d) => void (d.x = d.x + 1) }),
        pact('up', { guard: (s) => s.y < 7, effect: (d) => void (d.y = d.y + 1) }),
      ],
      reachable: { corner: (s) => s.x === 3 && s.y === 2, offGrid: (s) => s.x === 7 && s.y > 7 },
      terminal: () => true,
    });
    const { fast, slow } = bothWays(sys);
    expect(visible(fast)).toEqual(visible(slow));
    expect(fast.verdict).toBe('violated');
    expect(fast.property).toBe('offGrid');
    expect(fast.message).toBe(slow.message);
    const onlyCorner = check(sys, { properties: ['corner'] });
    expect(onlyCorner.verdict).toBe('holds');
    expect(onlyCorner.stats.states).toBe(64);
  });

  it('random packed systems: identical results on both paths', () => {
    // A family of small counter machines whose guards and effects are drawn at random.
    const layout = defineLayout({ c: field.array(3, field.int(0, 4)), turn: field.int(0, 2) });
    const pact = packedActionsOf<typeof layout.fields>();
    fc.assert(
      fc.property(
        fc.array(fc.record({ who: fc.nat(2), limit: fc.integer({ min: 1, max: 4 }), wrap: fc.boolean(), pass: fc.boolean() }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 4 }),
        (rules, bad) => {
          const sys = definePackedSystem({
            name: 'random',
            layout,
            init: { c: [0, 0, 0], turn: 0 },
            actions: rules.map((r, i) =>
              pact(`r${i}`, {
                params: { k: [0, 1, 2] },
                guard: (s, { k }) => (r.pass || s.turn === r.who) && s.c.at(k) < r.limit,
                effect: (d, { k }) => {
                  d.c.set(k, r.wrap && d.c.at(k) + 1 === r.limit ? 0 : d.c.at(k) + 1);
                  d.turn = (d.turn + 1) % 3;
                },
              }),
            ),
            invariants: { bounded: (s) => s.c.count(bad) < 3 },
          });
          const { fast, slow } = bothWays(sys);
          expect(visible(fast)).toEqual(visible(slow));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('falls back to the generic engine for liveness, and says nothing about packed states there', () => {
    const layout = defineLayout({ n: field.int(0, 2) });
    const pact = packedActionsOf<typeof layout.fields>();
    const sys = definePackedSystem({
      name: 'cycle',
      layout,
      init: { n: 0 },
      actions: [pact('next', { effect: (d) => void (d.n = (d.n + 1) % 3), fairness: 'weak' })],
      liveness: { reachesTwo: eventually((s: { readonly n: number }) => s.n === 2) },
    });
    const r = check(sys);
    expect(r.verdict).toBe('holds');
    expect(r.stats.states).toBe(3);
    expect(r.notes?.some((note) => /packed states/.test(note)) ?? false).toBe(false);
    expect(r.notes).toContain('packed fast path not used (liveness needs the state graph): checked by the generic explorer');
    // Without the liveness property the fast path takes it again.
    expect(check(sys, { liveness: false }).notes).toContain('packed states: 1 word each');
  });
});
