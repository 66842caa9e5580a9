/**
 * The async pipeline-parallel stage loop of SGLang #19582 (protocols.md section 1), two stages, written as
 * ordinary async TypeScript over a simulated communicator: `isendTensorDict` sends the metadata (gloo) then
 * one NCCL `isend` per tensor and returns the handles; `irecvTensorDict` receives the metadata, allocates the
 * buffers, posts every `irecv`, and returns `(tensors, handles, postprocess)`. Handles are promises. NCCL
 * reads a send's source when the transfer runs (a scheduled task), not when the send is posted, and writes
 * a 1/tp slice that the postprocess all-gathers into the full tensor.
 *
 *   fixed               rank 1 prefetches (posts the receive of i+1 before finishing i), waits every
 *                       receive handle and runs the postprocess before reading; rank 0
 *                       waits the previous micro-batch's send before the next forward overwrites its
 *                       static output buffer.
 *   read-before-wait    (B1) the disaggregation path (receives on demand) takes the new 3-tuple for the old
 *                       dict: it reads the tensors at once, never waits the handles, never runs the postprocess.
 *   deferred-send-wait  (B4) the wait on micro-batch i's send is deferred past the launch of i+1: the forward
 *                       of i+1 overwrites the static buffer while NCCL may still be reading it.
 *
 * Every event it records is an action of `pp-stage-model.ts`.
 */
import type { PpVariant } from './pp-stage-model.ts';
import type { Runtime } from './runtime.ts';

/** A device tensor's contents, as a value tag (`y3`), a 1/tp slice (`slice:y3`), or null (never written). */
export class Tensor {
  constructor(public data: string | null = null) {}
}

/** A work handle: `wait()` resolves once the transfer has run. */
export class Work {
  done = false;
  waited = false;
  private readonly waiters: (() => void)[] = [];
  constructor(readonly name: string) {}
  complete(): void {
    this.done = true;
    for (const w of this.waiters.splice(0)) w();
  }
  wait(): Promise<void> {
    this.waited = true;
    return this.done ? Promise.resolve() : new Promise((r) => this.waiters.push(r));
  }
}

type Meta = { readonly mb: number; readonly keys: readonly string[] } | 'END';

/** Point-to-point between two ranks: a metadata mailbox (gloo) and an in-order NCCL transfer stream. */
export class P2P {
  private readonly sends: { src: Tensor; work: Work }[] = [];
  private readonly recvs: { dst: Tensor; work: Work }[] = [];
  private readonly meta: Meta[] = [];
  private readonly metaWaiters: ((m: Meta) => void)[] = [];
  private stream: Promise<void> = Promise.resolve();
  private transfers = 0;
  readonly works: Work[] = [];

  constructor(
    private readonly rt: Runtime,
    private readonly actor: string,
  ) {}

  sendMeta(m: Meta): void {
    const w = this.metaWaiters.shift();
    if (w) w(m);
    else this.meta.push(m);
  }

  async recvMeta(thread: string): Promise<Meta> {
    const m = this.meta.length > 0 ? this.meta.shift()! : await new Promise<Meta>((r) => this.metaWaiters.push(r));
    await this.rt.preempt(thread, 'gloo recv of the metadata returns');
    return m;
  }

  isend(src: Tensor, name: string): Work {
    const work = new Work(`send ${name}`);
    this.works.push(work);
    this.sends.push({ src, work });
    this.match();
    return work;
  }

  irecv(dst: Tensor, name: string): Work {
    const work = new Work(`recv ${name}`);
    this.works.push(work);
    this.recvs.push({ dst, work });
    this.match();
    return work;
  }

  /** Pairs posted sends and receives in issue order; each transfer runs later, after the previous one. */
  private match(): void {
    while (this.sends.length > 0 && this.recvs.length > 0) {
      const s = this.sends.shift()!;
      const r = this.recvs.shift()!;
      const mb = this.transfers++;
      this.stream = this.stream
        .then(() => this.rt.preempt(this.actor, `transfer ${mb}`))
        .then(() => {
          // NCCL reads the source now: whatever the static buffer holds at this moment.
          r.dst.data = s.src.data === null ? null : `slice:${s.src.data}`;
          this.rt.record({ actor: this.actor, action: 'transfer', params: { mb } });
          s.work.complete();
          r.work.complete();
        });
    }
  }
}

export interface RecvResult {
  readonly tensors: { readonly hidden: Tensor };
  readonly handles: readonly Work[];
  readonly postprocess: () => void;
}

const RANK0 = 'rank 0 main';
const RANK1 = 'rank 1 main';

export class Pipeline {
  readonly p2p: P2P;
  /** Rank 0's static output buffer (CUDA-graph style: one buffer reused by every micro-batch). */
  private readonly out0 = new Tensor();
  private readonly inputs: (number | 'END')[] = [];
  private inputWaiter: (() => void) | null = null;
  /** Micro-batches submitted so far. */
  submitted = 0;
  /** What rank 1 read as each micro-batch's input, and what it produced. */
  readonly reads: { readonly mb: number; readonly value: string }[] = [];
  readonly outputs: string[] = [];
  finished = 0;

  constructor(
    private readonly variant: PpVariant,
    private readonly rt: Runtime,
  ) {
    this.p2p = new P2P(rt, 'nccl rank 0 -> rank 1');
  }

  start(): void {
    this.rt.startThread(RANK0, () => this.firstStage(), { recordExit: false });
    this.rt.startThread(RANK1, () => this.lastStage(), { recordExit: false });
  }

  /** A new micro-batch enters the pipeline. */
  submit(): void {
    this.inputs.push(this.submitted++);
    this.wake();
  }

  /** No more micro-batches. */
  close(): void {
    this.inputs.push('END');
    this.wake();
  }

  private wake(): void {
    const w = this.inputWaiter;
    this.inputWaiter = null;
    w?.();
  }

  private async nextInput(): Promise<number | 'END'> {
    while (this.inputs.length === 0) await new Promise<void>((r) => (this.inputWaiter = r));
    await this.rt.preempt(RANK0, 'next micro-batch');
    return this.inputs.shift()!;
  }

  isendTensorDict(tensors: { readonly hidden: Tensor }, mb: number): Work[] {
    this.p2p.sendMeta({ mb, keys: Object.keys(tensors) });
    return [this.p2p.isend(tensors.hidden, `hidden/${mb}`)];
  }

  async irecvTensorDict(mb: number): Promise<RecvResult | 'END'> {
    const meta = await this.p2p.recvMeta(RANK1);
    if (meta === 'END') return 'END';
    const hidden = new Tensor();
    const handles = [this.p2p.irecv(hidden, `hidden/${mb}`)];
    const postprocess = () => {
      // The all-gather that rebuilds the full tensor from the 1/tp slices.
      if (hidden.data !== null && hidden.data.startsWith('slice:')) hidden.data = hidden.data.slice('slice:'.length);
    };
    return { tensors: { hidden }, handles, postprocess };
  }

  /** Rank 0: forward each micro-batch into the static buffer and send it. */
  private async firstStage(): Promise<void> {
    let pending: Work[] | null = null;
    let mb = 0;
    const waitPrevious = async () => {
      if (pending === null) return;
      for (const w of pending) await w.wait();
      this.rt.record({ actor: RANK0, action: 'waitSend', params: { mb: mb - 1 } });
      pending = null;
    };
    for (;;) {
      const x = await this.nextInput();
      if (x === 'END') break;
      if (this.variant !== 'deferred-send-wait') await waitPrevious();
      await this.rt.preempt(RANK0, `forward ${mb}`);
      this.out0.data = `y${mb}`;
      this.rt.record({ actor: RANK0, action: 'launch', params: { rank: 0, mb } });
      if (this.variant === 'deferred-send-wait') await waitPrevious();
      pending = this.isendTensorDict({ hidden: this.out0 }, mb);
      this.rt.record({ actor: RANK0, action: 'isend', params: { mb } });
      mb++;
    }
    await waitPrevious();
    this.p2p.sendMeta('END');
    this.finished++;
  }

  /** Rank 1: receive each micro-batch (prefetching the next one), read it, forward it. */
  private async lastStage(): Promise<void> {
    if (this.variant === 'read-before-wait') {
      // The disaggregated path: receive on demand, and take the new 3-tuple for the old dict.
      for (let mb = 0; ; mb++) {
        const got = await this.irecvTensorDict(mb);
        if (got === 'END') break;
        this.rt.record({ actor: RANK1, action: 'irecv', params: { mb } });
        await this.consume(mb, got.tensors.hidden);
      }
    } else {
      let cur = await this.irecvTensorDict(0);
      if (cur !== 'END') this.rt.record({ actor: RANK1, action: 'irecv', params: { mb: 0 } });
      for (let mb = 0; cur !== 'END'; mb++) {
        // Prefetch: post the receive of mb + 1 before finishing mb (blocks on its metadata, over gloo).
        const next = await this.irecvTensorDict(mb + 1);
        if (next !== 'END') this.rt.record({ actor: RANK1, action: 'irecv', params: { mb: mb + 1 } });
        const { tensors, handles, postprocess } = cur;
        for (const h of handles) await h.wait();
        this.rt.record({ actor: RANK1, action: 'waitRecv', params: { mb } });
        postprocess();
        this.rt.record({ actor: RANK1, action: 'postprocess', params: { mb } });
        await this.consume(mb, tensors.hidden);
        cur = next;
      }
    }
    this.finished++;
  }

  /** Rank 1 reads its input and runs its forward. */
  private async consume(mb: number, hidden: Tensor): Promise<void> {
    const value = hidden.data === null ? 'garbage' : hidden.data;
    this.reads.push({ mb, value });
    this.rt.record({ actor: RANK1, action: 'read', params: { mb }, observed: { [`read[${mb}]`]: value } });
    await this.rt.preempt(RANK1, `forward ${mb}`);
    this.outputs.push(`z(${value})`);
    this.rt.record({ actor: RANK1, action: 'launch', params: { rank: 1, mb } });
  }
}
