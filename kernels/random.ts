/**
 * Seeded data for kernel inputs. Property tests draw a seed (cheap to shrink)
 * and expand it here; a GPU harness can regenerate identical inputs from it.
 */
import { numel, type Tensor } from './tensor.ts';

/** The seeded generator (mulberry32): the same seed gives the same inputs here and in the GPU harness. */
export { mulberry32 as rng } from '../model/random.ts';

/** Uniform in [-scale, scale), already representable in float32. */
export function randomTensor(next: () => number, shape: readonly number[], scale = 1): Tensor {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = (next() * 2 - 1) * scale;
  return { data, shape: [...shape] };
}
