/**
 * The fast-check harness for the PP stage loop: commands (submit a micro-batch; let the scheduler run a few
 * tasks), one scheduled run, and the checks every run must pass. Shared by the model-based tests.
 */
import fc from 'fast-check';
import type { PpVariant } from './pp-stage-model.ts';
import { Pipeline } from './pp-stage.ts';
import { SchedulerRuntime } from './runtime.ts';

export const MAX_MICRO_BATCHES = 4;

export interface PpReal {
  readonly s: fc.Scheduler;
  readonly rt: SchedulerRuntime;
  readonly pipe: Pipeline;
}
export type PpModel = { submitted: number };

/** Rank 1 must read exactly rank 0's output for that micro-batch, fully landed and gathered. */
export function checkReads(r: PpReal): void {
  for (const { mb, value } of r.pipe.reads) {
    if (value === `y${mb}`) continue;
    if (value === 'garbage') throw new Error(`read before landed: rank 1 read micro-batch ${mb}'s receive buffer before the data arrived (handles not waited)`);
    if (value.startsWith('slice:')) throw new Error(`read before postprocess: rank 1 read micro-batch ${mb} as a 1/tp slice (${value}): the postprocess all-gather never ran`);
    throw new Error(`overwritten send buffer: rank 1 received ${value} as micro-batch ${mb}: rank 0's static output buffer was overwritten while the send was pending`);
  }
}

export class Submit implements fc.AsyncCommand<PpModel, PpReal> {
  check = (m: Readonly<PpModel>) => m.submitted < MAX_MICRO_BATCHES;
  async run(m: PpModel, r: PpReal): Promise<void> {
    r.pipe.submit();
    m.submitted++;
    checkReads(r);
  }
  toString = () => 'submit';
}

export class Progress implements fc.AsyncCommand<PpModel, PpReal> {
  constructor(readonly n: number) {}
  check = () => true;
  async run(_m: PpModel, r: PpReal): Promise<void> {
    const k = Math.min(this.n, r.s.count());
    if (k > 0) await r.s.waitNext(k);
    checkReads(r);
  }
  toString = () => `progress(${this.n})`;
}

export const ppCommands = fc.commands([fc.constant(new Submit()), fc.integer({ min: 1, max: 4 }).map((n) => new Progress(n))], {
  maxCommands: 16,
  size: 'max',
});

export function makePpReal(variant: PpVariant, s: fc.Scheduler): PpReal {
  const rt = new SchedulerRuntime(s);
  return { s, rt, pipe: new Pipeline(variant, rt) };
}

/** Runs the commands, closes the pipeline, lets everything finish; throws on the first property broken. */
export async function runPp(real: PpReal, cmds: Iterable<fc.AsyncCommand<PpModel, PpReal>>): Promise<number> {
  const { s, pipe } = real;
  pipe.start();
  await fc.asyncModelRun(() => ({ model: { submitted: 0 }, real }), cmds);
  const submitted = pipe.submitted;
  pipe.close();
  await s.waitIdle();
  checkReads(real);
  if (pipe.finished !== 2) throw new Error(`hang: ${2 - pipe.finished} stage loop(s) never ended`);
  const unwaited = pipe.p2p.works.filter((w) => !w.waited);
  if (unwaited.length > 0) throw new Error(`unwaited handles: ${unwaited.map((w) => w.name).join(', ')} were never waited`);
  if (pipe.outputs.length !== submitted) throw new Error(`lost micro-batches: ${submitted} submitted, ${pipe.outputs.length} came out`);
  return submitted;
}
