/**
 * `checkParallel`: the explorer's breadth-first search spread over worker threads, with the single-threaded
 * `check`'s results: the same verdict, property, state and transition counts, and the same (shortest)
 * counterexample. The scheme is described in protocol.ts; this side runs the level loop, keeps the least
 * event, and rebuilds a counterexample from the owners' parent links with `replay`.
 *
 * For a search with no state or depth limit, a sweep goes first (sweep.ts, packed-sweep.ts): the same levels over
 * one shared fingerprint table, with no routing and no order, which is all a search that meets nothing needs
 * (its counts do not depend on order). If it meets something, the exact scheme searches again, so a violation
 * costs the sweep's levels on top (the result notes it).
 *
 * Liveness (it needs the whole state graph in one place), symmetry reduction and partial-order reduction are
 * not spread: a system that declares one of them (with the option on) is checked by the single-threaded
 * explorer, and the result says so. So is a model that fails in the workers but not in one thread (its steps
 * keep state of their own in the thread that runs them, as the GPU kit's queue-item registry does).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type CheckOptions, type CheckResult, type Stats, check, replay } from '../explorer.ts';
import { checkedProperties, errText } from '../faults.ts';
import { packedUnfit } from '../packed-explorer.ts';
import { packedOf } from '../packed.ts';
import { planPor } from '../por.ts';
import { statsAt } from '../watch.ts';
import { ModelError, type System } from '../system.ts';
import {
  CTRL_NEXT,
  CTRL_STOP_ALL,
  CTRL_STOP_EXPAND,
  type FoundEvent,
  type FromWorker,
  NO_PARENT,
  type Parcel,
  SWEEP_PUBLISH,
  SWEEP_ENTRIES,
  SWEEP_NEXT,
  SWEEP_STOP,
  SWEEP_STOP_AT,
  SweepStop,
  type ToWorker,
} from './protocol.ts';
import { SweepTable } from './sweep-table.ts';
import { forget, workerBundle } from './bundle.ts';
import { SourceError, type SystemSource, loadSystem } from './source.ts';
import { SharedStrings } from './strings.ts';

export type { ModuleSource, ProtocolSource, SystemSource } from './source.ts';

export interface ParallelOptions extends CheckOptions {
  /** Worker threads (default: the machine's available parallelism). 1 runs the same scheme in one worker. */
  readonly workers?: number;
}

/** Most workers a search takes (parent links name the worker in one byte). */
const MAX_WORKERS = 64;
/** Young generation of each worker (three semi-spaces of 64 MB). */
const YOUNG_GENERATION_MB = 192;

/**
 * Checks the system `source` names with `workers` worker threads, each of which loads the system itself.
 * Rejects (never hangs) when a worker cannot load the source or dies.
 */
export async function checkParallel(source: SystemSource, options: ParallelOptions = {}): Promise<CheckResult> {
  const { workers: requested, ...opts } = options;
  const workers = requested ?? Math.max(1, Math.min(availableParallelism(), MAX_WORKERS));
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw new RangeError(`checkParallel: workers must be an integer from 1 to ${MAX_WORKERS}, got ${workers}`);
  }
  const started = performance.now();
  const system = (await loadSystem(source)) as System<unknown>;
  const properties = checkedProperties(system, opts.properties);
  const wanted = (name: string) => properties === null || properties.includes(name);
  const liveness = Object.keys(system.spec.liveness ?? {}).filter(wanted);
  const por = opts.por === false ? undefined : planPor(system);
  const why =
    liveness.length > 0 && opts.liveness !== false
      ? 'liveness needs the whole state graph in one thread'
      : system.spec.symmetry && opts.symmetry !== false
        ? 'symmetry reduction is not spread over workers'
        : por !== undefined && 'plan' in por
          ? 'partial-order reduction is not spread over workers'
          : undefined;
  if (why !== undefined) {
    const r = check(system, opts);
    return { ...r, notes: [...(r.notes ?? []), `parallel: not used (${why}): checked by the single-threaded explorer`] };
  }
  // The explorer's note when the model declares reads/writes that do not add up to a reduction.
  const notes = por !== undefined && 'off' in por && por.off !== 'no action declares reads and writes' ? [`partial-order reduction is off: ${por.off}`] : [];
  // The workers take the packed fast path on the same terms as the single-threaded explorer.
  const packed = packedOf(system);
  if (packed !== undefined && packedUnfit(system, opts) === undefined) notes.push(`packed states: ${packed.layout.words} word${packed.layout.words === 1 ? '' : 's'} each`);
  // Workers start from one bundled file where it can be had (bundle.ts), else through tsx. A bundle whose
  // workers do not come up (a model that will not load as bundled code) gets a second start through tsx, which
  // then reports what the worker met.
  const bundle = await workerBundle(source);
  const coordinator = (url: URL) => new Coordinator(system, source, url, workers, opts, properties, started, notes);
  let r: CheckResult;
  try {
    r = await coordinator(bundle?.url ?? BOOTSTRAP).run();
  } catch (e) {
    if (!(bundle !== undefined && e instanceof WorkerStartError)) throw e instanceof WorkerStartError ? e.cause : e;
    await forget(bundle);
    try {
      r = await coordinator(BOOTSTRAP).run();
    } catch (again) {
      throw again instanceof WorkerStartError ? again.cause : again;
    }
  }
  if (r.verdict !== 'error') return r;
  // A model may keep state of its own in the thread that runs it (a cache its steps fill as they go), so
  // that a state made in one worker fails in another: the single-threaded explorer has the last word.
  const single = check(system, opts);
  if (single.verdict === 'error' && single.message === r.message) return r;
  const first = (r.message ?? '').split('\n')[0];
  const note =
    `parallel: not used: the model failed when its states moved between worker threads (${first}) but not in one ` +
    'thread, so its steps depend on something kept in the thread that runs them: checked by the single-threaded explorer';
  return { ...single, notes: [...(single.notes ?? []), note] };
}

/** Workers started without a bundle: tsx loads their TypeScript. */
const BOOTSTRAP = new URL('./bootstrap.mjs', import.meta.url);

/** The workers did not come up: `cause` is what the first of them met. */
class WorkerStartError extends Error {
  constructor(override readonly cause: unknown) {
    super('parallel search: the workers did not start');
  }
}

type Reply<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>;

/** One worker thread and the replies it owes, in the order asked. */
class Peer {
  private readonly waiting: { resolve: (m: FromWorker) => void; reject: (e: Error) => void }[] = [];
  closing = false;
  failure: Error | undefined;

  constructor(
    readonly index: number,
    readonly worker: Worker,
    private readonly onFailure: (e: Error) => void,
  ) {
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'crash') {
        this.fail(new Error(`parallel search: worker ${index} failed: ${m.message}`));
        return;
      }
      this.waiting.shift()?.resolve(m);
    });
    worker.on('error', (e) => this.fail(new Error(`parallel search: worker ${index} failed: ${errText(e)}`)));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`parallel search: worker ${index} exited unexpectedly (exit code ${code})`));
    });
  }

  fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const w of this.waiting.splice(0)) w.reject(e);
    this.onFailure(e);
  }

  reject(e: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  ask<T extends FromWorker['type']>(type: T, msg: ToWorker, transfer: ArrayBuffer[] = []): Promise<Reply<T>> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<FromWorker>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage(msg, transfer);
    }).then((m) => {
      if (m.type === 'failed') throw new SourceError(`parallel search: worker ${this.index} could not load the system: ${m.message}`);
      if (m.type !== type) throw new Error(`parallel search: worker ${this.index} answered '${m.type}' where '${type}' was due`);
      return m as Reply<T>;
    });
  }
}

class Coordinator {
  private readonly peers: Peer[] = [];
  private failure: Error | undefined;
  private readonly progress = new SharedArrayBuffer(8 * MAX_WORKERS);
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * 4));
  private peakRss = process.memoryUsage.rss();
  private readonly bytes: number[];
  /** States found in each level, and transitions taken from each. */
  private readonly levelStates: number[] = [];
  private readonly levelTransitions: number[] = [];
  private depth = 0;
  /** Why the exact scheme ran after a sweep, for the result's notes. */
  private sweepNote: string | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly system: System<unknown>,
    private readonly source: SystemSource,
    private readonly entry: URL,
    private readonly workers: number,
    private readonly opts: CheckOptions,
    private readonly properties: readonly string[] | null,
    private readonly started: number,
    private readonly extraNotes: readonly string[],
  ) {
    this.bytes = new Array<number>(workers).fill(0);
  }

  async run(): Promise<CheckResult> {
    const strings = SharedStrings.create();
    const timeLimit = this.opts.timeLimit;
    try {
      for (let i = 0; i < this.workers; i++) {
        const worker = new Worker(this.entry, {
          // The young generation `npm run check` gives the main thread (--max-semi-space-size=64): effects allocate
          // a new state per transition, and a small nursery spends the search in scavenges.
          resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
        });
        this.peers.push(
          new Peer(i, worker, (e) => {
            // One worker down: every other reply is void too.
            this.failure ??= e;
            for (const p of this.peers) p.reject(e);
          }),
        );
      }
      await this.all('ready', (p) => ({
        type: 'init',
        source: this.source,
        index: p.index,
        workers: this.workers,
        strings: strings.buffer,
        progress: this.progress,
        control: this.control.buffer as SharedArrayBuffer,
        options: {
          deadlock: this.opts.deadlock !== false && (this.properties === null || this.properties.includes('deadlock')),
          properties: this.properties,
          deadline: timeLimit !== undefined ? Date.now() - (performance.now() - this.started) + timeLimit * 1000 : null,
          maxMemoryMB: this.opts.maxMemoryMB ?? null,
          packed: this.opts.packed !== false,
        },
      })).catch((e: unknown) => {
        throw new WorkerStartError(e);
      });
      if (this.opts.onProgress) {
        const onProgress = this.opts.onProgress;
        this.timer = setInterval(() => onProgress(this.stats(this.statesSoFar(), this.transitionsSoFar(), this.depth)), 1000);
        this.timer.unref?.();
      }
      // A sweep first, where no state or depth limit asks for the exact cut-off: when it meets nothing, its
      // counts are the result; else the exact scheme starts over.
      if (this.opts.maxStates === undefined && this.opts.maxDepth === undefined) {
        const swept = await this.sweep();
        if (typeof swept !== 'number') return swept;
        this.sweepNote = `parallel: the sweep stopped at depth ${swept} on a violation, a deadlock or a model fault, so the exact scheme searched again (it reports what one thread does)`;
        await this.all('sweep-ended', () => ({ type: 'sweep-end' }));
        this.levelStates.length = 0;
        this.levelTransitions.length = 0;
        this.depth = 0;
        this.bytes.fill(0);
        new Float64Array(this.progress).fill(0);
      }
      const first = await this.all('frontier', () => ({ type: 'inits' }));
      return await this.search(first);
    } finally {
      if (this.timer) clearInterval(this.timer);
      for (const p of this.peers) p.closing = true;
      await Promise.all(this.peers.map((p) => p.worker.terminate().catch(() => 0)));
    }
  }

  /** Asks every worker, and waits for all the replies (or the first failure). */
  private all<T extends FromWorker['type']>(
    type: T,
    msg: (p: Peer) => ToWorker,
    transfer: (p: Peer) => ArrayBuffer[] = () => [],
  ): Promise<Reply<T>[]> {
    if (this.failure) return Promise.reject(this.failure);
    return Promise.all(this.peers.map((p) => p.ask(type, msg(p), transfer(p))));
  }

  /**
   * The sweep (sweep.ts): the same levels without routing or order, over one shared table. Its result when it
   * meets nothing (holds, or a time or memory limit), or the depth at which it met something the exact scheme
   * must report (a violation, a deadlock, a fault, a goal never reached).
   */
  private async sweep(): Promise<CheckResult | number> {
    const c = this.control;
    // Inserts the shared count may not show yet when a worker asks the others to stop: each worker's unpublished
    // entries (fewer than SWEEP_PUBLISH plus one state's successors) and those of the state in its hands when it
    // sees the request (at most one per action instance).
    const headroom = this.workers * (SWEEP_PUBLISH + 2 * Math.max(1, this.system.instances.length)) + this.workers;
    // Room for every initial state too: the first pass inserts them before anyone can ask for growth.
    let capacity = Math.max(1 << 14, 4 * headroom, 2 * this.system.inits.length);
    let grown = 0;
    let grownWithin = 0;
    // Growth: a larger table, into which every worker copies its part of the old one (none is inserting).
    const grow = async (to: number) => {
      grown++;
      const next = SweepTable.allocate(to);
      const from = table;
      await this.all('rehashed', (p) => ({ type: 'sweep-rehash', from, to: next, part: p.index, parts: this.workers }));
      capacity = to;
      table = next;
      Atomics.store(c, SWEEP_STOP_AT, stopAt(capacity, headroom));
      this.bytes.fill(0);
      this.bytes[0] = 8 * capacity;
    };
    Atomics.store(c, SWEEP_STOP_AT, stopAt(capacity, headroom));
    Atomics.store(c, SWEEP_ENTRIES, 0);
    Atomics.store(c, SWEEP_STOP, SweepStop.None);
    let table = SweepTable.allocate(capacity);
    const sweptNote = () =>
      `parallel: one sweep over a shared fingerprint table (${capacity.toLocaleString('en-US')} slots; it grew ${grown} times, ${grownWithin} of them within a level)`;
    this.bytes.fill(0);
    this.bytes[0] = 8 * capacity;
    let replies = await this.all('swept', () => ({ type: 'sweep-start', table }));
    if (Atomics.load(c, SWEEP_STOP) === SweepStop.Met) return 0;
    let frontiers = replies.map((r) => r.frontier);
    let states = sum(frontiers.map((f) => f.count));
    let transitions = 0;
    const reached = new Set<string>();
    this.levelStates.push(states);
    for (let level = 0; ; level++) {
      Atomics.store(c, SWEEP_NEXT, 0);
      for (let resume = false; ; resume = true) {
        Atomics.store(c, SWEEP_STOP, SweepStop.None);
        replies = await this.all('swept', () => ({ type: 'sweep-level', frontiers, table, resume }));
        const why = Atomics.load(c, SWEEP_STOP) as SweepStop;
        if (why === SweepStop.Met) return level;
        if (why === SweepStop.Full) {
          grownWithin++;
          await grow(Math.ceil(capacity * 1.5));
          continue;
        }
        for (const r of replies) this.peakRss = Math.max(this.peakRss, r.rss);
        if (why === SweepStop.Time || why === SweepStop.Memory) {
          const stats = this.stats(states + sum(replies.map((r) => r.frontier.count)), transitions + sum(replies.map((r) => r.transitions)), level);
          const rss = Math.max(process.memoryUsage.rss(), this.peakRss);
          const reason =
            why === SweepStop.Time
              ? `time limit ${this.opts.timeLimit} s reached`
              : `memory limit ${this.opts.maxMemoryMB} MB reached (resident ${Math.round(rss / (1 << 20))} MB)`;
          return { verdict: 'incomplete', reason, notes: [...this.notes(), sweptNote()], stats };
        }
        break;
      }
      for (const r of replies) for (const g of r.reached) reached.add(g);
      const levelTransitions = sum(replies.map((r) => r.transitions));
      transitions += levelTransitions;
      this.levelTransitions.push(levelTransitions);
      frontiers = replies.map((r) => r.frontier);
      const next = sum(frontiers.map((f) => f.count));
      if (next === 0) {
        for (const name of Object.keys(this.system.spec.reachable ?? {})) {
          if ((this.properties === null || this.properties.includes(name)) && !reached.has(name)) return level;
        }
        return { verdict: 'holds', notes: [...this.notes(), sweptNote()], stats: this.stats(states, transitions, level) };
      }
      states += next;
      this.levelStates.push(next);
      this.depth = level + 1;
      // Between levels, keep the table at most three quarters full (probes stay short).
      if (Atomics.load(c, SWEEP_ENTRIES) > 0.75 * capacity) await grow(Math.ceil(capacity * 1.5));
    }
  }

  private async search(frontier: Reply<'frontier'>[]): Promise<CheckResult> {
    const maxStates = this.opts.maxStates ?? Infinity;
    const maxDepth = this.opts.maxDepth ?? Infinity;
    const reached = new Set<string>();
    /** The least event met while expanding the previous level (in that level's order), if any. */
    let pending: FoundEvent | null = null;
    let level = 0;
    this.levelStates.push(sum(frontier.map((f) => f.frontier.count)));
    this.noteBytes(frontier);
    for (;;) {
      const count = this.levelStates[level];
      const before = this.statesThrough(level - 1);
      const limitRank = level >= 1 && before + count >= maxStates ? Math.max(0, maxStates - before - 1) : -1;
      const expand = pending === null && limitRank < 0 && level < maxDepth;
      Atomics.store(this.control, CTRL_NEXT, 0);
      Atomics.store(this.control, CTRL_STOP_ALL, 0x7fffffff);
      Atomics.store(this.control, CTRL_STOP_EXPAND, 0x7fffffff);
      const frontiers = frontier.map((f) => f.frontier);
      const passed = await this.all('passed', () => ({
        type: 'pass',
        level,
        frontiers,
        expand,
        keyBound: pending !== null ? pending.key : Infinity,
        maxRank: limitRank >= 0 ? limitRank : Infinity,
        limitRank,
        reached: [...reached],
      }));
      for (const r of passed) {
        this.peakRss = Math.max(this.peakRss, r.rss);
        for (const g of r.reached) reached.add(g);
      }
      const stop = passed.find((r) => r.stop !== null)?.stop;
      if (stop) {
        const stats = this.stats(this.statesThrough(level), this.transitionsThrough(level - 1) + sum(passed.map((r) => r.transitions)), level);
        const rss = process.memoryUsage.rss();
        const reason =
          stop === 'time'
            ? `time limit ${this.opts.timeLimit} s reached`
            : `memory limit ${this.opts.maxMemoryMB} MB reached (resident ${Math.round(Math.max(rss, this.peakRss) / (1 << 20))} MB)`;
        return { verdict: 'incomplete', reason, notes: this.notes(), stats };
      }
      // The states of this level were found while expanding the previous one: their checks come first.
      const first = least([pending, ...passed.map((r) => r.inv)]);
      if (first) return this.finish(first, level - 1);
      if (level >= maxDepth) {
        const stats = this.stats(this.statesThrough(level), this.transitionsThrough(level - 1), level);
        return { verdict: 'incomplete', reason: `depth limit ${maxDepth} reached with ${count} states still to expand`, notes: this.notes(), stats };
      }
      pending = least(passed.map((r) => r.exp));
      this.levelTransitions.push(sum(passed.map((r) => r.transitions)));
      const parcels = passed.flatMap((r) => r.parcels);
      const incoming = (p: Peer) => parcels.filter((x) => x.owner === p.index).sort((a, b) => a.sender - b.sender);
      frontier = await this.all(
        'frontier',
        (p) => ({ type: 'dedupe', incoming: incoming(p) }),
        (p) => incoming(p).map((x: Parcel) => x.buffer),
      );
      this.noteBytes(frontier);
      const next = sum(frontier.map((f) => f.frontier.count));
      if (next === 0) {
        if (pending !== null) return this.finish(pending, level);
        break;
      }
      this.levelStates.push(next);
      level++;
      this.depth = level;
    }

    const states = this.statesThrough(level);
    const stats = this.stats(states, this.transitionsThrough(level), level);
    for (const name of Object.keys(this.system.spec.reachable ?? {})) {
      if (this.properties !== null && !this.properties.includes(name)) continue;
      if (!reached.has(name)) {
        return {
          verdict: 'violated',
          property: name,
          propertyKind: 'reachability',
          message: `no reachable state satisfies '${name}' (all ${states} states explored)`,
          notes: this.notes(),
          stats,
        };
      }
    }
    return { verdict: 'holds', notes: this.notes(), stats };
  }

  /** The result for the search's first event, met while expanding level `level` (-1: among the initial states). */
  private async finish(e: FoundEvent, level: number): Promise<CheckResult> {
    const counts = await this.all('counted', () => ({ type: 'count', key: e.key, level }));
    const states = this.statesThrough(level) + sum(counts.map((c) => c.states));
    const transitions = this.transitionsThrough(level - 1) + sum(counts.map((c) => c.transitions));
    const stats = this.stats(states, transitions, Math.max(level, 0));
    if (e.kind === 'limit') return { verdict: 'incomplete', reason: `state limit ${this.opts.maxStates} reached`, notes: this.notes(), stats };
    if (e.kind === 'error') return { verdict: 'error', message: e.message, notes: this.notes(), stats };
    const trace = await this.traceTo(e.worker, e.state, e.extra);
    const result: CheckResult = {
      verdict: 'violated',
      property: e.property,
      propertyKind: e.propertyKind,
      message: e.message,
      trace,
      notes: this.notes(),
      stats: { ...stats, depth: Math.max(stats.depth, trace.steps.length) },
    };
    const explain = this.system.spec.explainStuck;
    if (e.propertyKind === 'deadlock' && explain) {
      const last = trace.steps.length > 0 ? trace.steps[trace.steps.length - 1].state : trace.initial;
      let stuck: readonly string[];
      try {
        stuck = explain(last);
      } catch (err) {
        stuck = [`(explainStuck threw: ${errText(err)})`];
      }
      return { ...result, stuck };
    }
    return result;
  }

  /** Follows parent links from owner to owner back to an initial state, then replays the path. */
  private async traceTo(worker: number, state: number, extra: number) {
    const ids: number[] = [];
    let w = worker;
    let s = state;
    let init: number;
    for (;;) {
      const link = await this.peers[w].ask('link', { type: 'link', state: s });
      if (link.parentState === NO_PARENT) {
        init = link.via;
        break;
      }
      ids.push(link.via);
      w = link.parentWorker;
      s = link.parentState;
    }
    ids.reverse();
    if (extra >= 0) ids.push(extra);
    return replay(this.system.inits[init], ids.map((id) => this.system.instances[id]));
  }

  private statesThrough(level: number): number {
    let n = 0;
    for (let l = 0; l <= level && l < this.levelStates.length; l++) n += this.levelStates[l];
    return n;
  }

  private transitionsThrough(level: number): number {
    let n = 0;
    for (let l = 0; l <= level && l < this.levelTransitions.length; l++) n += this.levelTransitions[l];
    return n;
  }

  private statesSoFar(): number {
    return sum(this.levelStates);
  }

  private transitionsSoFar(): number {
    const t = new Float64Array(this.progress);
    let n = 0;
    for (let i = 0; i < this.workers; i++) n += t[i];
    return n;
  }

  private noteBytes(frontier: Reply<'frontier'>[]): void {
    frontier.forEach((f, i) => (this.bytes[i] = f.bytes));
    this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss());
  }

  private notes(): string[] {
    const notes = [...this.extraNotes, `parallel: ${this.workers} worker${this.workers === 1 ? '' : 's'}`];
    return this.sweepNote === undefined ? notes : [...notes, this.sweepNote];
  }

  private stats(states: number, transitions: number, depth: number): Stats {
    this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss());
    return statsAt(this.started, states, transitions, depth, sum(this.bytes), this.peakRss);
  }
}

function sum(xs: readonly number[]): number {
  let n = 0;
  for (const x of xs) n += x;
  return n;
}

/** Entries at which a sweep's table must grow: 88% full, less the inserts that may follow the request. */
function stopAt(capacity: number, headroom: number): number {
  return Math.max(1, Math.min(Math.floor(capacity * 0.88), capacity - headroom));
}

/** The event with the least key (keys of one level's order are unique across workers). */
function least(events: readonly (FoundEvent | null)[]): FoundEvent | null {
  let best: FoundEvent | null = null;
  for (const e of events) if (e !== null && (best === null || e.key < best.key)) best = e;
  return best;
}

export { SourceError };
