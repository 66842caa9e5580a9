/**
 * # Async rebalance, the protocol-level model (SGLang #8529 at TP 8 and 16)
 *
 * The kit model (`eplb-async-rebalance.ts`) runs every statement of every thread, stream and collective, and
 * each of the W(W-1) tp-sync signals on its own. That is what the GPU-level properties need, and what makes a
 * TP group of 8 out of reach: within a tick, every rank's kit steps interleave with every other rank's, and
 * the 56 signals arrive in any order within their bound. This model keeps the round's own steps and nothing
 * else, with the same generator (`eplb-async-rebalance-rules.ts`):
 * - `forward`: the forward pass of the next tick, a rendezvous of the TP group. It runs once every rank has
 *   taken its generator step of this tick and every chunk exchange issued at this tick has been issued by the
 *   whole group (a rank that issued one synchronizes stream C behind it; the NCCL exchange needs every rank).
 * - `generate` (rank r): the generator step of this tick, under the kit model's time bounds: Tc ends before
 *   the compute-spin check of tick N+2+C; Ts clears its flag before rank r's step of tick (last post)+1+D.
 *   At tick N+1 it starts Tc; when it posts its signals it starts Ts.
 * - `Tc` (rank r): computes the plan or raises; the fixed design catches the exception (`tcError`) and clears
 *   `_compute_ongoing` in `finally`. The bug switches change exactly those statements.
 * - `Ts` (rank r): waits until every handle of its rank is complete, then clears `_tp_sync_ongoing`.
 *
 * ## Why the signals can be one step per rank
 * A signal's delivery is seen only by the two ranks' Ts, and a Ts only when every one of its rank's 2(W-1)
 * handles is complete. Every signal of a rank can be delivered from the moment all its peers have posted, and
 * each one's deadline falls at or before that of its rank's Ts (last post + 1 + D). So every order of
 * deliveries gives the same choices of when each Ts sees its handles complete: any time after the last peer
 * posted, before its rank's step of tick (last post)+1+D. This model takes that choice as Ts's `wait` step.
 * The argument needs the generator to read a signal only after Ts has cleared its flag, which is the fixed
 * design's order: the variants whose generator reads a receive tensor earlier (`syncFlagInThread`) or whose Ts
 * waits a handle that can raise (`syncMayRaise`) stay with the kit model, as do the two-group and W = 1 ones.
 *
 * ## What it checks
 * The protocol's properties, on the same rank variables as the kit model: `same-plan-and-begin-step`,
 * `chunk-starts-together`, `begin-step-not-passed`, `no-spin-forever`, `raised-thread-reported`,
 * `model-horizon`, deadlock, and the liveness properties `round-completes` and `no-rank-waits-forever`. Not
 * the GPU kit's checks (stream races, `weights-and-map-switch-together`): those are the kit model's.
 *
 * ## Steps merged, and why nothing is lost
 * Tc's store (of the plan, or of the exception it caught) and the `finally` that clears `_compute_ongoing` are
 * one step here, and so are Ts's last wait and its `finally`: between them the generator sees only a flag still
 * set, exactly as before either, and no property reads the plan while the flag is set.
 *
 * How it is checked against the kit model (test/spec-eplb-ticks.test.ts): for W = 2 (each variant it covers,
 * three delay settings) and W = 3, the set of reachable rank-variable vectors is the same in both models,
 * leaving out the kit model's states between Tc's store and its `finally`; and so is each verdict.
 *
 * ## Configurations
 * The kit model's (the protocol's `check`, `large`, `ranks8`); `ranks8` (W = 8), with symmetry and partial-order
 * reduction, holds in 848,305 states, about 31 s on two cores.
 */
import { type Action, type Condition, ENABLERS, ModelError, type Symmetry, actionsOf, defineSystem, eventually, observing, stable } from '../model/index.ts';
import { type Bugs, type EplbAsyncConfig, type GeneratorView, PLAN, type RankVars, initVars, roundRules } from './eplb-async-rebalance-rules.ts';

// ---- state ------------------------------------------------------------------------------------------------

/**
 * Tc: `idle` (not started), `starting` (the flag-in-thread bug: started, its own `_compute_ongoing = True` not
 * yet run), `running`, then `ended` (plan or captured exception stored, flag cleared), or `raised` (the thread
 * died of the exception).
 */
export type TcState = 'idle' | 'starting' | 'running' | 'ended' | 'raised';
/** Ts: `idle` (not started), `running` (waiting for its handles, the flag set), `ended` (the flag cleared). */
export type TsState = 'idle' | 'running' | 'ended';

export interface TickRank {
  readonly vars: RankVars;
  readonly tc: TcState;
  readonly ts: TsState;
}

export interface TicksState {
  /** The last forward pass the TP group ran (-1 before the first). */
  readonly tick: number;
  readonly ranks: readonly TickRank[];
}

const NONE: readonly number[] = [];
const TC_LIVE: ReadonlySet<TcState> = new Set(['starting', 'running']);

/** The bug switches this model can express (see the module comment for why the others stay with the kit). */
const SUPPORTED: ReadonlySet<keyof Bugs> = new Set(['computeFlagInThread', 'noTryFinally', 'finallyWithoutReport', 'sequentialWaits', 'omit']);

// ---- the model --------------------------------------------------------------------------------------------

export function buildEplbTicks(cfg: EplbAsyncConfig, bugs: Bugs = {}) {
  for (const [k, on] of Object.entries(bugs)) {
    if (on && !SUPPORTED.has(k as keyof Bugs)) throw new ModelError(`eplb-async-rebalance-ticks: bug switch '${k}' needs the kit model (buildEplbAsync): this model cannot express it`);
  }
  if (cfg.tpGroups !== 1) throw new ModelError(`eplb-async-rebalance-ticks: one TP group only (tpGroups is ${cfg.tpGroups}); two groups need the kit model`);
  if (cfg.tpSize < 2) throw new ModelError(`eplb-async-rebalance-ticks: a TP group of at least 2 ranks (tpSize is ${cfg.tpSize}); W = 1 needs the kit model`);
  const rules = roundRules(cfg, bugs);
  const { W, N, C, D, K, ranks, lastTick } = rules;
  const peers = (r: number) => ranks.filter((p) => p !== r);

  // The generator's view: Ts clears its flag only once every handle is complete, so what it reads is sent.
  const view: GeneratorView<TicksState> = {
    tcThreadRaised: (s, r) => s.ranks[r].tc === 'raised',
    threadUnstarted: (s, r, thread) => (thread === 'compute' ? s.ranks[r].tc === 'starting' : false),
    received: (s, p) => s.ranks[p].vars.sent ?? 'garbage',
  };

  /** Whether rank r takes a generator step at tick t (from N+1; none after the tick its last chunk started). */
  const hasGen = (v: RankVars, t: number) => t >= N + 1 && t <= lastTick && !(v.chunkAt.length === K && v.chunkAt[K - 1] < t);
  const genPending = (s: TicksState, r: number) => hasGen(s.ranks[r].vars, s.tick) && s.ranks[r].vars.step !== s.tick;
  const allPosted = (s: TicksState) => s.ranks.every((x) => x.vars.sendStep !== null);
  const lastPost = (s: TicksState) => Math.max(...s.ranks.map((x) => x.vars.sendStep ?? -1));

  /** Why rank r's generator step of tick t must wait (a time bound is due), or null: the kit model's bounds. */
  function overdue(s: TicksState, r: number, t: number): string | null {
    const me = s.ranks[r];
    if (TC_LIVE.has(me.tc) && t >= N + 2 + C) return `the plan is due by tick ${N + 2 + C} (C = ${C})`;
    if (me.ts === 'running' && allPosted(s) && t >= lastPost(s) + 1 + D) {
      return `Ts must clear _tp_sync_ongoing by tick ${lastPost(s) + 1 + D} (D = ${D})`;
    }
    return null;
  }

  /** A chunk exchange issued at this tick that some rank of the group has not issued (its issuers are blocked). */
  function openExchange(s: TicksState): number | null {
    for (let k = 0; k < K; k++) {
      const issued = s.ranks.filter((x) => x.vars.chunkAt[k] === s.tick).length;
      if (issued > 0 && issued < W) return k;
    }
    return null;
  }

  const R = (r: number, ...fields: string[]) => fields.map((f) => `ranks[${r}].${f}`);
  const withRank = (s: TicksState, r: number, rank: TickRank): TicksState => ({ ...s, ranks: s.ranks.with(r, rank) });
  const act = actionsOf<TicksState>();

  // The forward pass waits for every rank's generator step and every exchange issued at this tick, each a
  // condition of its own: while one rank's step is pending, only that rank's steps can enable it.
  const forward: Action<TicksState> = act('forward', {
    actor: 'TP group',
    reads: ['tick', ...ranks.flatMap((r) => R(r, 'vars.step', 'vars.chunkAt'))],
    writes: ['tick'],
    conditions: [
      { reads: ['tick'], holds: (s) => s.tick <= lastTick, standalone: true },
      ...ranks.map((r) => ({ reads: ['tick', ...R(r, 'vars.step', 'vars.chunkAt')], holds: (s: TicksState) => !genPending(s, r), standalone: true })),
      { reads: ['tick', ...ranks.flatMap((r) => R(r, 'vars.chunkAt'))], holds: (s) => openExchange(s) === null },
    ],
    effect: (s) => ({ ...s, tick: s.tick + 1 }),
    describe: (_p, s) => `forward pass of tick ${s.tick + 1} (the MoE all-to-all: every rank of the TP group)`,
  });

  // The generator step is two actions with disjoint guards: `post`, the step that leaves the compute spin and
  // posts the tp-sync signals (it writes `sendStep` and `sent`, which every peer's step reads), and `generate`,
  // every other step (it writes only its own rank's other variables). Two ranks' `generate` steps then touch
  // disjoint state, and partial-order reduction need not order them.
  const posts = (s: TicksState, r: number) => s.ranks[r].vars.phase === 'computeSpin' && !s.ranks[r].vars.computeOngoing;
  const peerReads = (r: number) => peers(r).flatMap((q) => R(q, 'vars.sendStep', 'vars.sent'));
  const OWN = ['vars.step', 'vars.phase', 'vars.computeOngoing', 'vars.begin', 'vars.learnedAt', 'vars.chunk', 'vars.dueAt', 'vars.chunkAt'];
  const onceOnly = {
    reads: ({ rank }: { rank: number }) => R(rank, 'vars.sendStep'),
    holds: (s: TicksState, { rank }: { rank: number }) => s.ranks[rank].vars.sendStep === null,
    standalone: true,
    [ENABLERS]: () => NONE,
  } as Condition<TicksState, { rank: number }>;
  const generatorStep = (name: 'generate' | 'post', posting: boolean, writes: string[]): Action<TicksState> =>
    act<{ rank: number }>(name, {
      params: { rank: ranks },
      actor: ({ rank }) => `rank ${rank} forward`,
      reads: ({ rank }) => ['tick', `ranks[${rank}]`, ...peerReads(rank)],
      writes: ({ rank }) => R(rank, ...writes),
      conditions: [
        // Posting happens once: after it, nothing can enable `post` again (sendStep is never cleared), so a
        // `post` in the stubborn set asks for no enabler, and the steps that read sendStep after every rank
        // posted (learning begin_step, Ts's wait) do not drag in the rest of the ranks.
        ...(posting ? [onceOnly] : []),
        // Its tick has come (the forward pass ran) and it has not taken it yet: only the forward pass enables it.
        { reads: ({ rank }) => ['tick', ...R(rank, 'vars.step', 'vars.chunkAt')], holds: (s, { rank }) => genPending(s, rank), standalone: true },
        { reads: ({ rank }) => R(rank, 'vars.phase', 'vars.computeOngoing'), holds: (s, { rank }) => posts(s, rank) === posting },
        { reads: ({ rank }) => ['tick', ...R(rank, 'tc', 'ts', 'vars.sendStep'), ...peerReads(rank)], holds: (s, { rank }) => overdue(s, rank, s.tick) === null },
      ],
      effect: (s, { rank }) => {
        const me = s.ranks[rank];
        const t = s.tick;
        const vars = rules.genEffect(view, rank, me.vars, s, t);
        const tc: TcState = t === N + 1 ? (bugs.computeFlagInThread ? 'starting' : 'running') : me.tc;
        const ts: TsState = vars.sendStep === t && me.vars.sendStep === null ? 'running' : me.ts;
        return withRank(s, rank, { vars, tc, ts });
      },
      describe: ({ rank }, s) => rules.genText(view, rank, s.ranks[rank].vars, s, s.tick),
    });
  const generate = generatorStep('generate', false, [...OWN, 'tc']);
  const post = generatorStep('post', true, [...OWN, 'vars.sendStep', 'vars.sent', 'vars.postedWith', 'vars.reported', 'vars.syncOngoing', 'ts']);

  // Tc and Ts each end in one step: the store of the plan (or the exception) and the `finally` that clears the
  // flag run back to back, and between them the generator sees only a flag still set, as before either.
  type TcStep = 'set-flag' | 'plan' | 'raise';
  const tcNext = (tc: TcState, step: TcStep): TcState | null => {
    if (step === 'set-flag') return tc === 'starting' ? 'running' : null;
    if (tc !== 'running') return null;
    if (step === 'plan') return 'ended';
    if (!cfg.computeMayRaise) return null;
    return bugs.noTryFinally || bugs.finallyWithoutReport ? 'raised' : 'ended';
  };
  const compute: Action<TicksState> = act<{ rank: number; step: TcStep }>('Tc', {
    params: { rank: ranks, step: ['set-flag', 'plan', 'raise'] },
    actor: ({ rank }) => `rank ${rank} Tc`,
    reads: ({ rank }) => R(rank, 'tc'),
    writes: ({ rank, step }) => R(rank, 'tc', 'vars.computeOngoing', ...(step === 'plan' ? ['vars.plan'] : step === 'raise' ? ['vars.tcError'] : [])),
    guard: (s, { rank, step }) => tcNext(s.ranks[rank].tc, step) !== null,
    effect: (s, { rank, step }) => {
      const me = s.ranks[rank];
      const tc = tcNext(me.tc, step)!;
      const v = me.vars;
      let vars: RankVars;
      if (step === 'set-flag') vars = { ...v, computeOngoing: true };
      else if (step === 'plan') vars = { ...v, plan: PLAN, computeOngoing: false };
      else if (bugs.noTryFinally) vars = v; // the thread dies with the flag set
      else if (bugs.finallyWithoutReport) vars = { ...v, computeOngoing: false };
      else vars = { ...v, tcError: true, computeOngoing: false };
      return withRank(s, rank, { ...me, vars, tc });
    },
    describe: ({ rank, step }) => {
      if (step === 'set-flag') return `rank ${rank} Tc: _compute_ongoing = True (inside the thread, after start())`;
      if (step === 'plan') return `rank ${rank} Tc: init_by_eplb computes the plan, _rebalance_result stored; _compute_ongoing = False`;
      if (bugs.noTryFinally) return `rank ${rank} Tc: init_by_eplb raises; no try/finally: the thread dies with _compute_ongoing set`;
      if (bugs.finallyWithoutReport) return `rank ${rank} Tc: init_by_eplb raises; the finally clears _compute_ongoing, the exception ends the thread uncaptured`;
      return `rank ${rank} Tc: init_by_eplb raises; captured in the thread's error, then _compute_ongoing = False (finally)`;
    },
  });

  const sync: Action<TicksState> = act<{ rank: number }>('Ts', {
    params: { rank: ranks },
    actor: ({ rank }) => `rank ${rank} Ts`,
    reads: ({ rank }) => [...R(rank, 'ts'), ...ranks.flatMap((q) => R(q, 'vars.sendStep'))],
    writes: ({ rank }) => R(rank, 'ts', 'vars.syncOngoing'),
    conditions: [
      { reads: ({ rank }) => R(rank, 'ts'), holds: (s, { rank }) => s.ranks[rank].ts === 'running' },
      // Every handle completes once every peer has posted: one condition per peer, so only its post enables it.
      ...ranks.map((q) => ({ reads: R(q, 'vars.sendStep'), holds: (s: TicksState) => s.ranks[q].vars.sendStep !== null, standalone: true })),
    ],
    effect: (s, { rank }) => {
      const me = s.ranks[rank];
      return withRank(s, rank, { ...me, ts: 'ended', vars: { ...me.vars, syncOngoing: false } });
    },
    describe: ({ rank }) =>
      `rank ${rank} Ts: every handle is complete (its signals to and from ranks ${peers(rank).join(', ')} delivered); _tp_sync_ongoing = False`,
  });

  // ---- properties ----

  const varsIn = (s: TicksState) => (r: number) => s.ranks[r].vars;
  const perRank = (f: (r: number) => string[][]) => ranks.flatMap(f);
  const invariants: Record<string, (s: TicksState) => boolean> = {
    'same-plan-and-begin-step': stable((s: TicksState) => rules.samePlanAndBegin(varsIn(s))),
    'chunk-starts-together': stable((s: TicksState) => rules.chunksTogether(varsIn(s))),
    // Per-rank conjuncts, each read from one rank's fields (and the tick): for partial-order reduction, their
    // writers are that rank's own steps (and the forward pass), which are pairwise dependent.
    'begin-step-not-passed': observing(perRank((r) => [R(r, 'vars.learnedAt', 'vars.begin')]), (s: TicksState) =>
      s.ranks.every((x) => rules.beginNotPassed(x.vars))),
    'no-spin-forever': observing(perRank((r) => [R(r, 'vars.phase', 'vars.computeOngoing', 'tc'), R(r, 'vars.phase', 'vars.syncOngoing', 'ts')]), (s: TicksState) =>
      s.ranks.every(({ vars: v, tc, ts }) => {
        if (v.phase === 'computeSpin' && v.computeOngoing && (tc === 'ended' || tc === 'raised')) return false;
        if (v.phase === 'syncSpin' && v.syncOngoing && ts === 'ended') return false;
        return true;
      })),
    'raised-thread-reported': observing(perRank((r) => [R(r, 'tc', 'vars.tcError', 'vars.sendStep', 'vars.reported')]), (s: TicksState) =>
      s.ranks.every(({ vars: v, tc }) => !((tc === 'raised' || v.tcError) && v.sendStep !== null && v.reported === null))),
    'model-horizon': observing(perRank((r) => [['tick', ...R(r, 'vars.phase')]]), (s: TicksState) =>
      s.tick <= lastTick || s.ranks.every((x) => x.vars.phase === 'done')),
  };
  for (const p of bugs.omit ?? []) delete invariants[p];

  /** Every thread has run to its end: the last forward pass ran, Tc and Ts are over (or never started). */
  const allEnded = (s: TicksState) =>
    s.tick === lastTick + 1 && s.ranks.every((x) => !TC_LIVE.has(x.tc) && (x.ts === 'idle' || x.ts === 'ended'));

  // A rank's entry as one string: the canonicaliser compares a string faster than it encodes the object.
  const rankKey = ({ vars: v, tc, ts }: TickRank): string =>
    `${tc} ${ts} ${v.phase} ${v.step} ${+v.computeOngoing}${+v.syncOngoing}${+v.tcError} ${v.plan} ${v.postedWith} ${v.reported} ${v.sendStep} ${v.sent} ${v.begin} ${v.learnedAt} ${v.chunk} ${v.dueAt} ${v.chunkAt.join(',')}`;

  // Ranks are interchangeable: one TP group, one program, every rank signals every other, and no field names a
  // rank. Renaming ranks reorders the rank list; a rank's signature is its own entry.
  const symmetry: Symmetry<TicksState> = {
    size: W,
    permute: (s, perm) => {
      const moved: TickRank[] = new Array(W);
      s.ranks.forEach((x, r) => (moved[perm[r]] = x));
      return { ...s, ranks: moved };
    },
    signature: (s, r) => rankKey(s.ranks[r]),
    // Ranks with the same entry swap to the same state (no field names a rank): no need to compare encodings.
    swappable: (s, a, b) => (rankKey(s.ranks[a]) === rankKey(s.ranks[b]) ? true : undefined),
  };

  return defineSystem<TicksState>({
    name: `eplb-async-rebalance-ticks(${rules.tag})`,
    init: { tick: -1, ranks: ranks.map(() => ({ vars: initVars, tc: 'idle', ts: 'idle' })) },
    actions: [forward, generate, post, compute, sync],
    invariants,
    terminal: allEnded,
    fairness: 'weak',
    symmetry,
    liveness: {
      'no-rank-waits-forever': eventually(allEnded),
      'round-completes': eventually((s) => s.ranks.every((x) => x.vars.phase === 'done')),
    },
    explainStuck: (s) => {
      const k = openExchange(s);
      return ranks.map((r) => {
        const { vars: v, tc, ts } = s.ranks[r];
        const why = genPending(s, r) ? (overdue(s, r, s.tick) ?? 'its generator step is enabled') : k !== null && v.chunkAt[k] === s.tick ? `blocked in the exchange of chunk ${k}` : 'in the forward pass';
        return `rank ${r}: generator in ${v.phase} at tick ${s.tick} (${why}), begin_step ${v.begin ?? 'unknown'}, Tc ${tc}, Ts ${ts}, chunks started at ticks [${v.chunkAt.join(', ')}]`;
      });
    },
  });
}
