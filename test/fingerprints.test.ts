/** The visited set and the per-state columns: exact membership through growth, and the bytes they cost. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedColumn, DeltaColumn, FingerprintSet, NO_PARENT, OwnerParentColumn, ParentColumn } from '../model/fingerprints.ts';

describe('FingerprintSet', () => {
  it('agrees with a Set on random fingerprints, through many growths, (0, 0) included', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(7), fc.nat(3000)), { maxLength: 4000 }), (pairs) => {
        const set = new FingerprintSet(16);
        const ref = new Set<string>();
        for (const [hi, lo] of pairs) {
          const key = hi === 0 && lo === 0 ? '0,1' : `${hi},${lo}`;
          expect(set.add(hi, lo)).toBe(!ref.has(key));
          ref.add(key);
        }
        expect(set.size).toBe(ref.size);
        for (const [hi, lo] of pairs) expect(set.has(hi, lo)).toBe(true);
        expect(set.has(99, 99)).toBe(false);
      }),
      { numRuns: 50 },
    );
  });

  it('stays between 59% and 80% full once grown: at most 13.6 bytes a fingerprint', () => {
    const set = new FingerprintSet(1024);
    let x = 12345;
    for (let n = 1; n <= 300_000; n++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      set.add(x, n);
      if (n > 2000 && n % 997 === 0) expect(set.bytes / set.size).toBeLessThanOrEqual(13.6);
    }
  });

  it('graph mode returns the index stored first', () => {
    const set = new FingerprintSet(16, true);
    for (let i = 0; i < 5000; i++) expect(set.addOrFind(i, i * 7, i)).toBe(-1);
    for (let i = 0; i < 5000; i++) expect(set.addOrFind(i, i * 7, 99)).toBe(i);
  });
});

describe('ChunkedColumn', () => {
  it('keeps every value and picks the narrowest width', () => {
    for (const [bound, width] of [[200, 1], [40_000, 2], [2 ** 32, 4]] as const) {
      const c = ChunkedColumn.forValuesBelow(bound);
      const n = 150_000;
      for (let i = 0; i < n; i++) c.push(i % bound);
      for (let i = 0; i < n; i += 997) expect(c.get(i)).toBe(i % bound);
      expect(c.length).toBe(n);
      expect(c.bytes).toBe(Math.ceil(n / 4096) * 4096 * width);
    }
  });
});

describe('DeltaColumn and ParentColumn', () => {
  it('read back every nondecreasing value, across blocks and groups, in about a byte an entry', () => {
    const c = new DeltaColumn();
    const ref: number[] = [];
    let v = 0;
    let x = 99;
    for (let i = 0; i < 120_000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      // Mostly small steps, sometimes huge ones (multi-byte varints that must not straddle a block).
      v += x % 50 === 0 ? x : x % 3;
      c.push(v);
      ref.push(v);
    }
    for (let i = 0; i < ref.length; i += 37) expect(c.get(i)).toBe(ref[i]);
    expect(c.get(ref.length - 1)).toBe(ref[ref.length - 1]);
    expect(c.bytes / c.length).toBeLessThan(1.5);
  });

  it('refuses a decreasing value and an index out of range', () => {
    const c = new DeltaColumn();
    c.push(5);
    expect(() => c.push(4)).toThrow(/nondecreasing/);
    expect(() => c.get(1)).toThrow(/outside/);
  });

  it('ParentColumn keeps initial states apart from state 0', () => {
    const fc = new ParentColumn();
    for (const p of [NO_PARENT, NO_PARENT, 0, 0, 1, 1, 7]) fc.push(p);
    expect([0, 1, 2, 3, 4, 5, 6].map((i) => fc.get(i))).toEqual([NO_PARENT, NO_PARENT, 0, 0, 1, 1, 7]);
  });
});

describe('OwnerParentColumn', () => {
  it('reads back (owner, index) links whose indices grow per owner, across many groups', () => {
    const workers = 3;
    const col = new OwnerParentColumn(workers);
    const ref: [number, number][] = [];
    for (let i = 0; i < 4; i++) {
      col.push(0, NO_PARENT);
      ref.push([0, NO_PARENT]);
    }
    const next = [0, 0, 0];
    let x = 7;
    for (let i = 0; i < 200_000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const o = x % workers;
      next[o] += (x >>> 8) % 3;
      col.push(o, next[o]);
      ref.push([o, next[o]]);
    }
    for (let i = 0; i < ref.length; i += 53) expect([col.owner(i), col.local(i)]).toEqual(ref[i]);
    expect(col.bytes / col.length).toBeLessThan(3);
  });
});
