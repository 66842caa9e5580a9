/**
 * From the PP implementation's events to the steps of the `pp-async-p2p` protocol model (spec/pp-async-p2p.ts,
 * built with the GPU kit): the CPU statements each event stands for, as the kit names them (`alloc`, `irecv`,
 * `wait`, `launch`, `isend`, `free`, with parameters `{rank, thread: 'main'}`). Device-side steps (the kit's
 * `exec` of a stream's queued work, NCCL's `transfer`) are not observable by a CPU recorder: they are left
 * out, and the validator's gap search supplies them.
 */
import type { Design, PpConfig } from '../pp-async-p2p.ts';
import type { PpVariant } from './pp-stage-model.ts';
import type { ImplEvent } from './runtime.ts';
import type { RecordedEvent } from '../../model/validate/export.ts';

/** The protocol model's design that each implementation variant is (rank 0 writes a static output buffer). */
export function kitDesign(variant: PpVariant): Design {
  switch (variant) {
    case 'fixed':
      return { output: 'static' };
    case 'read-before-wait':
      return { output: 'static', finish: 'tuple-as-dict', loop: 'on-demand' };
    case 'deferred-send-wait':
      return { output: 'static', sendWait: 'after-launch' };
  }
}

/** The configuration matching a run of `microBatches` micro-batches (two stages, tp 1, one tensor). */
export function kitConfig(microBatches: number): PpConfig {
  return { pp: 2, tp: 1, microBatches, tensors: 1 };
}

/** The kit statements that the CPU actions of the protocol model log: a recorder always sees them. */
export const KIT_CPU_ACTIONS = ['alloc', 'free', 'irecv', 'isend', 'wait', 'launch'];

export function toKitEvents(events: readonly ImplEvent[], design: Design): RecordedEvent[] {
  const out: RecordedEvent[] = [];
  const step = (rank: number, action: string) => out.push({ rank, actor: `rank ${rank} main`, action, params: { rank, thread: 'main' } });
  const fresh = design.output === undefined || design.output === 'alloc';
  for (const e of events) {
    const rank = e.actor === 'rank 0 main' ? 0 : e.actor === 'rank 1 main' ? 1 : undefined;
    if (rank === undefined) continue; // NCCL's transfers: device side, not logged
    switch (e.action) {
      case 'launch':
        if (rank === 0 && fresh) step(0, 'alloc');
        step(rank, 'launch');
        break;
      case 'isend':
        step(0, 'isend');
        break;
      case 'waitSend':
        step(0, 'wait');
        if (fresh) step(0, 'free');
        break;
      case 'irecv':
        step(1, 'alloc');
        step(1, 'irecv');
        break;
      case 'waitRecv':
        step(1, 'wait');
        break;
      // tp 1: the postprocess has no collective; reading the input is part of the forward's launch.
      case 'postprocess':
      case 'read':
        break;
      default:
        throw new Error(`no protocol step for implementation event ${e.action}`);
    }
  }
  return out;
}
