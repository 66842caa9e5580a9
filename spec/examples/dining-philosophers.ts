/**
 * Dining philosophers: each takes the left fork, then the right one, eats, and puts both down. With every
 * philosopher holding a left fork nobody can go on: a deadlock the checker finds in exactly N steps.
 * The `ordered` variant breaks the cycle (the last philosopher takes the right fork first) and holds.
 */
import { actionsOf, defineProtocol, defineSystem } from '../../model/index.ts';

type Phase = 'thinking' | 'hasLeft' | 'hasFirst' | 'eating';

export interface DiningState {
  readonly phil: readonly Phase[];
  /** fork[i] is held by philosopher fork[i], or null. Fork i lies between philosopher i and i+1. */
  readonly fork: readonly (number | null)[];
}

const act = actionsOf<DiningState>();

export function dining(n: number, ordered: boolean) {
  const P = Array.from({ length: n }, (_, i) => i);
  // Philosopher p's left fork is p, right fork is (p + n - 1) % n; the ordered variant swaps them for p = 0.
  const first = (p: number) => (ordered && p === 0 ? (p + n - 1) % n : p);
  const second = (p: number) => (ordered && p === 0 ? p : (p + n - 1) % n);
  const who = ({ p }: { p: number }) => `philosopher ${p}`;
  return defineSystem<DiningState>({
    name: `dining(${n}${ordered ? ', ordered' : ''})`,
    init: { phil: P.map(() => 'thinking'), fork: P.map(() => null) },
    actions: [
      act('takeFirst', {
        params: { p: P },
        actor: who,
        guard: (s, { p }) => s.phil[p] === 'thinking' && s.fork[first(p)] === null,
        effect: (s, { p }) => ({ phil: s.phil.with(p, 'hasFirst'), fork: s.fork.with(first(p), p) }),
        describe: ({ p }) => `philosopher ${p} takes fork ${first(p)}`,
      }),
      act('takeSecond', {
        params: { p: P },
        actor: who,
        guard: (s, { p }) => s.phil[p] === 'hasFirst' && s.fork[second(p)] === null,
        effect: (s, { p }) => ({ phil: s.phil.with(p, 'eating'), fork: s.fork.with(second(p), p) }),
        describe: ({ p }) => `philosopher ${p} takes fork ${second(p)} and eats`,
      }),
      act('putDown', {
        params: { p: P },
        actor: who,
        guard: (s, { p }) => s.phil[p] === 'eating',
        effect: (s, { p }) => ({
          phil: s.phil.with(p, 'thinking'),
          fork: s.fork.with(first(p), null).with(second(p), null),
        }),
      }),
    ],
    invariants: {
      forksHeldByEaters: (s) => s.phil.every((ph, p) => ph !== 'eating' || (s.fork[first(p)] === p && s.fork[second(p)] === p)),
    },
    explainStuck: (s) =>
      s.phil.map((ph, p) => (ph === 'hasFirst' ? `philosopher ${p} holds fork ${first(p)} and waits for fork ${second(p)} (held by philosopher ${s.fork[second(p)]})` : `philosopher ${p} is ${ph}`)),
  });
}

export default defineProtocol<number>({
  name: 'dining-philosophers',
  summary: 'N philosophers, N forks',
  configs: { check: 5, large: 8 },
  variants: [
    { name: 'left-first', summary: 'everyone takes the left fork first: deadlock', expect: { verdict: 'violated', property: 'deadlock' }, build: (n) => dining(n, false) },
    { name: 'ordered', summary: 'philosopher 0 takes the right fork first: no cycle, no deadlock', expect: { verdict: 'holds' }, build: (n) => dining(n, true) },
  ],
});
