/**
 * Two-phase commit (Lamport's TLA+ TwoPhase): resource managers (RMs) vote, a transaction manager (TM)
 * decides, messages are a set that is never emptied. The checker's trust test: its distinct state counts
 * are known exactly (288, 1,568, 8,832, 50,816, 296,448, 1,745,408 for 3 to 8 RMs).
 */
import { actionsOf, defineProtocol, defineSystem, type System } from '../../model/index.ts';

export type RMState = 'working' | 'prepared' | 'committed' | 'aborted';

export interface TwoPhaseState {
  readonly rm: readonly RMState[];
  readonly tm: 'init' | 'committed' | 'aborted';
  /** RMs from which the TM has received "prepared". */
  readonly tmPrepared: readonly boolean[];
  /** The message set: one "prepared" flag per RM, plus the TM's "commit" and "abort" broadcasts. */
  readonly msgPrepared: readonly boolean[];
  readonly msgCommit: boolean;
  readonly msgAbort: boolean;
}

const act = actionsOf<TwoPhaseState>();

export function twoPhase(rms: number): System<TwoPhaseState> {
  const RM = Array.from({ length: rms }, (_, i) => i);
  const rmActor = ({ rm }: { rm: number }) => `rm ${rm}`;
  return defineSystem<TwoPhaseState>({
    name: `two-phase(${rms})`,
    init: {
      rm: RM.map(() => 'working'),
      tm: 'init',
      tmPrepared: RM.map(() => false),
      msgPrepared: RM.map(() => false),
      msgCommit: false,
      msgAbort: false,
    },
    actions: [
      act('TMRcvPrepared', {
        params: { rm: RM },
        actor: 'tm',
        guard: (s, { rm }) => s.tm === 'init' && s.msgPrepared[rm] && !s.tmPrepared[rm],
        effect: (s, { rm }) => ({ ...s, tmPrepared: s.tmPrepared.with(rm, true) }),
      }),
      act('TMCommit', {
        actor: 'tm',
        guard: (s) => s.tm === 'init' && s.tmPrepared.every(Boolean),
        effect: (s) => ({ ...s, tm: 'committed', msgCommit: true }),
      }),
      act('TMAbort', {
        actor: 'tm',
        guard: (s) => s.tm === 'init',
        effect: (s) => ({ ...s, tm: 'aborted', msgAbort: true }),
      }),
      act('RMPrepare', {
        params: { rm: RM },
        actor: rmActor,
        guard: (s, { rm }) => s.rm[rm] === 'working',
        effect: (s, { rm }) => ({ ...s, rm: s.rm.with(rm, 'prepared'), msgPrepared: s.msgPrepared.with(rm, true) }),
      }),
      act('RMChooseToAbort', {
        params: { rm: RM },
        actor: rmActor,
        guard: (s, { rm }) => s.rm[rm] === 'working',
        effect: (s, { rm }) => ({ ...s, rm: s.rm.with(rm, 'aborted') }),
      }),
      act('RMRcvCommitMsg', {
        params: { rm: RM },
        actor: rmActor,
        guard: (s, { rm }) => s.msgCommit && s.rm[rm] !== 'committed',
        effect: (s, { rm }) => ({ ...s, rm: s.rm.with(rm, 'committed') }),
      }),
      act('RMRcvAbortMsg', {
        params: { rm: RM },
        actor: rmActor,
        guard: (s, { rm }) => s.msgAbort && s.rm[rm] !== 'aborted',
        effect: (s, { rm }) => ({ ...s, rm: s.rm.with(rm, 'aborted') }),
      }),
    ],
    invariants: {
      TCConsistent: (s) => !(s.rm.includes('committed') && s.rm.includes('aborted')),
    },
    // TwoPhase ends when every RM has decided; TLC runs it without deadlock checking, which this mirrors.
    terminal: () => true,
  });
}

/** Known distinct-state counts (TLC on Lamport's TwoPhase.tla), the checker's exactness test. */
export const knownStateCounts: Readonly<Record<number, number>> = {
  3: 288,
  4: 1_568,
  5: 8_832,
  6: 50_816,
  7: 296_448,
  8: 1_745_408,
};

export default defineProtocol<null>({
  name: 'two-phase',
  summary: 'two-phase commit; each variant is one number of resource managers, expected to hold with its known state count',
  configs: { check: null },
  variants: [3, 4, 5, 6, 7].map((n) => ({
    name: `rm${n}`,
    summary: `${n} resource managers`,
    expect: { verdict: 'holds', states: knownStateCounts[n] } as const,
    build: () => twoPhase(n),
  })),
});
