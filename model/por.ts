/**
 * Partial-order reduction with stubborn sets. Two interleavings of independent steps (different actors,
 * touching disjoint state) reach the same state; exploring one order is enough for invariants, reachability
 * goals and deadlocks, if the reduced set at each state is chosen with care:
 *
 * - D1 (dependency): for an enabled action in the set, every action dependent on it is in the set too; for a
 *   disabled one, every action that could enable it (writes a field its guard or effect reads).
 * - non-empty: the set has an enabled action whenever the state has one (deadlocks are kept);
 * - C2 (visibility): when the set is not every enabled action, none of its actions writes a field the
 *   properties observe;
 * - C3 (cycle proviso, the BFS form): when a reduced expansion reaches an already visited state, the state is
 *   expanded fully. Every cycle of the reduced graph closes on an already visited state at the expansion of its
 *   last-expanded state, so every cycle has a fully expanded state and no action is ignored forever.
 *
 * - observation groups (a refinement of C2): a property may say what it reads as groups of paths, one group per
 *   conjunct (`observing([[...], ...], fn)`: the property is the conjunction of predicates, each reading only
 *   its group). A group whose writers are pairwise dependent (e.g. one thread's own fields, or a field every
 *   writer writes, such as a rank's GPU-kit fault `faults[r]`) needs no visibility: if a reduced expansion fires t while a
 *   full path w (none of whose steps is in the stubborn set, so each is independent of t) reaches a state b
 *   where the conjunct is false, either t does not write the group (the conjunct is still false after b.t) or
 *   no step of w does (the group has its value of the expanded state, which was already checked). Only the
 *   writers of groups with independent writers (and of the flat `observes`) are visible.
 * - stable properties (`stable(fn)`: once false in a state, false in every successor, e.g. a predicate over
 *   write-once history fields) need no visibility at all: in the same argument, b.t violates the property
 *   because b does, whatever t writes. The reduced graph then reaches some violating state, not necessarily
 *   at the shortest depth. The explorer audits the declaration where it finds a violation (every step from
 *   the violating state must keep it violated).
 * - step properties (`actionProperties`) take part when declared with `stepObserving({ actions, reads }, fn)`
 *   (only steps of those actions can break it, and it reads only those fields): each such step then also reads
 *   the fields and writes a pseudo-field `$step.<name>` that the property observes, as if the step latched a
 *   flag; the writers of the flag are pairwise dependent, so no step is made visible. With `key`, the property
 *   is a conjunction of per-key parts and each step latches the flag of its key (`$step.<name>.<key>`): steps
 *   of different keys (two ranks' stream steps) are not made dependent by the property.
 *
 * Dependency comes from the model's declarations: each action's `reads` and `writes` as field paths
 * (`rm[2]`, `tm`, `threads[0].main`, `streams[0]["p2p:1"]`); two paths overlap when one is a prefix of the
 * other. An actor's program counter is state like any other: declare it (`phase[2]`) where steps read it.
 * A disabled action's enablers are the writers of what it reads, or, when it declares its guard as
 * `conditions`, only the writers of one condition that is false now: the first, or a later false one marked
 * `standalone` (it means the same whatever the earlier ones say), whichever adds fewest steps to the set.
 * Writes are audited at run time (a step that changes an undeclared field is a model error); reads cannot be,
 * so `check --no-por` is the cross-check when in doubt.
 */
import { type ActionInstance, type Params, type System, conditionsOf } from './system.ts';

/** A field path split into segments: `threads[0].main` -> ['threads', '0', 'main']. */
export type Path = readonly string[];

/** Parses `a.b[2]["x:y"]` into segments; throws a readable Error on a malformed path. */
export function parsePath(text: string): Path {
  const out: string[] = [];
  let i = 0;
  const fail = (why: string) => {
    throw new Error(`malformed field path '${text}': ${why} at character ${i + 1}`);
  };
  if (text === '') fail('empty path');
  while (i < text.length) {
    const c = text[i];
    if (c === '[') {
      if (text[i + 1] === '"') {
        const end = text.indexOf('"]', i + 2);
        if (end < 0) fail('unterminated ["..."]');
        out.push(JSON.parse(text.slice(i + 1, end + 1)) as string);
        i = end + 2;
      } else {
        const end = text.indexOf(']', i);
        if (end < 0) fail("missing ']'");
        const idx = text.slice(i + 1, end);
        if (!/^\d+$/.test(idx)) fail(`index '${idx}' is not a number`);
        out.push(idx);
        i = end + 1;
      }
    } else {
      if (c === '.') {
        if (out.length === 0) fail("leading '.'");
        i++;
      }
      const m = /^[A-Za-z_$][\w$:-]*/.exec(text.slice(i));
      if (!m) fail('expected a field name');
      out.push(m![0]);
      i += m![0].length;
    }
  }
  return out;
}

/** Whether two paths touch common state: one is a prefix of the other. */
export function overlaps(a: Path, b: Path): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

const anyOverlap = (as: readonly Path[], bs: readonly Path[]) => as.some((a) => bs.some((b) => overlaps(a, b)));

/** The static tables the reduction uses at every state. */
export interface PorPlan {
  /** Per instance: the instances dependent on it. */
  readonly dependents: readonly Int32Array[];
  /** Per instance: the instances that may enable it (write a field it reads). */
  readonly enablers: readonly Int32Array[];
  /** Per instance: 1 when it writes a field the properties observe. */
  readonly visible: Uint8Array;
  /** Per instance: the paths it declares it writes (for the run-time audit). */
  readonly writes: readonly (readonly Path[])[];
  /**
   * Per instance with declared conditions: each condition's test and the instances that write its fields, or,
   * where the model gives one, the instances that can make it true from the state at hand (see `ENABLERS`).
   */
  readonly conditions: readonly ({ readonly holds: (s: any) => boolean; readonly writers: Int32Array; readonly now?: (s: any) => ArrayLike<number>; readonly standalone: boolean }[] | undefined)[];
}

/** Why the reduction is off for a system, or its plan. */
export type PorSetup = { readonly plan: PorPlan } | { readonly off: string };

/**
 * A condition (`ActionSpec.conditions`) may carry, under this key, `(s, params) => instance ids`: the instances
 * that can make the condition true from state s (a necessary enabling set that depends on the state, e.g. only
 * the step at a thread's current pc can move that pc). While the condition is false, the reduction uses it
 * instead of every writer of the condition's fields. It must be sound: no other step can make it true first.
 */
export const ENABLERS = Symbol.for('interleave.por.enablers');

// Symbol.for: a model file loaded through tsx gets its own copy of this module, and must still be understood.
const OBSERVES = Symbol.for('interleave.por.observes');
const STEP_OBSERVES = Symbol.for('interleave.por.stepObserves');
const STABLE = Symbol.for('interleave.por.stable');

/**
 * Declares what a property (invariant or reachability goal) reads, for partial-order reduction: the property is
 * the conjunction of predicates each reading only one group of paths (a property that is one predicate over
 * several fields is one group). Returns `fn` itself, marked. A property without it relies on the system's flat
 * `observes`.
 */
export function observing<F extends (...a: any[]) => boolean>(groups: readonly (readonly string[])[], fn: F): F {
  groups.forEach((g) => g.forEach((p) => parsePath(p)));
  return Object.assign(fn, { [OBSERVES]: groups });
}

/**
 * Declares an invariant stable for partial-order reduction: once it is false in a state it is false in every
 * successor (a violation is never undone: typically a predicate over write-once history fields). A stable
 * invariant makes no step visible, whatever it reads. Returns `fn` itself, marked.
 */
export function stable<F extends (...a: any[]) => boolean>(fn: F): F {
  return Object.assign(fn, { [STABLE]: true });
}

/** Whether `fn` was declared with `stable`. */
export function isStable(fn: unknown): boolean {
  return (fn as { [STABLE]?: boolean })[STABLE] === true;
}

/** What a step property reads, and (optionally) which of its per-key parts a step can break. */
export interface StepObservation {
  /** Only steps of these actions can break the property. */
  readonly actions: readonly string[];
  /** The fields it reads (of the state before and after the step); per step when a function. */
  readonly reads: readonly string[] | ((action: string, params: Params) => readonly string[]);
  /**
   * The property is a conjunction of parts, one per key, and a step can break only the part of its key (e.g.
   * the rank of a stream step: a check of that rank's queue). Steps of different keys then latch different
   * flags and need not be ordered; without `key`, every step of `actions` latches one flag.
   */
  readonly key?: (action: string, params: Params) => string;
}

/**
 * Declares a step property (`actionProperties`) for partial-order reduction: only steps of `actions` can break
 * it, and it reads only `reads` (of the state before and after the step). Returns `fn` itself, marked.
 */
export function stepObserving<F extends (...a: any[]) => boolean>(decl: StepObservation, fn: F): F {
  if (typeof decl.reads !== 'function') decl.reads.forEach((p) => parsePath(p));
  return Object.assign(fn, { [STEP_OBSERVES]: decl });
}

function groupsOf(fn: unknown): readonly (readonly string[])[] | undefined {
  return (fn as { [OBSERVES]?: readonly (readonly string[])[] })[OBSERVES];
}

/** Builds the dependency tables, or says why the reduction cannot apply to this system. */
export function planPor<S>(system: System<S>): PorSetup {
  const { spec, instances } = system;
  const bare = instances.filter((i) => !i.action.spec.reads || !i.action.spec.writes);
  if (bare.length === instances.length) return { off: 'no action declares reads and writes' };
  const undeclared = [...new Set(bare.map((i) => i.action.name))];
  if (undeclared.length > 0) {
    return { off: `action(s) ${undeclared.slice(0, 5).join(', ')}${undeclared.length > 5 ? ', ...' : ''} declare no reads/writes` };
  }
  const props = [...Object.entries(spec.invariants ?? {}).filter(([, fn]) => !isStable(fn)), ...Object.entries(spec.reachable ?? {})];
  const flat = props.filter(([, fn]) => groupsOf(fn) === undefined);
  if (flat.length > 0 && !spec.observes) {
    return { off: 'the system does not declare `observes` (the fields its properties read)' };
  }
  const stepProps = Object.entries(spec.actionProperties ?? {});
  const bareStep = stepProps.filter(([, fn]) => (fn as { [STEP_OBSERVES]?: unknown })[STEP_OBSERVES] === undefined);
  if (bareStep.length > 0) return { off: 'action properties observe every step (declare them with stepObserving)' };

  const declared = (inst: ActionInstance<S>, kind: 'reads' | 'writes'): Path[] => {
    const d = inst.action.spec[kind]!;
    const list = typeof d === 'function' ? d(inst.params) : d;
    return list.map((p) => {
      try {
        return parsePath(p);
      } catch (e) {
        throw new Error(`action '${inst.action.name}' ${kind}: ${(e as Error).message}`);
      }
    });
  };
  const reads = instances.map((i) => declared(i, 'reads'));
  const writes = instances.map((i) => declared(i, 'writes'));
  /** The writes the audit checks (the pseudo-fields of step properties are not state). */
  const audited = writes.map((w) => [...w]);
  const groups: Path[][] = [];
  for (const [, fn] of props) for (const g of groupsOf(fn) ?? []) groups.push(g.map((p) => parsePath(p)));
  for (const [name, fn] of stepProps) {
    const d = (fn as unknown as { [STEP_OBSERVES]: StepObservation })[STEP_OBSERVES];
    // One flag per key (a single one without keys): its writers all write it, so they are pairwise dependent.
    const flags = new Map<string, Path>();
    instances.forEach((inst, a) => {
      if (!d.actions.includes(inst.action.name)) return;
      const key = d.key ? d.key(inst.action.name, inst.params) : '';
      let flag = flags.get(key);
      if (flag === undefined) flags.set(key, (flag = d.key ? ['$step', name, key] : ['$step', name]));
      const extra = typeof d.reads === 'function' ? d.reads(inst.action.name, inst.params) : d.reads;
      reads[a].push(...extra.map((p) => parsePath(p)));
      writes[a].push(flag);
    });
    for (const flag of flags.values()) groups.push([flag]);
  }
  const observed = (spec.observes ?? []).map((p) => parsePath(p));
  const n = instances.length;
  const writersOf = (fields: readonly Path[], self: number) =>
    Int32Array.from(instances.map((_, b) => b).filter((b) => b !== self && anyOverlap(writes[b], fields)));
  const dependents: Int32Array[] = [];
  const enablers: Int32Array[] = [];
  const dep = new Uint8Array(n * n);
  for (let a = 0; a < n; a++) {
    const list: number[] = [];
    for (let b = 0; b < n; b++) {
      if (a === b) continue;
      if (anyOverlap(writes[a], reads[b]) || anyOverlap(writes[a], writes[b]) || anyOverlap(writes[b], reads[a])) {
        list.push(b);
        dep[a * n + b] = 1;
      }
    }
    dependents.push(Int32Array.from(list));
    enablers.push(writersOf(reads[a], a));
  }
  const conditions = instances.map((inst, a) => {
    const conds = conditionsOf(inst.action);
    if (!conds) return undefined;
    return conds.map((c) => {
      const fields = (typeof c.reads === 'function' ? c.reads(inst.params) : c.reads).map((p) => parsePath(p));
      const now = (c as { [ENABLERS]?: (s: any, p: any) => ArrayLike<number> })[ENABLERS];
      return { holds: (s: any) => c.holds(s, inst.params), writers: writersOf(fields, a), standalone: c.standalone === true, ...(now ? { now: (s: any) => now(s, inst.params) } : {}) };
    });
  });
  const visible = Uint8Array.from(writes, (w) => (flat.length > 0 && anyOverlap(w, observed) ? 1 : 0));
  // A group whose writers are pairwise dependent needs no visibility (see the header); otherwise its writers are visible.
  for (const g of groups) {
    const ws: number[] = [];
    for (let a = 0; a < n; a++) if (anyOverlap(writes[a], g)) ws.push(a);
    let sequential = true;
    for (let i = 0; i < ws.length && sequential; i++) {
      for (let j = i + 1; j < ws.length; j++) {
        if (!dep[ws[i] * n + ws[j]]) {
          sequential = false;
          break;
        }
      }
    }
    if (!sequential) for (const a of ws) visible[a] = 1;
  }
  return { plan: { dependents, enablers, visible, writes: audited, conditions } };
}

/**
 * Picks the smallest stubborn set among those grown from each enabled instance (`enabledList`, with
 * `enabled[i]` = 1 for those). Returns the enabled instances of it, or undefined to expand fully.
 */
export class AmpleChooser {
  private readonly mark: Uint32Array;
  private stamp = 0;
  private readonly stack: Int32Array;

  constructor(private readonly plan: PorPlan) {
    this.mark = new Uint32Array(plan.visible.length);
    this.stack = new Int32Array(plan.visible.length);
  }

  choose(s: unknown, enabled: Uint8Array, enabledList: readonly number[]): number[] | undefined {
    const total = enabledList.length;
    if (total <= 1) return undefined;
    let best: number[] | undefined;
    for (const seed of enabledList) {
      const set = this.grow(s, seed, enabled, total, best ? best.length : total);
      if (set && (!best || set.length < best.length)) {
        best = set;
        if (best.length === 1) break;
      }
    }
    return best;
  }

  /** The enabled part of the stubborn set grown from `seed`, or undefined when it is visible or not smaller than `limit`. */
  private grow(s: unknown, seed: number, enabled: Uint8Array, total: number, limit: number): number[] | undefined {
    const { dependents, enablers, visible, conditions } = this.plan;
    if (visible[seed]) return undefined;
    if (++this.stamp === 0xffffffff) {
      this.mark.fill(0);
      this.stamp = 1;
    }
    const stamp = this.stamp;
    const out: number[] = [];
    let top = 0;
    this.stack[top++] = seed;
    this.mark[seed] = stamp;
    while (top > 0) {
      const t = this.stack[--top];
      let next: ArrayLike<number>;
      if (enabled[t]) {
        if (visible[t]) return undefined;
        out.push(t);
        if (out.length >= limit || out.length >= total) return undefined;
        next = dependents[t];
      } else {
        next = enablers[t];
        const conds = conditions[t];
        if (conds) {
          // The first false condition keeps t disabled; so does any later false one that is `standalone` (it
          // means the same whatever the earlier ones say). Take the one adding the fewest instances not yet in
          // the set: a rendezvous waits on every member, and the member whose steps are in already costs nothing.
          let fewest = Infinity;
          let blocked = false;
          for (const c of conds) {
            if (blocked && !c.standalone) continue;
            if (c.holds(s)) continue;
            blocked = true;
            const cand = c.now ? c.now(s) : c.writers;
            let added = 0;
            for (let k = 0; k < cand.length && added < fewest; k++) if (this.mark[cand[k]] !== stamp) added++;
            if (added < fewest) {
              fewest = added;
              next = cand;
              if (added === 0) break;
            }
          }
        }
      }
      for (let k = 0; k < next.length; k++) {
        const u = next[k];
        if (this.mark[u] !== stamp) {
          this.mark[u] = stamp;
          this.stack[top++] = u;
        }
      }
    }
    return out;
  }
}

/** Whether a changed field (a diff path, e.g. `rm[3]`) is covered by one of the declared writes. */
export function declaredWrite(changed: string, writes: readonly Path[]): boolean {
  if (changed === '') return writes.some((w) => w.length === 0);
  let p = parsedChanges.get(changed);
  if (p === undefined) {
    p = parsePath(changed);
    // The audit meets the same few paths at every transition: parse each once (a bounded cache).
    if (parsedChanges.size >= 4096) parsedChanges.clear();
    parsedChanges.set(changed, p);
  }
  return writes.some((w) => overlaps(w, p) && w.length <= p.length);
}

const parsedChanges = new Map<string, Path>();
