/**
 * (a) Row-parallel linear Y = X W + b over `tp` tensor-parallel ranks.
 * X [n, K] is split along K and W [K, N] along rows; rank t computes X_t W_t,
 * the all-reduce is a Sum over ranks and the bias is added once, after it.
 * Optionally the rows are processed in chunks (one all-reduce per chunk),
 * whose outputs are concatenated.
 */
import { GraphBuilder } from './onnx/graph.ts';
import * as op from './onnx/ops.ts';
import { runModel, take } from './onnx/session.ts';
import { chunkBoundaries, shardBoundaries, sizes, type Range } from './partition.ts';
import { addRows64, matmul64 } from './ref.ts';
import { dim, expectShape, type Tensor, type TensorLike } from './tensor.ts';

/** Known ways to get the collective wrong, injected so tests can prove the oracle notices. */
export type RowParallelFault =
  /** One chunk's already-reduced sum is all-reduced again: tp * S (invisible at tp = 1). */
  | { readonly kind: 'reduceTwice'; readonly chunk: number }
  /** One rank's partial product never reaches the reduction. */
  | { readonly kind: 'dropShard'; readonly shard: number }
  /** Every rank adds the bias before the reduce, so it lands tp times. */
  | { readonly kind: 'biasPerShard' };

export interface RowParallelSpec {
  readonly n: number;
  readonly k: number;
  readonly nOut: number;
  readonly tp: number;
  /** Rows per chunk; omitted (or k < 2 chunks) means unchunked. */
  readonly chunkSize?: number | undefined;
  readonly fault?: RowParallelFault | undefined;
}

export interface RowParallelLayout {
  readonly chunks: Range[];
  readonly shards: Range[];
}

export function rowParallelLayout(spec: RowParallelSpec): RowParallelLayout {
  const chunks = spec.chunkSize === undefined ? [{ start: 0, end: spec.n }] : chunkBoundaries(spec.n, spec.chunkSize);
  const shards = shardBoundaries(spec.k, spec.tp);
  const f = spec.fault;
  if (f?.kind === 'reduceTwice' && !(f.chunk >= 0 && f.chunk < chunks.length)) {
    throw new RangeError(`fault chunk ${f.chunk} outside 0..${chunks.length - 1}`);
  }
  if (f?.kind === 'dropShard' && !(f.shard >= 0 && f.shard < shards.length)) {
    throw new RangeError(`fault shard ${f.shard} outside 0..${shards.length - 1}`);
  }
  return { chunks, shards };
}

/** Model with inputs x [n, K], w [K, N], bias [N] and output y [n, N]. */
export function buildRowParallelLinear(spec: RowParallelSpec): Uint8Array {
  const { chunks, shards } = rowParallelLayout(spec);
  const fault = spec.fault;
  const g = new GraphBuilder('row_parallel_linear');
  const x = g.input('x', [spec.n, spec.k]);
  const w = g.input('w', [spec.k, spec.nOut]);
  const bias = g.input('bias', [spec.nOut]);

  // Each rank holds its K-slice of the activations and its row-slice of W.
  const xShards = op.split(g, x, sizes(shards), 1);
  const wShards = op.split(g, w, sizes(shards), 0);

  const outs = chunks.map((c, ci) => {
    const partials: string[] = [];
    xShards.forEach((xs, t) => {
      if (fault?.kind === 'dropShard' && fault.shard === t) return;
      const rows = chunks.length === 1 ? xs : op.slice(g, xs, 0, c.start, c.end);
      const part = op.matmul(g, rows, wShards[t]!);
      partials.push(fault?.kind === 'biasPerShard' ? op.add(g, part, bias) : part);
    });
    let reduced = op.sum(g, partials);
    if (fault?.kind === 'reduceTwice' && fault.chunk === ci) reduced = op.sum(g, shards.map(() => reduced));
    return fault?.kind === 'biasPerShard' ? reduced : op.add(g, reduced, bias);
  });
  g.output(op.concat(g, outs, 0), 'y', [spec.n, spec.nOut]);
  return g.build();
}

export interface RowParallelArgs {
  readonly x: TensorLike;
  readonly w: TensorLike;
  readonly bias: TensorLike;
  readonly tp: number;
  readonly chunkSize?: number | undefined;
  readonly fault?: RowParallelFault | undefined;
}

export interface RowParallelResult extends RowParallelLayout {
  readonly y: Tensor;
}

function specOf(args: RowParallelArgs): RowParallelSpec {
  const n = dim(args.x, 0, 'x');
  const k = dim(args.x, 1, 'x');
  const nOut = dim(args.w, 1, 'w');
  expectShape(args.x, [n, k], 'x');
  expectShape(args.w, [k, nOut], 'w');
  expectShape(args.bias, [nOut], 'bias');
  return { n, k, nOut, tp: args.tp, chunkSize: args.chunkSize, fault: args.fault };
}

export async function rowParallelLinear(args: RowParallelArgs): Promise<RowParallelResult> {
  const spec = specOf(args);
  const out = await runModel(buildRowParallelLinear(spec), { x: args.x, w: args.w, bias: args.bias });
  return { y: take(out, 'y'), ...rowParallelLayout(spec) };
}

/** Float64 X W + b: what every sharding and chunking must reproduce. */
export function rowParallelLinearRef(args: Pick<RowParallelArgs, 'x' | 'w' | 'bias'>): Float64Array {
  const n = dim(args.x, 0, 'x');
  const k = dim(args.x, 1, 'x');
  const nOut = dim(args.w, 1, 'w');
  return addRows64(matmul64(args.x.data, args.w.data, n, k, nOut), args.bias.data, nOut);
}
