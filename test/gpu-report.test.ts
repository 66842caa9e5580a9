import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildGpuReport, gpuObservation } from '../model/cli/gpu-report.ts';
import { UsageError } from '../model/cli/errors.ts';

describe('gpu-report on the committed H100 evidence', () => {
  it('every model verdict agrees with what the GPU showed, and outputs match the ONNX oracle', async () => {
    const { rows, oracle } = await buildGpuReport('kernels/evidence');
    expect(rows.length).toBeGreaterThanOrEqual(25);
    for (const r of rows) expect(r.agree, `${r.protocol}:${r.variant}: model ${r.model}, gpu ${r.gpu}`).toBe(true);
    // Fixed variants: at least 1,000 clean trials; buggy ones fail on (nearly) every replay.
    for (const r of rows.filter((x) => x.model === 'holds')) expect(r.trials).toBeGreaterThanOrEqual(1000);
    // Recorded runs: never rejected by their model; most are comparable (the emulation names the model's steps).
    for (const r of rows) expect(r.trace, `${r.protocol}:${r.variant}`).not.toMatch(/^rejected/);
    const accepted = rows.filter((r) => r.trace.startsWith('accepted'));
    expect(accepted.length).toBeGreaterThanOrEqual(12);
    for (const name of ['free-with-record-stream', 'wait-event', 'flag-set-before-start', 'thread-raises-try-finally']) {
      expect(rows.find((r) => r.variant === name)?.trace).toMatch(/^accepted/);
    }
    expect(rows.find((r) => r.protocol === 'overlap-linear' && r.variant === 'fixed')?.trace).toMatch(/^accepted/);
    expect(rows.find((r) => r.protocol === 'pp-async-p2p' && r.variant === 'fixed')?.trace).toMatch(/^accepted/);
    expect(oracle.length).toBeGreaterThanOrEqual(4);
    for (const o of oracle) expect(o.relErr).toBeLessThanOrEqual(1e-5);
  });

  it('reads the multi-GPU harness\'s folder too: the step-max barrier over 4 gloo processes agrees with its models', async () => {
    const { rows } = await buildGpuReport('kernels/evidence/multigpu-dryrun');
    expect(rows.map((r) => [r.variant, r.model, r.gpu, r.agree])).toEqual([
      ['margin-at-safe-bound', 'holds', 'clean', true],
      ['pr-margin-late-signal', 'violated:begin-step-not-passed', 'fails', true],
    ]);
  });

  it('disagrees when a fixed variant failed on the GPU or a buggy one did not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-report-'));
    const evidence = JSON.parse(readFileSync('kernels/evidence/evidence.json', 'utf8'));
    const fixed = evidence.rows.find((r: { protocol: string; variant: string }) => r.protocol === 'gpu-semantics' && r.variant === 'wait-event');
    fixed.failures = 3;
    const buggy = evidence.rows.find((r: { protocol: string; variant: string }) => r.variant === 'missing-wait-event');
    buggy.failures = 0;
    writeFileSync(join(dir, 'evidence.json'), JSON.stringify({ meta: evidence.meta, rows: [fixed, buggy] }));
    const { rows } = await buildGpuReport(dir);
    expect(rows.map((r) => r.agree)).toEqual([false, false]);
    expect(gpuObservation({ ...fixed, failures: 3 })).toMatch(/flaky/);
  });

  it('refuses missing or malformed evidence with a usage error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-report-'));
    await expect(buildGpuReport(dir)).rejects.toThrow(UsageError);
    writeFileSync(join(dir, 'evidence.json'), '{"rows": [');
    await expect(buildGpuReport(dir)).rejects.toThrow(/not valid JSON/);
  });
});
