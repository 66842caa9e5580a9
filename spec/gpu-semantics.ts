/**
 * The GPU and runtime semantics every model rests on (protocols.md section 0), one small program per sharp
 * edge, each with the verdict measured on an H100 (PyTorch 2.11, 20 trials per case unless noted). These are
 * the kit's ground truth: if a variant's verdict changes, the kit no longer models the hardware.
 */
import { defineProtocol, eventually } from '../model/index.ts';
import {
  type Backend,
  type GpuState,
  allDone,
  isFinished,
  allGather,
  allReduce,
  alloc,
  copy,
  cpuRead,
  free,
  gpuSystem,
  irecv,
  isend,
  launch,
  mayRaise,
  record,
  recordStream,
  set,
  start,
  step,
  syncDevice,
  syncStream,
  tryFinally,
  until,
  wait,
  waitEvent,
} from '../model/gpu/index.ts';

/**
 * Allocator reuse: x allocated on the default stream D and filled there; the side stream S copies it
 * (after waiting for the fill); x is freed, and a new tensor y allocated on D is filled at once.
 * `recordOn`: the stream named in `x.record_stream(...)` before the free, if any.
 */
function allocatorReuse(name: string, recordOn: 'S' | 'D' | undefined) {
  return gpuSystem({
    name,
    ranks: 1,
    streams: ['D', 'S'],
    buffers: { x: { alloc: true }, y: { alloc: true }, z: {} },
    threads: () => ({
      main: [
        alloc('x', 'D'),
        launch('D', 'fill_x', { writes: ['x'] }),
        record('x_ready', 'D'),
        waitEvent('S', 'x_ready'),
        copy('S', { buf: 'x', expect: 'fill_x' }, 'z'),
        recordOn && recordStream('x', recordOn),
        free('x'),
        alloc('y', 'D'),
        launch('D', 'fill_y', { writes: ['y'] }),
      ],
    }),
  });
}

/** A matmul on the compute stream C, copied out on the side stream S, with or without waiting its event. */
function sideCopy(name: string, waits: boolean) {
  return gpuSystem({
    name,
    ranks: 1,
    streams: ['C', 'S'],
    buffers: { a: { init: 'a' }, out: {}, side: {} },
    threads: () => ({
      main: [
        launch('C', 'matmul', { reads: ['a'], writes: ['out'] }),
        waits && [record('done', 'C'), waitEvent('S', 'done')],
        copy('S', { buf: 'out', expect: 'matmul' }, 'side'),
      ],
    }),
  });
}

/**
 * Main launches the matmul and starts a recorder thread that records the event; main then makes the side
 * stream wait the event and copies. When main gets there first, the wait is a no-op.
 */
function waitUnrecorded() {
  return gpuSystem({
    name: 'wait-unrecorded-event',
    ranks: 1,
    streams: ['C', 'S'],
    buffers: { a: { init: 'a' }, out: {}, side: {} },
    threads: () => ({
      main: [
        launch('C', 'matmul', { reads: ['a'], writes: ['out'] }),
        start('recorder'),
        waitEvent('S', 'done'),
        copy('S', { buf: 'out', expect: 'matmul' }, 'side'),
      ],
      recorder: { autoStart: false, body: [record('done', 'C')] },
    }),
  });
}

/** Rank 0 sends a tensor; rank 1 receives it, waits the handle, and reads it on the CPU. */
function recvThenRead(name: string, backend: Backend) {
  return gpuSystem({
    name,
    ranks: 2,
    streams: ['C'],
    buffers: { x: { init: 'payload' }, y: {} },
    vars: { got: null },
    threads: (rank) => ({
      main:
        rank === 0
          ? [isend(1, 'x', { backend, handle: 'h' }), wait('h')]
          : [irecv(0, 'y', { backend, handle: 'h' }), wait('h'), cpuRead('y', { into: 'got', expect: 'payload' })],
    }),
  });
}

interface PlanVars {
  readonly [k: string]: string | boolean | null;
  readonly ongoing: boolean;
  readonly plan: string | null;
  readonly used: string | null;
}

/**
 * A worker thread computes a plan and clears `ongoing`; the main thread polls `ongoing` and then uses the
 * plan. `flagInThread`: the worker sets `ongoing` itself after `start()` (else main sets it before).
 */
function flagHandoff(name: string, flagInThread: boolean) {
  return gpuSystem({
    name,
    ranks: 1,
    streams: ['C'],
    vars: { ongoing: false, plan: null, used: null } satisfies PlanVars,
    threads: () => ({
      main: [
        !flagInThread && set('ongoing', true),
        start('worker'),
        until((c) => c.vars.ongoing === false, 'ongoing is clear'),
        step('usePlan', {
          effect: (c) => ({ vars: { used: (c.vars.plan as string | null) ?? 'missing' } }),
          describe: (c) => `uses the plan (${c.vars.plan === null ? 'missing' : c.vars.plan})`,
        }),
      ],
      worker: {
        autoStart: false,
        body: [
          flagInThread && set('ongoing', true),
          step('computePlan', { effect: () => ({ vars: { plan: 'plan' } }), describe: () => 'computes the plan' }),
          set('ongoing', false),
        ],
      },
    }),
    invariants: {
      'main-uses-computed-plan': (s: GpuState<null>) => s.vars.every((v) => v.used !== 'missing'),
    },
  });
}

/** Main sets `ongoing`, starts the worker and polls until it is clear; the worker may raise while computing. */
function raisingWorker(name: string, withFinally: boolean) {
  const work = [
    mayRaise('plan computation fails'),
    step('computePlan', { effect: () => ({ vars: { plan: 'plan' } }), describe: () => 'computes the plan' }),
  ];
  return gpuSystem({
    name,
    ranks: 1,
    streams: ['C'],
    vars: { ongoing: false, plan: null },
    // The brief's "no spin loop runs forever": the main thread gets past its poll and ends.
    liveness: { 'main-stops-polling': eventually((s: GpuState<null>) => isFinished(s, 0, 'main')) },
    threads: () => ({
      main: [set('ongoing', true), start('worker'), until((c) => c.vars.ongoing === false, 'ongoing is clear')],
      worker: { autoStart: false, body: withFinally ? [tryFinally(work, [set('ongoing', false)])] : [...work, set('ongoing', false)] },
    }),
  });
}

/** Two ranks issue an all-reduce and an all-gather, rank 1 in the opposite order, then synchronize. */
function collectiveOrder() {
  return gpuSystem({
    name: 'collective-order-mismatch',
    ranks: 2,
    streams: ['C'],
    buffers: { grad: { init: 'grad' }, shard: { init: 'shard' } },
    liveness: { 'no-rank-waits-forever': eventually(allDone) },
    threads: (rank) => ({
      main: [...(rank === 0 ? [allReduce('grad'), allGather('shard')] : [allGather('shard'), allReduce('grad')]), syncDevice()],
    }),
  });
}

/** Rank 0 sends and synchronizes; rank 1 never posts the receive. */
function unmatchedSend() {
  return gpuSystem({
    name: 'send-without-matching-recv',
    ranks: 2,
    streams: ['C'],
    buffers: { x: { init: 'payload' } },
    liveness: { 'no-rank-waits-forever': eventually(allDone) },
    threads: (rank) => ({
      main: rank === 0 ? [isend(1, 'x', { handle: 'h' }), wait('h'), syncStream('C')] : [launch('C', 'other_work', { reads: ['x'] })],
    }),
  });
}

export default defineProtocol<null>({
  name: 'gpu-semantics',
  summary: 'CUDA streams, events, caching allocator, NCCL/gloo handles, collectives and Python threads, against H100 measurements',
  configs: { check: null },
  variants: [
    {
      name: 'free-without-record-stream',
      summary:
        'a side-stream copy of x, then x freed on its allocation stream and a new tensor allocated and filled there: the block is reused at once and overwritten under the copy (H100: 20/20 corrupted)',
      expect: { verdict: 'violated', property: 'no-write-while-reading' },
      build: () => allocatorReuse('free-without-record-stream', undefined),
    },
    {
      name: 'free-with-record-stream',
      summary: 'x.record_stream(side) before the free: the block is not reused until the copy is done (H100: 0/20)',
      expect: { verdict: 'holds' },
      build: () => allocatorReuse('free-with-record-stream', 'S'),
    },
    {
      name: 'record-stream-on-allocation-stream',
      summary: 'record_stream names the allocation stream: ignored, so the block is reused under the copy (H100: 19/20 corrupted)',
      expect: { verdict: 'violated', property: 'no-write-while-reading' },
      build: () => allocatorReuse('record-stream-on-allocation-stream', 'D'),
    },
    {
      name: 'missing-wait-event',
      summary: 'the side stream copies a matmul result the compute stream is still producing (H100: 19/20 wrong)',
      expect: { verdict: 'violated', property: 'no-read-while-writing' },
      build: () => sideCopy('missing-wait-event', false),
    },
    {
      name: 'wait-event',
      summary: 'the side stream waits the event recorded after the matmul before copying (H100: 0/20 wrong)',
      expect: { verdict: 'holds' },
      build: () => sideCopy('wait-event', true),
    },
    {
      name: 'wait-unrecorded-event',
      summary:
        'main makes the side stream wait an event its recorder thread has not recorded yet: a no-op, so the copy overtakes the matmul (H100: 20/20 wrong)',
      expect: { verdict: 'violated', property: 'no-read-while-writing' },
      build: () => waitUnrecorded(),
    },
    {
      name: 'nccl-wait-does-not-block-cpu',
      summary: "rank 1 waits its NCCL receive handle, then reads the buffer on the CPU without synchronizing: wait() only ordered the stream",
      expect: { verdict: 'violated', property: 'no-read-while-writing' },
      build: () => recvThenRead('nccl-wait-does-not-block-cpu', 'nccl'),
    },
    {
      name: 'gloo-wait-blocks-cpu',
      summary: 'the same with gloo: wait() blocks the CPU thread until the receive is done, so the read sees the payload',
      expect: { verdict: 'holds' },
      build: () => recvThenRead('gloo-wait-blocks-cpu', 'gloo'),
    },
    {
      name: 'flag-set-in-thread',
      summary:
        'the worker sets "ongoing" itself after start(); main may poll it before that, see it clear, and use a missing plan (race real; 0/2000 plain runs on the H100)',
      expect: { verdict: 'violated', property: 'main-uses-computed-plan' },
      build: () => flagHandoff('flag-set-in-thread', true),
    },
    {
      name: 'flag-set-before-start',
      summary: 'main sets "ongoing" before start(): the poll only ends once the worker has published the plan',
      expect: { verdict: 'holds' },
      build: () => flagHandoff('flag-set-before-start', false),
    },
    {
      name: 'thread-raises-flag-stuck',
      summary:
        'the worker raises before clearing "ongoing"; main polls forever: a deadlock (with explainStuck), and on its own the liveness property main-stops-polling fails with a lasso',
      expect: { verdict: 'violated', property: 'deadlock' },
      expectLiveness: 'main-stops-polling',
      build: () => raisingWorker('thread-raises-flag-stuck', false),
    },
    {
      name: 'thread-raises-try-finally',
      summary: 'the worker clears "ongoing" in a finally block: main stops polling whether or not the worker raised',
      expect: { verdict: 'holds' },
      build: () => raisingWorker('thread-raises-try-finally', true),
    },
    {
      name: 'collective-order-mismatch',
      summary: 'rank 0 issues all_reduce then all_gather, rank 1 the opposite order: the group hangs (deadlock)',
      expect: { verdict: 'violated', property: 'deadlock' },
      expectLiveness: 'no-rank-waits-forever',
      build: () => collectiveOrder(),
    },
    {
      name: 'send-without-matching-recv',
      summary: 'rank 0 sends to rank 1, which never posts the receive: the send never completes and rank 0 hangs in synchronize (deadlock)',
      expect: { verdict: 'violated', property: 'deadlock' },
      expectLiveness: 'no-rank-waits-forever',
      build: () => unmatchedSend(),
    },
  ],
});
