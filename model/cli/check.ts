/** `interleave check`: explores each target and prints the verdict table (or JSON). */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type CheckOptions, type CheckResult, check } from '../explorer.ts';
import { SourceError, type SystemSource, checkParallel } from '../parallel/coordinator.ts';
import { type Expectation, formatExpectation } from '../registry.ts';
import { ModelError, type System } from '../system.ts';
import { formatTrace, traceToJson } from '../trace.ts';
import { EXIT_OK, EXIT_USAGE, EXIT_VIOLATED, UsageError } from './errors.ts';
import { intFlag, numberFlag, parseFlags } from './options.ts';
import { progressReporter } from './progress.ts';
import { renderTable } from './table.ts';
import { type Target, allBuiltins, protocolTargets, resolveTarget } from './targets.ts';

export const checkHelp = `interleave check [TARGET...] [options]
  TARGET: protocol | protocol:variant | path/to/model.ts[:variant]   (none: every built-in variant)
  --json              print {"results":[...]} instead of the table
  --max-states N      stop (verdict incomplete) after N distinct states
  --max-depth N       stop (verdict incomplete) past depth N
  --time-limit S      stop (verdict incomplete) after S seconds per target
  --max-memory MB     stop (verdict incomplete) when the process holds more than MB megabytes
  --config NAME       a protocol's named configuration (default: its 'check' one)
  --traces            print the counterexample of every violated target (default: only for named targets)
  --full              show the full state after every step of a counterexample
  --no-symmetry       explore without the model's symmetry reduction
  --no-liveness       skip liveness properties (and the state graph they need)
  --no-por            explore every interleaving even where the model declares reads/writes (no partial-order reduction)
  --no-packed         run a layout model (definePackedSystem) on the generic engine instead of its packed fast path
  --no-deadlock       accept stuck states (a hang is left to the liveness properties, as a stutter forever)
  --property NAME     check only this property (repeatable; an invariant, step or liveness property, or deadlock)
  --liveness-only     check only the liveness properties, stuck states left to them (as --no-deadlock);
                      each variant is expected to break the liveness property it names, or to hold
  --workers N         explore with N worker threads (default 1: the single-threaded explorer); same verdicts,
                      counts and shortest counterexamples; liveness, symmetry and partial-order reduction
                      stay single-threaded (the result notes it)
  --quiet             no progress on stderr`;

export interface Outcome {
  readonly target: Target;
  readonly result: CheckResult;
  /** What was expected of it (the target's verdict, or its liveness verdict under --liveness-only). */
  readonly expected: Expectation;
  /** Whether the verdict is what the target expects. */
  readonly asExpected: boolean;
}

/** `livenessOnly`: check just the system's liveness properties, deadlocks left to them. */
export function runTarget(target: Target, opts: Parameters<typeof check>[1], livenessOnly = false): Outcome {
  const exp = livenessOnly ? target.expectedLiveness : target.expected;
  let result: CheckResult;
  try {
    const sys = target.build();
    result = check(sys, { ...opts, ...(livenessOnly ? livenessOnlyOptions(sys) : {}) });
  } catch (e) {
    result = modelErrorResult(e);
  }
  return outcomeOf(target, exp, result);
}

/** Only the liveness properties, stuck states left to them. */
function livenessOnlyOptions(sys: System<unknown>): CheckOptions {
  return { properties: Object.keys(sys.spec.liveness ?? {}), deadlock: false, liveness: true };
}

/** A malformed model is an `error` verdict naming the problem; anything else is a bug of ours and propagates. */
function modelErrorResult(e: unknown): CheckResult {
  if (!(e instanceof ModelError)) throw e;
  const stats = { states: 0, transitions: 0, depth: 0, seconds: 0, statesPerSecond: 0, bytesPerState: 0, peakRssMB: 0 };
  return { verdict: 'error', message: e.message, stats };
}

function outcomeOf(target: Target, exp: Expectation, result: CheckResult): Outcome {
  const asExpected =
    exp.verdict === 'holds'
      ? result.verdict === 'holds' && (exp.states === undefined || exp.states === result.stats.states)
      : result.verdict === 'violated' && result.property === exp.property;
  return { target, result, expected: exp, asExpected };
}

/** The source of a target: a built-in protocol's variant, or the model file named on the command line. */
function targetSource(raw: string | undefined, target: Target, config: string | undefined): SystemSource {
  const cfg = config !== undefined ? { config } : {};
  // As resolveTarget tells a model file from a protocol name.
  const isPath = raw !== undefined && (/\.(m?ts|m?js)(:[^/\\]*)?$/.test(raw) || raw.includes('/') || raw.startsWith('.'));
  if (raw === undefined || !isPath) return { protocol: target.protocol, variant: target.variant, ...cfg };
  const file = /^(.*\.(?:m?ts|m?js)):[^/\\]+$/.exec(raw)?.[1] ?? raw;
  return { module: pathToFileURL(resolve(file)).href, variant: target.variant, ...cfg };
}

/** `--workers N`: the check spread over N worker threads, each loading the target from its source. */
export async function runTargetParallel(
  target: Target,
  source: SystemSource,
  opts: CheckOptions,
  workers: number,
  livenessOnly = false,
): Promise<Outcome> {
  const exp = livenessOnly ? target.expectedLiveness : target.expected;
  let result: CheckResult;
  try {
    const o = livenessOnly ? { ...opts, ...livenessOnlyOptions(target.build()) } : opts;
    result = await checkParallel(source, { ...o, workers });
  } catch (e) {
    if (e instanceof SourceError) throw new UsageError(e.message);
    result = modelErrorResult(e);
  }
  return outcomeOf(target, exp, result);
}

export async function checkCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('check', argv, {
    json: { type: 'boolean' },
    'max-states': { type: 'string' },
    'max-depth': { type: 'string' },
    'time-limit': { type: 'string' },
    'max-memory': { type: 'string' },
    config: { type: 'string' },
    traces: { type: 'boolean' },
    full: { type: 'boolean' },
    quiet: { type: 'boolean' },
    'no-symmetry': { type: 'boolean' },
    'no-liveness': { type: 'boolean' },
    'no-deadlock': { type: 'boolean' },
    'no-por': { type: 'boolean' },
    'no-packed': { type: 'boolean' },
    property: { type: 'string', multiple: true },
    'liveness-only': { type: 'boolean' },
    workers: { type: 'string' },
  });
  const workers = intFlag('workers', values.workers) ?? 1;
  const livenessOnly = Boolean(values['liveness-only']);
  if (livenessOnly && (values['no-liveness'] || values.property)) {
    throw new UsageError(`check: --liveness-only cannot be combined with ${values['no-liveness'] ? '--no-liveness' : '--property'}`);
  }
  const limits = {
    maxStates: intFlag('max-states', values['max-states']),
    maxDepth: intFlag('max-depth', values['max-depth'], 0),
    timeLimit: numberFlag('time-limit', values['time-limit']),
    maxMemoryMB: intFlag('max-memory', values['max-memory']),
  };
  const targets: Target[] = [];
  /** Where each target comes from, for worker threads to load it themselves (--workers). */
  const sources: SystemSource[] = [];
  if (positionals.length === 0) {
    for (const p of await allBuiltins()) targets.push(...protocolTargets(p, undefined, values.config));
    for (const t of targets) sources.push(targetSource(undefined, t, values.config));
  } else {
    for (const raw of positionals) {
      for (const t of await resolveTarget(raw, values.config)) {
        targets.push(t);
        sources.push(targetSource(raw, t, values.config));
      }
    }
  }

  const outcomes: Outcome[] = [];
  for (const [i, target] of targets.entries()) {
    const progress = progressReporter(`${target.protocol}:${target.variant}`, !values.quiet);
    const opts: CheckOptions = {
      ...(limits.maxStates !== undefined ? { maxStates: limits.maxStates } : {}),
      ...(limits.maxDepth !== undefined ? { maxDepth: limits.maxDepth } : {}),
      ...(limits.timeLimit !== undefined ? { timeLimit: limits.timeLimit } : {}),
      ...(limits.maxMemoryMB !== undefined ? { maxMemoryMB: limits.maxMemoryMB } : {}),
      ...(values['no-symmetry'] ? { symmetry: false } : {}),
      ...(values['no-liveness'] ? { liveness: false } : {}),
      ...(values['no-deadlock'] ? { deadlock: false } : {}),
      ...(values['no-por'] ? { por: false } : {}),
      ...(values['no-packed'] ? { packed: false } : {}),
      ...(values.property ? { properties: values.property } : {}),
      onProgress: progress.tick,
    };
    const outcome =
      workers > 1 ? await runTargetParallel(target, sources[i], opts, workers, livenessOnly) : runTarget(target, opts, livenessOnly);
    progress.done();
    outcomes.push(outcome);
  }

  if (values.json) {
    process.stdout.write(`${JSON.stringify({ results: outcomes.map(toJson) }, null, 2)}\n`);
  } else {
    const showTraces = values.traces || positionals.length > 0;
    process.stdout.write(`${formatOutcomes(outcomes, { traces: showTraces, full: Boolean(values.full) })}\n`);
  }
  if (outcomes.some((o) => o.result.verdict === 'error')) return EXIT_USAGE;
  return outcomes.every((o) => o.asExpected) ? EXIT_OK : EXIT_VIOLATED;
}

function toJson(o: Outcome) {
  const r = o.result;
  return {
    protocol: o.target.protocol,
    variant: o.target.variant,
    expected: formatExpectation(o.expected),
    verdict: r.verdict,
    property: r.property ?? null,
    states: r.stats.states,
    transitions: r.stats.transitions,
    depth: r.stats.depth,
    seconds: Number(r.stats.seconds.toFixed(3)),
    asExpected: o.asExpected,
    message: r.message ?? r.reason ?? null,
    ...(r.notes ? { notes: r.notes } : {}),
    ...(r.stuck ? { stuck: r.stuck } : {}),
    trace: r.trace ? traceToJson(r.trace) : null,
  };
}

export function formatOutcomes(outcomes: readonly Outcome[], opts: { traces: boolean; full: boolean }): string {
  const rows = outcomes.map((o) => [
    o.target.protocol,
    o.target.variant,
    formatExpectation(o.expected),
    o.result.verdict,
    o.result.property ?? '',
    o.result.stats.states,
    o.result.stats.depth,
    o.result.stats.seconds.toFixed(2),
    o.asExpected ? 'ok' : 'UNEXPECTED',
  ]);
  const parts = [renderTable(['protocol', 'variant', 'expected', 'verdict', 'property', 'states', 'depth', 'seconds', ''], rows)];
  for (const o of outcomes) {
    const r = o.result;
    const name = `${o.target.protocol}:${o.target.variant}`;
    if (r.notes && (opts.traces || !o.asExpected)) parts.push(`\n${name}: ${r.notes.join('; ')}`);
    if (r.verdict === 'error') parts.push(`\n${name}: model error: ${r.message}`);
    else if (r.verdict === 'incomplete') parts.push(`\n${name}: incomplete: ${r.reason}`);
    else if (r.verdict === 'violated' && (opts.traces || !o.asExpected)) {
      parts.push(`\n${name}: ${r.message}`);
      if (r.stuck && r.stuck.length > 0) parts.push(`  blocked:\n${r.stuck.map((l) => `    - ${l}`).join('\n')}`);
      if (r.trace) parts.push(formatTrace(r.trace, { fullStates: opts.full }));
    }
  }
  const bad = outcomes.filter((o) => !o.asExpected).length;
  parts.push(`\n${outcomes.length - bad} as expected, ${bad} unexpected`);
  return parts.join('\n');
}
