/**
 * Typed wrappers over opset-17 operators. Single-operand collectives
 * (a Sum/Concat/Split of one tensor) collapse to the tensor itself so that
 * degenerate cases (tp = 1, one chunk) build the same graph as the plain op.
 */
import type { GraphBuilder } from './graph.ts';

export const matmul = (g: GraphBuilder, a: string, b: string): string => g.op('MatMul', [a, b]);
export const add = (g: GraphBuilder, a: string, b: string): string => g.op('Add', [a, b]);
export const mul = (g: GraphBuilder, a: string, b: string): string => g.op('Mul', [a, b]);
export const div = (g: GraphBuilder, a: string, b: string): string => g.op('Div', [a, b]);
export const relu = (g: GraphBuilder, x: string): string => g.op('Relu', [x]);
export const sqrt = (g: GraphBuilder, x: string): string => g.op('Sqrt', [x]);

/** Elementwise sum of many tensors: how an all-reduce is modelled. */
export function sum(g: GraphBuilder, xs: readonly string[]): string {
  if (xs.length === 0) throw new Error('sum of no tensors');
  return xs.length === 1 ? xs[0]! : g.op('Sum', xs);
}

export function concat(g: GraphBuilder, xs: readonly string[], axis: number): string {
  if (xs.length === 0) throw new Error('concat of no tensors');
  return xs.length === 1 ? xs[0]! : g.op('Concat', xs, { axis: { i: axis } });
}

export function split(g: GraphBuilder, x: string, sizes: readonly number[], axis: number): string[] {
  if (sizes.length === 1) return [x];
  return g.opN('Split', [x, g.int64(sizes)], sizes.length, { axis: { i: axis } });
}

/** x[start:end] along `axis`. */
export function slice(g: GraphBuilder, x: string, axis: number, start: number, end: number): string {
  return g.op('Slice', [x, g.int64([start]), g.int64([end]), g.int64([axis])]);
}

/** Zero padding; `pads` is ONNX order: all begins, then all ends. */
export function pad(g: GraphBuilder, x: string, pads: readonly number[]): string {
  return g.op('Pad', [x, g.int64(pads)], { mode: { s: 'constant' } });
}

export function reduceSum(g: GraphBuilder, x: string, axes: readonly number[], keepdims: boolean): string {
  return g.op('ReduceSum', [x, g.int64(axes)], { keepdims: { i: keepdims ? 1 : 0 } });
}

/** Opset 17 still takes ReduceMean axes as an attribute (input only from 18). */
export function reduceMean(g: GraphBuilder, x: string, axes: readonly number[], keepdims: boolean): string {
  return g.op('ReduceMean', [x], { axes: { ints: axes }, keepdims: { i: keepdims ? 1 : 0 } });
}

export function unsqueeze(g: GraphBuilder, x: string, axes: readonly number[]): string {
  return g.op('Unsqueeze', [x, g.int64(axes)]);
}

export const softmax = (g: GraphBuilder, x: string, axis: number): string =>
  g.op('Softmax', [x], { axis: { i: axis } });

/** Largest-k along `axis`, sorted descending; ties go to the lower index (ONNX spec). */
export function topK(g: GraphBuilder, x: string, k: number, axis: number): { values: string; indices: string } {
  const [values, indices] = g.opN('TopK', [x, g.int64([k])], 2, {
    axis: { i: axis },
    largest: { i: 1 },
    sorted: { i: 1 },
  });
  return { values: values!, indices: indices! };
}

export const gatherElements = (g: GraphBuilder, data: string, indices: string, axis: number): string =>
  g.op('GatherElements', [data, indices], { axis: { i: axis } });

export const gatherND = (g: GraphBuilder, data: string, indices: string): string => g.op('GatherND', [data, indices]);
