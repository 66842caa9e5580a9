/**
 * Model states are plain immutable data: null, booleans, finite numbers, strings, arrays and plain objects.
 * This module turns such a value into a compact word encoding (the explorer's queue format), back into a
 * frozen value, and checks on the way that nothing else (functions, undefined, NaN, cycles) slipped in.
 */

import { type EncoderHooks, type ShapeEncoder, compileShapeEncoder } from './shape-encoder.ts';

export type Data = null | boolean | number | string | readonly Data[] | { readonly [key: string]: Data };

/** A state (or action parameter) that is not plain data; `path` names the offending field, e.g. `rm[2].flag`. */
export class DataError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path || '(root)'}: ${problem}`);
    this.name = 'DataError';
  }
}

// Word format: the low 3 bits of a head word are its tag, the rest its payload (a small int, a string id, a
// length). Integers outside the 28-bit payload range and floats take extra words. Keys are plain string ids.
const TAG_NULL = 0;
const TAG_FALSE = 1;
const TAG_TRUE = 2;
const TAG_INT = 3;
const TAG_WIDE = 4; // payload 0: a 32-bit int follows; payload 1: a float64 follows as two words
const TAG_STRING = 5;
const TAG_ARRAY = 6;
const TAG_OBJECT = 7;
const SMALL_MIN = -(1 << 27);
const SMALL_MAX = (1 << 27) - 1;

/** Nesting past this depth is taken for a cycle; the slow walk then says which (a shallow state never pays for the check). */
const CYCLE_CHECK_DEPTH = 200;

const floatView = new Float64Array(1);
const floatWords = new Int32Array(floatView.buffer);

/**
 * Encodes data into a growable Int32 word buffer. Strings (values and object keys) are interned to small
 * integers; object keys are written in sorted order so that `{a, b}` and `{b, a}` encode alike.
 */
export class Encoder {
  words = new Int32Array(256);
  length = 0;
  private readonly stringIds = new Map<string, number>();
  readonly strings: string[] = [];
  private readonly layouts = new Map<string, KeyLayout[]>();
  private current: unknown = undefined;

  intern(s: string): number {
    let id = this.stringIds.get(s);
    if (id === undefined) {
      id = this.strings.length;
      this.strings.push(s);
      this.stringIds.set(s, id);
    }
    return id;
  }

  /**
   * Encodes `value` into `this.words[0 .. this.length)`. Throws DataError on non-data. With `reuse`, subtrees
   * of the last state decoded with `track` are copied from its encoding (they are the same objects).
   */
  encode(value: unknown, reuse = false): void {
    this.useShared = reuse && this.shared.size > 0;
    this.current = value;
    const fast = this.fast;
    if (fast !== undefined) {
      this.length = fast.encode(value, this.useShared ? this.hooksShared : this.hooksPlain);
      return;
    }
    this.length = 0;
    this.put(value, 0);
  }

  /** The generic path alone (the reference the compiled fast path must agree with, word for word). */
  encodeGeneric(value: unknown): void {
    this.useShared = false;
    this.current = value;
    this.length = 0;
    this.put(value, 0);
  }

  private fast: ShapeEncoder | undefined = undefined;
  private fastStrings = -1;

  private readonly generic = (v: unknown, p: number): number => {
    this.length = p;
    this.put(v, 0);
    return this.length;
  };

  private readonly room = (p: number, need: number): Int32Array => {
    if (this.words.length < p + need) {
      let cap = this.words.length * 2;
      while (cap < p + need) cap *= 2;
      const grown = new Int32Array(cap);
      grown.set(this.words.subarray(0, p));
      this.words = grown;
    }
    return this.words;
  };

  private readonly hooksPlain: EncoderHooks = { generic: this.generic, room: this.room, copyShared: null };
  private readonly hooksShared: EncoderHooks = {
    generic: this.generic,
    room: this.room,
    copyShared: (v, p) => {
      const e = this.shared.get(v);
      if (e === undefined) return -1;
      this.length = p;
      this.copyShared(e);
      return this.length;
    },
  };

  /**
   * Compiles (or recompiles, once new strings have appeared) the fast path for states shaped like `sample`.
   * Cheap; the explorer calls it at each BFS level while the string table still grows.
   */
  specialise(sample: Data): void {
    if (this.strings.length === this.fastStrings) return;
    this.fastStrings = this.strings.length;
    const own = new Set<string>();
    collectStrings(sample, own);
    const known = [...own, ...this.strings.filter((x) => !own.has(x))];
    this.fast = compileShapeEncoder(sample, (x) => this.intern(x), known);
  }

  private push(w: number): void {
    if (this.length === this.words.length) {
      const grown = new Int32Array(this.words.length * 2);
      grown.set(this.words);
      this.words = grown;
    }
    this.words[this.length++] = w;
  }

  /**
   * Key order of an object, sorted, with the keys' string ids. Objects built by the same code share a key
   * list, so the sorted permutation is cached per list (found by its first key, confirmed key by key).
   */
  private layoutOf(keys: string[]): KeyLayout {
    const first = keys.length > 0 ? keys[0] : '';
    let bucket = this.layouts.get(first);
    if (bucket === undefined) {
      bucket = [];
      this.layouts.set(first, bucket);
    }
    search: for (let b = 0; b < bucket.length; b++) {
      const cand = bucket[b];
      if (cand.keys.length !== keys.length) continue;
      for (let i = 1; i < keys.length; i++) if (cand.keys[i] !== keys[i]) continue search;
      return cand;
    }
    const order = keys.map((_, i) => i).sort((x, y) => (keys[x] < keys[y] ? -1 : keys[x] > keys[y] ? 1 : 0));
    const layout: KeyLayout = {
      keys,
      order: Int32Array.from(order),
      ids: Int32Array.from(order.map((i) => this.intern(keys[i]))),
    };
    bucket.push(layout);
    return layout;
  }

  /**
   * Subtrees shared with the state being expanded: an effect that returns `{ ...s, x }` keeps every other
   * field of `s` by reference, so their words are copied from the parent's encoding instead of re-walked.
   * Maps a decoded array/object to an entry of `spans` ([start, length] in `sharedWords`): a small-integer
   * map value, where `start * 65536 + length` would allocate a heap number per entry.
   */
  private readonly shared = new Map<object, number>();
  private spans = new Int32Array(256);
  private sharedWords: Int32Array = new Int32Array(0);
  private useShared = false;

  /** The hot path: no path bookkeeping. On any non-data value it re-walks slowly to name the field. */
  private put(v: unknown, depth: number): void {
    switch (typeof v) {
      case 'boolean':
        this.push(v ? TAG_TRUE : TAG_FALSE);
        return;
      case 'number':
        if ((v | 0) === v) {
          if (v >= SMALL_MIN && v <= SMALL_MAX) this.push((v << 3) | TAG_INT);
          else {
            this.push(TAG_WIDE);
            this.push(v);
          }
        } else if (Number.isFinite(v)) {
          // -0 is an integer to the checker: only finite non-integers reach here.
          this.push((1 << 3) | TAG_WIDE);
          floatView[0] = v;
          this.push(floatWords[0]);
          this.push(floatWords[1]);
        } else {
          this.fail();
        }
        return;
      case 'string':
        this.push((this.intern(v) << 3) | TAG_STRING);
        return;
      case 'object': {
        if (v === null) {
          this.push(TAG_NULL);
          return;
        }
        if (this.useShared) {
          const at = this.shared.get(v);
          if (at !== undefined) {
            this.copyShared(at);
            return;
          }
        }
        if (depth >= CYCLE_CHECK_DEPTH) this.fail();
        if (Array.isArray(v)) {
          this.push((v.length << 3) | TAG_ARRAY);
          for (let i = 0; i < v.length; i++) this.put(v[i], depth + 1);
          return;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) this.fail();
        const keys = Object.keys(v);
        const layout = this.layoutOf(keys);
        const o = v as Record<string, unknown>;
        this.push((keys.length << 3) | TAG_OBJECT);
        for (let i = 0; i < keys.length; i++) {
          this.push(layout.ids[i]);
          this.put(o[keys[layout.order[i]]], depth + 1);
        }
        return;
      }
      default:
        this.fail();
    }
  }

  private copyShared(entry: number): void {
    const start = this.spans[2 * entry];
    const len = this.spans[2 * entry + 1];
    while (this.length + len > this.words.length) {
      const grown = new Int32Array(this.words.length * 2);
      grown.set(this.words);
      this.words = grown;
    }
    // A plain loop: subarray() would allocate a view object per copy on the hot path.
    const dst = this.words;
    const src = this.sharedWords;
    let j = this.length;
    for (let i = start; i < start + len; i++) dst[j++] = src[i];
    this.length = j;
  }

  /** Finds the first non-data field of the value being encoded and throws a DataError naming it. */
  private fail(): never {
    const problem = findNonData(this.current, '', []);
    throw problem ?? new DataError('', 'nesting too deep');
  }

  /**
   * Decodes words[start ..] back into a value. The explorer's decoded states are not frozen (frozen objects
   * slow down the spreads effects are written with); it catches mutation by re-encoding instead. With
   * `track`, each decoded array and object remembers where its words are, for `encode(_, true)`.
   */
  decode(words: Int32Array, start: number, freeze = false, track = false): Data {
    this.pos = start;
    this.src = words;
    this.freeze = freeze;
    this.track = track;
    this.shared.clear();
    if (track) this.sharedWords = words;
    return this.read();
  }

  private pos = 0;
  private src: Int32Array = new Int32Array(0);
  private freeze = false;
  private track = false;

  private read(): Data {
    const words = this.src;
    const at = this.pos;
    const head = words[this.pos++];
    const payload = head >> 3;
    switch (head & 7) {
      case TAG_NULL:
        return null;
      case TAG_FALSE:
        return false;
      case TAG_TRUE:
        return true;
      case TAG_INT:
        return payload;
      case TAG_WIDE:
        if (payload === 0) return words[this.pos++];
        floatWords[0] = words[this.pos++];
        floatWords[1] = words[this.pos++];
        return floatView[0];
      case TAG_STRING:
        return this.strings[payload];
      case TAG_ARRAY: {
        // Built by push, not new Array(n): a holey array would send every later .with()/spread down a slow path.
        const a: Data[] = [];
        for (let i = 0; i < payload; i++) a.push(this.read());
        return this.finish(a, at);
      }
      default: {
        const o: Record<string, Data> = {};
        for (let i = 0; i < payload; i++) {
          const k = this.strings[words[this.pos++]];
          o[k] = this.read();
        }
        return this.finish(o, at);
      }
    }
  }

  private finish<T extends object>(v: T, at: number): T {
    const len = this.pos - at;
    // Tiny subtrees are cheaper to re-encode than to look up.
    if (this.track && len >= 4) {
      const entry = this.shared.size;
      if (2 * entry + 2 > this.spans.length) {
        const grown = new Int32Array(this.spans.length * 2);
        grown.set(this.spans);
        this.spans = grown;
      }
      this.spans[2 * entry] = at;
      this.spans[2 * entry + 1] = len;
      this.shared.set(v, entry);
    }
    return this.freeze ? Object.freeze(v) : v;
  }

  /** True when words[0..length) equal other[start .. start+length). */
  sameAs(other: Int32Array, start: number, length: number): boolean {
    if (length !== this.length) return false;
    const w = this.words;
    for (let i = 0; i < length; i++) if (w[i] !== other[start + i]) return false;
    return true;
  }
}

interface KeyLayout {
  readonly keys: readonly string[];
  /** order[i]: index into `keys` of the i-th key in sorted order. */
  readonly order: Int32Array;
  /** Interned ids of the keys in sorted order. */
  readonly ids: Int32Array;
}

/** The slow, precise walk: the path and nature of the first value that is not plain data, or a cycle. */
function findNonData(v: unknown, path: string, ancestors: object[]): DataError | undefined {
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return undefined;
    case 'number':
      return Number.isFinite(v) ? undefined : new DataError(path, `${v} is not allowed in a state (use null or a finite number)`);
    case 'object': {
      if (v === null) return undefined;
      if (ancestors.includes(v)) return new DataError(path, 'the state contains a cycle (a value that contains itself)');
      ancestors.push(v);
      try {
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length; i++) {
            const bad = findNonData(v[i], `${path}[${i}]`, ancestors);
            if (bad) return bad;
          }
          return undefined;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          const kind = (v as object).constructor?.name ?? 'an object with a prototype';
          return new DataError(path, `a ${kind} is not plain data (use arrays and plain objects)`);
        }
        for (const [k, child] of Object.entries(v)) {
          const bad = findNonData(child, joinPath(path, k), ancestors);
          if (bad) return bad;
        }
        return undefined;
      } finally {
        ancestors.pop();
      }
    }
    default:
      return new DataError(path, `${describeNonData(v)} is not allowed in a state`);
  }
}

export function joinPath(base: string, key: string): string {
  const k = /^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key);
  if (k === key) return base ? `${base}.${key}` : key;
  return `${base}[${k}]`;
}

function collectStrings(v: Data, out: Set<string>): void {
  if (typeof v === 'string') out.add(v);
  else if (v !== null && typeof v === 'object') for (const c of Object.values(v)) collectStrings(c, out);
}

function describeNonData(v: unknown): string {
  switch (typeof v) {
    case 'undefined':
      return 'undefined';
    case 'function':
      return `a function${(v as { name?: string }).name ? ` (${(v as { name: string }).name})` : ''}`;
    case 'bigint':
      return `a bigint (${String(v)}n)`;
    case 'symbol':
      return 'a symbol';
    default:
      return typeof v;
  }
}

/** Deep-freezes a value in place (used on initial states so that effects cannot mutate them either). */
export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v as object)) deepFreeze(child);
  }
  return v;
}

/** One changed leaf between two states: `path` as a reader would write it (`rank[1].flag`). */
export interface FieldChange {
  readonly path: string;
  readonly before: Data | undefined;
  readonly after: Data | undefined;
}

/** The leaf fields that differ between two states, in a stable order. */
export function diff(before: Data, after: Data, path = ''): FieldChange[] {
  const out: FieldChange[] = [];
  diffInto(before, after, path, out);
  return out;
}

function diffInto(a: Data | undefined, b: Data | undefined, path: string, out: FieldChange[]): void {
  if (a === b) return;
  const aObj = a !== null && typeof a === 'object';
  const bObj = b !== null && typeof b === 'object';
  if (aObj && bObj && Array.isArray(a) === Array.isArray(b)) {
    if (Array.isArray(a)) {
      const bb = b as readonly Data[];
      // Arrays of scalars that changed length read better as one change than as a list of index edits.
      if (a.length !== bb.length && a.every(isScalar) && bb.every(isScalar)) {
        out.push({ path, before: a, after: b });
        return;
      }
      const n = Math.max(a.length, bb.length);
      // (The same object in both: nothing below changed, and no path needs to be built for it.)
      for (let i = 0; i < n; i++) if (a[i] !== bb[i]) diffInto(a[i], bb[i], `${path}[${i}]`, out);
      return;
    }
    const ao = a as Record<string, Data>;
    const bo = b as Record<string, Data>;
    for (const k in ao) if (ao[k] !== bo[k]) diffInto(ao[k], bo[k], joinPath(path, k), out);
    for (const k in bo) if (!(k in ao)) diffInto(undefined, bo[k], joinPath(path, k), out);
    return;
  }
  if (equalData(a, b)) return;
  out.push({ path, before: a, after: b });
}

function isScalar(v: Data): boolean {
  return v === null || typeof v !== 'object';
}

/** Structural equality of two data values. */
export function equalData(a: Data | undefined, b: Data | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as readonly Data[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!equalData(a[i], bb[i])) return false;
    return true;
  }
  // Plain loops, no key arrays: symmetry checks compare many small records per state.
  const ao = a as Record<string, Data>;
  const bo = b as Record<string, Data>;
  let n = 0;
  for (const k in ao) {
    if (!Object.hasOwn(ao, k)) continue;
    if (!Object.hasOwn(bo, k) || !equalData(ao[k], bo[k])) return false;
    n++;
  }
  for (const k in bo) if (Object.hasOwn(bo, k)) n--;
  return n === 0;
}

/** Compact one-line rendering of data for traces: strings unquoted where unambiguous. */
export function show(v: Data | undefined, max = 160): string {
  const s = showRaw(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function showRaw(v: Data | undefined): string {
  if (v === undefined) return '(absent)';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `[${v.map(showRaw).join(', ')}]`;
  const o = v as Record<string, Data>;
  return `{${Object.keys(o)
    .map((k) => `${k}: ${showRaw(o[k])}`)
    .join(', ')}}`;
}
