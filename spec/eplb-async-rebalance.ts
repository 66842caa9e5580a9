/**
 * # Async rebalance with a TP step-max barrier (SGLang #8529, "async rebalance mode for expert load balancer")
 *
 * Brief: shared/protocols.md section 5; seed shared/seeds/004_ce2c5bd0b4637aa7.txt.
 *
 * ## Actors (per TP rank)
 * - `forward`: the scheduler thread. Each tick is one forward pass followed by `on_forward_pass_end()`, which
 *   advances the EPLB generator by exactly one `yield` and then increments `_step_counter`.
 * - `compute` (Tc): started by the generator; computes the plan (`ExpertLocationMetadata.init_by_eplb`) from the
 *   broadcast load, stores `_rebalance_result`, clears `_compute_ongoing`.
 * - `sync` (Ts): started by the generator; waits the 2(W-1) gloo work handles of the tp-sync signals, clears
 *   `_tp_sync_ongoing`.
 * - the compute stream `C` and the NCCL queue of the TP group (kit), which run the load broadcast, the expert
 *   weight exchange and the dispatch-map updates;
 * - the gloo transport (`signal`, actor `gloo rank p -> rank x`): delivers a tp-sync signal once both ends have
 *   posted, completing the sender's send handle and the receiver's receive handle.
 *
 * ## State
 * The GPU kit's (thread pcs, stream queues, buffers `load`, `w<l>` expert weights and `map<l>` dispatch maps
 * per layer, collectives per group) plus the protocol's own: per rank (`vars`, indexed by rank) the generator's
 * `phase`, `step` (`_step_counter`), `computeOngoing`, `syncOngoing`, `plan` (`_rebalance_result`), `tcError`
 * (the exception Tc captured, fixed design), `postedWith` (history: the plan held when posting, or 'raised'),
 * `reported`, `sendStep` (`_send_signal_step`, the brief's s_r),
 * `sent` (the value it signalled), `begin` (`_begin_transfer_step`), `learnedAt` (the tick it learnt begin),
 * `chunk`, `dueAt`, `chunkAt` (the tick each chunk started); and globally `delivered[src][dst]`, whether the
 * tp-sync signal of src has reached dst's receive tensor (a matrix indexed by rank on both sides).
 *
 * ## Steps, tick by tick (N = window, C = plan time bound, D = signal delay bound, M = margin, K = chunks)
 * - every tick t: the forward pass (the MoE all-to-all, a blocking rendezvous: the scheduler waits for the
 *   forward's sampled tokens, and the all-to-all needs every rank of the TP group; with several TP groups,
 *   pipeline stages, the batch also passes between them, so the rendezvous is the world's), then the generator
 *   step `tick` (sets `_step_counter` = t; the flag checks, posting, learning begin_step and starting a chunk
 *   are its bookkeeping, and the kit statements they need follow it: `start`, the exchange, the map update).
 * - t < N: the window fills (`yield`).
 * - t = N: broadcast rank 0's load over the TP group (NCCL, same tick everywhere), `yield`.
 * - t = N+1: `torch.cuda.synchronize()`, `_compute_ongoing = True` (fixed: before `start()`), start Tc, `yield`.
 * - t >= N+2: spin while `_compute_ongoing`. At the first tick s_r it is clear: tp-sync: `_send_signal_step =
 *   s_r`, post W-1 gloo receives and W-1 sends of s_r, `_tp_sync_ongoing = True`, start Ts, `yield`.
 * - then spin while `_tp_sync_ongoing`. At the first tick u_r it is clear: begin = max(received, own) + M
 *   (the rank *learns* begin at u_r); then, in the same generator step, `while step < begin: yield`.
 * - transfer: at tick max(u_r, begin) the generator reads the plan and (K > 1) yields; chunk k then runs at the
 *   generator step of tick max(u_r, begin) + 1 + k: the batched P2P exchange of the chunk's expert weights
 *   (an NCCL collective of the TP group: every rank must issue it) followed by the dispatch-map update of its
 *   layers, both queued on C; then the scheduler synchronizes C (the next forward pass's kernels queue behind
 *   that work and the scheduler waits for their sampled tokens), so the next forward pass runs with both.
 * - Tc: read the broadcast load, store the plan, clear `_compute_ongoing` (fixed: in try/except/finally, the
 *   exception kept in `tcError`). Ts: wait every handle (fixed: poll until all are completed), clear
 *   `_tp_sync_ongoing` (fixed: in finally).
 * - fixed design, a raising Tc: the forward thread reports it when it leaves the spin and signals `abort`
 *   instead of its step; every rank sees the abort among the signals and skips this round's transfer.
 *
 * ## Timing semantics (what the Z3 bound is compared with)
 * A tick is one forward pass plus one generator step. Ranks are in lockstep to within one tick (the forward
 * pass is a rendezvous). A rank *checks* a flag only in its generator step. Time bounds, as urgency: a rank's
 * generator step of tick t cannot run while something due before it has not happened:
 * - the plan: Tc ends (normally or by an exception) before the compute-spin check of tick N+2+C, so
 *   s_r is in [N+2, N+2+C];
 * - a signal from p to x is *posted* once both have posted their tp-sync ops, at tick max(s_p, s_x); it reaches
 *   x (and completes p's send) before the generator step of tick max(s_p, s_x) + 1 + D of either rank;
 * - Ts, once every handle of its rank is complete, clears `_tp_sync_ongoing` before that rank's generator step
 *   of tick (the latest of those posting ticks) + 1 + D.
 * So with s = max_r s_r, every rank learns begin at a tick u_r in [s, s + 1 + D] (s only for a rank that posted
 * earlier and checks after the last poster's post; the last poster itself at s + 1 at the earliest), and
 * begin = s + M. D = 0 means "seen at the next tick"; D counts the ticks a signal is seen later than that.
 * **A margin M is safe iff M >= D + 1**: u_r <= begin for all r. The PR's +2 tolerates D <= 1; at D = 2 a rank
 * can learn begin one tick after passing it (in the brief's counting, where a signal seen at the next tick has
 * a delay of 1, that is "a delay of more than 2 ticks"). Both the bound and its tightness are checked
 * (test/spec-eplb-async-rebalance.test.ts: M = D + 1 holds and M = D fails, for D = 0..3). The Z3 proof
 * (proofs/eplb-async-rebalance.ts) counts the delay from the last post to the observation, the post tick
 * included, and its "same-advance" semantics is this generator's: its D is this D + 1, and its bound
 * margin >= D there is margin >= D + 1 here.
 *
 * ## Properties (brief section 5)
 * - `same-plan-and-begin-step`: every rank that has left the compute spin (posted its s_r) held the plan when
 *   it posted, the same plan as its TP peers (a rank whose Tc raised is `raised-thread-reported`'s business); every rank that
 *   learnt begin_step learnt the same value, and a value (not a never-received tensor).
 * - `chunk-starts-together`: if a rank started chunk k at tick t, every TP peer started chunk k at tick t: no
 *   peer started it at another tick, and none got past tick t without starting it.
 * - `begin-step-not-passed`: no rank has passed begin_step when it learns it (u_r <= begin): the +2 margin is
 *   exactly this timing assumption.
 * - `weights-and-map-switch-together`: at every forward pass, on every rank, each layer's expert weights and
 *   dispatch map are of the same version (both old or both new), and the same version on every TP peer.
 * - `no-spin-forever`: no generator spins on a flag that no live thread will clear (the thread that should
 *   clear it has ended with the flag still set). Checked as a safety property: the state from which the forward
 *   thread can never leave its spin; and as the liveness property `round-completes` (every generator gets
 *   through the round, or its thread raised), with `no-rank-waits-forever` (every thread runs to its end),
 *   which `check --liveness-only` checks on their own, a hang then being a lasso that stutters.
 * - `raised-thread-reported`: a rank whose Tc or Ts raised does not go on past that thread's spin without
 *   reporting the exception.
 * - `forward-thread-never-raises`: the forward thread never raises out of the generator (that kills the
 *   scheduler): not from `torch.stack` of an empty list (W = 1), not from a peer rank outside the group.
 * - `model-horizon` (a check of the model, not of the protocol): no forward thread runs out of the unrolled
 *   ticks before its round is over.
 * - the kit's own checks (e.g. `no-read-while-writing`: Tc reads the broadcast load only after the
 *   `torch.cuda.synchronize()`), and `deadlock`.
 *
 * ## Variants (state counts: `check` configuration, from a real run without symmetry and partial-order reduction)
 * | variant | bug of the brief | verdict | property | states | depth |
 * | --- | --- | --- | --- | --- | --- |
 * | `fixed` | fixed design | holds | | 9,328 | 73 |
 * | `compute-flag-in-thread` | reviewers: flag set inside Tc | violated | `same-plan-and-begin-step` | 86 | 14 |
 * | `sync-flag-in-thread` | reviewers: flag set inside Ts | violated | `same-plan-and-begin-step` | 729 | 22 |
 * | `no-try-finally` | reviewers: Tc raises, flag stays set | violated | `no-spin-forever` | 35 | 10 |
 * | `no-try-finally-sync` | reviewers: Ts raises, flag stays set | violated | `no-spin-forever` | 174 | 19 |
 * | `finally-without-report` | reviewers' fix without the capture | violated | `raised-thread-reported` | 149 | 16 |
 * | `sequential-waits` | reviewers: sequential waits (performance) | holds | | 10,988 | 75 |
 * | `margin-at-safe-bound` | mine: D = 2, M = 3 | holds | | 17,160 | 76 |
 * | `pr-margin-late-signal` | mine: D = 2, M = 2 | violated | `begin-step-not-passed` | 3,748 | 37 |
 * | `pr-margin-late-signal-deadlock` | mine: its consequence | violated | `deadlock` | 8,512 | 45 |
 * | `group-rank-as-global` | group rank as global rank (2 groups of 2) | violated | `forward-thread-never-raises` | 3,511 | 27 |
 * | `fixed-two-tp-groups` | fixed, 2 groups of 2 | holds | | 20,362 | 114 |
 * | `w1-empty-stack` | W = 1 stacks an empty list | violated | `forward-thread-never-raises` | 100 | 21 |
 * | `fixed-w1` | fixed, W = 1 | holds | | 270 | 42 |
 * | `fixed-ticks` | fixed, protocol-level model | holds | | 1,968 | 28 |
 * | `compute-flag-in-thread-ticks` | as above | violated | `same-plan-and-begin-step` | 17 | 7 |
 * | `no-try-finally-ticks` | as above | violated | `no-spin-forever` | 9 | 5 |
 * | `finally-without-report-ticks` | as above | violated | `raised-thread-reported` | 39 | 8 |
 * | `margin-at-safe-bound-ticks` | as above | holds | | 4,137 | 31 |
 * | `pr-margin-late-signal-ticks` | as above | violated | `begin-step-not-passed` | 1,245 | 19 |
 * | `pr-margin-late-signal-deadlock-ticks` | as above | violated | `deadlock` | 2,113 | 21 |
 *
 * Every variant but the delay ones runs with the margin the fixed design picks for the configured delay
 * (M = max(M, D + 1)); the two-group variants use C = 0, D = 0, M = 1 and no raising Tc (the two groups'
 * states multiply). `fixed` on `large` (W = 3): holds, 146,368 states, depth 106, about 10 s of CPU.
 *
 * What the runs say: the delay bug is the only one that needs the timing model; its consequence is the
 * deadlock the brief predicts, 8 steps after the late learning: the late rank blocks in the forward pass's
 * all-to-all, its peer in synchronizing stream C behind the NCCL exchange of chunk 0 that the late rank never
 * issues. The stale-flag bugs need one
 * forward pass between `start()` and the thread's first statement. The reviewers' sequential waits are only
 * slower: the checker finds no behaviour they change.
 *
 * ## Configurations
 * - `check`: W = 2 ranks, 2 layers at 1 layer per chunk, window 1, plan within C = 1 tick, signal delay
 *   D = 1, margin M = 2 (the PR's margin at the delay it tolerates), Tc may raise.
 * - `large`: W = 3, otherwise as `check` but Tc never raises: the largest on which `fixed` finishes within 20 s
 *   (146,368 states; with a raising Tc, W = 3 has 502,590 states and takes about 2.5 minutes).
 * - `ranks8`: W = 8 (one node's TP group), otherwise as `check`. With one TP group the ranks are
 *   interchangeable and the variants declare symmetry (the kit's `symmetry`, with `delivered` renamed on both
 *   sides; not the two-group variants, nor the sequential waits from W = 3), so `check --no-liveness` keeps one
 *   state per renaming of ranks: up to W! fewer. On `large`, 146,368 states become 26,825 (5.5x); W = 4 as
 *   `large` holds in 507,150 states with symmetry (more than 5 million without). At W = 8 the stale-flag and
 *   finally bugs are found in seconds (compute-flag-in-thread: 12,737 states; finally-without-report: 9,793;
 *   no-try-finally-sync: 3,133; without symmetry none within 7 minutes), but `fixed` is out of reach: each
 *   rank's forward thread, Tc and Ts interleave with every other rank's within a tick, and the classes of such
 *   interleavings still grow like C(p + W - 1, W) for p local positions (60 s reach depth 47, 52,573 states).
 *   Partial-order reduction (the steps declare their footprints, the properties what they read) does not change
 *   that much. The cross-rank properties (`same-plan-and-begin-step`, `chunk-starts-together`) are stated over
 *   write-once history (the plan each rank held when it posted, begin_step, the chunk start ticks) and declared
 *   `stable`, so no step is visible for them, and the forward pass's rendezvous lets the reduction wait on the
 *   member whose steps it already has (`check` with symmetry: 4,812 -> 3,275 states; `large`: 26,825 ->
 *   12,105, since each rank keeps its own kit fault; 18,931 before); but the generator steps of a tick read every
 *   rank's posting step and the signals, so they depend on each other, the 56 signals of 8 ranks arrive in any
 *   order within their delay bound, and `fixed` on `ranks8` is still incomplete after 60 s (depth 53 to 55,
 *   73,417 to 122,646 states). The bugs are found as before (compute-flag-in-thread 12,737
 *   states without the reduction, finally-without-report 9,793, no-try-finally-sync 3,133, no-try-finally 36).
 *   **`ranks8` is checked on the protocol-level model** (`eplb-async-rebalance-ticks.ts`, the `-ticks`
 *   variants): the same generator, time bounds and properties over the same rank variables, without the kit's
 *   statements, and with each rank's signals delivered in one step (why that loses nothing is in that module).
 *   It reaches exactly the kit model's vectors of rank variables at W = 2 (every covered variant, three delay
 *   settings) and W = 3 (test/spec-eplb-ticks.test.ts), and gives each covered variant the same verdict.
 *   Because two ranks' generator steps no longer read each other's state except at the posting step, partial-
 *   order reduction works there: `fixed-ticks` on `ranks8` holds in 848,305 states, about 31 s (W = 4: 14,084
 *   states; 6: 136,713). The bugs at W = 8: compute-flag-in-thread 14 states, no-try-finally 16,
 *   finally-without-report 23, pr-margin-late-signal 91,279 (7 s).
 * - `pr`: the PR's numbers: W = 16 (TP = 8 GPUs x 2 nodes; the PR runs 16 to 72), 58 MoE layers at 1 layer
 *   per chunk (DeepSeek-R1), a window of 1000 iterations, margin +2, W-1 signals each way per rank (W = 16:
 *   240 messages). The plan time C and the delay D are not in the PR (D = 1 is the most +2 tolerates). Not
 *   explored: it documents the setting.
 *
 * ## What is not from the kit
 * The tp-sync signals are plain actions (`signal`) and their handles are `delivered`: the kit's gloo P2P
 * matches the sends and receives of a pair in one FIFO (NCCL's rule), so the PR's order (every rank posts all
 * its receives, then all its sends) would deadlock there; gloo's sends and receives of a pair are independent.
 * The time bounds (C, D) are guards of the generator step.
 */
import { type Action, type StepLabel, type System, type Variant, actionsOf, defineProtocol, eventually } from '../model/index.ts';
import {
  type Body,
  type GpuState,
  type Stmt,
  bufferValue,
  collective,
  cpuRead,
  gpuSystem,
  isFinished,
  launch,
  mayRaise,
  raise,
  set,
  start,
  step,
  syncDevice,
  syncStream,
  tryCatch,
  tryFinally,
  until,
  when,
  allDone,
  observing,
  stable,
  stepObserving,
} from '../model/gpu/index.ts';
import { type Bugs, type EplbAsyncConfig, type GeneratorView, type RankVars, initVars, roundRules } from './eplb-async-rebalance-rules.ts';
import { buildEplbTicks } from './eplb-async-rebalance-ticks.ts';

export type { Bugs, EplbAsyncConfig, Phase, RankVars } from './eplb-async-rebalance-rules.ts';

// ---- state ------------------------------------------------------------------------------------------------

export interface User {
  /** delivered[src][dst]: src's tp-sync signal has reached dst's receive tensor (both handles complete). */
  readonly delivered: readonly (readonly boolean[])[];
}

export type EplbState = GpuState<User>;

const V = (s: EplbState, r: number): RankVars => s.vars[r] as unknown as RankVars;

// ---- the model --------------------------------------------------------------------------------------------

export function buildEplbAsync(cfg: EplbAsyncConfig, bugs: Bugs = {}) {
  const rules = roundRules(cfg, bugs);
  const { W, G, world, N, C, D, L, K, ranks, groupOf, members, tpName, layersOf, badAddress, addressed, matches } = rules;
  const { postFirst, postLast, learnFirst, learnLast, lastTick, chunkPossible } = rules;

  /** Why rank r's generator step of tick t must wait (a time bound is due), or null. */
  function overdue(s: EplbState, r: number, t: number): string | null {
    const th = s.threads[r];
    if (typeof th.compute === 'number' && t >= N + 2 + C) return `the plan is due by tick ${N + 2 + C} (C = ${C})`;
    const v = V(s, r);
    let latest = v.sendStep ?? -1;
    let allDone = v.sendStep !== null;
    for (const q of ranks) {
      for (const [p, x] of [
        [q, r],
        [r, q],
      ] as const) {
        if (!matches(p, x)) continue;
        const sp = V(s, p).sendStep;
        const sx = V(s, x).sendStep;
        if (sp === null || sx === null) {
          allDone = false;
          continue;
        }
        const posted = Math.max(sp, sx);
        latest = Math.max(latest, posted);
        if (!s.user.delivered[p][x]) {
          allDone = false;
          if (t >= posted + 1 + D) return `the signal ${p} -> ${x} posted at tick ${posted} is due by tick ${posted + 1 + D} (D = ${D})`;
        }
      }
    }
    if (typeof th.sync === 'number' && allDone && t >= latest + 1 + D) return `Ts must clear _tp_sync_ongoing by tick ${latest + 1 + D}`;
    return null;
  }

  // What the generator sees of the kit's state: its threads, and the signals delivered to its receive tensors.
  const view: GeneratorView<EplbState> = {
    tcThreadRaised: (s, r) => s.threads[r].compute === 'raised',
    threadUnstarted: (s, r, thread) => s.threads[r][thread] === 0,
    received: (s, p, x) => (s.user.delivered[p][x] ? V(s, p).sent! : 'garbage'),
  };

  function forwardThread(r: number): Body<User> {
    const g = groupOf(r);
    const tp = tpName(g);
    const mapStream = bugs.mapOnSideStream ? 'S' : 'C';
    const vv = (c: { vars: unknown }) => c.vars as RankVars;

    // One forward pass: the MoE all-to-all, a CPU-blocking rendezvous of the TP group (with several TP groups,
    // pipeline stages, the batch also passes from stage to stage: one rendezvous of the world per tick).
    const fwd = (): Body<User> => [collective('all_to_all', undefined, { group: 'forward_pass', backend: 'gloo' })];

    const tickStep = (t: number) =>
      step<User>('tick', {
        // Partial-order reduction: the time bounds read every rank's posting step, the signals and this rank's
        // threads; learning begin reads the values signalled.
        reads: (rk) => [`vars[${rk}]`, `threads[${rk}].compute`, `threads[${rk}].sync`, `user.delivered[${rk}]`, ...ranks.flatMap((p) => [`user.delivered[${p}][${rk}]`, `vars[${p}].sendStep`, `vars[${p}].sent`])],
        writes: (rk) => [`vars[${rk}]`],
        guard: (c) => overdue(c.s, r, t) === null,
        effect: (c) => ({ vars: rules.genEffect(view, r, vv(c), c.s, t) as never }),
        describe: (c) => rules.genText(view, r, vv(c), c.s, t),
      });

    // The kit statements a chunk issues, in the generator step that started it, then the scheduler's
    // synchronize of stream C before the next forward pass (that pass's kernels queue behind the exchange and
    // the scheduler waits for its sampled tokens): no rank gets past the next forward pass before its exchange
    // is done.
    const chunkStmts = (k: number): Body<User> => [
      ...layersOf(k).map((l) => collective('all_to_all', `w${l}`, { group: tp })),
      ...layersOf(k).map((l) => launch(mapStream, `update_map${l}`, { writes: [`map${l}`], value: 'new' })),
      !bugs.noSyncBeforeForward && syncStream('C'),
    ];

    // After the round, the forward passes go on to the horizon (the generator idles in the next window).
    const tail = (from: number): Body<User> => [...Array(Math.max(0, lastTick + 2 - from)).keys()].map(() => fwd());

    const program = (t: number): Body<User> => {
      if (t > lastTick) return fwd();
      const rest = program(t + 1);
      const head: Body<User> = [fwd()];
      if (t < N) return [head, rest];
      if (t === N) return [head, collective('broadcast', 'load', { group: tp }), rest];
      if (t === N + 1) return [head, tickStep(t), syncDevice(), start('compute'), rest];
      const body: (Body<User> | Stmt<User>)[] = [head, tickStep(t)];
      if (t >= postFirst && t <= postLast) {
        body.push(
          badAddress[r] !== null
            ? when<User>(
                (c) => vv(c).phase === 'computeSpin' && !vv(c).computeOngoing,
                `_compute_ongoing is clear at tick ${t}`,
                [raise(`irecv names the peer's group rank as a global rank: ${badAddress[r]}`)],
                [],
                { reads: (rk) => [`vars[${rk}].phase`, `vars[${rk}].computeOngoing`] },
              )
            : when<User>((c) => vv(c).sendStep === t, `the signals were posted at tick ${t}`, [start('sync')], [], { reads: (rk) => [`vars[${rk}].sendStep`] }),
        );
      }
      if (W === 1 && bugs.stackReceived && t >= learnFirst && t <= learnLast) {
        body.push(
          when<User>(
            (c) => vv(c).phase === 'syncSpin' && !vv(c).syncOngoing,
            `_tp_sync_ongoing is clear at tick ${t}`,
            [raise('max_tensor = torch.stack(buffer_kept).max() with no peer (W = 1): RuntimeError: stack expects a non-empty TensorList')],
            [],
            { reads: (rk) => [`vars[${rk}].phase`, `vars[${rk}].syncOngoing`] },
          ),
        );
      }
      const ks = chunkPossible(t);
      for (const k of ks) {
        if (k === K - 1) continue;
        body.push(when<User>((c) => vv(c).chunkAt[k] === t, `chunk ${k} started at tick ${t}`, chunkStmts(k), [], { reads: (rk) => [`vars[${rk}].chunkAt`] }));
      }
      if (ks.includes(K - 1)) {
        body.push(
          when<User>((c) => vv(c).chunkAt[K - 1] === t, `the last chunk (${K - 1}) started at tick ${t}`, [chunkStmts(K - 1), tail(t + 1)], rest, {
            reads: (rk) => [`vars[${rk}].chunkAt`],
          }),
        );
        return body;
      }
      body.push(rest);
      return body;
    };
    return program(0);
  }

  function computeThread(): Body<User> {
    const core: Body<User> = [cfg.computeMayRaise && mayRaise('ExpertLocationMetadata.init_by_eplb raises'), cpuRead('load', { into: 'plan' })];
    const clear = set('computeOngoing', false);
    return [
      bugs.computeFlagInThread && set('computeOngoing', true),
      bugs.noTryFinally
        ? [...core, clear]
        : bugs.finallyWithoutReport
          ? tryFinally(core, [clear])
          : tryFinally([tryCatch(core, [set('tcError', true)])], [clear]),
    ];
  }

  function syncThread(r: number): Body<User> {
    // The handles: the W-1 sends first, then the W-1 receives (the PR's `send_works + recv_works`).
    const handles: [string, (s: EplbState) => boolean][] = [
      ...addressed(r).map((x): [string, (s: EplbState) => boolean] => [`send to rank ${x}`, (s) => s.user.delivered[r][x]]),
      ...addressed(r).map((p): [string, (s: EplbState) => boolean] => [`recv from rank ${p}`, (s) => s.user.delivered[p][r]]),
    ];
    const raising = bugs.syncMayRaise && mayRaise('a gloo wait() raises');
    // Partial-order reduction: the handles are this rank's row and column of `delivered`.
    const handleReads = [`user.delivered[${r}]`, ...ranks.map((p) => `user.delivered[${p}][${r}]`)];
    const waits: Body<User> = bugs.sequentialWaits
      ? handles.map(([what, done]) => [raising, until<User>((c) => done(c.s), `the handle of the ${what} is completed`, { reads: handleReads })])
      : [raising, until<User>((c) => handles.every(([, done]) => done(c.s)), 'every signal handle is completed', { reads: handleReads })];
    const clear = set('syncOngoing', false);
    return [
      bugs.syncFlagInThread && set('syncOngoing', true),
      // (The fixed design's Ts never raises here: a failed exchange leaves nothing to agree on, and the fix for
      // it, failing the whole server, is not a proper end of this model.)
      bugs.noTryFinally ? [...waits, clear] : tryFinally(waits, [clear]),
    ];
  }

  const act = actionsOf<EplbState>();
  const signal: Action<EplbState> = act<{ from: number; to: number }>('signal', {
    params: { from: ranks, to: ranks },
    actor: ({ from, to }) => `gloo rank ${from} -> rank ${to}`,
    reads: ({ from, to }) => [`vars[${from}].sendStep`, `vars[${to}].sendStep`, `user.delivered[${from}][${to}]`],
    writes: ({ from, to }) => [`user.delivered[${from}][${to}]`],
    guard: (s, { from, to }) =>
      matches(from, to) && V(s, from).sendStep !== null && V(s, to).sendStep !== null && !s.user.delivered[from][to],
    effect: (s, { from, to }) => ({
      ...s,
      user: { delivered: s.user.delivered.with(from, s.user.delivered[from].with(to, true)) },
    }),
    describe: ({ from, to }, s) => `rank ${from}'s tp-sync signal (${V(s, from).sent}) reaches rank ${to}: both handles complete`,
  });

  // ---- properties ----

  const { groups } = rules;
  const tcRaised = (s: EplbState, r: number) => s.threads[r].compute === 'raised' || V(s, r).tcError;

  // What each property reads, for partial-order reduction (conjuncts: per rank, or over all ranks).
  const fv = (r: number, ...names: string[]) => names.map((n) => `vars[${r}].${n}`);
  const perRank = (f: (r: number) => string[][]) => ranks.flatMap(f);
  const invariants: Record<string, (s: EplbState) => boolean> = {
    // Both compare ranks; both are stated over write-once history (the plan held when posting, begin_step,
    // the chunks' start ticks; `step` only grows), so a violation, once there, stays: `stable`, and no step
    // needs to be visible for them under partial-order reduction.
    'same-plan-and-begin-step': stable((s: EplbState) => rules.samePlanAndBegin((r) => V(s, r))),
    'chunk-starts-together': stable((s: EplbState) => rules.chunksTogether((r) => V(s, r))),
    'begin-step-not-passed': observing(perRank((r) => [fv(r, 'learnedAt', 'begin')]), (s: EplbState) => ranks.every((r) => rules.beginNotPassed(V(s, r)))),
    'no-spin-forever': observing(perRank((r) => [[...fv(r, 'phase', 'computeOngoing'), `threads[${r}].compute`], [...fv(r, 'phase', 'syncOngoing'), `threads[${r}].sync`]]), (s: EplbState) =>
      ranks.every((r) => {
        const v = V(s, r);
        if (v.phase === 'computeSpin' && v.computeOngoing && isFinished(s, r, 'compute')) return false;
        if (v.phase === 'syncSpin' && v.syncOngoing && isFinished(s, r, 'sync')) return false;
        return true;
      })),
    'raised-thread-reported': observing(perRank((r) => [[...fv(r, 'tcError', 'sendStep', 'reported'), `threads[${r}].compute`], [...fv(r, 'learnedAt', 'reported'), `threads[${r}].sync`]]), (s: EplbState) =>
      ranks.every((r) => {
        const v = V(s, r);
        if (tcRaised(s, r) && v.sendStep !== null && v.reported === null) return false;
        if (s.threads[r].sync === 'raised' && v.learnedAt !== null && v.reported === null) return false;
        return true;
      })),
    'forward-thread-never-raises': observing(perRank((r) => [[`threads[${r}].forward`]]), (s: EplbState) => ranks.every((r) => s.threads[r].forward !== 'raised')),
    'model-horizon': observing(perRank((r) => [[`threads[${r}].forward`, ...fv(r, 'phase')]]), (s: EplbState) => ranks.every((r) => s.threads[r].forward !== 'done' || V(s, r).phase === 'done')),
  };
  const actionProperties: Record<string, (b: EplbState, st: StepLabel, a: EplbState) => boolean> = {
    // Only a forward pass (the gloo collective of the forward) can break it, and it reads the buffers' blocks.
    'weights-and-map-switch-together': stepObserving({ actions: ['gloo_collective'], reads: ['blocks'] }, (b: EplbState, st: StepLabel) => {
      if (st.action !== 'gloo_collective') return true;
      // A forward pass is about to run: per group and layer, every rank's weights and map of one version.
      for (const g of groups) {
        for (let l = 0; l < L; l++) {
          let version: boolean | undefined;
          for (const r of members(g)) {
            const wNew = bufferValue(b, r, `w${l}`) !== 'old';
            const mNew = bufferValue(b, r, `map${l}`) === 'new';
            if (wNew !== mNew) return false;
            if (version !== undefined && version !== wNew) return false;
            version = wNew;
          }
        }
      }
      return true;
    }),
  };
  for (const p of bugs.omit ?? []) {
    delete invariants[p];
    delete actionProperties[p];
  }

  const buffers: Record<string, { init: string }> = { load: { init: 'local-load' } };
  for (let l = 0; l < L; l++) {
    buffers[`w${l}`] = { init: 'old' };
    buffers[`map${l}`] = { init: 'old' };
  }
  const groupDecl: Record<string, number[]> = { forward_pass: ranks };
  for (const g of groups) {
    groupDecl[tpName(g)] = members(g);
  }

  return gpuSystem<User>({
    name: `eplb-async-rebalance(${rules.tag})`,
    ranks: world,
    streams: bugs.mapOnSideStream ? ['C', 'S'] : ['C'],
    buffers,
    vars: initVars as never,
    groups: groupDecl,
    user: { delivered: ranks.map(() => ranks.map(() => false)) },
    threads: (r) => ({
      forward: forwardThread(r),
      compute: { autoStart: false, body: computeThread() },
      sync: { autoStart: false, body: syncThread(r) },
    }),
    actions: [signal],
    // Ranks are interchangeable with one TP group: every group is the world, every rank runs the same program
    // and signals every other rank, and every property quantifies over all ranks. The protocol's state names
    // ranks only in `delivered` (indexed by rank on both sides). Not with two TP groups (a renaming must keep
    // each group), nor with the sequential waits at W >= 3 (Ts waits its peers in rank order).
    symmetry: G === 1 && (!bugs.sequentialWaits || W <= 2) && {
      permuteUser: (u, perm) => {
        // The same object when the renaming moves nothing (the kit then compares by identity).
        if (u.delivered.every((row, p) => row.every((d, x) => u.delivered[perm[p]][perm[x]] === d))) return u;
        const moved = u.delivered.map(() => [] as boolean[]);
        u.delivered.forEach((row, p) => row.forEach((d, x) => (moved[perm[p]][perm[x]] = d)));
        return { delivered: moved };
      },
      pair: (s, r, p) => (s.user.delivered[r][p] ? 1 : 0) + (s.user.delivered[p][r] ? 2 : 0),
    },
    invariants,
    actionProperties,
    liveness: {
      // "No rank waits forever": every thread runs to its end (a rank blocked in the MoE all-to-all while its
      // peers block in the P2P exchange never does).
      'no-rank-waits-forever': eventually(allDone),
      // "No spin loop runs forever": every rank's generator gets through the round (the transfer done, or the
      // round aborted on every rank) or its forward thread raised. The ticks are unrolled, so a spin that never
      // ends shows as a behaviour that runs out of ticks still spinning, then stutters.
      'round-completes': eventually((s) => ranks.every((r) => V(s, r).phase === 'done' || s.threads[r].forward === 'raised')),
    },
    explainStuck: (s) =>
      ranks.map((r) => {
        const v = V(s, r);
        return `rank ${r}: generator in ${v.phase} at _step_counter ${v.step}, begin_step ${v.begin ?? 'unknown'}${v.learnedAt !== null ? ` (learnt at tick ${v.learnedAt})` : ''}, chunks started at ticks [${v.chunkAt.join(', ')}]`;
      }),
  });
}

// ---- configurations and variants ---------------------------------------------------------------------------

const check: EplbAsyncConfig = {
  tpSize: 2,
  tpGroups: 1,
  layers: 2,
  layersPerChunk: 1,
  window: 1,
  computeTicks: 1,
  delay: 1,
  margin: 2,
  computeMayRaise: true,
};
const large: EplbAsyncConfig = { ...check, tpSize: 3, computeMayRaise: false };
/**
 * One node's TP group of 8 GPUs, otherwise as `check`. Its ranks are interchangeable (one TP group, every rank
 * runs the same program and signals every other, the properties quantify over all ranks), so the variants
 * declare symmetry and the explorer keeps one state per renaming of ranks.
 */
const ranks8: EplbAsyncConfig = { ...check, tpSize: 8 };
const pr: EplbAsyncConfig = {
  tpSize: 16,
  tpGroups: 1,
  layers: 58,
  layersPerChunk: 1,
  window: 1000,
  computeTicks: 1,
  delay: 1,
  margin: 2,
  computeMayRaise: true,
};

/** The margin the fixed design uses for the configured delay: M >= D + 1. */
const safe = (c: EplbAsyncConfig): EplbAsyncConfig => ({ ...c, margin: Math.max(c.margin, c.delay + 1) });
/** Two TP groups of two (world 4), kept small: the groups' states multiply. */
const twoGroups = (c: EplbAsyncConfig): EplbAsyncConfig => ({ ...c, tpSize: 2, tpGroups: 2, computeTicks: 0, delay: 0, margin: 1, computeMayRaise: false });

/** The kit model's variants: every bug of the brief, on threads, streams and single signals. */
const kitVariants: Variant<EplbAsyncConfig>[] = [
  {
    name: 'fixed',
    summary: 'fixed design: flags set before start(), try/except/finally in both threads (a raising Tc is reported and aborts the round on every rank), margin M >= D + 1, max over [own] + received, global ranks',
    expect: { verdict: 'holds' },
    build: (c) => buildEplbAsync(safe(c)),
  },
  {
    name: 'compute-flag-in-thread',
    summary: 'reviewers: Tc sets _compute_ongoing itself after start(); the generator reads a stale False and posts s_r without a plan',
    expect: { verdict: 'violated', property: 'same-plan-and-begin-step' },
    build: (c) => buildEplbAsync(safe(c), { computeFlagInThread: true }),
  },
  {
    name: 'sync-flag-in-thread',
    summary: 'reviewers: Ts sets _tp_sync_ongoing itself after start(); the generator reads a stale False and takes begin_step from receive tensors not yet written',
    expect: { verdict: 'violated', property: 'same-plan-and-begin-step' },
    expectLiveness: 'no-rank-waits-forever',
    build: (c) => buildEplbAsync(safe(c), { syncFlagInThread: true }),
  },
  {
    name: 'no-try-finally',
    summary: 'reviewers: no try/finally; Tc raises, _compute_ongoing stays set and the generator spins forever (the state from which it never progresses; on its own, the liveness property round-completes fails)',
    expect: { verdict: 'violated', property: 'no-spin-forever' },
    expectLiveness: 'no-rank-waits-forever',
    build: (c) => buildEplbAsync(safe(c), { noTryFinally: true }),
  },
  {
    name: 'no-try-finally-sync',
    summary: "reviewers: no try/finally in Ts; a gloo wait() raises, _tp_sync_ongoing stays set and the generator spins forever (as a state, as above)",
    expect: { verdict: 'violated', property: 'no-spin-forever' },
    expectLiveness: 'no-rank-waits-forever',
    build: (c) => buildEplbAsync(safe({ ...c, computeMayRaise: false }), { noTryFinally: true, syncMayRaise: true }),
  },
  {
    name: 'finally-without-report',
    summary: 'half of the reviewers\' fix: try/finally clears the flag but the exception is not captured; the generator goes on without a plan and nobody reports it',
    expect: { verdict: 'violated', property: 'raised-thread-reported' },
    build: (c) => buildEplbAsync(safe(c), { finallyWithoutReport: true }),
  },
  {
    name: 'sequential-waits',
    summary: "reviewers: Ts waits the handles one after the other; a performance comment only: it holds (Ts ends when the last handle completes, whatever the order)",
    expect: { verdict: 'holds' },
    build: (c) => buildEplbAsync(safe(c), { sequentialWaits: true }),
  },
  {
    name: 'margin-at-safe-bound',
    summary: 'mine: signal delay D = 2 with margin M = D + 1 = 3 (the safe bound): every rank learns begin_step in time',
    expect: { verdict: 'holds' },
    build: (c) => buildEplbAsync({ ...c, delay: 2, margin: 3 }),
  },
  {
    name: 'pr-margin-late-signal',
    summary: 'mine: the PR\'s margin +2 with a signal delay D = 2, one tick more than it tolerates: a rank learns begin_step a tick after passing it',
    expect: { verdict: 'violated', property: 'begin-step-not-passed' },
    expectLiveness: 'no-rank-waits-forever',
    build: (c) => buildEplbAsync({ ...c, margin: 2, delay: 2 }),
  },
  {
    name: 'pr-margin-late-signal-deadlock',
    summary: 'mine, its consequence (timing properties left out): the late rank transfers a tick late; its peers block in the P2P exchange while it blocks in the MoE all-to-all: deadlock',
    expect: { verdict: 'violated', property: 'deadlock' },
    expectLiveness: 'no-rank-waits-forever',
    build: (c) => buildEplbAsync({ ...c, margin: 2, delay: 2 }, { omit: ['begin-step-not-passed', 'chunk-starts-together'] }),
  },
  {
    name: 'group-rank-as-global',
    summary: 'brief: the signals pass the peer\'s group rank where torch expects a global rank; with 2 TP groups of 2 (world 4) the second group\'s ranks name ranks 0 and 1: ValueError on the forward thread',
    expect: { verdict: 'violated', property: 'forward-thread-never-raises' },
    expectLiveness: 'no-rank-waits-forever',
    build: (c) => buildEplbAsync(twoGroups(c), { groupRankAsGlobal: true }),
  },
  {
    name: 'fixed-two-tp-groups',
    summary: 'fixed design with 2 TP groups of 2 (world 4): global ranks from the group, each group agrees on its own',
    expect: { verdict: 'holds' },
    build: (c) => buildEplbAsync(twoGroups(c)),
  },
  {
    name: 'w1-empty-stack',
    summary: 'brief: W = 1: no peers, torch.stack of the empty list of received tensors raises on the forward thread',
    expect: { verdict: 'violated', property: 'forward-thread-never-raises' },
    build: (c) => buildEplbAsync(safe({ ...c, tpSize: 1, tpGroups: 1 }), { stackReceived: true }),
  },
  {
    name: 'fixed-w1',
    summary: 'fixed design at W = 1: begin_step = max([own] + received) + M needs no peer',
    expect: { verdict: 'holds' },
    build: (c) => buildEplbAsync(safe({ ...c, tpSize: 1, tpGroups: 1 })),
  },
];

/**
 * A variant on the protocol-level model (eplb-async-rebalance-ticks.ts), named after the kit model's variant it
 * mirrors, with that variant's expectations: the two models must agree on it.
 */
function protocolLevel(kitName: string, summary: string, build: (c: EplbAsyncConfig) => System<any>): Variant<EplbAsyncConfig> {
  const twin = kitVariants.find((v) => v.name === kitName);
  if (twin === undefined) throw new Error(`eplb-async-rebalance: no kit variant '${kitName}' for the protocol-level one`);
  return { name: `${kitName}-ticks`, summary, expect: twin.expect, ...(twin.expectLiveness ? { expectLiveness: twin.expectLiveness } : {}), build };
}

export default defineProtocol<EplbAsyncConfig>({
  name: 'eplb-async-rebalance',
  summary: 'SGLang #8529: background plan thread, TP-wide agreement on the transfer step by gloo signals (max + 2), chunked transfer',
  configs: { check, large, ranks8, pr },
  variants: [
    ...kitVariants,
    // The protocol-level model (eplb-async-rebalance-ticks.ts): the same generator, time bounds and properties
    // without the GPU kit's threads and streams, and one delivery step per rank's signals. It covers the variants
    // whose generator reads the signals only after Ts (one TP group, W >= 2), and is what checks `ranks8`.
    protocolLevel(
      'fixed',
      'fixed design, protocol-level model: the round\'s own steps (forward pass, generator step, Tc, Ts), every rank\'s signals delivered in one step',
      (c) => buildEplbTicks(safe(c)),
    ),
    protocolLevel(
      'compute-flag-in-thread',
      'compute-flag-in-thread on the protocol-level model: a stale False, a post without a plan',
      (c) => buildEplbTicks(safe(c), { computeFlagInThread: true }),
    ),
    protocolLevel(
      'no-try-finally',
      'no-try-finally on the protocol-level model: Tc dies with _compute_ongoing set, the generator spins',
      (c) => buildEplbTicks(safe(c), { noTryFinally: true }),
    ),
    protocolLevel(
      'finally-without-report',
      'finally-without-report on the protocol-level model: the flag cleared, the exception never reported',
      (c) => buildEplbTicks(safe(c), { finallyWithoutReport: true }),
    ),
    protocolLevel(
      'margin-at-safe-bound',
      'margin-at-safe-bound on the protocol-level model: D = 2, M = 3',
      (c) => buildEplbTicks({ ...c, delay: 2, margin: 3 }),
    ),
    protocolLevel(
      'pr-margin-late-signal',
      'pr-margin-late-signal on the protocol-level model: D = 2, M = 2, a rank learns begin_step a tick late',
      (c) => buildEplbTicks({ ...c, margin: 2, delay: 2 }),
    ),
    protocolLevel(
      'pr-margin-late-signal-deadlock',
      'its consequence on the protocol-level model: the exchange of chunk 0 issued by some ranks only, the forward pass never comes',
      (c) => buildEplbTicks({ ...c, margin: 2, delay: 2 }, { omit: ['begin-step-not-passed', 'chunk-starts-together'] }),
    ),
  ],
});
