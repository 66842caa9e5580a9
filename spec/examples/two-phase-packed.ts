/**
 * Two-phase commit again (spec/examples/two-phase.ts), written over a declared layout: each RM's state is two
 * bits, the TM's two more, the message set a few flags, so a state is two 32-bit words and the explorer takes
 * its fast path (model/packed-explorer.ts). Same states, same counts (288 ... 1,745,408 for 3 to 8 RMs): this
 * is the model `npm run bench` sets beside SPIN's.
 */
import { defineLayout, definePackedSystem, field, packedActionsOf, type PackedSystem } from '../../model/index.ts';
import { defineProtocol } from '../../model/registry.ts';
import { knownStateCounts } from './two-phase.ts';

function layoutFor(rms: number) {
  return defineLayout({
    rm: field.array(rms, field.oneOf('working', 'prepared', 'committed', 'aborted')),
    tm: field.oneOf('init', 'committed', 'aborted'),
    /** RMs from which the TM has received "prepared". */
    tmPrepared: field.array(rms, field.bool()),
    /** The message set: one "prepared" flag per RM, plus the TM's "commit" and "abort" broadcasts. */
    msgPrepared: field.array(rms, field.bool()),
    msgCommit: field.bool(),
    msgAbort: field.bool(),
  });
}
type TwoPhaseFields = ReturnType<typeof layoutFor>['fields'];

export interface TwoPhaseOptions {
  /** The bug: the TM commits once any RM is prepared, not all of them. */
  readonly commitOnFirstPrepared?: boolean;
}

export function twoPhasePacked(rms: number, opts: TwoPhaseOptions = {}): PackedSystem<TwoPhaseFields> {
  const layout = layoutFor(rms);
  const pact = packedActionsOf<TwoPhaseFields>();
  const RM = Array.from({ length: rms }, (_, i) => i);
  const rmActor = ({ rm }: { rm: number }) => `rm ${rm}`;
  const allPrepared = opts.commitOnFirstPrepared ? 'some' : 'every';
  return definePackedSystem({
    name: `two-phase-packed(${rms})${opts.commitOnFirstPrepared ? ':commit-on-first-prepared' : ''}`,
    layout,
    init: {
      rm: RM.map(() => 'working' as const),
      tm: 'init',
      tmPrepared: RM.map(() => false),
      msgPrepared: RM.map(() => false),
      msgCommit: false,
      msgAbort: false,
    },
    actions: [
      pact('TMRcvPrepared', {
        params: { rm: RM },
        actor: 'tm',
        guard: (s, { rm }) => s.tm === 'init' && s.msgPrepared.at(rm) && !s.tmPrepared.at(rm),
        effect: (d, { rm }) => d.tmPrepared.set(rm, true),
      }),
      pact('TMCommit', {
        actor: 'tm',
        guard: (s) => s.tm === 'init' && s.tmPrepared[allPrepared](Boolean),
        effect: (d) => {
          d.tm = 'committed';
          d.msgCommit = true;
        },
      }),
      pact('TMAbort', {
        actor: 'tm',
        guard: (s) => s.tm === 'init',
        effect: (d) => {
          d.tm = 'aborted';
          d.msgAbort = true;
        },
      }),
      pact('RMPrepare', {
        params: { rm: RM },
        actor: rmActor,
        guard: (s, { rm }) => s.rm.at(rm) === 'working',
        effect: (d, { rm }) => {
          d.rm.set(rm, 'prepared');
          d.msgPrepared.set(rm, true);
        },
      }),
      pact('RMChooseToAbort', {
        params: { rm: RM },
        actor: rmActor,
        guard: (s, { rm }) => s.rm.at(rm) === 'working',
        effect: (d, { rm }) => d.rm.set(rm, 'aborted'),
      }),
      pact('RMRcvCommitMsg', {
        params: { rm: RM },
        actor: rmActor,
        guard: (s, { rm }) => s.msgCommit && s.rm.at(rm) !== 'committed',
        effect: (d, { rm }) => d.rm.set(rm, 'committed'),
      }),
      pact('RMRcvAbortMsg', {
        params: { rm: RM },
        actor: rmActor,
        guard: (s, { rm }) => s.msgAbort && s.rm.at(rm) !== 'aborted',
        effect: (d, { rm }) => d.rm.set(rm, 'aborted'),
      }),
    ],
    invariants: {
      TCConsistent: (s) => !(s.rm.includes('committed') && s.rm.includes('aborted')),
    },
    // As in two-phase.ts: TwoPhase ends when every RM has decided, and TLC runs it without deadlock checking.
    terminal: () => true,
  });
}

export default defineProtocol<null>({
  name: 'two-phase-packed',
  summary: 'two-phase commit over a packed layout (the fast path); the same state counts as two-phase, and one bug',
  configs: { check: null },
  variants: [
    ...[3, 4, 5, 6, 7, 8].map((n) => ({
      name: `rm${n}`,
      summary: `${n} resource managers`,
      expect: { verdict: 'holds', states: knownStateCounts[n] } as const,
      build: () => twoPhasePacked(n),
    })),
    {
      name: 'commit-on-first-prepared',
      summary: '3 RMs; the TM commits as soon as one RM is prepared, while another may have chosen to abort',
      expect: { verdict: 'violated', property: 'TCConsistent' } as const,
      build: () => twoPhasePacked(3, { commitOnFirstPrepared: true }),
    },
  ],
});
