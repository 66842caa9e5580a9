/**
 * Partial-order reduction: verdicts never change. Every variant of every built-in protocol and example gets
 * the same verdict and property with the reduction on and off (where a model declares no reads/writes the
 * reduction is off, and the test says so rather than comparing a run with itself); where it applies, it
 * explores fewer states; declarations are audited and malformed ones refused.
 */
import { describe, expect, it } from 'vitest';
import { type StepLabel, actionsOf, check, defineSystem, observing, stable, stepObserving } from '../model/index.ts';
import { AmpleChooser, type PorPlan, parsePath, planPor } from '../model/por.ts';
import type { Protocol } from '../model/registry.ts';
import { builtinProtocols } from '../spec/index.ts';
import barrier, { computeThenBarrier } from '../spec/examples/compute-then-barrier.ts';
import dining from '../spec/examples/dining-philosophers.ts';
import peterson from '../spec/examples/peterson.ts';
import twoPhase from '../spec/examples/two-phase.ts';

function sameVerdicts(p: Protocol, config?: unknown) {
  let reduced = 0;
  for (const v of p.variants) {
    const sys = v.build(config ?? v.config ?? p.configs.check);
    const where = `${p.name}:${v.name}`;
    if ('off' in planPor(sys)) continue; // the reduction cannot apply: both runs take the same path
    const on = check(sys, { liveness: false });
    const off = check(sys, { liveness: false, por: false });
    expect(on.verdict, where).toBe(off.verdict);
    expect(on.property, where).toBe(off.property);
    // Only a complete search bounds the space; a violation is found wherever the reduced order meets it (with
    // a stable property, not necessarily at the shortest depth), after more or fewer states.
    if (on.verdict === 'holds') expect(on.stats.states, where).toBeLessThanOrEqual(off.stats.states);
    if (on.trace) expect(on.trace.steps.length, `${where}: a counterexample`).toBeGreaterThan(0);
    reduced++;
  }
  return reduced;
}

describe('partial-order reduction leaves every verdict unchanged', () => {
  for (const entry of builtinProtocols) {
    it(`built-in ${entry.name}`, async () => {
      sameVerdicts(await entry.load());
    });
  }
  for (const p of [twoPhase, peterson, dining] as Protocol[]) {
    it(`example ${p.name}`, () => {
      sameVerdicts(p);
    });
  }
  it('example compute-then-barrier, at three sizes, where it applies to every variant', () => {
    expect(sameVerdicts(barrier)).toBe(3);
    expect(sameVerdicts(barrier, { ranks: 6, steps: 2 })).toBe(3);
    expect(sameVerdicts(barrier, { ranks: 2, steps: 5 })).toBe(3);
  });
});

describe('partial-order reduction on compute-then-barrier', () => {
  it('explores a small fraction of the states and says so', () => {
    const on = check(computeThenBarrier({ ranks: 5, steps: 3 }));
    const off = check(computeThenBarrier({ ranks: 5, steps: 3 }), { por: false });
    expect(off.stats.states).toBeGreaterThan(4 ** 5);
    expect(on.stats.states * 10).toBeLessThan(off.stats.states);
    expect(on.notes?.join(' ')).toMatch(/partial-order reduction: \d+ of \d+ states expanded with a reduced set/);
  });

  it('keeps the deadlock and the invariant violation, with real behaviours as traces', () => {
    const dead = check(computeThenBarrier({ ranks: 4, steps: 2 }, 'rank-short'));
    expect(dead).toMatchObject({ verdict: 'violated', property: 'deadlock' });
    expect(dead.trace!.steps.filter((s) => s.action === 'arrive')).toHaveLength(3);
    const early = check(computeThenBarrier({ ranks: 4, steps: 2 }, 'leaves-early'));
    expect(early).toMatchObject({ verdict: 'violated', property: 'no-rank-leaves-early' });
  });
});

describe('declarations', () => {
  type S = { readonly a: number; readonly b: number };
  const act = actionsOf<S>();
  const sys = (writesOfIncB: string[]) =>
    defineSystem<S>({
      name: 'two-counters',
      init: { a: 0, b: 0 },
      actions: [
        act('incA', { actor: 'x', guard: (s) => s.a < 2, reads: ['a'], writes: ['a'], effect: (s) => ({ ...s, a: s.a + 1 }) }),
        act('incB', { actor: 'y', guard: (s) => s.b < 2, reads: ['b'], writes: writesOfIncB, effect: (s) => ({ ...s, b: s.b + 1 }) }),
      ],
      invariants: { small: (s) => s.a + s.b <= 4 },
      observes: [],
      terminal: () => true,
    });

  it('an effect that changes an undeclared field is a model error naming the action and the field', () => {
    const r = check(sys(['a']));
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/action incB changed 'b', which its `writes` does not declare \(declared: a\)/);
    expect(check(sys(['a']), { por: false }).verdict).toBe('holds');
    expect(check(sys(['b'])).verdict).toBe('holds');
  });

  it('malformed paths are refused when the system is defined', () => {
    expect(() => sys(['b]'])).toThrow(/action incB `writes`: malformed field path 'b]'/);
    expect(() => parsePath('x[abc]')).toThrow(/index 'abc' is not a number/);
    expect(parsePath('streams[0]["p2p:1"].x')).toEqual(['streams', '0', 'p2p:1', 'x']);
  });

  it('says why the reduction is off when declarations are partial or properties unobserved', () => {
    const partial = defineSystem<S>({
      name: 'partial',
      init: { a: 0, b: 0 },
      actions: [
        act('incA', { reads: ['a'], writes: ['a'], effect: (s) => ({ ...s, a: Math.min(2, s.a + 1) }) }),
        act('incB', { effect: (s) => ({ ...s, b: Math.min(2, s.b + 1) }) }),
      ],
    });
    expect(check(partial).notes).toContain('partial-order reduction is off: action(s) incB declare no reads/writes');
    const unobserved = defineSystem<S>({
      name: 'unobserved',
      init: { a: 0, b: 0 },
      actions: [act('incA', { reads: ['a'], writes: ['a'], effect: (s) => ({ ...s, a: Math.min(2, s.a + 1) }) })],
      invariants: { ok: () => true },
    });
    expect(check(unobserved).notes?.[0]).toMatch(/does not declare `observes`/);
  });
});

describe('stable invariants', () => {
  // Workers each choose a value once (a write-once history field), then work. Agreement compares workers, so
  // stated over live fields its writers would all be visible; stated over the history, a disagreement stays.
  type W = { readonly pc: readonly number[]; readonly chose: readonly (number | null)[] };
  const act = actionsOf<W>();
  const workers = (n: number, opts: { rogue?: boolean; agreement: (fn: (s: W) => boolean) => (s: W) => boolean; undo?: boolean }) =>
    defineSystem<W>({
      name: 'choosers',
      init: { pc: Array(n).fill(0), chose: Array(n).fill(null) },
      actions: [
        act<{ i: number; v: number }>('choose', {
          params: { i: [...Array(n).keys()], v: [0, 1] },
          actor: ({ i }) => `worker ${i}`,
          guard: (s, { i, v }) => s.pc[i] === 0 && (v === 0 || (opts.rogue === true && i === n - 1)),
          reads: ({ i }) => [`pc[${i}]`],
          writes: ({ i }) => [`pc[${i}]`, `chose[${i}]`],
          effect: (s, { i, v }) => ({ pc: s.pc.with(i, 1), chose: s.chose.with(i, v) }),
        }),
        act<{ i: number }>('work', {
          params: { i: [...Array(n).keys()] },
          actor: ({ i }) => `worker ${i}`,
          guard: (s, { i }) => s.pc[i] === 1 || s.pc[i] === 2,
          reads: ({ i }) => [`pc[${i}]`, `chose[${i}]`],
          writes: ({ i }) => [`pc[${i}]`, `chose[${i}]`],
          // `undo` (a misdeclared model): the rogue's first work step forgets its choice, so the disagreement goes.
          effect: (s, { i }) => ({ pc: s.pc.with(i, s.pc[i] === 1 ? 2 : 3), chose: opts.undo && i === n - 1 ? s.chose.with(i, null) : s.chose }),
        }),
      ],
      invariants: {
        agree: opts.agreement((s) => s.chose.every((c) => c === null || s.chose.every((d) => d === null || d === c))),
      },
      terminal: (s) => s.pc.every((p) => p === 3),
    });
  const everyone = (n: number) => (fn: (s: W) => boolean) => observing([[...Array(n).keys()].map((i) => `chose[${i}]`)], fn);

  it('make no step visible, where the same property observed over every worker makes its writers visible', () => {
    const st = planPor(workers(4, { agreement: stable }));
    const ob = planPor(workers(4, { agreement: everyone(4) }));
    if (!('plan' in st) || !('plan' in ob)) throw new Error('the reduction should apply');
    expect([...st.plan.visible].every((v) => v === 0)).toBe(true);
    expect([...ob.plan.visible].filter((v) => v === 1).length).toBeGreaterThan(0);
  });

  it('keep every verdict, with far fewer states than the visible version', () => {
    for (const rogue of [false, true]) {
      const st = check(workers(5, { rogue, agreement: stable }));
      const ob = check(workers(5, { rogue, agreement: everyone(5) }));
      const off = check(workers(5, { rogue, agreement: stable }), { por: false });
      expect(st.verdict).toBe(rogue ? 'violated' : 'holds');
      expect([ob.verdict, off.verdict]).toEqual([st.verdict, st.verdict]);
      if (rogue) expect([st.property, ob.property, off.property]).toEqual(['agree', 'agree', 'agree']);
      else expect(st.stats.states * 5).toBeLessThan(ob.stats.states);
    }
  });

  // The declaration is trusted like `reads`: the audit runs where the search meets a violation (a misdeclared
  // property whose violations the reduced search never meets goes unnoticed; `--no-por` is the cross-check).
  it('a stable declaration that a step undoes, met at a violation, is a model error naming the property and the step', () => {
    const r = check(workers(3, { rogue: true, undo: true, agreement: stable }));
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/invariant 'agree' is declared stable .* but step work\(i=2\) makes it hold again/);
    expect(check(workers(3, { rogue: true, undo: true, agreement: stable }), { por: false }).verdict).toBe('violated');
  });
});

describe('step properties with a key per part', () => {
  // Counters that each step their own cell; the step property "a step never takes its cell past the limit" is
  // one part per counter (a step reads only its own cell), or, declared without a key, one flag every step
  // latches.
  type C = { readonly n: readonly number[] };
  const act = actionsOf<C>();
  const counters = (k: number, limit: number, keyed: boolean) =>
    defineSystem<C>({
      name: 'counters',
      init: { n: Array(k).fill(0) },
      actions: [
        act<{ i: number }>('inc', {
          params: { i: [...Array(k).keys()] },
          guard: (s, { i }) => s.n[i] < 3,
          reads: ({ i }) => [`n[${i}]`],
          writes: ({ i }) => [`n[${i}]`],
          effect: (s, { i }) => ({ n: s.n.with(i, s.n[i] + 1) }),
        }),
      ],
      actionProperties: {
        'at-most-limit': stepObserving(
          keyed
            ? { actions: ['inc'], key: (_a, p) => `counter ${p.i}`, reads: (_a, p) => [`n[${p.i}]`] }
            : { actions: ['inc'], reads: ['n'] },
          (_b: C, step: StepLabel, a: C) => a.n[step.params.i as number] <= limit,
        ),
      },
      terminal: () => true,
    });

  it('keyed: two counters\' steps stay independent; one flag makes every step depend on every other', () => {
    const keyed = planPor(counters(3, 3, true));
    const shared = planPor(counters(3, 3, false));
    if (!('plan' in keyed) || !('plan' in shared)) throw new Error('the reduction should apply');
    expect([...keyed.plan.dependents[0]]).toEqual([]);
    expect([...shared.plan.dependents[0]].sort()).toEqual([1, 2]);
    expect([...keyed.plan.visible].every((v) => v === 0)).toBe(true);
  });

  it('keyed: the same verdicts as the full search, in far fewer states', () => {
    for (const limit of [3, 2]) {
      const sys = counters(4, limit, true);
      const on = check(sys);
      const off = check(sys, { por: false });
      expect(on.verdict).toBe(off.verdict);
      expect(on.property).toBe(off.property);
      if (on.verdict === 'holds') expect(on.stats.states).toBeLessThan(off.stats.states / 10);
      else expect(on.property).toBe('at-most-limit');
    }
  });
});

describe('standalone conditions', () => {
  // A rendezvous `meet` waits on members 0 and 1. Member 0 is blocked until step `w2` (visible) runs; member 1
  // can step (`w1`). From `w1`, the reduction must name a false condition of `meet` and add its enablers.
  const plan = (standalone: boolean): PorPlan => {
    const i32 = (...xs: number[]) => Int32Array.from(xs);
    const member = (writers: Int32Array) => ({ holds: () => false, writers, standalone });
    return {
      // 0: w0 (disabled, enabled by w2), 1: w1, 2: meet (disabled), 3: w2 (visible)
      dependents: [i32(2), i32(2), i32(0, 1), i32(0)],
      enablers: [i32(3), i32(), i32(0, 1), i32()],
      visible: Uint8Array.from([0, 0, 0, 1]),
      writes: [[], [], [], []],
      conditions: [undefined, undefined, [member(i32(0)), member(i32(1))], undefined],
    };
  };
  const enabled = Uint8Array.from([0, 1, 0, 1]);

  it('let the reduction blame the member whose steps are in the set already', () => {
    // In order, member 0's condition is blamed: its enabler w0 is disabled and needs w2, which is visible.
    expect(new AmpleChooser(plan(false)).choose(null, enabled, [1, 3])).toBeUndefined();
    // Standalone, member 1's condition costs nothing more: w1 alone.
    expect(new AmpleChooser(plan(true)).choose(null, enabled, [1, 3])).toEqual([1]);
  });
});
