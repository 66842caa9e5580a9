/**
 * Async pipeline-parallel send/receive (seed 000, SGLang #19582): one stage's micro-batch loop.
 *
 * Per micro-batch i (the fixed protocol): post irecv(i); wait its handle on the compute stream C; run
 * postprocess (reads the receive buffer on C); wait the previous micro-batch's send on C; compute into the
 * static output buffer; isend the output (the send reads the buffer until it completes). NCCL completes
 * receives and sends at any later time (the environment actions 'recv_lands', 'send_completes'). A wait on
 * a handle makes the stream wait (the CPU does not block): a stream operation issued after the wait executes
 * only once the handle has completed; the model executes stream operations in issue order, so an operation
 * is enabled only when every handle waited before it has completed.
 *
 * Properties: no read of a receive buffer before its data landed; the output buffer is never overwritten
 * while a send from it is pending. Proved for every number of micro-batches (symbolic M, k-induction over the
 * loop). Variants: B4 defers the send wait past the next launch (the compute of i+1 overwrites the buffer
 * send i still reads); B1 never waits the receive handles (the old blocking API's caller).
 */
import { bmc, kInduction } from './engine/check.ts';
import { bool, enumSort, int } from './engine/sorts.ts';
import { system } from './engine/system.ts';
import { type Ctx, type Z3Bool, z3 } from './engine/z3.ts';
import { type Proof, type ProofOptions, type ProofOutcome, fromBmc, fromInduction } from './types.ts';

const PROTOCOL = 'pp-async-p2p';

export type P2pVariant = 'fixed' | 'B4-deferred-send-wait' | 'B1-unwaited-recv';

/** Program points of the loop body, in the fixed protocol's order. */
const Pc = enumSort('post_irecv', 'wait_recv', 'postprocess', 'wait_send', 'compute', 'isend', 'done');
const PC = Pc.idx;

export function p2pLoop(ctx: Ctx, variant: P2pVariant) {
  // B4: compute before the wait on the previous send (deferred past the launch).
  const order =
    variant === 'B4-deferred-send-wait'
      ? (['post_irecv', 'wait_recv', 'postprocess', 'compute', 'wait_send', 'isend'] as const)
      : (['post_irecv', 'wait_recv', 'postprocess', 'wait_send', 'compute', 'isend'] as const);
  const nextPc = (at: (typeof order)[number]) => {
    const i = order.indexOf(at);
    return i + 1 < order.length ? PC[order[i + 1]] : PC.post_irecv;
  };
  const sys = system(ctx, `pp-async-p2p.${variant}`, {
    params: { M: int({ min: 1 }) },
    vars: {
      mb: int(),
      pc: Pc,
      recvPosted: bool(),
      recvLanded: bool(),
      recvWaited: bool(),
      sendPending: bool(),
      sendWaited: bool(),
      badRead: bool(),
      badOverwrite: bool(),
    },
  });
  type S = { recvWaited: Z3Bool; recvLanded: Z3Bool; sendWaited: Z3Bool; sendPending: Z3Bool };
  // A stream operation issued after waits runs only when the waited handles completed.
  const streamReady = (s: S) => ctx.And(ctx.Implies(s.recvWaited, s.recvLanded), ctx.Implies(s.sendWaited, ctx.Not(s.sendPending)));
  sys
    .init((s) =>
      ctx.And(
        s.mb.eq(0),
        s.pc.eq(PC.post_irecv),
        ...[s.recvPosted, s.recvLanded, s.recvWaited, s.sendPending, s.sendWaited, s.badRead, s.badOverwrite].map((b) => ctx.Not(b)),
      ),
    )
    .action('post_irecv', {
      actor: 'CPU',
      text: 'post irecv for the micro-batch (buffer allocated, handle returned)',
      guard: (s) => s.pc.eq(PC.post_irecv),
      update: () => ({
        pc: ctx.Int.val(nextPc('post_irecv')),
        recvPosted: ctx.Bool.val(true),
        recvLanded: ctx.Bool.val(false),
        recvWaited: ctx.Bool.val(false),
      }),
    })
    .action('wait_recv', {
      actor: 'CPU',
      text: variant === 'B1-unwaited-recv' ? 'skip the receive handles (treated as the old dict)' : 'handle.wait(): stream C waits for the receive',
      guard: (s) => s.pc.eq(PC.wait_recv),
      update: () => ({
        pc: ctx.Int.val(nextPc('wait_recv')),
        ...(variant === 'B1-unwaited-recv' ? {} : { recvWaited: ctx.Bool.val(true) }),
      }),
    })
    .action('postprocess', {
      actor: 'stream C',
      text: 'postprocess reads the receive buffer',
      guard: (s) => ctx.And(s.pc.eq(PC.postprocess), streamReady(s)),
      update: (s) => ({ pc: ctx.Int.val(nextPc('postprocess')), badRead: ctx.Or(s.badRead, ctx.Not(s.recvLanded)) }),
    })
    .action('wait_send', {
      actor: 'CPU',
      text: 'wait the previous micro-batch’s send on stream C',
      guard: (s) => s.pc.eq(PC.wait_send),
      update: (s) => ({ pc: ctx.Int.val(nextPc('wait_send')), sendWaited: s.sendPending }),
    })
    .action('compute', {
      actor: 'stream C',
      text: 'forward: reads the received tensors, writes the static output buffer',
      guard: (s) => ctx.And(s.pc.eq(PC.compute), streamReady(s)),
      update: (s) => ({
        pc: ctx.Int.val(nextPc('compute')),
        badRead: ctx.Or(s.badRead, ctx.Not(s.recvLanded)),
        badOverwrite: ctx.Or(s.badOverwrite, s.sendPending),
      }),
    })
    .action('isend', {
      actor: 'CPU',
      text: 'isend the output buffer to the next stage (pending until NCCL completes it)',
      guard: (s) => s.pc.eq(PC.isend),
      update: (s, p) => {
        const last = s.mb.add(1).ge(p.M);
        return {
          pc: ctx.If(last, ctx.Int.val(PC.done), ctx.Int.val(nextPc('isend'))) as never,
          mb: s.mb.add(1),
          sendPending: ctx.Bool.val(true),
          sendWaited: ctx.Bool.val(false),
          // A second send from the same buffer while one is pending also overwrites nothing; the wait order matters.
        };
      },
    })
    .action('recv_lands', {
      actor: 'NCCL',
      text: 'the posted receive completes (data landed)',
      guard: (s) => ctx.And(s.recvPosted, ctx.Not(s.recvLanded)),
      update: () => ({ recvLanded: ctx.Bool.val(true) }),
    })
    .action('send_completes', {
      actor: 'NCCL',
      text: 'the pending send completes (the peer received the output)',
      guard: (s) => s.sendPending,
      update: () => ({ sendPending: ctx.Bool.val(false) }),
    })
    .property('no receive buffer read before its data landed', (s) => ctx.Not(s.badRead))
    .property('no send source overwritten while pending', (s) => ctx.Not(s.badOverwrite))
    // Strengthening: what the program counter implies about the waits (true of the fixed order only).
    .invariant('waits precede the reads', (s, p) =>
      ctx.And(
        s.mb.ge(0),
        ctx.Implies(s.mb.lt(p.M), s.pc.neq(PC.done)),
        ctx.Implies(ctx.And(s.pc.neq(PC.post_irecv), s.pc.neq(PC.done)), s.recvPosted),
        ctx.Implies(ctx.Or(s.pc.eq(PC.postprocess), s.pc.eq(PC.wait_send), s.pc.eq(PC.compute)), ctx.And(s.recvPosted, s.recvWaited)),
        ctx.Implies(s.pc.eq(PC.compute), ctx.Implies(s.sendPending, s.sendWaited)),
      ),
    );
  return sys;
}

async function fixedSafe(opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  return fromInduction(await kInduction(p2pLoop(ctx, 'fixed'), { ...opts, maxK: 2 }), 'every number of micro-batches M >= 1');
}

async function buggy(variant: P2pVariant, opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  const hint = (v: { params: Record<string, unknown> }) => (v.params.M as ReturnType<typeof ctx.Int.const>).eq(2);
  return fromBmc(await bmc(p2pLoop(ctx, variant), { ...opts, depth: 14, hint }), variant);
}

export const ppAsyncP2pProofs: readonly Proof[] = [
  {
    protocol: PROTOCOL,
    name: 'fixed-loop-safe',
    claim:
      'irecv, wait, postprocess, wait previous send, compute, isend: no receive buffer is read before it landed and the output buffer is never overwritten while a send from it is pending',
    range: 'every number of micro-batches (k-induction over the loop)',
    variants: ['fixed'],
    expectation: 'proved',
    run: fixedSafe,
  },
  {
    protocol: PROTOCOL,
    name: 'B4-deferred-send-wait',
    claim: 'deferring the wait on send i past the launch of i+1 lets the compute overwrite the static output buffer send i still reads',
    range: 'BMC, 14 steps',
    variants: ['B4 (deferred send wait, static output buffer)'],
    expectation: 'violated',
    run: (o) => buggy('B4-deferred-send-wait', o),
  },
  {
    protocol: PROTOCOL,
    name: 'B1-unwaited-recv',
    claim: 'treating the (tensors, handles, postprocess) result as the old dict (handles never waited) reads a receive buffer before it lands',
    range: 'BMC, 14 steps',
    variants: ['B1 (disaggregated paths use the old dict)'],
    expectation: 'violated',
    run: (o) => buggy('B1-unwaited-recv', o),
  },
];
