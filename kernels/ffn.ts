/** Linear-ReLU-Linear block: the per-token computation behind the DP gather. */
import { GraphBuilder } from './onnx/graph.ts';
import * as op from './onnx/ops.ts';
import { runModel, take } from './onnx/session.ts';
import { addRows64, matmul64, relu64 } from './ref.ts';
import { dim, expectShape, type Tensor, type TensorLike } from './tensor.ts';

export interface FfnWeights {
  /** [H, F] */ readonly w1: TensorLike;
  /** [F] */ readonly b1: TensorLike;
  /** [F, H] */ readonly w2: TensorLike;
  /** [H] */ readonly b2: TensorLike;
}

export const FFN_INPUTS = ['w1', 'b1', 'w2', 'b2'] as const;

/** Checks the four weights against each other and returns H and F. */
export function ffnDims(ffn: FfnWeights): { hidden: number; inner: number } {
  const hidden = dim(ffn.w1, 0, 'ffn.w1');
  const inner = dim(ffn.w1, 1, 'ffn.w1');
  expectShape(ffn.b1, [inner], 'ffn.b1');
  expectShape(ffn.w2, [inner, hidden], 'ffn.w2');
  expectShape(ffn.b2, [hidden], 'ffn.b2');
  return { hidden, inner };
}

/** Declares the weights as graph inputs named w1, b1, w2, b2. */
export function ffnInputs(g: GraphBuilder, hidden: number, inner: number): Record<(typeof FFN_INPUTS)[number], string> {
  return {
    w1: g.input('w1', [hidden, inner]),
    b1: g.input('b1', [inner]),
    w2: g.input('w2', [inner, hidden]),
    b2: g.input('b2', [hidden]),
  };
}

export function emitFfn(g: GraphBuilder, x: string, w: Record<(typeof FFN_INPUTS)[number], string>): string {
  const h = op.relu(g, op.add(g, op.matmul(g, x, w.w1), w.b1));
  return op.add(g, op.matmul(g, h, w.w2), w.b2);
}

export function ffnFeeds(ffn: FfnWeights): Record<string, TensorLike> {
  return { w1: ffn.w1, b1: ffn.b1, w2: ffn.w2, b2: ffn.b2 };
}

/** The FFN alone on one rank's unpadded rows, through ONNX. */
export async function ffnForward(x: TensorLike, ffn: FfnWeights): Promise<Tensor> {
  const { hidden, inner } = ffnDims(ffn);
  const rows = dim(x, 0, 'x');
  expectShape(x, [rows, hidden], 'x');
  const g = new GraphBuilder('ffn');
  const y = emitFfn(g, g.input('x', [rows, hidden]), ffnInputs(g, hidden, inner));
  g.output(y, 'y', [rows, hidden]);
  return take(await runModel(g.build(), { x, ...ffnFeeds(ffn) }), 'y');
}

export function ffnRef(x: TensorLike, ffn: FfnWeights): Float64Array {
  const { hidden, inner } = ffnDims(ffn);
  const rows = dim(x, 0, 'x');
  const h = relu64(addRows64(matmul64(x.data, ffn.w1.data, rows, hidden, inner), ffn.b1.data, inner));
  return addRows64(matmul64(h, ffn.w2.data, rows, inner, hidden), ffn.b2.data, hidden);
}
