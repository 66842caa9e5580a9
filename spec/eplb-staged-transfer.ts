/**
 * # Async expert rebalancing with a one-layer staging buffer (vLLM #20990; merged successor vLLM #22179)
 *
 * protocols.md section 2; seed `001_7e0b3611c48198dc.txt`. #20990 ("EPLB Execution Optimization") proposed
 * moving expert weights in the background, one MoE layer at a time, through a preallocated buffer; its own
 * code never merged, and #22179 (`vllm/distributed/eplb/async_worker.py`, `eplb_state.py`) is the mechanism
 * that did. This module models the merged mechanism with its later fixes as `fixed`, and each bug the
 * reviewers, the follow-up fixes, or this checker found as a variant.
 *
 * ## Actors (per expert-parallel rank r)
 * - `rank r main`: the engine thread that runs a forward pass and then `EplbState.step()`, every step; its
 *   current stream is M (`rank r stream M`), where the buffer-to-weights copies run before the next pass.
 * - `rank r worker`: the daemon thread of `start_async_worker`; its stream W (`rank r stream W`) carries one
 *   layer's expert rows into the staging buffer. Rows between ranks travel in one `batch_isend_irecv` per
 *   layer on NCCL's per-pair queue (`nccl rank a -> rank b`); the ready-flag agreement is an all-reduce on
 *   the EP group's gloo CPU group; the MoE all-to-all of every forward pass is a collective of the EP group.
 * - `torchrun` (only in `fixed`): when a rank's main thread dies with the worker's exception, the launcher
 *   tears every rank down (the job fails loudly and restarts).
 *
 * ## State
 * Per rank, on the device (kit buffers with value tags): the expert rows `w<l>_<p>` of layer l, physical slot
 * p (tag `L<l>:e<x>`: logical expert x; rank r owns p in [rS, rS+S)), and the staging buffer, one row per
 * local slot (`buf<i>`); events `consumed` (recorded on M after the copy-out) and, in `fixed-ready-event`,
 * `bufReady` (recorded on W after the transfer). Per rank, on the CPU (`vars`): `ready` (`ep_buffer_ready`),
 * `rebalanced`, `rearrange` (`rearrange_event`), `layer` (`layer_to_transfer`), `lock` (`buffer_lock`: null,
 * 'main' or 'worker'), `maps` (the `physical_to_logical_map` row of each layer; the logical-to-physical map
 * and replica counts move with it), `workerError` (the worker handed main an exception), `round`/`offers`
 * (agreement rounds so far, and the ready flag this rank put into each, one bit per round), `step`,
 * `fwdLayers` (layers moved before this step's forward pass), `fwd` (what that pass saw: `ok`, or the first
 * row its map routes to other weights), `doneStep` (the step that moved the last layer). The plan each
 * rank's worker computed is in `user.plans`.
 *
 * ## Steps
 * Main, step 0: the rebalance interval elapsed: all-reduce the load window, set `rebalanced`, reset `layer`,
 * set `rearrange_event`. Every later step: a forward pass (after the work queued on M: it reads each layer's
 * weight rows and map row; then the MoE all-to-all, which every rank must join), then the EPLB step: while
 * `rebalanced`, all-reduce the `ready` flags; if every rank offered a ready buffer, move layer `layer`: copy
 * the changed rows buffer -> weights on M, copy the layer's map rows from the new plan, record `consumed` on
 * M, clear `ready`, advance `layer` (after the last layer, clear `rebalanced`).
 * Worker: wait for `rearrange_event`; compute the plan (every rank the same one, from the same all-reduced
 * load); per layer: once `ready` is clear, take `buffer_lock`; make W wait `consumed`; copy the rows this
 * rank already holds into the buffer on W; exchange the others with each peer in one `batch_isend_irecv`,
 * waited on W; synchronize W; set `ready` and release the lock.
 *
 * ## Properties (the brief's wording -> the name the checker reports)
 * - a layer's weights and its map rows change in the same gap between forward passes (no forward sees a
 *   half-moved layer, or new weights with an old map) -> `layer-weights-and-maps-change-together`, checked
 *   on what every forward pass read;
 * - the worker never writes layer L+1 into the buffer before M has finished copying layer L out -> the
 *   kit's `no-write-while-reading` on a staging row (a receive overtakes the copy-out queued before it);
 * - M never reads the buffer before W finished writing it -> the kit's `no-read-while-writing` on a staging
 *   row (the copy-out overtakes the receive issued before it);
 * - all ranks apply layer L at the same step -> `all-ranks-apply-layer-at-same-step` (ranks at the same step
 *   moved the same number of layers before its forward pass);
 * - the plan is a valid placement (every logical expert has >= 1 replica, replica counts sum to the
 *   physical slots, each rank holds the same number of slots, the two maps are inverse) ->
 *   `plan-is-valid-placement`;
 * - a cycle ends in at least L steps -> `cycle-spans-at-least-L-steps`;
 * - no rank waits forever -> the built-in `deadlock`, and `rebalance-never-wedged`: a state from which main
 *   can never move another layer nor start another rebalance (its worker has ended, `rebalanced` is still
 *   set, no layer is ready, and nobody told main). Main keeps running forward passes there, so it is a
 *   livelock, not a deadlock: it is checked as this state predicate, and as the liveness properties
 *   `no-rank-waits-forever` (every thread runs to its end) and `rebalance-completes` (every rank moved every
 *   layer, or the job failed loudly), which `check --liveness-only` checks on their own.
 * The kit's other checks (uninitialised and stale reads, racing writes, use after free) are on as well.
 *
 * ## Bounds and abstractions of the model
 * - Programs are straight-line (the kit's rule), so main's loop is unrolled per layer: up to `idleSteps`
 *   steps that may find the layer not ready everywhere, then one patient step that first idles (skipping
 *   forward passes, which would see unchanged weights and maps) until every rank has a layer ready. The
 *   code that moves layer l appears once in main's program (the kit keys an event wait by statement).
 * - A forward pass is modelled at the granularity the protocol needs: main waits for stream M (the pass runs
 *   behind the copies queued there), reads every layer's weight rows and map rows, and joins the EP group's
 *   all-to-all as a blocking collective (the engine reads each pass's output back). The map rows are copied
 *   on M in vLLM, in stream order with the weight copies; here they are variables set in the same step that
 *   clears `ready`, read by the next pass after it waited for M: the same order.
 * - With a blocking acquire, main never waits for `buffer_lock` (the worker releases it as it sets `ready`,
 *   and main takes it only after that), so main's lock is modelled only in `nonblocking-lock`, where it
 *   matters; for the same reason the worker sets `ready` and releases the lock in one step elsewhere.
 * - One rebalance cycle; the load window reaches the worker through a blocking all-reduce (vLLM records
 *   `window_ready_event`); the plan is computed once from the configured load, as every rank's worker would.
 *
 * ## Numbers
 * `pr`: DeepSeek-R1, 256 logical + 32 redundant = 288 physical experts, 58 MoE layers, EP 32 (9 local experts
 * each), an FP8 expert about 44 MB, load window 1000 steps, rebalance interval 3000 steps. `qwen3`: what
 * vLLM's tests run (Qwen3-30B-A3B, 128 experts, 48 MoE layers). Neither is explorable. `check`: 2 EP ranks,
 * 2 layers, 3 logical + 1 redundant = 4 physical experts, 2 per rank, one idle step per layer: layer 0 swaps a
 * row between the ranks, layer 1 sends one row to rank 0 through the same buffer row. `large`: 3 layers, the
 * largest on which `fixed` finishes within 20 s (4 layers, or 2 idle steps per layer, take about 30 s).
 *
 * ## State counts (`node bin/interleave.mjs check spec/eplb-staged-transfer.ts`, check configuration)
 *
 * | variant                        | verdict  | property                                 | states | depth |
 * | ------------------------------ | -------- | ---------------------------------------- | -----: | ----: |
 * | fixed                          | holds    |                                          | 24,924 |    80 |
 * | fixed-ready-event              | holds    |                                          | 17,016 |    76 |
 * | stale-plan-maps                | violated | layer-weights-and-maps-change-together   |    884 |    29 |
 * | noop-synchronize               | violated | no-read-while-writing                    |    732 |    22 |
 * | noop-agreement-all-ranks       | violated | all-ranks-apply-layer-at-same-step       |  1,538 |    31 |
 * | noop-agreement-one-rank        | violated | deadlock                                 |    535 |    23 |
 * | ready-after-stream-wait        | violated | no-read-while-writing                    |    732 |    22 |
 * | nonblocking-lock               | violated | all-ranks-apply-layer-at-same-step       |  2,279 |    35 |
 * | no-consumed-event              | violated | no-write-while-reading                   |  1,315 |    31 |
 * | consumed-event-recorded-late   | violated | no-write-while-reading                   |  2,817 |    35 |
 * | rank-local-guard               | violated | deadlock                                 |  1,069 |    26 |
 * | worker-raise-unreported        | violated | rebalance-never-wedged                   |     85 |     7 |
 * | worker-raise-finally-clears    | violated | deadlock                                 |  2,013 |    22 |
 *
 * `fixed` on `large` (3 layers): holds, 85,248 states, depth 117, about 5 s.
 */
import { defineProtocol, eventually } from '../model/index.ts';
import type { Action } from '../model/index.ts';
import { actionsOf } from '../model/index.ts';
import {
  type Body,
  type Ctx,
  type GpuState,
  type GpuSystem,
  collective,
  type Stmt,
  batchIsendIrecv,
  copy,
  irecv,
  isend,
  isFinished,
  gpuSystem,
  mayRaise,
  raise,
  record,
  step,
  syncStream,
  tryCatch,
  tryFinally,
  until,
  wait,
  waitEvent,
  when,
  allDone,
} from '../model/gpu/index.ts';

// ---- configuration ---------------------------------------------------------------------------------------

export interface EplbConfig {
  /** Expert-parallel ranks. */
  readonly ranks: number;
  /** MoE layers moved in one cycle, one per step. */
  readonly layers: number;
  /** Logical experts per layer. */
  readonly logical: number;
  /** Redundant (extra physical) experts per layer; physical = logical + redundant, split evenly over ranks. */
  readonly redundant: number;
  /** Per layer, per logical expert: the load window summed over ranks (what the all-reduce gives the planner). */
  readonly load: readonly (readonly number[])[];
  /** Per layer, the main-loop steps that may pass without moving it before main idles patiently (a model bound). */
  readonly idleSteps: number;
  /** Documentation only (not used by the model): the PR's sizes and periods. */
  readonly model?: string;
  readonly expertMB?: number;
  readonly windowSteps?: number;
  readonly intervalSteps?: number;
}

/** A deterministic, skewed load for configurations too large to write out (never explored). */
function syntheticLoad(layers: number, logical: number): number[][] {
  return Array.from({ length: layers }, (_, l) => Array.from({ length: logical }, (_, e) => ((e * 37 + l * 11) % 97) + 1));
}

const CHECK: EplbConfig = {
  ranks: 2,
  layers: 2,
  logical: 3,
  redundant: 1,
  // layer 0: expert 1 is hot (rank 0 and rank 1 swap a row); layer 1: expert 2 is hot (rank 1 sends one row).
  load: [
    [10, 50, 20],
    [10, 20, 50],
  ],
  idleSteps: 1,
};

const LARGE: EplbConfig = { ...CHECK, layers: 3, load: [...CHECK.load, [50, 10, 20]] };

const PR: EplbConfig = {
  model: 'DeepSeek-R1',
  ranks: 32,
  layers: 58,
  logical: 256,
  redundant: 32,
  load: syntheticLoad(58, 256),
  idleSteps: 2,
  expertMB: 44,
  windowSteps: 1000,
  intervalSteps: 3000,
};

const QWEN3: EplbConfig = {
  model: 'Qwen3-30B-A3B',
  ranks: 8,
  layers: 48,
  logical: 128,
  redundant: 0,
  load: syntheticLoad(48, 128),
  idleSteps: 2,
  windowSteps: 1000,
  intervalSteps: 3000,
};

// ---- placement: the planner and what a plan asks each rank to move ----------------------------------------

/** vLLM's initial placement: `range(logical)` then `i % logical` for each redundant slot. */
export function initialPlacement(logical: number, redundant: number): number[] {
  return [...Array(logical).keys(), ...Array.from({ length: redundant }, (_, i) => i % logical)];
}

/**
 * A small rebalancer in the spirit of `rebalance_experts`: give each redundant slot to the expert with the
 * highest load per replica, pack replicas onto ranks heaviest first (least-loaded rank with a free slot), and
 * keep an expert in the slot it already occupies where it can (fewer rows to move).
 */
export function rebalance(load: readonly number[], old: readonly number[], ranks: number): number[] {
  const N = load.length;
  const P = old.length;
  const S = P / ranks;
  const count = Array(N).fill(1) as number[];
  for (let k = 0; k < P - N; k++) {
    let best = 0;
    for (let e = 1; e < N; e++) if (load[e] * count[best] > load[best] * count[e]) best = e;
    count[best]++;
  }
  const items: number[] = [];
  for (let e = 0; e < N; e++) for (let c = 0; c < count[e]; c++) items.push(e);
  items.sort((a, b) => load[b] * count[a] - load[a] * count[b] || a - b);
  const members: number[][] = Array.from({ length: ranks }, () => []);
  const total = Array(ranks).fill(0) as number[];
  for (const e of items) {
    let best = -1;
    for (let d = 0; d < ranks; d++) {
      if (members[d].length >= S) continue;
      if (best < 0 || total[d] < total[best]) best = d;
    }
    members[best].push(e);
    total[best] += load[e] / count[e];
  }
  const row = Array(P).fill(-1) as number[];
  for (let d = 0; d < ranks; d++) {
    const left = [...members[d]].sort((a, b) => a - b);
    for (let i = 0; i < S; i++) {
      const at = left.indexOf(old[d * S + i]);
      if (at >= 0) {
        row[d * S + i] = old[d * S + i];
        left.splice(at, 1);
      }
    }
    for (let i = 0; i < S; i++) if (row[d * S + i] < 0) row[d * S + i] = left.shift()!;
  }
  return row;
}

/** A plan as `rebalance_experts` returns it: the three maps, per layer. */
export interface Plan {
  readonly p2l: readonly (readonly number[])[];
  readonly l2p: readonly (readonly (readonly number[])[])[];
  readonly count: readonly (readonly number[])[];
}

/** `logical_to_physical_map` and `logical_replica_count` of a `physical_to_logical_map` row. */
export function invert(row: readonly number[], logical: number): { l2p: number[][]; count: number[] } {
  const l2p: number[][] = Array.from({ length: logical }, () => []);
  row.forEach((e, p) => {
    if (e >= 0 && e < logical) l2p[e].push(p);
  });
  return { l2p, count: l2p.map((x) => x.length) };
}

export type Planner = (cfg: EplbConfig, old: readonly number[]) => Plan;

export const goodPlanner: Planner = (cfg, old) => {
  const p2l = cfg.load.map((ld) => rebalance(ld, old, cfg.ranks));
  const inv = p2l.map((row) => invert(row, cfg.logical));
  return { p2l, l2p: inv.map((x) => x.l2p), count: inv.map((x) => x.count) };
};

/** Why a plan is not a valid placement, or null. */
export function planProblem(plan: Plan, cfg: EplbConfig): string | null {
  const P = cfg.logical + cfg.redundant;
  if (P % cfg.ranks !== 0) return `${P} physical slots do not split evenly over ${cfg.ranks} ranks`;
  for (let l = 0; l < cfg.layers; l++) {
    const row = plan.p2l[l];
    if (row.length !== P) return `layer ${l}: ${row.length} physical slots, expected ${P}`;
    if (row.some((e) => !Number.isInteger(e) || e < 0 || e >= cfg.logical)) return `layer ${l}: a slot holds no logical expert`;
    const counts = plan.count[l];
    for (let e = 0; e < cfg.logical; e++) if (!(counts[e] >= 1)) return `layer ${l}: logical expert ${e} has no replica`;
    const sum = counts.reduce((a, b) => a + b, 0);
    if (sum !== P) return `layer ${l}: replica counts sum to ${sum}, not ${P}`;
    for (let e = 0; e < cfg.logical; e++) {
      const ps = plan.l2p[l][e];
      if (ps.length !== counts[e]) return `layer ${l}: expert ${e} has ${counts[e]} replicas but ${ps.length} physical slots`;
      for (const p of ps) if (row[p] !== e) return `layer ${l}: logical_to_physical says slot ${p} holds expert ${e}, physical_to_logical says ${row[p]}`;
    }
    for (let p = 0; p < P; p++) if (!plan.l2p[l][row[p]]?.includes(p)) return `layer ${l}: slot ${p} is missing from logical_to_physical`;
  }
  return null;
}

interface Recv {
  readonly slot: number;
  readonly from: number;
  readonly fromSlot: number;
}
interface Send {
  readonly to: number;
  readonly toSlot: number;
  readonly fromSlot: number;
}
/** What one rank moves for one layer: rows received from peers, rows copied from its own old slots, rows it sends. */
export interface Moves {
  readonly recvs: readonly Recv[];
  readonly locals: readonly { readonly slot: number; readonly fromSlot: number }[];
  readonly sends: readonly Send[];
  /** The local slots whose row comes from the buffer (copied out by main). */
  readonly changed: readonly number[];
}

/** `transfer_layer`'s bookkeeping: unchanged slots stay, rows present locally are copied, the rest received from the lowest rank that has them. */
export function movesOf(old: readonly number[], neu: readonly number[], ranks: number): Moves[] {
  const S = old.length / ranks;
  const out = Array.from({ length: ranks }, () => ({ recvs: [] as Recv[], locals: [] as { slot: number; fromSlot: number }[], sends: [] as Send[], changed: [] as number[] }));
  for (let d = 0; d < ranks; d++) {
    for (let i = 0; i < S; i++) {
      const x = neu[d * S + i];
      if (old[d * S + i] === x) continue;
      out[d].changed.push(i);
      const j = [...Array(S).keys()].find((k) => old[d * S + k] === x);
      if (j !== undefined) {
        out[d].locals.push({ slot: i, fromSlot: j });
        continue;
      }
      const p = old.findIndex((e) => e === x);
      if (p < 0) continue; // an expert nobody holds (only with a broken plan): nothing to receive
      const from = Math.floor(p / S);
      out[d].recvs.push({ slot: i, from, fromSlot: p % S });
      out[from].sends.push({ to: d, toSlot: i, fromSlot: p % S });
    }
  }
  return out;
}

// ---- the model ---------------------------------------------------------------------------------------------

/** Each design choice or bug the variants combine. */
export interface Design {
  /** Main copies the map rows from the stale plan (the maps it had), not the new plan. */
  readonly staleMaps?: boolean;
  /** How the worker makes the buffer safe to read before it sets `ready`. */
  readonly bufferReady?: 'synchronize' | 'noop-synchronize' | 'stream-wait-only' | 'event';
  /** The ready-flag agreement is a device-backend collective that does nothing: on every rank, or on the last rank. */
  readonly noopAgreement?: 'all' | 'one';
  /** Main tries `buffer_lock` without blocking and skips the layer this step if the worker still holds it. */
  readonly nonBlockingLock?: boolean;
  /** How the worker avoids overwriting the buffer main is still copying out. */
  readonly consumed?: 'event' | 'none' | 'recorded-after-release';
  /** The agreement all-reduce is guarded by this rank's own `ready` flag, not by `rebalanced`. */
  readonly rankLocalGuard?: boolean;
  /** The worker may raise while moving a layer; what happens then. */
  readonly workerRaise?: 'reported' | 'unreported' | 'finally-clears';
  /** Test-only: the planner (default: the real one). */
  readonly planner?: Planner;
  /** Test-only: agreement rounds per step (default 1; 2 lets main move two layers in one step). */
  readonly roundsPerStep?: number;
}

export interface EplbUser {
  /** The plan each rank's worker computed (a JSON key of `Plan`), or null. */
  readonly plans: readonly (string | null)[];
}

type St = GpuState<EplbUser>;
type C = Ctx<EplbUser>;

const rowTag = (row: readonly number[]) => row.join(',');
const weightTag = (l: number, e: number) => `L${l}:e${e}`;
const bit = (offers: number, b: number) => Math.floor(offers / 2 ** b) % 2 === 1;

export function buildEplb(cfg: EplbConfig, d: Design = {}): GpuSystem<EplbUser> {
  const R = cfg.ranks;
  const L = cfg.layers;
  const P = cfg.logical + cfg.redundant;
  const S = P / R;
  if (!Number.isInteger(S)) throw new Error(`eplb: ${P} physical experts do not split over ${R} ranks`);
  if (cfg.load.length !== L) throw new Error(`eplb: load has ${cfg.load.length} layers, expected ${L}`);
  const old0 = initialPlacement(cfg.logical, cfg.redundant);
  const plan = (d.planner ?? goodPlanner)(cfg, old0);
  const planKey = JSON.stringify(plan);
  const moves = plan.p2l.map((row) => movesOf(old0, row, R));
  const bufferReady = d.bufferReady ?? 'synchronize';
  const consumed = d.consumed ?? 'event';
  const rounds = d.roundsPerStep ?? 1;
  const raiseMode = d.workerRaise;
  // Setting `ready` and releasing the lock are one step unless main's acquire is non-blocking: a blocking
  // acquire cannot tell the two orders apart (main takes the lock only once `ready` is set).
  const publishSeparately = !!d.nonBlockingLock;
  const ranks = [...Array(R).keys()];
  const layers = [...Array(L).keys()];
  const slots = [...Array(S).keys()];

  // The plan's validity is a function of the plan (and the configuration): computed once per plan.
  const validity = new Map<string, string | null>();
  const problemOf = (key: string): string | null => {
    let p = validity.get(key);
    if (p === undefined) {
      p = planProblem(JSON.parse(key) as Plan, cfg);
      validity.set(key, p);
    }
    return p;
  };

  // Weight rows are named by their global physical slot (`w<l>_<p>`), so their initial values are the same
  // declaration on every rank (the kit's buffer initial values are per name); rank r uses p in [rS, rS+S).
  const wb = (r: number, l: number, i: number) => `w${l}_${r * S + i}`;

  /**
   * One forward pass, at the granularity the protocol cares about: main waits for stream M (the pass runs
   * after the copies main queued there), the pass reads every layer's local weight rows and map row, and its
   * MoE all-to-all is a collective of the whole EP group that the engine waits for (it reads the output back
   * every step). What the pass saw goes into `fwd`: `ok`, or the first row whose weights the map does not route.
   */
  const forwardCheck = (c: C): string => {
    for (const l of layers) {
      const row = (c.vars.maps as string[])[l].split(',').map(Number);
      for (const i of slots) {
        const want = weightTag(l, row[c.rank * S + i]);
        const got = c.value(wb(c.rank, l, i));
        if (got !== want) return `layer ${l} slot ${c.rank * S + i}: weights hold ${got}, the map routes ${want}`;
      }
    }
    return 'ok';
  };

  const noopHere = (r: number) => d.noopAgreement === 'all' || (d.noopAgreement === 'one' && r === R - 1);
  /** Whether every rank (only this one, if its all-reduce is a no-op) offered a ready buffer in this rank's latest agreement round. */
  const agreed = (c: C) => (noopHere(c.rank) ? [c.rank] : ranks).every((p) => bit(c.s.vars[p].offers as number, c.vars.round as number));
  /** The next agreement round: this rank's `ready` goes into it (the flag tensor is built before the all-reduce). */
  const nextRound = (c: C) => {
    const round = (c.vars.round as number) + 1;
    return { round, offers: (c.vars.offers as number) + (c.vars.ready ? 2 ** round : 0) };
  };
  const allReady = (c: C) => ranks.every((p) => c.s.vars[p].ready === true);

  /**
   * Main's `move_to_workspace` for layer l: copy the changed rows buffer -> weights on M, copy the layer's
   * map rows (on M too, so they are in place for the same next forward pass: a variable here, read by the
   * forward after it waited for M), record `consumed`, clear `ready`, advance `layer_to_transfer`.
   */
  const consume = (r: number, l: number): Body<EplbUser> => {
    const mv = moves[l][r];
    const newRow = rowTag(d.staleMaps ? old0 : plan.p2l[l]);
    const body: Body<EplbUser> = [
      bufferReady === 'event' && waitEvent('M', 'bufReady'),
      mv.changed.map((i) => copy('M', `buf${i}`, wb(r, l, i))),
      consumed === 'event' && record('consumed', 'M'),
      step(`finish_layer_${l}`, {
        effect: (c) => ({
          vars: {
            maps: (c.vars.maps as string[]).with(l, newRow),
            ready: false,
            layer: l + 1,
            lock: null,
            rebalanced: l + 1 < L,
            doneStep: l + 1 === L ? c.vars.step : c.vars.doneStep,
          },
        }),
        describe: () =>
          `map rows of layer ${l} <- ${d.staleMaps ? 'the stale plan' : 'the new plan'} [${newRow}]; ep_buffer_ready = False, layer_to_transfer = ${l + 1}${l + 1 === L ? ', rebalanced = False (the cycle is over)' : ''}${d.nonBlockingLock ? '; buffer_lock.release()' : ''}`,
      }),
      consumed === 'recorded-after-release' && record('consumed', 'M'),
      // The next forward pass is queued on M behind these copies: main's next step starts after them.
      syncStream('M'),
    ];
    return body;
  };

  /**
   * Whether main moves the layer after this step's agreement. With a blocking acquire main never waits for
   * buffer_lock (the worker releases it as it sets `ready`), so the lock is modelled only where main's
   * acquire is non-blocking: there a failed acquire skips the layer until the next step.
   */
  const proceeds = (c: C) => (d.nonBlockingLock ? c.vars.gotLock === true : agreed(c));
  const tryLock =
    d.nonBlockingLock &&
    step('try_acquire_buffer_lock', {
      effect: (c) => {
        const got = agreed(c) && c.vars.lock === null;
        return { vars: { lock: got ? 'main' : c.vars.lock, gotLock: got } };
      },
      describe: (c) =>
        !agreed(c)
          ? 'not every rank offered a ready buffer: no move_to_workspace this step'
          : c.vars.lock === null
            ? 'every rank offered a ready buffer: buffer_lock.acquire(blocking=False) succeeds'
            : `every rank offered a ready buffer, but buffer_lock.acquire(blocking=False) fails (the ${c.vars.lock} still holds it): this rank skips the layer this step`,
    });

  /**
   * One step of the main loop while layer l waits to be moved: the forward pass, then the EPLB step's
   * agreement; if it fails, `rest` (the next step). A `patient` step first idles (skipping forward passes,
   * which would see nothing new) until every rank has a layer ready or the worker reported an error.
   */
  const tryStep = (r: number, patient: boolean, sameStep: boolean, rest: Body<EplbUser>): Body<EplbUser> => {
    const reported = raiseMode === 'reported';
    const offerHere = d.rankLocalGuard || sameStep;
    const offer =
      offerHere &&
      step('offer_ready_flag', {
        effect: (c) => ({ vars: nextRound(c) }),
        describe: (c) => `puts ep_buffer_ready = ${c.vars.ready ? 1 : 0} into the agreement all-reduce`,
      });
    const allReduce = !noopHere(r) && collective('all_reduce', undefined, { backend: 'gloo' });
    // The agreement runs `if rebalanced:` (the same on every rank); the guard is left out where nothing
    // but main clears `rebalanced` (it is then always set here), and kept where the worker can clear it.
    const agreement = d.rankLocalGuard
      ? [when((c) => c.vars.ready === true, "ep_buffer_ready (this rank's own flag)", [offer, allReduce])]
      : raiseMode === 'finally-clears'
        ? [when((c) => c.vars.rebalanced === true, 'rebalanced', [offer, allReduce])]
        : [offer, allReduce];
    // Where the worker's errors are reported, a patient step also wakes up for one, and raises it.
    const idleUntil = (c: C) =>
      (allReady(c) && (!d.nonBlockingLock || c.vars.lock === null)) || (reported && c.vars.workerError === true) || c.vars.rebalanced !== true;
    return [
      patient && reported && until(idleUntil, 'every rank has a layer ready, or the worker reported an error (main idles until then)'),
      // Checked where main idles: a rank whose worker failed never offers a ready buffer, so its earlier
      // steps cannot move a layer anyway (this only delays the raise by at most `idleSteps` steps).
      patient && reported && when((c) => c.vars.workerError === true, 'the worker reported an exception', [raise('EPLB worker failed: re-raised on the main thread')]),
      !sameStep && [
        step('forward', {
          guard: patient && !reported ? idleUntil : undefined,
          effect: (c) => ({
            vars: { fwd: forwardCheck(c), step: (c.vars.step as number) + 1, fwdLayers: c.vars.layer, ...(offerHere ? {} : nextRound(c)) },
          }),
          describe: (c) =>
            `${patient && !reported ? `(idles until every rank has a layer ready${d.nonBlockingLock ? ' and buffer_lock is free' : ''}) ` : ''}step ${(c.vars.step as number) + 1}: forward pass with ${c.vars.layer} of ${L} layers moved (${forwardCheck(c) === 'ok' ? 'weights match the maps' : forwardCheck(c)})${offerHere ? '' : `; ep_buffer_ready = ${c.vars.ready ? 1 : 0} goes into the agreement`}`,
        }),
        collective('all_to_all', undefined, { backend: 'gloo' }),
      ],
      agreement,
      tryLock,
      rest.length > 0 &&
        when(
          (c) => !proceeds(c),
          d.nonBlockingLock
            ? 'the layer must wait (no agreement, or no lock)'
            : noopHere(r)
              ? "the layer must wait (this rank's ep_buffer_ready, all the no-op all-reduce left, is not set)"
              : 'the layer must wait (not every rank offered a ready buffer)',
          rest,
        ),
    ];
  };

  /** The part of main's loop that moves layer l: up to `idleSteps` steps that may find it not ready, then a patient one. */
  const section = (r: number, l: number): Body<EplbUser> => {
    const drain = rounds > 1 && l > 0;
    let steps: Body<EplbUser> = tryStep(r, true, false, []);
    for (let j = cfg.idleSteps - 1; j >= 0; j--) steps = tryStep(r, false, false, steps);
    if (drain) steps = tryStep(r, false, true, steps);
    // A patient step always ends in agreement when every rank agrees through a real all-reduce under a
    // group-wide guard (every rank offered ready = 1 in it): there main needs no second test.
    // (With a non-blocking acquire the patient step also idles until the lock is free.)
    const patientAgrees = !d.noopAgreement && !d.rankLocalGuard && raiseMode !== 'finally-clears';
    return [
      steps,
      patientAgrees ? consume(r, l) : when(proceeds, noopHere(r) ? `this rank's buffer holds layer ${l}` : `every rank offered a ready buffer for layer ${l}`, consume(r, l)),
    ];
  };

  const main = (r: number): Body<EplbUser> => [
    collective('all_reduce', undefined, { backend: 'gloo' }),
    step('start_rebalance', {
      effect: () => ({ vars: { rebalanced: true, rearrange: true, layer: 0 } }),
      describe: () => 'the interval elapsed (load window all-reduced): rebalanced = True, layer_to_transfer = 0, rearrange_event.set()',
    }),
    layers.map((l) => section(r, l)),
    step('forward', {
      effect: (c) => ({ vars: { fwd: forwardCheck(c), step: (c.vars.step as number) + 1, fwdLayers: c.vars.layer } }),
      describe: (c) => `step ${(c.vars.step as number) + 1}: forward pass with ${c.vars.layer} of ${L} layers moved (${forwardCheck(c) === 'ok' ? 'weights match the maps' : forwardCheck(c)})`,
    }),
    collective('all_to_all', undefined, { backend: 'gloo' }),
  ];

  /** The worker's `transfer_layer` of layer l into the buffer, up to setting `ready`. */
  const transfer = (r: number, l: number): Body<EplbUser> => {
    const mv = moves[l][r];
    const ops: Stmt<EplbUser>[] = [];
    for (const q of ranks) {
      if (q === r) continue;
      // Per peer: sends in the order of the peer's slots, receives in the order of ours (the peer mirrors it).
      for (const x of mv.sends.filter((y) => y.to === q).sort((a, b) => a.toSlot - b.toSlot)) ops.push(isend(q, wb(r, l, x.fromSlot)));
      for (const x of mv.recvs.filter((y) => y.from === q).sort((a, b) => a.slot - b.slot)) ops.push(irecv(q, `buf${x.slot}`));
    }
    const note =
      bufferReady === 'noop-synchronize'
        ? ' (after backend.synchronize(), a no-op on this backend)'
        : bufferReady === 'stream-wait-only'
          ? ' (the wait ordered only stream W, not this thread)'
          : '';
    return [
      raiseMode && mayRaise(`transfer_layer(${l}) raises`),
      consumed !== 'none' && waitEvent('W', 'consumed'),
      mv.locals.map((x) => copy('W', wb(r, l, x.fromSlot), `buf${x.slot}`)),
      ops.length > 0 && [batchIsendIrecv(ops, { handle: `moves_${l}` }), wait(`moves_${l}`)],
      bufferReady === 'synchronize' && syncStream('W'),
      bufferReady === 'event' && record('bufReady', 'W'),
      step(`publish_layer_${l}`, {
        effect: (c) => ({ vars: { ready: true, lock: publishSeparately ? c.vars.lock : null } }),
        describe: () => `layer ${l} is in the buffer: ep_buffer_ready = True${note}${publishSeparately ? '' : '; buffer_lock.release()'}`,
      }),
    ];
  };

  const worker = (r: number): Body<EplbUser> => {
    const release = step('release_buffer_lock', { effect: () => ({ vars: { lock: null } }), describe: () => 'buffer_lock.release()' });
    const perLayer = (l: number): Body<EplbUser> => [
      // `if not ep_buffer_ready and rebalanced:` then take the lock; main takes it only once this rank's
      // buffer is ready, so checking and taking it in one step loses no interleaving.
      step('acquire_buffer_lock_w', {
        guard: (c) => c.vars.lock === null && (l === 0 || (c.vars.ready === false && c.vars.rebalanced === true)),
        effect: () => ({ vars: { lock: 'worker' } }),
        describe: () =>
          l === 0 ? 'buffer_lock.acquire() to move layer 0' : `once layer ${l - 1} is copied out (ep_buffer_ready = False), buffer_lock.acquire() to move layer ${l}`,
      }),
      // The exception leaves through the `finally` that releases the lock.
      raiseMode ? tryCatch(transfer(r, l), [release, raise(`transfer_layer(${l}) failed`)]) : transfer(r, l),
      publishSeparately && release,
    ];
    const loop: Body<EplbUser> = layers.map(perLayer);
    return [
      step('compute_plan', {
        guard: (c) => c.vars.rearrange === true,
        effect: (c) => ({ user: { plans: c.user.plans.with(c.rank, planKey) } }),
        describe: () => `rearrange_event is set: computes the new placement from the all-reduced load: ${plan.p2l.map((row, l) => `layer ${l} [${rowTag(row)}]`).join(', ')}`,
      }),
      raiseMode === 'reported'
        ? tryCatch(loop, [
            step('report_error', {
              effect: () => ({ vars: { workerError: true } }),
              describe: () => 'catches the exception and hands it to the main thread (worker_error is set)',
            }),
          ])
        : raiseMode === 'finally-clears'
          ? tryFinally(loop, [step('clear_rebalanced', { effect: () => ({ vars: { rebalanced: false } }), describe: () => 'finally: rebalanced = False' })])
          : loop,
    ];
  };

  const act = actionsOf<St>();
  const teardown: Action<St>[] =
    raiseMode === 'reported'
      ? [
          act('teardown', {
            actor: 'torchrun',
            guard: (s) =>
              s.threads.some((th) => th.main === 'raised') &&
              (s.threads.some((th) => Object.values(th).some((pc) => typeof pc === 'number')) || s.streams.some((qs) => Object.values(qs).some((q) => q.length > 0))),
            effect: (s) => ({
              ...s,
              threads: s.threads.map((th) => Object.fromEntries(Object.entries(th).map(([t, pc]) => [t, typeof pc === 'number' || pc === 'new' ? 'raised' : pc]))),
              streams: s.streams.map((qs) => Object.fromEntries(Object.keys(qs).map((q) => [q, []]))),
            }),
            describe: (_p, s) =>
              `rank ${s.threads.findIndex((th) => th.main === 'raised')} exits with the worker's exception; torchrun tears every rank down (the job fails loudly and restarts)`,
          }),
        ]
      : [];

  const buffers: Record<string, { init?: string }> = {};
  for (const l of layers) for (let p = 0; p < P; p++) buffers[`w${l}_${p}`] = { init: weightTag(l, old0[p]) };
  for (const i of slots) buffers[`buf${i}`] = {};

  return gpuSystem<EplbUser>({
    name: 'eplb-staged-transfer',
    ranks: R,
    streams: ['M', 'W'],
    buffers,
    vars: () => ({
      ready: false,
      rebalanced: false,
      rearrange: false,
      layer: 0,
      lock: null,
      workerError: false,
      offers: 0,
      round: 0,
      step: 0,
      fwdLayers: 0,
      doneStep: null,
      gotLock: false,
      maps: layers.map(() => rowTag(old0)),
      fwd: null,
    }),
    user: { plans: ranks.map(() => null) },
    threads: (r) => ({
      main: main(r),
      worker: { stream: 'W', body: worker(r) },
    }),
    actions: teardown,
    invariants: {
      'plan-is-valid-placement': (s) => s.user.plans.every((k) => k === null || problemOf(k) === null),
      'layer-weights-and-maps-change-together': (s) => s.vars.every((v) => v.fwd === null || v.fwd === 'ok'),
      'all-ranks-apply-layer-at-same-step': (s) =>
        ranks.every((r) => ranks.every((q) => q <= r || s.vars[r].step === 0 || s.vars[r].step !== s.vars[q].step || s.vars[r].fwdLayers === s.vars[q].fwdLayers)),
      'cycle-spans-at-least-L-steps': (s) => s.vars.every((v) => v.doneStep === null || (v.doneStep as number) >= L),
      'rebalance-never-wedged': (s) =>
        ranks.every(
          (r) =>
            !(isFinished(s, r, 'worker') && !isFinished(s, r, 'main') && s.vars[r].rebalanced === true && s.vars[r].ready === false && s.vars[r].workerError !== true),
        ),
    },
    liveness: {
      // "No rank waits forever": every thread of every rank runs to its end.
      'no-rank-waits-forever': eventually(allDone),
      // The cycle ends: every rank moved every layer and cleared `rebalanced`, or a rank re-raised the
      // worker's exception (the job fails loudly). A wedged rank idles forever short of both.
      'rebalance-completes': eventually(
        (s) => s.threads.some((th) => th.main === 'raised') || ranks.every((r) => s.vars[r].rebalanced === false && s.vars[r].layer === L),
      ),
    },
    explainStuck: (s) =>
      ranks.map(
        (r) =>
          `rank ${r} EPLB: layer_to_transfer = ${s.vars[r].layer}, ep_buffer_ready = ${s.vars[r].ready}, rebalanced = ${s.vars[r].rebalanced}, buffer_lock held by ${s.vars[r].lock ?? 'nobody'}`,
      ),
  }) as GpuSystem<EplbUser>;
}

// ---- the protocol ------------------------------------------------------------------------------------------

type V = {
  name: string;
  summary: string;
  design: Design;
  expect: { verdict: 'holds' } | { verdict: 'violated'; property: string };
  /** The liveness property the variant breaks, checked on its own (`check --liveness-only`). */
  liveness?: string;
};

/** The variants: the fixed design, and each bug of the brief as the smallest change to it. */
export const VARIANTS: readonly V[] = [
  {
    name: 'fixed',
    summary:
      'The design as the brief gives it, with every fix: the ready flags agreed by an all-reduce under the group-wide `rebalanced` guard, a blocking buffer_lock, W synchronized before `ready` is set, W waiting the `consumed` event M records after the copy-out, the new plan\'s map rows copied with the layer, and a worker exception handed to main, which re-raises it (the job fails loudly)',
    design: { workerRaise: 'reported' },
    expect: { verdict: 'holds' },
  },
  {
    name: 'fixed-ready-event',
    summary:
      'vLLM main today: W records `buffer_ready_event` after the transfer and M waits it before the copy-out, with no CPU synchronize at all (so a no-op synchronize could not hurt it)',
    design: { bufferReady: 'event' },
    expect: { verdict: 'holds' },
  },
  {
    name: 'stale-plan-maps',
    summary:
      'Reviewer (#20990, post_eplb): the map rows are copied from values that are not the new plan (here: the maps main already had), so the next forward routes tokens with the old map to rows that hold the new experts',
    design: { staleMaps: true },
    expect: { verdict: 'violated', property: 'layer-weights-and-maps-change-together' },
  },
  {
    name: 'noop-synchronize',
    summary:
      "Reviewer (#20990, NPUBackend.synchronize is `pass`): the worker's synchronize of W does nothing, so `ready` is set while the rows are still being received and M copies a buffer W has not finished writing",
    design: { bufferReady: 'noop-synchronize' },
    expect: { verdict: 'violated', property: 'no-read-while-writing' },
  },
  {
    name: 'noop-agreement-all-ranks',
    summary:
      "Reviewer (#20990, the backend's barrier/all_gather are `pass`): the ready-flag agreement does nothing on any rank, so each rank moves a layer when its own buffer is ready: the ranks apply a layer at different steps (a race)",
    design: { noopAgreement: 'all' },
    expect: { verdict: 'violated', property: 'all-ranks-apply-layer-at-same-step' },
    liveness: 'no-rank-waits-forever',
  },
  {
    name: 'noop-agreement-one-rank',
    summary:
      "Reviewer (#20990, no-op collectives hang): the agreement is a no-op on one rank's backend only: that rank goes on into the MoE all-to-all while its peer blocks in the real all-reduce (a hang where some ranks block and others do not)",
    design: { noopAgreement: 'one' },
    expect: { verdict: 'violated', property: 'deadlock' },
    liveness: 'no-rank-waits-forever',
  },
  {
    name: 'ready-after-stream-wait',
    summary:
      "Merged #22179 before its buffer_ready_event fix: `req.wait()` orders only stream W, not the worker's CPU thread, so `ready` is set at once and M copies a buffer still being received",
    design: { bufferReady: 'stream-wait-only' },
    expect: { verdict: 'violated', property: 'no-read-while-writing' },
  },
  {
    name: 'nonblocking-lock',
    summary:
      "Merged code, later fixed: main takes buffer_lock with acquire(blocking=False) and skips the layer when the worker still holds it (between setting `ready` and its release): that rank applies the layer a step later than its peers, and the next exchange no longer matches (deadlock follows)",
    design: { nonBlockingLock: true },
    expect: { verdict: 'violated', property: 'all-ranks-apply-layer-at-same-step' },
    liveness: 'no-rank-waits-forever',
  },
  {
    name: 'no-consumed-event',
    summary:
      "Merged code, fixed by `buffer_consumed_event`: main's copy-out of layer L is only queued on M when it clears `ready`, and W receives layer L+1 into the same buffer rows before that copy has run",
    design: { consumed: 'none' },
    expect: { verdict: 'violated', property: 'no-write-while-reading' },
  },
  {
    name: 'consumed-event-recorded-late',
    summary:
      "Waiting an event never recorded: main releases the buffer (ready = False, lock released) before it records `consumed`, so W's wait_event finds the event unrecorded (a no-op) and overwrites the rows M is still copying out",
    design: { consumed: 'recorded-after-release' },
    expect: { verdict: 'violated', property: 'no-write-while-reading' },
  },
  {
    name: 'rank-local-guard',
    summary:
      "A rank-local guard before a group all-reduce (`if ep_buffer_ready: all_reduce(...)`): a rank whose buffer is ready blocks alone in the all-reduce while its peer, not ready yet, blocks in the MoE all-to-all: deadlock",
    design: { rankLocalGuard: true },
    expect: { verdict: 'violated', property: 'deadlock' },
    liveness: 'no-rank-waits-forever',
  },
  {
    name: 'worker-raise-unreported',
    summary:
      "Mine: the worker raises inside transfer_layer; the `finally` releases the lock, the daemon thread only logs the exception, and `rebalanced` stays set: main never moves another layer and never starts another rebalance (a livelock: the state rebalance-never-wedged, and on its own the liveness property rebalance-completes fails with a lasso)",
    design: { workerRaise: 'unreported' },
    expect: { verdict: 'violated', property: 'rebalance-never-wedged' },
    liveness: 'no-rank-waits-forever',
  },
  {
    name: 'worker-raise-finally-clears',
    summary:
      "Mine: the tempting fix for the above, `finally: rebalanced = False` in the worker, clears the flag on one rank only: that rank stops joining the agreement all-reduce its peers still enter: deadlock",
    design: { workerRaise: 'finally-clears' },
    expect: { verdict: 'violated', property: 'deadlock' },
    liveness: 'no-rank-waits-forever',
  },
];

export default defineProtocol<EplbConfig>({
  name: 'eplb-staged-transfer',
  summary: 'vLLM async EPLB (#20990, merged as #22179): a worker moves expert rows layer by layer through a staging buffer; main copies them out and swaps the map rows',
  configs: { check: CHECK, large: LARGE, pr: PR, qwen3: QWEN3 },
  variants: VARIANTS.map((v) => ({
    name: v.name,
    summary: v.summary,
    expect: v.expect,
    ...(v.liveness ? { expectLiveness: v.liveness } : {}),
    build: (cfg: EplbConfig) => buildEplb(cfg, v.design),
  })),
});
