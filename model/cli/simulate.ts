/** `interleave simulate`: random walks (fast-check) over each target, for configurations too large to enumerate. */
import { formatExpectation } from '../registry.ts';
import { type SimulationResult, type SwarmConfig, randomSeed, simulate } from '../simulate.ts';
import { ModelError } from '../system.ts';
import { formatTrace, traceToJson } from '../trace.ts';
import { EXIT_OK, EXIT_USAGE, EXIT_VIOLATED, UsageError } from './errors.ts';
import { intFlag, numberFlag, parseFlags } from './options.ts';
import { renderTable } from './table.ts';
import { type Target, allBuiltins, protocolTargets, resolveTarget } from './targets.ts';

export const simulateHelp = `interleave simulate [TARGET...] [options]
  random walks (fast-check) instead of exhaustive search; a failing walk is shrunk to a short trace
  TARGET: protocol | protocol:variant | path/to/model.ts[:variant]   (none: every built-in variant)
  --runs N            walks per target (default 1000)
  --depth D           most steps in one walk (default 200)
  --seed S            fast-check seed (default: random, printed); the same seed replays the same walks
  --path P            replay only the counterexample at fast-check path P (printed with a violation)
  --time-limit S      stop walking a target after S seconds (never reported as a violation)
  --swarm             swarm testing (the default): two walks in three each draw a scheduling bias of their
                      own: a random subset of the action names after which the actor that took the step
                      pauses (as if descheduled right there) and, in half of them, a random subset of the
                      actors slowed (their steps weigh 1/20); paused and slowed steps still run when nothing
                      else can. The other walks are uniform
  --no-swarm          every walk uniform (each enabled step equally likely); a seed replays only with the
                      same choice of --swarm or --no-swarm
  --config NAME       a protocol's named configuration (default: its 'check' one)
  --json              print {"results":[...]} instead of the table
  --full              show the full state after every step of a counterexample`;

export const DEFAULT_RUNS = 1000;
export const DEFAULT_DEPTH = 200;

export interface SimOutcome {
  readonly target: Target;
  /** How to name this target on the command line (for the replay line). */
  readonly name?: string;
  readonly result: SimulationResult;
  readonly asExpected: boolean;
  /** What the table says in the verdict column. */
  readonly verdictText: string;
}

/**
 * Whether a simulation result is what the target expects. Walks cannot prove anything: a target expected to
 * hold is as expected when no walk failed; one expected to fail a safety property (invariant, step property,
 * deadlock) when a walk failed that property; one expected to fail a reachability goal when no walk reached it.
 */
export function simulationAsExpected(target: Target, r: SimulationResult, reachabilityGoals: readonly string[]): boolean {
  const exp = target.expected;
  if (r.verdict === 'error') return false;
  if (exp.verdict === 'holds') return r.verdict === 'no-violation';
  if (reachabilityGoals.includes(exp.property)) return r.verdict === 'no-violation' && r.unreached.includes(exp.property);
  if (r.verdict !== 'violated') return false;
  // A variant that declares a liveness failure hangs: a walk that meets the hang first (a deadlock) has found
  // the same bug by its consequence (e.g. ranks that diverged, then block in mismatched exchanges).
  return r.property === exp.property || (r.property === 'deadlock' && target.expectedLiveness.verdict === 'violated');
}

export function runSimulation(
  target: Target,
  opts: { runs: number; depth: number; seed: number; path?: string; timeLimit?: number; swarm?: boolean },
): SimOutcome {
  let result: SimulationResult;
  let goals: string[] = [];
  try {
    const system = target.build();
    goals = Object.keys(system.spec.reachable ?? {});
    result = simulate(system, opts);
  } catch (e) {
    if (!(e instanceof ModelError)) throw e;
    result = {
      verdict: 'error',
      message: e.message,
      seed: opts.seed,
      runsRequested: opts.runs,
      depth: opts.depth,
      unreached: [],
      interrupted: false,
      stats: { runs: 0, steps: 0, seconds: 0, stepsPerSecond: 0, longestWalk: 0 },
    };
  }
  const asExpected = simulationAsExpected(target, result, goals);
  const exp = target.expected;
  const verdictText =
    result.verdict === 'no-violation' && exp.verdict === 'violated' && goals.includes(exp.property) && result.unreached.includes(exp.property)
      ? 'unreached'
      : result.verdict;
  return { target, result, asExpected, verdictText };
}

export async function simulateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('simulate', argv, {
    runs: { type: 'string' },
    depth: { type: 'string' },
    seed: { type: 'string' },
    path: { type: 'string' },
    'time-limit': { type: 'string' },
    config: { type: 'string' },
    json: { type: 'boolean' },
    full: { type: 'boolean' },
    swarm: { type: 'boolean' },
    'no-swarm': { type: 'boolean' },
  });
  // The last of --swarm / --no-swarm wins (default: swarm).
  const swarm = !values['no-swarm'] || argv.lastIndexOf('--swarm') > argv.lastIndexOf('--no-swarm');
  const runs = intFlag('runs', values.runs) ?? DEFAULT_RUNS;
  const depth = intFlag('depth', values.depth) ?? DEFAULT_DEPTH;
  const timeLimit = numberFlag('time-limit', values['time-limit']);
  let seed: number;
  if (values.seed !== undefined) {
    if (!/^-?\d+$/.test(values.seed) || Math.abs(Number(values.seed)) > 0x7fffffff) {
      throw new UsageError(`--seed expects an integer between -2147483647 and 2147483647, got '${values.seed}'`);
    }
    seed = Number(values.seed);
  } else {
    seed = randomSeed();
  }
  if (values.path !== undefined && !/^\d+(:\d+)*$/.test(values.path)) {
    throw new UsageError(`--path expects a fast-check path such as '12:0:3', got '${values.path}'`);
  }

  const targets: { target: Target; name: string }[] = [];
  if (positionals.length === 0) {
    for (const p of await allBuiltins()) {
      for (const t of protocolTargets(p, undefined, values.config)) targets.push({ target: t, name: `${t.protocol}:${t.variant}` });
    }
  } else {
    for (const raw of positionals) {
      const file = /^(.*\.(?:m?ts|m?js))(?::[^/\\]+)?$/.exec(raw)?.[1];
      for (const t of await resolveTarget(raw, values.config)) {
        const name = file === undefined ? `${t.protocol}:${t.variant}` : t.summary === 'user model' ? file : `${file}:${t.variant}`;
        targets.push({ target: t, name });
      }
    }
  }
  if (values.path !== undefined && targets.length !== 1) {
    throw new UsageError(`--path replays one counterexample: name exactly one target (got ${targets.length})`);
  }

  const outcomes = targets.map(({ target, name }) => ({
    ...runSimulation(target, {
      runs,
      depth,
      seed,
      ...(values.path !== undefined ? { path: values.path } : {}),
      ...(timeLimit !== undefined ? { timeLimit } : {}),
      swarm,
    }),
    name,
  }));

  if (values.json) {
    process.stdout.write(`${JSON.stringify({ seed, runs, depth, swarm, results: outcomes.map(toJson) }, null, 2)}\n`);
  } else {
    const showTraces = positionals.length > 0;
    process.stdout.write(`${formatSimOutcomes(outcomes, { seed, runs, depth, swarm, traces: showTraces, full: Boolean(values.full) })}\n`);
  }
  if (outcomes.some((o) => o.result.verdict === 'error')) return EXIT_USAGE;
  return outcomes.every((o) => o.asExpected) ? EXIT_OK : EXIT_VIOLATED;
}

function replayCommand(o: SimOutcome, runs: number, depth: number, swarm: boolean): string {
  const name = o.name ?? `${o.target.protocol}:${o.target.variant}`;
  const r = o.result;
  return `interleave simulate ${name} --seed ${r.seed} --runs ${runs} --depth ${depth}${swarm ? '' : ' --no-swarm'}${r.path ? ` --path ${r.path}` : ''}`;
}

/** How a counterexample walk was scheduled, for the report: uniform, or its swarm bias. */
export function describeSwarm(c: SwarmConfig | undefined): string {
  if (c === undefined) return 'a uniform walk';
  const parts: string[] = [];
  if (c.slowed.length > 0) parts.push(`slowing ${c.slowed.map((a) => `'${a}'`).join(', ')}`);
  if (c.pauseAfter.length > 0) parts.push(`pausing after ${c.pauseAfter.join(', ')}`);
  return `a swarm walk ${parts.join('; ')}`;
}

function toJson(o: SimOutcome) {
  const r = o.result;
  return {
    protocol: o.target.protocol,
    variant: o.target.variant,
    expected: formatExpectation(o.target.expected),
    verdict: o.verdictText,
    property: r.property ?? null,
    seed: r.seed,
    runs: r.stats.runs,
    steps: r.stats.steps,
    longestWalk: r.stats.longestWalk,
    seconds: Number(r.stats.seconds.toFixed(3)),
    asExpected: o.asExpected,
    message: r.message ?? null,
    unreached: r.unreached,
    interrupted: r.interrupted,
    ...(r.path ? { path: r.path, foundLength: r.foundLength ?? null, shrinks: r.shrinks ?? 0, swarmConfig: r.swarmConfig ?? null } : {}),
    ...(r.stuck ? { stuck: r.stuck } : {}),
    trace: r.trace ? traceToJson(r.trace) : null,
  };
}

export function formatSimOutcomes(
  outcomes: readonly SimOutcome[],
  opts: { seed: number; runs: number; depth: number; swarm?: boolean; traces: boolean; full: boolean },
): string {
  const swarm = opts.swarm ?? true;
  const rows = outcomes.map((o) => [
    o.target.protocol,
    o.target.variant,
    formatExpectation(o.target.expected),
    o.verdictText,
    o.result.property ?? '',
    o.result.stats.runs,
    o.result.trace ? o.result.trace.steps.length : '',
    o.result.stats.seconds.toFixed(2),
    o.asExpected ? 'ok' : 'UNEXPECTED',
  ]);
  const parts = [
    `seed ${opts.seed}: ${opts.runs} walks of at most ${opts.depth} steps per target, ${swarm ? 'two in three swarm-biased' : 'all uniform'} (walks find violations; they never prove a property)`,
    renderTable(['protocol', 'variant', 'expected', 'verdict', 'property', 'walks', 'trace', 'seconds', ''], rows),
  ];
  for (const o of outcomes) {
    const r = o.result;
    const name = `${o.target.protocol}:${o.target.variant}`;
    if (r.verdict === 'error') {
      parts.push(`\n${name}: model error: ${r.message}`);
      if (r.trace && r.trace.steps.length > 0) parts.push(formatTrace(r.trace, { fullStates: opts.full }));
    } else if (r.verdict === 'violated' && (opts.traces || !o.asExpected)) {
      parts.push(
        `\n${name}: ${r.message} (walk ${r.stats.runs}, found at ${r.foundLength} steps, shrunk to ${r.trace?.steps.length ?? '?'}; ` +
          `the shrunk walk is ${describeSwarm(r.swarmConfig)})`,
      );
      if (r.stuck && r.stuck.length > 0) parts.push(`  blocked:\n${r.stuck.map((l) => `    - ${l}`).join('\n')}`);
      if (r.trace) parts.push(formatTrace(r.trace, { fullStates: opts.full }));
      parts.push(`  replay: ${replayCommand(o, opts.runs, opts.depth, swarm)}`);
    } else if (!o.asExpected && r.verdict === 'no-violation') {
      parts.push(`\n${name}: no walk failed '${o.target.expected.verdict === 'violated' ? o.target.expected.property : ''}' in ${r.stats.runs} walks`);
    }
    if (r.interrupted) parts.push(`\n${name}: time limit reached after ${r.stats.runs} walks`);
    if (r.unreached.length > 0 && o.verdictText !== 'unreached') {
      parts.push(`\n${name}: no walk reached ${r.unreached.map((g) => `'${g}'`).join(', ')} (simulation cannot decide reachability)`);
    }
  }
  const bad = outcomes.filter((o) => !o.asExpected).length;
  parts.push(`\n${outcomes.length - bad} as expected, ${bad} unexpected`);
  return parts.join('\n');
}
