/**
 * What every breadth-first search (the generic explorer and the packed fast path) does beside exploring: watch
 * the clock and the resident memory against the user's limits, report progress once a second, keep the peak
 * memory for the stats, and word a deadlock with the model's own explanation of who waits for what.
 */
import type { CheckOptions, CheckResult, PropertyKind, Stats } from './explorer.ts';
import { errText } from './faults.ts';
import { type ChunkedColumn, NO_PARENT, type ParentColumn } from './fingerprints.ts';
import type { Trace } from './trace.ts';

export class SearchWatch {
  peakRss = process.memoryUsage.rss();
  private readonly deadline: number;
  private nextProgress: number;

  /** When the search started: its stats count from here. */
  private readonly started = performance.now();

  constructor(private readonly opts: CheckOptions) {
    this.deadline = opts.timeLimit !== undefined ? this.started + opts.timeLimit * 1000 : Infinity;
    this.nextProgress = this.started + 1000;
  }

  /**
   * Called after the k-th state of a level is expanded: every 256 states it checks the time (and every 4,096
   * the memory) limit, and reports progress. Returns why the search must stop, or undefined.
   */
  tick(k: number, stats: () => Stats): string | undefined {
    if ((k & 255) !== 0) return undefined;
    const now = performance.now();
    if (now > this.deadline) return `time limit ${this.opts.timeLimit} s reached`;
    if (this.opts.maxMemoryMB !== undefined && (k & 4095) === 0) {
      const rss = process.memoryUsage.rss();
      this.peakRss = Math.max(this.peakRss, rss);
      if (rss > this.opts.maxMemoryMB * (1 << 20)) {
        return `memory limit ${this.opts.maxMemoryMB} MB reached (resident ${Math.round(rss / (1 << 20))} MB)`;
      }
    }
    if (now >= this.nextProgress) {
      this.nextProgress = now + 1000;
      this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss());
      this.opts.onProgress?.(stats());
    }
    return undefined;
  }

  /** The stats of a search so far, given its counts and the bytes of its per-state tables. */
  stats(states: number, transitions: number, depth: number, bytes: number): Stats {
    this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss());
    return statsAt(this.started, states, transitions, depth, bytes, this.peakRss);
  }
}

/** Stats of a search that started at `started` (performance.now()), with `bytes` of per-state tables. */
export function statsAt(started: number, states: number, transitions: number, depth: number, bytes: number, peakRss: number): Stats {
  const seconds = (performance.now() - started) / 1000;
  return {
    states,
    transitions,
    depth,
    seconds,
    statesPerSecond: seconds > 0 ? states / seconds : 0,
    bytesPerState: states > 0 ? bytes / states : 0,
    peakRssMB: peakRss / (1 << 20),
  };
}

/** A violation's result; its depth is its counterexample's length (the search may be part-way through a level). */
export function violatedResult(stats: Stats, property: string, kind: PropertyKind, message: string, trace: Trace | undefined): CheckResult {
  const depth = trace ? Math.max(stats.depth, trace.steps.length) : stats.depth;
  return { verdict: 'violated', property, propertyKind: kind, message, ...(trace ? { trace } : {}), stats: { ...stats, depth } };
}

/** The breadth-first path to state `idx`: the initial state it starts from and the action instances taken. */
export function pathTo(parent: ParentColumn, via: ChunkedColumn, idx: number): { readonly init: number; readonly ids: number[] } {
  const ids: number[] = [];
  let i = idx;
  while (parent.get(i) !== NO_PARENT) {
    ids.push(via.get(i));
    i = parent.get(i);
  }
  return { init: via.get(i), ids: ids.reverse() };
}

/** The message of a deadlock at the end of `trace`. */
export function deadlockMessage(trace: Trace): string {
  return `deadlock: no action is enabled after ${trace.steps.length} steps, and the state is not terminal`;
}

/**
 * What each blocked actor waits for at the end of `trace` (from the model's `explainStuck`), explained on the
 * trace's own last state: under symmetry the state expanded is a representative with its ranks renamed.
 */
export function stuckAt<S>(trace: Trace, explainStuck: ((s: S) => readonly string[]) | undefined): readonly string[] | undefined {
  if (!explainStuck) return undefined;
  const last = (trace.steps.length > 0 ? trace.steps[trace.steps.length - 1].state : trace.initial) as S;
  try {
    return explainStuck(last);
  } catch (e) {
    return [`(explainStuck threw: ${errText(e)})`];
  }
}
