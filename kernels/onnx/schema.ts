/**
 * Encoders for the subset of onnx.proto the reference kernels need.
 * Field numbers follow onnx/onnx.proto (IR version 8, opset 17).
 */
import { ProtoWriter } from './proto.ts';

export type ElemType = 'float32' | 'int64';

/** TensorProto.DataType values. */
const DATA_TYPE: Record<ElemType, number> = { float32: 1, int64: 7 };

/** AttributeProto.AttributeType values. */
const ATTR_TYPE = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

export type AttrValue =
  | { readonly f: number }
  | { readonly i: number }
  | { readonly s: string }
  | { readonly floats: readonly number[] }
  | { readonly ints: readonly number[] };

export interface TensorInit {
  readonly name: string;
  readonly elemType: ElemType;
  readonly dims: readonly number[];
  readonly data: Float32Array | BigInt64Array;
}

export interface ValueInfo {
  readonly name: string;
  readonly elemType: ElemType;
  /** Omitted means "unknown shape"; ORT then infers it. */
  readonly shape?: readonly number[];
}

export interface NodeSpec {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name: string;
  readonly attrs?: Readonly<Record<string, AttrValue>>;
}

export interface GraphSpec {
  readonly name: string;
  readonly nodes: readonly NodeSpec[];
  readonly initializers: readonly TensorInit[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
}

export const IR_VERSION = 8;
export const OPSET = 17;

/** Little-endian bytes regardless of host order, as raw_data requires. */
function rawData(data: Float32Array | BigInt64Array): Uint8Array {
  const out = new Uint8Array(data.length * data.BYTES_PER_ELEMENT);
  const view = new DataView(out.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else data.forEach((v, i) => view.setBigInt64(i * 8, v, true));
  return out;
}

export function encodeTensor(t: TensorInit): Uint8Array {
  return new ProtoWriter()
    .ints(1, t.dims)
    .int(2, DATA_TYPE[t.elemType])
    .string(8, t.name)
    .bytes(9, rawData(t.data))
    .finish();
}

function encodeShape(shape: readonly number[]): Uint8Array {
  const w = new ProtoWriter();
  for (const d of shape) w.message(1, new ProtoWriter().int(1, d).finish());
  return w.finish();
}

export function encodeValueInfo(v: ValueInfo): Uint8Array {
  const tensorType = new ProtoWriter().int(1, DATA_TYPE[v.elemType]);
  if (v.shape) tensorType.message(2, encodeShape(v.shape));
  const typeProto = new ProtoWriter().message(1, tensorType.finish()).finish();
  return new ProtoWriter().string(1, v.name).message(2, typeProto).finish();
}

function encodeAttribute(name: string, value: AttrValue): Uint8Array {
  const w = new ProtoWriter().string(1, name);
  if ('f' in value) w.float(2, value.f).int(20, ATTR_TYPE.FLOAT);
  else if ('i' in value) w.int(3, value.i).int(20, ATTR_TYPE.INT);
  else if ('s' in value) w.string(4, value.s).int(20, ATTR_TYPE.STRING);
  else if ('floats' in value) w.floats(7, value.floats).int(20, ATTR_TYPE.FLOATS);
  else w.ints(8, value.ints).int(20, ATTR_TYPE.INTS);
  return w.finish();
}

export function encodeNode(n: NodeSpec): Uint8Array {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, encodeAttribute(k, v));
  return w.finish();
}

export function encodeGraph(g: GraphSpec): Uint8Array {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, encodeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, encodeTensor(t));
  for (const v of g.inputs) w.message(11, encodeValueInfo(v));
  for (const v of g.outputs) w.message(12, encodeValueInfo(v));
  return w.finish();
}

export function encodeModel(graph: GraphSpec): Uint8Array {
  const opset = new ProtoWriter().string(1, '').int(2, OPSET).finish();
  return new ProtoWriter()
    .int(1, IR_VERSION)
    .string(2, 'interleave-kernels')
    .message(7, encodeGraph(graph))
    .message(8, opset)
    .finish();
}
