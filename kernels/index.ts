/**
 * Reference kernels: ONNX graphs built in TypeScript and run on onnxruntime's
 * CPU provider, used as the numerical oracle for GPU runs, plus float64
 * plain-TS references that the ONNX graphs are themselves checked against.
 */
export type { Tensor, TensorLike } from './tensor.ts';
export { tensor, numel } from './tensor.ts';
export { relErr } from './relerr.ts';
export { rng, randomTensor } from './random.ts';
export { chunkBoundaries, prChunkSize, shardBoundaries, PR_CHUNK_ROWS, PR_LARGE_ROWS, type Range } from './partition.ts';

export {
  rowParallelLinear,
  rowParallelLinearRef,
  rowParallelLayout,
  buildRowParallelLinear,
  type RowParallelArgs,
  type RowParallelResult,
  type RowParallelFault,
  type RowParallelSpec,
} from './rowParallel.ts';

export { ffnForward, ffnRef, type FfnWeights } from './ffn.ts';
export {
  dpPaddingForward,
  dpPaddingRef,
  dpGatherMode,
  dpLayout,
  buildDpPadding,
  type DpPaddingArgs,
  type DpPaddingResult,
  type DpLayout,
  type GatherMode,
} from './dpPadding.ts';

export {
  moeForward,
  moeRef,
  placeExperts,
  replicasOf,
  dispatchTable,
  buildMoe,
  type MoeArgs,
  type MoeSpec,
  type ExpertWeights,
} from './moe.ts';

export {
  pipelineTwoStage,
  pipelineFused,
  pipelineRef,
  buildPipelineStage,
  RMS_EPS,
  type DecoderLayer,
  type PipelineWeights,
  type PipelineArgs,
  type PipelineTwoStageArgs,
  type PipelineTwoStageResult,
  type PipelineFault,
} from './pipeline.ts';

export { runModel } from './onnx/session.ts';
export { GraphBuilder } from './onnx/graph.ts';
