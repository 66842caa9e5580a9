/**
 * spec/pp-async-p2p.ts: every variant gets its expected verdict with a shortest counterexample that ends in
 * the violation, every property of the brief is present and refuted by some variant (none is vacuous), the
 * fixed design reaches the overlap it exists for, and holds on the larger configurations.
 */
import { describe, expect, it } from 'vitest';
import { faultOf } from '../model/gpu/index.ts';
import { type CheckResult, type System, check } from '../model/index.ts';
import pp, { type PpConfig, build } from '../spec/pp-async-p2p.ts';

const PROPERTIES = [
  'no-read-before-wait-and-postprocess',
  'send-source-not-reused-or-overwritten',
  'p2p-same-order-both-sides',
  'tp-allgather-same-order',
  'every-handle-waited',
  'every-send-matched',
] as const;
const OVERLAP = 'recv-in-flight-while-compute-runs';

const configOf = (name: string): PpConfig => {
  const v = pp.variants.find((x) => x.name === name)!;
  return v.config ?? pp.configs.check;
};
const systemOf = (name: string, cfg?: PpConfig): System<any> => pp.variants.find((x) => x.name === name)!.build(cfg ?? configOf(name));

// The kit registers queue items while it explores, so a trace's states are read with the system that made them.
const runs = new Map<string, { sys: System<any>; result: CheckResult }>();
const runOf = (name: string) => {
  let x = runs.get(name);
  if (!x) {
    const sys = systemOf(name);
    x = { sys, result: check(sys) };
    runs.set(name, x);
  }
  return x;
};
const resultOf = (name: string): CheckResult => runOf(name).result;

/** Whether any action is enabled in state s of system sys. */
const anyEnabled = (sys: System<any>, s: any) => sys.instances.some((i) => !i.action.spec.guard || i.action.spec.guard(s, i.params));

describe('pp-async-p2p', () => {
  it('is named as the brief asks and carries the check, large and pr configurations', () => {
    expect(pp.name).toBe('pp-async-p2p');
    expect(pp.configs.check).toMatchObject({ pp: 2, tp: 2, microBatches: 2 });
    expect(pp.configs.pr).toMatchObject({ pp: 4, tp: 2, hidden: 7168, dtype: 'bf16' });
    expect(pp.configs.large).toBeDefined();
    expect(pp.variants[0].name).toBe('fixed');
  });

  for (const v of pp.variants) {
    it(`${v.name}: ${v.expect.verdict === 'holds' ? 'holds' : `violates ${v.expect.property}`}`, () => {
      const { sys, result: r } = runOf(v.name);
      if (v.expect.verdict === 'holds') {
        expect(r.verdict, r.message).toBe('holds');
        return;
      }
      expect(r.verdict).toBe('violated');
      expect(r.property).toBe(v.expect.property);
      if (r.propertyKind === 'reachability') {
        expect(r.trace).toBeUndefined();
        return;
      }
      // A non-empty counterexample that ends in the violation, every step naming its actor.
      const steps = r.trace!.steps;
      expect(steps.length).toBeGreaterThan(0);
      expect(steps.every((st) => typeof st.actor === 'string' && /rank \d|group|nccl|gloo/.test(st.actor))).toBe(true);
      expect(steps.every((st) => typeof st.text === 'string' && st.text.length > 0)).toBe(true);
      const last = steps[steps.length - 1].state as any;
      const before = steps.length > 1 ? (steps[steps.length - 2].state as any) : r.trace!.initial;
      if (r.propertyKind === 'invariant') {
        expect(sys.spec.invariants![r.property!](last)).toBe(false);
        expect(sys.spec.invariants![r.property!](before)).toBe(true);
      } else if (r.propertyKind === 'deadlock') {
        expect(anyEnabled(sys, last)).toBe(false);
        expect(sys.spec.terminal!(last)).toBe(false);
      }
    });
  }

  it('names every property of the brief, checked ahead of the kit\'s generic ones', () => {
    const sys = systemOf('fixed');
    const names = Object.keys(sys.spec.invariants!);
    expect(names.slice(0, PROPERTIES.length)).toEqual([...PROPERTIES]);
    expect(names).toContain('no-write-while-reading');
    expect(Object.keys(sys.spec.reachable!)).toEqual([OVERLAP]);
  });

  describe('no property is vacuous', () => {
    for (const p of PROPERTIES) {
      it(`${p} is refuted by a variant, and holds for fixed`, () => {
        const refuters = pp.variants.filter((v) => v.expect.verdict === 'violated' && v.expect.property === p);
        expect(refuters.length).toBeGreaterThan(0);
        for (const v of refuters) expect(resultOf(v.name).property).toBe(p);
        expect(resultOf('fixed').verdict).toBe('holds');
      });
    }

    it(`${OVERLAP}: fixed reaches it (on every check configuration), fake async (B2) does not`, () => {
      // `holds` includes every reachability goal: the fixed design overlaps a receive with the forward.
      for (const cfg of [pp.configs.check, pp.configs['check-tp1'], pp.configs['check-2t']]) {
        expect(check(build(cfg)).verdict).toBe('holds');
      }
      const b2 = resultOf('b2-fake-async');
      expect(b2.propertyKind).toBe('reachability');
      // B2 is safe: with the reachability goal gone, nothing else fails.
      const sys = systemOf('b2-fake-async');
      const safeOnly = { ...sys, spec: { ...sys.spec, reachable: {} } };
      expect(check(safeOnly).verdict).toBe('holds');
    });

    it('the postprocess half of no-read-before-wait: waited but not all-gathered is a stale read', () => {
      const r = resultOf('postprocess-dropped');
      const last = r.trace!.steps.at(-1)!.state as never;
      expect(faultOf(last)!.join(': ')).toMatch(/^no-stale-read: .*reads in_h\d = stage0\.mb\d, expected/);
    });
  });

  describe('what the counterexamples say', () => {
    it('B1 reads the receive buffer while the receive is still queued', () => {
      const last = resultOf('b1-tuple-as-dict').trace!.steps.at(-1)!;
      expect(last.action).toBe('exec');
      expect(faultOf(last.state as never)!.join(': ')).toMatch(/^no-read-while-writing: rank \d: forward\.mb0 on stream C reads in_h0 while the nccl receive into in_h0/);
    });

    it('B3 reuses the block of the tensor being sent: record_stream(C) was ignored', () => {
      const steps = resultOf('b3-record-stream-current').trace!.steps;
      expect(steps.some((s) => /record_stream\(C\) \(its allocation stream: will be ignored\)/.test(s.text!))).toBe(true);
      expect(steps.some((s) => /allocate out_h1 on stream C \(reuses block \d+, which held out_h0\)/.test(s.text!))).toBe(true);
      expect(faultOf(steps.at(-1)!.state as never)!.join(': ')).toMatch(/writes out_h1 \(the block out_h0 lived in\) while the nccl send of out_h0/);
    });

    it('B3 is masked by ProcessGroupNCCL recording its operand, and by keeping the tensor until the wait', () => {
      expect(resultOf('b3-masked-by-pg').verdict).toBe('holds');
      expect(resultOf('deferred-send-wait-held').verdict).toBe('holds');
    });

    it('B4 rewrites the static output buffer while its send is queued', () => {
      const last = resultOf('b4-deferred-send-wait-static').trace!.steps.at(-1)!;
      expect(faultOf(last.state as never)!.join(': ')).toMatch(/forward\.mb1 on stream C writes out_h while the nccl send of out_h/);
    });

    it('B5: TP rank 0 issues the all-gather of micro-batch 1 where rank 1 issues the forward all-reduce; the group hangs', () => {
      const hang = resultOf('b5-lazy-postprocess-hang');
      expect(hang.stuck!.join('\n')).toMatch(/blocked in all_gather #2 \(peers: rank 2 is in all_reduce #2\)/);
      expect(hang.stuck!.join('\n')).toMatch(/blocked in all_reduce #2 \(peers: rank 1 is in all_gather #2\)/);
    });

    it('B6 reads a prefetched buffer, never a buffer received on demand', () => {
      const last = resultOf('b6-inbox-drops-handles').trace!.steps.at(-1)!;
      expect(faultOf(last.state as never)!.join(': ')).toMatch(/reads in_h1 while the nccl receive into in_h1/);
    });
  });

  describe('configurations', () => {
    it('the gloo metadata exchange changes no verdict', () => {
      for (const v of pp.variants) {
        const r = check(v.build({ ...configOf(v.name), metadata: false }));
        if (v.expect.verdict === 'holds') expect(r.verdict, v.name).toBe('holds');
        else expect([v.name, r.property]).toEqual([v.name, v.expect.property]);
      }
    });

    it('fixed holds with 3 stages (a middle stage receives and sends) and with 3 micro-batches', () => {
      expect(check(build({ pp: 3, tp: 1, microBatches: 3, tensors: 1, metadata: true })).verdict).toBe('holds');
      expect(check(build({ pp: 2, tp: 1, microBatches: 3, tensors: 2, metadata: true })).verdict).toBe('holds');
    });

    it('fixed holds on large: pp 2, tp 2 with every TP rank of both stages (4 ranks)', { timeout: 180_000 }, () => {
      const r = check(build(pp.configs.large));
      expect(r.verdict).toBe('holds');
      expect(r.stats.states).toBeGreaterThan(100_000);
    });

    it('the bugs found on the folded check configuration are found on the unfolded one too', { timeout: 180_000 }, () => {
      for (const name of ['b1-tuple-as-dict', 'b5-lazy-postprocess', 'b6-inbox-drops-handles', 'postprocess-dropped']) {
        const v = pp.variants.find((x) => x.name === name)!;
        const r = check(v.build(pp.configs.large));
        expect([name, r.property]).toEqual([name, (v.expect as { property: string }).property]);
      }
    });
  });
});
