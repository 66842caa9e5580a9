/**
 * (c) Mixture-of-experts with top-k routing over E logical experts whose
 * weights live in P >= E physical slots. `physicalToLogical[p]` names the
 * logical expert slot p holds; an expert may have several replicas (EPLB).
 * Routing picks logical experts; dispatch maps each (token, expert) to one
 * replica, round-robin by token. Any placement holding the same logical
 * weights must give the same output.
 *
 *   probs = softmax(x Wr)            [n, E]
 *   (gate, e) = topk(probs, k)       gates are the unrenormalised probabilities
 *   y = sum_j gate_j * expert_{e_j}(x),  expert(x) = relu(x W1) W2
 */
import { GraphBuilder } from './onnx/graph.ts';
import * as op from './onnx/ops.ts';
import { runModel, take } from './onnx/session.ts';
import { matmul64, relu64, softmaxRows64 } from './ref.ts';
import { dim, expectShape, numel, type Tensor, type TensorLike } from './tensor.ts';

export interface ExpertWeights {
  /** [experts, H, F] */ readonly w1: TensorLike;
  /** [experts, F, H] */ readonly w2: TensorLike;
}

/** Physical slots of each logical expert; every expert needs at least one. */
export function replicasOf(physicalToLogical: readonly number[], numLogical: number): number[][] {
  const replicas: number[][] = Array.from({ length: numLogical }, () => []);
  physicalToLogical.forEach((e, p) => {
    const list = replicas[e];
    if (!Number.isInteger(e) || !list) throw new RangeError(`slot ${p} holds logical expert ${e}, outside 0..${numLogical - 1}`);
    list.push(p);
  });
  replicas.forEach((list, e) => {
    if (list.length === 0) throw new RangeError(`logical expert ${e} has no physical replica`);
  });
  return replicas;
}

/** Copies logical expert weights into physical slots, as an EPLB rebalance would. */
export function placeExperts(logical: ExpertWeights, physicalToLogical: readonly number[]): { w1: Tensor; w2: Tensor } {
  const place = (t: TensorLike): Tensor => {
    const per = numel(t.shape.slice(1));
    const data = new Float32Array(physicalToLogical.length * per);
    physicalToLogical.forEach((e, p) => {
      for (let i = 0; i < per; i++) data[p * per + i] = t.data[e * per + i]!;
    });
    return { data, shape: [physicalToLogical.length, ...t.shape.slice(1)] };
  };
  replicasOf(physicalToLogical, dim(logical.w1, 0, 'w1'));
  return { w1: place(logical.w1), w2: place(logical.w2) };
}

/** [n, E] physical slot serving token i for logical expert e: replicas taken round-robin by token. */
export function dispatchTable(n: number, replicas: readonly (readonly number[])[]): number[] {
  const table: number[] = [];
  for (let i = 0; i < n; i++) for (const list of replicas) table.push(list[i % list.length]!);
  return table;
}

export interface MoeSpec {
  readonly n: number;
  readonly hidden: number;
  readonly inner: number;
  readonly numLogical: number;
  readonly topK: number;
  readonly physicalToLogical: readonly number[];
}

/** Inputs x [n, H], router [H, E], w1 [P, H, F], w2 [P, F, H]; output y [n, H]. */
export function buildMoe(spec: MoeSpec): Uint8Array {
  const { n, hidden, inner, numLogical, topK } = spec;
  if (!(Number.isInteger(topK) && topK >= 1 && topK <= numLogical)) throw new RangeError(`topK ${topK} outside 1..${numLogical}`);
  const slotsTotal = spec.physicalToLogical.length;
  const replicas = replicasOf(spec.physicalToLogical, numLogical);

  const g = new GraphBuilder('moe');
  const x = g.input('x', [n, hidden]);
  const router = g.input('router', [hidden, numLogical]);
  const w1 = g.input('w1', [slotsTotal, hidden, inner]);
  const w2 = g.input('w2', [slotsTotal, inner, hidden]);

  const probs = op.softmax(g, op.matmul(g, x, router), -1);
  const { values: gate, indices: logical } = op.topK(g, probs, topK, -1);

  // Logical -> physical: look up each pick in the dispatch table.
  const table = g.int64(dispatchTable(n, replicas), [n, numLogical]);
  const slot = op.gatherElements(g, table, logical, 1);

  // Every slot on every token (dense, fine at oracle sizes), then pick (slot, token) rows.
  const hAll = op.relu(g, op.matmul(g, x, w1));
  const yAll = op.matmul(g, hAll, w2); // [P, n, H]
  const token = g.int64(
    Array.from({ length: n * topK }, (_, i) => Math.floor(i / topK)),
    [n, topK, 1],
  );
  const index = op.concat(g, [op.unsqueeze(g, slot, [2]), token], 2); // [n, k, 2]
  const picked = op.gatherND(g, yAll, index); // [n, k, H]
  const y = op.reduceSum(g, op.mul(g, picked, op.unsqueeze(g, gate, [2])), [1], false);
  g.output(y, 'y', [n, hidden]);
  return g.build();
}

export interface MoeArgs {
  readonly x: TensorLike;
  /** [H, E] over logical experts. */
  readonly router: TensorLike;
  /** Weights by physical slot: [P, H, F] and [P, F, H]. */
  readonly physical: ExpertWeights;
  readonly physicalToLogical: readonly number[];
  readonly topK: number;
}

export async function moeForward(args: MoeArgs): Promise<{ y: Tensor }> {
  const n = dim(args.x, 0, 'x');
  const hidden = dim(args.x, 1, 'x');
  const numLogical = dim(args.router, 1, 'router');
  const slotsTotal = args.physicalToLogical.length;
  const inner = dim(args.physical.w1, 2, 'physical.w1');
  expectShape(args.x, [n, hidden], 'x');
  expectShape(args.router, [hidden, numLogical], 'router');
  expectShape(args.physical.w1, [slotsTotal, hidden, inner], 'physical.w1');
  expectShape(args.physical.w2, [slotsTotal, inner, hidden], 'physical.w2');
  const model = buildMoe({ n, hidden, inner, numLogical, topK: args.topK, physicalToLogical: args.physicalToLogical });
  const out = await runModel(model, { x: args.x, router: args.router, w1: args.physical.w1, w2: args.physical.w2 });
  return { y: take(out, 'y') };
}

/** Float64 MoE over logical weights; ties in top-k go to the lower index, as in ONNX TopK. */
export function moeRef(args: { x: TensorLike; router: TensorLike; logical: ExpertWeights; topK: number }): Float64Array {
  const n = dim(args.x, 0, 'x');
  const hidden = dim(args.x, 1, 'x');
  const numLogical = dim(args.router, 1, 'router');
  const inner = dim(args.logical.w1, 2, 'logical.w1');
  const probs = softmaxRows64(matmul64(args.x.data, args.router.data, n, hidden, numLogical), n, numLogical);
  const y = new Float64Array(n * hidden);
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: numLogical }, (_, e) => e);
    row.sort((a, b) => probs[i * numLogical + b]! - probs[i * numLogical + a]! || a - b);
    const xi = Array.from({ length: hidden }, (_, j) => args.x.data[i * hidden + j]!);
    for (const e of row.slice(0, args.topK)) {
      const w1 = Array.from({ length: hidden * inner }, (_, j) => args.logical.w1.data[e * hidden * inner + j]!);
      const w2 = Array.from({ length: inner * hidden }, (_, j) => args.logical.w2.data[e * inner * hidden + j]!);
      const out = matmul64(relu64(matmul64(xi, w1, 1, hidden, inner)), w2, 1, inner, hidden);
      const gate = probs[i * numLogical + e]!;
      for (let j = 0; j < hidden; j++) y[i * hidden + j]! += gate * out[j]!;
    }
  }
  return y;
}
