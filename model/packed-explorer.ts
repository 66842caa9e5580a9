/**
 * The explorer's fast path for packed systems (model/packed.ts): the same breadth-first search, verdicts, state
 * numbering and shortest traces as model/explorer.ts, with states kept as their layout's words.
 *
 * Per state: its words are copied into one reader view; a generated function tries every action instance in
 * order, each guard and effect at its own call site (so V8 inlines them with the view's shifts and masks),
 * copies the words into a draft view for each enabled one and hands the successor to `emit`. A successor is
 * fingerprinted and looked up first in a small direct-mapped cache of recently seen fingerprints (breadth-first
 * siblings meet the same states: about 80% of lookups stop there, in cache), then in the visited table.
 */
import { show } from './data.ts';
import type { CheckOptions, CheckResult, PropertyKind, Stats } from './explorer.ts';
import { propertyFilter, replay } from './explorer.ts';
import { checkedProperties, errText, threwText, effectThrewText } from './faults.ts';
import { ChunkedColumn, FingerprintSet, NO_PARENT, ParentColumn, hashWords } from './fingerprints.ts';
import type { PackedModel } from './packed.ts';
import type { ActionInstance, System } from './system.ts';
import { formatLabel } from './system.ts';
import type { Trace } from './trace.ts';
import { SearchWatch, deadlockMessage, pathTo, stuckAt, violatedResult } from './watch.ts';


/** The invariants and reachability goals of a packed model that a check covers (`properties`: null for all). */
export function packedChecksOf(model: PackedModel, properties: readonly string[] | null) {
  const wanted = ([name]: readonly [string, unknown]) => properties === null || properties.includes(name);
  return { invariants: model.invariants.filter(wanted), goals: model.reachable.filter(wanted) };
}

/** Why the fast path cannot run this check (the generic explorer then does), or undefined when it can. */
export function packedUnfit<S>(system: System<S>, opts: CheckOptions): string | undefined {
  if (opts.packed === false) return 'turned off';
  const wanted = propertyFilter(system, opts.properties);
  if (opts.liveness !== false && Object.keys(system.spec.liveness ?? {}).some(wanted)) return 'liveness needs the state graph';
  if (Object.keys(system.spec.actionProperties ?? {}).some(wanted)) return 'action properties';
  if (system.spec.symmetry && opts.symmetry !== false) return 'symmetry';
  return undefined;
}

/** Stops the search from inside the generated loop: a verdict, or a model fault. */
class Stop {
  constructor(readonly result: CheckResult) {}
}

export type Expand = (k: number) => number;

/**
 * A guard or effect threw inside a generated expansion of the state in `sw`: runs them one at a time on it to
 * say which (and which instance, -1 when none throws alone), in the generic explorer's words.
 */
export function blamePacked(
  model: PackedModel,
  instances: readonly ActionInstance<any>[],
  e: unknown,
  sv: unknown,
  dv: unknown,
  sw: Int32Array,
  dw: Int32Array,
): { readonly message: string; readonly instance: number } {
  const state = model.layout.unpack(sw);
  for (let a = 0; a < instances.length; a++) {
    const inst = instances[a];
    const g = model.guards[a];
    let on: boolean;
    try {
      on = g === undefined || g(sv, model.params[a]);
    } catch (err) {
      return { message: threwText(`guard of action ${formatLabel(inst.label)}`, err, state), instance: a };
    }
    if (!on) continue;
    dw.set(sw);
    try {
      model.effects[a](dv, model.params[a]);
    } catch (err) {
      return { message: effectThrewText(inst, err, state), instance: a };
    }
  }
  return { message: `a guard or effect threw: ${errText(e)}\n  on state: ${show(state)}`, instance: -1 };
}

/** One function that tries every instance in order; returns how many were enabled (or -1 when `emit` stopped). */
export function compileExpand(model: PackedModel, emit: (a: number, k: number) => boolean, sv: unknown, dv: unknown, sw: Int32Array, dw: Int32Array): Expand {
  const n = model.guards.length;
  const W = model.layout.words;
  const copy = W <= 8 ? Array.from({ length: W }, (_, i) => `dw[${i}] = sw[${i}];`).join(' ') : `dw.set(sw);`;
  const lines: string[] = [];
  const args: unknown[] = [emit, sv, dv, sw, dw];
  const names = ['emit', 'sv', 'dv', 'sw', 'dw'];
  for (let a = 0; a < n; a++) {
    const g = model.guards[a];
    names.push(`e${a}`, `p${a}`);
    args.push(model.effects[a], model.params[a]);
    if (g) {
      names.push(`g${a}`);
      args.push(g);
    }
    lines.push(`if (${g ? `g${a}(sv, p${a})` : 'true'}) { en++; ${copy} e${a}(dv, p${a}); if (emit(${a}, k)) return -1; }`);
  }
  const body = `return function expand(k) {\n let en = 0;\n${lines.join('\n')}\n return en;\n};`;
  return new Function(...names, body)(...args) as Expand;
}

/** The words a search expands from (`sw`) and writes successors into (`dw`), with a reader and a draft over them. */
export function packedViews(model: PackedModel) {
  const W = model.layout.words;
  const sw = new Int32Array(W);
  const dw = new Int32Array(W);
  return { W, sw, dw, sv: model.layout.reader(sw) as unknown, dv: model.layout.draft(dw) as unknown };
}

/** A level of the queue: `count` states of W words each. */
class Level {
  words: Int32Array;
  count = 0;
  constructor(private readonly W: number) {
    this.words = new Int32Array(Math.max(1024, W * 256));
  }
  push(src: Int32Array): void {
    const at = this.count * this.W;
    if (at + this.W > this.words.length) {
      const w = new Int32Array(this.words.length * 2);
      w.set(this.words);
      this.words = w;
    }
    for (let i = 0; i < this.W; i++) this.words[at + i] = src[i];
    this.count++;
  }
}

export function checkPacked<S>(system: System<S>, model: PackedModel, opts: CheckOptions): CheckResult {
  return new PackedSearch(system, model, opts).run();
}

class PackedSearch<S> {
  private readonly W: number;
  private readonly seen = new FingerprintSet(1024);
  private readonly parent = new ParentColumn();
  private readonly via: ChunkedColumn;
  private readonly fp = new Uint32Array(2);
  /** Recently seen fingerprints, direct-mapped by their low bits; every entry is also in `seen`. */
  private recent = new Uint32Array(2 << 12);
  private recentMask = (1 << 12) - 1;
  private readonly sw: Int32Array;
  private readonly dw: Int32Array;
  private readonly sv: unknown;
  private readonly dv: unknown;
  /** A reader over the successor's words: invariants and goals see the new state through it. */
  private readonly nv: unknown;
  private readonly expand: Expand;
  private next: Level;
  private base = 0;
  private transitions = 0;
  private depth = 0;
  private readonly watch: SearchWatch;
  private readonly invariants: readonly [string, (s: unknown) => boolean][];
  private readonly goals: readonly [string, (s: unknown) => boolean][];
  private readonly reached = new Set<string>();
  private readonly maxStates: number;
  private stop: CheckResult | undefined;
  private expanding = -1;

  constructor(
    private readonly system: System<S>,
    private readonly model: PackedModel,
    private readonly opts: CheckOptions,
  ) {
    this.watch = new SearchWatch(opts);
    ({ invariants: this.invariants, goals: this.goals } = packedChecksOf(model, checkedProperties(system, opts.properties)));
    ({ W: this.W, sw: this.sw, dw: this.dw, sv: this.sv, dv: this.dv } = packedViews(model));
    this.nv = model.layout.reader(this.dw);
    this.via = ChunkedColumn.forValuesBelow(Math.max(system.instances.length, system.inits.length));
    this.next = new Level(this.W);
    this.maxStates = opts.maxStates ?? Infinity;
    this.expand = compileExpand(model, (a, k) => this.emit(a, k), this.sv, this.dv, this.sw, this.dw);
  }

  run(): CheckResult {
    let r: CheckResult;
    try {
      r = this.search();
    } catch (e) {
      if (!(e instanceof Stop)) throw e;
      r = e.result;
    }
    return { ...r, notes: [...(r.notes ?? []), `packed states: ${this.W} word${this.W === 1 ? '' : 's'} each`] };
  }

  private search(): CheckResult {
    const { W, sw, dw } = this;
    const terminal = this.model.terminal;
    const deadlock = this.opts.deadlock !== false && propertyFilter(this.system, this.opts.properties)('deadlock');
    const maxDepth = this.opts.maxDepth ?? Infinity;

    for (let i = 0; i < this.system.inits.length; i++) {
      this.model.layout.pack(this.system.inits[i] as never, dw);
      if (this.admit(NO_PARENT, i, true)) return this.stop!;
    }
    let cur = this.next;
    this.next = new Level(W);
    while (cur.count > 0) {
      if (this.depth >= maxDepth) return this.incomplete(`depth limit ${maxDepth} reached with ${cur.count} states still to expand`);
      const words = cur.words;
      for (let k = 0; k < cur.count; k++) {
        for (let i = 0; i < W; i++) sw[i] = words[k * W + i];
        this.expanding = this.base + k;
        let enabled: number;
        try {
          enabled = this.expand(this.base + k);
        } catch (e) {
          if (e instanceof Stop) throw e;
          return this.fault(this.blame(e));
        }
        if (enabled < 0) return this.stop!;
        if (enabled === 0 && deadlock && !(terminal && this.isTerminal(terminal))) {
          const trace = this.traceTo(this.base + k, []);
          const stuck = stuckAt(trace, this.system.spec.explainStuck);
          return { ...this.violated('deadlock', 'deadlock', deadlockMessage(trace), trace), ...(stuck ? { stuck } : {}) };
        }
        const stop = this.watch.tick(k, () => this.stats());
        if (stop !== undefined) return this.incomplete(stop);
      }
      this.base += cur.count;
      const done = cur;
      cur = this.next;
      done.count = 0;
      this.next = done;
      if (cur.count > 0) this.depth++;
    }
    for (const [name] of this.goals) {
      if (!this.reached.has(name)) {
        return this.violated(name, 'reachability', `no reachable state satisfies '${name}' (all ${this.parent.length} states explored)`, undefined);
      }
    }
    return { verdict: 'holds', stats: this.stats() };
  }

  /** A successor is in `dw`: count the transition and admit it. Returns true when the search must stop. */
  private emit(a: number, k: number): boolean {
    this.transitions++;
    return this.admit(k, a, false);
  }

  /** Records the state in `dw` if new (parent, via), checks it and queues it; true when the search must stop. */
  private admit(parent: number, via: number, initial: boolean): boolean {
    const fp = this.fp;
    hashWords(this.dw, this.W, fp);
    const hi = fp[0];
    const lo = fp[1];
    // An empty slot holds (0, 0): a state hashing to it is taken as seen (probability 2^-64; see hashWords).
    const r = this.recent;
    const slot = (lo & this.recentMask) << 1;
    if (r[slot] === hi && r[slot + 1] === lo) return false;
    r[slot] = hi;
    r[slot + 1] = lo;
    if (!this.seen.add(hi, lo)) return false;
    this.parent.push(parent);
    this.via.push(via);
    const idx = this.parent.length - 1;
    if (idx === 1 << 17) this.growRecent();
    this.next.push(this.dw);
    const bad = this.checkState(idx);
    if (bad) {
      this.stop = bad;
      return true;
    }
    if (!initial && this.parent.length >= this.maxStates) {
      this.stop = this.incomplete(`state limit ${this.maxStates} reached`);
      return true;
    }
    return false;
  }

  /** Past 128 K states the cache grows to 32 K entries (256 KB); small searches keep 4 K (32 KB). */
  private growRecent(): void {
    this.recent = new Uint32Array(2 << 15);
    this.recentMask = (1 << 15) - 1;
  }

  private checkState(idx: number): CheckResult | undefined {
    for (const [name, inv] of this.invariants) {
      let ok: boolean;
      try {
        ok = inv(this.nv);
      } catch (e) {
        throw new Stop(this.fault(threwText(`invariant '${name}'`, e, this.model.layout.unpack(this.dw))));
      }
      if (!ok) {
        const trace = this.traceTo(idx, []);
        return this.violated(name, 'invariant', `invariant '${name}' is violated after ${trace.steps.length} steps`, trace);
      }
    }
    for (const [name, goal] of this.goals) {
      if (this.reached.has(name)) continue;
      let hit: boolean;
      try {
        hit = goal(this.nv);
      } catch (e) {
        throw new Stop(this.fault(threwText(`reachability property '${name}'`, e, this.model.layout.unpack(this.dw))));
      }
      if (hit) this.reached.add(name);
    }
    return undefined;
  }

  private isTerminal(terminal: (s: unknown) => boolean): boolean {
    try {
      return terminal(this.sv);
    } catch (e) {
      throw new Stop(this.fault(threwText('terminal predicate', e, this.model.layout.unpack(this.sw))));
    }
  }

  /** A guard or effect threw inside the generated loop: say which, on which state. */
  private blame(e: unknown): string {
    return blamePacked(this.model, this.system.instances, e, this.sv, this.dv, this.sw, this.dw).message;
  }

  private fault(message: string): CheckResult {
    return { verdict: 'error', message, stats: this.stats() };
  }

  private traceTo(idx: number, extra: ActionInstance<S>[]): Trace {
    const { init, ids } = pathTo(this.parent, this.via, idx);
    return replay(this.system.inits[init], [...ids.map((id) => this.system.instances[id]), ...extra]);
  }

  private violated(property: string, kind: PropertyKind, message: string, trace: Trace | undefined): CheckResult {
    return violatedResult(this.stats(), property, kind, message, trace);
  }

  private incomplete(reason: string): CheckResult {
    return { verdict: 'incomplete', reason, stats: this.stats() };
  }

  private stats(): Stats {
    const bytes = this.seen.bytes + this.parent.bytes + this.via.bytes + this.recent.byteLength;
    return this.watch.stats(this.parent.length, this.transitions, this.depth, bytes);
  }
}
