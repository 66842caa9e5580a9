/**
 * The seed protocols' liveness properties ("no rank waits forever", "no spin loop runs forever", "the
 * rebalance completes"), checked on their own as `check --liveness-only` does: safety properties left out and
 * stuck states left to liveness. Every variant gets the liveness verdict it declares (`expectLiveness`, else
 * holds); every failure is a lasso whose end says what each blocked thread waits for.
 */
import { describe, expect, it } from 'vitest';
import { check } from '../model/explorer.ts';
import { builtinProtocols } from '../spec/index.ts';

describe('built-in protocols: liveness on its own', () => {
  for (const entry of builtinProtocols) {
    it(entry.name, async () => {
      const p = await entry.load();
      for (const v of p.variants) {
        const sys = v.build(v.config ?? p.configs.check);
        const names = Object.keys(sys.spec.liveness ?? {});
        if (v.expectLiveness) expect(names, `${p.name}:${v.name} declares the property it breaks`).toContain(v.expectLiveness);
        const r = check(sys, { properties: names, deadlock: false });
        const where = `${p.name}:${v.name}`;
        if (!v.expectLiveness) {
          expect(r.verdict, `${where}: ${r.message ?? ''}`).toBe('holds');
          continue;
        }
        expect(r.verdict, where).toBe('violated');
        expect(r.propertyKind, where).toBe('liveness');
        expect(r.property, where).toBe(v.expectLiveness);
        // A lasso: a prefix from an initial state, then a cycle (here the stutter of a stuck state).
        expect(r.trace?.loopStart, where).toBeDefined();
        expect(r.trace!.loopStart!).toBeLessThanOrEqual(r.trace!.steps.length);
        expect(r.stuck?.length ?? 0, `${where}: says what the blocked threads wait for`).toBeGreaterThan(0);
      }
    });
  }
});

describe('the brief’s specific liveness properties', () => {
  const load = async (name: string) => (await builtinProtocols.find((p) => p.name === name)!.load());
  const run = async (protocol: string, variant: string, property: string) => {
    const p = await load(protocol);
    const v = p.variants.find((x) => x.name === variant)!;
    return check(v.build(v.config ?? p.configs.check), { properties: [property], deadlock: false });
  };

  it('eplb-async-rebalance: a raising Tc without try/finally leaves the generator spinning (round-completes)', async () => {
    expect((await run('eplb-async-rebalance', 'fixed', 'round-completes')).verdict).toBe('holds');
    const r = await run('eplb-async-rebalance', 'no-try-finally', 'round-completes');
    expect(r).toMatchObject({ verdict: 'violated', property: 'round-completes', propertyKind: 'liveness' });
    expect(r.stuck!.join('\n')).toMatch(/computeSpin/);
  });

  it('eplb-staged-transfer: an unreported worker exception wedges the rebalance (rebalance-completes)', async () => {
    expect((await run('eplb-staged-transfer', 'fixed', 'rebalance-completes')).verdict).toBe('holds');
    const r = await run('eplb-staged-transfer', 'worker-raise-unreported', 'rebalance-completes');
    expect(r).toMatchObject({ verdict: 'violated', property: 'rebalance-completes' });
    expect(r.stuck!.join('\n')).toMatch(/rebalanced = true/);
  });

  it('gpu-semantics: a worker that raises before clearing the flag leaves main polling forever', async () => {
    expect((await run('gpu-semantics', 'thread-raises-try-finally', 'main-stops-polling')).verdict).toBe('holds');
    const r = await run('gpu-semantics', 'thread-raises-flag-stuck', 'main-stops-polling');
    expect(r).toMatchObject({ verdict: 'violated', property: 'main-stops-polling' });
    expect(r.stuck!.join('\n')).toMatch(/polls forever until ongoing is clear/);
    expect(r.trace!.steps.some((s) => s.action === 'raise')).toBe(true);
  });

  it('an unknown property name is a model error naming the properties there are', async () => {
    await expect(run('gpu-semantics', 'thread-raises-flag-stuck', 'no-such-property')).rejects.toThrow(/has no property 'no-such-property' \(properties: .*main-stops-polling/);
  });
});
