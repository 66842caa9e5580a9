/**
 * Seeded data for kernel inputs. Property tests draw a seed (cheap to shrink)
 * and expand it here; a GPU harness can regenerate identical inputs from it.
 */
import { numel, type Tensor } from './tensor.ts';

/** mulberry32: tiny, fast, good enough for test data. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in [-scale, scale), already representable in float32. */
export function randomTensor(next: () => number, shape: readonly number[], scale = 1): Tensor {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = (next() * 2 - 1) * scale;
  return { data, shape: [...shape] };
}
