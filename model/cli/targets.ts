/**
 * Resolves CLI targets (`protocol`, `protocol:variant`, or a path to a user's `.ts` model file, optionally
 * `path.ts:variant`) into checkable units, each with the verdict it is expected to get.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import { builtinProtocols } from '../../spec/index.ts';
import { type Expectation, type Protocol, isProtocol } from '../registry.ts';
import type { System } from '../system.ts';
import { UsageError } from './errors.ts';

export interface Target {
  readonly protocol: string;
  readonly variant: string;
  readonly summary: string;
  /** A user's plain system is expected to hold. */
  readonly expected: Expectation;
  /** What `check --liveness-only` expects: the liveness property the variant breaks, or holds. */
  readonly expectedLiveness: Expectation;
  /** Builds the system; may throw a ModelError (reported as an `error` verdict). */
  readonly build: () => System<any>;
}

export async function loadBuiltin(name: string): Promise<Protocol> {
  const entry = builtinProtocols.find((p) => p.name === name);
  if (!entry) throw new UsageError(`unknown protocol '${name}' (built-in: ${builtinProtocols.map((p) => p.name).join(', ')})`);
  try {
    return await entry.load();
  } catch (e) {
    throw new UsageError(`built-in protocol '${name}' failed to load: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export async function allBuiltins(): Promise<Protocol[]> {
  const out: Protocol[] = [];
  for (const p of builtinProtocols) out.push(await loadBuiltin(p.name));
  return out;
}

export function protocolTargets(p: Protocol, variant?: string, configName?: string): Target[] {
  const variants = variant === undefined ? p.variants : p.variants.filter((v) => v.name === variant);
  if (variants.length === 0) {
    throw new UsageError(`protocol '${p.name}' has no variant '${variant}' (variants: ${p.variants.map((v) => v.name).join(', ')})`);
  }
  if (configName !== undefined && !(configName in p.configs)) {
    throw new UsageError(`protocol '${p.name}' has no configuration '${configName}' (configurations: ${Object.keys(p.configs).join(', ')})`);
  }
  return variants.map((v) => {
    const config = configName !== undefined ? p.configs[configName] : (v.config ?? p.configs.check);
    const expectedLiveness: Expectation = v.expectLiveness ? { verdict: 'violated', property: v.expectLiveness } : { verdict: 'holds' };
    return { protocol: p.name, variant: v.name, summary: v.summary, expected: v.expect, expectedLiveness, build: () => v.build(config) };
  });
}

function looksLikePath(t: string): boolean {
  return /\.(m?ts|m?js)(:[^/\\]*)?$/.test(t) || t.includes('/') || t.startsWith('.');
}

async function loadModelFile(path: string): Promise<Record<string, unknown>> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new UsageError(`model file '${path}' does not exist`);
  try {
    // tsImport loads the file as ESM wherever it lives: a plain import would treat a .ts file outside an ESM
    // package (no "type": "module" above it) as CommonJS and fail on its imports.
    return (await tsImport(pathToFileURL(abs).href, import.meta.url)) as Record<string, unknown>;
  } catch (e) {
    const first = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    throw new UsageError(`model file '${path}' does not load: ${first}`);
  }
}

function isSystem(x: unknown): x is System<unknown> {
  return typeof x === 'object' && x !== null && 'instances' in x && 'inits' in x && 'spec' in x;
}

export async function resolveTarget(raw: string, configName?: string): Promise<Target[]> {
  if (looksLikePath(raw)) {
    const m = /^(.*\.(?:m?ts|m?js)):([^/\\]+)$/.exec(raw);
    const [path, variant] = m ? [m[1], m[2]] : [raw, undefined];
    const mod = await loadModelFile(path);
    let exported = mod.default ?? mod.protocol ?? mod.system;
    // A file loaded as CommonJS arrives with its ESM exports one level down.
    if (!isProtocol(exported) && !isSystem(exported) && typeof exported === 'object' && exported !== null && 'default' in exported) {
      exported = (exported as { default: unknown }).default;
    }
    if (isProtocol(exported)) return protocolTargets(exported, variant, configName);
    if (isSystem(exported)) {
      if (variant !== undefined) throw new UsageError(`model file '${path}' exports one system, not a protocol with variants: drop ':${variant}'`);
      const holds: Expectation = { verdict: 'holds' };
      return [{ protocol: path, variant: exported.name, summary: 'user model', expected: holds, expectedLiveness: holds, build: () => exported }];
    }
    throw new UsageError(
      `model file '${path}' must export (as default) a system from defineSystem(...) or a protocol from defineProtocol(...)`,
    );
  }
  const [name, variant, extra] = raw.split(':');
  if (extra !== undefined || name === '') throw new UsageError(`malformed target '${raw}' (expected protocol, protocol:variant or a .ts file)`);
  return protocolTargets(await loadBuiltin(name), variant, configName);
}
