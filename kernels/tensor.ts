/** Dense row-major tensors exchanged with the kernels. */

export interface Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

/** Accepted as input: any numeric array (float64 data is rounded to float32 on feed). */
export interface TensorLike {
  readonly data: ArrayLike<number>;
  readonly shape: readonly number[];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function tensor(data: ArrayLike<number>, shape: readonly number[]): Tensor {
  if (data.length !== numel(shape)) {
    throw new Error(`tensor data has ${data.length} elements, shape [${shape.join(', ')}] needs ${numel(shape)}`);
  }
  return { data: data instanceof Float32Array ? data : Float32Array.from(data), shape: [...shape] };
}

export function toTensor(t: TensorLike): Tensor {
  return tensor(t.data, t.shape);
}

/** Throws unless `t` has the expected rank and sizes; `what` names the argument in the message. */
export function expectShape(t: TensorLike, shape: readonly number[], what: string): void {
  const ok = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
  if (!ok) throw new Error(`${what}: expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`);
  if (t.data.length !== numel(shape)) throw new Error(`${what}: data length ${t.data.length} != ${numel(shape)}`);
}

/** Dimension `i` of a tensor, checked for presence. */
export function dim(t: TensorLike, i: number, what: string): number {
  const d = t.shape[i];
  if (d === undefined) throw new Error(`${what}: rank ${t.shape.length} has no dimension ${i}`);
  return d;
}
