import { describe, expect, it } from 'vitest';
import { actionsOf, check, defineSystem } from '../model/index.ts';
import { dining } from '../spec/examples/dining-philosophers.ts';
import peterson from '../spec/examples/peterson.ts';
import { knownStateCounts, twoPhase } from '../spec/examples/two-phase.ts';

describe('two-phase commit: exact distinct-state counts', () => {
  for (const n of [3, 4, 5, 6, 7]) {
    it(`${n} resource managers: ${knownStateCounts[n]} states`, () => {
      const r = check(twoPhase(n));
      expect(r.verdict).toBe('holds');
      expect(r.stats.states).toBe(knownStateCounts[n]);
    });
  }
});

describe("Peterson's mutex", () => {
  const variant = (name: string) => peterson.variants.find((v) => v.name === name)!.build(null);

  it('the correct algorithm holds', () => {
    expect(check(variant('correct')).verdict).toBe('holds');
  });

  it('the broken one is refuted with a shortest counterexample', () => {
    const r = check(variant('turn-before-flag'));
    expect(r.verdict).toBe('violated');
    expect(r.property).toBe('mutualExclusion');
    const len = r.trace!.steps.length;
    const last = r.trace!.steps[len - 1].state as { pc: string[] };
    expect(last.pc).toEqual(['critical', 'critical']);
    // Shortest: no violation within one step fewer.
    const shorter = check(variant('turn-before-flag'), { maxDepth: len - 1 });
    expect(shorter.verdict).toBe('incomplete');
  });
});

describe('dining philosophers', () => {
  for (const n of [3, 4, 5, 6]) {
    it(`${n} philosophers deadlock in exactly ${n} steps`, () => {
      const r = check(dining(n, false));
      expect(r.verdict).toBe('violated');
      expect(r.property).toBe('deadlock');
      expect(r.trace!.steps.length).toBe(n);
      expect(r.stuck).toHaveLength(n);
      expect(r.stuck![0]).toMatch(/waits for fork/);
    });
  }
  it('the ordered variant holds', () => {
    expect(check(dining(5, true)).verdict).toBe('holds');
  });
});

type Counter = { readonly x: number; readonly log: readonly string[] };
const act = actionsOf<Counter>();

describe('properties and limits', () => {
  const counter = (bound: number) =>
    defineSystem<Counter>({
      name: 'counter',
      init: { x: 0, log: [] },
      actions: [
        act('inc', { guard: (s) => s.x < bound, effect: (s) => ({ ...s, x: s.x + 1 }) }),
        act('reset', { guard: (s) => s.x === bound, effect: (s) => ({ ...s, x: 0 }) }),
      ],
      invariants: { belowFive: (s) => s.x < 5 },
      reachable: { reachesThree: (s) => s.x === 3 },
    });

  it('finds an invariant violation at the exact depth', () => {
    const r = check(counter(10));
    expect(r.verdict).toBe('violated');
    expect(r.property).toBe('belowFive');
    expect(r.trace!.steps.map((s) => s.action)).toEqual(['inc', 'inc', 'inc', 'inc', 'inc']);
    expect(r.trace!.steps[4].changes).toEqual([{ path: 'x', before: 4, after: 5 }]);
  });

  it('holds when the bound keeps x small, and the reachability goal is met', () => {
    const r = check(counter(4));
    expect(r.verdict).toBe('holds');
    expect(r.stats.states).toBe(5);
  });

  it('fails a reachability property that no state satisfies', () => {
    const r = check(counter(2));
    expect(r.verdict).toBe('violated');
    expect(r.property).toBe('reachesThree');
    expect(r.propertyKind).toBe('reachability');
  });

  it('checks action properties on every transition', () => {
    const sys = defineSystem<Counter>({
      name: 'monotone',
      init: { x: 0, log: [] },
      actions: [
        act('inc', { guard: (s) => s.x < 3, effect: (s) => ({ ...s, x: s.x + 1 }) }),
        act('reset', { guard: (s) => s.x === 3, effect: (s) => ({ ...s, x: 0 }) }),
      ],
      actionProperties: { neverDecreases: (a, _step, b) => b.x >= a.x },
    });
    const r = check(sys);
    expect(r.verdict).toBe('violated');
    expect(r.property).toBe('neverDecreases');
    expect(r.trace!.steps.at(-1)!.action).toBe('reset');
    expect(r.trace!.steps).toHaveLength(4);
  });

  it('stops with incomplete, never holds, at each limit', () => {
    const big = twoPhase(6);
    expect(check(big, { maxStates: 1000 }).verdict).toBe('incomplete');
    expect(check(big, { maxDepth: 3 }).verdict).toBe('incomplete');
    const tight = check(twoPhase(7), { maxMemoryMB: 1 });
    expect(tight.verdict).toBe('incomplete');
    expect(tight.reason).toMatch(/memory limit 1 MB reached \(resident \d+ MB\)/);
    const timed = check(twoPhase(8), { timeLimit: 0.2 });
    expect(timed.verdict).toBe('incomplete');
    expect(timed.reason).toMatch(/time limit/);
  });

  it('treats a state with no enabled action as a deadlock unless terminal', () => {
    const stuck = defineSystem<Counter>({
      name: 'stops',
      init: { x: 0, log: [] },
      actions: [act('inc', { guard: (s) => s.x < 2, effect: (s) => ({ ...s, x: s.x + 1 }) })],
    });
    expect(check(stuck).property).toBe('deadlock');
    const ends = defineSystem<Counter>({ ...stuck.spec, terminal: (s) => s.x === 2 });
    expect(check(ends).verdict).toBe('holds');
  });

  it('reports statistics', () => {
    const r = check(twoPhase(5));
    expect(r.stats.transitions).toBeGreaterThan(r.stats.states);
    expect(r.stats.depth).toBe(16);
    expect(r.stats.bytesPerState).toBeGreaterThan(0);
  });
});
