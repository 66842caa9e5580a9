/**
 * Chunked compute/all-reduce overlap in RowParallelLinear (SGLang #6923, "coarse-grained computation-
 * communication overlap"; the PR was never merged, so the model follows its description and review).
 *
 * Actors, per tensor-parallel rank: one CPU thread (`main`, running forward()), the compute stream C, the
 * comm stream K, and the rank's NCCL queue of the TP group (`nccl:tp`). All from the GPU kit.
 *
 * The design. forward(x) with n rows picks a chunk size: 5120, or n // 3 once n >= 16384; k = ceil(n / chunk)
 * chunks; k < 2 is the original unchunked path. For each chunk i the CPU issues: allocate out_i on C, the
 * matmul of rows [i*chunk, min(n, (i+1)*chunk)) on C (rank 0 passes the bias, so the sum holds it once),
 * record compute event i on C, K waits compute event i, all-reduce out_i with K current, record comm event i
 * on K. Then C waits every comm event, concatenates the chunks on C (`cat`), and forward returns
 * `(output, output_bias)`; the chunk tensors are dropped at the return. The matmul of chunk i+1 on C runs
 * while the all-reduce of chunk i is in flight: that is the overlap the PR measured.
 *
 * The all-reduce (`allReduce` config): `nccl` is pynccl, in place on the chunk (the path for 80 MiB chunks);
 * `custom` is the custom all-reduce, which copies the chunk into the rank's one shared IPC buffer, reduces
 * there across ranks, and copies it back (`to_ar_buffer`, `all_reduce`, `from_ar_buffer` on the same stream).
 *
 * State: the kit's (threads, streams, events, allocator blocks, collectives) plus, per rank, `vars`:
 * `chunkSize` (the layer attribute `self.chunk_size`), and the call in progress (`call`, `n`, `plan`: its row
 * ranges as plain numbers: the PR's real row counts, never per-row state). Buffer values are tags: a partial
 * sum `P[s,e)` (with `+b` on the rank that added the bias), the kit's `all_reduce#k` once reduced, and the
 * concatenation `XW+b[0,n)` when every chunk was reduced and the chunks tile [0, n).
 *
 * Properties (the brief's, kebab-cased):
 * - all-reduce-after-matmul (step): when a rank's all-reduce of chunk i starts (the collective, or with the
 *   custom all-reduce its staging copy), the chunk holds its matmul's partial sum on every rank.
 * - consumer-after-all-reduces (step): when C's concatenation runs, every chunk it reads is reduced.
 * - chunk-outputs-alive-until-waited: no chunk output is dropped by the CPU before C's wait on its comm event
 *   is issued (after that, C's own order protects the block; before it, C may reuse the block while K uses it).
 * - same-all-reduces-on-every-rank (step): every collective pairs the same rows on every rank (the same
 *   number in the same order; a rank issuing fewer leaves its peers blocked: the kit's deadlock).
 * - bias-added-exactly-once (step): exactly one rank's input to each all-reduce carries the bias.
 * - chunked-equals-unchunked: the concatenation equals X W + b over [0, n) (rows are independent).
 * - chunks-cover-rows-once: the plan of every call covers [0, n) exactly once, in order.
 * - chunking-depends-on-n-only: every call's plan is the one a fresh layer makes for the same n.
 * - matmul-overlaps-all-reduce (reachable): some state has the matmul of chunk i+1 at the head of C while the
 *   rank has entered the all-reduce of chunk i: the overlap exists at all.
 * - and the kit's: no-read-while-writing, no-write-while-reading, no-write-while-writing,
 *   no-uninitialised-read (a Python local read before assignment is modelled as a CPU buffer never
 *   written: `output_bias`), no-stale-read, no-use-after-free, deadlock.
 *
 * Configurations: `check` is TP 2, one call of 9000 rows: chunks [0,5120) [5120,9000). `custom` the same with
 * the custom all-reduce. `history` (30000 then 9000 rows) and `tiny` (16385 rows) are the chunking rule alone
 * (`streams: false`: each call is its planning step and its return): planning properties over the PR's real
 * numbers, where the stream model adds nothing but states. `large` is TP 2 with 30000 rows (three chunks of
 * 10000) and the full stream model. `pr` holds the PR's numbers: 4 x H200, Qwen2.5-72B at TP 4, hidden 8192,
 * a 5120-row bf16 chunk is 80 MiB, 21444.6 -> 21821.2 tokens/s (+1.76%).
 *
 * Variants (states and depth on their configuration, from `interleave check --no-por`):
 *
 *   variant                     bug                                          verdict                             states  depth
 *   fixed                       -                                            holds                                4,469     48
 *   fixed-two-calls             - (history: 30000 then 9000 rows)            holds                                   49     12
 *   tiny-last-chunk             - (16385 = 3 x 5461 + 2: four chunks)        holds                                   16      6
 *   output-bias-unbound         reviewer, critical: output_bias unbound      no-uninitialised-read                  535     17
 *   chunk-size-mutated          reviewer: self.chunk_size = n // 3           chunking-depends-on-n-only              14      4
 *   serialised-branch           reviewer: the branch's per-chunk sync        matmul-overlaps-all-reduce (reach.) 2,141     48
 *   comm-skips-compute-wait     mine: K skips the compute event wait         all-reduce-after-matmul                182     13
 *   fixed-custom-all-reduce     - (custom all-reduce)                        holds                               20,381     64
 *   second-all-reduce-on-C      mine: last chunk all-reduced on C            no-write-while-writing                 434     16
 *   three-parts-drop-remainder  mine: exactly 3 chunks of n // 3             chunks-cover-rows-once                   2      1
 *
 * Partial-order reduction: the planning step and the properties say what they read (per rank; the step
 * properties per stepping rank, the collective's across ranks), and each rank keeps its own kit fault, so two
 * ranks' steps between the all-reduces need no order: `fixed` 4,469 -> 2,426 states, `large` 28,431 -> 20,166,
 * `fixed-custom-all-reduce` 20,381 -> 8,755 (the counts above are without it, `--no-por`). At this size the
 * reduction's own cost per state can outweigh the states it saves (`check` 0.57 s against 0.31 s).
 *
 * Larger runs of the fixed protocol: `large` (30000 rows, 3 chunks, streams) holds in 28,431 states (depth
 * 67, about 5 s on the 2-core machine under load); 16385 rows with streams (4 chunks) holds in 161,459
 * states (depth 86, 27 s under load: the `tinyStreams` configuration); the history with streams (30000 then
 * 9000 rows, 3 + 2 chunks) holds in 210,424 states (depth 115, 53 s under load).
 *
 * What the bugs teach. The unbound output_bias is a crash on every chunked call (the first read of a local
 * the chunked path never assigns). The mutated chunk size makes chunking depend on the call history: after
 * a 30000-row call, `self.chunk_size` is 10000, so a 9000-row call runs unchunked where a fresh layer would
 * overlap two chunks (a silent performance bug, invisible to any single-call test). The per-chunk sync of
 * the non-communicating branch is safe but serial: no safety property fails; only reachability of the
 * overlap does. K not waiting compute event i all-reduces a chunk before its matmul wrote it (the H100:
 * 19/20 corrupted). With the custom all-reduce, all-reducing the last chunk directly on C before C waited
 * K overwrites the shared IPC buffer while K's all-reduce of the previous chunk still uses it; with pynccl
 * in place there is no shared buffer, and the kit's NCCL queue keeps collectives in issue order, so the same
 * code holds. The PR's formula is correct at 16385 rows (the 2-row fourth chunk costs a fourth collective but
 * covers the rows); "fixing" it with exactly three chunks of n // 3 drops rows 16383 and 16384.
 */
import { type StepLabel, type StepObservation, defineProtocol, eventually } from '../model/index.ts';
import {
  type GpuState,
  type Stmt,
  allReduce,
  alloc,
  bufferValue,
  cpuRead,
  cpuWrite,
  free,
  gpuSystem,
  launch,
  record,
  step,
  waitEvent,
  allDone,
  observing,
  stepObserving,
} from '../model/gpu/index.ts';

// ---- configuration and the chunking rule ------------------------------------------------------------------

export interface OverlapConfig {
  /** Tensor-parallel ranks (each one CPU thread, compute stream C, comm stream K). */
  readonly tp: number;
  /** Rows n of each successive forward call of one layer instance. */
  readonly calls: readonly number[];
  /** Default chunk rows (the PR's `self.chunk_size = 5120`). */
  readonly chunkRows: number;
  /** From this many rows on, the chunk is n // largeParts (the PR: 16384 and 3). */
  readonly largeRows: number;
  readonly largeParts: number;
  /**
   * How tensor_model_parallel_all_reduce runs: `nccl` (pynccl, in place on the chunk: the path for 80 MiB
   * chunks) or `custom` (the custom all-reduce: through one shared IPC buffer per rank, copied in and out).
   */
  readonly allReduce?: 'nccl' | 'custom';
  /**
   * false: the chunking rule alone (each call is its planning step and its return, no device work), for the
   * properties of the plan over long histories and large n, where the stream model would not add anything.
   */
  readonly streams?: boolean;
  /** The PR's own numbers, for the record (not used by the model). */
  readonly numbers?: {
    readonly gpus: string;
    readonly model: string;
    readonly hidden: number;
    readonly bytesPerElement: number;
    /** chunkRows x hidden x bytes, in MiB. */
    readonly chunkMiB: number;
    readonly tokensPerSecond: { readonly baseline: number; readonly pr: number; readonly gainPercent: number };
  };
}

export type Range = readonly [number, number];

/** How forward() picks its chunks. */
export type ChunkRule =
  /** A local chunk size: 5120, or n // 3 from 16384 rows on; k = ceil(n / chunk); k < 2: unchunked. */
  | 'local'
  /** The PR as written: `self.chunk_size = n // 3` for large n, so the layer remembers it for later calls. */
  | 'mutating'
  /** A "fix" of the tiny last chunk that loops over exactly 3 chunks of n // 3 rows: the remainder is dropped. */
  | 'three-parts';

export interface Plan {
  /** Row ranges, one per chunk; a single range [0, n) is the unchunked path. */
  readonly ranges: readonly Range[];
  /** The chunk size used. */
  readonly chunk: number;
  /** `self.chunk_size` after the call. */
  readonly attr: number;
}

/** The chunking of one forward call of n rows, given the layer's `self.chunk_size` before the call. */
export function planChunks(n: number, attr: number, cfg: OverlapConfig, rule: ChunkRule): Plan {
  const large = n >= cfg.largeRows;
  let chunk: number;
  let after = attr;
  if (rule === 'mutating') {
    if (large) after = Math.floor(n / cfg.largeParts);
    chunk = after;
  } else {
    chunk = large ? Math.floor(n / cfg.largeParts) : cfg.chunkRows;
  }
  const k = rule === 'three-parts' && large ? cfg.largeParts : Math.ceil(n / chunk);
  if (k < 2) return { ranges: [[0, n]], chunk, attr: after };
  const ranges: Range[] = [];
  for (let i = 0; i < k; i++) ranges.push([i * chunk, Math.min(n, (i + 1) * chunk)]);
  return { ranges, chunk, attr: after };
}

/** Whether ranges cover [0, n) exactly once, in order, each non-empty. */
export function coversOnce(ranges: readonly Range[], n: number): boolean {
  if (ranges.length === 0) return n === 0;
  if (ranges[0][0] !== 0 || ranges[ranges.length - 1][1] !== n) return false;
  for (let i = 0; i < ranges.length; i++) {
    if (ranges[i][1] <= ranges[i][0]) return false;
    if (i > 0 && ranges[i][0] !== ranges[i - 1][1]) return false;
  }
  return true;
}

const rangeText = (r: Range) => `[${r[0]},${r[1]})`;

// ---- the model ------------------------------------------------------------------------------------------

/** The bugs of the brief (and a few test-only faults that show each property is not vacuous). */
export interface Bugs {
  readonly rule?: ChunkRule;
  /** `output_bias` assigned only on the unchunked path; the chunked path returns it unbound. */
  readonly unboundBias?: boolean;
  /** The non-communicating branch's sync inside the loop: C waits comm event i before chunk i+1's matmul. */
  readonly serialise?: boolean;
  /** K all-reduces chunk i without waiting compute event i. */
  readonly skipComputeWait?: boolean;
  /** The last chunk is all-reduced on C (nothing left to overlap it with) before C waited K's comm events. */
  readonly lastOnC?: boolean;
  // Test-only faults.
  /** C concatenates without waiting the comm events. */
  readonly consumerSkipsWait?: boolean;
  /** Each chunk output is dropped right after its all-reduce is issued (no `outputs` list keeps it). */
  readonly freeBeforeWait?: boolean;
  /** Every rank adds the bias before the all-reduce (instead of rank 0 only). */
  readonly biasEveryRank?: boolean;
  /** Ranks other than 0 never chunk (a rank-local threshold). */
  readonly rankLocalChunking?: boolean;
  /** Leave out properties (to show a later one is not vacuous). */
  readonly omit?: readonly string[];
}

interface Vars {
  readonly [k: string]: number | readonly (readonly number[])[];
  /** `self.chunk_size`: the layer attribute. */
  readonly chunkSize: number;
  /** The call in progress (-1 before the first). */
  readonly call: number;
  readonly n: number;
  /** Row ranges of the call in progress. */
  readonly plan: readonly (readonly number[])[];
}

type State = GpuState<null>;

/**
 * Per rank: the static facts the properties need. The program is straight-line and every statement in it
 * compiles to exactly one kit instruction (no synchronize, barrier or mayRaise), so a statement's position
 * in the list is its pc.
 */
interface RankFacts {
  /** Instruction index of each `free(out)` and of the `C.wait_event(comm event)` that must precede it. */
  readonly lifetimes: { readonly out: string; readonly freeAt: number; readonly waitAt: number }[];
  /** Chunk outputs each concatenation reads, by launch name. */
  readonly catInputs: Map<string, readonly string[]>;
  /** The chunk output each staging copy reads, by launch name. */
  readonly stageInput: Map<string, string>;
  /** For the overlap goal: the matmul of chunk i+1 and the sequence number of chunk i's all-reduce. */
  readonly overlapPairs: { readonly nextMatmul: string; readonly seq: number }[];
  /** Output buffer of each chunked call with its expected value. */
  readonly results: { readonly buf: string; readonly want: string }[];
}

const AR_BUFFER = 'ar_buffer';

/**
 * The value the queued op `key` of rank r sees in `buf` (through the block it captured at issue, even when the
 * CPU has dropped the tensor since): null when that block holds nothing written through `buf`.
 */
function seenBy(s: GpuState<null>, r: number, key: string, buf: string): string | null {
  for (const blk of s.blocks[r]) {
    if (!blk.pending.some((e) => e.endsWith(` ${key}`) && e.split(' ')[1] === buf)) continue;
    if (blk.data === null) return null;
    const i = blk.data.indexOf('=');
    return blk.data.slice(0, i) === buf ? blk.data.slice(i + 1) : null;
  }
  return null;
}

function opName(key: string | undefined): string | undefined {
  if (key === undefined) return undefined;
  const i = key.lastIndexOf('#');
  return i < 0 ? key : key.slice(0, i);
}

export function overlapLinear(cfg: OverlapConfig, bugs: Bugs = {}) {
  const rule = bugs.rule ?? 'local';
  const impl = cfg.allReduce ?? 'nccl';
  const multi = cfg.calls.length > 1;
  const lab = (c: number, i?: number) => (multi ? (i === undefined ? `${c}` : `${c}.${i}`) : i === undefined ? '' : `${i}`);
  const facts: RankFacts[] = [];
  const buffers: Record<string, { alloc?: boolean; init?: string }> = { x: { init: 'x' }, [AR_BUFFER]: {} };
  const omit = new Set(bugs.omit ?? []);

  const programFor = (rank: number): Stmt[] => {
    const prog: Stmt[] = [];
    const f: RankFacts = { lifetimes: [], catInputs: new Map(), stageInput: new Map(), overlapPairs: [], results: [] };
    facts.push(f);
    const freeAt = new Map<string, number>();
    const waitAt = new Map<string, number>();
    const emit = (st: Stmt | false | undefined) => {
      if (st) prog.push(st);
      return prog.length - 1;
    };
    let attr = cfg.chunkRows;
    let seq = 0;
    /**
     * tensor_model_parallel_all_reduce(out) with `stream` current. NCCL (pynccl): in place on the chunk output.
     * Custom all-reduce: the chunk is copied into the rank's one shared (IPC-registered) buffer, reduced there
     * across ranks, and copied back out.
     */
    const emitAllReduce = (stream: 'C' | 'K', out: string, L: string) => {
      if (impl === 'nccl') {
        emit(allReduce(out, { stream, group: 'tp' }));
        return;
      }
      emit(launch(stream, `to_ar_buffer${L}`, { reads: [out], writes: [AR_BUFFER], value: (v) => v[0] ?? 'garbage' }));
      f.stageInput.set(`to_ar_buffer${L}`, out);
      emit(allReduce(AR_BUFFER, { stream, group: 'tp' }));
      emit(launch(stream, `from_ar_buffer${L}`, { reads: [AR_BUFFER], writes: [out], value: (v) => v[0] ?? 'garbage' }));
    };
    cfg.calls.forEach((n, c) => {
      // The program of call c follows the plan the layer makes at run time: the planning step below computes
      // it from the state's `self.chunk_size` with the same function, and the attribute's history is
      // deterministic, so this static replay agrees with it.
      const plan = planChunks(n, attr, cfg, rule);
      const localUnchunked = bugs.rankLocalChunking && rank > 0;
      const ranges = localUnchunked ? [[0, n] as Range] : plan.ranges;
      attr = plan.attr;
      const cp = multi ? `${c}` : '';
      emit(
        step<null>(`forward${cp}`, {
          // Partial-order reduction: the planning step reads and writes only this rank's variables.
          reads: (rk) => [`vars[${rk}]`],
          writes: (rk) => [`vars[${rk}]`],
          effect: (cx) => {
            const p = planChunks(n, cx.vars.chunkSize as number, cfg, rule);
            const rs = localUnchunked ? [[0, n]] : p.ranges.map((r) => [r[0], r[1]]);
            return { vars: { chunkSize: p.attr, call: c, n, plan: rs } };
          },
          describe: (cx) => {
            const before = cx.vars.chunkSize as number;
            const p = planChunks(n, before, cfg, rule);
            const rs = localUnchunked ? [[0, n] as Range] : p.ranges;
            const how =
              n >= cfg.largeRows
                ? `chunk = ${n} // ${cfg.largeParts} = ${p.chunk}`
                : rule === 'mutating'
                  ? `chunk = self.chunk_size = ${p.chunk}`
                  : `chunk = ${p.chunk}`;
            const attrNote = p.attr !== before ? ` (self.chunk_size: ${before} -> ${p.attr})` : '';
            const text = (x: readonly Range[]) => (x.length < 2 ? `1 chunk: the unchunked path` : `${x.length} chunks ${x.map(rangeText).join(' ')}`);
            const fresh = planChunks(n, cfg.chunkRows, cfg, rule).ranges;
            const freshNote = !localUnchunked && text(fresh) !== text(rs) ? ` (a fresh layer: ${text(fresh)})` : '';
            return `forward(n=${n}): ${localUnchunked ? 'rank-local rule: no chunking' : how}${attrNote}: ${text(rs)}${freshNote}`;
          },
        }),
      );
      // bias_ = self.bias on rank 0 only: the all-reduce sums it in once.
      const biased = rank === 0 || bugs.biasEveryRank === true;
      const partial = (r: Range) => `P${cp}${rangeText(r)}${biased ? '+b' : ''}`;
      const biasBuf = `output_bias${cp}`;
      buffers[biasBuf] = {};
      // The fix hoists `output_bias = self.bias if self.skip_bias_add else None` above the branch; the PR
      // assigns it on the unchunked path only.
      if (!bugs.unboundBias) emit(cpuWrite(biasBuf, 'None'));
      if (cfg.streams === false) {
        if (bugs.unboundBias && ranges.length < 2) emit(cpuWrite(biasBuf, 'None'));
        emit(cpuRead(biasBuf));
        return;
      }
      if (ranges.length < 2) {
        // The original path: matmul, then the all-reduce, both on C.
        const out = `out${cp}`;
        buffers[out] = { alloc: true };
        seq++;
        emit(alloc(out, 'C'));
        emit(launch('C', `matmul${cp}`, { reads: ['x'], writes: [out], value: partial(ranges[0]) }));
        emitAllReduce('C', out, cp);
        if (bugs.unboundBias) emit(cpuWrite(biasBuf, 'None'));
        emit(cpuRead(biasBuf));
        return;
      }
      const outs: string[] = [];
      const seqs: number[] = [];
      const last = ranges.length - 1;
      ranges.forEach((r, i) => {
        const L = lab(c, i);
        const out = `out${L}`;
        outs.push(out);
        buffers[out] = { alloc: true };
        emit(alloc(out, 'C'));
        emit(launch('C', `matmul${L}`, { reads: ['x'], writes: [out], value: partial(r) }));
        seq++;
        seqs.push(seq);
        if (i > 0) f.overlapPairs.push({ nextMatmul: `matmul${L}`, seq: seq - 1 });
        const onC = bugs.lastOnC === true && i === last;
        const S = onC ? 'C' : 'K';
        if (!onC) {
          emit(record(`compute_ev${L}`, 'C'));
          if (!bugs.skipComputeWait) emit(waitEvent('K', `compute_ev${L}`));
        }
        emitAllReduce(S, out, L);
        // All-reduced on C itself: C's own order already puts any later use of the block after it.
        if (onC) waitAt.set(out, prog.length - 1);
        if (!onC) emit(record(`comm_ev${L}`, 'K'));
        if (bugs.freeBeforeWait) freeAt.set(out, emit(free(out)));
        if (bugs.serialise && !onC) waitAt.set(out, emit(waitEvent('C', `comm_ev${L}`)));
      });
      if (!bugs.serialise && !bugs.consumerSkipsWait) {
        ranges.forEach((_, i) => {
          if (bugs.lastOnC && i === last) return;
          waitAt.set(outs[i], emit(waitEvent('C', `comm_ev${lab(c, i)}`)));
        });
      }
      const output = `output${cp}`;
      buffers[output] = {};
      const want = `XW+b${cp}[0,${n})`;
      const tiles = coversOnce(ranges, n);
      emit(
        launch('C', `cat${cp}`, {
          reads: outs,
          writes: [output],
          value: (ins) =>
            ins.every((v, i) => v === `all_reduce#${seqs[i]}`) && tiles
              ? want
              : `cat(${ins.map((v, i) => `${rangeText(ranges[i])}=${v ?? 'unwritten'}`).join(', ')})`,
        }),
      );
      f.catInputs.set(`cat${cp}`, outs);
      f.results.push({ buf: output, want });
      emit(cpuRead(biasBuf));
      if (!bugs.freeBeforeWait) outs.forEach((o) => freeAt.set(o, emit(free(o))));
      // Lifetimes: the free of each chunk output must come after C's wait on its comm event.
      for (const o of outs) {
        const fa = freeAt.get(o);
        if (fa !== undefined) f.lifetimes.push({ out: o, freeAt: fa, waitAt: waitAt.get(o) ?? Infinity });
      }
    });
    return prog;
  };

  const programs = Array.from({ length: cfg.tp }, (_, r) => programFor(r));
  const ranks = [...Array(cfg.tp).keys()];

  // What each property reads, for partial-order reduction: one conjunct per rank, each of that rank's fields.
  const perRank = (...fields: ((r: number) => string)[]) => ranks.map((r) => fields.map((f) => f(r)));
  const invariants: Record<string, (s: State) => boolean> = {
    'chunks-cover-rows-once': observing(perRank((r) => `vars[${r}]`), (s: State) =>
      s.vars.every((v) => (v.call as number) < 0 || coversOnce(v.plan as unknown as Range[], v.n as number))),
    'chunking-depends-on-n-only': observing(perRank((r) => `vars[${r}]`), (s: State) =>
      s.vars.every((v, r) => {
        if ((v.call as number) < 0) return true;
        if (bugs.rankLocalChunking && r > 0) return true;
        const fresh = planChunks(v.n as number, cfg.chunkRows, cfg, rule).ranges;
        const plan = v.plan as unknown as Range[];
        return plan.length === fresh.length && plan.every((x, i) => x[0] === fresh[i][0] && x[1] === fresh[i][1]);
      })),
    'chunk-outputs-alive-until-waited': observing(perRank((r) => `threads[${r}]`), (s: State) =>
      ranks.every((r) => {
        const pc = s.threads[r].main;
        const at = pc === 'done' || pc === 'raised' ? Infinity : (pc as number);
        // The free has run (at > freeAt) while the wait has not been issued yet (at <= waitAt).
        return facts[r].lifetimes.every((l) => !(at > l.freeAt && at <= l.waitAt));
      })),
    'chunked-equals-unchunked': observing(perRank((r) => `buffers[${r}]`, (r) => `blocks[${r}]`), (s: State) =>
      ranks.every((r) =>
        facts[r].results.every((x) => {
          const v = bufferValue(s, r, x.buf);
          return v === null || v === x.want;
        }),
      )),
  };

  /** Per rank, the op at the head of `stream` before a step. */
  const headOp = (s: State, r: number, q: string) => opName(s.streams[r][q]?.[0]);
  const execOf = (step: StepLabel) =>
    step.action === 'exec' ? { rank: step.params.rank as number, stream: step.params.stream as string } : undefined;
  /** What each rank's part of the collective about to run reads (its chunk's partial sum, if all is well). */
  const collInputs = (s: State) =>
    ranks.map((r) => {
      const key = s.streams[r]['nccl:tp'][0];
      const buf = key.split(' ')[2].split('#')[0];
      return seenBy(s, r, key, buf);
    });

  // Each breaks only at a stream op or the collective about to run. A stream op is checked against its own
  // rank's queue and blocks (a part per rank); the collective against every rank's.
  const atOps: StepObservation = {
    actions: ['exec', 'collective'],
    key: (action, p) => (action === 'exec' ? `rank ${p.rank}` : 'collective'),
    reads: (action, p) => (action === 'exec' ? [`streams[${p.rank}]`, `blocks[${p.rank}]`] : ['streams', 'blocks']),
  };
  const atCollectives: StepObservation = { actions: ['collective'], reads: ['streams', 'blocks'] };
  const actionProperties: Record<string, (before: State, step: StepLabel, after: State) => boolean> = {
    'all-reduce-after-matmul': stepObserving(atOps, (before: State, step: StepLabel) => {
      if (step.action === 'collective') return collInputs(before).every((v) => v?.startsWith('P') === true);
      const e = execOf(step);
      if (!e) return true;
      const key = before.streams[e.rank][e.stream][0];
      const out = facts[e.rank].stageInput.get(opName(key)!);
      if (out === undefined) return true;
      return seenBy(before, e.rank, key, out)?.startsWith('P') === true;
    }),
    'consumer-after-all-reduces': stepObserving({ ...atOps, actions: ['exec'] }, (before: State, step: StepLabel) => {
      const e = execOf(step);
      if (!e) return true;
      const key = before.streams[e.rank][e.stream][0];
      const outs = facts[e.rank].catInputs.get(opName(key)!);
      if (outs === undefined) return true;
      return outs.every((o) => seenBy(before, e.rank, key, o)?.startsWith('all_reduce#') === true);
    }),
    'same-all-reduces-on-every-rank': stepObserving(atCollectives, (before: State, step: StepLabel) => {
      if (step.action !== 'collective') return true;
      const rows = collInputs(before).map((v) => (v === null ? null : v.replace(/\+b$/, '')));
      return rows.every((x) => x === rows[0]);
    }),
    'bias-added-exactly-once': stepObserving(atCollectives, (before: State, step: StepLabel) => {
      if (step.action !== 'collective') return true;
      return collInputs(before).filter((v) => v !== null && v.endsWith('+b')).length === 1;
    }),
  };
  for (const k of omit) {
    delete invariants[k];
    delete actionProperties[k];
  }

  const reachable: Record<string, (s: State) => boolean> = {
    'matmul-overlaps-all-reduce': observing(perRank((r) => `streams[${r}]`), (s: State) =>
      ranks.some((r) =>
        facts[r].overlapPairs.some((p) => {
          if (headOp(s, r, 'C') !== p.nextMatmul) return false;
          const h = s.streams[r]['nccl:tp']?.[0];
          return h !== undefined && h.startsWith(`all_reduce #${p.seq} `);
        }),
      )),
  };

  return gpuSystem<null>({
    name: 'overlap-linear',
    ranks: cfg.tp,
    streams: ['C', 'K'],
    buffers,
    vars: { chunkSize: cfg.chunkRows, call: -1, n: 0, plan: [] } satisfies Vars,
    groups: { tp: ranks },
    // Every TP rank issues the same all-reduces: one that issued fewer would leave its peers blocked forever.
    liveness: { 'no-rank-waits-forever': eventually(allDone) },
    threads: (rank) => ({ main: programs[rank] }),
    invariants,
    actionProperties,
    ...(omit.has('matmul-overlaps-all-reduce') || cfg.streams === false ? {} : { reachable }),
  });
}

// ---- configurations and variants ------------------------------------------------------------------------

const base = { chunkRows: 5120, largeRows: 16384, largeParts: 3 } as const;

export const configs = {
  /** TP 2, one call of 9000 rows: chunks [0,5120) and [5120,9000). */
  check: { tp: 2, calls: [9000], ...base },
  /** TP 2, 30000 rows: three chunks of 10000. */
  large: { tp: 2, calls: [30000], ...base },
  /** TP 2, 16385 rows with the streams: four chunks, the last of 2 rows. */
  tinyStreams: { tp: 2, calls: [16385], ...base },
  /** As `check`, with the custom all-reduce (one shared IPC buffer per rank). */
  custom: { tp: 2, calls: [9000], ...base, allReduce: 'custom' },
  /** Two successive calls of one layer, 30000 rows (3 chunks of 10000) then 9000 rows: the chunking rule alone. */
  history: { tp: 2, calls: [30000, 9000], ...base, streams: false },
  /** 16385 rows: 16385 // 3 = 5461, so 4 chunks, the last of 2 rows: the chunking rule alone. */
  tiny: { tp: 2, calls: [16385], ...base, streams: false },
  /** The PR's setting: 4 x H200, Qwen2.5-72B at TP 4. */
  pr: {
    tp: 4,
    calls: [16384],
    ...base,
    numbers: {
      gpus: '4 x H200',
      model: 'Qwen2.5-72B, TP 4',
      hidden: 8192,
      bytesPerElement: 2,
      chunkMiB: (5120 * 8192 * 2) / 2 ** 20,
      tokensPerSecond: { baseline: 21444.592, pr: 21821.196, gainPercent: 1.76 },
    },
  },
} satisfies Record<string, OverlapConfig>;

export default defineProtocol<OverlapConfig>({
  name: 'overlap-linear',
  summary: 'chunked RowParallelLinear: matmul of chunk i+1 on C overlaps the all-reduce of chunk i on K (SGLang #6923)',
  configs,
  variants: [
    {
      name: 'fixed',
      summary: 'local chunk size, K waits each compute event, C waits every comm event, output_bias bound on both paths',
      expect: { verdict: 'holds' },
      build: (c) => overlapLinear(c),
    },
    {
      name: 'fixed-two-calls',
      summary: 'the fixed layer called with 30000 then 9000 rows: the second call chunks like a fresh layer',
      expect: { verdict: 'holds' },
      build: (c) => overlapLinear(c),
      config: configs.history,
    },
    {
      name: 'tiny-last-chunk',
      summary: "the PR's formula at 16385 rows (3 x 5461 + 2): four chunks, the last of 2 rows, still cover [0, n) once",
      expect: { verdict: 'holds' },
      build: (c) => overlapLinear(c),
      config: configs.tiny,
    },
    {
      name: 'output-bias-unbound',
      summary: '(reviewer, critical) output_bias is assigned only on the unchunked path: the chunked return reads an unbound local',
      expect: { verdict: 'violated', property: 'no-uninitialised-read' },
      build: (c) => overlapLinear(c, { unboundBias: true }),
    },
    {
      name: 'chunk-size-mutated',
      summary: '(reviewer) self.chunk_size = n // 3 inside forward: after n = 30000, a call with n = 9000 runs unchunked',
      expect: { verdict: 'violated', property: 'chunking-depends-on-n-only' },
      build: (c) => overlapLinear(c, { rule: 'mutating' }),
      config: configs.history,
    },
    {
      name: 'serialised-branch',
      summary: "(reviewer) the non-communicating branch's per-chunk sync: C waits comm event i before chunk i+1, no overlap",
      expect: { verdict: 'violated', property: 'matmul-overlaps-all-reduce' },
      build: (c) => overlapLinear(c, { serialise: true }),
    },
    {
      name: 'comm-skips-compute-wait',
      summary: '(mine) K does not wait compute event i: the all-reduce reads an unfinished chunk (19/20 corrupted on the H100)',
      expect: { verdict: 'violated', property: 'all-reduce-after-matmul' },
      build: (c) => overlapLinear(c, { skipComputeWait: true }),
    },
    {
      name: 'fixed-custom-all-reduce',
      summary: 'the fixed protocol with the custom all-reduce (one shared buffer per rank): every chunk goes through K',
      expect: { verdict: 'holds' },
      build: (c) => overlapLinear(c),
      config: configs.custom,
    },
    {
      name: 'second-all-reduce-on-C',
      summary: "(mine) the last chunk is all-reduced on C through the shared buffer before C waited K's all-reduce",
      expect: { verdict: 'violated', property: 'no-write-while-writing' },
      build: (c) => overlapLinear(c, { lastOnC: true }),
      config: configs.custom,
    },
    {
      name: 'three-parts-drop-remainder',
      summary: '(mine) "fixing" the tiny last chunk with exactly 3 chunks of n // 3: rows 16383 and 16384 are never computed',
      expect: { verdict: 'violated', property: 'chunks-cover-rows-once' },
      build: (c) => overlapLinear(c, { rule: 'three-parts' }),
      config: configs.tiny,
    },
  ],
});
