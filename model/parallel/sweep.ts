/**
 * One worker's share of a sweep: the first pass of a parallel check, which only establishes that the search
 * meets nothing (see sweep-table.ts for the shared visited set). Level by level, the workers take chunks of
 * every worker's frontier from one shared counter, check each state as the explorer does, expand it, and
 * insert each successor's fingerprint into the shared table; a new one goes to this worker's next frontier.
 * No successor is routed and no order is kept, so the sweep gives no counterexample: the first thing it meets
 * (a violation, a deadlock, a model fault) stops it, and the coordinator hands the search to the exact scheme
 * (protocol.ts), which finds the same first event as the single-threaded explorer.
 */
import { DataError } from '../data.ts';
import { checksOf, effectOf, guardHolds, terminalHolds } from '../faults.ts';
import { hashWords } from '../fingerprints.ts';
import type { ActionInstance, StepLabel, System } from '../system.ts';
import { SharedEncoder, SharedStrings } from './strings.ts';
import { SWEEP_CHUNK, SWEEP_ENTRIES, SWEEP_PUBLISH, SWEEP_NEXT, SWEEP_STOP, type SweepFrontier, type SweepReply, type SweepRehashed, SweepStop, type WorkerOptions } from './protocol.ts';
import { SweepTable } from './sweep-table.ts';

const RECENT_MASK = (1 << 15) - 1;

/** Thrown inside the sweep when it meets anything the exact scheme must report. */
export class Met extends Error {}
export const met = () => new Met();

/** A growable frontier of length-prefixed encodings, in shared memory (every worker reads it next level). */
class Out {
  words = new Int32Array(new SharedArrayBuffer(4 * (1 << 12)));
  used = 0;
  count = 0;

  push(src: Int32Array, len: number): void {
    if (this.used + len + 1 > this.words.length) {
      let cap = this.words.length * 2;
      while (cap < this.used + len + 1) cap *= 2;
      const w = new Int32Array(new SharedArrayBuffer(4 * cap));
      w.set(this.words.subarray(0, this.used));
      this.words = w;
    }
    const w = this.words;
    let p = this.used;
    w[p++] = len;
    for (let k = 0; k < len; k++) w[p + k] = src[k];
    this.used = p + len;
    this.count++;
  }

  info(): SweepFrontier {
    return { words: this.words.buffer as SharedArrayBuffer, count: this.count };
  }
}

/** A frontier read back: where each state's encoding starts. */
export interface Input {
  readonly words: Int32Array;
  readonly starts: Int32Array;
  readonly count: number;
}

export class Sweep<S> {
  private readonly enc: SharedEncoder;
  private readonly control: Int32Array;
  /** This worker's transitions so far, read by the coordinator for progress. */
  private readonly progress: Float64Array;
  private readonly instances: readonly ActionInstance<S>[];
  protected invariants: [string, (s: S) => boolean][];
  private readonly actionProps: [string, (before: S, step: StepLabel, after: S) => boolean][];
  protected goals: [string, (s: S) => boolean][];
  protected readonly reached = new Set<string>();
  private table!: SweepTable;
  protected out = new Out();
  private inputs: Input[] = [];
  protected transitions = 0;
  /** Transitions of the levels before this one. */
  private before = 0;

  constructor(
    protected readonly system: System<S>,
    strings: SharedArrayBuffer,
    control: SharedArrayBuffer,
    progress: SharedArrayBuffer,
    private readonly me: number,
    protected readonly opts: WorkerOptions,
  ) {
    this.enc = new SharedEncoder(new SharedStrings(strings));
    this.control = new Int32Array(control);
    this.progress = new Float64Array(progress);
    this.instances = system.instances;
    ({ invariants: this.invariants, actionProps: this.actionProps, goals: this.goals } = checksOf(system, opts.properties));
  }

  /** Level 0: the initial states with index `me` modulo `workers` that are new to the table. */
  start(table: SharedArrayBuffer, workers: number): SweepReply {
    const me = this.me;
    this.table = new SweepTable(table, this.control);
    this.out = new Out();
    const inits = this.system.inits;
    try {
      for (let i = me; i < inits.length; i += workers) {
        const { words, length } = this.encodeInit(i);
        if (this.insert(words, length)) this.out.push(words, length);
      }
    } catch (e) {
      // An initial state that does not encode is the exact scheme's to report.
      if (!(e instanceof Met)) throw e;
      this.stop(SweepStop.Met);
    }
    this.publish();
    return this.reply();
  }

  /**
   * Expands the next chunks of the frontiers until none is left or the coordinator is asked to stop (a full
   * table, a limit, or something met). `resume`: the same level again after the table grew.
   */
  level(frontiers: readonly SweepFrontier[], table: SharedArrayBuffer, resume: boolean): SweepReply {
    this.table = new SweepTable(table, this.control);
    if (!resume) {
      this.beginLevel();
      this.inputs = frontiers.map(index);
      this.cut = null;
      this.out = new Out();
      this.before += this.transitions;
      this.transitions = 0;
    }
    const total = this.inputs.reduce((n, f) => n + f.count, 0);
    const c = this.control;
    let chunks = 0;
    try {
      // The rest of the chunk that a request for growth cut short comes first.
      const cut = this.cut;
      this.cut = null;
      if (cut !== null) this.chunk(cut.next, cut.end);
      while (this.cut === null && Atomics.load(c, SWEEP_STOP) === SweepStop.None) {
        const first = Atomics.add(c, SWEEP_NEXT, SWEEP_CHUNK);
        if (first >= total) break;
        this.chunk(first, Math.min(total, first + SWEEP_CHUNK));
        this.progress[this.me] = this.before + this.transitions;
        if ((++chunks & 15) === 0) this.watchLimits();
      }
    } catch (e) {
      if (!(e instanceof Met)) throw e;
      this.stop(SweepStop.Met);
    }
    this.publish();
    return this.reply();
  }

  /** Before a level: the encoder takes the strings other workers added, and its fast path for this model. */
  protected beginLevel(): void {
    this.enc.sync();
    if (this.system.inits.length > 0) this.enc.specialise(this.system.inits[0] as never);
  }

  /** This worker's part of a growth: the entries of `from`'s part `part` of `parts` go into `to`. */
  rehash(from: SharedArrayBuffer, to: SharedArrayBuffer, part: number, parts: number): SweepRehashed {
    new SweepTable(to, this.control).copyPart(from, part, parts);
    return { type: 'rehashed' };
  }

  /** Initial state i's encoding; Met when it has none. */
  protected encodeInit(i: number): { readonly words: Int32Array; readonly length: number } {
    try {
      this.enc.encode(this.system.inits[i]);
    } catch (e) {
      if (e instanceof DataError) throw met();
      throw e;
    }
    return { words: this.enc.words, length: this.enc.length };
  }

  /**
   * Expands states first..end-1 of the level (counted across the frontiers). A stop asked for meanwhile ends it
   * after the state in hand, and the rest is kept in `cut` (a growth resumes it).
   */
  private chunk(first: number, end: number): void {
    const c = this.control;
    let f = 0;
    let i = first;
    while (i >= this.inputs[f].count) i -= this.inputs[f++].count;
    for (let g = first; g < end; g++, i++) {
      while (i >= this.inputs[f].count) i -= this.inputs[f++].count;
      this.expand(this.inputs[f], i);
      if (this.added >= SWEEP_PUBLISH) this.publish();
      if (Atomics.load(c, SWEEP_STOP) !== SweepStop.None) {
        if (g + 1 < end) this.cut = { next: g + 1, end };
        break;
      }
    }
    this.publish();
  }

  /** The rest of a chunk that a stop cut short (level positions next..end-1), or null. */
  private cut: { readonly next: number; readonly end: number } | null = null;

  /** Checks and expands state i of a frontier, as the explorer does; whatever it would report is `Met`. */
  protected expand(input: Input, i: number): void {
    const enc = this.enc;
    const start = input.starts[i];
    const len = input.words[start - 1];
    const s = enc.decode(input.words, start, false, true) as S;
    try {
      for (const [, inv] of this.invariants) if (!inv(s)) throw met();
      for (const [name, goal] of this.goals) if (!this.reached.has(name) && goal(s)) this.reached.add(name);
    } catch {
      throw met();
    }
    let enabled = 0;
    for (const inst of this.instances) {
      if (!guardHolds(inst, s, met, 0)) continue;
      enabled++;
      this.transitions++;
      const t = effectOf(inst, s, met, 0);
      try {
        enc.encode(t, true);
      } catch (e) {
        if (e instanceof DataError) throw met();
        throw e;
      }
      if (this.actionProps.length > 0) {
        try {
          for (const [, prop] of this.actionProps) if (!prop(s, inst.label, t)) throw met();
        } catch {
          throw met();
        }
      }
      if (this.insert(enc.words, enc.length)) this.out.push(enc.words, enc.length);
    }
    // An effect that mutated `s` computed wrong successors; the exact scheme names it.
    enc.encode(s);
    if (!enc.sameAs(input.words, start, len)) throw met();
    const terminal = this.system.spec.terminal;
    if (enabled === 0 && this.opts.deadlock && !(terminal && terminalHolds(terminal, s, met, 0))) throw met();
  }

  protected insert(words: Int32Array, len: number): boolean {
    const fp = this.fp;
    hashWords(words, len, fp);
    // The table's form of the fingerprint (each half odd), so that an empty cache slot matches none.
    const hi = fp[0] | 1;
    const lo = fp[1] | 1;
    // Most successors were seen, many of them just now (a sibling's, a parent's): a small cache of fingerprints
    // this worker knows to be in the table answers those without a probe into it.
    const r = this.recent;
    const slot = ((lo >>> 1) & RECENT_MASK) << 1;
    if (r[slot] === hi && r[slot + 1] === lo) return false;
    r[slot] = hi;
    r[slot + 1] = lo;
    if (!this.table.insert(hi, lo)) return false;
    this.added++;
    return true;
  }

  /** Fingerprints known to be in the table, direct-mapped (32 K entries, 256 kB, as the single thread's cache). */
  private readonly recent = new Int32Array(2 * (RECENT_MASK + 1));

  /** Publishes the entries added since the last time (one shared add for many) and asks for growth at the mark. */
  private publish(): void {
    if (this.added === 0) return;
    const entries = Atomics.add(this.control, SWEEP_ENTRIES, this.added) + this.added;
    this.added = 0;
    if (entries >= this.table.stopAt) this.stop(SweepStop.Full);
  }

  /** Entries this worker added since it last published them. */
  private added = 0;

  private readonly fp = new Uint32Array(2);

  private watchLimits(): void {
    if (this.opts.deadline !== null && Date.now() > this.opts.deadline) this.stop(SweepStop.Time);
    else if (this.opts.maxMemoryMB !== null && process.memoryUsage.rss() > this.opts.maxMemoryMB * (1 << 20)) this.stop(SweepStop.Memory);
  }

  /**
   * Asks every worker to stop at its next chunk. The weightier reason stands: something met (its chunk was cut
   * short, so the level must not simply resume) over a limit, a limit over a full table (which only asks for
   * growth and a resume, and is asked at a chunk's end).
   */
  private stop(why: SweepStop): void {
    const c = this.control;
    for (;;) {
      const cur = Atomics.load(c, SWEEP_STOP) as SweepStop;
      const next = weightier(cur, why);
      if (next === cur || Atomics.compareExchange(c, SWEEP_STOP, cur, next) === cur) break;
    }
  }

  private reply(): SweepReply {
    return {
      type: 'swept',
      frontier: this.out.info(),
      transitions: this.transitions,
      reached: [...this.reached],
      rss: process.memoryUsage.rss(),
    };
  }
}

/** The stop reason that stands when `why` is asked while `cur` holds. */
export function weightier(cur: SweepStop, why: SweepStop): SweepStop {
  const weight = (w: SweepStop) => (w === SweepStop.Met ? 3 : w === SweepStop.Time || w === SweepStop.Memory ? 2 : w === SweepStop.Full ? 1 : 0);
  return weight(why) > weight(cur) ? why : cur;
}

function index(f: SweepFrontier): Input {
  const words = new Int32Array(f.words);
  const starts = new Int32Array(f.count);
  let p = 0;
  for (let i = 0; i < f.count; i++) {
    starts[i] = p + 1;
    p += 1 + words[p];
  }
  return { words, starts, count: f.count };
}
