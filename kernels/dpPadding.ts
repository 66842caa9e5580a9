/**
 * (b) Data-parallel attention padding. Each of dp ranks holds c_r token rows
 * [c_r, H]. Before the shared (TP) part of the layer the ranks' tokens are
 * gathered into one buffer, either
 *   - all-gather: every rank pads to max(c) with zero rows, buffer = concat, max*dp rows;
 *   - all-reduce: zeroed buffer of sum(c) rows, rank r writes at its prefix offset, buffer = sum.
 * The FFN runs on the whole buffer, then each rank slices its real rows back out.
 */
import { emitFfn, ffnDims, ffnFeeds, ffnInputs, ffnRef, type FfnWeights } from './ffn.ts';
import { GraphBuilder } from './onnx/graph.ts';
import * as op from './onnx/ops.ts';
import { runModel, take } from './onnx/session.ts';
import { dim, expectShape, type Tensor, type TensorLike } from './tensor.ts';

export type GatherMode = 'allGather' | 'allReduce';

/** All-gather iff it moves fewer rows than the sum buffer would: 2 * sum > max * dp. */
export function dpGatherMode(counts: readonly number[]): GatherMode {
  const total = counts.reduce((a, b) => a + b, 0);
  const max = Math.max(0, ...counts);
  return 2 * total > max * counts.length ? 'allGather' : 'allReduce';
}

export interface DpLayout {
  readonly mode: GatherMode;
  readonly counts: readonly number[];
  /** Rows of the gathered buffer. */
  readonly rows: number;
  /** First buffer row of each rank's real tokens. */
  readonly offsets: readonly number[];
}

export function dpLayout(counts: readonly number[], mode: GatherMode = dpGatherMode(counts)): DpLayout {
  if (counts.length === 0) throw new RangeError('dp must be >= 1');
  for (const c of counts) if (!Number.isSafeInteger(c) || c < 0) throw new RangeError(`bad token count ${c}`);
  if (mode === 'allGather') {
    const max = Math.max(...counts);
    return { mode, counts, rows: max * counts.length, offsets: counts.map((_, r) => r * max) };
  }
  const offsets: number[] = [];
  let rows = 0;
  for (const c of counts) {
    offsets.push(rows);
    rows += c;
  }
  return { mode, counts, rows, offsets };
}

/** Inputs x0..x{dp-1} and the FFN weights; outputs `gathered` [rows, H] and y0..y{dp-1}. */
export function buildDpPadding(layout: DpLayout, hidden: number, inner: number): Uint8Array {
  const { counts, rows, offsets } = layout;
  const g = new GraphBuilder(`dp_padding_${layout.mode}`);
  const xs = counts.map((c, r) => g.input(`x${r}`, [c, hidden]));
  const ffn = ffnInputs(g, hidden, inner);

  let gathered: string;
  if (layout.mode === 'allGather') {
    const max = rows / counts.length;
    gathered = op.concat(g, xs.map((x, r) => op.pad(g, x, [0, 0, max - counts[r]!, 0])), 0);
  } else {
    // Each rank's contribution is zero outside its own rows, so the sum places rather than mixes.
    gathered = op.sum(g, xs.map((x, r) => op.pad(g, x, [offsets[r]!, 0, rows - offsets[r]! - counts[r]!, 0])));
  }
  g.output(gathered, 'gathered', [rows, hidden]);

  const y = emitFfn(g, gathered, ffn);
  counts.forEach((c, r) => g.output(op.slice(g, y, 0, offsets[r]!, offsets[r]! + c), `y${r}`, [c, hidden]));
  return g.build();
}

export interface DpPaddingArgs {
  /** Per-rank token rows, [c_r, H]. */
  readonly xs: readonly TensorLike[];
  readonly ffn: FfnWeights;
  /** Defaults to the rule in dpGatherMode. */
  readonly mode?: GatherMode | undefined;
}

export interface DpPaddingResult {
  readonly layout: DpLayout;
  readonly gathered: Tensor;
  readonly ys: Tensor[];
}

function countsOf(args: DpPaddingArgs, hidden: number): number[] {
  return args.xs.map((x, r) => {
    const c = dim(x, 0, `xs[${r}]`);
    expectShape(x, [c, hidden], `xs[${r}]`);
    return c;
  });
}

export async function dpPaddingForward(args: DpPaddingArgs): Promise<DpPaddingResult> {
  const { hidden, inner } = ffnDims(args.ffn);
  const layout = dpLayout(countsOf(args, hidden), args.mode);
  const feeds: Record<string, TensorLike> = ffnFeeds(args.ffn);
  args.xs.forEach((x, r) => (feeds[`x${r}`] = x));
  const out = await runModel(buildDpPadding(layout, hidden, inner), feeds);
  return { layout, gathered: take(out, 'gathered'), ys: args.xs.map((_, r) => take(out, `y${r}`)) };
}

/** Float64 FFN of each rank's own rows: padding and gathering must be invisible. */
export function dpPaddingRef(args: Pick<DpPaddingArgs, 'xs' | 'ffn'>): Float64Array[] {
  return args.xs.map((x) => ffnRef(x, args.ffn));
}
