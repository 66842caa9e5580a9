/**
 * A worker's share of a parallel search over a packed system (model/packed.ts): the scheme, keys and checks of
 * search.ts, with states as their layout's words and the single-threaded fast path's generated expansion
 * (model/packed-explorer.ts). A frontier state is copied into one reader view; each successor is written into a
 * draft view and routed from there, so no object is made per state or per transition.
 */
import { type Expand, blamePacked, compileExpand, packedChecksOf, packedViews } from '../packed-explorer.ts';
import type { PackedModel } from '../packed.ts';
import type { System } from '../system.ts';
import { threwText } from '../faults.ts';
import type { FoundEvent, WorkerOptions } from './protocol.ts';
import { Fault, WorkerSearch, type View } from './search.ts';

export class PackedWorkerSearch extends WorkerSearch<unknown> {
  private readonly W: number;
  private readonly sw: Int32Array;
  private readonly dw: Int32Array;
  private readonly sv: unknown;
  private readonly dv: unknown;
  private readonly expandAll: Expand;
  /** The state being expanded: its owner, its index there and its rank (what `emit` routes with). */
  private parentOwner = 0;
  private expandingLocal = 0;
  private rank = 0;

  constructor(
    system: System<unknown>,
    private readonly model: PackedModel,
    me: number,
    workers: number,
    strings: SharedArrayBuffer,
    progress: SharedArrayBuffer,
    control: SharedArrayBuffer,
    opts: WorkerOptions,
  ) {
    super(system, me, workers, strings, progress, control, opts);
    ({ invariants: this.invariants, goals: this.goals } = packedChecksOf(model, opts.properties));
    ({ W: this.W, sw: this.sw, dw: this.dw, sv: this.sv, dv: this.dv } = packedViews(model));
    this.expandAll = compileExpand(model, (a) => this.emit(a), this.sv, this.dv, this.sw, this.dw);
  }

  protected override encodeInit(i: number): { readonly words: Int32Array; readonly length: number } {
    this.model.layout.pack(this.system.inits[i] as never, this.dw, 0, `initial state ${i}`);
    return { words: this.dw, length: this.W };
  }

  protected override beginPass(): void {}

  protected override load(words: Int32Array, start: number): unknown {
    const sw = this.sw;
    for (let k = 0; k < this.W; k++) sw[k] = words[start + k];
    return this.sv;
  }

  protected override shown(): unknown {
    return this.model.layout.unpack(this.sw);
  }

  protected override enabled(a: number): boolean {
    const g = this.model.guards[a];
    return g === undefined || g(this.sv, this.model.params[a]);
  }

  protected override expand(_s: unknown, v: View, parentOwner: number, i: number, rank: number, level: number): FoundEvent | null {
    this.parentOwner = parentOwner;
    this.expandingLocal = v.base + i;
    this.rank = rank;
    const base = rank * this.slots;
    let enabled: number;
    try {
      enabled = this.expandAll(0);
    } catch (e) {
      if (e instanceof Fault) throw e;
      const { message, instance } = blamePacked(this.model, this.instances, e, this.sv, this.dv, this.sw, this.dw);
      throw new Fault(message, base + 4 * Math.max(instance, 0));
    }
    const terminal = this.model.terminal;
    if (enabled === 0 && this.opts.deadlock && !(terminal && this.isTerminalHere(terminal, base + 4 * this.ni + 1))) {
      return this.deadlock(base, level, parentOwner, this.expandingLocal);
    }
    return null;
  }

  /** A successor is in the draft: count it and send it to its owner. */
  private emit(a: number): boolean {
    this.levelTransitions++;
    this.totalTransitions++;
    this.route(this.dw, this.W, this.parentOwner, this.expandingLocal, this.rank, a);
    return false;
  }

  private isTerminalHere(terminal: (s: unknown) => boolean, key: number): boolean {
    try {
      return terminal(this.sv);
    } catch (e) {
      throw new Fault(threwText('terminal predicate', e, this.model.layout.unpack(this.sw)), key);
    }
  }
}
