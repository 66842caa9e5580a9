/**
 * `interleave trace TARGET`: checks one target and renders its counterexample as text, Markdown (with a
 * Mermaid sequence diagram), ITF JSON, a self-contained HTML stepper, or the Graphviz state graph.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type CheckResult, check } from '../explorer.ts';
import { FORMATS, type Format, GraphTooLarge, type ReportInput, formatOfPath, renderReport } from '../report/index.ts';
import { ModelError, type System } from '../system.ts';
import { EXIT_OK, UsageError } from './errors.ts';
import { intFlag, numberFlag, parseFlags } from './options.ts';
import { progressReporter } from './progress.ts';
import { type Target, resolveTarget } from './targets.ts';

export const traceHelp = `interleave trace TARGET [options]
  check one target and render its counterexample (exit 2 when it holds or has no trace)
  TARGET: protocol:variant | path/to/model.ts[:variant]
  --format F          text (default) | md (Markdown + Mermaid) | itf (ITF JSON) | html | dot (state graph)
  --out FILE          write to FILE (default: stdout); its extension picks the format when --format is absent
  --config NAME       a protocol's named configuration (default: its 'check' one)
  --max-states N      --max-depth N  --time-limit S   limits of the search, as for check
  --full              text: the full state after every step
  --dot-scope S       full (default: the whole state graph, small models only) | path (the trace and its neighbours)
  --dot-limit N       most states the dot graph may have (default 2000)
  --itf-integers I    bigint (default: {"#bigint": "..."}, as Apalache and Quint write) | number (safe ints as JSON numbers)
  --quiet             no progress or summary on stderr`;

function firstLine(s: string): string {
  return s.split('\n')[0];
}

/** The one target a trace is drawn for; several variants must be narrowed to one. */
async function oneTarget(raw: string, config: string | undefined): Promise<Target> {
  const targets = await resolveTarget(raw, config);
  if (targets.length === 1) return targets[0];
  const violated = targets.filter((t) => t.expected.verdict === 'violated');
  const example = violated[0] ?? targets[0];
  throw new UsageError(
    `'${raw}' has ${targets.length} variants (${targets.map((t) => t.variant).join(', ')}): name one, e.g. 'interleave trace ${raw}:${example.variant}'`,
  );
}

/** Builds and checks a target; turns every way of having no counterexample into a one-line UsageError. */
export function counterexampleOf(target: Target, opts: Parameters<typeof check>[1] = {}): ReportInput {
  const name = `${target.protocol}:${target.variant}`;
  let system: System<any>;
  try {
    system = target.build();
  } catch (e) {
    if (e instanceof ModelError) throw new UsageError(`${name}: model error: ${firstLine(e.message)}`);
    throw e;
  }
  const result = check(system, opts);
  switch (result.verdict) {
    case 'holds':
      throw new UsageError(
        `${name} holds (${result.stats.states} states explored): there is no counterexample to render`,
      );
    case 'incomplete':
      throw new UsageError(
        `${name}: the search stopped before finding a counterexample (${result.reason}); raise the limit or lower the configuration`,
      );
    case 'error':
      throw new UsageError(`${name}: model error: ${firstLine(result.message ?? 'unknown')}`);
    default:
      break;
  }
  if (!result.trace) {
    throw new UsageError(
      `${name}: ${result.message ?? `property '${result.property}' fails`}; a failed ${result.propertyKind ?? 'property'} has no trace to render`,
    );
  }
  return {
    title: name,
    ...(target.summary && target.summary !== 'user model' ? { summary: target.summary } : {}),
    result: result as CheckResult & { trace: NonNullable<CheckResult['trace']> },
    system,
  };
}

export async function traceCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('trace', argv, {
    format: { type: 'string', short: 'f' },
    out: { type: 'string', short: 'o' },
    config: { type: 'string' },
    'max-states': { type: 'string' },
    'max-depth': { type: 'string' },
    'time-limit': { type: 'string' },
    full: { type: 'boolean' },
    'dot-scope': { type: 'string' },
    'dot-limit': { type: 'string' },
    'itf-integers': { type: 'string' },
    quiet: { type: 'boolean' },
  });
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? 'trace: name one TARGET (protocol:variant or a .ts model file)' : `trace: takes one TARGET, got ${positionals.length} (${positionals.join(' ')})`,
    );
  }
  let format: Format;
  if (values.format !== undefined) {
    if (!(FORMATS as readonly string[]).includes(values.format)) {
      throw new UsageError(`trace: unknown --format '${values.format}' (formats: ${FORMATS.join(', ')})`);
    }
    format = values.format as Format;
  } else {
    format = (values.out !== undefined ? formatOfPath(values.out) : undefined) ?? 'text';
  }
  const dotScope = values['dot-scope'];
  if (dotScope !== undefined && dotScope !== 'full' && dotScope !== 'path') {
    throw new UsageError(`trace: --dot-scope must be 'full' or 'path', got '${dotScope}'`);
  }
  const integers = values['itf-integers'];
  if (integers !== undefined && integers !== 'bigint' && integers !== 'number') {
    throw new UsageError(`trace: --itf-integers must be 'bigint' or 'number', got '${integers}'`);
  }
  const dotLimit = intFlag('dot-limit', values['dot-limit']);
  const limits = {
    maxStates: intFlag('max-states', values['max-states']),
    maxDepth: intFlag('max-depth', values['max-depth'], 0),
    timeLimit: numberFlag('time-limit', values['time-limit']),
  };

  const target = await oneTarget(positionals[0], values.config);
  const progress = progressReporter(`${target.protocol}:${target.variant}`, !values.quiet);
  let input: ReportInput;
  try {
    input = counterexampleOf(target, {
      ...(limits.maxStates !== undefined ? { maxStates: limits.maxStates } : {}),
      ...(limits.maxDepth !== undefined ? { maxDepth: limits.maxDepth } : {}),
      ...(limits.timeLimit !== undefined ? { timeLimit: limits.timeLimit } : {}),
      onProgress: progress.tick,
    });
  } finally {
    progress.done();
  }

  let text: string;
  try {
    text = renderReport(format, input, {
      full: Boolean(values.full),
      ...(dotScope ? { dotScope } : {}),
      ...(dotLimit !== undefined ? { dotLimit } : {}),
      ...(integers ? { itf: { integers } } : {}),
    });
  } catch (e) {
    if (e instanceof GraphTooLarge) {
      throw new UsageError(
        `${input.title}: dot draws small models only: ${e.message} (limit ${e.limit}); use --dot-scope path to draw the counterexample and its one-step neighbours, or raise --dot-limit`,
      );
    }
    if (format === 'dot' && e instanceof Error) throw new UsageError(`${input.title}: dot: ${firstLine(e.message)}`);
    throw e;
  }

  if (values.out !== undefined) {
    mkdirSync(dirname(values.out), { recursive: true });
    writeFileSync(values.out, text);
    if (!values.quiet) {
      const r = input.result;
      process.stderr.write(`${input.title}: ${r.property} (${r.propertyKind}) fails in ${r.trace.steps.length} steps; wrote ${values.out} (${format})\n`);
    }
  } else {
    process.stdout.write(text);
  }
  return EXIT_OK;
}
