/**
 * One string table for all the workers of a parallel search. The encoder turns each string into a small id,
 * so two workers that numbered strings in the order each met them would encode (and fingerprint) the same
 * state differently. Here ids come from one table in shared memory: a worker looks a string up in its own map
 * first (the hot path, no locking) and only takes the table's lock for a string it has not met before.
 */
import { Encoder } from '../data.ts';

// Header words (Int32): the lock, the number of strings, the number of UTF-16 code units stored, capacities.
const LOCK = 0;
const COUNT = 1;
const USED = 2;
const MAX_STRINGS = 3;
const MAX_CHARS = 4;
const HEADER = 8;

export class SharedStrings {
  private readonly head: Int32Array;
  /** offsets[id] .. offsets[id + 1]: the code units of string `id` in `chars`. */
  private readonly offsets: Int32Array;
  /** Open-addressing index: id + 1 in the slot for a string's hash, 0 for an empty slot. */
  private readonly slots: Int32Array;
  private readonly chars: Uint16Array;
  private readonly mask: number;

  /** A new table for at most `maxStrings` distinct strings of `maxChars` UTF-16 code units in all. */
  static create(maxStrings = 1 << 20, maxChars = 1 << 24): SharedStrings {
    let slotCount = 1024;
    while (slotCount < 2 * maxStrings) slotCount <<= 1;
    const bytes = 4 * (HEADER + maxStrings + 1 + slotCount) + 2 * maxChars;
    const buffer = new SharedArrayBuffer(bytes);
    const head = new Int32Array(buffer, 0, HEADER);
    head[MAX_STRINGS] = maxStrings;
    head[MAX_CHARS] = maxChars;
    return new SharedStrings(buffer);
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.head = new Int32Array(buffer, 0, HEADER);
    const maxStrings = this.head[MAX_STRINGS];
    const maxChars = this.head[MAX_CHARS];
    let slotCount = 1024;
    while (slotCount < 2 * maxStrings) slotCount <<= 1;
    this.offsets = new Int32Array(buffer, 4 * HEADER, maxStrings + 1);
    this.slots = new Int32Array(buffer, 4 * (HEADER + maxStrings + 1), slotCount);
    this.chars = new Uint16Array(buffer, 4 * (HEADER + maxStrings + 1 + slotCount), maxChars);
    this.mask = slotCount - 1;
  }

  /** How many strings the table holds (ids 0 .. count-1 are readable with `get`). */
  get count(): number {
    return Atomics.load(this.head, COUNT);
  }

  /** The string with id `id` (which must be below `count`). */
  get(id: number): string {
    const a = this.offsets[id];
    const b = this.offsets[id + 1];
    let out = '';
    for (let i = a; i < b; i += 4096) {
      out += String.fromCharCode.apply(null, Array.from(this.chars.subarray(i, Math.min(b, i + 4096))));
    }
    return out;
  }

  /** The id of `s`, adding it to the table when it is new. */
  intern(s: string): number {
    let h = 0x811c9dc5 | 0;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    this.lock();
    try {
      let slot = (h ^ (h >>> 15)) & this.mask;
      for (;;) {
        const entry = this.slots[slot];
        if (entry === 0) break;
        if (this.equals(entry - 1, s)) return entry - 1;
        slot = (slot + 1) & this.mask;
      }
      const id = this.head[COUNT];
      const used = this.head[USED];
      if (id >= this.head[MAX_STRINGS] || used + s.length > this.head[MAX_CHARS]) {
        throw new Error(
          `parallel search: the states hold more distinct strings than the shared string table takes ` +
            `(${this.head[MAX_STRINGS]} strings, ${this.head[MAX_CHARS]} characters); check with one worker instead`,
        );
      }
      for (let i = 0; i < s.length; i++) this.chars[used + i] = s.charCodeAt(i);
      this.offsets[id + 1] = used + s.length;
      this.head[USED] = used + s.length;
      this.slots[slot] = id + 1;
      // Published last: a reader that sees the new count sees the string's characters and offsets.
      Atomics.store(this.head, COUNT, id + 1);
      return id;
    } finally {
      this.unlock();
    }
  }

  private equals(id: number, s: string): boolean {
    const a = this.offsets[id];
    if (this.offsets[id + 1] - a !== s.length) return false;
    for (let i = 0; i < s.length; i++) if (this.chars[a + i] !== s.charCodeAt(i)) return false;
    return true;
  }

  private lock(): void {
    while (Atomics.compareExchange(this.head, LOCK, 0, 1) !== 0) Atomics.wait(this.head, LOCK, 1, 1);
  }

  private unlock(): void {
    Atomics.store(this.head, LOCK, 0);
    Atomics.notify(this.head, LOCK, 1);
  }
}

/** An encoder whose string ids are the shared table's: every worker encodes a state to the same words. */
export class SharedEncoder extends Encoder {
  private readonly ids = new Map<string, number>();

  constructor(private readonly table: SharedStrings) {
    super();
  }

  override intern(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.table.intern(s);
      this.ids.set(s, id);
      this.strings[id] = s;
    }
    return id;
  }

  /** Learns every string other workers added, so that states they encoded decode here. */
  sync(): void {
    const n = this.table.count;
    for (let id = 0; id < n; id++) {
      if (this.strings[id] !== undefined) continue;
      const s = this.table.get(id);
      this.ids.set(s, id);
      this.strings[id] = s;
    }
  }
}
