/**
 * Partial-order reduction on GPU-kit models: the kit derives `reads`, `writes` and enabling conditions for
 * every action it generates, and the reduction runs together with symmetry. Every variant of every built-in
 * protocol, on its default configuration, gets the same verdict and property with and without the reduction,
 * with and without symmetry, never exploring more states with it where the search completes; the run-time
 * audit of declared writes (a model error on any undeclared change) runs on every one of those checks.
 */
import { describe, expect, it } from 'vitest';
import { check, diff } from '../model/index.ts';
import { declaredWrite, parsePath, planPor } from '../model/por.ts';
import type { Protocol } from '../model/registry.ts';
import { builtinProtocols } from '../spec/index.ts';
import { gpuSystem, launch, set, step, until } from '../model/gpu/index.ts';

function compare(p: Protocol) {
  let applied = 0;
  for (const v of p.variants) {
    const sys = v.build(v.config ?? p.configs.check);
    const where = `${p.name}:${v.name}`;
    if ('off' in planPor(sys)) continue;
    applied++;
    for (const symmetry of [true, false]) {
      const on = check(sys, { liveness: false, symmetry });
      const off = check(sys, { liveness: false, symmetry, por: false });
      const w = `${where} (symmetry ${symmetry ? 'on' : 'off'})`;
      // An audit failure (an undeclared write) would be an 'error' verdict here.
      expect(on.verdict, `${w}: ${on.message ?? ''}`).toBe(off.verdict);
      expect(on.property, w).toBe(off.property);
      // A completed search explores no more states with the reduction; a violation may be met a little later
      // in another order (it stops there), so the count at a violation is not compared.
      if (on.verdict === 'holds') expect(on.stats.states, w).toBeLessThanOrEqual(off.stats.states);
      if (on.trace) expect(on.trace.steps.length, `${w}: a counterexample`).toBeGreaterThan(0);
    }
  }
  return applied;
}

describe('partial-order reduction on the GPU protocols leaves every verdict unchanged', () => {
  for (const entry of builtinProtocols) {
    it(`built-in ${entry.name}`, async () => {
      const p = await entry.load();
      const applied = compare(p);
      // The protocols that declare what their properties read get the reduction on every variant.
      if (['dp-padding', 'eplb-async-rebalance', 'overlap-linear'].includes(p.name)) expect(applied).toBe(p.variants.length);
    }, 120_000);
  }
});

describe('the kit declares what its steps write', () => {
  it('every declared write covers what a step changes, on every state of every variant (audited in full here)', async () => {
    for (const entry of builtinProtocols) {
      const p = await entry.load();
      for (const v of p.variants) {
        const sys = v.build(v.config ?? p.configs.check);
        const setup = planPor(sys);
        if ('off' in setup) continue;
        // A breadth-first walk over (up to) the first 3,000 states, every enabled step audited.
        const seen = new Set<string>();
        let frontier = [...sys.inits];
        let audited = 0;
        while (frontier.length > 0 && seen.size < 3000) {
          const next: typeof frontier = [];
          for (const s of frontier) {
            for (const inst of sys.instances) {
              const g = inst.action.spec.guard;
              if (g && !g(s, inst.params)) continue;
              const t = inst.action.spec.effect(s, inst.params);
              for (const change of diff(s as never, t as never)) {
                expect(declaredWrite(change.path, setup.plan.writes[inst.id]), `${p.name}:${v.name}: ${inst.action.name} changes ${change.path}`).toBe(true);
              }
              audited++;
              const k = JSON.stringify(t);
              if (!seen.has(k)) {
                seen.add(k);
                next.push(t);
              }
            }
          }
          frontier = next;
        }
        expect(audited).toBeGreaterThan(0);
      }
    }
  }, 120_000);

  it('an undeclared write of a custom step is a model error under the reduction', () => {
    const sys = gpuSystem({
      name: 'lying-step',
      ranks: 2,
      streams: ['C'],
      buffers: { x: { init: 'x' } },
      vars: { a: 0, b: 0 },
      threads: () => ({
        main: [
          launch('C', 'k', { reads: ['x'], writes: ['x'] }),
          // Declares it writes `a` only, but changes `b` too.
          step('bump', { reads: (r) => [`vars[${r}]`], writes: (r) => [`vars[${r}].a`], effect: (c) => ({ vars: { a: 1, b: (c.vars.b as number) + 1 } }) }),
          until((c) => c.vars.a === 1, 'a is set', { reads: (r) => [`vars[${r}].a`] }),
          set('a', 2),
        ],
      }),
      observes: [],
    });
    expect('plan' in planPor(sys)).toBe(true);
    const r = check(sys, { liveness: false });
    expect(r.verdict).toBe('error');
    expect(r.message).toMatch(/action bump\(rank=\d, thread=main\) changed 'vars\[\d\]\.b', which its `writes` does not declare/);
    expect(check(sys, { liveness: false, por: false }).verdict).toBe('holds');
  });

  it('kit paths parse, and a closure that declares no footprint is assumed to read the whole state', () => {
    const sys = gpuSystem({
      name: 'closures',
      ranks: 2,
      streams: ['C'],
      vars: { a: 0 },
      threads: () => ({ main: [step('s', { effect: () => ({ vars: { a: 1 } }) }), until((c) => c.vars.a === 1, 'a')] }),
    });
    for (const inst of sys.instances) {
      const reads = inst.action.spec.reads;
      const list = typeof reads === 'function' ? reads(inst.params) : (reads ?? []);
      list.forEach((p) => parsePath(p));
      if (inst.action.name === 's') expect(list).toEqual(expect.arrayContaining(['threads', 'streams', 'vars', 'user', 'faults']));
    }
    // The kit's own properties say what they read; with no user invariant the reduction applies.
    expect('plan' in planPor(sys)).toBe(true);
  });
});

describe('partial-order reduction with symmetry', () => {
  it('is on together with symmetry for safety, off for liveness', async () => {
    const dp = await builtinProtocols.find((e) => e.name === 'dp-padding')!.load();
    const sys = dp.variants[0].build(dp.configs.large);
    const both = check(sys, { liveness: false });
    expect(both.notes?.join(' ')).toMatch(/symmetry reduction over 3/);
    expect(both.notes?.join(' ')).toMatch(/partial-order reduction: \d+ of \d+ states expanded with a reduced set/);
    const symOnly = check(sys, { liveness: false, por: false });
    expect(both.verdict).toBe('holds');
    expect(both.stats.states).toBeLessThan(symOnly.stats.states);
    const live = check(dp.variants[0].build(dp.configs.check), { maxStates: 2000 });
    expect(live.notes?.join(' ')).toMatch(/partial-order reduction is off: liveness/);
  }, 60_000);
});
