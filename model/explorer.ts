/**
 * The explicit-state explorer: breadth-first, so the first violation found is at the least depth and its
 * trace is a shortest counterexample. Visited states are 64-bit fingerprints; each state keeps a parent index
 * (a delta, about a byte) and the action instance that reached it (1 or 2 bytes), and a trace is rebuilt by replaying those actions
 * from the initial state. The queue holds one BFS level at a time as packed word encodings.
 */
import { type Data, DataError, Encoder, diff, show } from './data.ts';
import { ChunkedColumn, FingerprintSet, NO_PARENT, ParentColumn, U32Column, U8Column, hashWords } from './fingerprints.ts';
import { type FairnessUnit, type StateGraph, findFairLasso } from './liveness.ts';
import { AmpleChooser, type PorPlan, declaredWrite, isStable, planPor } from './por.ts';
import { checkPacked, packedUnfit } from './packed-explorer.ts';
import { packedOf } from './packed.ts';
import { canonicalizer, samplePermutation } from './symmetry.ts';
import type { ActionInstance, StepLabel, System } from './system.ts';
import { formatLabel } from './system.ts';
import { badSuccessorText, blameMutation, checkedProperties, effectOf, errText, guardHolds, terminalHolds, threwText } from './faults.ts';

export { errText } from './faults.ts';
import { type Trace, buildTrace } from './trace.ts';
import { SearchWatch, deadlockMessage, pathTo, stuckAt, violatedResult } from './watch.ts';

export type Verdict = 'holds' | 'violated' | 'incomplete' | 'error';
export type PropertyKind = 'invariant' | 'action-property' | 'deadlock' | 'reachability' | 'liveness';

export interface CheckOptions {
  readonly maxStates?: number;
  readonly maxDepth?: number;
  /** Seconds. */
  readonly timeLimit?: number;
  /** Megabytes of resident memory; past it the search stops with `incomplete` (checked every 4,096 states). */
  readonly maxMemoryMB?: number;
  /** Set false to explore without the model's symmetry reduction. */
  readonly symmetry?: boolean;
  /** Set false to skip liveness properties (and the graph they need). */
  readonly liveness?: boolean;
  /** Set false to explore every interleaving even where the model declares reads and writes (model/por.ts). */
  readonly por?: boolean;
  /**
   * Set false to accept states with no enabled action (TLC's -deadlock): a hang is then left to the liveness
   * properties, which see it as a behaviour that stutters forever in that state.
   */
  readonly deadlock?: boolean;
  /**
   * Check only these properties (invariants, action properties, reachability goals, liveness properties, or
   * `deadlock`), e.g. one liveness property on its own. Default: all of them.
   */
  readonly properties?: readonly string[];
  /**
   * Set false to run a packed system (definePackedSystem) through the generic explorer, over plain states:
   * the cross-check for the fast path, which must give the same verdict, state count and trace.
   */
  readonly packed?: boolean;
  /** Called about once a second while the search runs. */
  readonly onProgress?: (stats: Stats) => void;
}

export interface Stats {
  /** Distinct states found. */
  readonly states: number;
  readonly transitions: number;
  /** Depth of the deepest BFS level reached. */
  readonly depth: number;
  readonly seconds: number;
  readonly statesPerSecond: number;
  /** Bytes of the visited set and trace links per state (fingerprint table + parent + action columns). */
  readonly bytesPerState: number;
  readonly peakRssMB: number;
}

export interface CheckResult {
  readonly verdict: Verdict;
  readonly property?: string;
  readonly propertyKind?: PropertyKind;
  readonly message?: string;
  readonly trace?: Trace;
  /** At a deadlock: what each blocked actor waits for (from the model's `explainStuck`). */
  readonly stuck?: readonly string[];
  /** Why an incomplete search stopped. */
  readonly reason?: string;
  /** What reductions were applied or skipped, for the reader of the result. */
  readonly notes?: readonly string[];
  readonly stats: Stats;
}

/** Under symmetry, the first states expanded are used to check that properties and steps are symmetric. */
const SYMMETRY_SAMPLES = 200;
/** Under partial-order reduction, the steps from the first states expanded are audited against their `writes`. */
const POR_AUDIT_STATES = 20_000;

/** Raised inside the search when the model itself misbehaves (throws, mutates, returns non-data). */
class ModelFault extends Error {
  constructor(
    message: string,
    readonly stateIndex: number,
  ) {
    super(message);
  }
}
const modelFault = (message: string, at: number) => new ModelFault(message, at);

/** A level of the BFS queue: concatenated encodings plus each state's start offset. */
class Level {
  words = new Int32Array(1 << 12);
  used = 0;
  starts = new Uint32Array(1 << 10);
  count = 0;

  push(src: Int32Array, len: number): void {
    if (this.used + len > this.words.length) {
      let cap = this.words.length * 2;
      while (cap < this.used + len) cap *= 2;
      const w = new Int32Array(cap);
      w.set(this.words.subarray(0, this.used));
      this.words = w;
    }
    if (this.count === this.starts.length) {
      const s = new Uint32Array(this.starts.length * 2);
      s.set(this.starts);
      this.starts = s;
    }
    this.words.set(src.subarray(0, len), this.used);
    this.starts[this.count++] = this.used;
    this.used += len;
  }

  reset(): void {
    this.used = 0;
    this.count = 0;
  }

  get bytes(): number {
    return this.words.byteLength + this.starts.byteLength;
  }
}

export function check<S>(system: System<S>, options: CheckOptions = {}): CheckResult {
  const packed = packedOf(system);
  if (packed === undefined) return new Search(system, options).run();
  const unfit = packedUnfit(system, options);
  if (unfit === undefined) return checkPacked(system, packed, options);
  // A layout model on the generic engine: say why, unless the user asked for it.
  const r = new Search(system, options).run();
  return unfit === 'turned off' ? r : { ...r, notes: [...(r.notes ?? []), `packed fast path not used (${unfit}): checked by the generic explorer`] };
}

class Search<S> {
  private readonly enc = new Encoder();
  private readonly seen: FingerprintSet;
  /** Liveness needs the whole graph: edges in CSR order (states are expanded in index order). */
  private readonly graph: boolean;
  private readonly edgeStart = new U32Column();
  private readonly edgeTarget = new U32Column();
  private readonly edgeVia = new U32Column();
  /** One label column per liveness predicate, filled when a state is found. */
  private readonly labels: { readonly fn: (s: S) => boolean; readonly column: U8Column; readonly name: string }[] = [];
  /** Graph mode: the index of the state the last addState found already visited. */
  private found = -1;
  /** Symmetry: the representative function, when the model declares one and it is on. */
  private readonly canon: ((s: S) => S) | undefined;
  /** The state `apply` stored (its representative under symmetry). */
  private stored!: S;
  private readonly notes: string[] = [];
  /** Per state: the parent's index (about 1 byte, as a delta), and the action instance (or initial state) that reached it (1-2 bytes). */
  private readonly parent = new ParentColumn();
  private readonly via: ChunkedColumn;
  private readonly fp = new Uint32Array(2);
  private transitions = 0;
  private depth = 0;
  private readonly watch: SearchWatch;
  private readonly reachedGoals = new Set<string>();
  /** Partial-order reduction: the plan and the chooser, when the model declares reads/writes and it is on. */
  private readonly por: PorPlan | undefined;
  private readonly ample: AmpleChooser | undefined;
  private readonly enabledMask: Uint8Array;
  private readonly enabledList: number[] = [];
  private reducedExpansions = 0;
  /**
   * Whether the last `fire` reached a state of the next BFS level (new, or first found at this level's
   * expansion by another parent): for the cycle proviso, only a successor visited at this depth or earlier can
   * close a cycle. Under the reduction, the fingerprints of the next level are kept to tell.
   */
  private fresh = false;
  private nextLevel: FingerprintSet | undefined;

  /** Whether a state with no enabled action (and not terminal) is reported. */
  private readonly deadlock: boolean;
  private readonly wanted: (name: string) => boolean;

  constructor(
    private readonly system: System<S>,
    private readonly opts: CheckOptions,
  ) {
    this.watch = new SearchWatch(opts);
    this.wanted = propertyFilter(system, opts.properties);
    this.deadlock = opts.deadlock !== false && this.wanted('deadlock');
    const liveness = Object.entries(system.spec.liveness ?? {}).filter(([name]) => this.wanted(name));
    this.graph = liveness.length > 0 && opts.liveness !== false;
    this.seen = new FingerprintSet(1024, this.graph);
    const sym = system.spec.symmetry;
    if (sym && opts.symmetry !== false) {
      if (this.graph) this.notes.push('symmetry reduction is off: liveness is checked on the full graph');
      else {
        this.canon = canonicalizer(sym);
        this.notes.push(`symmetry reduction over ${sym.size} interchangeable ranks`);
      }
    }
    this.via = ChunkedColumn.forValuesBelow(Math.max(system.instances.length, system.inits.length));
    this.enabledMask = new Uint8Array(system.instances.length);
    const porSetup = opts.por === false ? undefined : planPor(system);
    if (porSetup && 'plan' in porSetup) {
      // With symmetry the reduction stays sound for safety (invariants, deadlocks, goals; the explorer has
      // checked the properties are symmetric): the stubborn set is chosen on the state being expanded, which is
      // a real state (a representative is a renaming of a reachable state, and renaming maps reachable states
      // to reachable states), so its successors are real steps; the cycle proviso is applied to the canonical
      // fingerprints (a reduced expansion that reaches an already visited class is made full). The usual
      // argument then goes through on the quotient: a full path from s to a bad state b either starts (up to
      // commuting independent steps) with a step of the stubborn set, which leads to a class from which a
      // renaming of the rest of the path reaches a renaming of b, bad too; or the fired step t is independent
      // of the whole path and leaves the violated conjunct violated (at b.t), so the class of s.t reaches a
      // bad state by a renamed path of the same length. A chain of the second kind cannot go on forever: each
      // of its states is new one BFS level deeper, and at a revisit the proviso expands fully. Counterexamples
      // are real behaviours (the symmetry trace rebuild replays them on real ranks), not necessarily shortest.
      if (this.graph) this.notes.push('partial-order reduction is off: liveness is checked on the full graph');
      else {
        this.por = porSetup.plan;
        this.ample = new AmpleChooser(porSetup.plan);
        this.nextLevel = new FingerprintSet(1024);
      }
    } else if (porSetup && 'off' in porSetup && porSetup.off !== 'no action declares reads and writes') {
      this.notes.push(`partial-order reduction is off: ${porSetup.off}`);
    }
    if (this.graph) {
      for (const [name, l] of liveness) {
        this.labels.push({ name: `${name}.p`, fn: l.p, column: new U8Column() });
        if (l.kind === 'leadsTo') this.labels.push({ name: `${name}.q`, fn: l.q, column: new U8Column() });
      }
    }
  }

  run(): CheckResult {
    let r: CheckResult;
    try {
      r = this.search();
    } catch (e) {
      if (!(e instanceof ModelFault)) throw e;
      r = { verdict: 'error', message: e.message, stats: this.stats() };
    }
    this.notePor();
    if (r.verdict === 'violated' && this.reducedExpansions > 0 && r.trace) {
      this.notes.push('the counterexample is a real behaviour, but under partial-order reduction not necessarily a shortest one (--no-por gives the shortest)');
    }
    return this.notes.length > 0 ? { ...r, notes: this.notes } : r;
  }

  private search(): CheckResult {
    const { spec, instances } = this.system;
    const invariants = Object.entries(spec.invariants ?? {}).filter(([name]) => this.wanted(name));
    const actionProps = Object.entries(spec.actionProperties ?? {}).filter(([name]) => this.wanted(name));
    const goals = Object.entries(spec.reachable ?? {}).filter(([name]) => this.wanted(name));
    const terminal = spec.terminal;
    const maxStates = this.opts.maxStates ?? Infinity;
    const maxDepth = this.opts.maxDepth ?? Infinity;

    let cur = new Level();
    let next = new Level();

    // Initial states: depth 0.
    for (let i = 0; i < this.system.inits.length; i++) {
      const s = this.canon ? this.canon(this.system.inits[i]) : this.system.inits[i];
      this.enc.encode(s);
      if (this.addState(NO_PARENT, i)) {
        cur.push(this.enc.words, this.enc.length);
        const bad = this.checkState(s, this.parent.length - 1, invariants, goals);
        if (bad) return bad;
      }
    }

    let levelBase = 0;
    while (cur.count > 0) {
      if (this.depth >= maxDepth) {
        return this.incomplete(`depth limit ${maxDepth} reached with ${cur.count} states still to expand`);
      }
      for (let k = 0; k < cur.count; k++) {
        const idx = levelBase + k;
        const s = this.enc.decode(cur.words, cur.starts[k], false, true) as S;
        if (this.graph) this.edgeStart.push(this.edgeTarget.length);
        if (this.canon !== undefined && idx < SYMMETRY_SAMPLES) this.checkSymmetry(s, idx, invariants);
        let enabled = 0;
        if (this.ample === undefined) {
          for (let a = 0; a < instances.length; a++) {
            const inst = instances[a];
            if (!this.guard(inst, s, idx)) continue;
            enabled++;
            const bad = this.fire(inst, s, idx, next, actionProps, invariants, goals, maxStates);
            if (bad) return bad;
          }
        } else {
          const mask = this.enabledMask;
          const list = this.enabledList;
          list.length = 0;
          for (let a = 0; a < instances.length; a++) {
            if (!this.guard(instances[a], s, idx)) continue;
            mask[a] = 1;
            list.push(a);
          }
          enabled = list.length;
          const chosen = this.ample.choose(s, mask, list);
          let deeper = false;
          for (const a of chosen ?? list) {
            const bad = this.fire(instances[a], s, idx, next, actionProps, invariants, goals, maxStates);
            if (bad) return bad;
            if (this.fresh) deeper = true;
          }
          if (chosen !== undefined) {
            // The cycle proviso (BFS form): a reduced expansion none of whose successors lies one level deeper
            // (every one was visited at this depth or before) becomes a full one. This is enough: the argument
            // for invariants, goals and deadlocks (model/por.ts) follows, from a state whose stubborn set misses
            // every step of a path to a bad state, a reduced step to a state one level deeper, so such a chain
            // ends, at the latest where every reduced successor is old and the expansion is full.
            if (!deeper) {
              for (const a of list) mask[a] = 2;
              for (const a of chosen) mask[a] = 1;
              for (const a of list) {
                if (mask[a] !== 2) continue;
                const bad = this.fire(instances[a], s, idx, next, actionProps, invariants, goals, maxStates);
                if (bad) return bad;
              }
            } else this.reducedExpansions++;
          }
          for (const a of list) mask[a] = 0;
        }
        // An effect that mutated `s` would have computed wrong successors: re-encode and compare to catch it.
        this.enc.encode(s);
        const len = (k + 1 < cur.count ? cur.starts[k + 1] : cur.used) - cur.starts[k];
        if (!this.enc.sameAs(cur.words, cur.starts[k], len)) {
          const at = cur.starts[k];
          blameMutation(this.system.instances, () => this.enc.decode(cur.words, at, true) as S, (inst, f) => this.apply(inst, f, idx), modelFault, idx);
        }
        if (enabled === 0 && this.deadlock && !(terminal && terminalHolds(terminal, s, modelFault, idx))) {
          const trace = this.traceTo(idx, []);
          const stuck = stuckAt(trace, spec.explainStuck);
          return { ...this.violated('deadlock', 'deadlock', deadlockMessage(trace), trace), ...(stuck ? { stuck } : {}) };
        }
        const stop = this.watch.tick(k, () => this.stats());
        if (stop !== undefined) return this.incomplete(stop);
      }
      levelBase += cur.count;
      // Sized for a level like the one just found, so that it rarely grows.
      if (this.nextLevel) this.nextLevel = new FingerprintSet(next.count * 1.3);
      this.enc.specialise(this.system.inits[0] as Data);
      [cur, next] = [next, cur];
      next.reset();
      if (cur.count > 0) this.depth++;
    }

    for (const [name] of goals) {
      if (!this.reachedGoals.has(name)) {
        return this.violated(
          name,
          'reachability',
          `no reachable state satisfies '${name}' (all ${this.parent.length} states explored)`,
          undefined,
        );
      }
    }
    if (this.graph) {
      const failed = this.checkLiveness();
      if (failed) return failed;
    }
    return { verdict: 'holds', stats: this.stats() };
  }

  private notePor(): void {
    if (this.por === undefined) return;
    const expanded = this.parent.length;
    this.notes.push(`partial-order reduction: ${this.reducedExpansions} of ${expanded} states expanded with a reduced set`);
  }

  /** Runs every liveness property on the explored graph; the first that fails, with its lasso. */
  private checkLiveness(): CheckResult | undefined {
    const n = this.parent.length;
    this.edgeStart.push(this.edgeTarget.length);
    const g: StateGraph = {
      states: n,
      inits: this.system.inits.map((_, i) => i),
      start: this.edgeStart.data.subarray(0, n + 1),
      target: this.edgeTarget.data.subarray(0, this.edgeTarget.length),
      via: this.edgeVia.data.subarray(0, this.edgeVia.length),
    };
    const units = fairnessUnits(this.system);
    const label = (name: string) => this.labels.find((l) => l.name === name)!.column.data;
    for (const [name, l] of Object.entries(this.system.spec.liveness ?? {})) {
      if (!this.wanted(name)) continue;
      const p = label(`${name}.p`);
      const allowed = new Uint8Array(n);
      const entries = new Uint8Array(n);
      let what: string;
      if (l.kind === 'eventually') {
        for (let s = 0; s < n; s++) allowed[s] = p[s] ? 0 : 1;
        for (let s = 0; s < this.system.inits.length; s++) entries[s] = allowed[s];
        what = 'a fair behaviour never reaches a state where it holds';
      } else if (l.kind === 'alwaysEventually') {
        for (let s = 0; s < n; s++) allowed[s] = entries[s] = p[s] ? 0 : 1;
        what = 'a fair behaviour stays forever in states where it does not hold';
      } else {
        const q = label(`${name}.q`);
        for (let s = 0; s < n; s++) {
          allowed[s] = q[s] ? 0 : 1;
          entries[s] = p[s] && !q[s] ? 1 : 0;
        }
        what = 'a fair behaviour reaches a state where its trigger holds and then never reaches its goal';
      }
      const lasso = findFairLasso(g, allowed, entries, units);
      if (!lasso) continue;
      // Prefix: the BFS tree path to the entry, then the path inside the region; then the cycle.
      const toEntry = pathTo(this.parent, this.via, lasso.entry);
      const prefix = [...toEntry.ids, ...lasso.path.map((e) => g.via[e])];
      const cycle = lasso.cycle.map((e) => g.via[e]);
      const initial = this.system.inits[toEntry.init];
      const path = [...prefix, ...cycle].map((id) => this.system.instances[id]);
      const t = replay(initial, path);
      const trace: Trace = { ...t, loopStart: prefix.length };
      const ending =
        cycle.length === 0 ? 'it ends in a state with no enabled action and stutters there forever' : `it loops through ${cycle.length} steps`;
      const fairness = units.length === 0 ? 'no fairness declared' : `${units.length} fairness unit(s)`;
      const result = this.violated(name, 'liveness', `liveness '${name}' (${l.kind}) fails: ${what}; ${ending} (${fairness})`, trace);
      // A behaviour that ends stuck: say what each blocked actor waits for, as a deadlock report does.
      const stuck = cycle.length === 0 ? stuckAt(trace, this.system.spec.explainStuck) : undefined;
      if (stuck) return { ...result, stuck };
      return result;
    }
    return undefined;
  }

  /** Takes one enabled step from `s`: checks the step properties, records the successor, checks a new one. */
  private fire(
    inst: ActionInstance<S>,
    s: S,
    idx: number,
    next: Level,
    actionProps: [string, (before: S, step: StepLabel, after: S) => boolean][],
    invariants: [string, (s: S) => boolean][],
    goals: [string, (s: S) => boolean][],
    maxStates: number,
  ): CheckResult | undefined {
    const t = this.apply(inst, s, idx);
    this.transitions++;
    if (this.por !== undefined && idx < POR_AUDIT_STATES) this.auditWrites(inst, s, t, idx);
    for (const [name, prop] of actionProps) {
      let ok: boolean;
      try {
        ok = prop(s, inst.label, t);
      } catch (e) {
        throw new ModelFault(threwText(`action property '${name}' on step ${formatLabel(inst.label)}`, e, s, 'from state'), idx);
      }
      if (!ok) {
        const trace = this.traceTo(idx, [inst]);
        return this.violated(name, 'action-property', `step ${formatLabel(inst.label)} breaks '${name}'`, trace);
      }
    }
    const added = this.addState(idx, inst.id);
    this.fresh = added || (this.nextLevel !== undefined && this.nextLevel.has(this.fp[0], this.fp[1]));
    if (added && this.nextLevel !== undefined) this.nextLevel.add(this.fp[0], this.fp[1]);
    if (this.graph) {
      this.edgeTarget.push(added ? this.parent.length - 1 : this.found);
      this.edgeVia.push(inst.id);
    }
    if (added) {
      next.push(this.enc.words, this.enc.length);
      const bad = this.checkState(this.stored, this.parent.length - 1, invariants, goals);
      if (bad) return bad;
      if (this.parent.length >= maxStates) return this.incomplete(`state limit ${maxStates} reached`);
    }
    return undefined;
  }

  /** Partial-order reduction rests on the declared writes: a step that changes an undeclared field is an error. */
  private auditWrites(inst: ActionInstance<S>, s: S, t: S, idx: number): void {
    const writes = this.por!.writes[inst.id];
    for (const change of diff(s as Data, t as Data)) {
      if (!declaredWrite(change.path, writes)) {
        throw new ModelFault(
          `partial-order reduction: action ${formatLabel(inst.label)} changed '${change.path || '(the whole state)'}', which its \`writes\` does not declare ` +
            `(declared: ${writes.map((w) => w.join('.')).join(', ') || 'nothing'}). Declare it, or check with --no-por.\n  from state: ${show(s as Data, 600)}`,
          idx,
        );
      }
    }
  }

  /** Fingerprints the encoding in `enc`; records a new state's parent link and returns true if new. */
  private addState(parent: number, via: number): boolean {
    hashWords(this.enc.words, this.enc.length, this.fp);
    if (this.graph) {
      this.found = this.seen.addOrFind(this.fp[0], this.fp[1], this.parent.length);
      if (this.found >= 0) return false;
    } else if (!this.seen.add(this.fp[0], this.fp[1])) return false;
    this.parent.push(parent);
    this.via.push(via);
    return true;
  }

  private checkState(
    s: S,
    idx: number,
    invariants: [string, (s: S) => boolean][],
    goals: [string, (s: S) => boolean][],
  ): CheckResult | undefined {
    for (const l of this.labels) {
      let v: boolean;
      try {
        v = l.fn(s);
      } catch (e) {
        throw new ModelFault(`liveness predicate '${l.name}' threw: ${errText(e)}\n  on state: ${show(s as Data, 600)}`, idx);
      }
      l.column.push(v ? 1 : 0);
    }
    for (const [name, inv] of invariants) {
      let ok: boolean;
      try {
        ok = inv(s);
      } catch (e) {
        throw new ModelFault(threwText(`invariant '${name}'`, e, s), idx);
      }
      if (!ok) {
        if (this.por !== undefined && isStable(inv)) this.auditStable(name, inv, s, idx);
        const trace = this.traceTo(idx, []);
        return this.violated(name, 'invariant', `invariant '${name}' is violated after ${trace.steps.length} steps`, trace);
      }
    }
    for (const [name, goal] of goals) {
      if (this.reachedGoals.has(name)) continue;
      let hit: boolean;
      try {
        hit = goal(s);
      } catch (e) {
        throw new ModelFault(threwText(`reachability property '${name}'`, e, s), idx);
      }
      if (hit) this.reachedGoals.add(name);
    }
    return undefined;
  }

  /**
   * The reduction made no step visible for a stable invariant, trusting that a violation is never undone: check
   * that every step from the violating state keeps it violated (a misdeclared model is an error, not a verdict).
   */
  private auditStable(name: string, inv: (s: S) => boolean, s: S, idx: number): void {
    for (const inst of this.system.instances) {
      if (!this.guard(inst, s, idx)) continue;
      let t: S;
      try {
        t = inst.action.spec.effect(s, inst.params);
      } catch {
        continue; // the step's own error is reported when the search fires it
      }
      let holds = false;
      try {
        holds = inv(t);
      } catch {
        continue;
      }
      if (holds) {
        throw new ModelFault(
          `invariant '${name}' is declared stable (a violation is never undone), but step ${formatLabel(inst.label)} makes it hold again; ` +
            `partial-order reduction relies on the declaration: drop stable(...) or restate the property over history fields, or check with --no-por.\n  violating state: ${show(s as Data, 600)}`,
          idx,
        );
      }
    }
  }

  private guard(inst: ActionInstance<S>, s: S, idx: number): boolean {
    return guardHolds(inst, s, modelFault, idx);
  }

  /** Runs the effect and encodes its result into `enc`, turning each way it can misbehave into a ModelFault. */
  private apply(inst: ActionInstance<S>, s: S, idx: number): S {
    const t = effectOf(inst, s, modelFault, idx);
    let u = t;
    if (this.canon !== undefined && t !== undefined) {
      try {
        u = this.canon(t);
      } catch (e) {
        throw new ModelFault(`symmetry: permute threw after action ${formatLabel(inst.label)}: ${errText(e)}\n  on state: ${show(t as Data, 600)}`, idx);
      }
    }
    this.stored = u;
    try {
      this.enc.encode(u, true);
    } catch (e) {
      if (e instanceof DataError) throw new ModelFault(badSuccessorText(inst, e, t, s), idx);
      throw e;
    }
    return t;
  }

  /**
   * Symmetry is sound only when the invariants do not single out a rank and the steps commute with renaming
   * ranks: sample both on a renamed copy of an early state.
   */
  private checkSymmetry(s: S, idx: number, invariants: [string, (s: S) => boolean][]): void {
    const sym = this.system.spec.symmetry!;
    const perm = samplePermutation(sym.size, idx + 7);
    const moved = sym.permute(s, perm);
    for (const [name, inv] of invariants) {
      if (inv(s) !== inv(moved)) {
        throw new ModelFault(
          `symmetry: invariant '${name}' is not symmetric (it gives different answers when ranks are renamed by [${perm.join(', ')}]); ` +
            `it probably names a specific rank. Make it symmetric or check with symmetry off.\n  on state: ${show(s as Data, 600)}`,
          idx,
        );
      }
    }
    const successors = (x: S) => {
      const out = new Set<string>();
      for (const inst of this.system.instances) {
        if (!this.guard(inst, x, idx)) continue;
        this.apply(inst, x, idx);
        out.add(Array.from(this.enc.words.subarray(0, this.enc.length)).join(','));
      }
      return out;
    };
    const a = successors(s);
    const b = successors(moved);
    if (a.size !== b.size || [...a].some((w) => !b.has(w))) {
      throw new ModelFault(
        `symmetry: the steps do not commute with renaming ranks by [${perm.join(', ')}] (the renamed state has other successors); ` +
          `check 'permute' renames every rank-indexed and rank-valued field.\n  on state: ${show(s as Data, 600)}`,
        idx,
      );
    }
  }

  /**
   * Under symmetry the stored path runs through representatives; rebuild a real behaviour from the initial
   * state by choosing, at each step, an action whose result has the same representative as the stored one.
   */
  private concretize(initial: S, path: readonly ActionInstance<S>[]): ActionInstance<S>[] {
    const key = (x: S) => {
      this.enc.encode(this.canon!(x));
      return Array.from(this.enc.words.subarray(0, this.enc.length)).join(',');
    };
    let rep = this.canon!(initial);
    let c = initial;
    const out: ActionInstance<S>[] = [];
    for (const inst of path) {
      const nextRep = inst.action.spec.effect(rep, inst.params);
      const want = key(nextRep);
      const match = this.system.instances.find((b) => {
        const g = b.action.spec.guard;
        return (!g || g(c, b.params)) && key(b.action.spec.effect(c, b.params)) === want;
      });
      if (!match) throw new Error(`internal: no concrete step matches ${formatLabel(inst.label)} under symmetry`);
      out.push(match);
      c = match.action.spec.effect(c, match.params);
      rep = this.canon!(nextRep);
    }
    return out;
  }

  /** The shortest path to state `idx` (then `extra` steps), replayed from its initial state. */
  private traceTo(idx: number, extra: ActionInstance<S>[]): Trace {
    const { init, ids } = pathTo(this.parent, this.via, idx);
    const initial = this.system.inits[init];
    const path = [...ids.map((id) => this.system.instances[id]), ...extra];
    return replay(initial, this.canon ? this.concretize(initial, path) : path);
  }

  private violated(property: string, kind: PropertyKind, message: string, trace: Trace | undefined): CheckResult {
    return violatedResult(this.stats(), property, kind, message, trace);
  }

  private incomplete(reason: string): CheckResult {
    return { verdict: 'incomplete', reason, stats: this.stats() };
  }

  private stats(): Stats {
    const graphBytes = this.graph ? this.edgeStart.bytes + this.edgeTarget.bytes + this.edgeVia.bytes : 0;
    const bytes = this.seen.bytes + this.parent.bytes + this.via.bytes + graphBytes;
    return this.watch.stats(this.parent.length, this.transitions, this.depth, bytes);
  }
}

/** Which properties a check covers: all, or the names given (each must be a property of the system). */
export function propertyFilter<S>(system: System<S>, names: readonly string[] | undefined): (name: string) => boolean {
  const chosen = checkedProperties(system, names);
  if (chosen === null) return () => true;
  const set = new Set(chosen);
  return (name) => set.has(name);
}

/** Fairness units: per action (each instance alone) and per actor (all its instances together). */
export function fairnessUnits<S>(system: System<S>): FairnessUnit[] {
  const units: FairnessUnit[] = [];
  for (const inst of system.instances) {
    const kind = inst.action.spec.fairness;
    if (kind) units.push({ name: formatLabel(inst.label), kind, instances: new Set([inst.id]) });
  }
  const f = system.spec.fairness;
  if (f !== undefined) {
    const byActor = new Map<string, Set<number>>();
    for (const inst of system.instances) {
      const actor = inst.actor ?? formatLabel(inst.label);
      if (!byActor.has(actor)) byActor.set(actor, new Set());
      byActor.get(actor)!.add(inst.id);
    }
    for (const [actor, ids] of byActor) {
      const kind = typeof f === 'string' ? f : f[actor];
      if (kind) units.push({ name: actor, kind, instances: ids });
    }
  }
  return units;
}

/** Replays action instances from a state, rebuilding each state and the step's sentence. */
export function replay<S>(initial: S, path: readonly ActionInstance<S>[]): Trace {
  const steps: { label: StepLabel; text?: string; state: Data }[] = [];
  let s = initial;
  for (const inst of path) {
    const describe = inst.action.spec.describe;
    const text = describe ? safeText(() => describe(inst.params, s)) : undefined;
    s = inst.action.spec.effect(s, inst.params);
    steps.push({ label: inst.label, ...(text !== undefined ? { text } : {}), state: s as Data });
  }
  return buildTrace(initial as Data, steps);
}

function safeText(f: () => string): string | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}


