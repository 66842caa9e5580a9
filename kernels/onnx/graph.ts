/**
 * Imperative graph builder: every call appends a node and returns the name of
 * its output, so kernels read like straight-line tensor code.
 */
import {
  encodeModel,
  type AttrValue,
  type ElemType,
  type NodeSpec,
  type TensorInit,
  type ValueInfo,
} from './schema.ts';

export class GraphBuilder {
  private readonly nodes: NodeSpec[] = [];
  private readonly initializers: TensorInit[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly taken = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** Unique tensor name; `hint` keeps dumps of the graph readable. */
  fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`;
    while (this.taken.has(name));
    this.taken.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.taken.has(name)) throw new Error(`graph ${this.name}: duplicate tensor name ${name}`);
    this.taken.add(name);
    return name;
  }

  input(name: string, shape: readonly number[], elemType: ElemType = 'float32'): string {
    this.inputs.push({ name: this.claim(name), elemType, shape: [...shape] });
    return name;
  }

  /** Exposes `tensor` as graph output `name` (through Identity when the names differ). */
  output(tensor: string, name: string, shape?: readonly number[], elemType: ElemType = 'float32'): void {
    if (tensor !== name) {
      this.nodes.push({ opType: 'Identity', inputs: [tensor], outputs: [this.claim(name)], name: `out_${name}` });
    }
    this.outputs.push(shape ? { name, elemType, shape: [...shape] } : { name, elemType });
  }

  int64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.fresh('i64');
    const data = BigInt64Array.from(values, (v) => BigInt(v));
    this.initializers.push({ name, elemType: 'int64', dims: [...dims], data });
    return name;
  }

  float32(values: ArrayLike<number>, dims: readonly number[]): string {
    const name = this.fresh('f32');
    this.initializers.push({ name, elemType: 'float32', dims: [...dims], data: Float32Array.from(values) });
    return name;
  }

  opN(opType: string, inputs: readonly string[], nOutputs: number, attrs?: Record<string, AttrValue>): string[] {
    const outputs = Array.from({ length: nOutputs }, () => this.fresh(opType.toLowerCase()));
    const node: NodeSpec = { opType, inputs: [...inputs], outputs, name: `n${this.nodes.length}_${opType}` };
    this.nodes.push(attrs ? { ...node, attrs } : node);
    return outputs;
  }

  op(opType: string, inputs: readonly string[], attrs?: Record<string, AttrValue>): string {
    const [out] = this.opN(opType, inputs, 1, attrs);
    return out!;
  }

  build(): Uint8Array {
    if (this.outputs.length === 0) throw new Error(`graph ${this.name} has no outputs`);
    return encodeModel({
      name: this.name,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: this.inputs,
      outputs: this.outputs,
    });
  }
}
