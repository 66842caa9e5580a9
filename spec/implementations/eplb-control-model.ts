/**
 * A small model of one rank's async-rebalance control logic (protocols.md section 5, SGLang #8529): the
 * forward thread advances a generator once per forward pass (idle for a window, start the compute thread,
 * spin on `_compute_ongoing`, read the plan, apply it layer by layer); the compute thread computes the plan
 * and clears the flag. Its actions are the events `eplb-rebalance.ts` records, so a recorded run of the
 * implementation can be validated against it.
 *
 * Variants: `fixed` (flag set before `start()`, try/except/finally in the thread); `flag-in-thread` (the
 * thread sets the flag itself: the generator may read a stale False and use a missing plan); `no-finally`
 * (no try/finally: a thread that raises leaves the flag set, and the generator spins forever).
 */
import { defineProtocol } from '../../model/registry.ts';
import { actionsOf, defineSystem, type System } from '../../model/system.ts';

export type EplbVariant = 'fixed' | 'flag-in-thread' | 'no-finally';

export interface EplbConfig {
  /** Forward passes idle before a rebalance starts (the load window). */
  readonly window: number;
  /** Layers applied one per forward pass (layers per chunk 1). */
  readonly layers: number;
  /** Rebalance cycles, to keep the model finite. */
  readonly cycles: number;
}

export type MainPhase = 'idle' | 'started' | 'polling' | 'applying' | 'parked';
export type ThreadPhase = 'none' | 'started' | 'computing' | 'ready' | 'raising' | 'exiting' | 'done';

export interface EplbState {
  readonly main: MainPhase;
  /** Idle forward passes so far in this window. */
  readonly idle: number;
  /** Layers applied in this cycle. */
  readonly layer: number;
  readonly cycle: number;
  /** `_compute_ongoing`. */
  readonly flag: boolean;
  readonly thread: ThreadPhase;
  /** `_rebalance_result`: the cycle whose plan it holds, or null. */
  readonly result: number | null;
  /** `_compute_error` is set (the thread raised and said so). */
  readonly error: boolean;
  /** The cycle of the plan the generator read for this cycle (null: it read no plan). */
  readonly used: number | null;
  /** Failures the generator reported. */
  readonly reported: number;
}

const act = actionsOf<EplbState>();
const MAIN = 'rank 0 forward';
const COMPUTE = 'rank 0 compute';

export function eplbControl(variant: EplbVariant, cfg: EplbConfig): System<EplbState> {
  const flagBeforeStart = variant !== 'flag-in-thread';
  const hasFinally = variant !== 'no-finally';
  return defineSystem<EplbState>({
    name: `eplb-control(${variant}, window ${cfg.window}, ${cfg.layers} layers, ${cfg.cycles} cycles)`,
    init: { main: 'idle', idle: 0, layer: 0, cycle: 0, flag: false, thread: 'none', result: null, error: false, used: null, reported: 0 },
    actions: [
      act('idleTick', {
        actor: MAIN,
        guard: (s) => s.main === 'idle' && s.idle < cfg.window,
        effect: (s) => ({ ...s, idle: s.idle + 1 }),
        describe: () => 'forward pass: the generator waits for the load window to fill',
      }),
      act('startCompute', {
        actor: MAIN,
        // A thread object per cycle; the previous one must have ended (it has, unless the flag was misread).
        guard: (s) => s.main === 'idle' && s.idle === cfg.window && s.cycle < cfg.cycles && (s.thread === 'none' || s.thread === 'done'),
        effect: (s) => ({
          ...s,
          main: 'started',
          cycle: s.cycle + 1,
          flag: flagBeforeStart ? true : s.flag,
          thread: 'started',
          result: null,
          error: false,
          used: null,
          layer: 0,
        }),
        describe: () => (flagBeforeStart ? 'set _compute_ongoing, then start the compute thread' : 'start the compute thread'),
      }),
      act('park', {
        actor: MAIN,
        guard: (s) => s.main === 'idle' && s.idle === cfg.window && s.cycle === cfg.cycles,
        effect: (s) => ({ ...s, main: 'parked' }),
        describe: () => 'no more rebalances (the model is bounded)',
      }),
      act('threadStart', {
        actor: COMPUTE,
        guard: (s) => s.thread === 'started',
        effect: (s) => ({ ...s, thread: 'computing', flag: flagBeforeStart ? s.flag : true }),
        describe: () => (flagBeforeStart ? 'the compute thread starts' : 'the compute thread starts and sets _compute_ongoing'),
      }),
      act('planReady', {
        actor: COMPUTE,
        guard: (s) => s.thread === 'computing',
        effect: (s) => ({ ...s, thread: 'ready', result: s.cycle }),
        describe: () => 'the plan is computed into _rebalance_result',
      }),
      act('computeRaises', {
        actor: COMPUTE,
        guard: (s) => s.thread === 'computing',
        effect: (s) => ({ ...s, thread: 'raising', error: hasFinally ? true : s.error }),
        describe: () => (hasFinally ? 'init_by_eplb raises; except stores the error' : 'init_by_eplb raises; nothing catches it'),
      }),
      act('clearFlag', {
        actor: COMPUTE,
        guard: (s) => s.thread === 'ready' || (s.thread === 'raising' && hasFinally),
        effect: (s) => ({ ...s, thread: 'exiting', flag: false }),
        describe: (_p, s) => (s.thread === 'raising' ? 'finally: clear _compute_ongoing' : 'clear _compute_ongoing'),
      }),
      act('threadExit', {
        actor: COMPUTE,
        guard: (s) => s.thread === 'exiting' || (s.thread === 'raising' && !hasFinally),
        effect: (s) => ({ ...s, thread: 'done' }),
        describe: (_p, s) => (s.thread === 'raising' ? 'the thread dies of its exception (only logged)' : 'the compute thread ends'),
      }),
      act('spin', {
        actor: MAIN,
        guard: (s) => (s.main === 'started' || s.main === 'polling') && s.flag,
        effect: (s) => ({ ...s, main: 'polling' }),
        describe: () => 'forward pass: _compute_ongoing is set, the generator yields',
      }),
      act('readPlan', {
        actor: MAIN,
        guard: (s) => (s.main === 'started' || s.main === 'polling') && !s.flag && !s.error,
        effect: (s) => ({ ...s, main: 'applying', used: s.result }),
        describe: () => '_compute_ongoing is clear: the generator reads _rebalance_result',
      }),
      act('reportFailure', {
        actor: MAIN,
        guard: (s) => (s.main === 'started' || s.main === 'polling') && !s.flag && s.error,
        effect: (s) => ({ ...s, main: 'idle', idle: 0, error: false, reported: s.reported + 1 }),
        describe: () => 'the compute thread raised: the generator reports it and skips this rebalance',
      }),
      act('applyLayer', {
        params: { layer: Array.from({ length: cfg.layers }, (_, i) => i) },
        actor: MAIN,
        guard: (s, { layer }) => s.main === 'applying' && s.layer === layer,
        effect: (s) => (s.layer + 1 === cfg.layers ? { ...s, main: 'idle', idle: 0, layer: 0 } : { ...s, layer: s.layer + 1 }),
        describe: ({ layer }) => `forward pass: transfer layer ${layer} and update its dispatch map`,
      }),
    ],
    invariants: {
      /** The generator applies only the plan computed in this cycle. */
      noMissingPlan: (s) => s.main !== 'applying' || s.used === s.cycle,
      /** `_compute_ongoing` set with no live thread to clear it: the generator would spin forever. */
      noStuckFlag: (s) => !(s.flag && s.thread === 'done'),
    },
    terminal: (s) => s.main === 'parked' && (s.thread === 'none' || s.thread === 'done'),
  });
}

export const eplbCheckConfig: EplbConfig = { window: 2, layers: 2, cycles: 2 };

export default defineProtocol<EplbConfig>({
  name: 'eplb-control',
  summary: 'one rank of the async rebalance generator and its compute thread (the control logic the implementation tests use)',
  configs: { check: eplbCheckConfig },
  variants: [
    { name: 'fixed', summary: 'flag set before start(); try/except/finally in the thread', expect: { verdict: 'holds' }, build: (c) => eplbControl('fixed', c) },
    {
      name: 'flag-in-thread',
      summary: 'the thread sets _compute_ongoing itself: the generator reads a stale False and uses a missing plan',
      expect: { verdict: 'violated', property: 'noMissingPlan' },
      build: (c) => eplbControl('flag-in-thread', c),
    },
    {
      name: 'no-finally',
      summary: 'no try/finally: a raising thread leaves _compute_ongoing set and the generator spins forever',
      expect: { verdict: 'violated', property: 'noStuckFlag' },
      build: (c) => eplbControl('no-finally', c),
    },
  ],
});
