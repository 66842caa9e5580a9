/**
 * The registry of parametric proofs (one list per protocol) and the runner every caller uses: proofs run
 * one after another in the one Z3 context, each timed, a thrown error reported as 'unknown' (never proved).
 */
import { dpPaddingProofs } from './dp-padding.ts';
import { DEFAULT_TIMEOUT_MS } from './engine/check.ts';
import { serial, Z3Unresponsive } from './engine/z3.ts';
import { eplbAsyncRebalanceProofs } from './eplb-async-rebalance.ts';
import { eplbStagedTransferProofs } from './eplb-staged-transfer.ts';
import { overlapLinearProofs } from './overlap-linear.ts';
import { ppAsyncP2pProofs } from './pp-async-p2p.ts';
import type { Proof, ProofOptions, ProofOutcome } from './types.ts';

export type { Proof, ProofOptions, ProofOutcome } from './types.ts';

export const allProofs: readonly Proof[] = [
  ...ppAsyncP2pProofs,
  ...eplbStagedTransferProofs,
  ...overlapLinearProofs,
  ...dpPaddingProofs,
  ...eplbAsyncRebalanceProofs,
];

/** Protocol names that have proofs, in registry order. */
export const proofProtocols: readonly string[] = [...new Set(allProofs.map((p) => p.protocol))];

export function proofsFor(protocol: string): readonly Proof[] {
  return allProofs.filter((p) => p.protocol === protocol);
}

export interface ProofRun {
  readonly proof: Proof;
  readonly outcome: ProofOutcome;
  readonly seconds: number;
  /** The result is the proof's expectation. */
  readonly asExpected: boolean;
}

export async function runProof(proof: Proof, opts: Partial<ProofOptions> = {}): Promise<ProofRun> {
  const options: ProofOptions = { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS };
  const t0 = performance.now();
  let outcome: ProofOutcome;
  try {
    // A proof whose Z3 stopped answering runs once more on a fresh module (z3() starts one): its queries are
    // deterministic, so the second run's answer is the proof's.
    outcome = await serial(() => proof.run(options)).catch((e: unknown) => {
      if (e instanceof Z3Unresponsive) return serial(() => proof.run(options));
      throw e;
    });
  } catch (e) {
    outcome = { result: 'unknown', detail: `error: ${e instanceof Error ? e.message : String(e)}` };
  }
  const seconds = (performance.now() - t0) / 1000;
  return { proof, outcome, seconds, asExpected: outcome.result === proof.expectation };
}
