/**
 * The ground truth: every variant of spec/gpu-semantics.ts gets the verdict measured on the H100, with a
 * shortest counterexample whose steps name rank, thread or stream, and buffer.
 */
import { describe, expect, it } from 'vitest';
import { faultOf } from '../model/gpu/index.ts';
import { check } from '../model/index.ts';
import semantics from '../spec/gpu-semantics.ts';

const expected: Record<string, string> = {
  'free-without-record-stream': 'no-write-while-reading',
  'free-with-record-stream': 'holds',
  'record-stream-on-allocation-stream': 'no-write-while-reading',
  'missing-wait-event': 'no-read-while-writing',
  'wait-event': 'holds',
  'wait-unrecorded-event': 'no-read-while-writing',
  'nccl-wait-does-not-block-cpu': 'no-read-while-writing',
  'gloo-wait-blocks-cpu': 'holds',
  'flag-set-in-thread': 'main-uses-computed-plan',
  'flag-set-before-start': 'holds',
  'thread-raises-flag-stuck': 'deadlock',
  'thread-raises-try-finally': 'holds',
  'collective-order-mismatch': 'deadlock',
  'send-without-matching-recv': 'deadlock',
};

describe('gpu-semantics', () => {
  it('has exactly the measured variants, each expecting its measured verdict', () => {
    expect(semantics.name).toBe('gpu-semantics');
    expect(semantics.variants.map((v) => v.name)).toEqual(Object.keys(expected));
    for (const v of semantics.variants) {
      const e = expected[v.name];
      expect(v.expect).toEqual(e === 'holds' ? { verdict: 'holds' } : { verdict: 'violated', property: e });
    }
  });

  for (const v of semantics.variants) {
    it(`${v.name}: ${expected[v.name]}`, () => {
      const sys = v.build(null);
      const r = check(sys);
      if (v.expect.verdict === 'holds') {
        expect(r.verdict).toBe('holds');
        return;
      }
      expect(r.verdict).toBe('violated');
      expect(r.property).toBe(v.expect.property);
      const steps = r.trace!.steps;
      // Every step is a readable sentence naming its rank and thread or stream.
      for (const s of steps) {
        expect(s.actor).toMatch(/^rank \d+ \w+|^rank \d+ stream \w+|^group |^(nccl|gloo) rank/);
        expect(s.text).toMatch(/^rank \d+ /);
      }
      // Shortest: nothing fails within one step fewer.
      const shorter = check(v.build(null), { maxDepth: Math.max(steps.length - 1, 0) });
      if (steps.length > 0) expect(shorter.verdict).not.toBe('violated');
      if (r.property === 'deadlock') {
        expect(r.stuck!.length).toBeGreaterThan(0);
        for (const line of r.stuck!) expect(line).toMatch(/^rank \d+ /);
      } else if (r.property === 'main-uses-computed-plan') {
        expect(steps.at(-1)!.text).toBe('rank 0 main: uses the plan (missing)');
      } else {
        // The breaking step's fault sentence names the buffer.
        const fault = faultOf(steps.at(-1)!.state as never)!.join(': ');
        expect(fault.startsWith(`${r.property}: rank `)).toBe(true);
        expect(fault).toMatch(/\b(out|x|y|z)\b/);
      }
    });
  }

  it('explains the hangs by naming the blocked ranks and what each waits for', () => {
    const by = (n: string) => check(semantics.variants.find((v) => v.name === n)!.build(null));
    expect(by('collective-order-mismatch').stuck).toContain(
      'rank 0 stream nccl:world: blocked in all_reduce #1 (peers: rank 1 is in all_gather #1) (3 more queued behind)',
    );
    expect(by('send-without-matching-recv').stuck).toContain(
      'rank 0 stream p2p:1: the nccl send of x to rank 1 cannot complete: rank 1 has posted no matching receive',
    );
    expect(by('thread-raises-flag-stuck').stuck).toEqual(['rank 0 main: polls forever until ongoing is clear (ongoing = true, plan = null)']);
  });
});
