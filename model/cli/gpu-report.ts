/**
 * `interleave gpu-report`: the models' verdicts next to what the H100 showed. Reads the committed evidence
 * (kernels/evidence/), re-runs the checker on each variant, and decides agreement:
 *   model violated  and the GPU failed in >= 95% of the trials that replayed the counterexample's schedule;
 *   model holds     and the GPU never failed, with and without random injected delays.
 * Each variant's recorded sample run is validated against its model (a fixed variant's run must be accepted
 * wherever the emulation logs steps the model has). It also re-checks the recorded float32 outputs against the ONNX oracle (relative error <= 1e-5).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ORACLE_TOLERANCE, type RecordedOutput, checkOutput } from '../../kernels/gpu/oracle.ts';
import type { System } from '../system.ts';
import { type TraceEvent, validateEvents } from '../validate/index.ts';
import { runTarget } from './check.ts';
import { EXIT_OK, EXIT_VIOLATED, UsageError } from './errors.ts';
import { parseFlags } from './options.ts';
import { renderTable } from './table.ts';
import { loadBuiltin, protocolTargets } from './targets.ts';

export const gpuReportHelp = `interleave gpu-report [--json] [--evidence DIR]
  the models' verdicts beside the GPU's observations (default evidence: kernels/evidence)`;

/** A buggy variant's replayed schedule must fail at least this often on the GPU. */
export const REPLAY_FAILURE_RATE = 0.95;

interface EvidenceRow {
  protocol: string;
  variant: string;
  buggy: boolean;
  note?: string;
  trials: number;
  failures: number;
  modes: Record<string, { trials: number; failures: number; outcomes: Record<string, number> }>;
  sanitizer?: { races?: number; exit?: number; error?: string };
}

export interface ReportRow {
  protocol: string;
  variant: string;
  model: string;
  gpu: string;
  trials: number;
  failures: number;
  sanitizerRaces: number | null;
  agree: boolean;
  /** The recorded sample run validated against the variant's model: accepted, rejected, or not comparable. */
  trace: string;
}

/** The harness logs Python-style names; the kit's actions are camel-cased and its actors carry the rank. */
const HARNESS_ACTIONS: Readonly<Record<string, string>> = {
  wait_event: 'waitEvent',
  record_stream: 'recordStream',
  cpu_read: 'cpuRead',
  use_plan: 'usePlan',
};

interface HarnessEvent {
  case: string;
  rank: number;
  actor: string;
  action: string;
  time?: number;
}

function readTraces(path: string): Map<string, HarnessEvent[]> {
  const byCase = new Map<string, HarnessEvent[]>();
  if (!existsSync(path)) return byCase;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const e = JSON.parse(line) as HarnessEvent;
    if (!byCase.has(e.case)) byCase.set(e.case, []);
    byCase.get(e.case)!.push(e);
  }
  return byCase;
}

/** Validates a recorded run against the model; unlogged model steps (device ops, bookkeeping) are searched. */
function validateRecorded(system: System<unknown>, recorded: readonly HarnessEvent[] | undefined): string {
  if (!recorded || recorded.length === 0) return 'no trace';
  const events: TraceEvent[] = recorded.map((e, i) => ({
    line: i + 1,
    action: HARNESS_ACTIONS[e.action] ?? e.action,
    actor: `rank ${e.rank} ${e.actor}`,
    rank: e.rank,
  }));
  try {
    const r = validateEvents(system, events, { maxGap: 12, maxStates: 100_000 });
    return r.verdict === 'accepted' ? `accepted (${events.length} events)` : `rejected at event ${(r.rejection?.index ?? 0) + 1}`;
  } catch (e) {
    // The single-GPU emulation logs steps the model names differently (or does not have): say so.
    return `not comparable: ${(e as Error).message.split('\n')[0].slice(0, 90)}`;
  }
}

function readJson<T>(path: string): T {
  if (!existsSync(path)) throw new UsageError(`evidence file '${path}' is missing (regenerate it on a GPU machine: see README)`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new UsageError(`evidence file '${path}' is not valid JSON: ${(e as Error).message}`);
  }
}

/** What the GPU showed: `fails` (replayed failure rate >= 95%), `clean` (no failure), else `flaky`. */
export function gpuObservation(row: EvidenceRow): string {
  if (row.failures === 0) return 'clean';
  return row.failures / row.trials >= REPLAY_FAILURE_RATE ? 'fails' : `flaky (${row.failures}/${row.trials})`;
}

export async function buildGpuReport(dir: string): Promise<{ rows: ReportRow[]; oracle: Awaited<ReturnType<typeof checkOutput>>[]; meta: unknown }> {
  const evidence = readJson<{ meta: unknown; rows: EvidenceRow[] }>(join(dir, 'evidence.json'));
  if (!Array.isArray(evidence.rows)) throw new UsageError(`evidence file '${join(dir, 'evidence.json')}' has no "rows" list`);
  const rows: ReportRow[] = [];
  const traces = readTraces(join(dir, 'traces.jsonl'));
  for (const e of evidence.rows) {
    let model: string;
    let trace = 'no model';
    try {
      const [target] = protocolTargets(await loadBuiltin(e.protocol), e.variant);
      const r = runTarget(target, { timeLimit: 60 }).result;
      model = r.verdict === 'violated' ? `violated:${r.property}` : r.verdict;
      trace = validateRecorded(target.build(), traces.get(`${e.protocol}:${e.variant}`));
    } catch (err) {
      model = `unknown (${(err as Error).message})`;
    }
    const gpu = gpuObservation(e);
    const agree = (model.startsWith('violated') && gpu === 'fails') || (model === 'holds' && gpu === 'clean');
    rows.push({
      protocol: e.protocol,
      variant: e.variant,
      model,
      gpu,
      trials: e.trials,
      failures: e.failures,
      sanitizerRaces: e.sanitizer?.races ?? null,
      agree,
      trace,
    });
  }
  const outputsPath = join(dir, 'outputs.json');
  const outputs = existsSync(outputsPath) ? readJson<{ outputs: RecordedOutput[] }>(outputsPath).outputs : [];
  const oracle = [];
  for (const o of outputs) oracle.push(await checkOutput(o));
  return { rows, oracle, meta: evidence.meta };
}

export async function gpuReportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('gpu-report', argv, { json: { type: 'boolean' }, evidence: { type: 'string' } });
  if (positionals.length > 0) throw new UsageError(`gpu-report takes no targets (got '${positionals[0]}')`);
  const { rows, oracle, meta } = await buildGpuReport(values.evidence ?? 'kernels/evidence');
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ rows, oracle, meta }, null, 2)}\n`);
  } else {
    process.stdout.write(
      `${renderTable(
        ['protocol', 'variant', 'model', 'gpu', 'trials', 'failures', 'csan races', 'agree', 'recorded trace vs model'],
        rows.map((r) => [r.protocol, r.variant, r.model, r.gpu, r.trials, r.failures, r.sanitizerRaces ?? '-', r.agree ? 'yes' : 'NO', r.trace]),
      )}\n`,
    );
    if (oracle.length > 0) {
      process.stdout.write(
        `\n${renderTable(
          ['oracle kernel', 'seed', 'rel. error', `<= ${ORACLE_TOLERANCE}`],
          oracle.map((o) => [o.kernel, o.seed, o.relErr.toExponential(2), o.ok ? 'yes' : 'NO']),
        )}\n`,
      );
    }
    const bad = rows.filter((r) => !r.agree).length + oracle.filter((o) => !o.ok).length;
    process.stdout.write(`\n${rows.length - rows.filter((r) => !r.agree).length} of ${rows.length} rows agree; ${oracle.filter((o) => o.ok).length} of ${oracle.length} outputs match the oracle\n`);
  }
  return rows.every((r) => r.agree) && oracle.every((o) => o.ok) ? EXIT_OK : EXIT_VIOLATED;
}
