/**
 * Vitest helpers: check a model inside a user's own test suite.
 *
 *   import { describe, expect, it } from 'vitest';
 *   import { checkModel, variantOf } from 'interleave/vitest';   // also registers the matchers
 *   import kv from './kv-double-buffer.ts';
 *
 *   it('the fixed design holds', () => expect(variantOf(kv, 'fixed')).toHold());
 *   it('the old design loses data', () => expect(variantOf(kv, 'buggy')).toViolate('kvIntact'));
 *   it('every variant gets its expected verdict', () => expect(kv).toMeetExpectations());
 *   it('by hand', () => expect(checkModel(variantOf(kv, 'fixed')).verdict).toBe('holds'));
 *
 * A failing matcher prints the counterexample the way `interleave check` does.
 */
import { expect } from 'vitest';
import { type CheckOptions, type CheckResult, check } from './explorer.ts';
import { type Protocol, formatExpectation, isProtocol } from './registry.ts';
import { ModelError, type System } from './system.ts';
import { formatTrace } from './trace.ts';

export type { CheckOptions, CheckResult } from './explorer.ts';

function isSystem(x: unknown): x is System<unknown> {
  return typeof x === 'object' && x !== null && 'instances' in x && 'inits' in x && 'spec' in x;
}

function isResult(x: unknown): x is CheckResult {
  return typeof x === 'object' && x !== null && 'verdict' in x && 'stats' in x;
}

/** Explores every interleaving of a system (breadth-first, shortest counterexample) and returns the result. */
export function checkModel<S>(system: System<S>, options: CheckOptions = {}): CheckResult {
  if (!isSystem(system)) throw new TypeError('checkModel expects a system from defineSystem(...)');
  return check(system, options);
}

/** The system of one variant of a protocol, built with its own (or the named) configuration. */
export function variantOf(protocol: Protocol, variant: string, configName?: string): System<any> {
  const v = protocol.variants.find((x) => x.name === variant);
  if (!v) throw new Error(`protocol '${protocol.name}' has no variant '${variant}' (variants: ${protocol.variants.map((x) => x.name).join(', ')})`);
  if (configName !== undefined && !(configName in protocol.configs)) {
    throw new Error(`protocol '${protocol.name}' has no configuration '${configName}' (configurations: ${Object.keys(protocol.configs).join(', ')})`);
  }
  const config = configName !== undefined ? protocol.configs[configName] : (v.config ?? protocol.configs.check);
  return v.build(config);
}

/** A check result as text: the verdict, and the counterexample as `interleave check` prints it. */
export function explainResult(result: CheckResult, name = 'the model'): string {
  const stats = `${result.stats.states} states, depth ${result.stats.depth}`;
  switch (result.verdict) {
    case 'holds':
      return `${name} holds (${stats})`;
    case 'incomplete':
      return `${name}: the search is incomplete (${result.reason}; ${stats}): nothing was proved`;
    case 'error':
      return `${name}: model error: ${result.message}`;
    default: {
      const lines = [`${name}: ${result.message ?? `property '${result.property}' is violated`} (${stats})`];
      if (result.stuck && result.stuck.length > 0) lines.push(`  blocked:\n${result.stuck.map((l) => `    - ${l}`).join('\n')}`);
      if (result.trace) lines.push(formatTrace(result.trace));
      return lines.join('\n');
    }
  }
}

function resultOf(received: unknown, options: CheckOptions | undefined, matcher: string): { result: CheckResult; name: string } {
  if (isResult(received)) return { result: received, name: 'the model' };
  if (isSystem(received)) {
    try {
      return { result: check(received, options ?? {}), name: `system '${received.name}'` };
    } catch (e) {
      if (e instanceof ModelError) {
        return { result: { verdict: 'error', message: e.message, stats: { states: 0, transitions: 0, depth: 0, seconds: 0, statesPerSecond: 0, bytesPerState: 0, peakRssMB: 0 } }, name: `system '${received.name}'` };
      }
      throw e;
    }
  }
  throw new TypeError(`${matcher} expects a system (defineSystem(...)) or a check result (checkModel(...)), got ${received === null ? 'null' : typeof received}`);
}

interface MatcherContext {
  readonly isNot: boolean;
}

export const interleaveMatchers = {
  /** Passes when the system holds: every property, no deadlock, the whole state space explored. */
  toHold(this: MatcherContext, received: unknown, options?: CheckOptions) {
    const { result, name } = resultOf(received, options, 'toHold');
    const pass = result.verdict === 'holds';
    return {
      pass,
      message: () =>
        pass
          ? `expected ${name} not to hold, but it holds (${result.stats.states} states explored)`
          : `expected ${name} to hold, but:\n${explainResult(result, name)}`,
      actual: result.verdict,
      expected: 'holds',
    };
  },

  /** Passes when the system fails; with a property name, when that property is the one that fails. */
  toViolate(this: MatcherContext, received: unknown, property?: string, options?: CheckOptions) {
    const { result, name } = resultOf(received, options, 'toViolate');
    const pass = result.verdict === 'violated' && (property === undefined || result.property === property);
    const what = property === undefined ? 'a property' : `'${property}'`;
    return {
      pass,
      message: () => {
        if (pass) return `expected ${name} not to violate ${what}, but it does:\n${explainResult(result, name)}`;
        if (result.verdict === 'violated') return `expected ${name} to violate ${what}, but '${result.property}' fails instead:\n${explainResult(result, name)}`;
        return `expected ${name} to violate ${what}, but:\n${explainResult(result, name)}`;
      },
      actual: result.verdict === 'violated' ? `violated:${result.property}` : result.verdict,
      expected: property === undefined ? 'violated' : `violated:${property}`,
    };
  },

  /** Passes when every variant of a protocol gets the verdict it declares (`expect`). */
  toMeetExpectations(this: MatcherContext, received: unknown, options?: CheckOptions & { readonly config?: string }) {
    if (!isProtocol(received)) throw new TypeError('toMeetExpectations expects a protocol (defineProtocol(...))');
    const { config, ...checkOptions } = options ?? {};
    const rows = received.variants.map((v) => {
      let result: CheckResult;
      try {
        result = check(variantOf(received, v.name, config), checkOptions);
      } catch (e) {
        if (!(e instanceof ModelError)) throw e;
        result = { verdict: 'error', message: e.message, stats: { states: 0, transitions: 0, depth: 0, seconds: 0, statesPerSecond: 0, bytesPerState: 0, peakRssMB: 0 } };
      }
      const exp = v.expect;
      const ok =
        exp.verdict === 'holds'
          ? result.verdict === 'holds' && (exp.states === undefined || exp.states === result.stats.states)
          : result.verdict === 'violated' && result.property === exp.property;
      return { variant: v.name, expected: formatExpectation(exp), result, ok };
    });
    const bad = rows.filter((r) => !r.ok);
    const got = (r: CheckResult) => (r.verdict === 'violated' ? `violated:${r.property}` : r.verdict === 'holds' ? `holds(${r.stats.states} states)` : r.verdict);
    return {
      pass: bad.length === 0,
      message: () =>
        bad.length === 0
          ? `expected some variant of '${received.name}' to miss its expectation, but all ${rows.length} meet it`
          : `expected every variant of '${received.name}' to meet its expectation, but ${bad.length} do not:\n` +
            bad.map((r) => `- ${r.variant}: expected ${r.expected}, got ${got(r.result)}\n${explainResult(r.result, `${received.name}:${r.variant}`)}`).join('\n'),
      actual: Object.fromEntries(rows.map((r) => [r.variant, got(r.result)])),
      expected: Object.fromEntries(rows.map((r) => [r.variant, r.expected])),
    };
  },
};

interface InterleaveMatchers<R = unknown> {
  /** The system holds: every property, no deadlock, the whole state space explored. */
  toHold: (options?: CheckOptions) => R;
  /** The system fails (the named property, when given); prints the counterexample otherwise. */
  toViolate: (property?: string, options?: CheckOptions) => R;
  /** Every variant of the protocol gets the verdict it declares. */
  toMeetExpectations: (options?: CheckOptions & { readonly config?: string }) => R;
}

declare module 'vitest' {
  interface Matchers<T = any> extends InterleaveMatchers<T> {}
}

expect.extend(interleaveMatchers);
