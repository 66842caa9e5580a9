import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chunkBoundaries,
  dpGatherMode,
  dpLayout,
  dpPaddingForward,
  dpPaddingRef,
  ffnForward,
  moeForward,
  moeRef,
  pipelineFused,
  pipelineRef,
  pipelineTwoStage,
  placeExperts,
  prChunkSize,
  randomTensor,
  relErr,
  rng,
  rowParallelLinear,
  rowParallelLinearRef,
  shardBoundaries,
  type ExpertWeights,
  type FfnWeights,
  type GatherMode,
  type PipelineWeights,
  type Range,
} from '../kernels/index.ts';
import { ProtoWriter } from '../kernels/onnx/proto.ts';

/** The oracle's contract: float32 ONNX vs float64 reference. */
const F32_TOL = 1e-5;
/** Two float32 ONNX paths over different row counts: the CPU GEMM may block (and so round) differently. */
const SAME_TOL = 1e-6;
/** A fault must miss by far more than the tolerance for the oracle to be useful. */
const FAULT_MIN = 1e-3;
const RUNS = { numRuns: 20 };

const seed = fc.integer({ min: 0, max: 0x7fffffff });

function concat(parts: readonly ArrayLike<number>[]): Float64Array {
  return Float64Array.from(parts.flatMap((p) => Array.from(p)));
}

describe('partition', () => {
  it('chunks cover [0, n) contiguously, all full but the last', () => {
    // Chunk sizes down to n / 64 keep the chunk count (and the test) small.
    const nAndChunk = fc
      .integer({ min: 0, max: 100_000 })
      .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: Math.max(1, Math.floor(n / 64)), max: 20_000 })));
    fc.assert(
      fc.property(nAndChunk, ([n, c]) => {
        const chunks = chunkBoundaries(n, c);
        expect(chunks[0]!.start).toBe(0);
        expect(chunks.at(-1)!.end).toBe(n);
        chunks.forEach((ch, i) => {
          if (i > 0) expect(ch.start).toBe(chunks[i - 1]!.end);
          if (chunks.length > 1 && i < chunks.length - 1) expect(ch.end - ch.start).toBe(c);
        });
        expect(chunks.length).toBe(Math.ceil(n / c) < 2 ? 1 : Math.ceil(n / c));
      }),
    );
  });

  it('applies the PR rule: 5120 rows, n // 3 from 16384, tiny last chunks included', () => {
    const shape = (n: number): number[] => chunkBoundaries(n, prChunkSize(n)).map((r) => r.end - r.start);
    expect(shape(5120)).toEqual([5120]);
    expect(shape(5121)).toEqual([5120, 1]);
    expect(shape(16383)).toEqual([5120, 5120, 5120, 1023]);
    expect(shape(16384)).toEqual([5461, 5461, 5461, 1]);
    expect(shape(16386)).toEqual([5462, 5462, 5462]);
    expect(shape(16387)).toEqual([5462, 5462, 5462, 1]);
  });

  it('splits K into near-even TP shards', () => {
    expect(shardBoundaries(10, 4)).toEqual<Range[]>([
      { start: 0, end: 3 },
      { start: 3, end: 6 },
      { start: 6, end: 8 },
      { start: 8, end: 10 },
    ]);
    expect(() => shardBoundaries(2, 3)).toThrow(RangeError);
  });
});

describe('protobuf writer', () => {
  it('encodes varints, including negative int64 as 10 bytes', () => {
    expect([...new ProtoWriter().int(1, 300).finish()]).toEqual([0x08, 0xac, 0x02]);
    const neg = new ProtoWriter().int(1, -1).finish();
    expect([...neg]).toEqual([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });
});

const rowParallelCase = fc
  .record({
    n: fc.integer({ min: 1, max: 64 }),
    k: fc.integer({ min: 1, max: 32 }),
    nOut: fc.integer({ min: 4, max: 16 }),
    tpWanted: fc.integer({ min: 1, max: 8 }),
    chunkFrac: fc.double({ min: 0, max: 1.1, noNaN: true }),
    seed,
  })
  .map(({ n, k, nOut, tpWanted, chunkFrac, seed: s }) => {
    const next = rng(s);
    return {
      x: randomTensor(next, [n, k]),
      w: randomTensor(next, [k, nOut]),
      bias: randomTensor(next, [nOut]),
      tp: Math.min(tpWanted, k),
      chunkSize: Math.max(1, Math.ceil(chunkFrac * n)),
    };
  });

describe('(a) row-parallel linear', () => {
  it('chunked equals unchunked, and both match the float64 reference', async () => {
    await fc.assert(
      fc.asyncProperty(rowParallelCase, async ({ x, w, bias, tp, chunkSize }) => {
        const ref = rowParallelLinearRef({ x, w, bias });
        const whole = await rowParallelLinear({ x, w, bias, tp });
        const chunked = await rowParallelLinear({ x, w, bias, tp, chunkSize });
        expect(whole.chunks).toHaveLength(1);
        expect(chunked.y.shape).toEqual(whole.y.shape);
        expect(relErr(chunked.y.data, whole.y.data)).toBeLessThanOrEqual(SAME_TOL);
        expect(relErr(whole.y.data, ref)).toBeLessThanOrEqual(F32_TOL);
        expect(relErr(chunked.y.data, ref)).toBeLessThanOrEqual(F32_TOL);
      }),
      RUNS,
    );
  });

  it('detects a chunk all-reduced twice, a missing shard and a bias added per shard', async () => {
    await fc.assert(
      fc.asyncProperty(
        rowParallelCase.filter((c) => c.tp >= 2),
        async ({ x, w, bias, tp, chunkSize }) => {
          const ref = rowParallelLinearRef({ x, w, bias });
          // The last chunk is the smallest (often one row): the hardest to notice.
          const lastChunk = chunkBoundaries(x.shape[0]!, chunkSize).length - 1;
          const faults = [
            { kind: 'reduceTwice', chunk: lastChunk },
            { kind: 'dropShard', shard: tp - 1 },
            { kind: 'biasPerShard' },
          ] as const;
          for (const fault of faults) {
            const bad = await rowParallelLinear({ x, w, bias, tp, chunkSize, fault });
            expect(relErr(bad.y.data, ref), fault.kind).toBeGreaterThan(FAULT_MIN);
          }
        },
      ),
      RUNS,
    );
  });
});

function randomFfn(next: () => number, hidden: number, inner: number): FfnWeights {
  return {
    w1: randomTensor(next, [hidden, inner]),
    b1: randomTensor(next, [inner]),
    w2: randomTensor(next, [inner, hidden]),
    b2: randomTensor(next, [hidden]),
  };
}

describe('(b) data-parallel attention padding', () => {
  it('chooses all-gather iff 2 * sum > max * dp', () => {
    expect(dpGatherMode([4, 4])).toBe('allGather');
    expect(dpGatherMode([3, 1])).toBe('allGather');
    expect(dpGatherMode([3, 3, 0])).toBe('allGather');
    expect(dpGatherMode([2, 2, 0, 0])).toBe('allReduce'); // 8 > 8 is false
    expect(dpGatherMode([8, 0, 0, 0])).toBe('allReduce');
    expect(dpLayout([3, 1, 2], 'allGather')).toMatchObject({ rows: 9, offsets: [0, 3, 6] });
    expect(dpLayout([3, 1, 2], 'allReduce')).toMatchObject({ rows: 6, offsets: [0, 3, 4] });
  });

  it('padded path in both gather modes equals the unpadded per-rank FFN', async () => {
    const dpCase = fc.record({
      counts: fc.array(fc.integer({ min: 0, max: 16 }), { minLength: 1, maxLength: 4 }),
      hidden: fc.integer({ min: 1, max: 16 }),
      inner: fc.integer({ min: 1, max: 16 }),
      seed,
    });
    await fc.assert(
      fc.asyncProperty(dpCase, async ({ counts, hidden, inner, seed: s }) => {
        const next = rng(s);
        const ffn = randomFfn(next, hidden, inner);
        const xs = counts.map((c) => randomTensor(next, [c, hidden]));
        const ref = dpPaddingRef({ xs, ffn });
        const unpadded = await Promise.all(xs.map((x) => ffnForward(x, ffn)));
        for (const mode of ['allGather', 'allReduce'] as GatherMode[]) {
          const { ys, gathered, layout } = await dpPaddingForward({ xs, ffn, mode });
          // The collective places each rank's rows verbatim and zeroes everything else.
          const expected = new Float32Array(layout.rows * hidden);
          xs.forEach((x, r) => expected.set(x.data, layout.offsets[r]! * hidden));
          expect(gathered.data).toEqual(expected);
          ys.forEach((y, r) => expect(y.shape).toEqual([counts[r], hidden]));
          expect(relErr(concat(ys.map((y) => y.data)), concat(unpadded.map((y) => y.data)))).toBeLessThanOrEqual(SAME_TOL);
          expect(relErr(concat(ys.map((y) => y.data)), concat(ref))).toBeLessThanOrEqual(F32_TOL);
        }
        expect(relErr(concat(unpadded.map((y) => y.data)), concat(ref))).toBeLessThanOrEqual(F32_TOL);
      }),
      RUNS,
    );
  });
});

/** A placement: every logical expert once, plus `extra` redundant replicas, shuffled. */
function randomPlacement(next: () => number, numLogical: number, extra: number): number[] {
  const p2l = Array.from({ length: numLogical }, (_, e) => e);
  for (let i = 0; i < extra; i++) p2l.push(Math.floor(next() * numLogical));
  for (let i = p2l.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p2l[i], p2l[j]] = [p2l[j]!, p2l[i]!];
  }
  return p2l;
}

const moeCase = fc
  .record({
    n: fc.integer({ min: 1, max: 32 }),
    hidden: fc.integer({ min: 1, max: 12 }),
    inner: fc.integer({ min: 1, max: 12 }),
    numLogical: fc.integer({ min: 2, max: 6 }),
    extraA: fc.integer({ min: 0, max: 6 }),
    extraB: fc.integer({ min: 0, max: 6 }),
    kFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    seed,
  })
  .map((c) => {
    const next = rng(c.seed);
    const logical: ExpertWeights = {
      w1: randomTensor(next, [c.numLogical, c.hidden, c.inner]),
      w2: randomTensor(next, [c.numLogical, c.inner, c.hidden]),
    };
    return {
      x: randomTensor(next, [c.n, c.hidden]),
      router: randomTensor(next, [c.hidden, c.numLogical]),
      logical,
      topK: 1 + Math.min(c.numLogical - 1, Math.floor(c.kFrac * c.numLogical)),
      placementA: randomPlacement(next, c.numLogical, c.extraA),
      placementB: randomPlacement(next, c.numLogical, c.extraB),
    };
  });

describe('(c) MoE over a physical expert placement', () => {
  it('is unchanged when the placement is permuted and replicated differently', async () => {
    await fc.assert(
      fc.asyncProperty(moeCase, async ({ x, router, logical, topK, placementA, placementB }) => {
        const ref = moeRef({ x, router, logical, topK });
        const run = (p2l: number[]) =>
          moeForward({ x, router, physical: placeExperts(logical, p2l), physicalToLogical: p2l, topK });
        const a = await run(placementA);
        const b = await run(placementB);
        // Replicas hold identical weights and each slot's product is computed alone: bitwise equal.
        expect(b.y.data).toEqual(a.y.data);
        expect(relErr(a.y.data, ref)).toBeLessThanOrEqual(F32_TOL);
      }),
      RUNS,
    );
  });

  it('detects weights that were moved without updating physical_to_logical', async () => {
    await fc.assert(
      fc.asyncProperty(moeCase, async ({ x, router, logical, topK, placementA }) => {
        const ref = moeRef({ x, router, logical, topK });
        const numLogical = router.shape[1]!;
        const stale = placementA.map((e) => (e + 1) % numLogical);
        const bad = await moeForward({ x, router, physical: placeExperts(logical, placementA), physicalToLogical: stale, topK });
        // What the stale map computes: logical expert e runs with the weights of expert e - 1.
        const shift = (t: ExpertWeights['w1']) => {
          const per = t.data.length / numLogical;
          const data = new Float32Array(t.data.length);
          for (let e = 0; e < numLogical; e++) {
            const from = ((e + numLogical - 1) % numLogical) * per;
            for (let j = 0; j < per; j++) data[e * per + j] = t.data[from + j]!;
          }
          return { data, shape: t.shape };
        };
        const staleRef = moeRef({ x, router, logical: { w1: shift(logical.w1), w2: shift(logical.w2) }, topK });
        expect(relErr(bad.y.data, staleRef)).toBeLessThanOrEqual(F32_TOL);
        // Detected whenever the moved weights compute something else (not when, say, every expert's ReLU is
        // zero on these tokens: then no mapping can be told from another).
        if (relErr(staleRef, ref) > 10 * FAULT_MIN) expect(relErr(bad.y.data, ref)).toBeGreaterThan(FAULT_MIN);
      }),
      RUNS,
    );
  });
});

const pipelineCase = fc
  .record({
    n: fc.integer({ min: 1, max: 16 }),
    hidden: fc.integer({ min: 2, max: 16 }),
    inner: fc.integer({ min: 1, max: 16 }),
    layers: fc.integer({ min: 1, max: 4 }),
    splitFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    seed,
  })
  .map((c) => {
    const next = rng(c.seed);
    const weights: PipelineWeights = {
      layers: Array.from({ length: c.layers }, () => ({
        norm: randomTensor(next, [c.hidden]),
        up: randomTensor(next, [c.hidden, c.inner]),
        down: randomTensor(next, [c.inner, c.hidden]),
      })),
      finalNorm: randomTensor(next, [c.hidden]),
    };
    return {
      x: randomTensor(next, [c.n, c.hidden]),
      weights,
      splitAt: 1 + Math.min(c.layers - 1, Math.floor(c.splitFrac * c.layers)),
    };
  });

describe('(d) two pipeline stages passing {hidden, residual}', () => {
  it('split pipeline equals the fused computation and the float64 reference', async () => {
    await fc.assert(
      fc.asyncProperty(pipelineCase, async ({ x, weights, splitAt }) => {
        const fused = await pipelineFused({ x, weights });
        const split = await pipelineTwoStage({ x, weights, splitAt });
        expect(split.proxy.hidden.shape).toEqual(x.shape);
        expect(split.proxy.residual.shape).toEqual(x.shape);
        // Same ops on the same data, only cut into two graphs: bitwise equal.
        expect(split.out.data).toEqual(fused.out.data);
        expect(relErr(fused.out.data, pipelineRef({ x, weights }))).toBeLessThanOrEqual(F32_TOL);
      }),
      RUNS,
    );
  });

  it('detects a tensor dict that lost its residual', async () => {
    await fc.assert(
      fc.asyncProperty(pipelineCase, async ({ x, weights, splitAt }) => {
        const bad = await pipelineTwoStage({ x, weights, splitAt, fault: { kind: 'dropResidual' } });
        expect(relErr(bad.out.data, pipelineRef({ x, weights }))).toBeGreaterThan(FAULT_MIN);
      }),
      RUNS,
    );
  });
});
