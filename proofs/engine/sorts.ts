/**
 * The sorts a symbolic state variable may have, how each becomes Z3 terms, the domain constraints it carries
 * (enum ranges, integer bounds), and how a model's value of it is decoded into plain trace data.
 */
import type { Data } from '../../model/data.ts';
import type { Ctx, Z3Array, Z3BitVec, Z3Bool, Z3Expr, Z3Int } from './z3.ts';

export interface IntSort {
  readonly kind: 'int';
  /** Inclusive bounds, checked as part of the state's type invariant (never silently assumed). */
  readonly min?: number;
  readonly max?: number;
}
export interface BoolSort {
  readonly kind: 'bool';
}
export interface BvSort {
  readonly kind: 'bv';
  readonly bits: number;
}
/** A finite set of named values, encoded as the integers 0..n-1 (`sort.idx[name]` is a value's code). */
export interface EnumSort<N extends string = string> {
  readonly kind: 'enum';
  readonly values: readonly N[];
  readonly idx: { readonly [K in N]: number };
}
/**
 * An array from integers (or bit-vectors of `indexBits`) to an element sort. `show` says which indices a
 * trace prints: a fixed count, or the name of an int variable/parameter of the same state holding the count.
 */
export interface ArraySort<E extends VarSort = VarSort> {
  readonly kind: 'array';
  readonly elem: E;
  readonly indexBits?: number;
  readonly show: number | string;
}
export type VarSort = IntSort | BoolSort | BvSort | EnumSort | ArraySort;
export type Vars = { readonly [name: string]: VarSort };

export type ExprOf<S extends VarSort> = S extends IntSort
  ? Z3Int
  : S extends BoolSort
    ? Z3Bool
    : S extends BvSort
      ? Z3BitVec
      : S extends EnumSort
        ? Z3Int
        : S extends ArraySort
          ? Z3Array
          : never;

/** One copy of every variable: the terms an author writes init, transitions and properties with. */
export type State<V extends Vars> = { readonly [K in keyof V]: ExprOf<V[K]> };

export const int = (range: { min?: number; max?: number } = {}): IntSort => ({ kind: 'int', ...range });
export const bool = (): BoolSort => ({ kind: 'bool' });
export const bv = (bits: number): BvSort => ({ kind: 'bv', bits });
export function enumSort<const N extends string>(...values: N[]): EnumSort<N> {
  const idx = Object.fromEntries(values.map((v, i) => [v, i])) as { [K in N]: number };
  return { kind: 'enum', values, idx };
}
export function array<E extends VarSort>(elem: E, opts: { show: number | string; indexBits?: number }): ArraySort<E> {
  return { kind: 'array', elem, show: opts.show, ...(opts.indexBits !== undefined ? { indexBits: opts.indexBits } : {}) };
}

/** The Z3 sort of a variable sort. */
export function z3Sort(ctx: Ctx, s: VarSort): any {
  switch (s.kind) {
    case 'int':
    case 'enum':
      return ctx.Int.sort();
    case 'bool':
      return ctx.Bool.sort();
    case 'bv':
      return ctx.BitVec.sort(s.bits);
    case 'array':
      return ctx.Array.sort(s.indexBits !== undefined ? ctx.BitVec.sort(s.indexBits) : ctx.Int.sort(), z3Sort(ctx, s.elem));
  }
}

/** A fresh constant of the sort (named; the same name and sort give the same constant). */
export function declare(ctx: Ctx, name: string, s: VarSort): Z3Expr {
  return ctx.Const(name, z3Sort(ctx, s)) as Z3Expr;
}

/** The domain constraint of a variable (true when it has none). Array elements: none (unbounded index). */
export function domain(ctx: Ctx, e: Z3Expr, s: VarSort): Z3Bool {
  if (s.kind === 'enum') return ctx.And((e as Z3Int).ge(0), (e as Z3Int).lt(s.values.length));
  if (s.kind === 'int') {
    const parts: Z3Bool[] = [];
    if (s.min !== undefined) parts.push((e as Z3Int).ge(s.min));
    if (s.max !== undefined) parts.push((e as Z3Int).le(s.max));
    return ctx.And(...parts);
  }
  return ctx.Bool.val(true);
}

/** Most indices an array shows in a trace, whatever its `show` count evaluates to. */
export const MAX_SHOWN = 64;

/** A JS number when it is a safe integer, else the decimal string. */
export function bigToData(v: bigint): Data {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

/**
 * Decodes the value of `e` (of sort `s`) in `model`. `count` resolves an array's `show` when it names a variable.
 */
export function decode(ctx: Ctx, model: any, e: Z3Expr, s: VarSort, count: (name: string) => number): Data {
  switch (s.kind) {
    case 'bool': {
      const v = model.eval(e, true);
      return ctx.isTrue(v);
    }
    case 'int':
    case 'bv': {
      const v = model.eval(e, true) as { value(): bigint };
      return bigToData(v.value());
    }
    case 'enum': {
      const v = Number((model.eval(e, true) as { value(): bigint }).value());
      return s.values[v] ?? `?${v}`;
    }
    case 'array': {
      const n = Math.max(0, Math.min(MAX_SHOWN, typeof s.show === 'number' ? s.show : count(s.show)));
      const out: Data[] = [];
      for (let i = 0; i < n; i++) {
        const idx = s.indexBits !== undefined ? ctx.BitVec.val(i, s.indexBits) : ctx.Int.val(i);
        out.push(decode(ctx, model, (e as Z3Array).select(idx as never) as Z3Expr, s.elem, count));
      }
      return out;
    }
  }
}
