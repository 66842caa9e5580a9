/**
 * The async-rebalance manager of SGLang #8529 (protocols.md section 5), one rank's control logic written as
 * ordinary async TypeScript: the forward thread advances a generator once per forward pass; a daemon compute
 * thread computes the plan; `_compute_ongoing` tells the generator when the plan is ready.
 *
 * Three versions, as the reviewers saw them:
 *   fixed           the flag is set before `start()`; the thread stores its exception and clears the flag in
 *                   `finally`; the generator reports a failed computation and skips that rebalance.
 *   flag-in-thread  the thread sets the flag itself, so the generator, polling right after `start()`, can read
 *                   a stale False and go on to use a plan that was never computed.
 *   no-finally      no try/finally: a thread that raises leaves the flag set, and the generator spins on it
 *                   forever (the test bounds the spin with a budget of forward passes and reports it).
 *
 * The environment (threads, switch points, the plan computation, the event recorder) is injected, so the same
 * code runs under fast-check's scheduler in tests. Every event it records is an action of
 * `eplb-control-model.ts`, with the same actor names.
 */
import type { EplbConfig, EplbVariant } from './eplb-control-model.ts';
import type { Runtime } from './runtime.ts';

export interface Plan {
  /** The rebalance cycle it was computed for. */
  readonly cycle: number;
  /** physical slot -> logical expert, the new placement. */
  readonly placement: readonly number[];
}

export interface EplbDeps {
  /** The load statistics of the last window (one count per logical expert). */
  loadWindow(): number[];
  /** `ExpertLocationMetadata.init_by_eplb`: slow, may raise. */
  computePlan(load: readonly number[], cycle: number): Promise<Plan>;
}

const FORWARD = 'rank 0 forward';
const COMPUTE = 'rank 0 compute';

export class EplbRebalancer {
  // The manager's shared fields, as in the PR.
  private computeOngoing = false;
  private rebalanceResult: Plan | null = null;
  private computeError: unknown = null;

  /** Forward passes run. */
  step = 0;
  /** Rebalance cycles started. */
  cycle = 0;
  /** What the forward loop can see from outside: the generator's phase and what it applied. */
  phase: 'idle' | 'polling' | 'applying' | 'parked' = 'idle';
  /** Consecutive forward passes spent polling `_compute_ongoing`. */
  spins = 0;
  readonly applied: { readonly cycle: number; readonly layer: number; readonly planCycle: number | null }[] = [];
  readonly reportedFailures: string[] = [];

  private readonly gen: AsyncGenerator<void, never, void>;

  constructor(
    private readonly variant: EplbVariant,
    private readonly cfg: EplbConfig,
    private readonly rt: Runtime,
    private readonly deps: EplbDeps,
  ) {
    this.gen = this.rebalanceLoop();
  }

  /** One forward pass of the model: the forward thread advances the rebalance generator once. */
  async forwardPass(): Promise<void> {
    await this.rt.preempt(FORWARD, `forward pass ${this.step + 1}`);
    this.step++;
    await this.gen.next();
  }

  private async *rebalanceLoop(): AsyncGenerator<void, never, void> {
    for (;;) {
      // Idle until the load window is full.
      for (let i = 0; i < this.cfg.window; i++) {
        this.rt.record({ actor: FORWARD, action: 'idleTick' });
        yield;
      }
      if (this.cycle >= this.cfg.cycles) {
        this.rt.record({ actor: FORWARD, action: 'park' });
        this.phase = 'parked';
        for (;;) yield;
      }
      this.cycle++;
      const cycle = this.cycle;
      const load = this.deps.loadWindow();
      this.rebalanceResult = null;
      this.computeError = null;
      if (this.variant !== 'flag-in-thread') this.computeOngoing = true;
      this.rt.record({ actor: FORWARD, action: 'startCompute' });
      this.rt.startThread(COMPUTE, () => this.computeExpertMetadata(load, cycle));
      await this.rt.preempt(FORWARD, 'after start()');

      // Spin until the plan is ready, one forward pass per poll.
      this.phase = 'polling';
      this.spins = 0;
      while (this.computeOngoing) {
        this.rt.record({ actor: FORWARD, action: 'spin', observed: { flag: true } });
        this.spins++;
        yield;
      }
      if (this.variant !== 'no-finally' && this.computeError !== null) {
        this.reportedFailures.push(`rebalance ${cycle} failed: ${errorText(this.computeError)}`);
        this.rt.record({ actor: FORWARD, action: 'reportFailure' });
        this.phase = 'idle';
        continue;
      }
      const plan = this.rebalanceResult as Plan | null;
      this.rt.record({ actor: FORWARD, action: 'readPlan', observed: { used: plan?.cycle ?? null } });

      // Transfer layer by layer, one per forward pass (layers per chunk 1).
      this.phase = 'applying';
      for (let layer = 0; layer < this.cfg.layers; layer++) {
        this.applied.push({ cycle, layer, planCycle: plan?.cycle ?? null });
        this.rt.record({ actor: FORWARD, action: 'applyLayer', params: { layer } });
        yield;
      }
      this.phase = 'idle';
    }
  }

  /** The compute thread's body (`_compute_expert_metadata`). */
  private async computeExpertMetadata(load: readonly number[], cycle: number): Promise<void> {
    if (this.variant === 'flag-in-thread') this.computeOngoing = true;
    this.rt.record({ actor: COMPUTE, action: 'threadStart' });
    if (this.variant === 'no-finally') {
      await this.rt.preempt(COMPUTE, 'init_by_eplb');
      const plan = await this.computeOrRecord(load, cycle);
      this.rebalanceResult = plan;
      this.rt.record({ actor: COMPUTE, action: 'planReady' });
      await this.rt.preempt(COMPUTE, 'before clearing the flag');
      this.computeOngoing = false;
      this.rt.record({ actor: COMPUTE, action: 'clearFlag' });
      return;
    }
    try {
      await this.rt.preempt(COMPUTE, 'init_by_eplb');
      const plan = await this.computeOrRecord(load, cycle);
      this.rebalanceResult = plan;
      this.rt.record({ actor: COMPUTE, action: 'planReady' });
      await this.rt.preempt(COMPUTE, 'before clearing the flag');
    } catch (e) {
      this.computeError = e;
    } finally {
      this.computeOngoing = false;
      this.rt.record({ actor: COMPUTE, action: 'clearFlag' });
    }
  }

  private async computeOrRecord(load: readonly number[], cycle: number): Promise<Plan> {
    try {
      return await this.deps.computePlan(load, cycle);
    } catch (e) {
      this.rt.record({ actor: COMPUTE, action: 'computeRaises' });
      throw e;
    }
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
