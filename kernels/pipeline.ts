/**
 * (d) Two pipeline stages passing a {hidden, residual} tensor dict.
 * The model is a stack of pre-norm decoder-style layers with the fused
 * residual add, so the state between layers is genuinely two tensors:
 *
 *   residual = hidden + residual   (first layer: residual = hidden)
 *   hidden   = down(relu(up(rmsnorm(residual))))
 *   out      = rmsnorm(hidden + residual)   after the last layer
 *
 * Stage 0 runs layers [0, splitAt) and emits the dict; stage 1 runs the rest.
 */
import { GraphBuilder } from './onnx/graph.ts';
import * as op from './onnx/ops.ts';
import { runModel, take } from './onnx/session.ts';
import { add64, matmul64, relu64, rmsNorm64 } from './ref.ts';
import { dim, expectShape, type Tensor, type TensorLike } from './tensor.ts';

export const RMS_EPS = 1e-6;

export interface DecoderLayer {
  /** [H] */ readonly norm: TensorLike;
  /** [H, F] */ readonly up: TensorLike;
  /** [F, H] */ readonly down: TensorLike;
}

export interface PipelineWeights {
  readonly layers: readonly DecoderLayer[];
  /** [H] */ readonly finalNorm: TensorLike;
}

/** What stage 1 receives; `dropResidual` models a dict that lost its residual entry. */
export type PipelineFault = { readonly kind: 'dropResidual' };

interface StageSpec {
  readonly n: number;
  readonly hidden: number;
  readonly inner: number;
  /** Global layer indices [from, to) run by this stage. */
  readonly from: number;
  readonly to: number;
  /** 'x': first stage, takes the input; 'dict': takes hidden (+ residual unless dropped). */
  readonly input: 'x' | 'dict' | 'dictWithoutResidual';
  /** 'dict': emits hidden and residual; 'out': applies the final norm. */
  readonly output: 'dict' | 'out';
}

function rmsNorm(g: GraphBuilder, x: string, gamma: string): string {
  const ms = op.reduceMean(g, op.mul(g, x, x), [-1], true);
  const rms = op.sqrt(g, op.add(g, ms, g.float32([RMS_EPS], [])));
  return op.mul(g, op.div(g, x, rms), gamma);
}

export function buildPipelineStage(spec: StageSpec): Uint8Array {
  const { n, hidden: h, inner: f } = spec;
  const g = new GraphBuilder(`pipeline_${spec.from}_${spec.to}`);
  let hidden: string;
  let residual: string | null = null;
  if (spec.input === 'x') {
    hidden = g.input('x', [n, h]);
  } else {
    hidden = g.input('hidden', [n, h]);
    if (spec.input === 'dict') residual = g.input('residual', [n, h]);
  }
  for (let l = spec.from; l < spec.to; l++) {
    const norm = g.input(`l${l}.norm`, [h]);
    const up = g.input(`l${l}.up`, [h, f]);
    const down = g.input(`l${l}.down`, [f, h]);
    residual = residual === null ? hidden : op.add(g, hidden, residual);
    hidden = op.matmul(g, op.relu(g, op.matmul(g, rmsNorm(g, residual, norm), up)), down);
  }
  if (spec.output === 'dict') {
    if (residual === null) throw new Error('a stage emitting the dict must run at least one layer');
    g.output(hidden, 'hidden', [n, h]);
    g.output(residual, 'residual', [n, h]);
  } else {
    const last = residual === null ? hidden : op.add(g, hidden, residual);
    g.output(rmsNorm(g, last, g.input('final_norm', [h])), 'out', [n, h]);
  }
  return g.build();
}

function dims(x: TensorLike, w: PipelineWeights): { n: number; hidden: number; inner: number } {
  const n = dim(x, 0, 'x');
  const hidden = dim(x, 1, 'x');
  const first = w.layers[0];
  const inner = first ? dim(first.up, 1, 'layers[0].up') : 0;
  expectShape(x, [n, hidden], 'x');
  expectShape(w.finalNorm, [hidden], 'finalNorm');
  w.layers.forEach((l, i) => {
    expectShape(l.norm, [hidden], `layers[${i}].norm`);
    expectShape(l.up, [hidden, inner], `layers[${i}].up`);
    expectShape(l.down, [inner, hidden], `layers[${i}].down`);
  });
  return { n, hidden, inner };
}

function weightFeeds(w: PipelineWeights, from: number, to: number, final: boolean): Record<string, TensorLike> {
  const feeds: Record<string, TensorLike> = {};
  for (let l = from; l < to; l++) {
    const layer = w.layers[l]!;
    feeds[`l${l}.norm`] = layer.norm;
    feeds[`l${l}.up`] = layer.up;
    feeds[`l${l}.down`] = layer.down;
  }
  if (final) feeds['final_norm'] = w.finalNorm;
  return feeds;
}

export interface PipelineArgs {
  readonly x: TensorLike;
  readonly weights: PipelineWeights;
}

/** All layers in one graph: the computation the pipeline must reproduce. */
export async function pipelineFused(args: PipelineArgs): Promise<{ out: Tensor }> {
  const d = dims(args.x, args.weights);
  const layers = args.weights.layers.length;
  const model = buildPipelineStage({ ...d, from: 0, to: layers, input: 'x', output: 'out' });
  const out = await runModel(model, { x: args.x, ...weightFeeds(args.weights, 0, layers, true) });
  return { out: take(out, 'out') };
}

export interface PipelineTwoStageArgs extends PipelineArgs {
  /** Stage 0 runs layers [0, splitAt), stage 1 the rest; 1 <= splitAt <= layers. */
  readonly splitAt: number;
  readonly fault?: PipelineFault | undefined;
}

export interface PipelineTwoStageResult {
  /** The tensor dict sent from stage 0 to stage 1. */
  readonly proxy: { readonly hidden: Tensor; readonly residual: Tensor };
  readonly out: Tensor;
}

export async function pipelineTwoStage(args: PipelineTwoStageArgs): Promise<PipelineTwoStageResult> {
  const d = dims(args.x, args.weights);
  const layers = args.weights.layers.length;
  const { splitAt } = args;
  if (!(Number.isInteger(splitAt) && splitAt >= 1 && splitAt <= layers)) {
    throw new RangeError(`splitAt ${splitAt} outside 1..${layers}`);
  }
  const stage0 = buildPipelineStage({ ...d, from: 0, to: splitAt, input: 'x', output: 'dict' });
  const dict = await runModel(stage0, { x: args.x, ...weightFeeds(args.weights, 0, splitAt, false) });
  const proxy = { hidden: take(dict, 'hidden'), residual: take(dict, 'residual') };

  const dropped = args.fault?.kind === 'dropResidual';
  const stage1 = buildPipelineStage({
    ...d,
    from: splitAt,
    to: layers,
    input: dropped ? 'dictWithoutResidual' : 'dict',
    output: 'out',
  });
  const feeds: Record<string, TensorLike> = { hidden: proxy.hidden, ...weightFeeds(args.weights, splitAt, layers, true) };
  if (!dropped) feeds['residual'] = proxy.residual;
  return { proxy, out: take(await runModel(stage1, feeds), 'out') };
}

export function pipelineRef(args: PipelineArgs): Float64Array {
  const { n, hidden: h, inner: f } = dims(args.x, args.weights);
  let hidden: Float64Array = Float64Array.from(args.x.data);
  let residual: Float64Array | null = null;
  for (const layer of args.weights.layers) {
    residual = residual === null ? hidden : add64(hidden, residual);
    const up = relu64(matmul64(rmsNorm64(residual, layer.norm.data, n, h, RMS_EPS), layer.up.data, n, h, f));
    hidden = matmul64(up, layer.down.data, n, f, h);
  }
  const last = residual === null ? hidden : add64(hidden, residual);
  return rmsNorm64(last, args.weights.finalNorm.data, n, h, RMS_EPS);
}
