/**
 * The visited set: 64-bit fingerprints of encoded states in one open-addressing table of Uint32 pairs.
 * A JS Set of strings tops out at 16.7 M entries and costs ~200 bytes a key; this costs 8 bytes a slot.
 * Two distinct states share a fingerprint with probability about n² / 2⁶⁵ (1.7 M states: ~1e-7).
 */

/**
 * 64-bit hash of words[0..length) as two 32-bit lanes (murmur3-style mixing with different seeds). (0, 0)
 * marks an empty slot in the tables here; a state that hashes to it (probability 2^-64, far below the chance of
 * two states sharing a fingerprint, which the search accepts) is conflated with (0, 1) or taken as recently
 * seen. Not nudged here: the branch cost the packed fast path 10% (A/B, 2PC-8).
 */
export function hashWords(words: Int32Array, length: number, out: Uint32Array): void {
  let h1 = 0x9747b28c | 0;
  let h2 = 0x85ebca6b | 0;
  for (let i = 0; i < length; i++) {
    let k = Math.imul(words[i], 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h1 ^= k;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
    h2 = Math.imul(h2 ^ words[i], 0x01000193);
  }
  h1 ^= length;
  h1 = fmix(h1);
  h2 = fmix(h2 ^ h1);
  out[0] = h1 >>> 0;
  out[1] = h2 >>> 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/**
 * The table grows when this full, by GROWTH: between 0.59 and 0.80 full, 10 to 13.5 bytes a state. Inserting
 * costs ½(1 + 1/(1-load)²) probes: 13 at 0.8, 78 at 0.92; with parent links at a byte a state (ParentColumn)
 * the whole visited state, trace links included, still fits in 16 bytes.
 */
const MAX_LOAD = 0.8;
const GROWTH = 1.35;

export class FingerprintSet {
  private table: Uint32Array;
  /** Slots; any size (not a power of two), so the table can grow by a quarter and stay dense. */
  private cap: number;
  private scale: number;
  private limit: number;
  /** Graph mode only: the state index stored beside each fingerprint (4 more bytes a slot). */
  private indices: Uint32Array | undefined;
  size = 0;

  constructor(initialCapacity = 1 << 16, withIndices = false) {
    this.cap = Math.max(1024, Math.ceil(initialCapacity));
    this.scale = this.cap / 4294967296;
    this.limit = Math.floor(this.cap * MAX_LOAD);
    this.table = new Uint32Array(this.cap * 2);
    if (withIndices) this.indices = new Uint32Array(this.cap);
  }

  /** Graph mode: inserts with `index` and returns -1, or returns the index already stored for it. */
  addOrFind(hi: number, lo: number, index: number): number {
    if (hi === 0 && lo === 0) lo = 1;
    const i = this.slotOf(hi, lo);
    if (this.occupied(i)) return this.indices![i];
    this.indices![i] = index;
    this.insertAt(i, hi, lo);
    return -1;
  }

  get capacity(): number {
    return this.cap;
  }

  get bytes(): number {
    return this.table.byteLength + (this.indices?.byteLength ?? 0);
  }

  /** Inserts the fingerprint (hi, lo); returns true when it was not there before. */
  add(hi: number, lo: number): boolean {
    if (hi === 0 && lo === 0) lo = 1;
    const i = this.slotOf(hi, lo);
    if (this.occupied(i)) return false;
    this.insertAt(i, hi, lo);
    return true;
  }

  has(hi: number, lo: number): boolean {
    if (hi === 0 && lo === 0) lo = 1;
    return this.occupied(this.slotOf(hi, lo));
  }

  /**
   * Linear probing from a home slot chosen by multiply-shift over the table's size: the slot holding (hi, lo),
   * or the empty slot where it belongs. (0, 0) marks an empty slot, so callers nudge the one fingerprint that
   * equals it to (0, 1).
   */
  private slotOf(hi: number, lo: number): number {
    const t = this.table;
    const cap = this.cap;
    // The mixed hash as a fraction of 2^32, times the size: below the size for any size under 2^31.
    let i = Math.floor(((lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0) * this.scale);
    for (;;) {
      const a = t[2 * i];
      const b = t[2 * i + 1];
      if ((a === 0 && b === 0) || (a === hi && b === lo)) return i;
      if (++i === cap) i = 0;
    }
  }

  private occupied(i: number): boolean {
    return this.table[2 * i] !== 0 || this.table[2 * i + 1] !== 0;
  }

  private insertAt(i: number, hi: number, lo: number): void {
    this.table[2 * i] = hi;
    this.table[2 * i + 1] = lo;
    if (++this.size > this.limit) this.grow();
  }

  /**
   * Rehashes into a table GROWTH times larger. One tight loop (no per-entry calls): with growth by a third the
   * entries are re-placed about three times over a search, so this loop is as hot as insertion itself.
   */
  private grow(): void {
    const old = this.table;
    const oldIndices = this.indices;
    const cap = Math.ceil(this.cap * GROWTH);
    const scale = cap / 4294967296;
    const t = new Uint32Array(cap * 2);
    const idx = oldIndices ? new Uint32Array(cap) : undefined;
    for (let j = 0; j < old.length; j += 2) {
      const hi = old[j];
      const lo = old[j + 1];
      if (hi === 0 && lo === 0) continue;
      let i = Math.floor(((lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0) * scale);
      while (t[2 * i] !== 0 || t[2 * i + 1] !== 0) if (++i === cap) i = 0;
      t[2 * i] = hi;
      t[2 * i + 1] = lo;
      if (idx) idx[i] = oldIndices![j >> 1];
    }
    this.table = t;
    this.indices = idx;
    this.cap = cap;
    this.scale = scale;
    this.limit = Math.floor(cap * MAX_LOAD);
  }
}

type ColumnArray = Uint8Array | Uint32Array;

/** A growable typed column, one entry per state: parent links and action ids (Uint32), predicate labels (Uint8). */
class Column<A extends ColumnArray> {
  length = 0;

  constructor(
    public data: A,
    private readonly make: (n: number) => A,
  ) {}

  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = this.make(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }

  get(i: number): number {
    return this.data[i];
  }

  get bytes(): number {
    return this.data.byteLength;
  }
}

export class U32Column extends Column<Uint32Array> {
  constructor() {
    super(new Uint32Array(1 << 16), (n) => new Uint32Array(n));
  }
}

export class U8Column extends Column<Uint8Array> {
  constructor() {
    super(new Uint8Array(1 << 16), (n) => new Uint8Array(n));
  }
}

type ChunkArray = Uint8Array | Uint16Array | Uint32Array;
const CHUNK_BITS = 12;
const CHUNK = 1 << CHUNK_BITS;

/**
 * A column that grows by fixed chunks of 4,096 entries, never by doubling: it holds at most one chunk more
 * than it uses (the visited set's per-state bytes stay what the entry width says).
 */
export class ChunkedColumn {
  length = 0;
  private readonly chunks: ChunkArray[] = [];
  private last: ChunkArray | undefined;

  private constructor(private readonly make: (n: number) => ChunkArray) {}

  /** Entries below 2^8, 2^16 or 2^32, in 1, 2 or 4 bytes each. */
  static forValuesBelow(bound: number): ChunkedColumn {
    if (bound <= 1 << 8) return new ChunkedColumn((n) => new Uint8Array(n));
    if (bound <= 1 << 16) return new ChunkedColumn((n) => new Uint16Array(n));
    return new ChunkedColumn((n) => new Uint32Array(n));
  }

  push(v: number): void {
    const j = this.length & (CHUNK - 1);
    if (j === 0) {
      this.last = this.make(CHUNK);
      this.chunks.push(this.last);
    }
    this.last![j] = v;
    this.length++;
  }

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS][i & (CHUNK - 1)];
  }

  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.byteLength, 0);
  }
}

const BLOCK = 1 << 14;
const GROUP_BITS = 10;
const GROUP = 1 << GROUP_BITS;

/**
 * A column of nondecreasing values (breadth-first parent links: a state's parent is the state being expanded
 * when it was found, so they only grow) stored as varint deltas: mostly one byte a state instead of four.
 * Reading one entry decodes at most 1,024 deltas from its group's start: traces read a few dozen entries.
 */
export class DeltaColumn {
  length = 0;
  private last = 0;
  private readonly blocks: Uint8Array[] = [new Uint8Array(BLOCK)];
  private at = 0;
  /** Per group of 1,024 entries: the value before its first entry, and where its bytes start. */
  private groupBase = new Float64Array(64);
  private groupStart = new Uint32Array(64);

  push(v: number): void {
    if (!(v >= this.last) || v > 2 ** 52) throw new Error(`internal: DeltaColumn needs nondecreasing values (${v} after ${this.last})`);
    if ((this.length & (GROUP - 1)) === 0) {
      const g = this.length >>> GROUP_BITS;
      if (g === this.groupBase.length) {
        const b = new Float64Array(g * 2);
        b.set(this.groupBase);
        this.groupBase = b;
        const s = new Uint32Array(g * 2);
        s.set(this.groupStart);
        this.groupStart = s;
      }
      this.groupBase[g] = this.last;
      if (this.at > BLOCK - 8) this.newBlock();
      this.groupStart[g] = (this.blocks.length - 1) * BLOCK + this.at;
    }
    // A varint never straddles blocks: an entry starts a fresh block when fewer than 8 bytes are left.
    if (this.at > BLOCK - 8) this.newBlock();
    let d = v - this.last;
    const block = this.blocks[this.blocks.length - 1];
    while (d >= 128) {
      block[this.at++] = (d % 128) | 128;
      d = Math.floor(d / 128);
    }
    block[this.at++] = d;
    this.last = v;
    this.length++;
  }

  get(i: number): number {
    if (!(i >= 0 && i < this.length)) throw new Error(`internal: DeltaColumn index ${i} outside 0..${this.length - 1}`);
    const g = i >>> GROUP_BITS;
    let v = this.groupBase[g];
    let b = Math.floor(this.groupStart[g] / BLOCK);
    let off = this.groupStart[g] % BLOCK;
    for (let k = g << GROUP_BITS; k <= i; k++) {
      // The writer's rule: an entry starts a fresh block when fewer than 8 bytes are left.
      if (off > BLOCK - 8) {
        b++;
        off = 0;
      }
      const block = this.blocks[b];
      let d = 0;
      let mul = 1;
      for (;;) {
        const x = block[off++];
        d += (x & 127) * mul;
        if (x < 128) break;
        mul *= 128;
      }
      v += d;
    }
    return v;
  }

  private newBlock(): void {
    this.blocks.push(new Uint8Array(BLOCK));
    this.at = 0;
  }

  get bytes(): number {
    return this.blocks.length * BLOCK + this.groupBase.byteLength + this.groupStart.byteLength;
  }
}

/** Marks an initial state in a ParentColumn. */
export const NO_PARENT = 0xffffffff;

/**
 * Breadth-first parent links (initial states first, with NO_PARENT; then nondecreasing indices), about a byte
 * a state: what trace reconstruction needs besides the action column.
 */
export class ParentColumn {
  private readonly deltas = new DeltaColumn();

  get length(): number {
    return this.deltas.length;
  }

  push(parent: number): void {
    this.deltas.push(parent === NO_PARENT ? 0 : parent + 1);
  }

  get(i: number): number {
    const v = this.deltas.get(i);
    return v === 0 ? NO_PARENT : v - 1;
  }

  get bytes(): number {
    return this.deltas.bytes;
  }
}

/**
 * A parallel worker's parent links: each state's parent is (owner, index at that owner). A worker stores its
 * new states in discovery-key order, and each owner's states are numbered in that order too, so the indices
 * at any one owner only grow: one byte for the owner, plus per owner a DeltaColumn (about a byte), instead of
 * five bytes. Per group of 1,024 states it keeps how many went to each owner before the group, so reading a
 * link counts at most 1,023 owner bytes.
 */
export class OwnerParentColumn {
  length = 0;
  private readonly owners = ChunkedColumn.forValuesBelow(256);
  private readonly locals: DeltaColumn[];
  private counts: Uint32Array;

  constructor(private readonly workers: number) {
    this.locals = Array.from({ length: workers }, () => new DeltaColumn());
    this.counts = new Uint32Array(64 * workers);
  }

  /** Appends a link; `local` is NO_PARENT for an initial state (owner ignored). */
  push(owner: number, local: number): void {
    if ((this.length & (GROUP - 1)) === 0) {
      const g = this.length >>> GROUP_BITS;
      if ((g + 1) * this.workers > this.counts.length) {
        const c = new Uint32Array(this.counts.length * 2);
        c.set(this.counts);
        this.counts = c;
      }
      for (let o = 0; o < this.workers; o++) this.counts[g * this.workers + o] = this.locals[o].length;
    }
    const o = local === NO_PARENT ? 0 : owner;
    this.owners.push(o);
    this.locals[o].push(local === NO_PARENT ? 0 : local + 1);
    this.length++;
  }

  owner(i: number): number {
    return this.owners.get(i);
  }

  /** The parent's index at its owner, or NO_PARENT. */
  local(i: number): number {
    if (!(i >= 0 && i < this.length)) throw new Error(`internal: OwnerParentColumn index ${i} outside 0..${this.length - 1}`);
    const o = this.owners.get(i);
    const g = i >>> GROUP_BITS;
    let j = this.counts[g * this.workers + o];
    for (let k = g << GROUP_BITS; k < i; k++) if (this.owners.get(k) === o) j++;
    const v = this.locals[o].get(j);
    return v === 0 ? NO_PARENT : v - 1;
  }

  get bytes(): number {
    let b = this.owners.bytes + this.counts.byteLength;
    for (const c of this.locals) b += c.bytes;
    return b;
  }
}
