/** `interleave prove`: runs the parametric Z3 proofs (proofs/) and prints each result with its seconds. */
import { type ProofRun, allProofs, proofProtocols, runProof } from '../../proofs/index.ts';
import type { Proof } from '../../proofs/types.ts';
import { shutdownZ3 } from '../../proofs/engine/z3.ts';
import { formatTrace, traceToJson } from '../trace.ts';
import { EXIT_OK, EXIT_VIOLATED, UsageError } from './errors.ts';
import { numberFlag, parseFlags } from './options.ts';
import { renderTable } from './table.ts';

export const proveHelp = `interleave prove [PROTOCOL[:PROOF]...] [options]
  Z3 proofs for every parameter value (BMC, k-induction, validity queries); none named: every proof
  --json              print {"proofs":[...]} instead of the table
  --timeout S         per Z3 query, in seconds (default 10); a query that times out gives 'unknown'
  --quiet             no progress on stderr`;

/** The proofs named on the command line (all when none). */
export function selectProofs(names: readonly string[]): Proof[] {
  if (names.length === 0) return [...allProofs];
  const out: Proof[] = [];
  for (const n of names) {
    const [protocol, name] = n.split(':', 2);
    if (!proofProtocols.includes(protocol)) {
      throw new UsageError(`prove: unknown protocol '${protocol}' (protocols with proofs: ${proofProtocols.join(', ')})`);
    }
    const mine = allProofs.filter((p) => p.protocol === protocol && (name === undefined || p.name === name));
    if (mine.length === 0) {
      const names = allProofs.filter((p) => p.protocol === protocol).map((p) => p.name);
      throw new UsageError(`prove: ${protocol} has no proof '${name}' (its proofs: ${names.join(', ')})`);
    }
    for (const p of mine) if (!out.includes(p)) out.push(p);
  }
  return out;
}

export async function proveCommand(argv: string[]): Promise<number> {
  try {
    return await runProve(argv);
  } finally {
    // z3-solver's worker threads keep the process alive until stopped.
    await shutdownZ3();
  }
}

/** The command without stopping Z3 afterwards (for callers that run it more than once in a process). */
export async function runProve(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('prove', argv, {
    json: { type: 'boolean' },
    timeout: { type: 'string' },
    quiet: { type: 'boolean' },
  });
  const timeout = numberFlag('timeout', values.timeout);
  const proofs = selectProofs(positionals);
  const runs: ProofRun[] = [];
  for (const proof of proofs) {
    if (!values.quiet) process.stderr.write(`proving ${proof.protocol}:${proof.name} ...\n`);
    runs.push(await runProof(proof, timeout !== undefined ? { timeoutMs: timeout * 1000 } : {}));
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ proofs: runs.map(toJson) }, null, 2)}\n`);
  else process.stdout.write(`${formatRuns(runs)}\n`);
  return runs.every((r) => r.asExpected) ? EXIT_OK : EXIT_VIOLATED;
}

function toJson(r: ProofRun) {
  return {
    protocol: r.proof.protocol,
    name: r.proof.name,
    result: r.outcome.result,
    seconds: Number(r.seconds.toFixed(3)),
    trace: r.outcome.trace ? traceToJson(r.outcome.trace, true) : null,
    expected: r.proof.expectation,
    asExpected: r.asExpected,
    claim: r.proof.claim,
    range: r.proof.range,
    variants: r.proof.variants,
    detail: r.outcome.detail,
  };
}

export function formatRuns(runs: readonly ProofRun[]): string {
  const rows = runs.map((r) => [
    r.proof.protocol,
    r.proof.name,
    r.proof.expectation,
    r.outcome.result,
    r.seconds.toFixed(2),
    r.asExpected ? 'ok' : 'UNEXPECTED',
  ]);
  const parts = [renderTable(['protocol', 'proof', 'expected', 'result', 'seconds', ''], rows)];
  for (const r of runs) {
    const t = r.outcome.trace;
    if (!t && r.asExpected) continue;
    const kind = r.outcome.result === 'violated' ? 'counterexample' : r.outcome.result === 'proved' ? 'witness' : 'unknown';
    parts.push(`\n${r.proof.protocol}:${r.proof.name} (${kind}): ${r.outcome.detail}`);
    if (t) parts.push(formatTrace(t));
  }
  const bad = runs.filter((r) => !r.asExpected).length;
  const total = runs.reduce((s, r) => s + r.seconds, 0);
  parts.push(`\n${runs.length - bad} as expected, ${bad} unexpected, ${total.toFixed(1)} s`);
  return parts.join('\n');
}
