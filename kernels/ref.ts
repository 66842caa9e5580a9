/**
 * Float64 row-major linear algebra used by the plain-TS references. Inputs are
 * float32 tensors widened exactly, so the only rounding left in a reference is
 * float64's, far below the float32 tolerance the oracle is judged against.
 */

/** [n, k] x [k, m] -> [n, m]. */
export function matmul64(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      if (aip === 0) continue;
      for (let j = 0; j < m; j++) out[i * m + j]! += aip * b[p * m + j]!;
    }
  }
  return out;
}

/** In place: every row of the [n, m] matrix gets `bias` added. */
export function addRows64(y: Float64Array, bias: ArrayLike<number>, m: number): Float64Array {
  for (let i = 0; i < y.length; i++) y[i]! += bias[i % m]!;
  return y;
}

export function relu64(y: Float64Array): Float64Array {
  for (let i = 0; i < y.length; i++) if (y[i]! < 0) y[i] = 0;
  return y;
}

export function add64(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (v, i) => v + b[i]!);
}

/** Row-wise softmax of an [n, m] matrix. */
export function softmaxRows64(x: ArrayLike<number>, n: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let j = 0; j < m; j++) max = Math.max(max, x[i * m + j]!);
    let s = 0;
    for (let j = 0; j < m; j++) s += out[i * m + j] = Math.exp(x[i * m + j]! - max);
    for (let j = 0; j < m; j++) out[i * m + j]! /= s;
  }
  return out;
}

/** RMSNorm over the last dimension of [n, m], scaled by `gamma`. */
export function rmsNorm64(x: ArrayLike<number>, gamma: ArrayLike<number>, n: number, m: number, eps: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    let ms = 0;
    for (let j = 0; j < m; j++) ms += x[i * m + j]! ** 2;
    const inv = 1 / Math.sqrt(ms / m + eps);
    for (let j = 0; j < m; j++) out[i * m + j] = x[i * m + j]! * inv * gamma[j]!;
  }
  return out;
}

/** Rows [start, end) of an [n, m] matrix. */
export function rows64(x: ArrayLike<number>, m: number, start: number, end: number): Float64Array {
  return Float64Array.from({ length: (end - start) * m }, (_, i) => x[start * m + i]!);
}
