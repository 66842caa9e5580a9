/**
 * Liveness under fairness, on the explored state graph.
 *
 * Behaviours are the infinite paths of the graph and the finite paths that end in a state with no enabled
 * action (which then stutters forever). Fairness is declared per action (each instance, i.e. each parameter
 * combination, is one unit) or per actor (all of an actor's instances together):
 *   weak:   a unit continuously enabled from some point on is taken infinitely often;
 *   strong: a unit enabled infinitely often is taken infinitely often.
 * A property fails when a fair behaviour breaks it; the counterexample is a lasso (a prefix, then a cycle).
 *
 * Algorithm: restrict the graph to the states the failing behaviour may stay in (¬P, ¬Q), find its strongly
 * connected components (iterative Tarjan over typed arrays), and look for a fair one: a component is fair
 * when each weak unit is taken inside it or disabled somewhere in it, and each strong unit is taken inside it
 * or disabled everywhere in it; for a strong unit that is enabled somewhere but never taken, the states where
 * it is enabled are removed and the rest is searched again (the fair cycle must avoid them).
 */

export type StatePredicate<S> = (s: S) => boolean;

export type Liveness<S> =
  | { readonly kind: 'eventually'; readonly p: StatePredicate<S> }
  | { readonly kind: 'alwaysEventually'; readonly p: StatePredicate<S> }
  | { readonly kind: 'leadsTo'; readonly p: StatePredicate<S>; readonly q: StatePredicate<S> };

/** ◇P: every behaviour reaches a P state. */
export const eventually = <S>(p: StatePredicate<S>): Liveness<S> => ({ kind: 'eventually', p });
/** □◇P: every behaviour is in a P state infinitely often (or ends in one). */
export const alwaysEventually = <S>(p: StatePredicate<S>): Liveness<S> => ({ kind: 'alwaysEventually', p });
/** □(P ⇒ ◇Q): from every P state, every behaviour reaches a Q state. */
export const leadsTo = <S>(p: StatePredicate<S>, q: StatePredicate<S>): Liveness<S> => ({ kind: 'leadsTo', p, q });

export type FairnessKind = 'weak' | 'strong';

/** The explored graph in CSR form: state i's edges are [start[i], start[i+1]). */
export interface StateGraph {
  readonly states: number;
  readonly inits: readonly number[];
  readonly start: Uint32Array;
  readonly target: Uint32Array;
  /** Action instance id of each edge. */
  readonly via: Uint32Array;
}

/** Fairness units: each a set of instance ids and a kind. */
export interface FairnessUnit {
  readonly name: string;
  readonly kind: FairnessKind;
  readonly instances: ReadonlySet<number>;
}

/** A lasso: from an initial state along `prefix` edges, then `cycle` edges back to the cycle's first state. */
export interface Lasso {
  readonly init: number;
  /** Instance ids of the prefix steps, then of the cycle steps. */
  readonly steps: readonly number[];
  /** Number of prefix steps (the cycle starts after them). An empty cycle means: stutters at the end. */
  readonly loopStart: number;
}

/**
 * Finds a fair behaviour that stays in `allowed` states from some state of `entries` on (entries must be
 * allowed), and that is either a fair cycle or ends in a state with no successors. Returns the entry state,
 * the path inside `allowed` to the cycle and the cycle itself, as state indices and edge ids.
 */
export function findFairLasso(
  g: StateGraph,
  allowed: Uint8Array,
  entries: Uint8Array,
  units: readonly FairnessUnit[],
): { entry: number; path: number[]; cycle: number[] } | undefined {
  // States reachable from the entries inside `allowed`.
  const reach = forwardReach(g, allowed, entries);
  // A dead end (no successors at all) inside the region: the behaviour stutters there forever, which is fair.
  for (let s = 0; s < g.states; s++) {
    if (reach.parentEdge[s] !== UNSEEN && g.start[s] === g.start[s + 1]) {
      return { entry: reach.rootOf(s), path: reach.pathTo(s), cycle: [] };
    }
  }
  const mask = new Uint8Array(g.states);
  for (let s = 0; s < g.states; s++) if (reach.parentEdge[s] !== UNSEEN) mask[s] = 1;
  const comp = fairComponent(g, mask, units);
  if (!comp) return undefined;
  const cycle = fairCycle(g, comp, units);
  const at = g.target[cycle[cycle.length - 1]];
  return { entry: reach.rootOf(at), path: reach.pathTo(at), cycle };
}

const UNSEEN = 0xffffffff;
const ROOT = 0xfffffffe;

function forwardReach(g: StateGraph, allowed: Uint8Array, entries: Uint8Array) {
  const parentEdge = new Uint32Array(g.states).fill(UNSEEN);
  const parentState = new Uint32Array(g.states).fill(UNSEEN);
  const queue = new Uint32Array(g.states);
  let head = 0;
  let tail = 0;
  for (let s = 0; s < g.states; s++) {
    if (entries[s] && allowed[s]) {
      parentEdge[s] = ROOT;
      queue[tail++] = s;
    }
  }
  while (head < tail) {
    const s = queue[head++];
    for (let e = g.start[s]; e < g.start[s + 1]; e++) {
      const t = g.target[e];
      if (allowed[t] && parentEdge[t] === UNSEEN) {
        parentEdge[t] = e;
        parentState[t] = s;
        queue[tail++] = t;
      }
    }
  }
  return {
    parentEdge,
    rootOf(s: number): number {
      while (parentEdge[s] !== ROOT) s = parentState[s];
      return s;
    },
    pathTo(s: number): number[] {
      const edges: number[] = [];
      while (parentEdge[s] !== ROOT) {
        edges.push(parentEdge[s]);
        s = parentState[s];
      }
      return edges.reverse();
    },
  };
}

/** Strongly connected components of the subgraph induced by `mask` (iterative Tarjan). comp[s] = id or UNSEEN. */
export function sccs(g: StateGraph, mask: Uint8Array): { comp: Uint32Array; count: number } {
  const n = g.states;
  const index = new Uint32Array(n).fill(UNSEEN);
  const low = new Uint32Array(n);
  const comp = new Uint32Array(n).fill(UNSEEN);
  const onStack = new Uint8Array(n);
  const stack = new Uint32Array(n);
  const callState = new Uint32Array(n);
  const callEdge = new Uint32Array(n);
  let sp = 0;
  let depth = 0;
  let counter = 0;
  let count = 0;
  for (let root = 0; root < n; root++) {
    if (!mask[root] || index[root] !== UNSEEN) continue;
    callState[0] = root;
    callEdge[0] = g.start[root];
    depth = 1;
    index[root] = low[root] = counter++;
    stack[sp++] = root;
    onStack[root] = 1;
    while (depth > 0) {
      const v = callState[depth - 1];
      const e = callEdge[depth - 1];
      if (e < g.start[v + 1]) {
        callEdge[depth - 1] = e + 1;
        const w = g.target[e];
        if (!mask[w]) continue;
        if (index[w] === UNSEEN) {
          index[w] = low[w] = counter++;
          stack[sp++] = w;
          onStack[w] = 1;
          callState[depth] = w;
          callEdge[depth] = g.start[w];
          depth++;
        } else if (onStack[w] && index[w] < low[v]) {
          low[v] = index[w];
        }
        continue;
      }
      if (low[v] === index[v]) {
        let w: number;
        do {
          w = stack[--sp];
          onStack[w] = 0;
          comp[w] = count;
        } while (w !== v);
        count++;
      }
      depth--;
      if (depth > 0) {
        const u = callState[depth - 1];
        if (low[v] < low[u]) low[u] = low[v];
      }
    }
  }
  return { comp, count };
}

/** A set of states (as a mask) forming a fair SCC inside `mask`, or undefined. */
function fairComponent(g: StateGraph, mask: Uint8Array, units: readonly FairnessUnit[]): Uint8Array | undefined {
  const { comp, count } = sccs(g, mask);
  const members: number[][] = Array.from({ length: count }, () => []);
  for (let s = 0; s < g.states; s++) if (comp[s] !== UNSEEN) members[comp[s]].push(s);
  for (let c = 0; c < count; c++) {
    const ms = members[c];
    // Non-trivial: it has an edge inside (a self-loop counts).
    let internal = false;
    for (const s of ms) {
      for (let e = g.start[s]; e < g.start[s + 1] && !internal; e++) if (comp[g.target[e]] === c) internal = true;
      if (internal) break;
    }
    if (!internal) continue;
    let fair = true;
    const removeForStrong: number[] = [];
    for (const u of units) {
      let taken = false;
      let enabledSomewhere = false;
      let disabledSomewhere = false;
      for (const s of ms) {
        let enabledHere = false;
        for (let e = g.start[s]; e < g.start[s + 1]; e++) {
          if (!u.instances.has(g.via[e])) continue;
          enabledHere = true;
          if (comp[g.target[e]] === c) taken = true;
        }
        if (enabledHere) enabledSomewhere = true;
        else disabledSomewhere = true;
      }
      if (taken) continue;
      if (u.kind === 'weak') {
        if (!disabledSomewhere) {
          fair = false;
          break;
        }
      } else if (enabledSomewhere) {
        fair = false;
        // The fair cycle, if any, avoids the states where this strong unit is enabled.
        for (const s of ms) {
          for (let e = g.start[s]; e < g.start[s + 1]; e++) {
            if (u.instances.has(g.via[e])) {
              removeForStrong.push(s);
              break;
            }
          }
        }
      }
    }
    const set = new Uint8Array(g.states);
    for (const s of ms) set[s] = 1;
    if (fair) return set;
    if (removeForStrong.length > 0) {
      for (const s of removeForStrong) set[s] = 0;
      const inner = fairComponent(g, set, units);
      if (inner) return inner;
    }
  }
  return undefined;
}

/**
 * A cycle inside the fair component that takes every unit the component can take and passes a state where
 * every other weak unit is disabled: a tour through those witnesses, joined by shortest paths.
 */
function fairCycle(g: StateGraph, set: Uint8Array, units: readonly FairnessUnit[]): number[] {
  let startState = -1;
  for (let s = 0; s < g.states; s++) {
    if (set[s]) {
      startState = s;
      break;
    }
  }
  // Witnesses: edges to take, states to visit.
  const edgeGoals: number[] = [];
  const stateGoals: number[] = [];
  for (const u of units) {
    let edge = -1;
    let disabledAt = -1;
    for (let s = 0; s < g.states && edge < 0; s++) {
      if (!set[s]) continue;
      let enabledHere = false;
      for (let e = g.start[s]; e < g.start[s + 1]; e++) {
        if (!u.instances.has(g.via[e])) continue;
        enabledHere = true;
        if (set[g.target[e]]) {
          edge = e;
          break;
        }
      }
      if (!enabledHere && disabledAt < 0) disabledAt = s;
    }
    if (edge >= 0) edgeGoals.push(edge);
    else if (disabledAt >= 0) stateGoals.push(disabledAt);
  }
  const edgeSource = (e: number) => {
    // CSR: the source of edge e is the state whose range holds e.
    let lo = 0;
    let hi = g.states - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (g.start[mid] <= e) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const cycle: number[] = [];
  let at = startState;
  for (const e of edgeGoals) {
    cycle.push(...pathInside(g, set, at, edgeSource(e)), e);
    at = g.target[e];
  }
  for (const s of stateGoals) {
    cycle.push(...pathInside(g, set, at, s));
    at = s;
  }
  // Close the loop back to the start; a component with an internal edge always allows a non-empty cycle.
  if (at === startState && cycle.length === 0) {
    for (let e = g.start[at]; e < g.start[at + 1]; e++) {
      if (set[g.target[e]]) {
        cycle.push(e);
        at = g.target[e];
        break;
      }
    }
  }
  cycle.push(...pathInside(g, set, at, startState));
  // Rotate so the cycle starts where the prefix will enter: the caller enters at the last edge's target.
  return cycle;
}

/** Shortest path (edge ids) from a to b using only states in `set`; empty when a === b. */
function pathInside(g: StateGraph, set: Uint8Array, a: number, b: number): number[] {
  if (a === b) return [];
  const prevEdge = new Map<number, number>();
  const prevState = new Map<number, number>();
  const queue = [a];
  prevEdge.set(a, -1);
  for (let h = 0; h < queue.length; h++) {
    const s = queue[h];
    for (let e = g.start[s]; e < g.start[s + 1]; e++) {
      const t = g.target[e];
      if (!set[t] || prevEdge.has(t)) continue;
      prevEdge.set(t, e);
      prevState.set(t, s);
      if (t === b) {
        const path: number[] = [];
        let x = b;
        while (x !== a) {
          path.push(prevEdge.get(x)!);
          x = prevState.get(x)!;
        }
        return path.reverse();
      }
      queue.push(t);
    }
  }
  throw new Error(`internal: no path inside a strongly connected component (${a} -> ${b})`);
}
