import { describe, expect, it } from 'vitest';
import { type Symmetry, actionsOf, check, defineSystem } from '../model/index.ts';
import { type TwoPhaseState, knownStateCounts, twoPhase } from '../spec/examples/two-phase.ts';

/** Resource managers are interchangeable in two-phase commit: every RM-indexed array moves together. */
const rmSymmetry = (n: number, opts: { forget?: boolean } = {}): Symmetry<TwoPhaseState> => ({
  size: n,
  permute: (s, perm) => {
    const move = <T>(xs: readonly T[]) => {
      const out = new Array<T>(xs.length);
      xs.forEach((x, i) => {
        out[perm[i]] = x;
      });
      return out;
    };
    return { ...s, rm: move(s.rm), tmPrepared: move(s.tmPrepared), msgPrepared: opts.forget ? s.msgPrepared : move(s.msgPrepared) };
  },
  signature: (s, r) => [s.rm[r], s.tmPrepared[r], s.msgPrepared[r]],
});

const withSymmetry = (n: number, extra: object = {}) => defineSystem<TwoPhaseState>({ ...twoPhase(n).spec, symmetry: rmSymmetry(n), ...extra });

describe('symmetry reduction', () => {
  it('keeps the verdict and shrinks two-phase commit', () => {
    for (const n of [3, 4, 5, 6]) {
      const full = check(twoPhase(n));
      const reduced = check(withSymmetry(n));
      expect(full.stats.states).toBe(knownStateCounts[n]);
      expect(reduced.verdict).toBe('holds');
      expect(reduced.stats.states).toBeLessThan(full.stats.states);
      expect(reduced.notes).toEqual([`symmetry reduction over ${n} interchangeable ranks`]);
    }
  });

  it('reaches the orbit count exactly: one representative per multiset of RM situations', () => {
    const full = check(twoPhase(3));
    expect(full.stats.states).toBe(288);
    const reduced = check(withSymmetry(3));
    // Every representative is a distinct orbit, and every orbit of the full space is represented.
    expect(reduced.stats.states).toBe(countOrbits(3));
  });

  it('refuses an invariant that names a specific rank', () => {
    const r = check(withSymmetry(3, { invariants: { rm0NeverAborts: (s: TwoPhaseState) => s.rm[0] !== 'aborted' } }));
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/invariant 'rm0NeverAborts' is not symmetric/);
  });

  it('refuses a permute that forgets a rank-indexed field', () => {
    const bad = defineSystem<TwoPhaseState>({ ...twoPhase(3).spec, symmetry: rmSymmetry(3, { forget: true }) });
    const r = check(bad);
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/do not commute with renaming ranks/);
  });

  it('rebuilds a real counterexample from representatives', () => {
    // A broken TM that commits once any one RM has prepared.
    const act = actionsOf<TwoPhaseState>();
    const base = twoPhase(4).spec;
    const broken = defineSystem<TwoPhaseState>({
      ...base,
      actions: [
        ...base.actions.filter((a) => a.name !== 'TMCommit'),
        act('TMCommitEarly', { actor: 'tm', guard: (s) => s.tm === 'init' && s.tmPrepared.some(Boolean), effect: (s) => ({ ...s, tm: 'committed', msgCommit: true }) }),
      ],
      symmetry: rmSymmetry(4),
    });
    const reduced = check(broken);
    const plain = check(defineSystem<TwoPhaseState>({ ...broken.spec, symmetry: undefined }));
    expect(reduced.verdict).toBe('violated');
    expect(reduced.property).toBe('TCConsistent');
    expect(reduced.trace!.steps.length).toBe(plain.trace!.steps.length);
    // The rebuilt trace is a real behaviour: replay it step by step with guards.
    let s = broken.inits[0];
    for (const step of reduced.trace!.steps) {
      const inst = broken.instances.find((i) => i.action.name === step.action && JSON.stringify(i.params) === JSON.stringify(step.params))!;
      expect(!inst.action.spec.guard || inst.action.spec.guard(s, inst.params)).toBe(true);
      s = inst.action.spec.effect(s, inst.params);
      expect(s).toEqual(step.state);
    }
  });

  it('can be switched off', () => {
    expect(check(withSymmetry(4), { symmetry: false }).stats.states).toBe(knownStateCounts[4]);
  });
});

/** Orbits of the full two-phase state space under RM renaming, counted by brute force over the full graph. */
function countOrbits(n: number): number {
  const seen = new Set<string>();
  const key = (s: TwoPhaseState) => {
    const per = s.rm.map((r, i) => `${r}/${s.tmPrepared[i]}/${s.msgPrepared[i]}`).sort();
    return JSON.stringify([per, s.tm, s.msgCommit, s.msgAbort]);
  };
  const sys = twoPhase(n);
  const stack = [...sys.inits];
  const visited = new Set<string>();
  while (stack.length > 0) {
    const s = stack.pop()!;
    const k = JSON.stringify(s);
    if (visited.has(k)) continue;
    visited.add(k);
    seen.add(key(s));
    for (const i of sys.instances) {
      if (i.action.spec.guard && !i.action.spec.guard(s, i.params)) continue;
      stack.push(i.action.spec.effect(s, i.params));
    }
  }
  return seen.size;
}
