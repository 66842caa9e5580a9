/**
 * A small model of the async pipeline-parallel stage loop (protocols.md section 1, SGLang #19582), two
 * stages: rank 0 runs the forward of each micro-batch into a static output buffer and sends it with
 * `isend` (NCCL reads the buffer when the transfer runs, not when it is posted); rank 1 prefetches (posts the
 * `irecv` of micro-batch i+1 before finishing i), waits the handles, runs the postprocess (the all-gather
 * that rebuilds a 1/tp slice), reads its input, runs its forward. Its actions are the events `pp-stage.ts` records, so recorded runs validate against it.
 *
 * Variants: `fixed`; `read-before-wait` (B1: the 3-tuple taken for the old dict: handles never waited,
 * postprocess skipped, the buffer read before the data lands); `deferred-send-wait` (B4: the wait on
 * micro-batch i's send moved past the launch of i+1, which overwrites the static buffer NCCL still reads).
 */
import { defineProtocol } from '../../model/registry.ts';
import { actionsOf, defineSystem, type System } from '../../model/system.ts';

export type PpVariant = 'fixed' | 'read-before-wait' | 'deferred-send-wait';

export interface PpState {
  /** Program counters of rank 0's and rank 1's stage loop (index into the variant's program). */
  readonly pc: readonly [number, number];
  /** The micro-batch whose output rank 0's static buffer holds (null: never written). */
  readonly buf0: number | null;
  /** isends posted, irecvs posted, transfers done (in order: the pair's NCCL stream is FIFO). */
  readonly sent: number;
  readonly posted: number;
  readonly moved: number;
  /** Per micro-batch: the data that landed in rank 1's receive buffer (`y<k>`, as a 1/tp slice), or null. */
  readonly landed: readonly (string | null)[];
  /** Per micro-batch: the postprocess (all-gather) ran. */
  readonly gathered: readonly boolean[];
  /** Per micro-batch: what rank 1 read as its input (null: not read yet). */
  readonly read: readonly (string | null)[];
}

type Step = { readonly action: string; readonly mb: number };

/** Each stage loop as straight-line code over micro-batches 0..m-1. */
export function programs(variant: PpVariant, m: number): [Step[], Step[]] {
  const p0: Step[] = [];
  for (let mb = 0; mb < m; mb++) {
    if (variant !== 'deferred-send-wait' && mb > 0) p0.push({ action: 'waitSend', mb: mb - 1 });
    p0.push({ action: 'launch', mb });
    if (variant === 'deferred-send-wait' && mb > 0) p0.push({ action: 'waitSend', mb: mb - 1 });
    p0.push({ action: 'isend', mb });
  }
  if (m > 0) p0.push({ action: 'waitSend', mb: m - 1 });
  const p1: Step[] = [];
  if (variant === 'read-before-wait') {
    // The disaggregated path: receive on demand, and take the tuple for the tensors.
    for (let mb = 0; mb < m; mb++) p1.push({ action: 'irecv', mb }, { action: 'read', mb }, { action: 'launch', mb });
  } else {
    // Prefetch: the receive of mb+1 is posted before mb is finished and launched.
    if (m > 0) p1.push({ action: 'irecv', mb: 0 });
    for (let mb = 0; mb < m; mb++) {
      if (mb + 1 < m) p1.push({ action: 'irecv', mb: mb + 1 });
      p1.push({ action: 'waitRecv', mb }, { action: 'postprocess', mb }, { action: 'read', mb }, { action: 'launch', mb });
    }
  }
  return [p0, p1];
}

/** What rank 1 reads from its receive buffer: nothing landed yet, a slice not yet gathered, or the data. */
export function readValue(landed: string | null, gathered: boolean): string {
  if (landed === null) return 'garbage';
  return gathered ? landed : `slice:${landed}`;
}

const act = actionsOf<PpState>();
const ACTOR = ['rank 0 main', 'rank 1 main'] as const;
export const NCCL_ACTOR = 'nccl rank 0 -> rank 1';

export function ppStage(variant: PpVariant, microBatches: number): System<PpState> {
  const [p0, p1] = programs(variant, microBatches);
  const progs = [p0, p1];
  const MB = Array.from({ length: microBatches }, (_, i) => i);
  const at = (s: PpState, rank: 0 | 1, action: string, mb: number) => {
    const st = progs[rank][s.pc[rank]];
    return st !== undefined && st.action === action && st.mb === mb;
  };
  const adv = (s: PpState, rank: 0 | 1): PpState['pc'] => (rank === 0 ? [s.pc[0] + 1, s.pc[1]] : [s.pc[0], s.pc[1] + 1]);
  return defineSystem<PpState>({
    name: `pp-stage(${variant}, ${microBatches} micro-batches)`,
    init: {
      pc: [0, 0],
      buf0: null,
      sent: 0,
      posted: 0,
      moved: 0,
      landed: MB.map(() => null),
      gathered: MB.map(() => false),
      read: MB.map(() => null),
    },
    actions: [
      act('launch', {
        params: { rank: [0, 1], mb: MB },
        actor: ({ rank }) => ACTOR[rank],
        guard: (s, { rank, mb }) => at(s, rank as 0 | 1, 'launch', mb),
        effect: (s, { rank, mb }) => (rank === 0 ? { ...s, pc: adv(s, 0), buf0: mb } : { ...s, pc: adv(s, 1) }),
        describe: ({ rank, mb }) => (rank === 0 ? `rank 0 runs the forward of micro-batch ${mb} into its static output buffer` : `rank 1 runs the forward of micro-batch ${mb}`),
      }),
      act('isend', {
        params: { mb: MB },
        actor: ACTOR[0],
        guard: (s, { mb }) => at(s, 0, 'isend', mb),
        effect: (s) => ({ ...s, pc: adv(s, 0), sent: s.sent + 1 }),
        describe: ({ mb }) => `rank 0 posts isend of micro-batch ${mb} (its static output buffer)`,
      }),
      act('waitSend', {
        params: { mb: MB },
        actor: ACTOR[0],
        guard: (s, { mb }) => at(s, 0, 'waitSend', mb) && s.moved > mb,
        effect: (s) => ({ ...s, pc: adv(s, 0) }),
        describe: ({ mb }) => `rank 0 waits the send handle of micro-batch ${mb}`,
      }),
      act('irecv', {
        params: { mb: MB },
        actor: ACTOR[1],
        // The metadata (gloo, blocking) arrives once rank 0 has posted the send.
        guard: (s, { mb }) => at(s, 1, 'irecv', mb) && s.sent > mb,
        effect: (s) => ({ ...s, pc: adv(s, 1), posted: s.posted + 1 }),
        describe: ({ mb }) => `rank 1 receives the metadata, allocates the buffer and posts irecv of micro-batch ${mb}`,
      }),
      act('transfer', {
        params: { mb: MB },
        actor: NCCL_ACTOR,
        guard: (s, { mb }) => s.moved === mb && s.sent > mb && s.posted > mb,
        effect: (s, { mb }) => ({
          ...s,
          moved: s.moved + 1,
          landed: s.landed.with(mb, s.buf0 === null ? null : `y${s.buf0}`),
        }),
        describe: ({ mb }, s) => `NCCL moves micro-batch ${mb}: it reads rank 0's static buffer, which now holds y${s.buf0}`,
      }),
      act('waitRecv', {
        params: { mb: MB },
        actor: ACTOR[1],
        guard: (s, { mb }) => at(s, 1, 'waitRecv', mb) && s.moved > mb,
        effect: (s) => ({ ...s, pc: adv(s, 1) }),
        describe: ({ mb }) => `rank 1 waits the receive handles of micro-batch ${mb}`,
      }),
      act('postprocess', {
        params: { mb: MB },
        actor: ACTOR[1],
        guard: (s, { mb }) => at(s, 1, 'postprocess', mb),
        effect: (s, { mb }) => ({ ...s, pc: adv(s, 1), gathered: s.gathered.with(mb, true) }),
        describe: ({ mb }) => `rank 1 runs the postprocess (all-gather of the 1/tp slices) of micro-batch ${mb}`,
      }),
      act('read', {
        params: { mb: MB },
        actor: ACTOR[1],
        guard: (s, { mb }) => at(s, 1, 'read', mb),
        effect: (s, { mb }) => ({ ...s, pc: adv(s, 1), read: s.read.with(mb, readValue(s.landed[mb], s.gathered[mb])) }),
        describe: ({ mb }, s) => `rank 1 reads its input of micro-batch ${mb}: ${readValue(s.landed[mb], s.gathered[mb])}`,
      }),
    ],
    invariants: {
      /** Rank 1 reads exactly what rank 0 computed for that micro-batch, fully landed and gathered. */
      readsWhatWasSent: (s) => s.read.every((v, mb) => v === null || v === `y${mb}`),
    },
    actionProperties: {
      /** A send's source buffer is not overwritten while the send is pending. */
      noOverwriteWhilePending: (b, step, a) => !(step.action === 'launch' && step.params.rank === 0 && b.sent > b.moved && a.buf0 !== b.buf0),
    },
    terminal: (s) => s.pc[0] === p0.length && s.pc[1] === p1.length && s.moved === microBatches,
  });
}

export default defineProtocol<number>({
  name: 'pp-stage',
  summary: 'two pipeline stages exchanging micro-batches with isend/irecv (the control logic the implementation tests use)',
  configs: { check: 3 },
  variants: [
    { name: 'fixed', summary: 'wait the receive handles and postprocess before reading; wait the previous send before the next launch', expect: { verdict: 'holds' }, build: (m) => ppStage('fixed', m) },
    {
      name: 'read-before-wait',
      summary: 'B1: the 3-tuple taken for the old dict: handles never waited, postprocess skipped, data read before it lands',
      expect: { verdict: 'violated', property: 'readsWhatWasSent' },
      build: (m) => ppStage('read-before-wait', m),
    },
    {
      name: 'deferred-send-wait',
      summary: "B4: the wait on micro-batch i's send deferred past the launch of i+1: the static buffer is overwritten while NCCL reads it",
      expect: { verdict: 'violated', property: 'noOverwriteWhilePending' },
      build: (m) => ppStage('deferred-send-wait', m),
    },
  ],
});
