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
  spec.actions.forEach((a, i) => {
    if (!a || typeof a.name !== 'string' || !a.spec || typeof a.spec.effect !== 'function') {
      throw new ModelError(`${where}: actions[${i}] is not an action (use act('name', { effect, ... }))`);
    }
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
  return { name: spec.name, spec, inits, instances };
}

function paramCombinations(a: Action<unknown>, where: string): Params[] {
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
