/** Runs an ONNX model from bytes on onnxruntime's CPU provider. */
import * as ort from 'onnxruntime-node';
import { toTensor, type Tensor, type TensorLike } from '../tensor.ts';

/**
 * One thread and no graph rewrites: the oracle executes the arithmetic as
 * written and deterministically, so graphs that compute the same thing in the
 * same order (a split pipeline and its fused form) agree bit for bit. Even
 * 'basic' rewrites broke that for the RMSNorm in the pipeline graphs.
 */
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'disabled',
  logSeverityLevel: 3,
};

export async function runModel(
  model: Uint8Array,
  feeds: Readonly<Record<string, TensorLike>>,
): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(model, SESSION_OPTIONS);
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      const f = toTensor(t);
      ortFeeds[name] = new ort.Tensor('float32', f.data, f.shape);
    }
    const results = await session.run(ortFeeds);
    const out: Record<string, Tensor> = {};
    for (const name of session.outputNames) {
      const r = results[name];
      if (!r || r.type !== 'float32') throw new Error(`output ${name}: expected float32, got ${r?.type}`);
      // Copy: the ORT-owned buffer is not ours to keep after release().
      out[name] = { data: Float32Array.from(r.data as Float32Array), shape: [...r.dims] };
    }
    return out;
  } finally {
    await session.release();
  }
}

/** Named output, failing loudly if the graph did not produce it. */
export function take(outputs: Record<string, Tensor>, name: string): Tensor {
  const t = outputs[name];
  if (!t) throw new Error(`model produced no output named ${name}`);
  return t;
}
