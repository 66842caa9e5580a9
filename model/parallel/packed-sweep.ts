/**
 * A worker's share of a sweep over a packed system (model/packed.ts): sweep.ts's levels, chunks and shared
 * table, with states as their layout's words and the single-threaded fast path's generated expansion. A frontier
 * state is copied into one reader view, each successor is written into a draft view and inserted from there,
 * so no object is made per state or per transition. As in sweep.ts, whatever the explorer would report is `Met`.
 */
import { type Expand, compileExpand, packedChecksOf, packedViews } from '../packed-explorer.ts';
import type { PackedModel } from '../packed.ts';
import type { System } from '../system.ts';
import type { WorkerOptions } from './protocol.ts';
import { type Input, Met, Sweep, met } from './sweep.ts';

export class PackedSweep extends Sweep<unknown> {
  private readonly W: number;
  private readonly sw: Int32Array;
  private readonly dw: Int32Array;
  private readonly sv: unknown;
  private readonly expandAll: Expand;

  constructor(
    system: System<unknown>,
    private readonly model: PackedModel,
    strings: SharedArrayBuffer,
    control: SharedArrayBuffer,
    progress: SharedArrayBuffer,
    me: number,
    opts: WorkerOptions,
  ) {
    super(system, strings, control, progress, me, opts);
    ({ invariants: this.invariants, goals: this.goals } = packedChecksOf(model, opts.properties));
    const views = packedViews(model);
    ({ W: this.W, sw: this.sw, dw: this.dw, sv: this.sv } = views);
    this.expandAll = compileExpand(model, () => this.emit(), views.sv, views.dv, views.sw, views.dw);
  }

  /** Packed states use no encoder. */
  protected override beginLevel(): void {}

  protected override encodeInit(i: number): { readonly words: Int32Array; readonly length: number } {
    try {
      this.model.layout.pack(this.system.inits[i] as never, this.dw, 0, `initial state ${i}`);
    } catch {
      throw met();
    }
    return { words: this.dw, length: this.W };
  }

  protected override expand(input: Input, i: number): void {
    const { sw, sv, W } = this;
    const start = input.starts[i];
    for (let k = 0; k < W; k++) sw[k] = input.words[start + k];
    let enabled: number;
    try {
      for (const [, inv] of this.invariants) if (!inv(sv)) throw met();
      for (const [name, goal] of this.goals) if (!this.reached.has(name) && goal(sv)) this.reached.add(name);
      enabled = this.expandAll(0);
    } catch (e) {
      if (e instanceof Met) throw e;
      // A guard, an effect or a property that threw: the exact scheme blames it.
      throw met();
    }
    const terminal = this.model.terminal;
    if (enabled === 0 && this.opts.deadlock && !(terminal && this.terminalHere(terminal))) throw met();
  }

  /** A successor is in the draft: count it, and keep it if the table had not seen it. */
  private emit(): boolean {
    this.transitions++;
    if (this.insert(this.dw, this.W)) this.out.push(this.dw, this.W);
    return false;
  }

  private terminalHere(terminal: (s: unknown) => boolean): boolean {
    try {
      return terminal(this.sv);
    } catch {
      throw met();
    }
  }
}
