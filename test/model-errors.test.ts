import { describe, expect, it } from 'vitest';
import { ModelError, action, actionsOf, check, defineSystem } from '../model/index.ts';

type S = { readonly a: number; readonly items: readonly number[]; readonly nested: { readonly flag: boolean } };
const init: S = { a: 0, items: [1, 2], nested: { flag: false } };
const act = actionsOf<S>();

function errorOf(effect: (s: S) => unknown, extra: object = {}) {
  const sys = defineSystem<S>({
    name: 'bad',
    init: { ...init, items: [...init.items], nested: { ...init.nested } },
    actions: [act('step', { params: { rank: [0, 1] }, guard: (s) => s.a < 2, effect: effect as (s: S) => S })],
    terminal: () => true,
    ...extra,
  });
  const r = check(sys);
  expect(r.verdict).toBe('error');
  return r.message!;
}

describe('the checker refuses malformed models, naming the action and field', () => {
  it('an effect that mutates its input', () => {
    const msg = errorOf((s) => {
      (s as { a: number }).a = 5;
      return s;
    });
    expect(msg).toMatch(/step\(rank=0\) mutated its input state/);
    expect(msg).toMatch(/field 'a'/);
  });

  it('an effect that mutates a nested array', () => {
    const msg = errorOf((s) => {
      (s.items as number[]).push(3);
      return { ...s, a: s.a + 1 };
    });
    expect(msg).toMatch(/mutated its input state/);
  });

  it('a state holding a function', () => {
    expect(errorOf((s) => ({ ...s, a: s.a + 1, nested: { flag: () => 1 } }))).toMatch(/step\(rank=0\).*nested\.flag: a function/);
  });

  it('undefined, NaN and Infinity', () => {
    expect(errorOf((s) => ({ ...s, a: undefined }))).toMatch(/field a: undefined is not allowed/);
    expect(errorOf((s) => ({ ...s, a: Number.NaN }))).toMatch(/field a: NaN is not allowed/);
    expect(errorOf((s) => ({ ...s, items: [1, Infinity] }))).toMatch(/items\[1\]: Infinity/);
  });

  it('an effect that returns nothing', () => {
    expect(errorOf(() => undefined)).toMatch(/returned undefined/);
  });

  it('a cycle', () => {
    const msg = errorOf((s) => {
      const o: Record<string, unknown> = { flag: true };
      o.self = o;
      return { ...s, a: 1, nested: o };
    });
    expect(msg).toMatch(/nested\.self: the state contains a cycle/);
  });

  it('class instances (Map, Set, Date)', () => {
    expect(errorOf((s) => ({ ...s, a: 1, items: new Set([1]) }))).toMatch(/items: a Set is not plain data/);
  });

  it('a guard that throws, reporting the state', () => {
    const sys = defineSystem<S>({
      name: 'throws',
      init,
      actions: [act('boom', { guard: (s) => (s.items as number[])[5].toFixed() === '', effect: (s) => s })],
    });
    const r = check(sys);
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/guard of action boom threw: TypeError/);
    expect(r.message).toMatch(/on state: \{a: 0, items: \[1, 2\]/);
  });

  it('an invariant that throws, reporting the state', () => {
    const sys = defineSystem<S>({
      name: 'throws',
      init,
      actions: [act('inc', { guard: (s) => s.a < 1, effect: (s) => ({ ...s, a: s.a + 1 }) })],
      invariants: {
        fragile: (s) => {
          if (s.a === 1) throw new Error('no ones');
          return true;
        },
      },
      terminal: () => true,
    });
    const r = check(sys);
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/invariant 'fragile' threw: no ones/);
    expect(r.message).toMatch(/on state: \{a: 1/);
  });

  it('duplicate names across actions and properties', () => {
    expect(() =>
      defineSystem<S>({
        name: 'dup',
        init,
        actions: [act('x', { effect: (s) => s }), act('x', { effect: (s) => s })],
      }),
    ).toThrow(/duplicate name 'x' \(a action and a action\)/);
    expect(() =>
      defineSystem<S>({ name: 'dup', init, actions: [act('x', { effect: (s) => s })], invariants: { x: () => true } }),
    ).toThrow(ModelError);
  });

  it('bad initial states, parameters and shapes', () => {
    expect(() => defineSystem<S>({ name: 'i', init: { ...init, a: undefined as unknown as number }, actions: [act('x', { effect: (s) => s })] })).toThrow(
      /initial state 0, field a: undefined/,
    );
    expect(() => defineSystem<S>({ name: 'i', init, inits: [init], actions: [act('x', { effect: (s) => s })] })).toThrow(/exactly one of/);
    expect(() =>
      defineSystem<S>({ name: 'i', init, actions: [action<S, { r: number }>('x', { params: { r: [0, Number.NaN] }, effect: (s) => s })] }),
    ).toThrow(/parameter 'r' value 1: NaN/);
    expect(() => defineSystem<S>({ name: 'i', init, actions: [{ name: 'x' } as never] })).toThrow(/actions\[0\] is not an action/);
  });
});
