/**
 * The visited set of a sweep (sweep.ts): one open-addressing table of 64-bit fingerprints in shared memory,
 * into which every worker inserts with compare-and-swap, so no successor travels between workers.
 *
 * A slot is two Int32 words, lo then hi, both forced odd so that 0 means empty (62 bits of the fingerprint
 * remain). A worker claims an empty slot by swapping its lo word in, then writes hi; a worker that meets a
 * claimed slot with its own lo waits for hi (a few instructions away in the claiming worker) before it
 * compares. Linear probing from a multiplicative hash of hi. The table grows only between passes, when no
 * worker is inserting: the coordinator allocates a larger buffer and the workers copy a part of the old one each.
 */
import { SWEEP_STOP_AT } from './protocol.ts';

export class SweepTable {
  private readonly slots: Int32Array;
  readonly capacity: number;
  /** Entries at which a worker asks the others to stop, so that the table grows before it fills. */
  readonly stopAt: number;

  constructor(
    readonly buffer: SharedArrayBuffer,
    control: Int32Array,
  ) {
    this.slots = new Int32Array(buffer);
    this.capacity = this.slots.length >>> 1;
    this.stopAt = Atomics.load(control, SWEEP_STOP_AT);
  }

  static allocate(capacity: number): SharedArrayBuffer {
    return new SharedArrayBuffer(8 * capacity);
  }

  private home(hi: number): number {
    // Multiply-shift onto [0, capacity): capacity need not be a power of two.
    return Math.floor(((Math.imul(hi, 0x9e3779b1) >>> 0) * this.capacity) / 4294967296);
  }

  /** Adds the fingerprint (hi, lo); false when it was there. */
  insert(hi0: number, lo0: number): boolean {
    const hi = hi0 | 1;
    const lo = lo0 | 1;
    const t = this.slots;
    const cap = this.capacity;
    let i = this.home(hi);
    for (let probes = 0; probes < cap; probes++) {
      const k = i << 1;
      // A plain read finds an empty or a claimed slot (aligned Int32 reads do not tear); claiming is a CAS.
      let cur = t[k];
      if (cur === 0) {
        cur = Atomics.compareExchange(t, k, 0, lo);
        if (cur === 0) {
          Atomics.store(t, k + 1, hi);
          return true;
        }
      }
      if (cur === lo) {
        // A plain read sees hi or, just after another worker claimed the slot, 0: then wait for hi.
        let h = t[k + 1];
        while (h === 0) h = Atomics.load(t, k + 1);
        if (h === hi) return false;
      }
      i = i + 1 === cap ? 0 : i + 1;
    }
    throw new Error('sweep: the shared fingerprint table is full (it should have grown first)');
  }

  /**
   * Copies the entries in part `part` of `parts` of `from` into this (larger) table. The workers copy one part
   * each at once, between passes, when none is inserting into `from`: the copies insert by CAS like any other.
   */
  copyPart(from: SharedArrayBuffer, part: number, parts: number): void {
    const t = new Int32Array(from);
    const slots = t.length >>> 1;
    const end = 2 * Math.floor((slots * (part + 1)) / parts);
    for (let k = 2 * Math.floor((slots * part) / parts); k < end; k += 2) if (t[k] !== 0) this.insert(t[k + 1], t[k]);
  }
}
