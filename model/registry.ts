/**
 * Protocols as the CLI sees them: a named protocol with configurations and variants (the fixed design and
 * each known bug), every variant declaring the verdict it is expected to get.
 */
import type { System } from './system.ts';

/** What a variant is expected to get: `holds`, or `violated` naming the property that fails. */
export type Expectation =
  | { readonly verdict: 'holds'; readonly states?: number }
  | { readonly verdict: 'violated'; readonly property: string };

export interface Variant<C> {
  readonly name: string;
  /** One sentence: which design or which bug of the brief this is. */
  readonly summary: string;
  readonly expect: Expectation;
  readonly build: (config: C) => System<any>;
  /** The configuration `interleave check` uses for this variant, when not the protocol's `check` one. */
  readonly config?: C;
  /**
   * The liveness property this variant breaks (a hang, a spin that never ends), when checked on its own:
   * `interleave check --liveness-only` leaves out the safety properties and the deadlock check, so the hang
   * shows as the liveness failure it is, a lasso. Absent: every liveness property holds.
   */
  readonly expectLiveness?: string;
}

export interface Protocol<C = any> {
  readonly name: string;
  readonly summary: string;
  /** Named configurations; `check` is what `interleave check` explores, `pr` holds the PR's own numbers. */
  readonly configs: { readonly check: C } & { readonly [name: string]: C };
  readonly variants: readonly Variant<C>[];
}

export function defineProtocol<C>(p: Protocol<C>): Protocol<C> {
  const names = new Set<string>();
  for (const v of p.variants) {
    if (names.has(v.name)) throw new Error(`protocol '${p.name}': duplicate variant '${v.name}'`);
    names.add(v.name);
  }
  return p;
}

export function isProtocol(x: unknown): x is Protocol {
  return (
    typeof x === 'object' && x !== null && 'variants' in x && Array.isArray((x as Protocol).variants) && 'configs' in x
  );
}

export function formatExpectation(e: Expectation): string {
  if (e.verdict === 'violated') return `violated:${e.property}`;
  return e.states === undefined ? 'holds' : `holds(${e.states} states)`;
}
