/** The state the GPU kit keeps, the context conditions and custom steps see, and the system spec. */
import type { Data } from '../data.ts';
import type { StepLabel } from '../system.ts';
import type { Body } from './stmts.ts';

/** A CPU thread's position: an instruction index, or not started / finished / ended by an exception. */
export type Pc = number | 'new' | 'done' | 'raised';

/**
 * One memory block of a rank. `owner`: the stream it was allocated on (null for a preallocated buffer);
 * `buf`: the buffer now living in it (null when free); `data`: its contents as `buffer=value` (null: never
 * written); `pending`: the queued ops that may still touch it, in issue order, as `r:`/`w:`/`rw:` + op key;
 * `uses`: streams named by `record_stream` (and NCCL's internal streams) since allocation.
 */
export interface Block {
  readonly owner: string | null;
  readonly buf: string | null;
  readonly data: string | null;
  readonly pending: readonly string[];
  readonly uses: readonly string[];
}

export type Vars = { readonly [name: string]: Data };

/** Per-rank records are arrays indexed by rank; inside, objects keyed by the names the model declared. */
export interface GpuState<U = null> {
  /** Per rank, per thread: its pc. */
  readonly threads: readonly { readonly [thread: string]: Pc }[];
  /** Per rank, per stream (compute streams, then `p2p:<peer>`, `gloo-send:<peer>`, `gloo-recv:<peer>`, `nccl:<group>`): queued work, oldest first. */
  readonly streams: readonly { readonly [stream: string]: readonly string[] }[];
  /** Per rank, per event: the key of its latest record, or null if never recorded. */
  readonly events: readonly { readonly [event: string]: string | null }[];
  /** Per rank, per allocator buffer: its block index, or -1 when not allocated. */
  readonly buffers: readonly { readonly [buf: string]: number }[];
  readonly blocks: readonly (readonly Block[])[];
  /** Per rank: shared variables (flags, mailbox slots), as declared in `vars`. */
  readonly vars: readonly Vars[];
  /** Per rank, per work handle: the key of the work it names, `waited`, or null. */
  readonly handles: readonly { readonly [handle: string]: string | null }[];
  /** Per rank, per group: collectives issued so far (collective #n). */
  readonly colls: readonly { readonly [group: string]: number }[];
  /** Per rank, the first rule a step of that rank broke, as `property: sentence`; null while none. */
  readonly faults: readonly (string | null)[];
  /** The protocol's own state. */
  readonly user: U;
}

/** What a condition or a custom step sees: the rank, its variables, the protocol state, and buffer values. */
export interface Ctx<U> {
  readonly rank: number;
  readonly thread: string;
  readonly vars: Vars;
  readonly user: U;
  readonly s: GpuState<U>;
  /** The value a buffer of this rank holds now (null: never written, or not allocated). */
  value(buf: string): string | null;
}

/** What a custom step changes: some shared variables of its rank, and/or the protocol state. */
export interface Update<U> {
  readonly vars?: Vars;
  readonly user?: U;
}

export interface ThreadSpec<U> {
  readonly body: Body<U>;
  /** Runs from the start (default true); false: waits for a `start(name)`. */
  readonly autoStart?: boolean;
  /** The thread's current stream (default: the first declared stream). */
  readonly stream?: string;
}

export interface BufferSpec {
  /** Managed by the caching allocator: starts unallocated, needs `alloc` (default false: preallocated/static). */
  readonly alloc?: boolean;
  /** Initial value of a preallocated buffer (default: never written). */
  readonly init?: string;
}

/** The kit's own checks; each can be turned off in `checks`. */
export const KIT_PROPERTIES = [
  'no-read-while-writing',
  'no-write-while-reading',
  'no-write-while-writing',
  'no-uninitialised-read',
  'no-stale-read',
  'no-use-after-free',
] as const;
export type KitProperty = (typeof KIT_PROPERTIES)[number];

/**
 * How the protocol's own state names ranks, for symmetry reduction (`symmetry` in the spec). The kit renames
 * its own state (threads, queues and the peers in their names, events, buffers, blocks, handles, collectives);
 * these hooks rename the rest. `perm` maps each rank r to perm[r]: a rank-indexed array is reordered so that
 * new[perm[r]] = old[r], and a field holding a rank p becomes perm[p].
 */
export interface GpuSymmetry<U> {
  /** Renames ranks in `user` (default: `user` names no rank). Must be pure. */
  readonly permuteUser?: (user: U, perm: readonly number[]) => U;
  /** Renames ranks inside one rank's variables, e.g. a list gathered from every rank (default: variables name no rank). */
  readonly permuteVars?: (vars: Vars, perm: readonly number[]) => Vars;
  /**
   * What the protocol's state says about rank r, used to sort ranks; it must not change when ranks are renamed
   * (give a rank-indexed list as r's own entry and the sorted list). Default: `vars[r]` as it is, which is right
   * when variables name no rank.
   */
  readonly signature?: (s: GpuState<U>, rank: number) => Data;
  /** What relates rank r to rank p in the protocol's state (e.g. whether r's signal reached p); refines the sort. */
  readonly pair?: (s: GpuState<U>, rank: number, peer: number) => Data;
}

export interface GpuSystemSpec<U> {
  readonly name: string;
  readonly ranks: number;
  /** Compute streams per rank; the first is each thread's default current stream. */
  readonly streams: readonly string[];
  /** Buffers per rank: a name list (preallocated, never written) or specs. */
  readonly buffers?: readonly string[] | { readonly [name: string]: BufferSpec };
  readonly events?: readonly string[];
  /** Shared variables per rank with initial values (or a function of the rank). */
  readonly vars?: Vars | ((rank: number) => Vars);
  /** Work-handle names per rank. Any handle a statement names is declared automatically. */
  readonly handles?: readonly string[];
  /** Process groups by name; `world` (every rank) is always there. */
  readonly groups?: { readonly [name: string]: readonly number[] };
  /** The CPU threads of a rank, as statement lists or specs. */
  readonly threads: (rank: number) => { readonly [thread: string]: Body<U> | ThreadSpec<U> };
  /** The protocol's own initial state. */
  readonly user?: U;
  /** Extra protocol actions over the whole state (e.g. an environment step). */
  readonly actions?: readonly import('../system.ts').Action<GpuState<U>>[];
  readonly invariants?: { readonly [name: string]: (s: GpuState<U>) => boolean };
  readonly actionProperties?: { readonly [name: string]: (before: GpuState<U>, step: StepLabel, after: GpuState<U>) => boolean };
  readonly reachable?: { readonly [name: string]: (s: GpuState<U>) => boolean };
  /** Extra condition for a proper end (the kit already requires every thread finished and every stream empty). */
  readonly terminal?: (s: GpuState<U>) => boolean;
  /** Extra lines for a deadlock explanation. */
  readonly explainStuck?: (s: GpuState<U>) => readonly string[];
  /** Temporal properties (`eventually`, `alwaysEventually`, `leadsTo` from model/liveness.ts), passed to the system. */
  readonly liveness?: { readonly [name: string]: import('../liveness.ts').Liveness<GpuState<U>> };
  /** Fairness per actor (`rank 0 main`, `rank 0 stream C`, ...) or for all, passed to the system. */
  readonly fairness?: import('../liveness.ts').FairnessKind | { readonly [actor: string]: import('../liveness.ts').FairnessKind };
  /**
   * Partial-order reduction: the fields the protocol's invariants and goals read that do not say so themselves
   * (`observing(groups, fn)` from model/por.ts, re-exported here). The kit's own properties declare theirs.
   */
  readonly observes?: readonly string[];
  /** Turn kit checks off: `{ 'no-uninitialised-read': false }`. */
  readonly checks?: { readonly [P in KitProperty]?: boolean };
  /**
   * Ranks are interchangeable: explore one state per class of states that differ only by a renaming of ranks.
   * `true`, or the hooks that rename ranks in the protocol's own state (`GpuSymmetry`). The kit refuses the
   * declaration (ModelError) when ranks run different programs, when a group leaves out some rank, or when
   * with 3 ranks or more a statement names a specific peer; the explorer samples the rest (conditions and
   * steps that single out a rank, a rank-indexed field the hooks forget) on the first states and refuses it
   * with an error naming the renaming that does not commute.
   */
  readonly symmetry?: boolean | GpuSymmetry<U>;
}
