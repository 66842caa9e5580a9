/**
 * Peterson's mutual exclusion for two threads, and a broken variant that sets `turn` before raising its own
 * flag (a reordering the algorithm cannot survive). The checker proves the first and refutes the second.
 */
import { actionsOf, defineProtocol, defineSystem } from '../../model/index.ts';

type Pc = 'idle' | 'flag' | 'turn' | 'wait' | 'critical';

export interface PetersonState {
  readonly pc: readonly [Pc, Pc];
  readonly flag: readonly [boolean, boolean];
  readonly turn: 0 | 1;
}

const act = actionsOf<PetersonState>();
const threads = [0, 1] as const;
const other = (i: 0 | 1) => (1 - i) as 0 | 1;
const at = (s: PetersonState, i: 0 | 1, pc: Pc) => s.pc[i] === pc;
const setPc = (s: PetersonState, i: 0 | 1, pc: Pc) => s.pc.with(i, pc) as unknown as readonly [Pc, Pc];

function peterson(broken: boolean) {
  // Correct: raise own flag, then yield the turn. Broken: yield the turn first, then raise the flag.
  const first: Pc = broken ? 'turn' : 'flag';
  return defineSystem<PetersonState>({
    name: broken ? 'peterson-broken' : 'peterson',
    init: { pc: ['idle', 'idle'], flag: [false, false], turn: 0 },
    actions: [
      act('enter', {
        params: { t: threads },
        actor: ({ t }) => `thread ${t}`,
        guard: (s, { t }) => at(s, t, 'idle'),
        effect: (s, { t }) => ({ ...s, pc: setPc(s, t, first) }),
      }),
      act('raiseFlag', {
        params: { t: threads },
        actor: ({ t }) => `thread ${t}`,
        guard: (s, { t }) => at(s, t, 'flag'),
        effect: (s, { t }) => ({ ...s, flag: s.flag.with(t, true) as [boolean, boolean], pc: setPc(s, t, broken ? 'wait' : 'turn') }),
      }),
      act('yieldTurn', {
        params: { t: threads },
        actor: ({ t }) => `thread ${t}`,
        guard: (s, { t }) => at(s, t, 'turn'),
        effect: (s, { t }) => ({ ...s, turn: other(t), pc: setPc(s, t, broken ? 'flag' : 'wait') }),
      }),
      act('acquire', {
        params: { t: threads },
        actor: ({ t }) => `thread ${t}`,
        guard: (s, { t }) => at(s, t, 'wait') && (!s.flag[other(t)] || s.turn === t),
        effect: (s, { t }) => ({ ...s, pc: setPc(s, t, 'critical') }),
      }),
      act('release', {
        params: { t: threads },
        actor: ({ t }) => `thread ${t}`,
        guard: (s, { t }) => at(s, t, 'critical'),
        effect: (s, { t }) => ({ ...s, flag: s.flag.with(t, false) as [boolean, boolean], pc: setPc(s, t, 'idle') }),
      }),
    ],
    invariants: {
      mutualExclusion: (s) => !(s.pc[0] === 'critical' && s.pc[1] === 'critical'),
    },
  });
}

export default defineProtocol<null>({
  name: 'peterson',
  summary: "Peterson's two-thread mutex",
  configs: { check: null },
  variants: [
    { name: 'correct', summary: 'flag, then turn', expect: { verdict: 'holds' }, build: () => peterson(false) },
    {
      name: 'turn-before-flag',
      summary: 'turn yielded before the flag is raised: both threads can enter',
      expect: { verdict: 'violated', property: 'mutualExclusion' },
      build: () => peterson(true),
    },
  ],
});
