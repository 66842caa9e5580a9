/**
 * Systems over a declared layout (model/layout.ts): guards and predicates read a view, effects write a draft
 * of the next state in place. `definePackedSystem` returns an ordinary System over the plain states, so every
 * engine (liveness, simulation, validation, traces, reports) runs it unchanged, and attaches the packed form,
 * which the explorer's fast path (model/packed-explorer.ts) uses for safety checks: no objects per state, a
 * generated expansion loop, states as a few words.
 *
 *   const pact = packedActionsOf<typeof layout.fields>();
 *   definePackedSystem({
 *     name: 'two-phase', layout, init: { rm: [...], tm: 'init', ... },
 *     actions: [
 *       pact('RMPrepare', { params: { rm: [0, 1] }, guard: (s, { rm }) => s.rm.at(rm) === 'working',
 *         effect: (d, { rm }) => { d.rm.set(rm, 'prepared'); } }),
 *     ],
 *     invariants: { consistent: (s) => !(s.rm.includes('committed') && s.rm.includes('aborted')) },
 *   });
 */
import type { FairnessKind, Liveness } from './liveness.ts';
import { type Draft, type Fields, type Layout, type Plain, type Reader } from './layout.ts';
import { type Action, type ActionSpec, type ParamDomains, type Params, type System, type SystemSpec, ModelError, defineSystem } from './system.ts';

export interface PackedActionSpec<L extends Fields, P extends Params> {
  readonly params?: ParamDomains<P>;
  readonly actor?: string | ((p: P) => string);
  /** Enabled when true; an absent guard is always enabled. Reads the current state; must not throw. */
  readonly guard?: (s: Reader<L>, p: P) => boolean;
  /** Writes the next state into `d`, which starts as a copy of the current one. Its return value is ignored. */
  readonly effect: (d: Draft<L>, p: P) => void;
  readonly describe?: (p: P, s: Reader<L>) => string;
  readonly fairness?: FairnessKind;
}

export interface PackedAction<L extends Fields> {
  readonly name: string;
  readonly spec: PackedActionSpec<L, any>;
}

/** Typed action constructor for a layout: `const pact = packedActionsOf<typeof layout.fields>()`. */
export function packedActionsOf<L extends Fields>() {
  return <P extends Params = {}>(name: string, spec: PackedActionSpec<L, P>): PackedAction<L> => ({ name, spec });
}

export interface PackedSystemSpec<L extends Fields> {
  readonly name: string;
  readonly layout: Layout<L>;
  readonly init?: Plain<L>;
  readonly inits?: readonly Plain<L>[];
  readonly actions: readonly PackedAction<L>[];
  readonly invariants?: { readonly [name: string]: (s: Reader<L>) => boolean };
  readonly reachable?: { readonly [name: string]: (s: Reader<L>) => boolean };
  readonly terminal?: (s: Reader<L>) => boolean;
  readonly explainStuck?: (s: Reader<L>) => readonly string[];
  readonly liveness?: { readonly [name: string]: Liveness<Reader<L>> };
  readonly fairness?: SystemSpec<Plain<L>>['fairness'];
}

/** What the fast path needs: the layout, and per action instance (in the system's instance order) its functions. */
export interface PackedModel {
  readonly layout: Layout<any>;
  readonly guards: readonly (((s: any, p: Params) => boolean) | undefined)[];
  readonly effects: readonly ((d: any, p: Params) => void)[];
  readonly params: readonly Params[];
  readonly invariants: readonly [string, (s: any) => boolean][];
  readonly reachable: readonly [string, (s: any) => boolean][];
  readonly terminal: ((s: any) => boolean) | undefined;
}

/** A system built by definePackedSystem: an ordinary System plus its packed form. */
export type PackedSystem<L extends Fields> = System<Plain<L>> & { readonly packed: PackedModel };

export function packedOf<S>(system: System<S>): PackedModel | undefined {
  return (system as { packed?: PackedModel }).packed;
}

export function definePackedSystem<L extends Fields>(spec: PackedSystemSpec<L>): PackedSystem<L> {
  const where = `system '${spec?.name ?? '?'}'`;
  const layout = spec?.layout;
  if (!layout || typeof layout.reader !== 'function') throw new ModelError(`${where}: \`layout\` must come from defineLayout({...})`);
  const inits = spec.inits ?? (spec.init !== undefined ? [spec.init] : undefined);
  if (!inits || (spec.init !== undefined && spec.inits !== undefined)) {
    throw new ModelError(`${where}: give exactly one of \`init\` (a state) or \`inits\` (a list of states)`);
  }
  // Initial states must fit the layout; unpacking gives each its canonical plain form (frozen).
  const scratch = new Int32Array(layout.words);
  const plainInits = inits.map((s, i) => {
    layout.pack(s, scratch, 0, `${where}: initial state ${i}`);
    return layout.unpack(scratch);
  });

  // The generic engines see plain states; a view is packed from the last plain state asked about.
  const readWords = new Int32Array(layout.words);
  const reader = layout.reader(readWords);
  let lastRead: Plain<L> | undefined;
  const view = (s: Plain<L>): Reader<L> => {
    if (s !== lastRead) {
      layout.pack(s, readWords, 0, 'state');
      lastRead = s;
    }
    return reader;
  };
  const draftWords = new Int32Array(layout.words);
  const draft = layout.draft(draftWords);
  const step = (s: Plain<L>, p: Params, effect: (d: Draft<L>, p: Params) => void): Plain<L> => {
    layout.pack(s, draftWords, 0, 'state');
    effect(draft, p);
    return layout.unpack(draftWords);
  };
  const onView = <F extends (s: Reader<L>) => any>(f: F | undefined) => (f === undefined ? undefined : (s: Plain<L>) => f(view(s)));
  const mapValues = <F extends (s: Reader<L>) => any>(o: { readonly [k: string]: F } | undefined) =>
    o === undefined ? undefined : Object.fromEntries(Object.entries(o).map(([k, f]) => [k, typeof f === 'function' ? onView(f) : f]));

  if (!Array.isArray(spec.actions)) throw new ModelError(`${where}: \`actions\` must be a list of pact(...) entries`);
  const actions: Action<Plain<L>>[] = spec.actions.map((a, i) => {
    if (!a || typeof a.name !== 'string' || !a.spec || typeof a.spec.effect !== 'function') {
      throw new ModelError(`${where}: actions[${i}] is not an action (use pact('name', { effect, ... }))`);
    }
    const { guard, effect, describe, ...rest } = a.spec;
    const generic: ActionSpec<Plain<L>, Params> = {
      ...rest,
      ...(guard ? { guard: (s: Plain<L>, p: Params) => guard(view(s), p) } : {}),
      effect: (s: Plain<L>, p: Params) => step(s, p, effect),
      ...(describe ? { describe: (p: Params, s: Plain<L>) => describe(p, view(s)) } : {}),
    };
    return { name: a.name, spec: generic };
  });
  const liveness =
    spec.liveness === undefined
      ? undefined
      : Object.fromEntries(
          Object.entries(spec.liveness).map(([k, l]) => [
            k,
            l && typeof l === 'object' ? ({ ...l, p: onView(l.p), ...('q' in l ? { q: onView(l.q) } : {}) } as Liveness<Plain<L>>) : l,
          ]),
        );
  const system = defineSystem<Plain<L>>({
    name: spec.name,
    inits: plainInits,
    actions,
    ...(spec.invariants ? { invariants: mapValues(spec.invariants) } : {}),
    ...(spec.reachable ? { reachable: mapValues(spec.reachable) } : {}),
    ...(spec.terminal ? { terminal: onView(spec.terminal) } : {}),
    ...(spec.explainStuck ? { explainStuck: onView(spec.explainStuck) } : {}),
    ...(liveness ? { liveness } : {}),
    ...(spec.fairness !== undefined ? { fairness: spec.fairness } : {}),
  } as SystemSpec<Plain<L>>);

  const byName = new Map(spec.actions.map((a) => [a.name, a.spec]));
  const packed: PackedModel = {
    layout,
    guards: system.instances.map((inst) => byName.get(inst.action.name)!.guard),
    effects: system.instances.map((inst) => byName.get(inst.action.name)!.effect),
    params: system.instances.map((inst) => inst.params),
    invariants: Object.entries(spec.invariants ?? {}),
    reachable: Object.entries(spec.reachable ?? {}),
    terminal: spec.terminal,
  };
  return Object.assign(system, { packed });
}
