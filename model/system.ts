/**
 * The API a protocol author writes in: a transition system over plain immutable data.
 *
 *   const act = actionsOf<State>();
 *   export default defineSystem<State>({
 *     name: 'two-phase',
 *     init: { rm: ['working', 'working'], tm: 'init' },
 *     actions: [
 *       act('RMPrepare', { params: { rm: [0, 1] }, actor: ({ rm }) => `rm ${rm}`,
 *         guard: (s, { rm }) => s.rm[rm] === 'working',
 *         effect: (s, { rm }) => ({ ...s, rm: s.rm.with(rm, 'prepared') }) }),
 *     ],
 *     invariants: { consistent: (s) => !(s.rm.includes('committed') && s.rm.includes('aborted')) },
 *   });
 */
import { type Data, DataError, Encoder, deepFreeze } from './data.ts';
import type { FairnessKind, Liveness } from './liveness.ts';
import { parsePath } from './por.ts';
import type { Symmetry } from './symmetry.ts';

export type { Data } from './data.ts';

/** Named action parameters, e.g. `{ rank: 1, layer: 0 }`. */
export type Params = { readonly [name: string]: Data };

/** Finite domains, one per parameter; an action has one instance per combination. */
export type ParamDomains<P extends Params> = { readonly [K in keyof P]: readonly P[K][] };

export interface ActionSpec<S, P extends Params> {
  /** Finite parameter domains (cartesian product); omit for an action without parameters. */
  readonly params?: ParamDomains<P>;
  /** Who takes the step: a rank, thread or stream ("rank 1 main", "stream C"). Shown in traces. */
  readonly actor?: string | ((p: P) => string);
  /** Enabled when true; an absent guard is always enabled. Must not throw. */
  readonly guard?: (s: S, p: P) => boolean;
  /** The next state. Pure: must not mutate `s` (states are frozen; a mutation is reported). */
  readonly effect: (s: S, p: P) => S;
  /** A reviewer-readable sentence for traces, e.g. `rank 1 waits the send handle of micro-batch 0`. */
  readonly describe?: (p: P, s: S) => string;
  /** Fairness of each instance of this action (each parameter combination is one unit), for liveness. */
  readonly fairness?: FairnessKind;
  /**
   * Partial-order reduction: the state fields the guard and effect read, as paths (`rm[2]`, `tm`,
   * `threads[0].main`, `streams[0]["p2p:1"]`; a path covers everything below it). Declare `reads` and
   * `writes` on every action, and `observes` on the system, to turn the reduction on (model/por.ts).
   */
  readonly reads?: readonly string[] | ((p: P) => readonly string[]);
  /** Partial-order reduction: the fields the effect may change (audited: an undeclared change is an error). */
  readonly writes?: readonly string[] | ((p: P) => readonly string[]);
  /**
   * More of the guard, as named conditions with the fields each reads; the action is enabled when `guard`
   * (if any) and every condition hold. The reduction then knows which condition keeps a disabled action
   * disabled, and so which steps could enable it (only the writers of that condition's fields): without them
   * it must assume any writer of any field the action reads.
   */
  readonly conditions?: readonly Condition<S, P>[];
}

/** One conjunct of an action's guard, with the fields it reads (see `ActionSpec.conditions`). */
export interface Condition<S, P extends Params = Params> {
  readonly reads: readonly string[] | ((p: P) => readonly string[]);
  readonly holds: (s: S, p: P) => boolean;
  /**
   * Conditions are tested in order, each assuming the earlier ones hold. A `standalone` one means the same in
   * any state: the reduction may then blame it for keeping the action disabled even when an earlier one is
   * false too, and picks, among those false, the one whose enablers cost least (e.g. one member of a
   * rendezvous whose steps are already in the set).
   */
  readonly standalone?: boolean;
}

/** An action whose `conditions` were folded into its `guard` by defineSystem (the engines see one guard). */
// Symbol.for: a model file loaded through tsx gets its own copy of this module, and must still be understood.
const FOLDED = Symbol.for('interleave.foldedConditions');

/** The conditions of an action as declared, after defineSystem folded them into its guard. */
export function conditionsOf<S>(a: Action<S>): readonly Condition<S, any>[] | undefined {
  return (a.spec as { [FOLDED]?: readonly Condition<S, any>[] })[FOLDED];
}

function foldConditions<S>(a: Action<S>): Action<S> {
  const conds = a.spec.conditions;
  if (!conds || conds.length === 0) return a;
  const g = a.spec.guard;
  const guard = (s: S, p: Params) => (!g || g(s, p)) && conds.every((c) => c.holds(s, p));
  return { name: a.name, spec: { ...a.spec, guard, conditions: undefined, [FOLDED]: conds } as ActionSpec<S, any> };
}

export interface Action<S> {
  readonly name: string;
  readonly spec: ActionSpec<S, any>;
}

/** Typed action constructor: `const act = actionsOf<State>()` then `act('name', {...})`. */
export function actionsOf<S>() {
  return <P extends Params = {}>(name: string, spec: ActionSpec<S, P>): Action<S> => ({ name, spec });
}

/** Untyped form of `actionsOf<S>()(name, spec)`. */
export function action<S, P extends Params = {}>(name: string, spec: ActionSpec<S, P>): Action<S> {
  return { name, spec };
}

/** The label of one step in a trace. */
export interface StepLabel {
  readonly action: string;
  readonly params: Params;
  readonly actor?: string;
}

export interface SystemSpec<S> {
  readonly name: string;
  /** The initial state; use `inits` for several. */
  readonly init?: S;
  readonly inits?: readonly S[];
  readonly actions: readonly Action<S>[];
  /** Must hold in every reachable state. */
  readonly invariants?: { readonly [name: string]: (s: S) => boolean };
  /** Must hold on every transition (before, step, after). */
  readonly actionProperties?: { readonly [name: string]: (before: S, step: StepLabel, after: S) => boolean };
  /** Must hold in at least one reachable state (e.g. "a receive is in flight while compute runs"). */
  readonly reachable?: { readonly [name: string]: (s: S) => boolean };
  /** States with no enabled action that are proper ends, not deadlocks. */
  readonly terminal?: (s: S) => boolean;
  /** At a deadlock: one line per blocked actor saying what it waits for. */
  readonly explainStuck?: (s: S) => readonly string[];
  /** Temporal properties: `eventually(p)`, `alwaysEventually(p)`, `leadsTo(p, q)` from model/liveness.ts. */
  readonly liveness?: { readonly [name: string]: Liveness<S> };
  /**
   * Fairness per actor, for liveness: one kind for every actor, or a kind per actor name. All of an actor's
   * instances form one unit ("the main thread keeps running"). Actions may also declare their own.
   */
  readonly fairness?: FairnessKind | { readonly [actor: string]: FairnessKind };
  /** Interchangeable ranks, for symmetry reduction (see model/symmetry.ts). */
  readonly symmetry?: Symmetry<S>;
  /**
   * Partial-order reduction: the fields the invariants and reachability goals read (paths, as in an action's
   * `reads`). An action that writes one of them is never reordered past others.
   */
  readonly observes?: readonly string[];
}

/** One action with one parameter combination: the unit the explorer fires. */
export interface ActionInstance<S> {
  readonly id: number;
  readonly action: Action<S>;
  readonly params: Params;
  readonly actor: string | undefined;
  readonly label: StepLabel;
}

/** A validated system, ready to explore. */
export interface System<S> {
  readonly name: string;
  readonly spec: SystemSpec<S>;
  readonly inits: readonly S[];
  readonly instances: readonly ActionInstance<S>[];
}

/** A malformed model: names what is wrong and where. */
export class ModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelError';
  }
}

const NAME = /^[A-Za-z_][\w.:-]*$/;

export function defineSystem<S>(spec: SystemSpec<S>): System<S> {
  const where = `system '${spec?.name ?? '?'}'`;
  if (!spec || typeof spec !== 'object') throw new ModelError('a system must be an object (defineSystem({...}))');
  if (typeof spec.name !== 'string' || spec.name === '') throw new ModelError('a system needs a non-empty `name`');
  if ((spec.init === undefined) === (spec.inits === undefined)) {
    throw new ModelError(`${where}: give exactly one of \`init\` (a state) or \`inits\` (a list of states)`);
  }
  const inits = spec.inits ?? [spec.init as S];
  if (!Array.isArray(inits) || inits.length === 0) throw new ModelError(`${where}: \`inits\` must be a non-empty list`);
  const enc = new Encoder();
  inits.forEach((s, i) => {
    try {
      enc.encode(s);
    } catch (e) {
      if (e instanceof DataError) throw new ModelError(`${where}: initial state ${i}, field ${e.message}`);
      throw e;
    }
    deepFreeze(s);
  });
  if (!Array.isArray(spec.actions)) throw new ModelError(`${where}: \`actions\` must be a list of act(...) entries`);

  const seen = new Map<string, string>();
  const claim = (name: string, kind: string) => {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new ModelError(`${where}: ${kind} name ${JSON.stringify(name)} is not a valid name (letters, digits, _ . : -)`);
    }
    const prior = seen.get(name);
    if (prior) throw new ModelError(`${where}: duplicate name '${name}' (a ${prior} and a ${kind})`);
    seen.set(name, kind);
  };

  const instances: ActionInstance<S>[] = [];
  const actions = spec.actions.map((a, i): Action<S> => {
    if (!a || typeof a.name !== 'string' || !a.spec || typeof a.spec.effect !== 'function') {
      throw new ModelError(`${where}: actions[${i}] is not an action (use act('name', { effect, ... }))`);
    }
    if (a.spec.conditions !== undefined && (!Array.isArray(a.spec.conditions) || a.spec.conditions.some((c: Condition<S> | undefined) => !c || typeof c.holds !== 'function'))) {
      throw new ModelError(`${where}: action '${a.name}' \`conditions\` must be a list of { reads, holds }`);
    }
    return foldConditions<S>(a);
  });
  actions.forEach((a) => {
    claim(a.name, 'action');
    for (const combo of paramCombinations(a, where)) {
      const actor = typeof a.spec.actor === 'function' ? a.spec.actor(combo) : a.spec.actor;
      instances.push({
        id: instances.length,
        action: a,
        params: combo,
        actor,
        label: actor === undefined ? { action: a.name, params: combo } : { action: a.name, params: combo, actor },
      });
    }
  });
  for (const [group, kind] of [
    [spec.invariants, 'invariant'],
    [spec.actionProperties, 'action property'],
    [spec.reachable, 'reachability property'],
  ] as const) {
    for (const [name, fn] of Object.entries(group ?? {})) {
      claim(name, kind);
      if (typeof fn !== 'function') throw new ModelError(`${where}: ${kind} '${name}' must be a function`);
    }
  }
  for (const [name, l] of Object.entries(spec.liveness ?? {})) {
    claim(name, 'liveness property');
    if (!l || !['eventually', 'alwaysEventually', 'leadsTo'].includes((l as Liveness<S>).kind)) {
      throw new ModelError(`${where}: liveness property '${name}' must be eventually(p), alwaysEventually(p) or leadsTo(p, q)`);
    }
  }
  if (typeof spec.fairness === 'object' && spec.fairness !== null) {
    const actors = new Set(instances.map((i) => i.actor));
    for (const [actor, kind] of Object.entries(spec.fairness)) {
      if (!actors.has(actor)) {
        throw new ModelError(`${where}: fairness names actor '${actor}', which no action has (actors: ${[...actors].filter(Boolean).join(', ')})`);
      }
      if (kind !== 'weak' && kind !== 'strong') throw new ModelError(`${where}: fairness of '${actor}' must be 'weak' or 'strong'`);
    }
  }
  if (instances.length === 0) throw new ModelError(`${where}: no actions`);
  checkPaths(spec, instances, where);
  return { name: spec.name, spec: actions.every((a, i) => a === spec.actions[i]) ? spec : { ...spec, actions }, inits, instances };
}

/** Field paths of `reads`, `writes` and `observes` must parse: a typo here would silently weaken the reduction. */
function checkPaths<S>(spec: SystemSpec<S>, instances: readonly ActionInstance<S>[], where: string): void {
  const parse = (path: unknown, what: string) => {
    if (typeof path !== 'string') throw new ModelError(`${where}: ${what}: a field path must be a string, got ${JSON.stringify(path)}`);
    try {
      parsePath(path);
    } catch (e) {
      throw new ModelError(`${where}: ${what}: ${(e as Error).message}`);
    }
  };
  if (spec.observes !== undefined) {
    if (!Array.isArray(spec.observes)) throw new ModelError(`${where}: \`observes\` must be a list of field paths`);
    spec.observes.forEach((p) => parse(p, '`observes`'));
  }
  for (const inst of instances) {
    for (const kind of ['reads', 'writes'] as const) {
      const d = inst.action.spec[kind];
      if (d === undefined) continue;
      const what = `action ${formatLabel(inst.label)} \`${kind}\``;
      let list: unknown;
      try {
        list = typeof d === 'function' ? d(inst.params) : d;
      } catch (e) {
        throw new ModelError(`${where}: ${what} threw: ${(e as Error).message}`);
      }
      if (!Array.isArray(list)) throw new ModelError(`${where}: ${what} must be a list of field paths (or a function of the parameters returning one)`);
      list.forEach((p) => parse(p, what));
    }
    (conditionsOf(inst.action) ?? []).forEach((c, k) => {
      const what = `action ${formatLabel(inst.label)} condition ${k + 1} \`reads\``;
      const list = typeof c.reads === 'function' ? c.reads(inst.params) : c.reads;
      if (!Array.isArray(list)) throw new ModelError(`${where}: ${what} must be a list of field paths`);
      list.forEach((p) => parse(p, what));
    });
  }
}

function paramCombinations(a: Action<any>, where: string): Params[] {
  const domains = a.spec.params ?? {};
  const names = Object.keys(domains);
  let combos: Record<string, Data>[] = [{}];
  for (const name of names) {
    const dom = (domains as Record<string, readonly Data[]>)[name];
    if (!Array.isArray(dom)) {
      throw new ModelError(`${where}: action '${a.name}' parameter '${name}' must be a list of values`);
    }
    const enc = new Encoder();
    dom.forEach((v, i) => {
      try {
        enc.encode(v);
      } catch (e) {
        if (e instanceof DataError) {
          throw new ModelError(`${where}: action '${a.name}' parameter '${name}' value ${i}: ${e.problem}`);
        }
        throw e;
      }
    });
    combos = combos.flatMap((c) => dom.map((v) => ({ ...c, [name]: v })));
  }
  return combos.map((c) => Object.freeze(c));
}

/** Renders a step label as `Action(rank=1, layer=0)`. */
export function formatLabel(l: StepLabel): string {
  const ps = Object.entries(l.params)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
  return ps ? `${l.action}(${ps})` : l.action;
}
