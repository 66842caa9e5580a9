/**
 * Bounded model checking and k-induction over a SymbolicSystem, and plain validity queries.
 *
 * Every query runs under a per-query timeout; a timeout or a Z3 `unknown` gives result 'unknown', never
 * 'proved'. A violation comes back as a Trace in the explorer's format (model/trace.ts): the initial state
 * (parameters and variables), then one step per transition, named by the action (transition disjunct) that
 * fired, its `choose` values as params.
 */
import type { Data } from '../../model/data.ts';
import { type Trace, buildTrace } from '../../model/trace.ts';
import { type State, type VarSort, type Vars, declare, decode, domain } from './sorts.ts';
import type { SymbolicSystem } from './system.ts';
import { answered, type Ctx, type Z3Bool, type Z3Expr, type Z3Int } from './z3.ts';

export const DEFAULT_TIMEOUT_MS = 10_000;

export type Verdict = 'proved' | 'violated' | 'unknown';

export interface CheckOptions {
  /** Per Z3 query, in milliseconds (default 10 s). */
  readonly timeoutMs?: number;
  /** An SMT-LIB logic for the solver ('QF_LIA', 'QF_AUFLIA', ...): a specialised solver is often much faster. */
  readonly logic?: string;
}

export interface BmcOptions extends CheckOptions {
  /** Largest number of transitions explored. */
  readonly depth: number;
  /**
   * Extra constraints over the path tried first when a violation exists at some depth, to pick which
   * counterexample is shown (e.g. the reviewer's numbers). They never decide the verdict: when the hinted
   * query is unsatisfiable the unhinted model is shown.
   */
  readonly hint?: (path: PathView) => Z3Bool;
}

export interface KInductionOptions extends CheckOptions {
  /** Largest k tried (default 4). */
  readonly maxK?: number;
  /** Use the author's strengthening invariants (default true). */
  readonly useInvariants?: boolean;
  /** Constrain the induction path to pairwise distinct states (needed for completeness on finite systems). */
  readonly simplePath?: boolean;
}

export interface Violation {
  readonly result: 'violated';
  /** The properties false in the last state of the trace. */
  readonly properties: readonly string[];
  readonly depth: number;
  readonly trace: Trace;
}
export interface Unknown {
  readonly result: 'unknown';
  readonly reason: string;
  /** For k-induction that did not close: a counterexample to induction (not a reachable trace). */
  readonly cti?: Trace;
}
export type BmcResult = Violation | Unknown | { readonly result: 'bounded'; readonly depth: number };
export type KInductionResult = Violation | Unknown | { readonly result: 'proved'; readonly k: number };

/** Read access to the symbolic copies of a path, for hints and custom queries. */
export interface PathView {
  readonly params: State<Vars>;
  state(i: number): State<Vars>;
  choice(i: number, action: string): State<Vars>;
  /** The transition index selector of step i (0-based, from state i to i+1). */
  actionOf(i: number): Z3Int;
}

let queryCounter = 0;

/** Per-query Z3 copies of a system's variables: state i, the parameters, the choices of step i. */
export class Unroller<V extends Vars, P extends Vars> implements PathView {
  private readonly prefix: string;
  private readonly states: State<V>[] = [];
  private readonly choices = new Map<string, State<Vars>>();
  readonly params: State<P>;
  readonly ctx: Ctx;

  constructor(readonly sys: SymbolicSystem<V, P>) {
    this.ctx = sys.ctx;
    this.prefix = `${sys.name}#${++queryCounter}.`;
    this.params = this.copy(sys.params, (n) => `${this.prefix}${n}`) as State<P>;
  }

  private copy(vars: Vars, name: (v: string) => string): State<Vars> {
    const out: Record<string, Z3Expr> = {};
    for (const [v, s] of Object.entries(vars)) out[v] = declare(this.ctx, name(v), s);
    return out as unknown as State<Vars>;
  }

  state(i: number): State<V> {
    while (this.states.length <= i) {
      const k = this.states.length;
      this.states.push(this.copy(this.sys.vars, (n) => `${this.prefix}${n}@${k}`) as State<V>);
    }
    return this.states[i];
  }

  choice(i: number, action: string): State<Vars> {
    const key = `${action}@${i}`;
    let c = this.choices.get(key);
    if (c === undefined) {
      const a = this.sys.actions.find((x) => x.name === action);
      c = this.copy(a?.def.choose ?? {}, (n) => `${this.prefix}${action}.${n}@${i}`);
      this.choices.set(key, c);
    }
    return c;
  }

  actionOf(i: number): Z3Int {
    return this.ctx.Int.const(`${this.prefix}@act${i}`);
  }

  /** Parameter assumption, with every parameter within its sort's domain. */
  assumption(): Z3Bool {
    const p = this.params as Record<string, Z3Expr>;
    const domains = Object.entries(this.sys.params).map(([v, sort]) => domain(this.ctx, p[v], sort));
    return this.ctx.And(...domains, ...(this.sys.assumption ? [this.sys.assumption(this.params)] : []));
  }

  /** Every variable of state i within its sort's domain (enum range, int bounds). */
  typed(i: number): Z3Bool {
    const s = this.state(i) as Record<string, Z3Expr>;
    return this.ctx.And(...Object.entries(this.sys.vars).map(([v, sort]) => domain(this.ctx, s[v], sort)));
  }

  initial(): Z3Bool {
    if (!this.sys.initial) throw new Error(`${this.sys.name}: no init`);
    return this.ctx.And(this.typed(0), this.sys.initial(this.state(0), this.params));
  }

  /** The transition from state i to state i+1: one of the actions, the selector naming which. */
  transition(i: number): Z3Bool {
    const { ctx, sys } = this;
    const s = this.state(i) as Record<string, Z3Expr>;
    const n = this.state(i + 1) as Record<string, Z3Expr>;
    const disjuncts = sys.actions.map((a, j) => {
      const c = this.choice(i, a.name);
      const d = a.def;
      const parts: Z3Bool[] = [this.actionOf(i).eq(j)];
      for (const [cv, cs] of Object.entries(d.choose ?? {})) parts.push(domain(ctx, (c as Record<string, Z3Expr>)[cv], cs));
      if (d.guard) parts.push(d.guard(s as State<V>, this.params, c));
      const upd = (d.update ? d.update(s as State<V>, this.params, c) : {}) as Record<string, Z3Expr | undefined>;
      const havoc = new Set<string>(d.havoc ?? []);
      for (const [v, sort] of Object.entries(sys.vars)) {
        if (upd[v] !== undefined) {
          if (havoc.has(v)) throw new Error(`${sys.name}.${a.name}: '${v}' is both updated and havocked`);
          parts.push(ctx.Eq(n[v], upd[v] as Z3Expr));
        } else if (havoc.has(v)) parts.push(domain(ctx, n[v], sort));
        else parts.push(ctx.Eq(n[v], s[v]));
      }
      for (const v of Object.keys(upd)) if (!(v in sys.vars)) throw new Error(`${sys.name}.${a.name}: unknown variable '${v}'`);
      if (d.relation) parts.push(d.relation(s as State<V>, n as State<V>, this.params, c));
      return ctx.And(...parts);
    });
    return ctx.Or(...disjuncts);
  }

  /** The named conditions checked in state i: properties, then (optionally) invariants, then types. */
  checks(i: number, withInvariants: boolean): { name: string; kind: 'property' | 'invariant' | 'type'; term: Z3Bool }[] {
    const s = this.state(i);
    const out: { name: string; kind: 'property' | 'invariant' | 'type'; term: Z3Bool }[] = [];
    for (const p of this.sys.properties) out.push({ name: p.name, kind: 'property', term: p.fn(s, this.params) });
    if (withInvariants) for (const p of this.sys.invariants) out.push({ name: p.name, kind: 'invariant', term: p.fn(s, this.params) });
    out.push({ name: 'types', kind: 'type', term: this.typed(i) });
    return out;
  }

  /** Decodes the path 0..depth of a model into a trace. */
  trace(model: any, depth: number): Trace {
    const params = this.decodeState(model, this.params as Record<string, Z3Expr>, this.sys.params, {});
    const stateAt = (i: number): Data =>
      ({ ...params, ...this.decodeState(model, this.state(i) as Record<string, Z3Expr>, this.sys.vars, params) }) as Data;
    const steps = [];
    for (let i = 0; i < depth; i++) {
      const j = Number((model.eval(this.actionOf(i), true) as { value(): bigint }).value());
      const a = this.sys.actions[j];
      const label = a
        ? {
            action: a.name,
            params: this.decodeState(model, this.choice(i, a.name) as Record<string, Z3Expr>, a.def.choose ?? {}, params),
            ...(a.def.actor !== undefined ? { actor: a.def.actor } : {}),
          }
        : { action: 'step', params: {} };
      steps.push({ label, ...(a?.def.text !== undefined ? { text: a.def.text } : {}), state: stateAt(i + 1) });
    }
    return buildTrace(stateAt(0), steps);
  }

  private decodeState(model: any, terms: Record<string, Z3Expr>, vars: Vars, scope: Record<string, Data>): Record<string, Data> {
    const out: Record<string, Data> = {};
    const count = (name: string): number => {
      const own = name in vars ? decodeNumber(this.ctx, model, terms[name], vars[name]) : undefined;
      const v = own ?? scope[name];
      return typeof v === 'number' ? v : 0;
    };
    for (const [v, sort] of Object.entries(vars)) out[v] = decode(this.ctx, model, terms[v], sort, count);
    return out;
  }
}

function decodeNumber(ctx: Ctx, model: any, e: Z3Expr, s: VarSort): number | undefined {
  const d = decode(ctx, model, e, s, () => 0);
  return typeof d === 'number' ? d : undefined;
}

function newSolver(ctx: Ctx, timeoutMs: number, logic?: string) {
  const s = logic ? new ctx.Solver(logic) : new ctx.Solver();
  s.set('timeout', Math.max(1, Math.round(timeoutMs)));
  return s;
}

function unknownReason(solver: { reasonUnknown(): string }, timeoutMs: number): string {
  let r = '';
  try {
    r = solver.reasonUnknown();
  } catch {
    r = '';
  }
  return /timeout|canceled|cancelled/i.test(r) || r === '' ? `Z3 gave up after the ${timeoutMs / 1000} s query timeout` : `Z3: ${r}`;
}

/** Which of the named checks are false in the model (at the last state). */
function falseChecks(ctx: Ctx, model: any, checks: { name: string; kind: string; term: Z3Bool }[]) {
  return checks.filter((c) => ctx.isFalse(model.eval(c.term, true)));
}

/**
 * Bounded model checking: the shortest path from an initial state to a state violating a property (or a
 * sort's domain), up to `depth` transitions. 'bounded' means none exists up to that depth (not a proof).
 */
export async function bmc<V extends Vars, P extends Vars>(sys: SymbolicSystem<V, P>, opts: BmcOptions): Promise<BmcResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const u = new Unroller(sys);
  const { ctx } = sys;
  const solver = newSolver(ctx, timeoutMs, opts.logic);
  solver.add(u.assumption(), u.initial());
  for (let d = 0; d <= opts.depth; d++) {
    const checks = u.checks(d, false);
    const all = ctx.And(...checks.map((c) => c.term));
    solver.push();
    solver.add(ctx.Not(all));
    const r = await answered(solver.check(), timeoutMs);
    if (r === 'unknown') return { result: 'unknown', reason: `depth ${d}: ${unknownReason(solver, timeoutMs)}` };
    if (r === 'sat') {
      let model = solver.model();
      if (opts.hint) {
        const hinted = await answered(solver.check(opts.hint(u as unknown as PathView)), timeoutMs);
        if (hinted === 'sat') model = solver.model();
        else if ((await answered(solver.check(), timeoutMs)) === 'sat') model = solver.model();
      }
      const bad = falseChecks(ctx, model, checks).map((c) => c.name);
      const trace = u.trace(model, d);
      solver.pop();
      return { result: 'violated', properties: bad, depth: d, trace };
    }
    solver.pop();
    solver.add(all);
    if (d < opts.depth) solver.add(u.transition(d));
  }
  return { result: 'bounded', depth: opts.depth };
}

/**
 * k-induction for k = 1..maxK. Base: no violation of the properties (and invariants) within k-1 transitions
 * of an initial state. Step: any k consecutive states satisfying them, linked by k transitions, lead to a
 * state satisfying them. The author's invariants are proved together with the properties (never assumed).
 */
export async function kInduction<V extends Vars, P extends Vars>(
  sys: SymbolicSystem<V, P>,
  opts: KInductionOptions = {},
): Promise<KInductionResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxK = opts.maxK ?? 4;
  const withInv = opts.useInvariants ?? true;
  const { ctx } = sys;
  const base = new Unroller(sys);
  const step = new Unroller(sys);
  const bs = newSolver(ctx, timeoutMs, opts.logic);
  const ss = newSolver(ctx, timeoutMs, opts.logic);
  bs.add(base.assumption(), base.initial());
  ss.add(step.assumption());
  let cti: Trace | undefined;
  for (let k = 1; k <= maxK; k++) {
    // Base case at depth k-1.
    const d = k - 1;
    const bchecks = base.checks(d, withInv);
    const ball = ctx.And(...bchecks.map((c) => c.term));
    bs.push();
    bs.add(ctx.Not(ball));
    const br = await answered(bs.check(), timeoutMs);
    if (br === 'unknown') return { result: 'unknown', reason: `base case, depth ${d}: ${unknownReason(bs, timeoutMs)}` };
    if (br === 'sat') {
      const model = bs.model();
      const bad = falseChecks(ctx, model, bchecks);
      const trace = base.trace(model, d);
      bs.pop();
      const props = bad.filter((c) => c.kind !== 'invariant');
      if (props.length > 0) return { result: 'violated', properties: props.map((c) => c.name), depth: d, trace };
      return {
        result: 'unknown',
        reason: `strengthening invariant ${bad.map((c) => `'${c.name}'`).join(', ')} fails in a reachable state (depth ${d}): the invariant is wrong`,
        cti: trace,
      };
    }
    bs.pop();
    bs.add(ball, base.transition(d));

    // Step case: states 0..k-1 satisfy everything, k transitions, state k violates something.
    ss.add(ctx.And(...step.checks(k - 1, withInv).map((c) => c.term)), step.transition(k - 1));
    if (opts.simplePath) for (let i = 0; i < k; i++) ss.add(distinct(ctx, sys.vars, step.state(i), step.state(k)));
    const schecks = step.checks(k, withInv);
    ss.push();
    ss.add(ctx.Not(ctx.And(...schecks.map((c) => c.term))));
    const sr = await answered(ss.check(), timeoutMs);
    if (sr === 'unknown') {
      ss.pop();
      return { result: 'unknown', reason: `induction step, k = ${k}: ${unknownReason(ss, timeoutMs)}` };
    }
    if (sr === 'unsat') {
      ss.pop();
      return { result: 'proved', k };
    }
    cti = step.trace(ss.model(), k);
    const bad = falseChecks(ctx, ss.model(), schecks).map((c) => c.name);
    ss.pop();
    if (k === maxK)
      return {
        result: 'unknown',
        reason: `not ${maxK}-inductive: a path of ${k} transitions through states satisfying every property${withInv && sys.invariants.length > 0 ? ' and invariant' : ''} reaches one violating ${bad.join(', ')} (a counterexample to induction, maybe unreachable: add a strengthening invariant)`,
        cti,
      };
  }
  return { result: 'unknown', reason: 'maxK < 1', ...(cti ? { cti } : {}) };
}

function distinct(ctx: Ctx, vars: Vars, a: State<Vars>, b: State<Vars>): Z3Bool {
  const ra = a as Record<string, Z3Expr>;
  const rb = b as Record<string, Z3Expr>;
  return ctx.Or(...Object.keys(vars).map((v) => ctx.Not(ctx.Eq(ra[v], rb[v]))));
}

export interface ValidityResult {
  readonly result: Verdict;
  /** When violated: a model of the negated claim. */
  readonly model?: any;
  readonly reason?: string;
}

/**
 * Whether `claim` holds for every value of its free constants, under `assumptions`:
 * 'proved' when `assumptions and not claim` is unsatisfiable, 'violated' (with a model) when satisfiable.
 */
export async function valid(ctx: Ctx, claim: Z3Bool, assumptions: readonly Z3Bool[] = [], opts: CheckOptions = {}): Promise<ValidityResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const s = newSolver(ctx, timeoutMs, opts.logic);
  s.add(...assumptions, ctx.Not(claim));
  const r = await answered(s.check(), timeoutMs);
  if (r === 'unsat') return { result: 'proved' };
  if (r === 'sat') return { result: 'violated', model: s.model() };
  return { result: 'unknown', reason: unknownReason(s, timeoutMs) };
}

/** A model of `constraints` (a witness), 'violated' when there is none, 'unknown' on timeout. */
export async function satisfiable(ctx: Ctx, constraints: readonly Z3Bool[], opts: CheckOptions = {}): Promise<ValidityResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const s = newSolver(ctx, timeoutMs, opts.logic);
  s.add(...constraints);
  const r = await answered(s.check(), timeoutMs);
  if (r === 'sat') return { result: 'proved', model: s.model() };
  if (r === 'unsat') return { result: 'violated', reason: 'no witness exists' };
  return { result: 'unknown', reason: unknownReason(s, timeoutMs) };
}

/** Named terms of a model as plain data (for witness and counterexample traces of validity queries). */
export function decodeTerms(ctx: Ctx, model: any, terms: Record<string, [Z3Expr, VarSort]>): Record<string, Data> {
  const out: Record<string, Data> = {};
  for (const [k, [e, s]] of Object.entries(terms)) out[k] = decode(ctx, model, e, s, () => 0);
  return out;
}
