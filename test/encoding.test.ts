import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Data, Encoder, equalData } from '../model/data.ts';

const scalar = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -5, max: 5 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom('working', 'prepared', 'a', 'b', ''),
  fc.string({ maxLength: 4 }),
);
const { data } = fc.letrec<{ data: Data }>((tie) => ({
  data: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.array(tie('data'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom('x', 'y', 'z', 'rm', 'tm', 'with space', '0'), tie('data'), { maxKeys: 4 }),
  ),
}));

/** A value shaped like `v` with some leaves changed: exercises the fast path's "same shape" branches. */
function perturb(v: Data, seed: number): Data {
  if (v === null || typeof v !== 'object') return seed % 3 === 0 ? (typeof v === 'number' ? v + 1 : v) : v;
  if (Array.isArray(v)) return v.map((x, i) => perturb(x, seed + i));
  return Object.fromEntries(Object.entries(v).reverse().map(([k, x], i) => [k, perturb(x, seed * 7 + i)]));
}

function words(enc: Encoder): number[] {
  return Array.from(enc.words.subarray(0, enc.length));
}

describe('state encoding', () => {
  it('the compiled fast path writes exactly what the generic encoder writes', () => {
    fc.assert(
      fc.property(data, data, fc.nat(), (sample, other, seed) => {
        const enc = new Encoder();
        enc.encodeGeneric(sample);
        enc.specialise(sample);
        for (const v of [sample, other, perturb(sample, seed)]) {
          enc.encode(v);
          const fast = words(enc);
          enc.encodeGeneric(v);
          expect(fast).toEqual(words(enc));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips, and equal data encode alike whatever the key order', () => {
    fc.assert(
      fc.property(data, data, (a, b) => {
        const enc = new Encoder();
        enc.encode(a);
        const wa = words(enc);
        expect(equalData(enc.decode(enc.words, 0), a)).toBe(true);
        enc.encode(perturb(a, 1));
        enc.encode(b);
        const wb = words(enc);
        expect(wa.join() === wb.join()).toBe(equalData(a, b));
      }),
      { numRuns: 500 },
    );
  });

  it('normalises -0 to 0 and keeps wide integers and floats exact', () => {
    const enc = new Encoder();
    for (const v of [-0, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, 0.1, 1e300, -1.5]) {
      enc.encode({ v });
      expect(enc.decode(enc.words, 0)).toEqual({ v: Object.is(v, -0) ? 0 : v });
    }
  });
});
