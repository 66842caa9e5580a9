/**
 * What the engines say when a model misbehaves (a guard, effect or property that throws, an effect that mutates
 * its input or returns non-data), and which properties a check covers: one wording for the single-threaded
 * explorer and the parallel workers, so a model error reads the same whichever found it.
 */
import { type Data, type DataError, show } from './data.ts';
import type { ActionInstance, StepLabel, System } from './system.ts';
import { ModelError, formatLabel } from './system.ts';

export function errText(e: unknown): string {
  return e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
}

/** `<what> threw: <error>` and the state it was given. */
export function threwText(what: string, e: unknown, s: unknown, where: 'on state' | 'from state' = 'on state'): string {
  return `${what} threw: ${errText(e)}\n  ${where}: ${show(s as Data, 600)}`;
}

/** An effect threw: a TypeError from a frozen state means it tried to mutate its input. */
export function effectThrewText(inst: ActionInstance<any>, e: unknown, s: unknown): string {
  if (e instanceof TypeError && /read[- ]only|not extensible|Cannot (add|delete|assign|define)/i.test(e.message)) {
    const field = /property '([^']+)'/.exec(e.message)?.[1] ?? /property (\S+)/.exec(e.message)?.[1];
    return (
      `effect of action ${formatLabel(inst.label)} mutated its input state${field ? ` (field '${field}')` : ''}: ` +
      `${e.message}. Return a new state instead, e.g. { ...s, field: value }.\n  on state: ${show(s as Data, 600)}`
    );
  }
  return threwText(`effect of action ${formatLabel(inst.label)}`, e, s);
}

/** How an engine turns a model error into its own exception (at the key or index of the state at hand). */
export type FaultOf = (message: string, at: number) => Error;

/** Runs an action's guard; one that throws is thrown as `fault(message, at)`. */
export function guardHolds<S>(inst: ActionInstance<S>, s: S, fault: FaultOf, at: number): boolean {
  const g = inst.action.spec.guard;
  if (!g) return true;
  try {
    return g(s, inst.params);
  } catch (e) {
    throw fault(threwText(`guard of action ${formatLabel(inst.label)}`, e, s), at);
  }
}

/** Runs an action's effect; one that throws is thrown as `fault(message, at)`. */
export function effectOf<S>(inst: ActionInstance<S>, s: S, fault: FaultOf, at: number): S {
  try {
    return inst.action.spec.effect(s, inst.params);
  } catch (e) {
    throw fault(effectThrewText(inst, e, s), at);
  }
}

/** Runs a system's terminal predicate; one that throws is thrown as `fault(message, at)`. */
export function terminalHolds<S>(terminal: (s: S) => boolean, s: S, fault: FaultOf, at: number): boolean {
  try {
    return terminal(s);
  } catch (e) {
    throw fault(threwText('terminal predicate', e, s), at);
  }
}

/**
 * Some effect or guard mutated the state it was given (its encoding changed under it): runs every instance's
 * guard and step (`step`: the engine's effect and successor checks) on a fresh frozen copy (`frozen`), so the
 * first that writes to it throws the engine's fault naming the action and field; else an unblamed fault.
 */
export function blameMutation<S>(
  instances: readonly ActionInstance<S>[],
  frozen: () => S,
  step: (inst: ActionInstance<S>, s: S) => unknown,
  fault: FaultOf,
  at: number,
): never {
  for (const inst of instances) {
    const s = frozen();
    if (!guardHolds(inst, s, fault, at)) continue;
    step(inst, s);
  }
  throw fault(unblamedMutationText(frozen()), at);
}

/** An effect returned something that is not a state (undefined, a function, NaN, a cycle ...). */
export function badSuccessorText(inst: ActionInstance<any>, e: DataError, t: unknown, s: unknown): string {
  const what = e.path === '' && t === undefined ? 'returned undefined (an effect must return the next state)' : `produced a bad field ${e.message}`;
  return `effect of action ${formatLabel(inst.label)} ${what}\n  from state: ${show(s as Data, 600)}`;
}

export function unblamedMutationText(s: unknown): string {
  return `an effect or guard mutated its input state (could not tell which)\n  on state: ${show(s as Data, 600)}`;
}

/** A worker's checks: the system's invariants, step properties and goals among the `properties` named (null: all). */
export function checksOf<S>(system: System<S>, properties: readonly string[] | null) {
  const wanted = ([name]: [string, unknown]) => properties === null || properties.includes(name);
  const spec = system.spec;
  return {
    invariants: Object.entries(spec.invariants ?? {}).filter(wanted) as [string, (s: S) => boolean][],
    actionProps: Object.entries(spec.actionProperties ?? {}).filter(wanted) as [string, (before: S, step: StepLabel, after: S) => boolean][],
    goals: Object.entries(spec.reachable ?? {}).filter(wanted) as [string, (s: S) => boolean][],
  };
}

/** The property names a check covers (null: all), refusing a name the system does not have. */
export function checkedProperties(system: System<any>, names: readonly string[] | undefined): readonly string[] | null {
  if (names === undefined) return null;
  const spec = system.spec;
  const known = [
    ...Object.keys(spec.invariants ?? {}),
    ...Object.keys(spec.actionProperties ?? {}),
    ...Object.keys(spec.reachable ?? {}),
    ...Object.keys(spec.liveness ?? {}),
    'deadlock',
  ];
  for (const n of names) {
    if (!known.includes(n)) throw new ModelError(`system '${system.name}' has no property '${n}' (properties: ${known.join(', ')})`);
  }
  return [...names];
}
