/**
 * Symbolic transition systems: typed state variables and frozen parameters, an initial condition, labelled
 * actions (the disjuncts of the transition relation), safety properties and the author's strengthening
 * invariants, all written as Z3 terms over one copy of the state.
 *
 *   const sys = system(ctx, 'counter', { vars: { x: int() }, params: { n: int({ min: 1 }) } })
 *     .init((s) => s.x.eq(0))
 *     .action('inc', { guard: (s, p) => s.x.lt(p.n), update: (s) => ({ x: s.x.add(1) }) })
 *     .property('below', (s, p) => s.x.le(p.n));
 *
 * An action's next state is `update` for the variables it names, unchanged for the rest, except those in
 * `havoc` (any value of their sort, constrained by `relation`). `choose` declares per-step nondeterministic
 * values (an action's parameters: they appear in the trace step's params).
 */
import type { Ctx, Z3Bool } from './z3.ts';
import type { State, Vars } from './sorts.ts';

export interface ActionDef<V extends Vars, P extends Vars, C extends Vars> {
  readonly choose?: C;
  readonly guard?: (s: State<V>, p: State<P>, c: State<C>) => Z3Bool;
  readonly update?: (s: State<V>, p: State<P>, c: State<C>) => Partial<State<V>>;
  readonly havoc?: readonly (keyof V & string)[];
  readonly relation?: (s: State<V>, n: State<V>, p: State<P>, c: State<C>) => Z3Bool;
  /** Who performs it, for the trace (e.g. 'rank 1', 'stream C'). */
  readonly actor?: string;
  /** The action's sentence in a trace. */
  readonly text?: string;
}

export interface NamedAction<V extends Vars, P extends Vars> {
  readonly name: string;
  readonly def: ActionDef<V, P, Vars>;
}

export type StatePredicate<V extends Vars, P extends Vars> = (s: State<V>, p: State<P>) => Z3Bool;

export class SymbolicSystem<V extends Vars, P extends Vars> {
  readonly actions: NamedAction<V, P>[] = [];
  readonly properties: { name: string; fn: StatePredicate<V, P> }[] = [];
  readonly invariants: { name: string; fn: StatePredicate<V, P> }[] = [];
  initial: StatePredicate<V, P> | undefined;
  assumption: ((p: State<P>) => Z3Bool) | undefined;

  constructor(
    readonly ctx: Ctx,
    readonly name: string,
    readonly vars: V,
    readonly params: P,
  ) {}

  /** Constraint on the parameters (they keep their value in every state). */
  assume(fn: (p: State<P>) => Z3Bool): this {
    this.assumption = fn;
    return this;
  }

  init(fn: StatePredicate<V, P>): this {
    this.initial = fn;
    return this;
  }

  action<C extends Vars = {}>(name: string, def: ActionDef<V, P, C>): this {
    if (this.actions.some((a) => a.name === name)) throw new Error(`${this.name}: duplicate action '${name}'`);
    this.actions.push({ name, def: def as unknown as ActionDef<V, P, Vars> });
    return this;
  }

  /** A safety property: must hold in every reachable state. */
  property(name: string, fn: StatePredicate<V, P>): this {
    this.properties.push({ name, fn });
    return this;
  }

  /**
   * A strengthening invariant for k-induction. It is proved together with the properties (its base case is
   * checked too), so a wrong one can make a proof fail but never makes it unsound.
   */
  invariant(name: string, fn: StatePredicate<V, P>): this {
    this.invariants.push({ name, fn });
    return this;
  }
}

export function system<V extends Vars, P extends Vars = {}>(
  ctx: Ctx,
  name: string,
  decl: { vars: V; params?: P },
): SymbolicSystem<V, P> {
  return new SymbolicSystem(ctx, name, decl.vars, (decl.params ?? {}) as P);
}
