/**
 * The workers' bundled code (model/parallel/bundle.ts): built once and kept while its inputs stand, rebuilt when
 * one changes, each file's `import.meta.url` its own, packages imported from where Node would find them, and a
 * fall-back to tsx (undefined) whenever no bundle can be had.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkParallel } from '../model/index.ts';
import { workerBundle } from '../model/parallel/bundle.ts';

const dir = mkdtempSync(join(tmpdir(), 'interleave-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const modelIndex = pathToFileURL(fileURLToPath(new URL('../model/index.ts', import.meta.url))).href;

/** A counter model whose bound is read, at load, from a JSON file beside it (found through import.meta.url). */
function writeModel(name: string, bound: number): string {
  writeFileSync(join(dir, `${name}.json`), JSON.stringify({ bound }));
  const file = join(dir, `${name}.ts`);
  writeFileSync(
    file,
    `import { readFileSync } from 'node:fs';
import { actionsOf, defineSystem } from '${modelIndex}';
const { bound } = JSON.parse(readFileSync(new URL('./${name}.json', import.meta.url), 'utf8')) as { bound: number };
const act = actionsOf<{ readonly a: number; readonly b: number }>();
export default defineSystem({
  name: '${name}',
  init: { a: 0, b: 0 },
  actions: [
    act('a', { guard: (s) => s.a < bound, effect: (s) => ({ ...s, a: s.a + 1 }) }),
    act('b', { guard: (s) => s.b < bound, effect: (s) => ({ ...s, b: s.b + 1 }) }),
  ],
  terminal: (s) => s.a === bound && s.b === bound,
});
`,
  );
  return pathToFileURL(file).href;
}

describe('the workers bundle', () => {
  it('is built once, then kept until one of its inputs changes', async () => {
    const cache = join(dir, 'cache-a');
    const url = writeModel('kept', 3);
    const first = await workerBundle({ module: url }, cache);
    expect(first?.origin).toBe('built');
    const again = await workerBundle({ module: url }, cache);
    expect(again?.origin).toBe('cached');
    expect(again?.url.href).toBe(first?.url.href);
    // The model's source changes (a longer file): the bundle is built again.
    writeFileSync(fileURLToPath(url), `${readFileSync(fileURLToPath(url), 'utf8')}\n// changed\n`);
    expect((await workerBundle({ module: url }, cache))?.origin).toBe('built');
  });

  it("keeps each file's import.meta.url and imports packages by the path Node resolves", async () => {
    const cache = join(dir, 'cache-b');
    const url = writeModel('beside', 4);
    const bundle = await workerBundle({ module: url }, cache);
    expect(bundle).toBeDefined();
    const code = readFileSync(fileURLToPath(bundle!.url), 'utf8');
    expect(code).toContain(JSON.stringify(url));
    expect(code).not.toMatch(/import\.meta\.url/);
    // No bare package name is left for Node to resolve from the bundle's folder.
    const specifiers = [...code.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)"/gm)].map((m) => m[1]);
    expect(specifiers.length).toBeGreaterThan(0);
    for (const s of specifiers) expect(s).toMatch(/^(node:|\/)/);
    // The package files it imports are among its inputs: a reinstalled package rebuilds it.
    const inputs = JSON.parse(readFileSync(fileURLToPath(bundle!.url).replace(/\.mjs$/, '.inputs.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(inputs).some((p) => p.includes('/node_modules/'))).toBe(true);
    expect(Object.keys(inputs)).toContain(fileURLToPath(url));
  });

  it('is dropped when its workers do not start, and the workers start again through tsx', async () => {
    const file = join(dir, 'main-only.ts');
    writeFileSync(
      file,
      `import { isMainThread } from 'node:worker_threads';
import { actionsOf, defineSystem } from '${modelIndex}';
if (!isMainThread) throw new Error('this model only loads on the main thread');
const act = actionsOf<{ readonly n: number }>();
export default defineSystem({ name: 'main-only', init: { n: 0 }, actions: [act('inc', { guard: (s) => s.n < 3, effect: (s) => ({ n: s.n + 1 }) })] });
`,
    );
    const source = { module: pathToFileURL(file).href };
    // The tsx start reports what the worker met when it loaded the model.
    await expect(checkParallel(source, { workers: 2 })).rejects.toThrow(/could not load the system: .*only loads on the main thread/);
    expect((await workerBundle(source))?.origin).toBe('built');
  });

  it('bundles a built-in protocol source, which names no module', async () => {
    const bundle = await workerBundle({ protocol: 'dp-padding', variant: 'fixed' }, join(dir, 'cache-c'));
    expect(bundle?.origin).toBe('built');
  });

  it('is not had when turned off or when its folder cannot be written; the caller then uses tsx', async () => {
    const url = writeModel('nowhere', 2);
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, '');
    expect(await workerBundle({ module: url }, join(blocker, 'cache'))).toBeUndefined();
    process.env.INTERLEAVE_WORKER_BUNDLE = '0';
    try {
      expect(await workerBundle({ module: url }, join(dir, 'cache-d'))).toBeUndefined();
    } finally {
      delete process.env.INTERLEAVE_WORKER_BUNDLE;
    }
  });

  it('gives workers that check as the single thread does, with and without it', async () => {
    const url = writeModel('both', 5);
    const bundled = await checkParallel({ module: url }, { workers: 2 });
    process.env.INTERLEAVE_WORKER_BUNDLE = '0';
    let plain;
    try {
      plain = await checkParallel({ module: url }, { workers: 2 });
    } finally {
      delete process.env.INTERLEAVE_WORKER_BUNDLE;
    }
    for (const r of [bundled, plain]) {
      expect(r.verdict).toBe('holds');
      // (bound + 1)^2 states, read from the JSON file beside the model in every worker.
      expect(r.stats.states).toBe(36);
    }
  });
});
