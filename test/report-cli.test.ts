/**
 * The command line of reports: `interleave trace TARGET --format ... --out ...` (its errors exit 2 in one line)
 * and `interleave init NAME` (a skeleton that checks out of the box).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main, registerCommand } from '../model/cli/main.ts';
import { initCommand, initHelp } from '../model/cli/init.ts';
import { traceCommand, traceHelp } from '../model/cli/trace.ts';
import { readItf } from '../model/report/index.ts';
import { builtinProtocols } from '../spec/index.ts';

registerCommand('trace', { run: traceCommand, help: traceHelp });
registerCommand('init', { run: initCommand, help: initHelp });

const REPO = process.cwd();
const tmp = mkdtempSync(join(tmpdir(), 'interleave-report-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs the CLI in this process, capturing what it writes. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
    out += String(c);
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => {
    err += String(c);
    return true;
  });
  try {
    return { code: await main(args), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

function expectUsageError(r: { code: number; err: string }, pattern: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.err).toMatch(pattern);
  expect(r.err.trim().split('\n')).toHaveLength(1);
}

describe('interleave trace', () => {
  it('prints the counterexample as text by default', async () => {
    const r = await cli('trace', 'spec/examples/peterson.ts:turn-before-flag', '--quiet');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^spec\/examples\/peterson\.ts:turn-before-flag|^peterson:turn-before-flag/);
    expect(r.out).toMatch(/invariant 'mutualExclusion' is violated after 8 steps/);
    expect(r.out).toMatch(/8\. \[thread 0\] acquire\(t=0\)/);
  });

  it('writes each format to --out, the extension choosing it when --format is absent', async () => {
    const target = 'docs/examples/kv-double-buffer.ts:reuse-on-post';
    const files = { md: 'kv.md', html: 'kv.html', itf: 'kv.itf.json', dot: 'kv.dot', text: 'kv.txt' } as const;
    for (const [format, name] of Object.entries(files)) {
      const out = join(tmp, 'reports', name);
      const r = await cli('trace', target, '--out', out);
      expect(r.code).toBe(0);
      expect(r.out).toBe('');
      expect(r.err).toMatch(new RegExp(`kvIntact \\(invariant\\) fails in 5 steps; wrote .*${name.replace('.', '\\.')} \\(${format}\\)`));
      expect(existsSync(out)).toBe(true);
    }
    expect(readFileSync(join(tmp, 'reports', 'kv.md'), 'utf8')).toMatch(/```mermaid\nsequenceDiagram\n {2}participant L0 as rank 0 prefill\n {2}participant L1 as rank 1 decode\n/);
    expect(readFileSync(join(tmp, 'reports', 'kv.html'), 'utf8')).toMatch(/^<!doctype html>/);
    const itf = readItf(readFileSync(join(tmp, 'reports', 'kv.itf.json'), 'utf8'));
    expect(itf.trace.steps.at(-1)!.state).toMatchObject({ kv: [2, null, null] });
    expect(readFileSync(join(tmp, 'reports', 'kv.dot'), 'utf8')).toMatch(/^digraph "kv-double-buffer:reuse-on-post" \{/);
    // --format wins over the extension.
    const r = await cli('trace', target, '--format', 'md', '--out', join(tmp, 'reports', 'odd.html'), '--quiet');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(readFileSync(join(tmp, 'reports', 'odd.html'), 'utf8')).toMatch(/^# Counterexample/);
  });

  it('writes ITF integers as #bigint, or as JSON numbers with --itf-integers number', async () => {
    const big = await cli('trace', 'spec/examples/peterson.ts:turn-before-flag', '--format', 'itf', '--quiet');
    expect(JSON.parse(big.out).states[0].turn).toEqual({ '#bigint': '0' });
    const small = await cli('trace', 'spec/examples/peterson.ts:turn-before-flag', '--format', 'itf', '--itf-integers', 'number', '--quiet');
    expect(JSON.parse(small.out).states[0].turn).toBe(0);
  });

  it('renders a built-in protocol by name', async () => {
    const entry = builtinProtocols[0];
    if (!entry) return;
    const p = await entry.load();
    const v = p.variants.find((x) => x.expect.verdict === 'violated' && x.expect.property !== undefined);
    if (!v) return;
    const r = await cli('trace', `${p.name}:${v.name}`, '--format', 'md', '--quiet');
    if (r.code === 2) {
      // Only a reachability property may fail without a trace.
      expect(r.err).toMatch(/has no trace to render/);
      return;
    }
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^# Counterexample: ${p.name}:${v.name}`));
  });

  it('draws the state graph of a small model, refuses a large one, and draws the path scope of any', async () => {
    const full = await cli('trace', 'spec/examples/dining-philosophers.ts:left-first', '--format', 'dot', '--quiet');
    expect(full.err).toBe('');
    expect(full.code).toBe(0);
    expect(full.out).toMatch(/82 states/);
    expectUsageError(
      await cli('trace', 'spec/examples/dining-philosophers.ts:left-first', '--format', 'dot', '--dot-limit', '10', '--quiet'),
      /dot draws small models only: the state graph of 'dining\(5\)' has more than 10 states \(limit 10\); use --dot-scope path/,
    );
    const path = await cli('trace', 'spec/examples/dining-philosophers.ts:left-first', '--format', 'dot', '--dot-limit', '10', '--dot-scope', 'path', '--quiet');
    expect(path.code).toBe(0);
    expect(path.out).toMatch(/one-step successors/);
  });

  it('exits 2 with one clear line when there is nothing to render or the input is wrong', async () => {
    expectUsageError(await cli('trace', 'spec/examples/peterson.ts:correct', '--quiet'), /peterson:correct holds \(\d+ states explored\): there is no counterexample to render/);
    expectUsageError(
      await cli('trace', 'spec/examples/peterson.ts', '--quiet'),
      /'spec\/examples\/peterson\.ts' has 2 variants \(correct, turn-before-flag\): name one, e\.g\. 'interleave trace spec\/examples\/peterson\.ts:turn-before-flag'/,
    );
    expectUsageError(await cli('trace', 'spec/examples/peterson.ts:turn-before-flag', '--max-states', '5', '--quiet'), /stopped before finding a counterexample \(state limit 5 reached\)/);
    expectUsageError(await cli('trace', 'spec/examples/handoff.ts', '--format', 'pdf'), /unknown --format 'pdf' \(formats: text, md, itf, html, dot\)/);
    expectUsageError(await cli('trace'), /trace: name one TARGET/);
    expectUsageError(await cli('trace', 'a.ts', 'b.ts'), /trace: takes one TARGET, got 2/);
    expectUsageError(await cli('trace', 'spec/examples/handoff.ts', '--dot-scope', 'most'), /--dot-scope must be 'full' or 'path'/);
    expectUsageError(await cli('trace', 'spec/examples/handoff.ts', '--itf-integers', 'float'), /--itf-integers must be 'bigint' or 'number'/);
    expectUsageError(await cli('trace', 'spec/examples/handoff.ts', '--frobnicate'), /trace: Unknown option '--frobnicate'/);
    expectUsageError(await cli('trace', 'models/absent.ts'), /model file 'models\/absent\.ts' does not exist/);
    expectUsageError(await cli('trace', 'test/fixtures/mutating-model.ts', '--quiet'), /model error: effect of action bump mutated its input state/);
  });

  it('says so when the failed property has no trace (an unreachable goal)', async () => {
    const file = join(tmp, 'unreached.mts');
    writeFileSync(
      file,
      `import { actionsOf, defineSystem } from ${JSON.stringify(pathToFileURL(join(REPO, 'model/index.ts')).href)};
const act = actionsOf<{ n: number }>();
export default defineSystem<{ n: number }>({
  name: 'never-two',
  init: { n: 0 },
  actions: [act('inc', { guard: (s) => s.n < 1, effect: (s) => ({ n: s.n + 1 }) })],
  reachable: { reachesTwo: (s) => s.n === 2 },
  terminal: () => true,
});
`,
    );
    expectUsageError(await cli('trace', file, '--quiet'), /no reachable state satisfies 'reachesTwo'.*a failed reachability has no trace to render/);
  });
});

describe('interleave init', () => {
  /** Runs the CLI (with init registered) as a child process in `cwd`. */
  function run(cwd: string, ...args: string[]) {
    const entry = join(tmp, 'cli-entry.mts');
    if (!existsSync(entry)) {
      writeFileSync(
        entry,
        `import { main, registerCommand } from ${JSON.stringify(pathToFileURL(join(REPO, 'model/cli/main.ts')).href)};
import { initCommand, initHelp } from ${JSON.stringify(pathToFileURL(join(REPO, 'model/cli/init.ts')).href)};
registerCommand('init', { run: initCommand, help: initHelp });
process.exitCode = await main(process.argv.slice(2));
`,
      );
    }
    const r = spawnSync(process.execPath, [join(REPO, 'bin/run-ts.mjs'), entry, ...args], { cwd, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
    return { code: r.status, out: r.stdout, err: r.stderr };
  }

  it('in a bare directory: writes NAME.mts (an ES module wherever it lies), which holds', () => {
    const dir = join(tmp, 'bare');
    mkdirSync(dir);
    const r = run(dir, 'init', 'my-protocol');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/wrote my-protocol\.mts: a model that holds as it is; check it with: npx interleave check my-protocol\.mts/);
    const src = readFileSync(join(dir, 'my-protocol.mts'), 'utf8');
    expect(src).toMatch(/name: "my-protocol"/);
    const check = run(dir, 'check', 'my-protocol.mts');
    expect(check.err).toBe('');
    expect(check.code).toBe(0);
    expect(check.out).toMatch(/my-protocol\s+holds\s+holds/);
  });

  it("in an ES-module project with interleave installed: writes NAME.ts importing 'interleave', which holds", () => {
    const dir = join(tmp, 'project');
    mkdirSync(join(dir, 'node_modules'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'my-engine', type: 'module' }));
    symlinkSync(REPO, join(dir, 'node_modules', 'interleave'), 'dir');
    const r = run(dir, 'init', 'kv-transfer');
    expect(r.code).toBe(0);
    const src = readFileSync(join(dir, 'kv-transfer.ts'), 'utf8');
    expect(src).toMatch(/import \{ actionsOf, defineSystem \} from 'interleave';/);
    const check = run(dir, 'check', 'kv-transfer.ts', '--json');
    expect(check.code).toBe(0);
    expect(JSON.parse(check.out).results[0]).toMatchObject({ variant: 'kv-transfer', verdict: 'holds', states: 5 });

    // --out elsewhere, and the skeleton is a real model: the bug its comment names is found.
    const nested = run(dir, 'init', 'buggy', '--out', 'models/buggy.ts');
    expect(nested.code).toBe(0);
    const file = join(dir, 'models', 'buggy.ts');
    writeFileSync(file, readFileSync(file, 'utf8').replace("guard: (s) => s.buffer === 'full' && !s.ready", "guard: (s) => s.buffer !== 'empty' && !s.ready"));
    const broken = run(dir, 'check', 'models/buggy.ts');
    expect(broken.code).toBe(1);
    expect(broken.out).toMatch(/invariant 'copiesOnlyData' is violated after 3 steps/);
  });

  it('refuses to overwrite, and refuses a bad name', () => {
    const dir = join(tmp, 'again');
    mkdirSync(dir);
    expect(run(dir, 'init', 'm').code).toBe(0);
    const again = run(dir, 'init', 'm');
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/init: 'm\.mts' already exists \(use --force to overwrite it\)/);
    expect(run(dir, 'init', 'm', '--force').code).toBe(0);
    const bad = run(dir, 'init', '../evil name');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/is not a model name/);
    expect(run(dir, 'init').err).toMatch(/init: name the new model/);
    expect(resolve(dir)).toBe(join(tmp, 'again'));
  });
});
