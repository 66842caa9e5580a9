/**
 * The messages between the coordinator of a parallel search and its workers.
 *
 * The search is level-synchronous BFS. Each worker owns the states whose fingerprint maps to it (`hi % W`):
 * it holds their fingerprints and parent links, and one level at a time their encodings (its frontier, in
 * shared memory). A level takes two steps, each ended by a barrier at the coordinator:
 *
 *   pass    the workers take chunks of the level (every owner's frontier, in BFS order) from a shared
 *           counter, check each state's invariants and expand it, routing each successor's encoding (with
 *           its fingerprint, parent and action instance) to the successor's owner;
 *   dedupe  each owner merges what it was sent into its visited set: the new states are its next frontier.
 *
 * Everything is ordered as the single-threaded explorer orders it, so that both find the same first
 * violation: a state's *rank* is its position in its level in single-threaded BFS order, and a successor's
 * discovery key is (rank of its parent, action instance id). A worker takes chunks in increasing rank, so
 * each stream it routes is sorted by key; owners merge the streams they receive in key order, so the first
 * copy of a state they keep is the one single-threaded BFS finds first, with the same parent. A frontier is
 * then sorted by key, and ranks follow from merging the owners' keys. Events (violations, model faults,
 * limits) carry a key in that order too: the coordinator keeps the least.
 *
 * Before it, a search with no state or depth limit gets a sweep (sweep.ts and packed-sweep.ts, sweep-table.ts):
 * the frontiers are read by every worker in chunks as above, but successors go into one shared table by
 * compare-and-swap instead of to owners, and nothing is ranked. It ends the check when it meets nothing; else
 * the scheme above starts over.
 */
import type { PropertyKind } from '../explorer.ts';
import type { SystemSource } from './source.ts';

/**
 * Words of a routed successor before its encoding: length, fingerprint hi, lo, parent's owner, parent's index
 * there, parent's rank, action instance.
 */
export const RECORD_HEADER = 7;
/** The shared control words of a pass: the next chunk, the rank past which nothing is processed, and expanded. */
export const CTRL_NEXT = 0;
export const CTRL_STOP_ALL = 1;
export const CTRL_STOP_EXPAND = 2;
/** States a worker takes from the counter at a time. */
export const CHUNK = 128;
/** Parent link of an initial state. */
export const NO_PARENT = 0xffffffff;

/**
 * Event keys: within the level being expanded, `rank * slots + slot`, with slots = 4 * instances + 4 and, for
 * action instance a, slot 4a (its guard or effect threw), 4a + 1 (a step property failed or threw), 4a + 2
 * (the state it discovered breaks an invariant, or a check threw on it), 4a + 3 (that state reached
 * --max-states); slot 4n for a mutated state, 4n + 1 for a deadlock.
 */
export interface FoundEvent {
  readonly key: number;
  readonly kind: 'violated' | 'error' | 'limit';
  readonly property?: string;
  readonly propertyKind?: PropertyKind;
  readonly message?: string;
  /** The worker holding the state the counterexample leads to, and its local index there. */
  readonly worker: number;
  readonly state: number;
  /** The action instance taken from that state (a step property), or -1. */
  readonly extra: number;
}

/** One owner's frontier, in shared memory: state i's words start at starts[i]; keys[i] is its discovery key. */
export interface FrontierInfo {
  readonly words: SharedArrayBuffer;
  readonly starts: SharedArrayBuffer;
  readonly keys: SharedArrayBuffer;
  readonly count: number;
  readonly used: number;
  /** Owner-local index of state 0. */
  readonly base: number;
}

/** Successors routed from one worker to one owner: `used` words of RECORD_HEADER + encoding records. */
export interface Parcel {
  readonly sender: number;
  readonly owner: number;
  readonly buffer: ArrayBuffer;
  readonly used: number;
}

export interface WorkerOptions {
  /** Report states with no enabled action that are not terminal. */
  readonly deadlock: boolean;
  /** The properties checked (invariants, step properties, goals): null for all. */
  readonly properties: readonly string[] | null;
  /** Date.now() past which the search stops, or null. */
  readonly deadline: number | null;
  readonly maxMemoryMB: number | null;
  /** Run a packed system over its words (false: as generic states, the cross-check). */
  readonly packed: boolean;
}

/** A sweep's shared control words (sweep.ts): the next chunk, why it stops, entries in the table, and the count
 * of entries at which a worker asks for the table to grow. */
export const SWEEP_NEXT = 0;
export const SWEEP_STOP = 1;
export const SWEEP_ENTRIES = 2;
export const SWEEP_STOP_AT = 3;
/** States a sweep worker takes from the counter at a time. */
export const SWEEP_CHUNK = 64;
/**
 * New entries a sweep worker keeps before it adds them to the shared count (one shared add per this many, not
 * one per entry). A worker looks at the stop word after every state, so once one asks for growth, each other
 * worker adds at most this many plus two states' successors before it stops: the table's headroom.
 */
export const SWEEP_PUBLISH = 64;

/** Why a sweep's pass stopped before the end of its level. */
export enum SweepStop {
  None = 0,
  /** Something the exact scheme must report: a violation, a deadlock, a model fault. */
  Met = 1,
  /** The table reached its growth mark: grow it and go on with the same level. */
  Full = 2,
  Time = 3,
  Memory = 4,
}

/** One worker's next frontier in a sweep: `count` length-prefixed encodings. */
export interface SweepFrontier {
  readonly words: SharedArrayBuffer;
  readonly count: number;
}

export interface SweepReply {
  readonly type: 'swept';
  readonly frontier: SweepFrontier;
  /** Transitions taken in this level so far (all its passes). */
  readonly transitions: number;
  readonly reached: readonly string[];
  readonly rss: number;
}

export type ToWorker =
  | {
      readonly type: 'init';
      readonly source: SystemSource;
      readonly index: number;
      readonly workers: number;
      readonly strings: SharedArrayBuffer;
      /** One Float64 per worker: its transitions so far, read by the coordinator for progress. */
      readonly progress: SharedArrayBuffer;
      /** Int32 control words (CTRL_*), reset by the coordinator before each pass. */
      readonly control: SharedArrayBuffer;
      readonly options: WorkerOptions;
    }
  | { readonly type: 'inits' }
  | {
      readonly type: 'pass';
      readonly level: number;
      /** Every owner's frontier. */
      readonly frontiers: readonly FrontierInfo[];
      readonly expand: boolean;
      /** Check only states whose discovery event key is below this (an earlier event is pending). */
      readonly keyBound: number;
      /** Check only states of rank up to this; the state of rank `limitRank` reaches --max-states. */
      readonly maxRank: number;
      readonly limitRank: number;
      /** Reachability goals some worker already reached. */
      readonly reached: readonly string[];
    }
  | { readonly type: 'dedupe'; readonly incoming: readonly Parcel[] }
  | { readonly type: 'count'; readonly key: number; readonly level: number }
  | { readonly type: 'link'; readonly state: number }
  | { readonly type: 'sweep-start'; readonly table: SharedArrayBuffer }
  | { readonly type: 'sweep-level'; readonly frontiers: readonly SweepFrontier[]; readonly table: SharedArrayBuffer; readonly resume: boolean }
  /** Copy part `part` (of `parts`) of the full table `from` into the larger `to` (every worker one part). */
  | { readonly type: 'sweep-rehash'; readonly from: SharedArrayBuffer; readonly to: SharedArrayBuffer; readonly part: number; readonly parts: number }
  | { readonly type: 'sweep-end' };

export interface SweepRehashed {
  readonly type: 'rehashed';
}

export type FromWorker =
  | { readonly type: 'ready'; readonly instances: number }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'crash'; readonly message: string }
  | { readonly type: 'frontier'; readonly frontier: FrontierInfo; readonly bytes: number }
  | {
      readonly type: 'passed';
      readonly inv: FoundEvent | null;
      readonly exp: FoundEvent | null;
      /** Why the worker stopped early (time or memory limit), or null. */
      readonly stop: string | null;
      readonly parcels: readonly Parcel[];
      readonly reached: readonly string[];
      readonly transitions: number;
      readonly rss: number;
    }
  | { readonly type: 'counted'; readonly transitions: number; readonly states: number }
  | SweepReply
  | { readonly type: 'sweep-ended' }
  | SweepRehashed
  | { readonly type: 'link'; readonly parentWorker: number; readonly parentState: number; readonly via: number };
