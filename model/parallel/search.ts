/**
 * One worker's share of a parallel search (see protocol.ts for the scheme): it owns the states whose
 * fingerprint maps to it and answers the coordinator's steps one at a time. The checks and their messages are
 * the single-threaded explorer's, each tagged with its key in single-threaded BFS order. States travel as the
 * generic encoding (model/parallel/strings.ts); packed-search.ts overrides the per-state hooks for layout models.
 */
import { type Data, DataError, show } from '../data.ts';
import { badSuccessorText, blameMutation, checksOf, effectOf, guardHolds, terminalHolds, threwText } from '../faults.ts';
import { ChunkedColumn, FingerprintSet, OwnerParentColumn, hashWords } from '../fingerprints.ts';
import type { ActionInstance, StepLabel, System } from '../system.ts';
import { formatLabel } from '../system.ts';
import {
  CHUNK,
  CTRL_NEXT,
  CTRL_STOP_ALL,
  CTRL_STOP_EXPAND,
  type FoundEvent,
  type FrontierInfo,
  type FromWorker,
  NO_PARENT,
  type Parcel,
  RECORD_HEADER,
  type ToWorker,
  type WorkerOptions,
} from './protocol.ts';
import { SharedEncoder, SharedStrings } from './strings.ts';

/** The model misbehaved (threw, mutated, returned non-data): an `error` verdict, at this key. */
export class Fault extends Error {
  constructor(
    message: string,
    readonly key: number,
  ) {
    super(message);
  }
}
const toFault = (message: string, key: number) => new Fault(message, key);

const sharedInt32 = (n: number) => new Int32Array(new SharedArrayBuffer(4 * n));
const sharedUint32 = (n: number) => new Uint32Array(new SharedArrayBuffer(4 * n));
const sharedFloat64 = (n: number) => new Float64Array(new SharedArrayBuffer(8 * n));

/** One BFS level of this worker's states, in shared memory (every worker expands from it): encodings and keys. */
class Frontier {
  words = sharedInt32(1 << 12);
  used = 0;
  starts = sharedUint32(1 << 10);
  /** Discovery key of each state: parent rank * instances + instance id (initial state i: i * instances). */
  keys = sharedFloat64(1 << 10);
  count = 0;
  /** Local index of the first state. */
  base = 0;

  push(src: Int32Array, from: number, len: number, key: number): void {
    if (this.used + len > this.words.length) {
      let cap = this.words.length * 2;
      while (cap < this.used + len) cap *= 2;
      const w = sharedInt32(cap);
      w.set(this.words.subarray(0, this.used));
      this.words = w;
    }
    if (this.count === this.starts.length) {
      const s = sharedUint32(this.starts.length * 2);
      s.set(this.starts);
      this.starts = s;
      const k = sharedFloat64(this.keys.length * 2);
      k.set(this.keys);
      this.keys = k;
    }
    const w = this.words;
    let p = this.used;
    for (let i = from; i < from + len; i++) w[p++] = src[i];
    this.starts[this.count] = this.used;
    this.keys[this.count++] = key;
    this.used = p;
  }

  reset(base: number): void {
    this.used = 0;
    this.count = 0;
    this.base = base;
  }

  info(): FrontierInfo {
    return {
      words: this.words.buffer as SharedArrayBuffer,
      starts: this.starts.buffer as SharedArrayBuffer,
      keys: this.keys.buffer as SharedArrayBuffer,
      count: this.count,
      used: this.used,
      base: this.base,
    };
  }
}

/** A frontier as another worker reads it. */
export interface View {
  readonly words: Int32Array;
  readonly starts: Uint32Array;
  readonly keys: Float64Array;
  readonly count: number;
  readonly used: number;
  readonly base: number;
}

function view(f: FrontierInfo): View {
  return {
    words: new Int32Array(f.words),
    starts: new Uint32Array(f.starts),
    keys: new Float64Array(f.keys),
    count: f.count,
    used: f.used,
    base: f.base,
  };
}

/** What a pass leaves for the count query: the level's frontiers and order, and the states this worker expanded. */
interface PassRecord {
  readonly level: number;
  readonly views: readonly View[];
  readonly owner: Uint8Array;
  readonly local: Uint32Array;
  /** Ranks this worker expanded, increasing, and its transitions up to and including each. */
  readonly ranks: Float64Array;
  readonly cum: Float64Array;
  readonly expanded: number;
}

/** Successors bound for one owner, as RECORD_HEADER + encoding records. */
class Outbox {
  used = 0;
  constructor(public buf: Int32Array) {}

  grow(need: number): void {
    let cap = this.buf.length * 2;
    while (cap < this.used + need) cap *= 2;
    const b = new Int32Array(cap);
    b.set(this.buf.subarray(0, this.used));
    this.buf = b;
  }
}

const EMPTY = new Int32Array(0);
const RECENT_MASK = (1 << 15) - 1;

export class WorkerSearch<S> {
  protected readonly enc: SharedEncoder;
  protected readonly seen = new FingerprintSet(1 << 16);
  /** Each state's parent: its owner and its index there. */
  protected readonly parents: OwnerParentColumn;
  /** The action instance (initial state index for a root) that reached each state: a byte when they fit. */
  protected readonly via: ChunkedColumn;
  /** This worker's frontiers: the current level, the one before (the count query reads it), and a spare. */
  protected prev = new Frontier();
  protected cur = new Frontier();
  protected spare = new Frontier();
  protected readonly outs: Outbox[];
  protected readonly pool: Int32Array[] = [];
  protected readonly fp = new Uint32Array(2);
  /** Fingerprints recently routed, direct-mapped by their low bits ((0, 0) is empty: see hashWords). */
  protected readonly recent = new Uint32Array(2 * (RECENT_MASK + 1));
  protected readonly progress: Float64Array;
  protected readonly control: Int32Array;
  protected readonly instances: readonly ActionInstance<S>[];
  protected readonly ni: number;
  /** Event key slots per state: 4 per action instance, then mutation and deadlock. */
  protected readonly slots: number;
  protected invariants: [string, (s: S) => boolean][];
  protected readonly actionProps: [string, (before: S, step: StepLabel, after: S) => boolean][];
  protected goals: [string, (s: S) => boolean][];
  protected readonly reached = new Set<string>();
  protected totalTransitions = 0;
  protected levelTransitions = 0;
  /** Goals first reached in the current pass, reported with it. */
  protected newlyReached: string[] = [];
  /** The last two passes, for the count query. */
  protected records: PassRecord[] = [];
  protected doneRanks = new Float64Array(1 << 10);
  protected doneCum = new Float64Array(1 << 10);
  /** Buffers the last reply hands over (transferred, not copied). */
  transfer: ArrayBuffer[] = [];

  constructor(
    protected readonly system: System<S>,
    protected readonly me: number,
    protected readonly workers: number,
    strings: SharedArrayBuffer,
    progress: SharedArrayBuffer,
    control: SharedArrayBuffer,
    protected readonly opts: WorkerOptions,
  ) {
    this.enc = new SharedEncoder(new SharedStrings(strings));
    this.progress = new Float64Array(progress);
    this.control = new Int32Array(control);
    this.instances = system.instances;
    this.ni = system.instances.length;
    this.slots = 4 * this.ni + 4;
    ({ invariants: this.invariants, actionProps: this.actionProps, goals: this.goals } = checksOf(system, opts.properties));
    this.outs = Array.from({ length: workers }, () => new Outbox(new Int32Array(1 << 14)));
    this.via = ChunkedColumn.forValuesBelow(Math.max(this.ni, system.inits.length));
    this.parents = new OwnerParentColumn(workers);
  }

  get bytes(): number {
    return this.seen.bytes + this.parents.bytes + this.via.bytes;
  }

  /** Level 0: the initial states this worker owns, in index order (a duplicate keeps its first index). */
  inits(): FromWorker {
    const f = this.cur;
    f.reset(0);
    const inits = this.system.inits;
    for (let i = 0; i < inits.length; i++) {
      const { words, length } = this.encodeInit(i);
      hashWords(words, length, this.fp);
      if (this.ownerOf(this.fp[0]) !== this.me || !this.seen.add(this.fp[0], this.fp[1])) continue;
      f.push(words, 0, length, i * this.ni);
      this.parents.push(0, NO_PARENT);
      this.via.push(i);
    }
    return { type: 'frontier', frontier: f.info(), bytes: this.bytes };
  }

  /** Initial state i as the words a frontier holds. */
  protected encodeInit(i: number): { readonly words: Int32Array; readonly length: number } {
    this.enc.encode(this.system.inits[i]);
    return { words: this.enc.words, length: this.enc.length };
  }

  /** Before a pass: take up the strings other workers interned meanwhile. */
  protected beginPass(): void {
    this.enc.sync();
    if (this.system.inits.length > 0) this.enc.specialise(this.system.inits[0] as Data);
  }

  /** The state whose words start at `start` (as its own fresh object when it will be expanded). */
  protected load(words: Int32Array, start: number, grow: boolean): S {
    return this.enc.decode(words, start, false, grow) as S;
  }

  /** The state as messages show it. */
  protected shown(s: S): unknown {
    return s;
  }

  /** Whether action instance a is enabled in s (for the count query, after the pass has checked it). */
  protected enabled(a: number, s: S): boolean {
    return this.guard(this.instances[a], s, 0);
  }

  protected ownerOf(hi: number): number {
    return this.workers === 1 ? 0 : hi % this.workers;
  }

  /** The key of the event "the state discovered with key k is checked" (slot 4a + 2 of its parent). */
  protected stateKey(k: number): number {
    const r = Math.floor(k / this.ni);
    return r * this.slots + (k - r * this.ni) * 4 + 2;
  }

  /** Lowers a shared control word to `v` (never raises it). */
  protected lower(word: number, v: number): void {
    let cur = Atomics.load(this.control, word);
    while (v < cur) {
      const was = Atomics.compareExchange(this.control, word, cur, v);
      if (was === cur) return;
      cur = was;
    }
  }

  /** The level in BFS order: every owner's frontier is sorted by key, so merging them ranks every state. */
  protected order(views: readonly View[]): { owner: Uint8Array; local: Uint32Array } {
    let n = 0;
    for (const v of views) n += v.count;
    const owner = new Uint8Array(n);
    const local = new Uint32Array(n);
    const m = views.length;
    const pos = new Uint32Array(m);
    for (let g = 0; g < n; g++) {
      let best = -1;
      let bestKey = Infinity;
      for (let w = 0; w < m; w++) {
        const p = pos[w];
        if (p < views[w].count && views[w].keys[p] < bestKey) {
          bestKey = views[w].keys[p];
          best = w;
        }
      }
      owner[g] = best;
      local[g] = pos[best]++;
    }
    return { owner, local };
  }

  pass(msg: Extract<ToWorker, { type: 'pass' }>): FromWorker {
    const level = msg.level;
    this.beginPass();
    const views = msg.frontiers.map(view);
    const { owner, local } = this.order(views);
    const n = owner.length;
    for (const g of msg.reached) this.reached.add(g);
    this.newlyReached = [];
    for (let o = 0; o < this.workers; o++) {
      const out = this.outs[o];
      if (o !== this.me && out.buf === EMPTY) out.buf = this.pool.pop() ?? new Int32Array(1 << 14);
      out.used = 0;
    }
    this.levelTransitions = 0;
    let expanded = 0;
    let processed = 0;
    const ctrl = this.control;
    let expand = msg.expand;
    let inv: FoundEvent | null = null;
    let exp: FoundEvent | null = null;
    let stop: string | null = null;
    const bounded = msg.keyBound !== Infinity;
    chunks: for (;;) {
      const lo = Atomics.add(ctrl, CTRL_NEXT, 1) * CHUNK;
      if (lo >= n) break;
      const hi = Math.min(n, lo + CHUNK);
      for (let g = lo; g < hi; g++) {
        // Another worker met an event at a lower rank: nothing from here on can come first.
        if (g > Atomics.load(ctrl, CTRL_STOP_ALL)) break chunks;
        const v = views[owner[g]];
        const i = local[g];
        const key = v.keys[i];
        const check = g <= msg.maxRank && (!bounded || this.stateKey(key) < msg.keyBound);
        const grow = expand && g <= Atomics.load(ctrl, CTRL_STOP_EXPAND);
        if (!check && !grow) break chunks;
        const s = this.load(v.words, v.starts[i], grow);
        if (check) {
          try {
            inv = this.checkState(s, v, owner[g], i, level);
          } catch (e) {
            if (!(e instanceof Fault)) throw e;
            inv = { key: e.key, kind: 'error', message: e.message, worker: owner[g], state: v.base + i, extra: -1 };
          }
          if (inv === null && g === msg.limitRank) {
            inv = { key: this.stateKey(key) + 1, kind: 'limit', worker: owner[g], state: v.base + i, extra: -1 };
          }
          if (inv !== null) {
            // The states of this level come before anything found expanding it: expanding is moot now.
            this.lower(CTRL_STOP_ALL, g);
            this.lower(CTRL_STOP_EXPAND, -1);
            break chunks;
          }
        }
        if (grow) {
          try {
            exp = this.expand(s, v, owner[g], i, g, level);
          } catch (e) {
            if (!(e instanceof Fault)) throw e;
            exp = { key: e.key, kind: 'error', message: e.message, worker: owner[g], state: v.base + i, extra: -1 };
          }
          if (expanded === this.doneRanks.length) {
            const r = new Float64Array(2 * expanded);
            r.set(this.doneRanks);
            this.doneRanks = r;
            const c = new Float64Array(2 * expanded);
            c.set(this.doneCum);
            this.doneCum = c;
          }
          this.doneRanks[expanded] = g;
          this.doneCum[expanded++] = this.levelTransitions;
          if (exp !== null) {
            this.lower(CTRL_STOP_EXPAND, g);
            expand = false;
          }
        }
        if ((processed++ & 255) === 0) {
          this.progress[this.me] = this.totalTransitions;
          if (this.opts.deadline !== null && Date.now() > this.opts.deadline) stop = 'time';
          else if (
            this.opts.maxMemoryMB !== null &&
            (processed & 4095) === 1 &&
            process.memoryUsage.rss() > this.opts.maxMemoryMB * (1 << 20)
          ) {
            stop = 'memory';
          }
          if (stop !== null) {
            this.lower(CTRL_STOP_ALL, -1);
            break chunks;
          }
        }
      }
    }
    this.progress[this.me] = this.totalTransitions;
    this.records = [
      ...this.records.slice(-1),
      { level, views, owner, local, ranks: this.doneRanks.slice(0, expanded), cum: this.doneCum.slice(0, expanded), expanded },
    ];
    const parcels: Parcel[] = [];
    const transfer: ArrayBuffer[] = [];
    for (let o = 0; o < this.workers; o++) {
      if (o === this.me) continue;
      const out = this.outs[o];
      parcels.push({ sender: this.me, owner: o, buffer: out.buf.buffer as ArrayBuffer, used: out.used });
      transfer.push(out.buf.buffer as ArrayBuffer);
      out.buf = EMPTY;
      out.used = 0;
    }
    this.transfer = transfer;
    return {
      type: 'passed',
      inv,
      exp,
      stop,
      parcels,
      reached: this.newlyReached,
      transitions: this.levelTransitions,
      rss: process.memoryUsage.rss(),
    };
  }

  /** Invariants and reachability goals of a frontier state, as the explorer checks a state it discovers. */
  protected checkState(s: S, v: View, owner: number, i: number, level: number): FoundEvent | null {
    for (const [name, inv] of this.invariants) {
      let ok: boolean;
      try {
        ok = inv(s);
      } catch (e) {
        throw new Fault(threwText(`invariant '${name}'`, e, this.shown(s)), this.stateKey(v.keys[i]));
      }
      if (!ok) {
        return {
          key: this.stateKey(v.keys[i]),
          kind: 'violated',
          property: name,
          propertyKind: 'invariant',
          message: `invariant '${name}' is violated after ${level} steps`,
          worker: owner,
          state: v.base + i,
          extra: -1,
        };
      }
    }
    for (const [name, goal] of this.goals) {
      if (this.reached.has(name)) continue;
      let hit: boolean;
      try {
        hit = goal(s);
      } catch (e) {
        throw new Fault(threwText(`reachability property '${name}'`, e, this.shown(s)), this.stateKey(v.keys[i]));
      }
      if (hit) {
        this.reached.add(name);
        this.newlyReached.push(name);
      }
    }
    return null;
  }

  /** Expands state i of `owner`'s frontier (global rank `rank`): routes its successors, checks steps, mutation, deadlock. */
  protected expand(s: S, v: View, parentOwner: number, i: number, rank: number, level: number): FoundEvent | null {
    const local = v.base + i;
    const base = rank * this.slots;
    const instances = this.instances;
    const enc = this.enc;
    let enabled = 0;
    for (let a = 0; a < instances.length; a++) {
      const inst = instances[a];
      if (!this.guard(inst, s, base + 4 * a)) continue;
      enabled++;
      const t = this.apply(inst, s, base + 4 * a);
      this.levelTransitions++;
      this.totalTransitions++;
      for (const [name, prop] of this.actionProps) {
        let ok: boolean;
        try {
          ok = prop(s, inst.label, t);
        } catch (e) {
          throw new Fault(threwText(`action property '${name}' on step ${formatLabel(inst.label)}`, e, s, 'from state'), base + 4 * a + 1);
        }
        if (!ok) {
          return {
            key: base + 4 * a + 1,
            kind: 'violated',
            property: name,
            propertyKind: 'action-property',
            message: `step ${formatLabel(inst.label)} breaks '${name}'`,
            worker: parentOwner,
            state: local,
            extra: a,
          };
        }
      }
      this.route(enc.words, enc.length, parentOwner, local, rank, a);
    }
    // An effect that mutated `s` would have computed wrong successors: re-encode and compare to catch it.
    enc.encode(s);
    const start = v.starts[i];
    const end = i + 1 < v.count ? v.starts[i + 1] : v.used;
    if (!enc.sameAs(v.words, start, end - start)) {
      const key = base + 4 * this.ni;
      blameMutation(this.instances, () => enc.decode(v.words, start, true) as S, (inst, f) => this.apply(inst, f, key), toFault, key);
    }
    const terminal = this.system.spec.terminal;
    if (enabled === 0 && this.opts.deadlock && !(terminal && terminalHolds(terminal, s, toFault, base + 4 * this.ni + 1))) {
      return this.deadlock(base, level, parentOwner, local);
    }
    return null;
  }

  protected deadlock(base: number, level: number, parentOwner: number, local: number): FoundEvent {
    return {
      key: base + 4 * this.ni + 1,
      kind: 'violated',
      property: 'deadlock',
      propertyKind: 'deadlock',
      message: `deadlock: no action is enabled after ${level} steps, and the state is not terminal`,
      worker: parentOwner,
      state: local,
      extra: -1,
    };
  }

  /**
   * Sends a successor (its encoding is `words[0, len)`, reached from state `local` of `parentOwner`, of rank
   * `rank`, by instance a) to its owner, unless this worker routed or met it recently.
   */
  protected route(words: Int32Array, len: number, parentOwner: number, local: number, rank: number, a: number): void {
    const fp = this.fp;
    hashWords(words, len, fp);
    const hi = fp[0];
    const lo = fp[1];
    // Recently routed or seen (any level: a fingerprint once routed is visited from the next level on): the
    // copy met first had the smaller key. Breadth-first siblings share most successors, so most stop here.
    const r = this.recent;
    const slot = (lo & RECENT_MASK) << 1;
    if (r[slot] === hi && r[slot + 1] === lo) return;
    r[slot] = hi;
    r[slot + 1] = lo;
    // Everything else goes to its owner, which merges the streams in key order (looking successors up in the
    // owners' tables here, or keeping this level's sends apart, cost more probes than the copies they saved).
    const owner = this.ownerOf(hi);
    const out = this.outs[owner];
    if (out.used + RECORD_HEADER + len > out.buf.length) out.grow(RECORD_HEADER + len);
    const b = out.buf;
    let p = out.used;
    b[p] = len;
    b[p + 1] = hi;
    b[p + 2] = lo;
    b[p + 3] = parentOwner;
    b[p + 4] = local;
    b[p + 5] = rank;
    b[p + 6] = a;
    p += RECORD_HEADER;
    for (let k = 0; k < len; k++) b[p + k] = words[k];
    out.used = p + len;
  }

  protected guard(inst: ActionInstance<S>, s: S, key: number): boolean {
    return guardHolds(inst, s, toFault, key);
  }

  /** Runs the effect and encodes its result into `enc`, turning each way it can misbehave into a Fault. */
  protected apply(inst: ActionInstance<S>, s: S, key: number): S {
    const t = effectOf(inst, s, toFault, key);
    try {
      this.enc.encode(t, true);
    } catch (e) {
      if (e instanceof DataError) throw new Fault(badSuccessorText(inst, e, t, s), key);
      throw e;
    }
    return t;
  }

  /**
   * Merges the successors routed here (this worker's own and each other worker's, each stream sorted by key)
   * in key order: the first copy of a new state is the one single-threaded BFS finds first. The new states,
   * in key order, are the next frontier.
   */
  dedupe(incoming: readonly Parcel[]): FromWorker {
    const next = this.spare;
    next.reset(this.parents.length);
    const bufs: Int32Array[] = [this.outs[this.me].buf];
    const ends: number[] = [this.outs[this.me].used];
    for (const p of incoming) {
      bufs.push(new Int32Array(p.buffer));
      ends.push(p.used);
    }
    const m = bufs.length;
    const ni = this.ni;
    const pos = new Float64Array(m);
    const heads = new Float64Array(m);
    for (let j = 0; j < m; j++) heads[j] = ends[j] > 0 ? bufs[j][5] * ni + bufs[j][6] : Infinity;
    for (;;) {
      let j = 0;
      for (let x = 1; x < m; x++) if (heads[x] < heads[j]) j = x;
      const key = heads[j];
      if (key === Infinity) break;
      const b = bufs[j];
      const p = pos[j];
      const len = b[p];
      if (this.seen.add(b[p + 1] >>> 0, b[p + 2] >>> 0)) {
        next.push(b, p + RECORD_HEADER, len, key);
        this.parents.push(b[p + 3], b[p + 4]);
        this.via.push(b[p + 6]);
      }
      const q = p + RECORD_HEADER + len;
      pos[j] = q;
      heads[j] = q < ends[j] ? b[q + 5] * ni + b[q + 6] : Infinity;
    }
    for (let j = 1; j < m; j++) this.pool.push(bufs[j]);
    this.outs[this.me].used = 0;
    this.spare = this.prev;
    this.prev = this.cur;
    this.cur = next;
    return { type: 'frontier', frontier: next.info(), bytes: this.bytes };
  }

  /**
   * For the event with this key, met while expanding level `level`: how many of that level's transitions this
   * worker took before it, and how many states of the next level (the current frontier) it owns that were found
   * by then. Their sums are the single-threaded explorer's counts when it met the event.
   */
  count(key: number, level: number): FromWorker {
    const r = Math.floor(key / this.slots);
    const slot = key - r * this.slots;
    let transitions = 0;
    const rec = this.records.find((x) => x.level === level);
    if (rec !== undefined && rec.expanded > 0) {
      // The last state this worker expanded below rank r, and whether it expanded r itself.
      let lo = 0;
      let hi = rec.expanded;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (rec.ranks[mid] < r) lo = mid + 1;
        else hi = mid;
      }
      if (lo > 0) transitions = rec.cum[lo - 1];
      if (lo < rec.expanded && rec.ranks[lo] === r) {
        const v = rec.views[rec.owner[r]];
        const s = this.load(v.words, v.starts[rec.local[r]], false);
        for (let a = 0; a < this.ni && 4 * a + 1 <= slot; a++) {
          try {
            if (this.enabled(a, s)) transitions++;
          } catch {
            break;
          }
        }
      }
    }
    const cur = this.cur;
    let lo = 0;
    let hi = cur.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.stateKey(cur.keys[mid]) <= key) lo = mid + 1;
      else hi = mid;
    }
    return { type: 'counted', transitions, states: lo };
  }

  link(state: number): FromWorker {
    return { type: 'link', parentWorker: this.parents.owner(state), parentState: this.parents.local(state), via: this.via.get(state) };
  }
}

