/**
 * # The rules of SGLang #8529's rebalance round that both of its models share
 *
 * `eplb-async-rebalance.ts` models the round on the GPU kit (threads, streams, NCCL and gloo, every signal on
 * its own); `eplb-async-rebalance-ticks.ts` models it at the protocol's own level (a forward pass, a generator
 * step, a thread's flag), small enough for a TP group of 8 and 16. Both run the same generator: one step per
 * tick, a pure function of the rank's variables, what it sees of its threads and the signals it received, and
 * the same time bounds; and both state the cross-rank properties on those variables. This module holds that
 * common part: the configuration, the bugs, the rank's variables, the tick ranges, the generator step and its
 * trace sentence, and the agreement properties.
 */

// ---- configuration ----------------------------------------------------------------------------------------

export interface EplbAsyncConfig {
  /** W: ranks per TP group. */
  readonly tpSize: number;
  /** TP groups in the world (world = tpSize * tpGroups, contiguous groups); 1: the TP group is the world. */
  readonly tpGroups: number;
  /** MoE layers whose experts are rebalanced. */
  readonly layers: number;
  readonly layersPerChunk: number;
  /** N: forward passes per rebalance window (`eplb_rebalance_num_iterations`). */
  readonly window: number;
  /** C: Tc ends at the latest C ticks after the first compute-spin check. */
  readonly computeTicks: number;
  /** D: a posted signal is seen at the latest D ticks after the next tick. */
  readonly delay: number;
  /** M: begin_step = max(steps) + M (the PR's +2). */
  readonly margin: number;
  /** Whether the plan computation (Tc) may raise. */
  readonly computeMayRaise: boolean;
}

/** The bugs of the brief (and test-only mutations), as switches on the fixed design. */
export interface Bugs {
  /** Tc sets `_compute_ongoing = True` itself, after `start()` (reviewers). */
  readonly computeFlagInThread?: boolean;
  /** Ts sets `_tp_sync_ongoing = True` itself, after `start()` (reviewers). */
  readonly syncFlagInThread?: boolean;
  /** Tc and Ts clear their flag as their last statement, without try/finally (reviewers). */
  readonly noTryFinally?: boolean;
  /** try/finally clears the flag, but the exception is not captured: nobody reports it. */
  readonly finallyWithoutReport?: boolean;
  /** A gloo `wait()` in Ts may raise (timeout, connection reset). */
  readonly syncMayRaise?: boolean;
  /** Ts waits each handle in turn (the PR) instead of polling until all are completed. */
  readonly sequentialWaits?: boolean;
  /** The signals name the peer by its rank in the group where torch expects a global rank (the PR). */
  readonly groupRankAsGlobal?: boolean;
  /** begin = max(torch.stack(received).max(), own) + M (the PR): an empty list when W = 1. */
  readonly stackReceived?: boolean;
  /** Properties left out, to let the search run on to the consequence of their violation. */
  readonly omit?: readonly string[];
  /** Test-only mutation: the dispatch map is updated on a side stream the forward pass does not wait for. */
  readonly mapOnSideStream?: boolean;
  /** Test-only mutation: the forward pass does not wait for stream C (the CPU runs ahead of the GPU). */
  readonly noSyncBeforeForward?: boolean;
}

// ---- the rank's variables -----------------------------------------------------------------------------------

export type Phase = 'window' | 'computeSpin' | 'syncSpin' | 'beginWait' | 'transfer' | 'done';

/** The protocol's per-rank state (the kit model keeps it in `vars[rank]`). */
export interface RankVars {
  readonly phase: Phase;
  readonly step: number;
  readonly computeOngoing: boolean;
  readonly syncOngoing: boolean;
  readonly plan: string | null;
  readonly tcError: boolean;
  /** History, written once when the rank posts s_r: the plan it held then, or 'raised' when its Tc had raised. */
  readonly postedWith: string | null;
  readonly reported: string | null;
  readonly sendStep: number | null;
  readonly sent: string | null;
  readonly begin: number | 'skip' | 'garbage' | null;
  readonly learnedAt: number | null;
  readonly chunk: number;
  readonly dueAt: number | null;
  readonly chunkAt: readonly number[];
}

export const initVars: RankVars = {
  phase: 'window',
  step: 0,
  computeOngoing: false,
  syncOngoing: false,
  plan: null,
  tcError: false,
  postedWith: null,
  reported: null,
  sendStep: null,
  sent: null,
  begin: null,
  learnedAt: null,
  chunk: 0,
  dueAt: null,
  chunkAt: [],
};

/** The plan Tc computes: from the load of the round's broadcast (the kit names the value `broadcast#1`). */
export const PLAN = 'broadcast#1';

/** What the generator step sees of the rest of a model's state S. */
export interface GeneratorView<S> {
  /** Rank r's Tc ended by an exception nobody caught (no try/except: the thread itself is `raised`). */
  readonly tcThreadRaised: (s: S, r: number) => boolean;
  /** Whether rank r's thread has not run its first statement yet (a stale flag, in the trace's words). */
  readonly threadUnstarted: (s: S, r: number, thread: 'compute' | 'sync') => boolean;
  /** The tp-sync value of rank p in rank x's receive tensor: p's value once delivered, else 'garbage'. */
  readonly received: (s: S, p: number, x: number) => string;
}

// ---- the rules ----------------------------------------------------------------------------------------------

/** The round's static facts for one configuration and set of bugs: groups, addressing, tick ranges, the generator. */
export function roundRules(cfg: EplbAsyncConfig, bugs: Bugs = {}) {
  const W = cfg.tpSize;
  const G = cfg.tpGroups;
  const world = W * G;
  const N = cfg.window;
  const C = cfg.computeTicks;
  const D = cfg.delay;
  const M = cfg.margin;
  const L = cfg.layers;
  const K = Math.ceil(L / cfg.layersPerChunk);
  const multi = K > 1;
  const ranks = [...Array(world).keys()];
  const groups = [...Array(G).keys()];
  const groupOf = (r: number) => Math.floor(r / W);
  const members = (g: number) => [...Array(W).keys()].map((i) => g * W + i);
  const tpName = (g: number) => (G > 1 ? `tp${g}` : 'tp');
  const layersOf = (k: number) => [...Array(L).keys()].filter((l) => Math.floor(l / cfg.layersPerChunk) === k);

  // Signal addressing: rank r names its peers by index j in its group. Fixed: global rank = group.ranks[j].
  // Bug: j itself is passed as the global rank; torch raises ValueError if j is not in the group (contiguous
  // groups: every group but the first). Were j a member, the signal would go to the wrong peer (`addressed`).
  const peersOf = (r: number) => members(groupOf(r)).filter((p) => p !== r);
  const badAddress: (string | null)[] = ranks.map((r) => {
    if (!bugs.groupRankAsGlobal) return null;
    const g = groupOf(r);
    for (let j = 0; j < W; j++) {
      if (j === r % W) continue;
      if (!members(g).includes(j)) return `ValueError: Global rank ${j} is not part of group ${tpName(g)} (ranks ${members(g).join(', ')})`;
    }
    return null;
  });
  const addressed = (r: number): number[] =>
    bugs.groupRankAsGlobal ? [...Array(W).keys()].filter((j) => j !== r % W) : peersOf(r);
  // Pairs (src, dst) whose send and receive match: src sends to dst and dst receives from src.
  const matches = (p: number, x: number) => p !== x && addressed(p).includes(x) && addressed(x).includes(p);

  // Tick ranges (static): when each kind of generator step can happen.
  const postFirst = N + 2;
  const postLast = N + 2 + C;
  const learnFirst = N + 3;
  const learnLast = postLast + 1 + D;
  const startFirst = postFirst + M; // transfer start = max(learn tick, begin)
  const startLast = Math.max(postLast + M, learnLast);
  const chunkFirst = (k: number) => startFirst + (multi ? 1 : 0) + k;
  const chunkLast = (k: number) => startLast + (multi ? 1 : 0) + k;
  const lastTick = chunkLast(K - 1);
  const chunkPossible = (t: number) => [...Array(K).keys()].filter((k) => t >= chunkFirst(k) && t <= chunkLast(k));

  /**
   * The generator step of rank r at tick t, as pure bookkeeping on the rank's variables (the statements it
   * issues follow it in each model's program): the flag checks, posting, learning begin_step, starting a chunk.
   */
  function genEffect<S>(view: GeneratorView<S>, r: number, v: RankVars, s: S, t: number): RankVars {
    let n: RankVars = { ...v, step: t };
    if (t === N + 1) return { ...n, phase: 'computeSpin', computeOngoing: bugs.computeFlagInThread ? v.computeOngoing : true };
    if (n.phase === 'computeSpin' && !n.computeOngoing && badAddress[r] === null) {
      const failed = n.tcError;
      n = {
        ...n,
        phase: 'syncSpin',
        sendStep: t,
        postedWith: failed || view.tcThreadRaised(s, r) ? 'raised' : n.plan ?? 'none',
        sent: failed ? 'abort' : String(t),
        reported: failed ? 'the compute thread raised: reported, abort signalled' : n.reported,
        syncOngoing: bugs.syncFlagInThread ? n.syncOngoing : true,
      };
    } else if (n.phase === 'syncSpin' && !n.syncOngoing && !(W === 1 && bugs.stackReceived)) {
      const vals = [n.sent!, ...addressed(r).map((p) => view.received(s, p, r))];
      let begin: RankVars['begin'];
      if (vals.includes('garbage')) begin = 'garbage';
      else if (vals.includes('abort')) begin = 'skip';
      else begin = Math.max(...vals.map(Number)) + M;
      n = { ...n, begin, learnedAt: t, phase: begin === 'skip' ? 'done' : 'beginWait' };
    }
    if (n.phase === 'beginWait' && typeof n.begin === 'number' && t >= n.begin) {
      n = { ...n, phase: 'transfer', dueAt: multi ? t + 1 : t };
    }
    if (n.phase === 'transfer' && n.dueAt === t) {
      const last = n.chunk === K - 1;
      n = { ...n, chunk: n.chunk + 1, chunkAt: [...n.chunkAt, t], dueAt: last ? null : t + 1, phase: last ? 'done' : 'transfer' };
    }
    return n;
  }

  /** The trace's sentence for rank r's generator step at tick t. */
  function genText<S>(view: GeneratorView<S>, r: number, v: RankVars, s: S, t: number): string {
    const n = genEffect(view, r, v, s, t);
    const parts: string[] = [`tick ${t}: on_forward_pass_end, next(generator) at _step_counter ${t}`];
    if (t === N + 1) {
      parts.push(`torch.cuda.synchronize()${bugs.computeFlagInThread ? '' : ', _compute_ongoing = True'}, start Tc`);
      return parts.join(': ');
    }
    if (v.phase === 'computeSpin') {
      if (v.computeOngoing) parts.push('_compute_ongoing is set: spins');
      else if (badAddress[r] !== null) parts.push('_compute_ongoing is clear: tp-sync');
      else {
        const what = v.tcError ? 'reports the exception Tc raised and signals abort' : `_send_signal_step = ${t}`;
        const stale = bugs.computeFlagInThread && view.threadUnstarted(s, r, 'compute') ? ' (a stale False: Tc has not set it yet)' : '';
        parts.push(
          `_compute_ongoing is clear${stale} (plan ${v.plan === null ? 'MISSING' : 'ready'}): ${what}, posts gloo irecv from and isend to ranks ${addressed(r).join(', ') || 'none'}${bugs.syncFlagInThread ? '' : ', _tp_sync_ongoing = True'}`,
        );
      }
    } else if (v.phase === 'syncSpin') {
      if (v.syncOngoing) parts.push('_tp_sync_ongoing is set: spins');
      else if (n.begin === null) parts.push('_tp_sync_ongoing is clear: computes begin_step');
      else {
        const got = addressed(r).map((p) => `${view.received(s, p, r)} from rank ${p}`).join(', ');
        const stale = bugs.syncFlagInThread && view.threadUnstarted(s, r, 'sync') ? ' (a stale False: Ts has not set it yet)' : '';
        const head = `_tp_sync_ongoing is clear${stale}, received ${got || 'nothing'} (own ${v.sent})`;
        if (n.begin === 'garbage') parts.push(`${head}: begin_step = max(...) + ${M} over a receive tensor never written`);
        else if (n.begin === 'skip') parts.push(`${head}: a plan failed, skips this round`);
        else parts.push(`${head}: begin_step = ${n.begin}${t > n.begin ? `, ALREADY PASSED (tick ${t})` : ''}`);
      }
    } else if (v.phase === 'beginWait' && typeof v.begin === 'number' && t < v.begin) {
      parts.push(`waits for begin_step ${v.begin}`);
    }
    if (n.phase === 'transfer' && n.chunk === 0 && v.phase !== 'transfer') parts.push('reads the plan, starts the transfer (yields before chunk 0)');
    if (n.chunk > v.chunk) {
      const k = v.chunk;
      parts.push(`update_expert_location of chunk ${k} (layers ${layersOf(k).join(', ')}): P2P exchange of its expert weights, then its dispatch map`);
    }
    return parts.join(': ');
  }

  // ---- the agreement properties, on the ranks' variables ----

  /** `same-plan-and-begin-step`: the plan held when posting and begin_step agree within each TP group. */
  function samePlanAndBegin(varsOf: (r: number) => RankVars): boolean {
    for (const g of groups) {
      let plan: string | undefined;
      let begin: RankVars['begin'] | undefined;
      for (const r of members(g)) {
        const v = varsOf(r);
        if (v.postedWith !== null && v.postedWith !== 'raised') {
          if (v.postedWith === 'none') return false;
          if (plan !== undefined && plan !== v.postedWith) return false;
          plan = v.postedWith;
        }
        if (v.begin !== null) {
          if (v.begin === 'garbage') return false;
          if (begin !== undefined && begin !== v.begin) return false;
          begin = v.begin;
        }
      }
    }
    return true;
  }

  /** `chunk-starts-together`: a chunk a rank started at tick t, every TP peer started at t, and none passed t without it. */
  function chunksTogether(varsOf: (r: number) => RankVars): boolean {
    for (const g of groups) {
      const vs = members(g).map(varsOf);
      for (const a of vs) {
        for (let k = 0; k < a.chunkAt.length; k++) {
          for (const b of vs) {
            if (b.chunkAt.length > k ? b.chunkAt[k] !== a.chunkAt[k] : b.step > a.chunkAt[k]) return false;
          }
        }
      }
    }
    return true;
  }

  /** `begin-step-not-passed` for one rank: it learnt begin_step no later than begin_step. */
  const beginNotPassed = (v: RankVars) => v.learnedAt === null || typeof v.begin !== 'number' || v.learnedAt <= v.begin;

  const tag = [`W=${W}`, G > 1 ? `${G} TP groups` : '', `${L} layers/${K} chunks`, `N=${N}`, `C=${C}`, `D=${D}`, `M=${M}`]
    .filter(Boolean)
    .join(', ');

  return {
    W, G, world, N, C, D, M, L, K, multi, ranks, groups, groupOf, members, tpName, layersOf,
    badAddress, addressed, matches,
    postFirst, postLast, learnFirst, learnLast, lastTick, chunkPossible,
    genEffect, genText, samePlanAndBegin, chunksTogether, beginNotPassed, tag,
  };
}

export type RoundRules = ReturnType<typeof roundRules>;
