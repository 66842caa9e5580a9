/** The visited set and the per-state columns: exact membership through growth, and the bytes they cost. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedColumn, FingerprintSet } from '../model/fingerprints.ts';

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

  it('stays between 76% and 92% full once grown: at most 10.6 bytes a fingerprint', () => {
    const set = new FingerprintSet(1024);
    let x = 12345;
    for (let n = 1; n <= 300_000; n++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      set.add(x, n);
      if (n > 2000 && n % 997 === 0) expect(set.bytes / set.size).toBeLessThanOrEqual(10.6);
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
