/** What a named proof is, what running it gives, and small helpers the protocol proofs share. */
import type { Data } from '../model/data.ts';
import { type Trace, buildTrace } from '../model/trace.ts';
import type { BmcResult, KInductionResult, ValidityResult, Verdict } from './engine/check.ts';

export interface ProofOptions {
  /** Per Z3 query, in milliseconds. */
  readonly timeoutMs: number;
}

export interface ProofOutcome {
  readonly result: Verdict;
  /** A counterexample (violated) or a witness the proof exhibits (e.g. the tiny last chunk). */
  readonly trace?: Trace;
  /** How it was decided: 'k-induction, k = 1', '128 validity queries', or why it is unknown. */
  readonly detail: string;
}

export interface Proof {
  readonly protocol: string;
  readonly name: string;
  /** The claim in one sentence. */
  readonly claim: string;
  /** The parameter range the claim covers ('every n >= 1', 'dp 1..64, every count vector'). */
  readonly range: string;
  /** The protocol variants the claim is about. */
  readonly variants: readonly string[];
  readonly expectation: 'proved' | 'violated';
  run(opts: ProofOptions): Promise<ProofOutcome>;
}

/** Merges the outcomes of several queries making up one proof: any violated wins, then any unknown. */
export function combine(parts: readonly ProofOutcome[], detail: string): ProofOutcome {
  const bad = parts.find((p) => p.result === 'violated');
  if (bad) return { ...bad, detail: `${detail}: ${bad.detail}` };
  const unk = parts.find((p) => p.result === 'unknown');
  if (unk) return { ...unk, detail: `${detail}: ${unk.detail}` };
  const witness = parts.find((p) => p.trace !== undefined)?.trace;
  return { result: 'proved', detail, ...(witness ? { trace: witness } : {}) };
}

/** A validity query's outcome; `explain` turns a counterexample model into a trace. */
export function fromValidity(r: ValidityResult, what: string, explain?: (model: any) => Trace): ProofOutcome {
  if (r.result === 'proved') return { result: 'proved', detail: what };
  if (r.result === 'unknown') return { result: 'unknown', detail: `${what}: ${r.reason ?? 'unknown'}` };
  return { result: 'violated', detail: `${what}: counterexample`, ...(explain && r.model ? { trace: explain(r.model) } : {}) };
}

export function fromInduction(r: KInductionResult, what: string): ProofOutcome {
  if (r.result === 'proved') return { result: 'proved', detail: `${what}: k-induction, k = ${r.k}` };
  if (r.result === 'violated')
    return { result: 'violated', detail: `${what}: ${r.properties.join(', ')} violated after ${r.depth} steps`, trace: r.trace };
  return { result: 'unknown', detail: `${what}: ${r.reason}` };
}

export function fromBmc(r: BmcResult, what: string): ProofOutcome {
  if (r.result === 'violated')
    return { result: 'violated', detail: `${what}: ${r.properties.join(', ')} violated after ${r.depth} steps (BMC)`, trace: r.trace };
  if (r.result === 'unknown') return { result: 'unknown', detail: `${what}: ${r.reason}` };
  // No violation up to the bound is no proof: a BMC-only claim of violation that finds none is unknown.
  return { result: 'unknown', detail: `${what}: no violation within ${r.depth} steps (BMC bound, not a proof)` };
}

/** A trace from an initial state and named steps (for validity-query counterexamples and witnesses). */
export function stepsTrace(initial: Data, steps: readonly { action: string; params?: Record<string, Data>; actor?: string; state: Data }[]): Trace {
  return buildTrace(
    initial,
    steps.map((s) => ({
      label: { action: s.action, params: s.params ?? {}, ...(s.actor !== undefined ? { actor: s.actor } : {}) },
      state: s.state,
    })),
  );
}
