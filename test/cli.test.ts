import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/interleave.mjs', ...args], { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('interleave check on the examples', () => {
  it('gives the exact known state counts of two-phase commit and exits 0', () => {
    const r = cli('check', 'spec/examples/two-phase.ts:rm5', '--json');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out);
    expect(json.results).toHaveLength(1);
    expect(json.results[0]).toMatchObject({ protocol: 'two-phase', variant: 'rm5', verdict: 'holds', states: 8832, depth: 16 });
    for (const key of ['protocol', 'variant', 'expected', 'verdict', 'property', 'states', 'depth', 'seconds', 'trace']) {
      expect(json.results[0]).toHaveProperty(key);
    }
  });

  it('prints a shortest counterexample for a broken example, still exit 0 when as expected', () => {
    const r = cli('check', 'spec/examples/peterson.ts');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/turn-before-flag\s+violated:mutualExclusion\s+violated\s+mutualExclusion/);
    expect(r.out).toMatch(/invariant 'mutualExclusion' is violated after 8 steps/);
    expect(r.out).toMatch(/8\. \[thread 0\] acquire\(t=0\)/);
    expect(r.out).toMatch(/pc\[0\]: "wait" -> "critical"/);
  });

  it('exits 1 when a user system is violated, with the trace in JSON', () => {
    const r = cli('check', 'test/fixtures/violated-system.ts', '--json');
    expect(r.code).toBe(1);
    const res = JSON.parse(r.out).results[0];
    expect(res.verdict).toBe('violated');
    expect(res.property).toBe('belowTwo');
    expect(res.trace.steps).toHaveLength(2);
    expect(res.trace.steps[1].changes).toEqual([{ path: 'n', before: 1, after: 2 }]);
  });

  it('reports incomplete (exit 1) when a limit stops the search', () => {
    const r = cli('check', 'spec/examples/two-phase.ts:rm6', '--max-states', '100');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/incomplete/);
    expect(r.out).toMatch(/state limit 100 reached/);
  });
});

describe('bad input: one-line error, exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['unknown protocol', ['check', 'no-such-protocol'], /unknown protocol 'no-such-protocol'/],
    ['unknown variant', ['check', 'spec/examples/peterson.ts:nope'], /has no variant 'nope' \(variants: correct, turn-before-flag\)/],
    ['unknown flag', ['check', '--frobnicate'], /check: Unknown option '--frobnicate'/],
    ['bad number', ['check', '--max-states', 'lots'], /--max-states expects an integer/],
    ['missing file', ['check', 'models/absent.ts'], /model file 'models\/absent.ts' does not exist/],
    ['file that does not parse', ['check', 'test/fixtures/syntax-error.ts'], /model file 'test\/fixtures\/syntax-error.ts' does not load/],
    ['file with no model', ['check', 'test/fixtures/not-a-model.ts'], /must export \(as default\) a system/],
    ['malformed spec', ['check', 'test/fixtures/duplicate-names.ts'], /duplicate name 'step'/],
    ['unknown configuration', ['check', 'spec/examples/peterson.ts', '--config', 'huge'], /no configuration 'huge'/],
  ];
  for (const [what, args, pattern] of cases) {
    it(what, () => {
      const r = cli(...args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(pattern);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).not.toMatch(/\n\s+at /);
    });
  }

  it('a model whose effect mutates its state: error verdict naming action and field, exit 2', () => {
    const r = cli('check', 'test/fixtures/mutating-model.ts');
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/model error: effect of action bump mutated its input state \(field 'n'\)/);
  });
});

describe('interleave check --liveness-only / --property / --no-deadlock', () => {
  it('--liveness-only: a hang is the liveness failure it is, as the variant expects, with the lasso and the blocked threads', () => {
    const r = cli('check', 'gpu-semantics:thread-raises-flag-stuck', 'gpu-semantics:thread-raises-try-finally', '--liveness-only', '--quiet');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/thread-raises-flag-stuck\s+violated:main-stops-polling\s+violated\s+main-stops-polling/);
    expect(r.out).toMatch(/thread-raises-try-finally\s+holds\s+holds/);
    expect(r.out).toMatch(/stutters there forever/);
    expect(r.out).toMatch(/polls forever until ongoing is clear/);
    expect(r.out).toMatch(/no step is enabled here: the behaviour stays in this state forever/);
  });

  it('--property checks only the named property; an unknown one is an error naming the properties (exit 2)', () => {
    const ok = cli('check', 'gpu-semantics:thread-raises-flag-stuck', '--property', 'main-stops-polling', '--json', '--quiet');
    expect(JSON.parse(ok.out).results[0]).toMatchObject({ verdict: 'violated', property: 'main-stops-polling' });
    const bad = cli('check', 'gpu-semantics:thread-raises-flag-stuck', '--property', 'nope', '--quiet');
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/has no property 'nope' \(properties: .*main-stops-polling, deadlock\)/);
  });

  it('--liveness-only with --no-liveness is a usage error', () => {
    const r = cli('check', 'gpu-semantics', '--liveness-only', '--no-liveness');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--liveness-only cannot be combined with --no-liveness/);
  });
});
