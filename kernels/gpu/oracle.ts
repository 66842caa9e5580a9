/**
 * Checks the GPU harness's recorded float32 outputs against the ONNX oracle: the same seeded inputs
 * (kernels/random.ts, mirrored in harness.py) run through the reference graphs on onnxruntime's CPU provider.
 */
import { dpPaddingForward } from '../dpPadding.ts';
import { randomTensor, rng } from '../random.ts';
import { relErr } from '../relerr.ts';
import { rowParallelLinear } from '../rowParallel.ts';

export type RecordedOutput =
  | { kernel: 'row-parallel'; seed: number; n: number; k: number; m: number; tp: number; chunk: number; y: number[] }
  | { kernel: 'dp-padding'; seed: number; counts: number[]; h: number; f: number; mode: string; ys: number[][] };

export interface OracleCheck {
  readonly kernel: string;
  readonly seed: number;
  readonly relErr: number;
  readonly ok: boolean;
}

/** Float32 agreement the issue asks for. */
export const ORACLE_TOLERANCE = 1e-5;

const tensorFrom = (seed: number, shape: number[]) => randomTensor(rng(seed), shape);

export async function checkOutput(rec: RecordedOutput): Promise<OracleCheck> {
  if (rec.kernel === 'row-parallel') {
    const { y } = await rowParallelLinear({
      x: tensorFrom(rec.seed, [rec.n, rec.k]),
      w: tensorFrom(rec.seed + 1, [rec.k, rec.m]),
      bias: tensorFrom(rec.seed + 2, [rec.m]),
      tp: rec.tp,
      chunkSize: rec.chunk,
    });
    const err = relErr(rec.y, y.data);
    return { kernel: rec.kernel, seed: rec.seed, relErr: err, ok: err <= ORACLE_TOLERANCE };
  }
  const xs = rec.counts.map((c, r) => tensorFrom(rec.seed + 10 + r, [c, rec.h]));
  const ffn = {
    w1: tensorFrom(rec.seed + 1, [rec.h, rec.f]),
    b1: tensorFrom(rec.seed + 2, [rec.f]),
    w2: tensorFrom(rec.seed + 3, [rec.f, rec.h]),
    b2: tensorFrom(rec.seed + 4, [rec.h]),
  };
  const { ys } = await dpPaddingForward({ xs, ffn });
  const got = rec.ys.flat();
  const want = ys.flatMap((t) => Array.from(t.data));
  const err = got.length === want.length ? relErr(got, want) : Number.POSITIVE_INFINITY;
  return { kernel: rec.kernel, seed: rec.seed, relErr: err, ok: err <= ORACLE_TOLERANCE };
}
