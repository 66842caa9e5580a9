/**
 * The worker threads' code as one JavaScript file. A worker that loads TypeScript through tsx (bootstrap.mjs)
 * starts tsx's loader thread and transpiles every module it imports: about 0.3 s for two workers on a 2-core
 * machine, more than a 1.7 M-state search spends in any one level. So the coordinator bundles worker.ts and the
 * model's module with esbuild (tsx's own transpiler) into one ES module that a bare worker loads in tens of
 * milliseconds, and keeps the bundle on disk while none of its inputs changes.
 *
 * Packages stay outside the bundle, imported from the absolute paths esbuild resolves them to (the conditions
 * Node uses: import, node, default), so a bundle loads the same package files wherever it is written. Each
 * source file's `import.meta.url` is replaced by that file's own URL, so paths a module resolves against it
 * (data files beside a model) stay right.
 *
 * Anything that goes wrong here (esbuild missing, a file it cannot bundle, a cache directory that cannot be
 * written) returns undefined, and the coordinator starts its workers through tsx as before.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { SystemSource } from './source.ts';

/** The worker entry and the module whose exports it hands to loadSystem (see source.ts's `preloaded`). */
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const SOURCE = fileURLToPath(new URL('./source.ts', import.meta.url));

/** Where bundles are kept: one file per entry, and beside it the inputs it was built from. */
export const BUNDLE_DIR = join(tmpdir(), 'interleave-workers');

/** Each input's size and modification time when the bundle was built. */
type Inputs = Record<string, [size: number, mtimeMs: number]>;

/** The module a source names, as a file URL, or undefined for a built-in protocol (the bundle holds them all). */
function moduleUrl(source: SystemSource): string | undefined {
  if (!('module' in source) || typeof source.module !== 'string') return undefined;
  return /^file:/.test(source.module) ? source.module : pathToFileURL(resolve(source.module)).href;
}

/** The bundle's entry: the model's module (if any) preloaded under its URL, then the worker itself. */
function entryFor(source: SystemSource): string {
  const url = moduleUrl(source);
  const lines = url === undefined ? [] : [
    `import * as model from ${JSON.stringify(fileURLToPath(url))};`,
    `import { preload } from ${JSON.stringify(SOURCE)};`,
    `preload(${JSON.stringify(url)}, model);`,
  ];
  return [...lines, `import ${JSON.stringify(WORKER)};`, ''].join('\n');
}

/** Drops a bundle whose workers did not start (a package it names may have moved), so the next run rebuilds it. */
export async function forget(bundle: WorkerBundle): Promise<void> {
  const file = fileURLToPath(bundle.url);
  await rm(file, { force: true }).catch(() => undefined);
  await rm(file.replace(/\.mjs$/, '.inputs.json'), { force: true }).catch(() => undefined);
}

async function unchanged(inputs: Inputs): Promise<boolean> {
  try {
    for (const [path, [size, mtimeMs]] of Object.entries(inputs)) {
      const s = await stat(path);
      if (s.size !== size || s.mtimeMs !== mtimeMs) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** How a bundle came to be, for tests and diagnostics. */
export type BundleOrigin = 'built' | 'cached';

export interface WorkerBundle {
  readonly url: URL;
  readonly origin: BundleOrigin;
}

/**
 * The bundled worker code for a source, built or taken from `dir`; undefined when it cannot be had (the caller
 * then starts its workers through tsx).
 */
export async function workerBundle(source: SystemSource, dir: string = BUNDLE_DIR): Promise<WorkerBundle | undefined> {
  // INTERLEAVE_WORKER_BUNDLE=0: workers load the TypeScript files themselves (a crash's stack then names them).
  if (process.env.INTERLEAVE_WORKER_BUNDLE === '0') return undefined;
  try {
    const entry = entryFor(source);
    const key = createHash('sha256').update(entry).digest('hex').slice(0, 24);
    const file = join(dir, `${key}.mjs`);
    const index = join(dir, `${key}.inputs.json`);
    try {
      const inputs = JSON.parse(await readFile(index, 'utf8')) as Inputs;
      if ((await unchanged(inputs)) && (await stat(file)).isFile()) return { url: pathToFileURL(file), origin: 'cached' };
    } catch {
      // No bundle yet, or an unreadable one: build it.
    }
    const built = await build(entry);
    if (built === undefined) return undefined;
    await mkdir(dir, { recursive: true });
    await prune(dir);
    // Written under a private name and renamed, so that a concurrent run never loads half a file.
    const suffix = `.${process.pid}.${Math.random().toString(36).slice(2)}`;
    await writeFile(file + suffix, built.code);
    await rename(file + suffix, file);
    await writeFile(index + suffix, JSON.stringify(built.inputs));
    await rename(index + suffix, index);
    return { url: pathToFileURL(file), origin: 'built' };
  } catch {
    return undefined;
  }
}

/** Bundles go after a week unused (each model file a run names leaves one of a few hundred kB). */
const KEEP_MS = 7 * 24 * 3600 * 1000;

async function prune(dir: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    try {
      if (now - (await stat(path)).atimeMs > KEEP_MS) await rm(path, { force: true });
    } catch {
      // Gone already (another run pruned it).
    }
  }
}

async function build(entry: string): Promise<{ code: string; inputs: Inputs } | undefined> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    return undefined;
  }
  /** The package files the bundle imports by path: a reinstalled package rebuilds it too. */
  const packages = new Set<string>();
  const result = await esbuild.build({
    stdin: { contents: entry, resolveDir: process.cwd(), loader: 'js', sourcefile: 'interleave-worker-entry.js' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    write: false,
    metafile: true,
    logLevel: 'silent',
    // Node's own resolution: no bundler-only `module` condition or main field.
    conditions: [],
    mainFields: ['main'],
    plugins: [
      {
        name: 'interleave-packages-by-path',
        setup(b) {
          // A model may import the checker by file URL, which Node takes and esbuild does not.
          b.onResolve({ filter: /^file:/ }, (a) => ({ path: fileURLToPath(a.path) }));
          b.onResolve({ filter: /^[^./]/ }, async (a) => {
            if (a.pluginData === 'resolving' || a.path.startsWith('node:') || a.path.startsWith('file:')) return undefined;
            const r = await b.resolve(a.path, { kind: a.kind, resolveDir: a.resolveDir, pluginData: 'resolving' });
            if (r.errors.length > 0) return { errors: r.errors };
            // A package's file stays outside; anything else a bare name resolves to (an alias) is bundled.
            if (!r.path.includes('/node_modules/') || r.external) return undefined;
            packages.add(r.path);
            return { path: r.path, external: true };
          });
        },
      },
      {
        name: 'interleave-own-import-meta-url',
        setup(b) {
          b.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, async (a) => {
            if (a.path.includes('/node_modules/')) return undefined;
            const text = await readFile(a.path, 'utf8');
            if (!text.includes('import.meta.url')) return undefined;
            const loader = /\.[cm]?tsx?$/.test(a.path) ? (a.path.endsWith('x') ? 'tsx' : 'ts') : a.path.endsWith('x') ? 'jsx' : 'js';
            return { contents: text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(a.path).href)), loader };
          });
        },
      },
    ],
  });
  const inputs: Inputs = {};
  const files = Object.keys(result.metafile.inputs)
    .filter((rel) => !rel.startsWith('<stdin>') && !rel.includes('interleave-worker-entry'))
    .map((rel) => resolve(process.cwd(), rel));
  for (const path of [...files, ...packages]) {
    const s = await stat(path);
    inputs[path] = [s.size, s.mtimeMs];
  }
  return { code: result.outputFiles[0].text, inputs };
}
