/**
 * Where a system comes from, said in plain data that can cross to a worker thread (a System holds functions,
 * which cannot): a module and the export that is (or builds) the system, or a built-in protocol's variant.
 * The coordinator and every worker load the system from the same source, so they agree on its action
 * instances (ids) and initial states.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { builtinProtocols } from '../../spec/index.ts';
import type { Data } from '../data.ts';
import { type Protocol, isProtocol } from '../registry.ts';
import type { System } from '../system.ts';

/**
 * A module that exports a system, a function that builds one (called with `args`), or a protocol (then
 * `variant`, and optionally the configuration's name, pick the system). `module` is a file URL or a path
 * (relative to the working directory); `export` defaults to `default`, then `protocol`, then `system`, as
 * `interleave check path.ts` does.
 */
export interface ModuleSource {
  readonly module: string;
  readonly export?: string;
  readonly args?: readonly Data[];
  readonly variant?: string;
  readonly config?: string;
}

/** A built-in protocol's variant (`interleave check protocol:variant [--config NAME]`). */
export interface ProtocolSource {
  readonly protocol: string;
  readonly variant: string;
  readonly config?: string;
}

export type SystemSource = ModuleSource | ProtocolSource;

/** The source could not be loaded or does not give a system. */
export class SourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceError';
  }
}

function isSystem(x: unknown): x is System<unknown> {
  return typeof x === 'object' && x !== null && 'instances' in x && 'inits' in x && 'spec' in x;
}

/** The protocol's variant built with its configuration, as `interleave check` picks it. */
function fromProtocol(p: Protocol, variant: string | undefined, config: string | undefined, where: string): System<unknown> {
  if (variant === undefined) {
    throw new SourceError(`${where} is a protocol: name one of its variants (${p.variants.map((v) => v.name).join(', ')})`);
  }
  const v = p.variants.find((x) => x.name === variant);
  if (!v) throw new SourceError(`protocol '${p.name}' has no variant '${variant}' (variants: ${p.variants.map((x) => x.name).join(', ')})`);
  if (config !== undefined && !(config in p.configs)) {
    throw new SourceError(`protocol '${p.name}' has no configuration '${config}' (configurations: ${Object.keys(p.configs).join(', ')})`);
  }
  return v.build(config !== undefined ? p.configs[config] : (v.config ?? p.configs.check));
}

/** Modules a bundled worker carries (bundle.ts), by file URL: loadSystem takes them instead of importing. */
const preloaded = new Map<string, Record<string, unknown>>();

/** Hands loadSystem a module already loaded under `url` (a bundled worker's entry does this for its model). */
export function preload(url: string, module: Record<string, unknown>): void {
  preloaded.set(url, module);
}

/** Loads the system a source names. Throws SourceError when it cannot (and ModelError for a malformed model). */
export async function loadSystem(source: SystemSource): Promise<System<unknown>> {
  if (typeof source !== 'object' || source === null) throw new SourceError('a system source must be an object');
  if ('protocol' in source) {
    const entry = builtinProtocols.find((p) => p.name === source.protocol);
    if (!entry) {
      throw new SourceError(`unknown protocol '${source.protocol}' (built-in: ${builtinProtocols.map((p) => p.name).join(', ')})`);
    }
    let p: Protocol;
    try {
      p = await entry.load();
    } catch (e) {
      throw new SourceError(`built-in protocol '${source.protocol}' failed to load: ${firstLine(e)}`);
    }
    return fromProtocol(p, source.variant, source.config, `protocol '${p.name}'`);
  }
  if (typeof source.module !== 'string' || source.module === '') throw new SourceError('a module source needs `module` (a file URL or path)');
  const url = /^file:/.test(source.module) ? source.module : pathToFileURL(resolve(source.module)).href;
  const mod = preloaded.get(url) ?? (await importModule(url, source.module));
  const pick = (m: Record<string, unknown>) =>
    source.export !== undefined ? m[source.export] : (m.default ?? m.protocol ?? m.system);
  let value = pick(mod);
  // A file loaded as CommonJS arrives with its ESM exports one level down.
  if (!isProtocol(value) && !isSystem(value) && typeof value !== 'function' && typeof mod.default === 'object' && mod.default !== null) {
    const inner = pick(mod.default as Record<string, unknown>);
    if (inner !== undefined) value = inner;
  }
  const where = `module '${source.module}'${source.export !== undefined ? ` export '${source.export}'` : ''}`;
  if (value === undefined) throw new SourceError(`${where}: no such export`);
  if (typeof value === 'function') {
    try {
      value = await (value as (...a: unknown[]) => unknown)(...(source.args ?? []));
    } catch (e) {
      if (e instanceof Error && e.name === 'ModelError') throw e;
      throw new SourceError(`${where} threw when called: ${firstLine(e)}`);
    }
  } else if (source.args !== undefined && source.args.length > 0) {
    throw new SourceError(`${where} is not a function: it takes no args`);
  }
  if (isSystem(value)) return value;
  if (isProtocol(value)) return fromProtocol(value, source.variant, source.config, where);
  throw new SourceError(`${where} is not a system from defineSystem(...), a function returning one, or a protocol`);
}

async function importModule(url: string, named: string): Promise<Record<string, unknown>> {
  try {
    // A plain import shares the module (and everything it imports) with what this thread already loaded: the
    // CLI, a test run and a worker all have TypeScript loading set up. Where that fails (no loader, or a .ts
    // file outside an ESM package, which a plain import takes for CommonJS), load it as the CLI loads model
    // files: tsx's tsImport, as ESM wherever the file lives.
    return (await import(url)) as Record<string, unknown>;
  } catch (first) {
    try {
      const { tsImport } = await import('tsx/esm/api');
      return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
    } catch (e) {
      throw new SourceError(`module '${named}' does not load: ${firstLine(e ?? first)}`);
    }
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
