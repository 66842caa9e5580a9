/**
 * # Async pipeline-parallel send/receive (SGLang #19582, "[PP] Refactor Async Pipeline Parallelism")
 *
 * Brief: shared/protocols.md section 1; seed shared/seeds/000_b471f8a132610098.txt. The API is vLLM's
 * `isend_tensor_dict` / `irecv_tensor_dict`, which the PR brings to SGLang: `irecv_tensor_dict` posts every
 * receive at once and returns `(tensors, handles, postprocess)`; the old blocking calls become "start, then
 * wait all, then postprocess". The PR claims +5-7% throughput.
 *
 * ## Actors (per rank; a stage has `tp` ranks)
 * - the scheduler CPU thread `main`, running the stage loop below over the micro-batches;
 * - the compute stream `C`: every kernel, and the stream every NCCL `work.wait()` makes wait;
 * - the communicator's queues, from the GPU kit: `p2p:<peer>` for the NCCL sends and receives of a pair of
 *   ranks (FIFO, matched in issue order; a queue first waits the work queued on C when the op is issued, as
 *   ProcessGroupNCCL syncs its stream with the current one), `gloo:<peer>` for the metadata (CPU, blocking),
 *   `nccl:tp<stage>` for the TP group of a receiving stage.
 *
 * ## State
 * All of it is the kit's (`model/gpu`): thread pcs, queued work per stream, caching-allocator blocks with the
 * ops still touching them, work handles (`send_<t><i>`, `recv_<t><i>` for tensor t of micro-batch i; `msend`,
 * `mrecv` for metadata) and the collectives issued per group. Buffers per rank: `in_<t><i>` (receive buffers,
 * allocated on C when the receive starts), `out_<t>` (the forward's static CUDA-graph output) or `out_<t><i>`
 * (a fresh tensor per forward), `logits` (the last stage's output), `meta<i>` / `rmeta<i>` (CPU metadata).
 * Tensors t of a proxy dict: `h` = hidden_states, and `r` = residual when a configuration has 2. The protocol
 * adds no state of its own: its properties read the kit's queues, handles and recorded fault.
 *
 * ## Steps (the stage loop; stage 0 only sends, the last stage only receives, a middle one does both)
 * - start a receive (`irecv_tensor_dict`): receive the metadata over gloo (the CPU blocks until the sender's
 *   `send_object` arrives), allocate one buffer per tensor on C, post every NCCL `irecv` at once, keep
 *   `(tensors, handles, postprocess)`. The stage prefetches: micro-batch i+1's receive is started before
 *   micro-batch i's forward is launched.
 * - finish a receive: `handle.wait()` for each tensor (C waits, the CPU goes on), then the postprocess: with
 *   tp > 1 each rank received a 1/tp slice, and the postprocess all-gathers it over the stage's TP group.
 * - wait the previous proxy send: `work.wait()` on micro-batch i-1's send handles (C waits).
 * - launch the forward of micro-batch i on C (it reads the received tensors expecting their all-gathered
 *   value, and writes the output), then, on a receiving stage with tp > 1, the forward's TP all-reduce.
 * - send (`isend_tensor_dict`): the metadata over gloo (blocking), then one NCCL `isend` per output tensor,
 *   keeping the handles. After the last micro-batch, its send is waited (the drain).
 * Left out: the launch event that C waits before the send (a no-op here, where the forward and the send share
 * stream C), and processing the results (CPU work after the forward, touching none of these buffers).
 *
 * ## Properties (brief section 1; the first six are invariants, checked ahead of the kit's generic ones)
 * - `no-read-before-wait-and-postprocess`: no read of a receive buffer before its handle was waited on the
 *   reader's stream and the postprocess ran (the kit's race, uninitialised- and stale-read faults on `in_*`).
 * - `send-source-not-reused-or-overwritten`: a send's source is neither reused (allocator) nor overwritten
 *   while the send is pending (the kit's write-while-reading fault against an NCCL send).
 * - `p2p-same-order-both-sides`: the next send and the next receive of every pair are the same tensor of the
 *   same micro-batch (so sends and receives between a pair are issued in the same order on both sides).
 * - `tp-allgather-same-order`: the k-th collective of every rank of a TP group is the same (kind and tensor),
 *   so every rank reaches the postprocess all-gather in the same order.
 * - `every-handle-waited`: once every thread has finished, every work handle it kept was waited.
 * - `every-send-matched`: once every thread has finished, every NCCL send has a posted matching receive.
 * - reachable `recv-in-flight-while-compute-runs`: some rank has a receive that can run (both sides posted,
 *   the queue's dependencies met) while its C stream is at a forward: the overlap the PR exists for.
 * - behind them, the kit's checks (`no-write-while-writing`, `no-use-after-free`, ...) and `deadlock`.
 *
 * ## Configurations
 * - `check`: pp 2, tp 2, 2 micro-batches, 1 tensor, stage 0 folded: ranks 1 and 2 are stage 1's TP ranks,
 *   rank 0 stands for stage 0's two TP ranks and sends each receiver its slice (see `foldFirstStage`).
 * - `check-tp1`: pp 2, tp 1, 2 micro-batches (the variants where the TP all-gather is not involved).
 * - `check-2t`: pp 2, tp 1, 2 micro-batches, 2 tensors (hidden_states, residual).
 * - `large`: pp 2, tp 2 with all 4 ranks (nothing folded), 2 micro-batches: `fixed` holds, 113,920 states,
 *   depth 72, 12.6 s of CPU (18.8 s wall on this 2-core machine under load). The tests also check pp 3 /
 *   tp 1 / 3 micro-batches (a middle stage that receives and sends: 19,080 states) and pp 2 / tp 1 /
 *   3 micro-batches / 2 tensors (3,060 states); a folded tp 2 with 3 micro-batches holds too (93,169 states).
 * - `pr`: the PR's numbers: pp 4, tp 2, hidden 7168 bf16 (14 KiB a token; hidden 4096 gives 8 KiB), 4
 *   micro-batches, 2 tensors, +5-7% throughput claimed. It documents the setting; it is far past exhaustive.
 *
 * ## Variants (`interleave check`, one real run; each on `check` unless it names its configuration)
 *
 * | variant | brief | verdict | property | states | depth |
 * | --- | --- | --- | --- | ---: | ---: |
 * | fixed | the design | holds | (all, overlap reached) | 15,467 | 68 |
 * | b1-tuple-as-dict | B1 | violated | no-read-before-wait-and-postprocess | 74 | 9 |
 * | b2-fake-async (tp1) | B2 | violated | recv-in-flight-while-compute-runs (reachability) | 226 | 30 |
 * | async-on-demand (tp1) | finding | violated | recv-in-flight-while-compute-runs (reachability) | 282 | 30 |
 * | b3-record-stream-current (tp1) | B3 | violated | send-source-not-reused-or-overwritten | 76 | 13 |
 * | b3-masked-by-pg (tp1) | B3 | holds | | 717 | 36 |
 * | deferred-send-wait-held (tp1) | B3/B4 control | holds | | 456 | 34 |
 * | b4-deferred-send-wait-static (tp1) | B4 | violated | send-source-not-reused-or-overwritten | 38 | 9 |
 * | b5-lazy-postprocess | B5 | violated | tp-allgather-same-order | 3,421 | 41 |
 * | b5-lazy-postprocess-hang | B5 | violated | deadlock | 10,407 | 62 |
 * | b6-inbox-drops-handles | B6 | violated | no-read-before-wait-and-postprocess | 6,710 | 50 |
 * | postprocess-dropped | mine | violated | no-read-before-wait-and-postprocess | 898 | 28 |
 * | recv-order-reversed (2t) | mine | violated | p2p-same-order-both-sides | 63 | 10 |
 * | last-send-never-waited (tp1) | mine | violated | every-handle-waited | 173 | 23 |
 * | idle-recv-skipped (tp1) | mine | violated | every-send-matched | 156 | 21 |
 *
 * The whole protocol checks in about 5.6 s of CPU, process start included (`fixed` is 2 s of it).
 *
 * ## What the model says
 * - B2 and `async-on-demand` are both safe, and neither overlaps a receive with a forward on the receiving
 *   rank: a NCCL queue first waits the work already queued on C, so an irecv posted after forward i-1 was
 *   launched cannot start before forward i-1 ends. Returning handles only pays when the caller posts the
 *   next receive before launching the current forward (the prefetch of `fixed`).
 * - B3: `record_stream(current)` names the allocation stream, so the allocator ignores it. It only bites
 *   with a communicator that does not record its operands (raw NCCL / pynccl, the `commRecords: false`
 *   design); under ProcessGroupNCCL, which records them, the same code holds (`b3-masked-by-pg`): the call
 *   the PR calls "the key addition" is dead code, and the protection is the process group's.
 * - B4 against `deferred-send-wait-held`: deferring the send wait past the next launch is safe for fresh
 *   tensors kept until the wait, and wrong for a static buffer, whatever lifetime trick is used.
 */
import { defineProtocol, defineSystem, eventually, type Action, type System } from '../model/index.ts';
import {
  type Body,
  type GpuState,
  allGather,
  allReduce,
  alloc,
  free,
  gpuSystem,
  irecv,
  isend,
  launch,
  recordStream,
  wait,
  allDone as programEnded,
  faultOf,
} from '../model/gpu/index.ts';

// ---- configuration ----------------------------------------------------------------------------------------

export interface PpConfig {
  /** Pipeline stages. */
  readonly pp: number;
  /** Tensor-parallel ranks per stage. */
  readonly tp: number;
  /** Micro-batches in flight through the pipeline. */
  readonly microBatches: number;
  /** Tensors per proxy dict: 1 (hidden_states) or 2 (hidden_states, residual). */
  readonly tensors: 1 | 2;
  /**
   * Stage 0's TP ranks as one rank that sends each receiving TP rank its slice. They share no state, and each
   * pair queue is FIFO, so every order in which the receivers can see their slices is kept; what goes is only
   * the interleaving of the senders' own CPU steps, which no property reads (sender-side bugs are checked at tp 1).
   */
  readonly foldFirstStage?: boolean;
  /**
   * The metadata exchange over gloo before each dict: the sender's `send_object` blocks until the receiver took
   * it; the receiver blocks until it arrives, then allocates and posts its irecvs. On in every configuration;
   * the tests check that turning it off changes no verdict.
   */
  readonly metadata?: boolean;
  /** Descriptive numbers from the PR (not used by the model's steps). */
  readonly hidden?: number;
  readonly dtype?: 'bf16';
  readonly bytesPerToken?: number;
  readonly claimedSpeedup?: string;
}

const check: PpConfig = { pp: 2, tp: 2, microBatches: 2, tensors: 1, metadata: true, foldFirstStage: true };
const checkTp1: PpConfig = { pp: 2, tp: 1, microBatches: 2, tensors: 1, metadata: true };
const check2t: PpConfig = { pp: 2, tp: 1, microBatches: 2, tensors: 2, metadata: true };
const large: PpConfig = { pp: 2, tp: 2, microBatches: 2, tensors: 1, metadata: true };
const pr: PpConfig = {
  pp: 4,
  tp: 2,
  microBatches: 4,
  tensors: 2,
  metadata: true,
  hidden: 7168,
  dtype: 'bf16',
  bytesPerToken: 7168 * 2,
  claimedSpeedup: '+5-7% throughput',
};

// ---- the design and its bugs ------------------------------------------------------------------------------

/** How a stage's code differs from the fixed design; every field's default is the fixed design. */
export interface Design {
  /**
   * How a started receive is finished before its tensors are used:
   * - `wait-postprocess` (fixed): wait every handle on C, then the postprocess (TP all-gather);
   * - `fake-async` (B2): every irecv is waited right after it is posted (the old recv_tensor_dict);
   * - `tuple-as-dict` (B1): the caller takes the tensors out of the 3-tuple and uses them: no wait, no postprocess;
   * - `inbox-drops-handles` (B6): a prefetched message is stashed as tensors only; the one taken from the
   *   inbox is used unwaited and un-postprocessed (a message received on demand is still finished properly);
   * - `lazy-eager-rank0` (B5): the postprocess is lazy, run at the tensors' first use: TP rank 0's scheduler
   *   touches the dict as soon as the receive is posted, the other ranks first touch it in the forward;
   * - `no-postprocess` (mine): the tuple unpacked as `tensors, handles, _`: handles waited, postprocess dropped.
   */
  readonly finish?: 'wait-postprocess' | 'fake-async' | 'tuple-as-dict' | 'inbox-drops-handles' | 'lazy-eager-rank0' | 'no-postprocess';
  /** `prefetch` (fixed): start the receive of i+1 before the forward of i; `on-demand`: the disaggregated loop. */
  readonly loop?: 'prefetch' | 'on-demand';
  /** When the previous micro-batch's send is waited: before the next launch (fixed) or after it (B3, B4). */
  readonly sendWait?: 'before-launch' | 'after-launch';
  /**
   * The forward's output: `static` (fixed: a CUDA-graph output buffer rewritten by every forward, safe while
   * the previous send is waited before the next launch; B4 when that wait is deferred), `alloc` (a fresh tensor
   * per forward, referenced until its send is waited), or `alloc-dropped` (B3: the reference dropped right
   * after the isend, the lifetime left to `record_stream(current stream)`).
   */
  readonly output?: 'alloc' | 'alloc-dropped' | 'static';
  /** Whether the communicator records its operands on its queue (ProcessGroupNCCL: yes; a raw NCCL/pynccl send: no). */
  readonly commRecords?: boolean;
  /** The receiver posts a dict's irecvs in the reverse of the sender's order (mine: order property). */
  readonly reverseRecvOrder?: boolean;
  /** No drain: the last micro-batch's send handle is never waited (mine: handle property). */
  readonly noDrain?: boolean;
  /** The receiver reads the last micro-batch's metadata, takes it for idle and posts no irecv, while the sender still sends its tensors (mine: matching). */
  readonly skipLastRecv?: boolean;
  /** Leave out the TP order property (to show B5's consequence, the hang, on its own). */
  readonly noOrderCheck?: boolean;
}

type S = GpuState<null>;

const KEYS = ['h', 'r'] as const;

/** The program of the `main` thread of rank `rank` (stage s, TP index t). */
function stageProgram(cfg: PpConfig, d: Required<Design>, L: Layout, s: number, t: number): Body {
  const { pp, tp, microBatches: M } = cfg;
  const keys = KEYS.slice(0, cfg.tensors);
  const prev = s > 0 ? L.rankOf(s - 1, L.ranks[s - 1].length > 1 ? t : 0) : -1;
  // The receivers this rank sends to: its TP peer in the next stage, or each of them for a folded stage.
  const nexts = s < pp - 1 ? (L.ranks[s].length > 1 ? [L.rankOf(s + 1, t)] : L.ranks[s + 1]) : [];
  const sendHandle = (k: string, i: number, j: number) => `send_${k}${i}${nexts.length > 1 ? `.tp${j}` : ''}`;
  const receives = s > 0;
  const sends = s < pp - 1;
  const group = `tp${s}`;
  // Collectives this rank has issued on its TP group, in program order: the forward expects the value the
  // k-th all-gather writes (`all_gather#k`), so a skipped or misplaced postprocess shows as a stale read.
  let colls = 0;
  const gathered = new Map<string, string>();
  const postprocessed = new Set<number>();
  const recvCount = (i: number) => (d.skipLastRecv && i === M - 1 ? false : true);
  const recvOrder = d.reverseRecvOrder ? [...keys].reverse() : keys;
  const valueSent = (i: number) => `stage${s - 1}.mb${i}`;

  const startRecv = (i: number): Body => {
    const meta = cfg.metadata && [irecv(prev, `rmeta${i}`, { backend: 'gloo', handle: `mrecv${i}` }), wait(`mrecv${i}`)];
    if (!recvCount(i)) return [meta];
    return [
      meta,
      recvOrder.map((k) => alloc(`in_${k}${i}`, 'C')),
      recvOrder.map((k) => [
        irecv(prev, `in_${k}${i}`, { handle: `recv_${k}${i}` }),
        d.finish === 'fake-async' && wait(`recv_${k}${i}`),
      ]),
    ];
  };
  const postprocess = (i: number): Body => {
    postprocessed.add(i);
    return [
      keys.map((k) => wait(`recv_${k}${i}`)),
      tp > 1 &&
        keys.map((k) => {
          colls++;
          gathered.set(`${k}${i}`, `all_gather#${colls}`);
          return allGather(`in_${k}${i}`, { group });
        }),
    ];
  };
  /** Whatever the design does to a received dict before its forward may read it. */
  const finishRecv = (i: number, prefetched: boolean): Body => {
    if (!recvCount(i) || postprocessed.has(i)) return [];
    switch (d.finish) {
      case 'tuple-as-dict':
        return [];
      case 'no-postprocess':
        postprocessed.add(i);
        return keys.map((k) => wait(`recv_${k}${i}`));
      case 'inbox-drops-handles':
        return prefetched ? [] : postprocess(i);
      case 'fake-async':
        // The waits already happened at the irecvs; the postprocess is still needed.
        postprocessed.add(i);
        return tp > 1
          ? keys.map((k) => {
              colls++;
              gathered.set(`${k}${i}`, `all_gather#${colls}`);
              return allGather(`in_${k}${i}`, { group });
            })
          : [];
      default:
        return postprocess(i);
    }
  };
  /** B5: TP rank 0 runs the lazy postprocess as soon as its scheduler touches the freshly posted dict. */
  const eager = (i: number): Body => (d.finish === 'lazy-eager-rank0' && t === 0 && recvCount(i) ? postprocess(i) : []);

  const out = (k: string, i: number) => (d.output === 'static' ? `out_${k}` : `out_${k}${i}`);
  const waitSend = (i: number): Body => [
    keys.map((k) => nexts.map((_, j) => wait(sendHandle(k, i, j)))),
    d.output === 'alloc' && keys.map((k) => free(out(k, i))),
  ];

  const body: Body[number][] = [];
  if (receives) body.push(startRecv(0), eager(0));
  for (let i = 0; i < M; i++) {
    const prefetchedNext = receives && d.loop === 'prefetch' && i + 1 < M;
    if (prefetchedNext) body.push(startRecv(i + 1), eager(i + 1));
    if (receives && d.loop === 'on-demand' && i > 0) body.push(startRecv(i), eager(i));
    if (receives) body.push(finishRecv(i, d.loop === 'prefetch' && i > 0));
    if (sends && i > 0 && d.sendWait === 'before-launch') body.push(waitSend(i - 1));
    if (sends && d.output !== 'static') body.push(keys.map((k) => alloc(out(k, i), 'C')));
    const reads = receives && recvCount(i)
      ? keys.map((k) => ({ buf: `in_${k}${i}`, expect: tp > 1 ? (gathered.get(`${k}${i}`) ?? 'the-all-gathered-tensor') : valueSent(i) }))
      : [];
    const writes = sends ? keys.map((k) => out(k, i)) : ['logits'];
    body.push(launch('C', `forward.mb${i}`, { reads, writes, value: `stage${s}.mb${i}` }));
    // The forward's TP all-reduce, on the stages that receive (where it interleaves with the postprocess).
    if (tp > 1 && receives) {
      colls++;
      body.push(allReduce(writes[0], { group }));
    }
    if (sends && i > 0 && d.sendWait === 'after-launch') body.push(waitSend(i - 1));
    if (sends) {
      body.push(
        cfg.metadata &&
          nexts.map((peer, j) => {
            const h = `msend${i}${nexts.length > 1 ? `.tp${j}` : ''}`;
            return [isend(peer, `meta${i}`, { backend: 'gloo', handle: h }), wait(h)];
          }),
        keys.map((k) => [
          nexts.map((peer, j) => isend(peer, out(k, i), { handle: sendHandle(k, i, j) })),
          d.output === 'alloc-dropped' && [recordStream(out(k, i), 'C'), free(out(k, i))],
        ]),
      );
    }
  }
  if (sends && !d.noDrain) body.push(waitSend(M - 1));
  return body;
}

// ---- reading the kit's state ------------------------------------------------------------------------------

const allDone = (s: S) => s.threads.every((th) => Object.values(th).every((pc) => pc === 'done' || pc === 'raised'));

/** `send out_h1 to 2#17` / `recv in_h1 from 0#9` -> { dir, tensor, mb }. */
function p2pItem(key: string): { dir: 'send' | 'recv'; tensor: string; mb: number | null } | undefined {
  const m = /^(send|recv) (?:out|in)_([a-z])(\d*) (?:to|from) \d+#\d+$/.exec(key);
  if (!m) return undefined;
  return { dir: m[1] as 'send' | 'recv', tensor: m[2], mb: m[3] === '' ? null : Number(m[3]) };
}

/** `all_gather #3 in_h1#12` -> { kind, seq, buf }. */
function collItem(key: string): { kind: string; seq: number; buf: string } | undefined {
  const m = /^(\w+) #(\d+)(?: (\S+))?#\d+$/.exec(key);
  if (!m) return undefined;
  return { kind: m[1], seq: Number(m[2]), buf: (m[3] ?? '').replace(/^(in|out)_/, '') };
}

/** The first send/receive still queued on a pair queue (markers and waits skipped). */
function nextP2p(q: readonly string[] | undefined) {
  for (const k of q ?? []) {
    const it = p2pItem(k);
    if (it) return it;
  }
  return undefined;
}

/** The kit's recorded fault, split into the kit property it breaks and its sentence. */
function faultParts(s: S): { kind: string; text: string } | undefined {
  const f = faultOf(s);
  return f && { kind: f[0], text: f[1] };
}

function isRecvReadFault(s: S): boolean {
  const f = faultParts(s);
  if (!f) return false;
  if (!['no-read-while-writing', 'no-uninitialised-read', 'no-stale-read'].includes(f.kind)) return false;
  return /reads in_[a-z]\d+\b/.test(f.text);
}

function isSendSourceFault(s: S): boolean {
  const f = faultParts(s);
  if (!f) return false;
  if (f.kind !== 'no-write-while-reading' && f.kind !== 'no-write-while-writing') return false;
  return / while the nccl send of /.test(f.text);
}

// ---- the system -------------------------------------------------------------------------------------------

/** Ranks per stage. With `foldFirstStage`, stage 0's TP ranks are one rank that sends every receiver its slice. */
interface Layout {
  readonly N: number;
  readonly ranks: readonly (readonly number[])[];
  readonly stageOf: readonly number[];
  readonly tpIndex: readonly number[];
  rankOf(stage: number, t: number): number;
}

function layout(cfg: PpConfig): Layout {
  const ranks: number[][] = [];
  const stageOf: number[] = [];
  const tpIndex: number[] = [];
  let n = 0;
  for (let st = 0; st < cfg.pp; st++) {
    const width = st === 0 && cfg.foldFirstStage ? 1 : cfg.tp;
    ranks.push([...Array(width).keys()].map((t) => {
      stageOf.push(st);
      tpIndex.push(t);
      return n++;
    }));
  }
  return { N: n, ranks, stageOf, tpIndex, rankOf: (st, t) => ranks[st][t] };
}

const FIXED: Required<Design> = {
  finish: 'wait-postprocess',
  loop: 'prefetch',
  sendWait: 'before-launch',
  output: 'static',
  commRecords: true,
  reverseRecvOrder: false,
  noDrain: false,
  skipLastRecv: false,
  noOrderCheck: false,
};

export function build(cfg: PpConfig, design: Design = {}, name = 'pp-async-p2p'): System<S> {
  const d: Required<Design> = { ...FIXED, ...design };
  const { pp, microBatches: M } = cfg;
  const L = layout(cfg);
  const N = L.N;
  const keys = KEYS.slice(0, cfg.tensors);
  const buffers: Record<string, { alloc?: boolean; init?: string }> = { logits: {} };
  for (let i = 0; i < M; i++) {
    if (cfg.metadata) {
      buffers[`meta${i}`] = { init: `metadata.mb${i}` };
      buffers[`rmeta${i}`] = {};
    }
    for (const k of keys) {
      buffers[`in_${k}${i}`] = { alloc: true };
      buffers[`out_${k}${i}`] = { alloc: true };
    }
  }
  for (const k of keys) buffers[`out_${k}`] = {};
  const groups: Record<string, number[]> = {};
  for (let st = 1; st < pp; st++) if (L.ranks[st].length > 1) groups[`tp${st}`] = [...L.ranks[st]];

  const g = gpuSystem<null>({
    name,
    ranks: N,
    streams: ['C'],
    buffers,
    groups,
    // No rank waits forever: every stage runs its micro-batches to the end (a TP group split across two
    // collectives, or a send whose receive never comes, is a behaviour stuck before that).
    liveness: { 'no-rank-waits-forever': eventually(programEnded) },
    threads: (rank) => ({ main: stageProgram(cfg, d, L, L.stageOf[rank], L.tpIndex[rank]) }),
  });

  // The brief's properties, checked before the kit's generic ones so that a race is reported by its name here.
  const invariants: Record<string, (s: S) => boolean> = {
    'no-read-before-wait-and-postprocess': (s) => !isRecvReadFault(s),
    'send-source-not-reused-or-overwritten': (s) => !isSendSourceFault(s),
    'p2p-same-order-both-sides': (s) => {
      for (let a = 0; a < N; a++) {
        for (const q of Object.keys(s.streams[a])) {
          const m = /^p2p:(\d+)$/.exec(q);
          if (!m) continue;
          const b = Number(m[1]);
          if (b < a) continue;
          const x = nextP2p(s.streams[a][q]);
          const y = nextP2p(s.streams[b][`p2p:${a}`]);
          if (!x || !y) continue;
          if (x.dir === y.dir) return false;
          if (x.tensor !== y.tensor) return false;
          if (x.mb !== null && y.mb !== null && x.mb !== y.mb) return false;
        }
      }
      return true;
    },
    ...(d.noOrderCheck
      ? {}
      : {
          'tp-allgather-same-order': (s: S) => {
            for (const [grp, members] of Object.entries(groups)) {
              const bySeq = new Map<number, string>();
              for (const r of members) {
                for (const key of s.streams[r][`nccl:${grp}`] ?? []) {
                  const c = collItem(key);
                  if (!c) continue;
                  const tag = `${c.kind} ${c.buf}`;
                  const seen = bySeq.get(c.seq);
                  if (seen === undefined) bySeq.set(c.seq, tag);
                  else if (seen !== tag) return false;
                }
              }
            }
            return true;
          },
        }),
    'every-handle-waited': (s) => !allDone(s) || s.handles.every((h) => Object.values(h).every((v) => v === null || v === 'waited')),
    'every-send-matched': (s) => {
      if (!allDone(s)) return true;
      for (let a = 0; a < N; a++) {
        for (const q of Object.keys(s.streams[a])) {
          const m = /^p2p:(\d+)$/.exec(q);
          if (!m) continue;
          const b = Number(m[1]);
          const sends = s.streams[a][q].filter((k) => p2pItem(k)?.dir === 'send').length;
          const recvs = (s.streams[b][`p2p:${a}`] ?? []).filter((k) => p2pItem(k)?.dir === 'recv').length;
          if (sends > recvs) return false;
        }
      }
      return true;
    },
  };
  for (const [k, f] of Object.entries(g.spec.invariants ?? {})) if (!(k in invariants)) invariants[k] = f;

  const reachable = {
    'recv-in-flight-while-compute-runs': (s: S) => {
      for (let r = L.ranks[1][0]; r < N; r++) {
        const head = s.streams[r].C[0];
        if (head === undefined || !head.startsWith('forward.')) continue;
        for (const q of Object.keys(s.streams[r])) {
          const m = /^p2p:(\d+)$/.exec(q);
          if (!m || Number(m[1]) > r) continue;
          const mine = s.streams[r][q][0];
          const theirs = s.streams[Number(m[1])][`p2p:${r}`]?.[0];
          if (mine && theirs && p2pItem(mine)?.dir === 'recv' && p2pItem(theirs)?.dir === 'send') return true;
        }
      }
      return false;
    },
  };

  // A communicator that does not record its operands (raw NCCL / pynccl): the kit's isend/irecv always do,
  // as ProcessGroupNCCL does, so this variant strips the record the kit just added to the operand's block.
  const actions: Action<S>[] = d.commRecords
    ? [...g.spec.actions]
    : g.spec.actions.map((a) =>
        a.name === 'isend' || a.name === 'irecv'
          ? {
              name: a.name,
              spec: {
                ...a.spec,
                effect: (s: S, p: any) => {
                  const t = a.spec.effect(s, p) as S;
                  const r = p.rank as number;
                  const row = t.blocks[r];
                  if (!row.some((b) => b.uses.some((u) => u.startsWith('p2p:')))) return t;
                  const nb = row.map((b) => (b.uses.some((u) => u.startsWith('p2p:')) ? { ...b, uses: b.uses.filter((u) => !u.startsWith('p2p:')) } : b));
                  return { ...t, blocks: t.blocks.with(r, nb) };
                },
              },
            }
          : a,
      );

  return defineSystem<S>({ ...g.spec, actions, invariants, reachable });
}

// ---- the protocol -----------------------------------------------------------------------------------------

export default defineProtocol<PpConfig>({
  name: 'pp-async-p2p',
  summary: 'async PP send/receive of tensor dicts: work handles, record_stream lifetimes, (tensors, handles, postprocess)',
  configs: { check, 'check-tp1': checkTp1, 'check-2t': check2t, large, pr },
  variants: [
    {
      name: 'fixed',
      summary: 'the design: prefetched irecv_tensor_dict, wait + postprocess before the forward, previous send waited before the next launch',
      expect: { verdict: 'holds' },
      build: (c) => build(c, {}, 'pp-async-p2p:fixed'),
    },
    {
      name: 'b1-tuple-as-dict',
      summary: 'B1 (reviewer, critical): the disaggregated path takes the 3-tuple for the old dict: handles never waited, postprocess skipped, data read before it lands',
      expect: { verdict: 'violated', property: 'no-read-before-wait-and-postprocess' },
      build: (c) => build(c, { finish: 'tuple-as-dict', loop: 'on-demand' }, 'pp-async-p2p:b1'),
    },
    {
      name: 'b2-fake-async',
      summary: 'B2: the old "fake async" receive waits each irecv right after posting it: safe, but no receive is ever in flight while compute runs',
      expect: { verdict: 'violated', property: 'recv-in-flight-while-compute-runs' },
      build: (c) => build(c, { finish: 'fake-async' }, 'pp-async-p2p:b2'),
      config: checkTp1,
    },
    {
      name: 'async-on-demand',
      summary: '(finding) the async API called where the blocking one was, right before use: safe, yet no overlap either, since the irecv\'s queue first waits the forward already queued on C',
      expect: { verdict: 'violated', property: 'recv-in-flight-while-compute-runs' },
      build: (c) => build(c, { loop: 'on-demand' }, 'pp-async-p2p:on-demand'),
      config: checkTp1,
    },
    {
      name: 'b3-record-stream-current',
      summary: 'B3 (mine): the send tensor is dropped after isend, its lifetime left to record_stream(current stream), which is its allocation stream and so ignored: the next forward reuses the block NCCL still reads',
      expect: { verdict: 'violated', property: 'send-source-not-reused-or-overwritten' },
      build: (c) => build(c, { output: 'alloc-dropped', sendWait: 'after-launch', commRecords: false }, 'pp-async-p2p:b3'),
      config: checkTp1,
    },
    {
      name: 'b3-masked-by-pg',
      summary: 'B3 under ProcessGroupNCCL, which records its operands on its own queue: holds, so record_stream(current) is dead code and the protection is the process group\'s',
      expect: { verdict: 'holds' },
      build: (c) => build(c, { output: 'alloc-dropped', sendWait: 'after-launch', commRecords: true }, 'pp-async-p2p:b3-pg'),
      config: checkTp1,
    },
    {
      name: 'deferred-send-wait-held',
      summary: 'the send wait deferred past the next launch with fresh output tensors kept alive until waited, raw NCCL: holds (deferral is safe when nothing rewrites the source)',
      expect: { verdict: 'holds' },
      build: (c) => build(c, { output: 'alloc', sendWait: 'after-launch', commRecords: false }, 'pp-async-p2p:deferred-held'),
      config: checkTp1,
    },
    {
      name: 'b4-deferred-send-wait-static',
      summary: 'B4 (mine): the wait on micro-batch i\'s send deferred past the launch of i+1, whose forward rewrites the static (CUDA-graph) output buffer NCCL is still sending',
      expect: { verdict: 'violated', property: 'send-source-not-reused-or-overwritten' },
      build: (c) => build(c, { output: 'static', sendWait: 'after-launch' }, 'pp-async-p2p:b4'),
      config: checkTp1,
    },
    {
      name: 'b5-lazy-postprocess',
      summary: 'B5 (mine): the postprocess runs lazily at first use, which TP rank 0 reaches in its scheduler and the other ranks inside the forward: their k-th TP collectives differ',
      expect: { verdict: 'violated', property: 'tp-allgather-same-order' },
      expectLiveness: 'no-rank-waits-forever',
      build: (c) => build(c, { finish: 'lazy-eager-rank0' }, 'pp-async-p2p:b5'),
    },
    {
      name: 'b5-lazy-postprocess-hang',
      summary: 'B5 (mine), its consequence: without the order check the TP group hangs, one rank in all_gather, the other in all_reduce',
      expect: { verdict: 'violated', property: 'deadlock' },
      expectLiveness: 'no-rank-waits-forever',
      build: (c) => build(c, { finish: 'lazy-eager-rank0', noOrderCheck: true }, 'pp-async-p2p:b5-hang'),
    },
    {
      name: 'b6-inbox-drops-handles',
      summary: 'B6 (mine): the inbox stashes a prefetched message without its handles and postprocess; the buffer it hands out is read unwaited',
      expect: { verdict: 'violated', property: 'no-read-before-wait-and-postprocess' },
      build: (c) => build(c, { finish: 'inbox-drops-handles' }, 'pp-async-p2p:b6'),
    },
    {
      name: 'postprocess-dropped',
      summary: '(mine) the 3-tuple unpacked as `tensors, handles, _`: every handle waited, the all-gather postprocess dropped: the forward reads its 1/tp slice as the whole tensor',
      expect: { verdict: 'violated', property: 'no-read-before-wait-and-postprocess' },
      build: (c) => build(c, { finish: 'no-postprocess' }, 'pp-async-p2p:no-postprocess'),
    },
    {
      name: 'recv-order-reversed',
      summary: '(mine) the receiver posts the dict\'s irecvs in the reverse of the sender\'s key order: residual lands in hidden_states',
      expect: { verdict: 'violated', property: 'p2p-same-order-both-sides' },
      build: (c) => build(c, { reverseRecvOrder: true }, 'pp-async-p2p:order'),
      config: check2t,
    },
    {
      name: 'last-send-never-waited',
      summary: '(mine) the previous send is waited only when the next micro-batch launches: the last one\'s handle is never waited',
      expect: { verdict: 'violated', property: 'every-handle-waited' },
      build: (c) => build(c, { noDrain: true }, 'pp-async-p2p:no-drain'),
      config: checkTp1,
    },
    {
      name: 'idle-recv-skipped',
      summary: '(mine) the receiving stage treats the last micro-batch as idle and skips its receive, while the sender still sends it',
      expect: { verdict: 'violated', property: 'every-send-matched' },
      expectLiveness: 'no-rank-waits-forever',
      build: (c) => build(c, { skipLastRecv: true }, 'pp-async-p2p:skip'),
      config: checkTp1,
    },
  ],
});
