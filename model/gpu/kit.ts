/**
 * The compiler: turns per-rank CPU-thread programs into one `System` whose state is the kit's state plus the
 * protocol's (`GpuState<U>`), with one action per statement kind (actor `rank r thread`), one for device ops
 * (`exec`, actor `rank r stream S`), and joint actions for NCCL/gloo point-to-point transfers and collectives.
 *
 * Semantics (see ../../../shared/protocols.md section 0 and API.md):
 * - A stream runs its queued ops in order, one `exec` step per op; markers (event records, synchronize points,
 *   allocator release points) complete as soon as they reach the head of their stream, and a `wait` marker
 *   leaves the head once the work it waits for has left every queue of the rank.
 * - Each block keeps the queued ops that may still touch it, in issue order. An op that runs (or a CPU access)
 *   while an op issued before it on another stream still touches the same block, one of them writing, is a
 *   race: it overtook work it was meant to follow. The fault is named from the overtaker's side:
 *   `no-read-while-writing`, `no-write-while-reading`, `no-write-while-writing`.
 * - Block contents are `buffer=value` tags: reading a buffer whose block holds no value written through that
 *   buffer is `no-uninitialised-read`; a read declared with `expect` that sees another value is `no-stale-read`.
 */
import { match } from 'ts-pattern';
import { type Data, equalData } from '../data.ts';
import type { Symmetry } from '../symmetry.ts';
import { type Action, type Condition, ModelError, type StepLabel, type System, type SystemSpec, actionsOf, defineSystem } from '../system.ts';
import { ENABLERS, observing } from '../por.ts';
import { type Body, type Footprint, type Stmt, type ValueSpec, flat } from './stmts.ts';
import type { Block, Ctx, GpuState, GpuSymmetry, GpuSystemSpec, KitProperty, Pc, ThreadSpec, Update, Vars } from './types.ts';
import { KIT_PROPERTIES } from './types.ts';

type S = GpuState<any>;

// ---- queue items ----------------------------------------------------------------------------------------

interface OpItem {
  readonly kind: 'op';
  readonly stream: string;
  readonly name: string;
  readonly reads: readonly { readonly buf: string; readonly expect?: string }[];
  readonly writes: readonly string[];
  readonly value: ValueSpec;
}
interface MarkerItem {
  readonly kind: 'rec' | 'sync' | 'rel';
  readonly what: string;
  readonly block?: number;
}
interface WaitItem {
  readonly kind: 'wait';
  readonly target: string;
  readonly what: string;
}
interface P2PItem {
  readonly kind: 'send' | 'recv';
  readonly peer: number;
  readonly buf: string;
  readonly backend: 'nccl' | 'gloo';
}
interface BatchItem {
  readonly kind: 'batch';
  readonly peer: number;
  readonly sends: readonly string[];
  readonly recvs: readonly string[];
}
/** A handle on several queued items (a batch): pending while any part is. */
interface MultiItem {
  readonly kind: 'multi';
  readonly parts: readonly string[];
  readonly what: string;
}
interface CollItem {
  readonly kind: 'coll';
  readonly coll: string;
  readonly group: string;
  readonly seq: number;
  readonly buf?: string;
}
type Item = OpItem | MarkerItem | WaitItem | P2PItem | CollItem | BatchItem | MultiItem;

/**
 * What a queue item's key was made from, besides the statement that made it: plain values, another key (a
 * wait names what it waits for), or a queue name (which may name a peer rank). Keys are `name#id` with `id`
 * numbered per rank (statement k of a rank has the same id on every rank), so that renaming ranks can map a
 * key of one rank to the key the same statement makes on another.
 */
type Arg = string | number | { readonly key: string } | { readonly queue: string };
interface Origin {
  /** `id/part`: the statement and which of its items. */
  readonly site: string;
  readonly args: readonly Arg[];
}
const keyArg = (a: Arg | undefined): string => (a as { key: string }).key;

/** The queue a P2P op of `backend` goes on, on the issuing rank. */
function p2pQueue(backend: 'nccl' | 'gloo', dir: 'send' | 'recv', peer: number): string {
  return backend === 'nccl' ? `p2p:${peer}` : `gloo-${dir}:${peer}`;
}

/** The queue holding the matching op on the peer (`me` is the issuing rank). */
function twinQueue(q: string, me: number): string | undefined {
  const m = /^(p2p|gloo-send|gloo-recv):(\d+)$/.exec(q);
  if (!m) return undefined;
  return m[1] === 'p2p' ? `p2p:${me}` : m[1] === 'gloo-send' ? `gloo-recv:${me}` : `gloo-send:${me}`;
}

/** A block's pending entry: `mode buf key`. */
interface Entry {
  readonly mode: 'r' | 'w' | 'rw';
  readonly buf: string;
  readonly key: string;
}

// ---- instructions ---------------------------------------------------------------------------------------

interface Instr {
  /** The action that runs it ('' for none: a raise, or one rank's part of a gloo collective). */
  readonly action: string;
  readonly stmt: Stmt;
  /** Set when this instruction may raise instead of running (mayRaise before it, or a raise statement). */
  raisable?: string;
  next: Pc;
  nextElse: Pc;
  handler: Pc;
  enabled(s: S): boolean;
  exec(s: S): S;
  describe(s: S): string;
  /** Why it is not enabled, for a deadlock's explanation. */
  blocked(s: S): string;
  /** Partial-order reduction: the fields `enabled` reads ([] when always enabled). */
  guardReads: readonly string[];
  /** Partial-order reduction: the fields `enabled`, `exec` and the settling after it read, and those they may change (the pc aside). */
  reads: readonly string[];
  writes: readonly string[];
}

/** The top-level fields of a kit state: what a closure that declares no footprint may read. */
const WHOLE_STATE = ['threads', 'streams', 'events', 'buffers', 'blocks', 'vars', 'handles', 'colls', 'faults', 'user'] as const;

/** Field paths of the kit's state, in the syntax of model/por.ts. */
const q = (x: string) => JSON.stringify(x);
const P = {
  th: (r: number, t: string) => `threads[${r}][${q(t)}]`,
  threads: (r: number) => `threads[${r}]`,
  st: (r: number, queue?: string) => (queue === undefined ? `streams[${r}]` : `streams[${r}][${q(queue)}]`),
  ev: (r: number, e: string) => `events[${r}][${q(e)}]`,
  bufs: (r: number) => `buffers[${r}]`,
  buf: (r: number, b: string) => `buffers[${r}][${q(b)}]`,
  blocks: (r: number) => `blocks[${r}]`,
  v: (r: number, name: string) => `vars[${r}][${q(name)}]`,
  vars: (r: number) => `vars[${r}]`,
  h: (r: number, name: string) => `handles[${r}][${q(name)}]`,
  coll: (r: number, g: string) => `colls[${r}][${q(g)}]`,
  /** The first kit fault of rank r (each rank keeps its own, so two ranks' checks do not depend on each other). */
  fault: (r: number) => `faults[${r}]`,
};

const KIT_ACTIONS = new Set([
  'exec', 'transfer', 'collective', 'gloo_collective', 'raise', 'continue', 'launch', 'record', 'waitEvent',
  'synchronize', 'synchronized', 'alloc', 'free', 'recordStream', 'isend', 'irecv', 'wait', 'cpuRead', 'cpuWrite',
  'set', 'until', 'if', 'start', 'join', 'waitStream', 'all_reduce', 'all_gather', 'reduce_scatter', 'broadcast', 'barrier',
  'all_to_all', 'joined', 'batch_isend_irecv',
]);

/** A compiled GPU system: a `System` plus what the kit knows about its layout. */
export type GpuSystem<U> = System<GpuState<U>> & {
  /**
   * How many ranks a rank renaming permutes. The reduction itself is on only when the protocol declares
   * `symmetry` (then `spec.symmetry` renames every rank-indexed and rank-valued field of the kit's state).
   */
  readonly symmetry: { readonly ranks: number };
  readonly layout: {
    readonly ranks: number;
    readonly threads: readonly string[];
    readonly streams: readonly string[];
  };
};

export function gpuSystem<U = null>(spec: GpuSystemSpec<U>): GpuSystem<U> {
  return new Compiler<U>(spec).build();
}

class Compiler<U> {
  private readonly N: number;
  /** Per rank: queue item key -> item (keys are numbered per rank, so each rank has its own items). */
  private readonly items: Map<string, Item>[] = [];
  /** Per rank: key -> what made it; per rank: site (`id/part`) -> the function that makes its key. */
  private readonly origins: Map<string, Origin>[] = [];
  private readonly makers: Map<string, (args?: readonly Arg[]) => string>[] = [];
  /** The first origin of each key on any rank, to make a rank-free key on a rank a renamed state moved it to. */
  private readonly anyOrigin = new Map<string, Origin>();
  private readonly renamed = new Map<string, string>();
  /** The declared symmetry (null: none). */
  private readonly sym: GpuSymmetry<U> | null;
  /** Some queue names a peer rank (point-to-point): keys and queue names are renamed with ranks. */
  private peerful = false;
  private readonly entries = new Map<string, Entry>();
  private readonly allocBufs = new Set<string>();
  private readonly staticBlock = new Map<string, number>();
  private readonly staticInit: (string | null)[] = [];
  private readonly streamNames: string[];
  private readonly groups: Record<string, readonly number[]>;
  /** Per rank: thread name -> instructions. */
  private readonly progs: Map<string, Instr[]>[] = [];
  private readonly threadStream: Map<string, string>[] = [];
  private readonly autoStart: Map<string, boolean>[] = [];
  private readonly commQueues: Set<string>[] = [];
  private readonly eventNames = new Set<string>();
  private readonly handleNames = new Set<string>();
  private readonly usedGroups = new Set<string>();
  private readonly varsInit: Vars[] = [];
  private readonly checks: Record<string, boolean> = {};
  /** Per rank: the next statement id. */
  private readonly nextId: number[] = [];
  private readonly where: string;

  constructor(private readonly spec: GpuSystemSpec<U>) {
    this.where = `gpu system '${spec.name}'`;
    this.N = spec.ranks;
    if (!Number.isInteger(this.N) || this.N < 1) throw new ModelError(`${this.where}: \`ranks\` must be a positive integer`);
    if (!spec.streams?.length) throw new ModelError(`${this.where}: declare at least one stream in \`streams\``);
    this.streamNames = [...spec.streams];
    for (const st of this.streamNames) {
      if (/^(p2p|gloo-send|gloo-recv|nccl):/.test(st)) throw new ModelError(`${this.where}: stream name '${st}' is reserved for communication`);
    }
    this.groups = { world: [...Array(this.N).keys()], ...(spec.groups ?? {}) };
    for (const [g, members] of Object.entries(this.groups)) {
      if (members.length === 0 || members.some((r) => !Number.isInteger(r) || r < 0 || r >= this.N)) {
        throw new ModelError(`${this.where}: group '${g}' must list ranks in 0..${this.N - 1}`);
      }
    }
    const bufs = spec.buffers ?? [];
    const entries: [string, { alloc?: boolean; init?: string }][] = Array.isArray(bufs)
      ? (bufs as string[]).map((b) => [b, {}])
      : Object.entries(bufs as Record<string, { alloc?: boolean; init?: string }>);
    for (const [b, bs] of entries) {
      if (bs.alloc) this.allocBufs.add(b);
      else {
        this.staticBlock.set(b, this.staticInit.length);
        this.staticInit.push(bs.init !== undefined ? `${b}=${bs.init}` : null);
      }
    }
    for (const e of spec.events ?? []) this.eventNames.add(e);
    for (const h of spec.handles ?? []) this.handleNames.add(h);
    for (const p of KIT_PROPERTIES) this.checks[p] = spec.checks?.[p] ?? true;
    for (let r = 0; r < this.N; r++) {
      this.items.push(new Map());
      this.origins.push(new Map());
      this.makers.push(new Map());
      this.nextId.push(0);
    }
    const sd = spec.symmetry;
    if (sd !== undefined && sd !== false && sd !== true && (typeof sd !== 'object' || sd === null)) {
      throw new ModelError(`${this.where}: \`symmetry\` must be true, false, or { permuteUser, permuteVars, signature, pair }`);
    }
    this.sym = sd === true ? {} : sd ? sd : null;
  }

  // ---- small state helpers -----------------------------------------------------------------------------

  private fault(s: S, r: number, prop: KitProperty, msg: string): S {
    if (s.faults[r] !== null || !this.checks[prop]) return s;
    return { ...s, faults: s.faults.with(r, `${prop}: ${msg}`) };
  }

  /** The queue item `key` of rank r. */
  private item(r: number, key: string): Item {
    const it = this.itemOpt(r, key);
    if (!it) throw new Error(`internal: unknown queue item '${key}' on rank ${r}`);
    return it;
  }

  private itemOpt(r: number, key: string): Item | undefined {
    return this.items[r].get(key) ?? this.adopt(r, key);
  }

  /**
   * Declares how statement `id` of rank r makes one of its queue items (`part`): `make(args)` gives the key and
   * the item. Returns the function that makes the key (registering the item on first use).
   */
  private site(r: number, id: number, part: string, make: (args: readonly Arg[]) => { key: string; item: () => Item }): (args?: readonly Arg[]) => string {
    const name = `${id}/${part}`;
    const fn = (args: readonly Arg[] = []): string => {
      const { key, item } = make(args);
      if (!this.items[r].has(key)) {
        this.items[r].set(key, item());
        const o: Origin = { site: name, args };
        this.origins[r].set(key, o);
        if (!this.anyOrigin.has(key)) this.anyOrigin.set(key, o);
      }
      return key;
    };
    this.makers[r].set(name, fn);
    return fn;
  }

  /**
   * A key that another rank's statement made (without a rank in it), which a renamed state moved to rank r:
   * rank r's same statement makes it from the same arguments.
   */
  private adopt(r: number, key: string): Item | undefined {
    const o = this.anyOrigin.get(key);
    const mk = o && this.makers[r].get(o.site);
    if (!o || !mk) return undefined;
    return mk(o.args) === key ? this.items[r].get(key) : undefined;
  }

  /** Key `key` of rank r as rank perm[r]'s same statement makes it, with ranks renamed by perm. */
  private renameKey(r: number, key: string, perm: readonly number[]): string {
    const r2 = perm[r];
    const ck = `${perm.join(',')}|${r}|${key}`;
    let out = this.renamed.get(ck);
    if (out !== undefined) return out;
    const o = this.origins[r].get(key);
    const mk = o && this.makers[r2].get(o.site);
    if (!o || !mk) throw new Error(`internal: symmetry: no statement of rank ${r2} makes the counterpart of '${key}' of rank ${r}`);
    const args = o.args.map((a): Arg =>
      typeof a !== 'object' ? a : 'key' in a ? { key: this.renameKey(r, a.key, perm) } : { queue: renameQueue(a.queue, perm) },
    );
    out = mk(args);
    this.renamed.set(ck, out);
    return out;
  }

  private entry(e: string): Entry {
    let x = this.entries.get(e);
    if (!x) {
      const [mode, buf, ...rest] = e.split(' ');
      x = { mode: mode as Entry['mode'], buf, key: rest.join(' ') };
      this.entries.set(e, x);
    }
    return x;
  }

  private blockOf(s: S, r: number, buf: string): number {
    const st = this.staticBlock.get(buf);
    if (st !== undefined) return st;
    return s.buffers[r][buf] ?? -1;
  }

  /**
   * A block's contents written through a tensor that no longer lives in it, and that no queued op of that
   * tensor still reads, can never be read as such again (reading them through another tensor is an
   * uninitialised read either way): forget them, so that states differing only in such garbage merge.
   */
  private canon(blk: Block): Block {
    const d = blk.data;
    if (d === null) return blk;
    const db = d.slice(0, d.indexOf('='));
    if (db === blk.buf) return blk;
    for (const e of blk.pending) if (this.entry(e).buf === db) return blk;
    return { ...blk, data: null };
  }

  private setBlock(s: S, r: number, b: number, blk0: Block): S {
    const blk = this.canon(blk0);
    const row = s.blocks[r];
    const nb = b === row.length ? [...row, blk] : row.with(b, blk);
    return { ...s, blocks: s.blocks.with(r, nb) };
  }

  private setPc(s: S, r: number, t: string, pc: Pc): S {
    return { ...s, threads: s.threads.with(r, { ...s.threads[r], [t]: pc }) };
  }

  private push(s: S, r: number, q: string, key: string): S {
    const qs = s.streams[r];
    return { ...s, streams: s.streams.with(r, { ...qs, [q]: [...qs[q], key] }) };
  }

  private popHead(s: S, r: number, q: string): S {
    const qs = s.streams[r];
    return { ...s, streams: s.streams.with(r, { ...qs, [q]: qs[q].slice(1) }) };
  }

  private setVar(s: S, r: number, name: string, v: Data): S {
    return { ...s, vars: s.vars.with(r, { ...s.vars[r], [name]: v }) };
  }

  /** Whether the queue item `key` is still in some queue of rank r. */
  private pending(s: S, r: number, key: string): boolean {
    return this.pendingIn(r, s.streams[r], key);
  }

  private relPending(s: S, r: number, b: number): boolean {
    const qs = s.streams[r];
    for (const q in qs) {
      for (const k of qs[q]) {
        const it = this.item(r, k);
        if (it.kind === 'rel' && it.block === b) return true;
      }
    }
    return false;
  }

  /** Pops every satisfied marker at a queue head of rank r, until none is left. */
  private settle(s: S, r: number): S {
    let qs = s.streams[r];
    let changed = true;
    let any = false;
    while (changed) {
      changed = false;
      for (const q in qs) {
        const arr = qs[q];
        let i = 0;
        while (i < arr.length) {
          const it = this.item(r, arr[i]);
          if (it.kind === 'rec' || it.kind === 'sync' || it.kind === 'rel') i++;
          else if (it.kind === 'wait' && !this.pendingIn(r, qs, it.target)) i++;
          else break;
        }
        if (i > 0) {
          qs = { ...qs, [q]: arr.slice(i) };
          changed = true;
          any = true;
        }
      }
    }
    return any ? { ...s, streams: s.streams.with(r, qs) } : s;
  }

  private pendingIn(r: number, qs: { readonly [q: string]: readonly string[] }, key: string): boolean {
    const it = this.itemOpt(r, key);
    if (it?.kind === 'multi') return it.parts.some((p) => this.pendingIn(r, qs, p));
    for (const q in qs) if (qs[q].includes(key)) return true;
    return false;
  }

  /** The value buffer `buf` of rank r holds (null: never written through this buffer, or not allocated). */
  valueOf(s: S, r: number, buf: string): string | null {
    const b = this.blockOf(s, r, buf);
    if (b < 0) return null;
    return dataValue(s.blocks[r][b].data, buf);
  }

  private ctx(s: S, r: number, t: string): Ctx<U> {
    return {
      rank: r,
      thread: t,
      vars: s.vars[r],
      user: s.user,
      s: s as GpuState<U>,
      value: (buf: string) => this.valueOf(s, r, buf),
    };
  }

  private applyUpdate(s: S, r: number, u: Update<U>): S {
    let t = s;
    if (u.vars) t = { ...t, vars: t.vars.with(r, { ...t.vars[r], ...u.vars }) };
    if (u.user !== undefined) t = { ...t, user: u.user };
    return t;
  }

  /** Adds the op `key` to the pending list of each block it touches (issue time). */
  private touch(s: S, r: number, key: string, reads: readonly string[], writes: readonly string[], who: string): S {
    const modes = new Map<string, 'r' | 'w' | 'rw'>();
    for (const b of reads) modes.set(b, 'r');
    for (const b of writes) modes.set(b, modes.get(b) === 'r' ? 'rw' : 'w');
    let t = s;
    for (const [buf, mode] of modes) {
      const b = this.blockOf(t, r, buf);
      if (b < 0) {
        t = this.fault(t, r, 'no-use-after-free', `${who} uses ${buf}, which is not allocated (freed or never allocated)`);
        continue;
      }
      const blk = t.blocks[r][b];
      t = this.setBlock(t, r, b, { ...blk, pending: [...blk.pending, `${mode} ${buf} ${key}`] });
    }
    return t;
  }

  private describeKey(r: number, key: string): string {
    const it = this.itemOpt(r, key);
    if (!it) return key;
    return match(it)
      .with({ kind: 'op' }, (o) => `${o.name} on stream ${o.stream}`)
      .with({ kind: 'send' }, (o) => `the ${o.backend} send of ${o.buf} to rank ${o.peer}`)
      .with({ kind: 'recv' }, (o) => `the ${o.backend} receive into ${o.buf} from rank ${o.peer}`)
      .with({ kind: 'coll' }, (o) => `${o.coll} #${o.seq}${o.buf ? ` of ${o.buf}` : ''} on group ${o.group}`)
      .with({ kind: 'batch' }, (o) => `the batched exchange with rank ${o.peer}${ioText(o.sends, o.recvs).replace('reads', 'sends').replace('writes', 'receives')}`)
      .with({ kind: 'multi' }, (o) => o.what)
      .with({ kind: 'rec' }, { kind: 'sync' }, { kind: 'rel' }, (o) => o.what)
      .with({ kind: 'wait' }, (o) => `a wait for ${o.what}`)
      .exhaustive();
  }

  private streamOfKey(s: S, r: number, key: string): string {
    const qs = s.streams[r];
    for (const q in qs) if (qs[q].includes(key)) return q;
    return '?';
  }

  /**
   * The race check when the queued item `key` runs on queue `q` of rank r: any op issued before it that
   * still touches one of its blocks from another queue, one of the two writing.
   */
  private raceCheck(s: S, r: number, key: string, q: string, who: string): S {
    if (s.faults[r] !== null) return s;
    const blocks = s.blocks[r];
    for (let b = 0; b < blocks.length; b++) {
      const pend = blocks[b].pending;
      let mine = -1;
      for (let i = 0; i < pend.length; i++) if (this.entry(pend[i]).key === key) { mine = i; break; }
      if (mine < 0) continue;
      const me = this.entry(pend[mine]);
      for (let j = 0; j < mine; j++) {
        const other = this.entry(pend[j]);
        if (other.key === key) continue;
        const oq = this.streamOfKey(s, r, other.key);
        if (oq === q) continue;
        const meW = me.mode !== 'r';
        const meR = me.mode !== 'w';
        const oW = other.mode !== 'r';
        const oR = other.mode !== 'w';
        const blockNote = other.buf === me.buf ? `` : ` (the block ${other.buf} lived in)`;
        const whoOther = `${this.describeKey(r, other.key)} (issued before it, still queued on ${oq})`;
        if (meR && oW) return this.fault(s, r, 'no-read-while-writing', `rank ${r}: ${who} reads ${me.buf}${blockNote} while ${whoOther} has not finished writing ${other.buf}`);
        if (meW && oR) return this.fault(s, r, 'no-write-while-reading', `rank ${r}: ${who} writes ${me.buf}${blockNote} while ${whoOther} has not finished reading ${other.buf}`);
        if (meW && oW) return this.fault(s, r, 'no-write-while-writing', `rank ${r}: ${who} writes ${me.buf}${blockNote} while ${whoOther} has not finished writing ${other.buf}`);
      }
    }
    return s;
  }

  /** Removes `key` from the pending lists of rank r's blocks. */
  private untouch(s: S, r: number, key: string): S {
    const row = s.blocks[r];
    let out: Block[] | undefined;
    for (let b = 0; b < row.length; b++) {
      const pend = row[b].pending;
      if (!pend.some((e) => this.entry(e).key === key)) continue;
      out ??= [...row];
      out[b] = this.canon({ ...row[b], pending: pend.filter((e) => this.entry(e).key !== key) });
    }
    return out ? { ...s, blocks: s.blocks.with(r, out) } : s;
  }

  /** Reads `buf` of rank r for `who` (through its current block): the value, with uninitialised/stale-read faults. */
  private readBuf(s: S, r: number, buf: string, expect: string | undefined, who: string): [S, string | null] {
    const b = this.blockOf(s, r, buf);
    if (b < 0) return [this.fault(s, r, 'no-use-after-free', `rank ${r}: ${who} reads ${buf}, which is not allocated`), null];
    return this.readBlock(s, r, b, buf, expect, who);
  }

  /** Reads block b as buffer `buf`: the value, or a fault when the block holds no value written through `buf`. */
  private readBlock(s: S, r: number, b: number, buf: string, expect: string | undefined, who: string): [S, string | null] {
    const data = s.blocks[r][b].data;
    const v = dataValue(data, buf);
    if (v === null) {
      const held = data === null ? 'its block was never written' : `its block holds ${data.split('=')[0]}'s data`;
      return [this.fault(s, r, 'no-uninitialised-read', `rank ${r}: ${who} reads ${buf}, which was never written (${held})`), null];
    }
    if (expect !== undefined && v !== expect) {
      return [this.fault(s, r, 'no-stale-read', `rank ${r}: ${who} reads ${buf} = ${v}, expected ${expect}`), v];
    }
    return [s, v];
  }

  private writeBuf(s: S, r: number, buf: string, v: string): S {
    const b = this.blockOf(s, r, buf);
    return b < 0 ? s : this.writeBlock(s, r, b, buf, v);
  }

  private writeBlock(s: S, r: number, b: number, buf: string, v: string): S {
    const blk = s.blocks[r][b];
    return this.setBlock(s, r, b, { ...blk, data: `${buf}=${v}` });
  }

  /** The blocks a queued item touches, by buffer name, as captured when it was issued. */
  private opBlocks(s: S, r: number, key: string): Map<string, number> {
    const m = new Map<string, number>();
    const row = s.blocks[r];
    for (let b = 0; b < row.length; b++) {
      for (const e of row[b].pending) {
        const x = this.entry(e);
        if (x.key === key) m.set(x.buf, b);
      }
    }
    return m;
  }

  // ---- running queued work -------------------------------------------------------------------------------

  private runOp(s0: S, r: number, q: string, key: string): S {
    const op = this.item(r, key) as OpItem;
    const who = `${op.name} on stream ${q}`;
    let s = this.raceCheck(s0, r, key, q, who);
    const blocks = this.opBlocks(s, r, key);
    const ins: (string | null)[] = [];
    for (const rd of op.reads) {
      const b = blocks.get(rd.buf);
      if (b === undefined) {
        ins.push(null);
        continue;
      }
      const [t, v] = this.readBlock(s, r, b, rd.buf, rd.expect, who);
      s = t;
      ins.push(v);
    }
    const v = typeof op.value === 'function' ? op.value(ins) : op.value;
    for (const w of op.writes) {
      const b = blocks.get(w);
      if (b !== undefined) s = this.writeBlock(s, r, b, w, v);
    }
    s = this.untouch(s, r, key);
    s = this.popHead(s, r, q);
    return this.settle(s, r);
  }

  private canExec(s: S, r: number, q: string): boolean {
    const head = s.streams[r][q]?.[0];
    return head !== undefined && this.item(r, head).kind === 'op';
  }

  /** The sender's and the receiver's queue for a transfer from `from` to `to`. */
  private transferQueues(from: number, to: number, backend: string): [string, string] {
    return backend === 'nccl' ? [`p2p:${to}`, `p2p:${from}`] : [`gloo-send:${to}`, `gloo-recv:${from}`];
  }

  /** The matching heads of a transfer, if its two sides are both at their queue heads. */
  private transferHeads(s: S, from: number, to: number, backend: string): [string, string] | undefined {
    const [a, b] = this.transferQueues(from, to, backend);
    const sq = s.streams[from][a];
    const rq = s.streams[to][b];
    if (!sq?.length || !rq?.length) return undefined;
    const si = this.item(from, sq[0]);
    const ri = this.item(to, rq[0]);
    if (si.kind === 'send' && ri.kind === 'recv') return [sq[0], rq[0]];
    if (si.kind === 'batch' && ri.kind === 'batch' && from < to && si.sends.length === ri.recvs.length && si.recvs.length === ri.sends.length) {
      return [sq[0], rq[0]];
    }
    return undefined;
  }

  private runTransfer(s0: S, from: number, to: number, backend: string): S {
    const [sk, rk] = this.transferHeads(s0, from, to, backend)!;
    const [sq, rq] = this.transferQueues(from, to, backend);
    const si = this.item(from, sk);
    const ri = this.item(to, rk);
    let s = s0;
    // [rank, key, buffer] of each send and its matching receive.
    const moves: [number, string, string, number, string, string][] = [];
    if (si.kind === 'batch' && ri.kind === 'batch') {
      s = this.raceCheck(s, from, sk, sq, this.describeKey(from, sk));
      s = this.raceCheck(s, to, rk, rq, this.describeKey(to, rk));
      si.sends.forEach((b, i) => moves.push([from, sk, b, to, rk, ri.recvs[i]]));
      ri.sends.forEach((b, i) => moves.push([to, rk, b, from, sk, si.recvs[i]]));
    } else {
      const send = si as P2PItem;
      const recv = ri as P2PItem;
      s = this.raceCheck(s, from, sk, sq, `the ${backend} send of ${send.buf} to rank ${to}`);
      s = this.raceCheck(s, to, rk, rq, `the ${backend} receive into ${recv.buf} from rank ${from}`);
      moves.push([from, sk, send.buf, to, rk, recv.buf]);
    }
    const values: (string | null)[] = [];
    for (const [sr, skey, sbuf, rr] of moves) {
      const b = this.opBlocks(s, sr, skey).get(sbuf);
      let v: string | null = null;
      if (b !== undefined) [s, v] = this.readBlock(s, sr, b, sbuf, undefined, `the ${backend} send of ${sbuf} to rank ${rr}`);
      values.push(v);
    }
    moves.forEach(([, , , rr, rkey, rbuf], i) => {
      const b = this.opBlocks(s, rr, rkey).get(rbuf);
      if (b !== undefined) s = this.writeBlock(s, rr, b, rbuf, values[i] ?? 'garbage');
    });
    s = this.untouch(this.untouch(s, from, sk), to, rk);
    s = this.popHead(this.popHead(s, from, sq), to, rq);
    return this.settle(this.settle(s, from), to);
  }

  private collHeads(s: S, g: string): string[] | undefined {
    const keys: string[] = [];
    let kind: string | undefined;
    for (const r of this.groups[g]) {
      const k = s.streams[r][`nccl:${g}`]?.[0];
      if (k === undefined) return undefined;
      const it = this.item(r, k);
      if (it.kind !== 'coll') return undefined;
      if (kind === undefined) kind = it.coll;
      else if (it.coll !== kind) return undefined;
      keys.push(k);
    }
    return keys;
  }

  private runCollective(s0: S, g: string): S {
    const keys = this.collHeads(s0, g)!;
    const members = this.groups[g];
    const q = `nccl:${g}`;
    let s = s0;
    members.forEach((r, i) => {
      const it = this.item(r, keys[i]) as CollItem;
      if (it.buf === undefined) return;
      s = this.raceCheck(s, r, keys[i], q, `${it.coll} #${it.seq} of ${it.buf}`);
      const b = this.opBlocks(s, r, keys[i]).get(it.buf);
      if (b !== undefined && it.coll !== 'all_gather' && it.coll !== 'broadcast') {
        s = this.readBlock(s, r, b, it.buf, undefined, `${it.coll} #${it.seq} of ${it.buf}`)[0];
      }
    });
    members.forEach((r, i) => {
      const it = this.item(r, keys[i]) as CollItem;
      const b = it.buf !== undefined ? this.opBlocks(s, r, keys[i]).get(it.buf) : undefined;
      if (b !== undefined) s = this.writeBlock(s, r, b, it.buf!, `${it.coll}#${it.seq}`);
      s = this.untouch(s, r, keys[i]);
      s = this.popHead(s, r, q);
    });
    for (const r of members) s = this.settle(s, r);
    return s;
  }

  /** Per rank of group g: the thread standing at a gloo collective of g, if any. */
  private glooAt(s: S, r: number, g: string): [string, Instr] | undefined {
    for (const [t, prog] of this.progs[r]) {
      const pc = s.threads[r][t];
      if (typeof pc !== 'number') continue;
      const ins = prog[pc];
      if (ins.stmt.op === 'collective' && ins.stmt.backend === 'gloo' && ins.stmt.group === g) return [t, ins];
    }
    return undefined;
  }

  /** The threads of rank r with a gloo collective of group g (only they can stand at one). */
  private glooThreads(r: number, g: string): string[] {
    return [...this.progs[r]].filter(([, prog]) => prog.some((i) => i.stmt.op === 'collective' && i.stmt.backend === 'gloo' && i.stmt.group === g)).map(([t]) => t);
  }

  /** Every rank that is a member of one of the groups. */
  private groupsMembers(groups: readonly string[]): number[] {
    return [...new Set(groups.flatMap((g) => this.groups[g]))].sort((a, b) => a - b);
  }

  private glooReady(s: S, g: string): boolean {
    let kind: string | undefined;
    for (const r of this.groups[g]) {
      const at = this.glooAt(s, r, g);
      if (!at) return false;
      const k = (at[1].stmt as { kind: string }).kind;
      if (kind === undefined) kind = k;
      else if (k !== kind) return false;
    }
    return true;
  }

  private runGloo(s0: S, g: string): S {
    let s = s0;
    for (const r of this.groups[g]) {
      const [t, ins] = this.glooAt(s0, r, g)!;
      const st = ins.stmt as Extract<Stmt, { op: 'collective' }>;
      const seq = (s.colls[r][g] ?? 0) + 1;
      s = { ...s, colls: s.colls.with(r, { ...s.colls[r], [g]: seq }) };
      if (st.buf !== undefined) {
        s = this.cpuAccess(s, r, st.buf, 'rw', `${t}'s gloo ${st.kind} #${seq}`);
        if (st.kind !== 'all_gather' && st.kind !== 'broadcast') s = this.readBuf(s, r, st.buf, undefined, `${st.kind} #${seq}`)[0];
        s = this.writeBuf(s, r, st.buf, `${st.kind}#${seq}`);
      }
      s = this.setPc(s, r, t, ins.next);
    }
    return s;
  }

  /** A CPU access of `buf` now: a race against any queued op issued before that touches its block. */
  private cpuAccess(s: S, r: number, buf: string, mode: 'r' | 'w' | 'rw', who: string): S {
    const b = this.blockOf(s, r, buf);
    if (b < 0) return this.fault(s, r, 'no-use-after-free', `rank ${r}: ${who} uses ${buf}, which is not allocated`);
    for (const e of s.blocks[r][b].pending) {
      const o = this.entry(e);
      const oq = this.streamOfKey(s, r, o.key);
      const whoOther = `${this.describeKey(r, o.key)} (issued before, still queued on ${oq})`;
      if (mode !== 'w' && o.mode !== 'r') return this.fault(s, r, 'no-read-while-writing', `rank ${r}: ${who} reads ${buf} on the CPU while ${whoOther} has not finished writing ${o.buf}`);
      if (mode !== 'r' && o.mode !== 'w') return this.fault(s, r, 'no-write-while-reading', `rank ${r}: ${who} writes ${buf} on the CPU while ${whoOther} has not finished reading ${o.buf}`);
      if (mode !== 'r' && o.mode !== 'r') return this.fault(s, r, 'no-write-while-writing', `rank ${r}: ${who} writes ${buf} on the CPU while ${whoOther} has not finished writing ${o.buf}`);
    }
    return s;
  }

  // ---- compiling threads ----------------------------------------------------------------------------------

  private compileThread(r: number, t: string, body: readonly Stmt<U>[], stream: string): Instr[] {
    type Label = { at: number };
    type Raw =
      | { kind: 'ins'; ins: Instr; handler: Label | 'raised'; elseL?: Label }
      | { kind: 'goto'; to: Label | 'raised' };
    const code: Raw[] = [];
    const place = (l: Label) => {
      l.at = code.length;
    };
    const who = `rank ${r} ${t}`;

    const emitList = (stmts: readonly Stmt<U>[], handler: Label | 'raised') => {
      let raising: string | undefined;
      for (const st of stmts) {
        if (st.op === 'mayRaise') {
          raising = raising ? `${raising}; ${st.reason}` : st.reason;
          continue;
        }
        const simple = st.op !== 'when' && st.op !== 'tryFinally' && st.op !== 'tryCatch';
        if (raising !== undefined && !simple) {
          const ins = this.instr(r, t, { op: 'step', name: 'continue', effect: () => ({}) } as Stmt<U>, stream, who);
          ins.raisable = raising;
          code.push({ kind: 'ins', ins, handler });
          raising = undefined;
        }
        const plain = (x: Stmt<U>): Instr => {
          const ins = this.instr(r, t, x, stream, who);
          if (raising !== undefined) ins.raisable = raising;
          return ins;
        };
        if (st.op === 'when') {
          const elseL: Label = { at: -1 };
          const end: Label = { at: -1 };
          code.push({ kind: 'ins', ins: plain(st), handler, elseL });
          emitList(st.then, handler);
          code.push({ kind: 'goto', to: end });
          place(elseL);
          emitList(st.else, handler);
          place(end);
        } else if (st.op === 'tryFinally') {
          const onRaise: Label = { at: -1 };
          const end: Label = { at: -1 };
          emitList(st.body, onRaise);
          emitList(st.finally, handler);
          code.push({ kind: 'goto', to: end });
          place(onRaise);
          emitList(st.finally, handler);
          code.push({ kind: 'goto', to: handler });
          place(end);
        } else if (st.op === 'tryCatch') {
          const onRaise: Label = { at: -1 };
          const end: Label = { at: -1 };
          emitList(st.body, onRaise);
          code.push({ kind: 'goto', to: end });
          place(onRaise);
          emitList(st.handler, handler);
          place(end);
        } else if (st.op === 'syncStream' || st.op === 'syncDevice' || (st.op === 'collective' && st.kind === 'barrier' && st.backend === 'nccl')) {
          const ins = plain(st);
          code.push({ kind: 'ins', ins, handler });
          code.push({ kind: 'ins', ins: this.awaitInstr(r, t, ins, who), handler });
        } else {
          const ins = plain(st);
          if (st.op === 'raise') ins.raisable = st.reason;
          code.push({ kind: 'ins', ins, handler });
        }
        raising = undefined;
      }
      if (raising !== undefined) {
        const ins = this.instr(r, t, { op: 'step', name: 'continue', effect: () => ({}) } as Stmt<U>, stream, who);
        ins.raisable = raising;
        code.push({ kind: 'ins', ins, handler });
      }
    };
    emitList(body, 'raised');

    // Resolve labels: instruction indices skip gotos; a position at the end is 'done'.
    const index: number[] = [];
    let n = 0;
    for (const c of code) index.push(c.kind === 'ins' ? n++ : -1);
    const resolve = (pos: number | 'raised', seen = 0): Pc => {
      if (pos === 'raised') return 'raised';
      if (seen > code.length) throw new ModelError(`${this.where}: ${who}: a jump loops`);
      if (pos >= code.length) return 'done';
      const c = code[pos];
      if (c.kind === 'ins') return index[pos];
      return resolve(c.to === 'raised' ? 'raised' : c.to.at, seen + 1);
    };
    const out: Instr[] = [];
    code.forEach((c, pos) => {
      if (c.kind !== 'ins') return;
      c.ins.next = resolve(pos + 1);
      c.ins.nextElse = c.elseL ? resolve(c.elseL.at) : c.ins.next;
      c.ins.handler = resolve(c.handler === 'raised' ? 'raised' : c.handler.at);
      out.push(c.ins);
    });
    return out;
  }

  /** The blocking half of synchronize / NCCL barrier: waits for the marker `prev` queued. */
  private awaitInstr(r: number, t: string, prev: Instr, who: string): Instr {
    const key = (prev as Instr & { awaitKey: string }).awaitKey;
    const self: Instr = {
      action: 'synchronized',
      stmt: prev.stmt,
      guardReads: [P.st(r)],
      reads: [P.st(r)],
      writes: [],
      next: 'done',
      nextElse: 'done',
      handler: 'raised',
      enabled: (s) => !this.pending(s, r, key),
      exec: (s) => this.setPc(s, r, t, self.next),
      describe: () => `${who}: ${stmtText(prev.stmt)} returns (the work it waited for is done)`,
      blocked: (s) => `${who}: blocked in ${stmtText(prev.stmt)}, waiting for ${this.waitingOn(s, r, key)}`,
    };
    return self;
  }

  /** What the item `key` of rank r is stuck behind: itself at a queue head, or the work ahead of it. */
  private waitingOn(s: S, r: number, key: string): string {
    const parts: string[] = [];
    const qs = s.streams[r];
    for (const q in qs) {
      const i = qs[q].indexOf(key);
      if (i < 0) continue;
      const head = qs[q][0];
      const hi = this.item(r, head);
      if (i === 0) parts.push(`${this.describeKey(r, key)} on ${q}`);
      else if (hi.kind === 'wait') parts.push(`stream ${q}, whose head waits for ${hi.what}`);
      else parts.push(`${this.describeKey(r, head)} at the head of ${q}${i > 1 ? ` (${i} items ahead)` : ''}`);
    }
    return parts.length ? parts.join('; ') : 'nothing';
  }

  private checkStream(st: string, who: string): void {
    if (!this.streamNames.includes(st)) throw new ModelError(`${this.where}: ${who} names stream '${st}', not declared in \`streams\` (${this.streamNames.join(', ')})`);
  }

  private checkBuf(buf: string, who: string): void {
    if (!this.allocBufs.has(buf) && !this.staticBlock.has(buf)) throw new ModelError(`${this.where}: ${who} names buffer '${buf}', not declared in \`buffers\``);
  }

  private checkVar(r: number, name: string, who: string): void {
    if (!(name in this.varsInit[r])) throw new ModelError(`${this.where}: ${who} names variable '${name}', not declared in \`vars\``);
  }

  /** A closure's declared footprint on rank r, or the whole state. */
  private closure(fp: Footprint | undefined, r: number): readonly string[] {
    if (fp === undefined) return WHOLE_STATE;
    return typeof fp === 'function' ? fp(r) : fp;
  }

  /**
   * What a statement of rank r's thread t reads and writes when it runs (its pc aside), for partial-order
   * reduction. Every effect that queues work is followed by `settle`, which only pops markers: from a settled
   * state (every reachable state is one) it can change only the queues the statement pushed to (a marker it
   * pops is one of the items just queued, or a wait for one of them), and reads every queue of the rank. A
   * write of the rank's `faults[r]` is declared where a kit check may fail; of a buffer's block row wherever
   * pending entries, contents or uses change.
   */
  private footprint(r: number, t: string, st: Stmt<U>, stream: string): Pick<Instr, 'guardReads' | 'reads' | 'writes'> {
    const mem = [P.bufs(r), P.blocks(r), P.st(r), P.fault(r)];
    /** A use of an allocator buffer may fault (use after free); a preallocated one only in a race check. */
    const mayFault = (bufs: readonly string[]) => (bufs.some((b) => this.allocBufs.has(b)) ? [P.fault(r)] : []);
    const none = { guardReads: [] as string[] };
    switch (st.op) {
      case 'launch': {
        const bufs = [...st.reads.map((x) => (typeof x === 'string' ? x : x.buf)), ...st.writes];
        return { ...none, reads: mem, writes: [P.blocks(r), P.st(r, st.stream), ...mayFault(bufs)] };
      }
      case 'record':
        return { ...none, reads: [P.st(r)], writes: [P.st(r, st.stream), P.ev(r, st.event)] };
      case 'waitEvent':
        return { ...none, reads: [P.ev(r, st.event), P.st(r)], writes: [P.st(r, st.stream)] };
      case 'waitStream':
        return { ...none, reads: [P.st(r)], writes: [P.st(r, st.other), P.st(r, st.stream)] };
      case 'syncStream':
        return { ...none, reads: [P.st(r)], writes: [P.st(r, st.stream)] };
      case 'syncDevice':
        return { ...none, reads: [P.st(r)], writes: [P.st(r)] };
      case 'syncEvent':
        return { guardReads: [P.ev(r, st.event), P.st(r)], reads: [P.ev(r, st.event), P.st(r)], writes: [] };
      case 'alloc':
      case 'free':
        return { ...none, reads: mem, writes: [P.buf(r, st.buf), P.blocks(r), P.st(r), P.fault(r)] };
      case 'recordStream':
        return { ...none, reads: mem, writes: [P.blocks(r), P.fault(r)] };
      case 'p2p':
      case 'batch': {
        const ops = st.op === 'p2p' ? [st] : st.ops;
        const queues = ops.map((p) => (st.op === 'p2p' ? p2pQueue(p.backend, p.dir, p.peer) : `p2p:${p.peer}`));
        return {
          ...none,
          reads: mem,
          writes: [P.st(r, st.stream ?? stream), ...queues.map((x) => P.st(r, x)), P.blocks(r), ...(st.handle ? [P.h(r, st.handle)] : []), ...mayFault(ops.map((p) => p.buf))],
        };
      }
      case 'wait':
        return { guardReads: [P.h(r, st.handle), P.st(r)], reads: [P.h(r, st.handle), P.st(r)], writes: [P.st(r, st.stream ?? stream), P.h(r, st.handle)] };
      case 'collective':
        if (st.backend === 'gloo') return { ...none, reads: [], writes: [] };
        return {
          ...none,
          reads: [...mem, P.coll(r, st.group)],
          writes: [
            P.coll(r, st.group),
            P.st(r, st.stream ?? stream),
            P.st(r, `nccl:${st.group}`),
            P.blocks(r),
            ...(st.handle ? [P.h(r, st.handle)] : []),
            ...mayFault(st.buf !== undefined ? [st.buf] : []),
          ],
        };
      case 'cpuRead':
        return { ...none, reads: mem, writes: [P.fault(r), ...(st.into ? [P.v(r, st.into)] : [])] };
      case 'cpuWrite':
        return { ...none, reads: mem, writes: [P.blocks(r), P.fault(r)] };
      case 'set':
        return { ...none, reads: typeof st.value === 'function' ? this.closure(st.reads, r) : [], writes: [P.v(r, st.name)] };
      case 'until': {
        const reads = this.closure(st.reads, r);
        return { guardReads: reads, reads, writes: [] };
      }
      case 'when':
        return { ...none, reads: this.closure(st.reads, r), writes: [] };
      case 'start':
        return { ...none, reads: [P.th(r, st.thread)], writes: [P.th(r, st.thread)] };
      case 'join':
        return { guardReads: [P.th(r, st.thread)], reads: [P.th(r, st.thread)], writes: [] };
      case 'step': {
        if (st.name === 'continue' && st.guard === undefined && st.reads === undefined) return { ...none, reads: [], writes: [] };
        const reads = this.closure(st.reads, r);
        const writes = st.writes === undefined ? [P.vars(r), 'user'] : typeof st.writes === 'function' ? st.writes(r) : st.writes;
        return { guardReads: st.guard ? reads : [], reads, writes };
      }
      case 'raise':
      case 'mayRaise':
      case 'tryFinally':
      case 'tryCatch':
        return { ...none, reads: [], writes: [] };
    }
  }

  /** Compiles one simple statement of rank r's thread t into an instruction. */
  private instr(r: number, t: string, st: Stmt<U>, stream: string, who: string): Instr {
    const id = this.nextId[r]++;
    const base = { stmt: st, next: 'done' as Pc, nextElse: 'done' as Pc, handler: 'raised' as Pc };
    const self = (
      x: Omit<Instr, 'stmt' | 'next' | 'nextElse' | 'handler' | 'blocked' | 'guardReads' | 'reads' | 'writes'> & { blocked?: Instr['blocked']; awaitKey?: string },
    ): Instr => {
      const ins = Object.assign(base, { blocked: () => `${who}: at ${stmtText(st)}` }, this.footprint(r, t, st, stream), x) as Instr;
      return ins;
    };
    const adv = (s: S, ins: () => Instr) => this.setPc(s, r, t, ins().next);
    let me!: Instr;
    const get = () => me;

    me = match(st as Stmt<U>)
      .with({ op: 'launch' }, (l) => {
        this.checkStream(l.stream, who);
        const reads = l.reads.map((x) => (typeof x === 'string' ? { buf: x } : x));
        for (const b of [...reads.map((x) => x.buf), ...l.writes]) this.checkBuf(b, who);
        const key = this.site(r, id, 'op', () => ({ key: `${l.name}#${id}`, item: () => ({ kind: 'op', stream: l.stream, name: l.name, reads, writes: l.writes, value: l.value ?? l.name }) }))();
        const io = ioText(reads.map((x) => x.buf), l.writes);
        return self({
          action: 'launch',
          enabled: () => true,
          exec: (s) => {
            let x = this.touch(s, r, key, reads.map((y) => y.buf), l.writes, `${l.name} on stream ${l.stream}`);
            x = this.push(x, r, l.stream, key);
            return adv(x, get);
          },
          describe: () => `${who}: launch ${l.name} on stream ${l.stream}${io}`,
        });
      })
      .with({ op: 'record' }, (e) => {
        this.checkStream(e.stream, who);
        this.eventNames.add(e.event);
        const key = this.site(r, id, 'rec', () => ({ key: `record ${e.event}#${id}`, item: () => ({ kind: 'rec', what: `event ${e.event} (recorded on ${e.stream})` }) }))();
        return self({
          action: 'record',
          enabled: () => true,
          exec: (s) => {
            let x = this.push(s, r, e.stream, key);
            x = { ...x, events: x.events.with(r, { ...x.events[r], [e.event]: key }) };
            return adv(x, get);
          },
          describe: () => `${who}: record event ${e.event} on stream ${e.stream}`,
        });
      })
      .with({ op: 'waitEvent' }, (w) => {
        this.checkStream(w.stream, who);
        this.eventNames.add(w.event);
        const waitKey = this.site(r, id, 'wait', ([t]) => {
          const target = keyArg(t);
          return { key: `wait ${w.event}(${target})#${id}`, item: () => ({ kind: 'wait', target, what: `event ${w.event}` }) };
        });
        return self({
          action: 'waitEvent',
          enabled: () => true,
          exec: (s) => {
            const target = s.events[r][w.event];
            if (target === null || !this.pending(s, r, target)) return adv(s, get);
            // The key names the recorded target: one statement may wait different records of the event over a run.
            const key = waitKey([{ key: target }]);
            return adv(this.push(s, r, w.stream, key), get);
          },
          describe: (s) => {
            const target = s.events[r][w.event];
            const note = target === null ? ' (never recorded: a no-op)' : !this.pending(s, r, target) ? ' (already complete)' : '';
            return `${who}: stream ${w.stream} waits event ${w.event}${note}`;
          },
        });
      })
      .with({ op: 'waitStream' }, (w) => {
        this.checkStream(w.stream, who);
        this.checkStream(w.other, who);
        const mark = this.site(r, id, 'mark', () => ({ key: `${w.other} point#${id}`, item: () => ({ kind: 'rec', what: `the work queued on ${w.other} before ${who}'s wait_stream` }) }))();
        const wk = this.site(r, id, 'wait', () => ({ key: `wait(${w.other} point#${id})`, item: () => ({ kind: 'wait', target: mark, what: `stream ${w.other}'s work queued before the wait_stream` }) }))();
        return self({
          action: 'waitStream',
          enabled: () => true,
          exec: (s) => {
            if (s.streams[r][w.other].length === 0) return adv(s, get);
            return adv(this.push(this.push(s, r, w.other, mark), r, w.stream, wk), get);
          },
          describe: (s) => `${who}: stream ${w.stream} waits stream ${w.other}${s.streams[r][w.other].length === 0 ? ' (idle: a no-op)' : ''}`,
        });
      })
      .with({ op: 'syncStream' }, (y) => {
        this.checkStream(y.stream, who);
        const key = this.site(r, id, 'sync', () => ({ key: `sync#${id}`, item: () => ({ kind: 'sync', what: `the synchronize point of ${who}` }) }))();
        return self({
          action: 'synchronize',
          awaitKey: key,
          enabled: () => true,
          exec: (s) => {
            if (s.streams[r][y.stream].length === 0) return this.setPc(s, r, t, this.afterAwait(get()));
            return adv(this.push(s, r, y.stream, key), get);
          },
          describe: (s) => `${who}: synchronize stream ${y.stream}${s.streams[r][y.stream].length === 0 ? ' (idle: returns at once)' : ''}`,
        });
      })
      .with({ op: 'syncDevice' }, () => {
        const key = this.site(r, id, 'sync', () => ({ key: `sync#${id}`, item: () => ({ kind: 'sync', what: `the device synchronize of ${who}` }) }))();
        return self({
          action: 'synchronize',
          awaitKey: key,
          enabled: () => true,
          exec: (s) => {
            let x = s;
            for (const q in s.streams[r]) if (s.streams[r][q].length > 0) x = this.push(x, r, q, key);
            if (x === s) return this.setPc(s, r, t, this.afterAwait(get()));
            return adv(x, get);
          },
          describe: () => `${who}: synchronize the device`,
        });
      })
      .with({ op: 'syncEvent' }, (y) => {
        this.eventNames.add(y.event);
        const done = (s: S) => {
          const k = s.events[r][y.event];
          return k === null || !this.pending(s, r, k);
        };
        return self({
          action: 'synchronize',
          enabled: done,
          exec: (s) => adv(s, get),
          describe: (s) => `${who}: synchronize event ${y.event}${s.events[r][y.event] === null ? ' (never recorded: returns at once)' : ''}`,
          blocked: (s) => `${who}: blocked in event ${y.event}.synchronize(), waiting for ${this.waitingOn(s, r, s.events[r][y.event]!)}`,
        });
      })
      .with({ op: 'alloc' }, (a) => {
        this.checkStream(a.stream, who);
        if (!this.allocBufs.has(a.buf)) throw new ModelError(`${this.where}: ${who} allocates '${a.buf}', which is not declared with { alloc: true } in \`buffers\``);
        const rel = this.releaseSite(r, id, a.buf);
        return self({
          action: 'alloc',
          enabled: () => true,
          exec: (s) => {
            let x = s;
            if (x.buffers[r][a.buf] >= 0) x = this.doFree(x, r, a.buf, rel, who);
            const row = x.blocks[r];
            let b = -1;
            for (let i = 0; i < row.length; i++) {
              if (row[i].owner === a.stream && row[i].buf === null && !this.relPending(x, r, i)) {
                b = i;
                break;
              }
            }
            if (b < 0) b = row.length;
            const old = row[b];
            x = this.setBlock(x, r, b, { owner: a.stream, buf: a.buf, data: old?.data ?? null, pending: old?.pending ?? [], uses: [] });
            x = { ...x, buffers: x.buffers.with(r, { ...x.buffers[r], [a.buf]: b }) };
            return adv(x, get);
          },
          describe: (s) => {
            const row = s.blocks[r];
            const b = row.findIndex((blk, i) => blk.owner === a.stream && blk.buf === null && !this.relPending(s, r, i));
            const held = b >= 0 ? row[b].data : null;
            const how = b >= 0 ? `reuses block ${b}${held ? `, which held ${held.split('=')[0]}` : ''}` : `new block ${row.length}`;
            return `${who}: allocate ${a.buf} on stream ${a.stream} (${how})`;
          },
        });
      })
      .with({ op: 'free' }, (f) => {
        if (!this.allocBufs.has(f.buf)) throw new ModelError(`${this.where}: ${who} frees '${f.buf}', which is not declared with { alloc: true } in \`buffers\``);
        const rel = this.releaseSite(r, id, f.buf);
        return self({
          action: 'free',
          enabled: () => true,
          exec: (s) => adv(this.doFree(s, r, f.buf, rel, who), get),
          describe: (s) => {
            const b = s.buffers[r][f.buf];
            if (b < 0) return `${who}: free ${f.buf} (not allocated)`;
            const blk = s.blocks[r][b];
            const held = blk.uses.filter((u) => u !== blk.owner && s.streams[r][u].length > 0);
            const ignored = blk.uses.includes(blk.owner!) ? `; record_stream(${blk.owner}) is ignored: it is the allocation stream` : '';
            return `${who}: free ${f.buf} (block ${b} back to stream ${blk.owner}'s pool${held.length ? `, reusable once ${held.join(', ')} finish their queued work` : ', reusable at once'}${ignored})`;
          },
        });
      })
      .with({ op: 'recordStream' }, (rs) => {
        this.checkStream(rs.stream, who);
        this.checkBuf(rs.buf, who);
        return self({
          action: 'recordStream',
          enabled: () => true,
          exec: (s) => {
            const b = this.blockOf(s, r, rs.buf);
            if (b < 0) return adv(this.fault(s, r, 'no-use-after-free', `${who}: record_stream on ${rs.buf}, which is not allocated`), get);
            const blk = s.blocks[r][b];
            const x = blk.uses.includes(rs.stream) ? s : this.setBlock(s, r, b, { ...blk, uses: [...blk.uses, rs.stream] });
            return adv(x, get);
          },
          describe: (s) => {
            const b = this.blockOf(s, r, rs.buf);
            const own = b >= 0 && s.blocks[r][b].owner === rs.stream ? ' (its allocation stream: will be ignored)' : '';
            return `${who}: ${rs.buf}.record_stream(${rs.stream})${own}`;
          },
        });
      })
      .with({ op: 'p2p' }, (p) => {
        if (!Number.isInteger(p.peer) || p.peer < 0 || p.peer >= this.N || p.peer === r) throw new ModelError(`${this.where}: ${who} sends to/receives from rank ${p.peer}, not a peer in 0..${this.N - 1}`);
        this.checkBuf(p.buf, who);
        const cs = p.stream ?? stream;
        this.checkStream(cs, who);
        const q = p2pQueue(p.backend, p.dir, p.peer);
        this.commQueues[r].add(q);
        if (p.handle) this.handleNames.add(p.handle);
        const verb = p.dir === 'send' ? `isend ${p.buf} to rank ${p.peer}` : `irecv ${p.buf} from rank ${p.peer}`;
        const key = this.site(r, id, 'p2p', () => ({ key: `${p.dir} ${p.buf} ${p.dir === 'send' ? 'to' : 'from'} ${p.peer}#${id}`, item: () => ({ kind: p.dir, peer: p.peer, buf: p.buf, backend: p.backend }) }))();
        const ready = this.site(r, id, 'issued', () => ({ key: `${key}:issued`, item: () => ({ kind: 'rec', what: `the point where ${who} issued ${verb}` }) }))();
        const waitReady = this.site(r, id, 'wait-issued', () => ({ key: `wait(${key}:issued)`, item: () => ({ kind: 'wait', target: ready, what: `stream ${cs}'s work queued before ${verb}` }) }))();
        return self({
          action: p.dir === 'send' ? 'isend' : 'irecv',
          enabled: () => true,
          exec: (s) => {
            let x = s;
            if (p.backend === 'nccl' && x.streams[r][cs].length > 0) {
              x = this.push(x, r, cs, ready);
              x = this.push(x, r, q, waitReady);
            }
            x = this.touch(x, r, key, p.dir === 'send' ? [p.buf] : [], p.dir === 'recv' ? [p.buf] : [], verb);
            if (p.backend === 'nccl') x = this.addUse(x, r, p.buf, q);
            x = this.push(x, r, q, key);
            if (p.handle) x = { ...x, handles: x.handles.with(r, { ...x.handles[r], [p.handle]: key }) };
            return adv(x, get);
          },
          describe: () => `${who}: ${verb} (${p.backend}${p.handle ? `, handle ${p.handle}` : ''})`,
        });
      })
      .with({ op: 'batch' }, (bt) => {
        const cs = bt.stream ?? stream;
        this.checkStream(cs, who);
        if (bt.handle) this.handleNames.add(bt.handle);
        const peers: number[] = [];
        for (const p of bt.ops) {
          if (!Number.isInteger(p.peer) || p.peer < 0 || p.peer >= this.N || p.peer === r) throw new ModelError(`${this.where}: ${who} batches an op with rank ${p.peer}, not a peer in 0..${this.N - 1}`);
          this.checkBuf(p.buf, who);
          if (!peers.includes(p.peer)) peers.push(p.peer);
        }
        const parts = peers.map((peer, i) => {
          const sends = bt.ops.filter((p) => p.peer === peer && p.dir === 'send').map((p) => p.buf);
          const recvs = bt.ops.filter((p) => p.peer === peer && p.dir === 'recv').map((p) => p.buf);
          this.commQueues[r].add(`p2p:${peer}`);
          const key = this.site(r, id, `part${i}`, () => ({ key: `batch with ${peer}#${id}`, item: () => ({ kind: 'batch', peer, sends, recvs }) }))();
          return { peer, sends, recvs, key, q: `p2p:${peer}` };
        });
        const text = `batch_isend_irecv(${bt.ops.map((p) => stmtText(p)).join(', ')})`;
        const multi = this.site(r, id, 'multi', () => ({ key: `batch#${id}`, item: () => ({ kind: 'multi', parts: parts.map((p) => p.key), what: `the batch ${text}` }) }))();
        const ready = this.site(r, id, 'issued', () => ({ key: `batch#${id}:issued`, item: () => ({ kind: 'rec', what: `the point where ${who} issued its batch` }) }))();
        const waitReady = this.site(r, id, 'wait-issued', () => ({ key: `wait(batch#${id}:issued)`, item: () => ({ kind: 'wait', target: ready, what: `stream ${cs}'s work queued before the batch` }) }))();
        return self({
          action: 'batch_isend_irecv',
          enabled: () => true,
          exec: (s) => {
            let x = s;
            const queued = x.streams[r][cs].length > 0;
            if (queued) x = this.push(x, r, cs, ready);
            for (const p of parts) {
              if (queued) x = this.push(x, r, p.q, waitReady);
              x = this.touch(x, r, p.key, p.sends, p.recvs, `the batch with rank ${p.peer}`);
              for (const b of new Set([...p.sends, ...p.recvs])) x = this.addUse(x, r, b, p.q);
              x = this.push(x, r, p.q, p.key);
            }
            if (bt.handle) x = { ...x, handles: x.handles.with(r, { ...x.handles[r], [bt.handle]: multi }) };
            return adv(x, get);
          },
          describe: () => `${who}: ${text} (nccl${bt.handle ? `, handle ${bt.handle}` : ''})`,
        });
      })
      .with({ op: 'wait' }, (w) => {
        this.handleNames.add(w.handle);
        const cs = w.stream ?? stream;
        this.checkStream(cs, who);
        const waitKey = this.site(r, id, 'wait', ([t]) => {
          const k = keyArg(t);
          return { key: `wait(${k})#${id}`, item: () => ({ kind: 'wait', target: k, what: this.describeKey(r, k) }) };
        });
        const isGloo = (k: string) => {
          const it = this.itemOpt(r, k);
          return (it?.kind === 'send' || it?.kind === 'recv') && it.backend === 'gloo';
        };
        const live = (s: S) => {
          const k = s.handles[r][w.handle];
          return k !== null && k !== 'waited' && this.pending(s, r, k) ? k : undefined;
        };
        return self({
          action: 'wait',
          enabled: (s) => {
            const k = live(s);
            return k === undefined || !isGloo(k);
          },
          exec: (s) => {
            const k = live(s);
            let x = s;
            if (k !== undefined) {
              const wk = waitKey([{ key: k }]);
              x = this.push(x, r, cs, wk);
            }
            if (x.handles[r][w.handle] !== null) x = { ...x, handles: x.handles.with(r, { ...x.handles[r], [w.handle]: 'waited' }) };
            return adv(x, get);
          },
          describe: (s) => {
            const k = s.handles[r][w.handle];
            if (k === null) return `${who}: ${w.handle}.wait() (never set: a no-op)`;
            if (k === 'waited') return `${who}: ${w.handle}.wait() (already waited: a no-op)`;
            if (isGloo(k)) return `${who}: ${w.handle}.wait() returns (gloo: ${this.describeKey(r, k)} is done)`;
            const l = live(s);
            return `${who}: ${w.handle}.wait() (nccl: stream ${cs} will wait for ${this.describeKey(r, k)}${l ? '' : ', already done'}; the CPU goes on)`;
          },
          blocked: (s) => `${who}: blocked in ${w.handle}.wait() (gloo) on ${this.describeKey(r, s.handles[r][w.handle]!)}, ${this.peerNote(s, r, s.handles[r][w.handle]!)}`,
        });
      })
      .with({ op: 'collective' }, (c) => {
        if (!(c.group in this.groups)) throw new ModelError(`${this.where}: ${who} uses group '${c.group}', not declared in \`groups\``);
        if (!this.groups[c.group].includes(r)) throw new ModelError(`${this.where}: ${who} calls ${c.kind} on group '${c.group}', which rank ${r} is not in`);
        this.usedGroups.add(c.group);
        if (c.buf !== undefined) this.checkBuf(c.buf, who);
        if (c.handle) this.handleNames.add(c.handle);
        const text = `${c.kind}${c.buf ? ` of ${c.buf}` : ''} on group ${c.group}`;
        if (c.backend === 'gloo') {
          return self({
            action: '',
            enabled: () => false,
            exec: (s) => s,
            describe: () => `${who}: ${text} (gloo)`,
            blocked: (s) => `${who}: blocked in ${c.kind} #${(s.colls[r][c.group] ?? 0) + 1} (gloo, group ${c.group}; peers: ${this.glooPeers(s, r, c.group)})`,
          });
        }
        const cs = c.stream ?? stream;
        this.checkStream(cs, who);
        const q = `nccl:${c.group}`;
        this.commQueues[r].add(q);
        const blocking = c.kind === 'barrier';
        const collKey = this.site(r, id, 'coll', ([q0]) => {
          const seq = q0 as number;
          return { key: `${c.kind} #${seq}${c.buf ? ` ${c.buf}` : ''}#${id}`, item: () => ({ kind: 'coll', coll: c.kind, group: c.group, seq, ...(c.buf !== undefined ? { buf: c.buf } : {}) }) };
        });
        const issuedKey = this.site(r, id, 'issued', ([q0]) => {
          const seq = q0 as number;
          return { key: `${collKey([seq])}:issued`, item: () => ({ kind: 'rec', what: `the point where ${who} issued ${c.kind} #${seq}` }) };
        });
        const waitIssuedKey = this.site(r, id, 'wait-issued', ([q0]) => {
          const seq = q0 as number;
          const ready = issuedKey([seq]);
          return { key: `wait(${ready})`, item: () => ({ kind: 'wait', target: ready, what: `stream ${cs}'s work queued before ${c.kind} #${seq}` }) };
        });
        const waitCollKey = this.site(r, id, 'wait', ([q0]) => {
          const seq = q0 as number;
          const key = collKey([seq]);
          return { key: `wait(${key})`, item: () => ({ kind: 'wait', target: key, what: `${c.kind} #${seq}` }) };
        });
        const awaitKey = this.site(r, id, 'done', () => ({ key: `${text}#${id}:done`, item: () => ({ kind: 'sync', what: `${who}'s barrier` }) }))();
        const self2 = self({
          action: c.kind,
          awaitKey,
          enabled: () => true,
          exec: (s) => {
            const seq = (s.colls[r][c.group] ?? 0) + 1;
            let x: S = { ...s, colls: s.colls.with(r, { ...s.colls[r], [c.group]: seq }) };
            const key = collKey([seq]);
            if (x.streams[r][cs].length > 0) {
              const ready = issuedKey([seq]);
              const wr = waitIssuedKey([seq]);
              x = this.push(this.push(x, r, cs, ready), r, q, wr);
            }
            if (c.buf !== undefined) {
              x = this.touch(x, r, key, [c.buf], [c.buf], `${c.kind} #${seq}`);
              x = this.addUse(x, r, c.buf, q);
            }
            x = this.push(x, r, q, key);
            if (blocking) {
              x = this.push(x, r, q, awaitKey);
            } else if (c.handle) x = { ...x, handles: x.handles.with(r, { ...x.handles[r], [c.handle]: key }) };
            else {
              const wk = waitCollKey([seq]);
              x = this.push(x, r, cs, wk);
            }
            return adv(x, get);
          },
          describe: (s) => `${who}: ${c.kind} #${(s.colls[r][c.group] ?? 0) + 1}${c.buf ? ` of ${c.buf}` : ''} on group ${c.group} (nccl${blocking ? ': the CPU blocks until it is done' : c.handle ? `, async, handle ${c.handle}` : `: stream ${cs} waits for it, the CPU goes on`})`,
        });
        return self2;
      })
      .with({ op: 'cpuRead' }, (c) => {
        this.checkBuf(c.buf, who);
        if (c.into) this.checkVar(r, c.into, who);
        return self({
          action: 'cpuRead',
          enabled: () => true,
          exec: (s) => {
            let x = this.cpuAccess(s, r, c.buf, 'r', t);
            const [y, v] = this.readBuf(x, r, c.buf, c.expect, `${t} (CPU)`);
            x = y;
            if (c.into) x = this.setVar(x, r, c.into, v);
            return adv(x, get);
          },
          describe: (s) => `${who}: read ${c.buf} on the CPU (${this.valueOf(s, r, c.buf) ?? 'never written'})${c.into ? ` into ${c.into}` : ''}`,
        });
      })
      .with({ op: 'cpuWrite' }, (c) => {
        this.checkBuf(c.buf, who);
        return self({
          action: 'cpuWrite',
          enabled: () => true,
          exec: (s) => adv(this.writeBuf(this.cpuAccess(s, r, c.buf, 'w', t), r, c.buf, c.value), get),
          describe: () => `${who}: write ${c.buf} = ${c.value} on the CPU`,
        });
      })
      .with({ op: 'set' }, (v) => {
        this.checkVar(r, v.name, who);
        const val = (s: S) => (typeof v.value === 'function' ? (v.value as (c: Ctx<U>) => Data)(this.ctx(s, r, t)) : v.value);
        return self({
          action: 'set',
          enabled: () => true,
          exec: (s) => adv(this.setVar(s, r, v.name, val(s)), get),
          describe: (s) => `${who}: ${v.name} = ${JSON.stringify(val(s))}`,
        });
      })
      .with({ op: 'until' }, (u) => {
        return self({
          action: 'until',
          enabled: (s) => u.cond(this.ctx(s, r, t)),
          exec: (s) => adv(s, get),
          describe: () => `${who}: stops polling: ${u.what}`,
          blocked: (s) => `${who}: polls forever until ${u.what} (${this.varsText(s, r)})`,
        });
      })
      .with({ op: 'when' }, (w) => {
        return self({
          action: 'if',
          enabled: () => true,
          exec: (s) => this.setPc(s, r, t, w.cond(this.ctx(s, r, t)) ? get().next : get().nextElse),
          describe: (s) => `${who}: checks ${w.what}: ${w.cond(this.ctx(s, r, t)) ? 'yes' : 'no'}`,
        });
      })
      .with({ op: 'start' }, (x) => {
        return self({
          action: 'start',
          enabled: () => true,
          exec: (s) => {
            const y = adv(s, get);
            if (s.threads[r][x.thread] !== 'new') return y;
            const prog = this.progs[r].get(x.thread)!;
            return this.setPc(y, r, x.thread, prog.length > 0 ? 0 : 'done');
          },
          describe: () => `${who}: start thread ${x.thread}`,
        });
      })
      .with({ op: 'join' }, (x) => {
        const fin = (s: S) => s.threads[r][x.thread] === 'done' || s.threads[r][x.thread] === 'raised';
        return self({
          action: 'join',
          enabled: fin,
          exec: (s) => adv(s, get),
          describe: (s) => `${who}: join thread ${x.thread} (it ${s.threads[r][x.thread] === 'raised' ? 'ended by an exception' : 'finished'})`,
          blocked: (s) => `${who}: blocked joining thread ${x.thread} (at ${this.threadText(s, r, x.thread)})`,
        });
      })
      .with({ op: 'raise' }, (x) => {
        return self({
          action: '',
          enabled: () => false,
          exec: (s) => s,
          describe: () => `${who}: raise (${x.reason})`,
        });
      })
      .with({ op: 'step' }, (c) => {
        if (KIT_ACTIONS.has(c.name) && c.name !== 'continue') throw new ModelError(`${this.where}: custom step name '${c.name}' is a kit action name; choose another`);
        return self({
          action: c.name,
          enabled: (s) => (c.guard ? c.guard(this.ctx(s, r, t)) : true),
          exec: (s) => adv(this.applyUpdate(s, r, c.effect(this.ctx(s, r, t))), get),
          describe: (s) => (c.describe ? `${who}: ${c.describe(this.ctx(s, r, t))}` : c.name === 'continue' ? `${who}: goes on (no exception)` : `${who}: ${c.name}`),
          blocked: (s) => `${who}: blocked at ${c.name}${c.describe ? ` (${c.describe(this.ctx(s, r, t))})` : ''}`,
        });
      })
      .with({ op: 'mayRaise' }, { op: 'tryFinally' }, { op: 'tryCatch' }, () => {
        throw new Error('internal: structured statement compiled as simple');
      })
      .exhaustive();
    return me;
  }

  private afterAwait(ins: Instr): Pc {
    // The instruction after a synchronize is its await; skipping it means going to the await's next.
    const [r, t] = this.ownerOf.get(ins)!;
    const prog = this.progs[r].get(t)!;
    const i = prog.indexOf(ins);
    return prog[i + 1].next;
  }

  private readonly ownerOf = new Map<Instr, [number, string]>();

  private addUse(s: S, r: number, buf: string, q: string): S {
    const b = this.blockOf(s, r, buf);
    if (b < 0) return s;
    const blk = s.blocks[r][b];
    if (blk.owner === null || blk.uses.includes(q)) return s;
    return this.setBlock(s, r, b, { ...blk, uses: [...blk.uses, q] });
  }

  /** The release markers a free (or a re-allocation) of `buf` by statement `id` queues: keyed by block and queue. */
  private releaseSite(r: number, id: number, buf: string): (args: readonly Arg[]) => string {
    return this.site(r, id, 'release', ([b0, u0]) => {
      const b = b0 as number;
      const u = (u0 as { queue: string }).queue;
      return { key: `release block ${b}@${u}#${id}`, item: () => ({ kind: 'rel', block: b, what: `the release point of block ${b} (${buf}) on ${u}` }) };
    });
  }

  private doFree(s: S, r: number, buf: string, rel: (args: readonly Arg[]) => string, who: string): S {
    const b = s.buffers[r][buf];
    if (b < 0) return this.fault(s, r, 'no-use-after-free', `${who} frees ${buf}, which is not allocated`);
    const blk = s.blocks[r][b];
    let x = s;
    for (const u of blk.uses) {
      if (u === blk.owner || x.streams[r][u].length === 0) continue;
      const key = rel([b, { queue: u }]);
      x = this.push(x, r, u, key);
    }
    x = this.setBlock(x, r, b, { ...blk, buf: null, uses: [] });
    return { ...x, buffers: x.buffers.with(r, { ...x.buffers[r], [buf]: -1 }) };
  }

  // ---- explanations ---------------------------------------------------------------------------------------

  private varsText(s: S, r: number): string {
    const v = s.vars[r];
    const ks = Object.keys(v).sort();
    return ks.length ? ks.map((k) => `${k} = ${JSON.stringify(v[k])}`).join(', ') : 'no variables';
  }

  private threadText(s: S, r: number, t: string): string {
    const pc = s.threads[r][t];
    if (pc === 'new') return 'not started';
    if (pc === 'done') return 'finished';
    if (pc === 'raised') return 'ended by an exception';
    return stmtText(this.progs[r].get(t)![pc].stmt);
  }

  private glooPeers(s: S, r: number, g: string): string {
    return this.groups[g]
      .filter((p) => p !== r)
      .map((p) => {
        const at = this.glooAt(s, p, g);
        if (at) return `rank ${p} is in ${(at[1].stmt as { kind: string }).kind} #${(s.colls[p][g] ?? 0) + 1}`;
        return `rank ${p} is not in a collective of ${g} (${[...this.progs[p].keys()].map((t) => `${t}: ${this.threadText(s, p, t)}`).join('; ')})`;
      })
      .join(', ');
  }

  private peerNote(s: S, r: number, key: string): string {
    const it = this.itemOpt(r, key);
    if (!it) return '';
    if (it.kind === 'send' || it.kind === 'recv') {
      const other = twinQueue(p2pQueue(it.backend, it.kind, it.peer), r)!;
      const q = s.streams[it.peer][other] ?? [];
      const head = q[0];
      if (head === undefined) return `rank ${it.peer} has posted no matching ${it.kind === 'send' ? 'receive' : 'send'}`;
      return `rank ${it.peer}'s next op with rank ${r} is ${this.describeKey(it.peer, head)}`;
    }
    if (it.kind === 'batch') {
      const head = s.streams[it.peer][`p2p:${r}`]?.[0];
      if (head === undefined) return `rank ${it.peer} has posted no matching batch`;
      return `rank ${it.peer}'s next op with rank ${r} is ${this.describeKey(it.peer, head)}`;
    }
    if (it.kind === 'multi') return it.parts.map((p) => this.peerNote(s, r, p)).filter(Boolean).join('; ');
    if (it.kind === 'coll') {
      return `peers: ${this.groups[it.group]
        .filter((p) => p !== r)
        .map((p) => {
          const head = s.streams[p][`nccl:${it.group}`]?.[0];
          const hi = head !== undefined ? this.itemOpt(p, head) : undefined;
          if (hi?.kind === 'coll') return `rank ${p} is in ${hi.coll} #${hi.seq}`;
          if (hi?.kind === 'wait') return `rank ${p}'s next collective waits for ${hi.what}`;
          return `rank ${p} has not issued collective #${it.seq} (${[...this.progs[p].keys()].map((t) => `${t}: ${this.threadText(s, p, t)}`).join('; ')})`;
        })
        .join(', ')}`;
    }
    return '';
  }

  private explain(s: S): string[] {
    const lines: string[] = [];
    for (let r = 0; r < this.N; r++) {
      for (const [t, prog] of this.progs[r]) {
        const pc = s.threads[r][t];
        if (typeof pc !== 'number') continue;
        lines.push(prog[pc].blocked(s));
      }
      const qs = s.streams[r];
      for (const q in qs) {
        const head = qs[q][0];
        if (head === undefined) continue;
        const it = this.item(r, head);
        const more = qs[q].length > 1 ? ` (${qs[q].length - 1} more queued behind)` : '';
        if (it.kind === 'wait') lines.push(`rank ${r} stream ${q}: waits for ${it.what} (${this.waitingOn(s, r, it.target)})${more}`);
        else if (it.kind === 'send' || it.kind === 'recv' || it.kind === 'batch') lines.push(`rank ${r} stream ${q}: ${this.describeKey(r, head)} cannot complete: ${this.peerNote(s, r, head)}${more}`);
        else if (it.kind === 'coll') lines.push(`rank ${r} stream ${q}: blocked in ${it.coll} #${it.seq} (${this.peerNote(s, r, head)})${more}`);
        else lines.push(`rank ${r} stream ${q}: ${this.describeKey(r, head)} is next${more}`);
      }
    }
    return lines;
  }

  // ---- symmetry -------------------------------------------------------------------------------------------

  /**
   * A declared symmetry needs every rank to run the same program (the same statements, in the same order, up
   * to closures, which the explorer samples), every group it uses to hold every rank, and, with 3 ranks or more, no
   * statement naming a specific peer (renaming two other ranks would change which peer it names).
   */
  private checkInterchangeable(decl: readonly { readonly [t: string]: ThreadSpec<U> }[]): void {
    const refuse = (why: string) => {
      throw new ModelError(
        `${this.where}: \`symmetry\` is declared but ranks are not interchangeable: ${why}. Declare symmetry only when every rank runs the same program (a program that depends on the rank number is not symmetric), or leave it out`,
      );
    };
    for (const g of this.usedGroups) {
      const members = this.groups[g];
      if (new Set(members).size !== this.N) refuse(`group '${g}' holds ranks ${members.join(', ')}, not every rank`);
    }
    const shape = (ins: Instr) =>
      JSON.stringify({ a: ins.action, n: ins.next, e: ins.nextElse, h: ins.handler, x: ins.raisable !== undefined, s: stmtShape(ins.stmt) }, (_k, v) =>
        typeof v === 'function' ? '<fn>' : v,
      );
    const threads0 = Object.keys(decl[0]);
    for (let r = 0; r < this.N; r++) {
      for (const [t, prog] of this.progs[r]) {
        for (let i = 0; i < prog.length; i++) {
          const st = prog[i].stmt;
          if (this.N > 2 && (st.op === 'p2p' || st.op === 'batch')) {
            refuse(`rank ${r} ${t}'s statement ${i} (${stmtText(st)}) names a specific peer; with ${this.N} ranks, renaming two other ranks changes which peer it names`);
          }
        }
      }
      if (r === 0) continue;
      const threads = Object.keys(decl[r]);
      if (threads.join('\u0000') !== threads0.join('\u0000')) refuse(`rank ${r} has threads ${threads.join(', ')}, rank 0 has ${threads0.join(', ')}`);
      for (const t of threads0) {
        if (this.autoStart[r].get(t) !== this.autoStart[0].get(t) || this.threadStream[r].get(t) !== this.threadStream[0].get(t)) {
          refuse(`thread ${t} of rank ${r} is declared otherwise than rank 0's (autoStart or stream)`);
        }
        const a = this.progs[0].get(t)!;
        const b = this.progs[r].get(t)!;
        for (let i = 0; i < Math.max(a.length, b.length); i++) {
          if (i >= a.length || i >= b.length) {
            refuse(`rank ${r} ${t} has ${b.length} statements, rank 0's has ${a.length}`);
          }
          if (shape(a[i]) !== shape(b[i])) {
            refuse(`statement ${i} of ${t} is '${stmtText(b[i].stmt)}' on rank ${r} but '${stmtText(a[i].stmt)}' on rank 0`);
          }
        }
      }
    }
  }

  /** The explorer's view of the declared symmetry: the kit renames its own state, the hooks the protocol's. */
  private symmetry(h: GpuSymmetry<U>): Symmetry<S> {
    return {
      size: this.N,
      permute: (s, perm) => this.permute(s, perm, h),
      // With point-to-point queues (2 ranks) keys name the peer: both orders are tried instead.
      signature: (s, r) =>
        this.peerful
          ? 0
          : ([s.threads[r], s.streams[r], s.events[r], s.buffers[r], s.blocks[r], s.handles[r], s.colls[r], h.signature ? h.signature(s as GpuState<U>, r) : s.vars[r]] as unknown as Data),
      ...(h.pair ? { pair: (s: S, r: number, p: number) => h.pair!(s as GpuState<U>, r, p) } : {}),
      swappable: (s, a, b) => (this.peerful ? undefined : this.swappable(s, a, b, h)),
    };
  }

  /**
   * Whether swapping ranks a and b leaves s unchanged, for two ranks with equal signatures: their own records
   * are then equal (the signature holds them), so only the protocol's state can tell them apart.
   */
  private swappable(s: S, a: number, b: number, h: GpuSymmetry<U>): boolean {
    if (!h.permuteVars && !h.permuteUser && !h.signature) return true;
    const swap = this.swapOf(a, b);
    if (h.permuteUser && !equalData(h.permuteUser(s.user as U, swap) as Data, s.user as Data)) return false;
    // Every other rank's variables first (usually one list entry each), then a's against b's.
    for (let r = 0; r < this.N; r++) {
      if (r !== a && r !== b && !this.varsMoveTo(s.vars[r], swap, s.vars[r], h)) return false;
    }
    return this.varsMoveTo(s.vars[a], swap, s.vars[b], h) && this.varsMoveTo(s.vars[b], swap, s.vars[a], h);
  }

  /** The permutation that swaps ranks a and b (one array per pair, made once). */
  private swapOf(a: number, b: number): readonly number[] {
    const k = a * this.N + b;
    let swap = this.swaps.get(k);
    if (swap === undefined) this.swaps.set(k, (swap = Array.from({ length: this.N }, (_, i) => (i === a ? b : i === b ? a : i))));
    return swap;
  }

  private readonly swaps = new Map<number, readonly number[]>();

  /**
   * Whether one rank's variables `v`, renamed by the swap of a and b, equal `w`. Not cached: a cache keyed by
   * object (WeakMaps) cost more in the collector than it saved, successors sharing few records after renaming.
   */
  private varsMoveTo(v: Vars, swap: readonly number[], w: Vars, h: GpuSymmetry<U>): boolean {
    if (!h.permuteVars) return v === w || equalData(v as Data, w as Data);
    return equalData(h.permuteVars(v, swap) as Data, w as Data);
  }

  /** The state with every rank r renamed to perm[r]. */
  private permute(s: S, perm: readonly number[], h: GpuSymmetry<U>): S {
    const n = this.N;
    const threads = new Array<S['threads'][number]>(n);
    const streams = new Array<S['streams'][number]>(n);
    const events = new Array<S['events'][number]>(n);
    const buffers = new Array<S['buffers'][number]>(n);
    const blocks = new Array<S['blocks'][number]>(n);
    const vars = new Array<Vars>(n);
    const handles = new Array<S['handles'][number]>(n);
    const colls = new Array<S['colls'][number]>(n);
    for (let r = 0; r < n; r++) {
      const r2 = perm[r];
      threads[r2] = s.threads[r];
      buffers[r2] = s.buffers[r];
      colls[r2] = s.colls[r];
      vars[r2] = h.permuteVars ? h.permuteVars(s.vars[r], perm) : s.vars[r];
      if (!this.peerful) {
        // No key or queue name holds a rank: the rank's records move as they are (a key another rank's
        // statement made is looked up through that statement on this rank, see `adopt`).
        streams[r2] = s.streams[r];
        events[r2] = s.events[r];
        blocks[r2] = s.blocks[r];
        handles[r2] = s.handles[r];
        continue;
      }
      const key = (k: string) => this.renameKey(r, k, perm);
      const qs: { [q: string]: readonly string[] } = {};
      for (const q in s.streams[r]) qs[renameQueue(q, perm)] = s.streams[r][q].map(key);
      streams[r2] = qs;
      events[r2] = mapValues(s.events[r], (k) => (k === null ? null : key(k)));
      handles[r2] = mapValues(s.handles[r], (k) => (k === null || k === 'waited' ? k : key(k)));
      blocks[r2] = s.blocks[r].map((b) => ({
        ...b,
        pending: b.pending.map((e) => {
          const x = this.entry(e);
          return `${x.mode} ${x.buf} ${key(x.key)}`;
        }),
        uses: b.uses.map((q) => renameQueue(q, perm)),
      }));
    }
    // A fault's sentence names ranks in free text: the representative keeps only the property (the
    // counterexample is replayed on real ranks, with its sentence).
    const faults = new Array<string | null>(n);
    s.faults.forEach((f, r) => (faults[perm[r]] = f === null ? null : `${f.slice(0, f.indexOf(': '))}: ${RENAMED_FAULT}`));
    const user = h.permuteUser ? h.permuteUser(s.user as U, perm) : s.user;
    return { threads, streams, events, buffers, blocks, vars, handles, colls, faults, user };
  }

  // ---- building the system --------------------------------------------------------------------------------

  build(): GpuSystem<U> {
    const spec = this.spec;
    const threadNames: string[] = [];
    const decl: { [t: string]: ThreadSpec<U> }[] = [];
    for (let r = 0; r < this.N; r++) {
      const v = typeof spec.vars === 'function' ? spec.vars(r) : (spec.vars ?? {});
      this.varsInit.push(v);
      const ts = spec.threads(r);
      const norm: { [t: string]: ThreadSpec<U> } = {};
      for (const [t, x] of Object.entries(ts)) {
        norm[t] = Array.isArray(x) ? { body: x as Body<U> } : (x as ThreadSpec<U>);
        if (!threadNames.includes(t)) threadNames.push(t);
      }
      decl.push(norm);
      this.progs.push(new Map());
      this.threadStream.push(new Map());
      this.autoStart.push(new Map());
      this.commQueues.push(new Set());
    }
    for (let r = 0; r < this.N; r++) {
      for (const [t, ts] of Object.entries(decl[r])) {
        const stream = ts.stream ?? this.streamNames[0];
        this.checkStream(stream, `rank ${r} ${t}`);
        // Register first so start/join can find the program while compiling.
        this.progs[r].set(t, []);
        this.autoStart[r].set(t, ts.autoStart ?? true);
        this.threadStream[r].set(t, stream);
      }
      for (const [t, ts] of Object.entries(decl[r])) {
        const prog = this.compileThread(r, t, flat(ts.body), this.threadStream[r].get(t)!);
        this.progs[r].set(t, prog);
        for (const ins of prog) {
          this.ownerOf.set(ins, [r, t]);
          const st = ins.stmt;
          if ((st.op === 'start' || st.op === 'join') && !this.progs[r].has(st.thread)) {
            throw new ModelError(`${this.where}: rank ${r} ${t} ${st.op}s thread '${st.thread}', not declared for rank ${r}`);
          }
        }
      }
    }
    // A P2P queue on one side needs its twin on the other.
    for (let r = 0; r < this.N; r++) {
      for (const q of [...this.commQueues[r]]) {
        const twin = twinQueue(q, r);
        if (twin) this.commQueues[Number(q.slice(q.indexOf(':') + 1))].add(twin);
      }
    }
    const allQueueNames = new Set<string>(this.streamNames);
    for (const qs of this.commQueues) for (const q of qs) allQueueNames.add(q);
    this.peerful = [...allQueueNames].some((q) => twinQueue(q, 0) !== undefined);
    if (this.sym && this.N > 1) this.checkInterchangeable(decl);

    const init: S = {
      threads: this.progs.map((m, r) => Object.fromEntries([...m].map(([t, p]) => [t, this.autoStart[r].get(t) ? (p.length > 0 ? 0 : 'done') : 'new']))),
      streams: this.progs.map((_, r) => Object.fromEntries([...this.streamNames, ...[...this.commQueues[r]].sort()].map((q) => [q, []]))),
      events: this.progs.map(() => Object.fromEntries([...this.eventNames].map((e) => [e, null]))),
      buffers: this.progs.map(() => Object.fromEntries([...this.allocBufs].map((b) => [b, -1]))),
      blocks: this.progs.map(() => [...this.staticBlock.keys()].map((b, i) => ({ owner: null, buf: b, data: this.staticInit[i], pending: [], uses: [] }))),
      vars: this.varsInit,
      handles: this.progs.map(() => Object.fromEntries([...this.handleNames].map((h) => [h, null]))),
      colls: this.progs.map(() => Object.fromEntries([...this.usedGroups].map((g) => [g, 0]))),
      faults: this.progs.map(() => null),
      user: (spec.user ?? null) as U,
    };

    const act = actionsOf<S>();
    const actions: Action<S>[] = [];
    const ranks = [...Array(this.N).keys()];
    // Thread actions, one per kind of instruction used.
    const byAction = new Map<string, { ranks: Set<number>; threads: Set<string> }>();
    let anyRaise = false;
    for (let r = 0; r < this.N; r++) {
      for (const [t, prog] of this.progs[r]) {
        for (const ins of prog) {
          if (ins.raisable !== undefined) anyRaise = true;
          if (ins.action === '') continue;
          let e = byAction.get(ins.action);
          if (!e) byAction.set(ins.action, (e = { ranks: new Set(), threads: new Set() }));
          e.ranks.add(r);
          e.threads.add(t);
        }
      }
    }
    const cur = (s: S, r: number, t: string): Instr | undefined => {
      const pc = s.threads[r][t];
      return typeof pc === 'number' ? this.progs[r].get(t)![pc] : undefined;
    };
    // Partial-order reduction: an instance (action, rank, thread) reads and writes its thread's pc and what any
    // of the thread's instructions of that action reads and writes; its guard is two conditions, the pc at such
    // an instruction (only the thread's own steps, a start, a raise or a gloo collective move it) and the
    // instruction's own enabling condition.
    const footprints = new Map<string, { reads: Set<string>; writes: Set<string>; guard: Set<string> }>();
    const fpOf = (name: string, r: number, t: string) => {
      const k = `${name}\u0000${r}\u0000${t}`;
      let f = footprints.get(k);
      if (!f) {
        const pc = P.th(r, t);
        f = { reads: new Set([pc]), writes: new Set(this.progs[r].has(t) ? [pc] : []), guard: new Set() };
        for (const ins of this.progs[r].get(t) ?? []) {
          if (ins.action !== name) continue;
          ins.reads.forEach((x) => f!.reads.add(x));
          ins.guardReads.forEach((x) => f!.reads.add(x));
          ins.writes.forEach((x) => f!.writes.add(x));
          ins.guardReads.forEach((x) => f!.guard.add(x));
        }
        footprints.set(k, f);
      }
      return f;
    };
    // Necessary enabling sets that depend on the state: a thread's pc moves only by the step of its current
    // instruction (or a raise there, or the gloo collective it stands at), or, before it starts, by a start.
    // Programs only jump forward, so an action none of whose instructions lies ahead can never run again.
    // Instance ids by action and its rank and thread (or its group): looked up for every disabled action the
    // reduction meets, so keyed by a plain string (JSON of the params cost 5% of a symmetric 8-rank search).
    const ids = new Map<string, number>();
    const idKey = (name: string, who: string | number, thread: string) => `${name}\u0000${who}\u0000${thread}`;
    const idOf = (name: string, params: { rank: number; thread: string } | { group: string }) =>
      ids.get('group' in params ? idKey(name, params.group, '') : idKey(name, params.rank, params.thread));
    const ahead = new Map<string, Set<string>[]>();
    for (let r = 0; r < this.N; r++) {
      for (const [t, prog] of this.progs[r]) {
        const sets: Set<string>[] = new Array(prog.length + 1);
        sets[prog.length] = new Set();
        for (let k = prog.length - 1; k >= 0; k--) {
          sets[k] = new Set(sets[k + 1]);
          sets[k].add(prog[k].action);
          if (prog[k].raisable !== undefined) sets[k].add('raise');
        }
        ahead.set(`${r}|${t}`, sets);
      }
    }
    // Runs for every disabled step at every state: no closure is made per call (tsx, which runs the CLI, names
    // each one it makes with a defineProperty call, a sixth of eplb's search at 8 ranks when this had one).
    const movers = (s: S, r: number, t: string): number[] => {
      const pc = s.threads[r][t];
      const out: number[] = [];
      if (pc === 'new') {
        for (const t2 of this.progs[r].keys()) pushDefined(out, idOf('start', { rank: r, thread: t2 }));
      } else if (typeof pc === 'number') {
        const ins = this.progs[r].get(t)![pc];
        if (ins.action !== '') pushDefined(out, idOf(ins.action, { rank: r, thread: t }));
        if (ins.raisable !== undefined) pushDefined(out, idOf('raise', { rank: r, thread: t }));
        if (ins.stmt.op === 'collective' && ins.stmt.backend === 'gloo') pushDefined(out, idOf('gloo_collective', { group: ins.stmt.group }));
      }
      return out;
    };
    /** The instances that can bring thread t of rank r to an instruction of `name`: none if no such instruction lies ahead. */
    const toward = (s: S, r: number, t: string, name: string): number[] => {
      const pc = s.threads[r][t];
      if (pc === 'done' || pc === 'raised') return [];
      if (typeof pc === 'number' && !ahead.get(`${r}|${t}`)?.[pc]?.has(name)) return [];
      return movers(s, r, t);
    };
    for (const [name, e] of byAction) {
      actions.push(
        act<{ rank: number; thread: string }>(name, {
          params: { rank: [...e.ranks], thread: [...e.threads] },
          actor: ({ rank, thread }) => `rank ${rank} ${thread}`,
          reads: ({ rank, thread }) => [...fpOf(name, rank, thread).reads],
          writes: ({ rank, thread }) => [...fpOf(name, rank, thread).writes],
          conditions: [
            {
              reads: ({ rank, thread }) => [P.th(rank, thread)],
              holds: (s, { rank, thread }) => cur(s, rank, thread)?.action === name,
              [ENABLERS]: (s: S, { rank, thread }: { rank: number; thread: string }) => (this.progs[rank].has(thread) ? toward(s, rank, thread, name) : []),
            } as Condition<S, { rank: number; thread: string }>,
            { reads: ({ rank, thread }) => [...fpOf(name, rank, thread).guard], holds: (s, { rank, thread }) => cur(s, rank, thread)!.enabled(s) },
          ],
          effect: (s, { rank, thread }) => this.settle(cur(s, rank, thread)!.exec(s), rank),
          describe: ({ rank, thread }, s) => cur(s, rank, thread)!.describe(s),
        }),
      );
    }
    if (anyRaise) {
      actions.push(
        act<{ rank: number; thread: string }>('raise', {
          params: { rank: ranks, thread: threadNames },
          actor: ({ rank, thread }) => `rank ${rank} ${thread}`,
          conditions: [
            {
              reads: ({ rank, thread }) => [P.th(rank, thread)],
              holds: (s, { rank, thread }) => this.progs[rank].has(thread) && cur(s, rank, thread)?.raisable !== undefined,
              [ENABLERS]: (s: S, { rank, thread }: { rank: number; thread: string }) => (this.progs[rank].has(thread) ? toward(s, rank, thread, 'raise') : []),
            } as Condition<S, { rank: number; thread: string }>,
          ],
          reads: ({ rank, thread }) => [P.th(rank, thread)],
          writes: ({ rank, thread }) => (this.progs[rank].has(thread) ? [P.th(rank, thread)] : []),
          effect: (s, { rank, thread }) => this.setPc(s, rank, thread, cur(s, rank, thread)!.handler),
          describe: ({ rank, thread }, s) => {
            const ins = cur(s, rank, thread)!;
            const where = ins.handler === 'raised' ? 'the thread ends; nothing after it runs' : 'cleanup runs';
            return ins.stmt.op === 'raise'
              ? `rank ${rank} ${thread}: raises (${ins.raisable}): ${where}`
              : `rank ${rank} ${thread}: raises (${ins.raisable}) instead of ${stmtText(ins.stmt)}: ${where}`;
          },
        }),
      );
    }
    actions.push(
      act<{ rank: number; stream: string }>('exec', {
        params: { rank: ranks, stream: this.streamNames },
        actor: ({ rank, stream }) => `rank ${rank} stream ${stream}`,
        conditions: [{ reads: ({ rank, stream }) => [P.st(rank, stream)], holds: (s, { rank, stream }) => this.canExec(s, rank, stream) }],
        // The race check names the queue of each earlier op, and settling after the op may pop markers anywhere on the rank.
        reads: ({ rank }) => [P.st(rank), P.blocks(rank), P.fault(rank)],
        writes: ({ rank }) => [P.st(rank), P.blocks(rank), P.fault(rank)],
        effect: (s, { rank, stream }) => this.runOp(s, rank, stream, s.streams[rank][stream][0]),
        describe: ({ rank, stream }, s) => {
          const op = this.item(rank, s.streams[rank][stream][0]) as OpItem;
          return `rank ${rank} stream ${stream}: runs ${op.name}${ioText(op.reads.map((x) => x.buf), op.writes)}`;
        },
      }),
    );
    const pairs: { from: number; to: number; backend: string }[] = [];
    for (let r = 0; r < this.N; r++) {
      for (const q of this.commQueues[r]) {
        const m = /^(p2p|gloo-send):(\d+)$/.exec(q);
        if (m) pairs.push({ from: r, to: Number(m[2]), backend: m[1] === 'p2p' ? 'nccl' : 'gloo' });
      }
    }
    if (pairs.length > 0) {
      const froms = [...new Set(pairs.map((p) => p.from))];
      const tos = [...new Set(pairs.map((p) => p.to))];
      const backends = [...new Set(pairs.map((p) => p.backend))];
      actions.push(
        act<{ from: number; to: number; backend: string }>('transfer', {
          params: { from: froms, to: tos, backend: backends },
          actor: ({ from, to, backend }) => `${backend} rank ${from} -> rank ${to}`,
          conditions: [
            {
              reads: ({ from, to, backend }) => {
                const [a, b] = this.transferQueues(from, to, backend);
                return from === to ? [] : [P.st(from, a), P.st(to, b)];
              },
              holds: (s, { from, to, backend }) =>
                from !== to && s.streams[from][this.transferQueues(from, to, backend)[0]] !== undefined && this.transferHeads(s, from, to, backend) !== undefined,
            },
          ],
          reads: ({ from, to }) => (from === to ? [] : [P.st(from), P.st(to), P.blocks(from), P.blocks(to), P.fault(from), P.fault(to)]),
          writes: ({ from, to }) => (from === to ? [] : [P.st(from), P.st(to), P.blocks(from), P.blocks(to), P.fault(from), P.fault(to)]),
          effect: (s, { from, to, backend }) => this.runTransfer(s, from, to, backend),
          describe: ({ from, to, backend }, s) => {
            const [sk, rk] = this.transferHeads(s, from, to, backend)!;
            const si = this.item(from, sk);
            const ri = this.item(to, rk);
            if (si.kind === 'batch' && ri.kind === 'batch') {
              const dir = (a: number, b: number, sends: readonly string[], recvs: readonly string[]) => sends.map((x, i) => `rank ${a}'s ${x} -> rank ${b}'s ${recvs[i]}`);
              return `ranks ${from} and ${to} exchange their batches (nccl): ${[...dir(from, to, si.sends, ri.recvs), ...dir(to, from, ri.sends, si.recvs)].join(', ')}`;
            }
            const sd = si as P2PItem;
            const rd = ri as P2PItem;
            return `rank ${from} sends ${sd.buf} (${this.valueOf(s, from, sd.buf) ?? 'never written'}) into rank ${to}'s ${rd.buf} (${sd.backend})`;
          },
        }),
      );
    }
    const ncclGroups = [...this.usedGroups].filter((g) => this.progs.some((_, r) => this.commQueues[r].has(`nccl:${g}`)));
    if (ncclGroups.length > 0) {
      actions.push(
        act<{ group: string }>('collective', {
          params: { group: ncclGroups },
          actor: ({ group }) => `group ${group}`,
          // Per member: a collective at the head of its queue of the group; then: the same kind on every member.
          conditions: [
            ...this.groupsMembers(ncclGroups).map((m) => ({
              reads: ({ group }: { group: string }) => (this.groups[group].includes(m) ? [P.st(m, `nccl:${group}`)] : []),
              holds: (s: S, { group }: { group: string }) => {
                if (!this.groups[group].includes(m)) return true;
                const k = s.streams[m][`nccl:${group}`]?.[0];
                return k !== undefined && this.item(m, k).kind === 'coll';
              },
            })),
            { reads: ({ group }) => this.groups[group].map((m) => P.st(m, `nccl:${group}`)), holds: (s, { group }) => this.collHeads(s, group) !== undefined },
          ],
          reads: ({ group }) => this.groups[group].flatMap((m) => [P.st(m), P.blocks(m), P.fault(m)]),
          writes: ({ group }) => this.groups[group].flatMap((m) => [P.st(m), P.blocks(m), P.fault(m)]),
          effect: (s, { group }) => this.runCollective(s, group),
          describe: ({ group }, s) => {
            const it = this.item(this.groups[group][0], this.collHeads(s, group)![0]) as CollItem;
            return `group ${group} (ranks ${this.groups[group].join(', ')}): ${it.coll} #${it.seq}${it.buf ? ` of ${it.buf}` : ''} runs on every rank`;
          },
        }),
      );
    }
    const glooGroups = [...this.usedGroups].filter((g) =>
      this.progs.some((m) => [...m.values()].some((p) => p.some((i) => i.stmt.op === 'collective' && i.stmt.backend === 'gloo' && i.stmt.group === g))),
    );
    if (glooGroups.length > 0) {
      actions.push(
        act<{ group: string }>('gloo_collective', {
          params: { group: glooGroups },
          actor: ({ group }) => `group ${group}`,
          // Per member: one of its threads at a gloo collective of the group; then: the same kind on every member.
          conditions: [
            ...this.groupsMembers(glooGroups).map(
              (m) =>
                ({
                  reads: ({ group }: { group: string }) => (this.groups[group].includes(m) ? this.glooThreads(m, group).map((t) => P.th(m, t)) : []),
                  holds: (s: S, { group }: { group: string }) => !this.groups[group].includes(m) || this.glooAt(s, m, group) !== undefined,
                  [ENABLERS]: (s: S, { group }: { group: string }) => this.glooThreads(m, group).flatMap((t) => toward(s, m, t, '')),
                  // Whether m stands at the collective means the same whatever the other members do.
                  standalone: true,
                }) as Condition<S, { group: string }>,
            ),
            { reads: ({ group }) => this.groups[group].flatMap((m) => this.glooThreads(m, group).map((t) => P.th(m, t))), holds: (s, { group }) => this.glooReady(s, group) },
          ],
          reads: ({ group }) =>
            this.groups[group].flatMap((m) => [...this.glooThreads(m, group).map((t) => P.th(m, t)), P.coll(m, group), P.bufs(m), P.blocks(m), P.st(m), P.fault(m)]),
          writes: ({ group }) => this.groups[group].flatMap((m) => [...this.glooThreads(m, group).map((t) => P.th(m, t)), P.coll(m, group), P.blocks(m), P.fault(m)]),
          effect: (s, { group }) => this.runGloo(s, group),
          describe: ({ group }, s) => {
            const [, ins] = this.glooAt(s, this.groups[group][0], group)!;
            const st = ins.stmt as Extract<Stmt, { op: 'collective' }>;
            return `group ${group} (ranks ${this.groups[group].join(', ')}): gloo ${st.kind} #${(s.colls[this.groups[group][0]][group] ?? 0) + 1}${st.buf ? ` of ${st.buf}` : ''} runs; every rank's thread goes on`;
          },
        }),
      );
    }
    actions.push(...((spec.actions ?? []) as Action<S>[]));

    const invariants: Record<string, (s: S) => boolean> = {};
    for (const p of KIT_PROPERTIES) {
      if (!this.checks[p]) continue;
      const prefix = `${p}: `;
      // One conjunct per rank, each reading only that rank's fault; every step that may set it declares it
      // written, so its writers are pairwise dependent and partial-order reduction needs no step to be visible.
      invariants[p] = observing(
        ranks.map((r) => [P.fault(r)]),
        (s: S) => s.faults.every((f) => f === null || !f.startsWith(prefix)),
      );
    }
    Object.assign(invariants, spec.invariants ?? {});

    const userTerminal = spec.terminal;
    const system = defineSystem<S>({
      name: spec.name,
      init,
      actions,
      invariants,
      ...(spec.actionProperties ? { actionProperties: spec.actionProperties as SystemActionProps } : {}),
      ...(spec.observes ? { observes: spec.observes } : {}),
      ...(spec.reachable ? { reachable: spec.reachable as Record<string, (s: S) => boolean> } : {}),
      ...(spec.liveness ? { liveness: spec.liveness as SystemSpec<S>['liveness'] } : {}),
      ...(spec.fairness ? { fairness: spec.fairness } : {}),
      terminal: (s) => {
        for (let r = 0; r < this.N; r++) {
          const th = s.threads[r];
          for (const t in th) if (typeof th[t] === 'number') return false;
          const qs = s.streams[r];
          for (const q in qs) if (qs[q].length > 0) return false;
        }
        return userTerminal ? userTerminal(s as GpuState<U>) : true;
      },
      explainStuck: (s) => [...this.explain(s), ...(spec.explainStuck ? spec.explainStuck(s as GpuState<U>) : [])],
      ...(this.sym && this.N > 1 ? { symmetry: this.symmetry(this.sym) } : {}),
    });
    for (const inst of system.instances) {
      const p = inst.params as { rank?: number; thread?: string; group?: string };
      if (typeof p.group === 'string') ids.set(idKey(inst.action.name, p.group, ''), inst.id);
      else if (typeof p.rank === 'number' && typeof p.thread === 'string') ids.set(idKey(inst.action.name, p.rank, p.thread), inst.id);
    }
    return Object.assign(system, {
      symmetry: { ranks: this.N },
      layout: { ranks: this.N, threads: threadNames, streams: [...allQueueNames] },
    }) as unknown as GpuSystem<U>;
  }
}

/** The sentence a fault keeps in a symmetry representative (see `permute`). */
/** Adds x to out unless it is undefined (movers' instance ids: a step a thread never takes has none). */
function pushDefined(out: number[], x: number | undefined): void {
  if (x !== undefined) out.push(x);
}

const RENAMED_FAULT = '(a state renamed by symmetry: the counterexample replays it on its real ranks)';

/** A queue name with the peer rank it names renamed by perm. */
function renameQueue(q: string, perm: readonly number[]): string {
  const m = /^(p2p|gloo-send|gloo-recv):(\d+)$/.exec(q);
  return m ? `${m[1]}:${perm[Number(m[2])]}` : q;
}

function mapValues<T, V>(o: { readonly [k: string]: T }, f: (v: T) => V): { [k: string]: V } {
  const out: { [k: string]: V } = {};
  for (const k in o) out[k] = f(o[k]);
  return out;
}

/** A statement's structure, for comparing two ranks' programs: descriptions left out, peers as 'peer'. */
function stmtShape(st: Stmt): unknown {
  switch (st.op) {
    case 'p2p':
      return { ...st, peer: 'peer' };
    case 'batch':
      return { ...st, ops: st.ops.map((o) => ({ ...o, peer: 'peer' })) };
    case 'until':
      return { op: st.op };
    case 'set':
      return { op: st.op, name: st.name, value: typeof st.value === 'function' ? '<fn>' : st.value };
    case 'when':
      return { op: st.op, then: st.then.map(stmtShape), else: st.else.map(stmtShape) };
    case 'tryFinally':
      return { op: st.op, body: st.body.map(stmtShape), finally: st.finally.map(stmtShape) };
    case 'tryCatch':
      return { op: st.op, body: st.body.map(stmtShape), handler: st.handler.map(stmtShape) };
    case 'raise':
    case 'mayRaise':
      return { op: st.op };
    case 'step':
      return { op: st.op, name: st.name };
    default:
      return st;
  }
}

type SystemActionProps = { readonly [name: string]: (before: S, step: StepLabel, after: S) => boolean };

function dataValue(data: string | null, buf: string): string | null {
  if (data === null) return null;
  const i = data.indexOf('=');
  return data.slice(0, i) === buf ? data.slice(i + 1) : null;
}

function ioText(reads: readonly string[], writes: readonly string[]): string {
  const parts: string[] = [];
  if (reads.length) parts.push(`reads ${reads.join(', ')}`);
  if (writes.length) parts.push(`writes ${writes.join(', ')}`);
  return parts.length ? ` (${parts.join('; ')})` : '';
}

/** A statement as a short phrase, for explanations. */
export function stmtText(st: Stmt): string {
  return match(st)
    .with({ op: 'launch' }, (l) => `launch ${l.name} on stream ${l.stream}`)
    .with({ op: 'record' }, (x) => `record event ${x.event} on stream ${x.stream}`)
    .with({ op: 'waitEvent' }, (x) => `stream ${x.stream} waits event ${x.event}`)
    .with({ op: 'waitStream' }, (x) => `stream ${x.stream} waits stream ${x.other}`)
    .with({ op: 'syncStream' }, (x) => `stream ${x.stream}.synchronize()`)
    .with({ op: 'syncEvent' }, (x) => `event ${x.event}.synchronize()`)
    .with({ op: 'syncDevice' }, () => `torch.cuda.synchronize()`)
    .with({ op: 'alloc' }, (x) => `allocate ${x.buf} on stream ${x.stream}`)
    .with({ op: 'free' }, (x) => `free ${x.buf}`)
    .with({ op: 'recordStream' }, (x) => `${x.buf}.record_stream(${x.stream})`)
    .with({ op: 'p2p' }, (x) => (x.dir === 'send' ? `isend ${x.buf} to rank ${x.peer}` : `irecv ${x.buf} from rank ${x.peer}`))
    .with({ op: 'batch' }, (x) => `batch_isend_irecv(${x.ops.map((p) => stmtText(p)).join(', ')})`)
    .with({ op: 'wait' }, (x) => `${x.handle}.wait()`)
    .with({ op: 'collective' }, (x) => `${x.kind}${x.buf ? ` of ${x.buf}` : ''} on group ${x.group}`)
    .with({ op: 'cpuRead' }, (x) => `read ${x.buf} on the CPU`)
    .with({ op: 'cpuWrite' }, (x) => `write ${x.buf} on the CPU`)
    .with({ op: 'set' }, (x) => `set ${x.name}`)
    .with({ op: 'until' }, (x) => `poll until ${x.what}`)
    .with({ op: 'when' }, (x) => `if ${x.what}`)
    .with({ op: 'start' }, (x) => `start thread ${x.thread}`)
    .with({ op: 'join' }, (x) => `join thread ${x.thread}`)
    .with({ op: 'raise' }, (x) => `raise (${x.reason})`)
    .with({ op: 'mayRaise' }, (x) => `may raise (${x.reason})`)
    .with({ op: 'tryFinally' }, () => `try/finally`)
    .with({ op: 'tryCatch' }, () => `try/except`)
    .with({ op: 'step' }, (x) => x.name)
    .exhaustive();
}
