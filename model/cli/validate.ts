/** `interleave validate`: is a recorded run (JSON Lines events) a behaviour of the model? */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { ModelError } from '../system.ts';
import { formatTrace, traceToJson } from '../trace.ts';
import { TraceInputError } from '../validate/events.ts';
import { readerFor, readerNames } from '../validate/readers.ts';
import { type ValidationResult, ValidationModelError, describeEvent, formatPossibleStates, validateEvents } from '../validate/validator.ts';
import { EXIT_OK, EXIT_USAGE, EXIT_VIOLATED, UsageError } from './errors.ts';
import { intFlag, parseFlags } from './options.ts';
import { type Target, resolveTarget } from './targets.ts';

export const validateHelp = `interleave validate TRACE.jsonl [--against PROTOCOL[:VARIANT]] [options]
  decides whether a recorded run (one JSON event per line, docs/trace-format.md) is a behaviour of the model
  --against T         protocol | protocol:variant | path/to/model.ts[:variant] (default: the trace header's
                      protocol; a protocol without a variant means its one variant expected to hold)
  --max-gap N         most unlogged model steps between two logged events (default 8; 0: every step is logged)
  --max-states N      most states one gap search may hold (default 200000; the verdict says when it was cut)
  --logged A,B        actions the recorder always logs (never taken as unlogged steps)
  --config NAME       the protocol's named configuration (default: its 'check' one, or the header's)
  --format F          trace format (default: from the file; known: jsonl)
  --witness           print the model trace that explains an accepted run
  --json              print the verdict as JSON
  exit codes: 0 accepted, 1 rejected, 2 input error (unreadable trace, unknown action, rank or field)`;

export const DEFAULT_MAX_GAP = 8;

export async function validateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('validate', argv, {
    against: { type: 'string' },
    'max-gap': { type: 'string' },
    'max-states': { type: 'string' },
    logged: { type: 'string' },
    config: { type: 'string' },
    format: { type: 'string' },
    witness: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (positionals.length !== 1) {
    throw new UsageError(`validate takes one trace file (got ${positionals.length === 0 ? 'none' : positionals.join(' ')})`);
  }
  const file = positionals[0];
  const maxGap = intFlag('max-gap', values['max-gap'], 0) ?? DEFAULT_MAX_GAP;
  const maxStates = intFlag('max-states', values['max-states']);
  const alwaysLogged = values.logged !== undefined ? values.logged.split(',').map((s) => s.trim()).filter(Boolean) : undefined;

  const text = readTraceFile(file);
  const reader = readerFor(file, text.slice(0, 256), values.format);
  if (!reader) throw new UsageError(`unknown trace format '${values.format}' (known: ${readerNames().join(', ')})`);
  const read = inputErrors(() => reader.read(text, file));

  const against = values.against ?? read.header?.protocol;
  if (against === undefined) throw new UsageError('validate: name the model with --against PROTOCOL[:VARIANT] (the trace has no header naming it)');
  const target = await pickTarget(against, values.config ?? read.header?.config);
  const system = (() => {
    try {
      return target.build();
    } catch (e) {
      if (e instanceof ModelError) throw new UsageError(`model ${target.protocol}:${target.variant} is malformed: ${e.message}`);
      throw e;
    }
  })();
  if (alwaysLogged) {
    const names = new Set(system.instances.map((i) => i.action.name));
    const bad = alwaysLogged.find((a) => !names.has(a));
    if (bad !== undefined) throw new UsageError(`--logged names an unknown action '${bad}' (the model's actions: ${[...names].join(', ')})`);
  }

  let result: ValidationResult;
  try {
    result = inputErrors(() =>
      validateEvents(system, read.events, {
        maxGap,
        ...(maxStates !== undefined ? { maxStates } : {}),
        ...(alwaysLogged ? { alwaysLogged } : {}),
        witness: Boolean(values.witness),
        source: file,
      }),
    );
  } catch (e) {
    if (e instanceof ValidationModelError) {
      process.stderr.write(`interleave: model error in ${target.protocol}:${target.variant}: ${e.message.split('\n')[0]}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
  const name = `${target.protocol}:${target.variant}`;
  if (values.json) process.stdout.write(`${JSON.stringify(validationToJson(file, name, result), null, 2)}\n`);
  else process.stdout.write(`${formatValidation(file, name, result)}\n`);
  return result.verdict === 'accepted' ? EXIT_OK : EXIT_VIOLATED;
}

function readTraceFile(file: string): string {
  if (file === '-') return readFileSync(0, 'utf8');
  if (!existsSync(file)) throw new UsageError(`trace file '${file}' does not exist`);
  if (statSync(file).isDirectory()) throw new UsageError(`trace file '${file}' is a directory`);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`trace file '${file}' cannot be read: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function inputErrors<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TraceInputError) throw new UsageError(e.message);
    throw e;
  }
}

/** One target: a named variant, or the protocol's one variant expected to hold. */
async function pickTarget(raw: string, config: string | undefined): Promise<Target> {
  const targets = await resolveTarget(raw, config);
  if (targets.length === 1) return targets[0];
  const holding = targets.filter((t) => t.expected.verdict === 'holds');
  if (holding.length === 1) return holding[0];
  throw new UsageError(
    `--against '${raw}' has ${targets.length} variants; name one (${targets.map((t) => `${raw}:${t.variant}`).join(', ')})`,
  );
}

export function formatValidation(file: string, model: string, r: ValidationResult): string {
  const speed = `${r.stats.seconds.toFixed(3)} s, ${Math.round(r.stats.eventsPerSecond).toLocaleString('en-US')} events/s, ${r.stats.statesVisited.toLocaleString('en-US')} model steps tried`;
  if (r.verdict === 'accepted') {
    const hidden = r.hiddenSteps ? `, explained with ${r.hiddenSteps} unlogged step${r.hiddenSteps === 1 ? '' : 's'}` : ', every step logged';
    const lines = [`accepted: the ${r.events} events of ${file} are a behaviour of ${model}${hidden} (max gap ${r.maxGap})`, `  ${speed}`];
    if (r.witness) {
      lines.push('  explanation (steps marked * were not logged):');
      const text = formatTrace(r.witness.trace, { indent: '    ' }).split('\n');
      let step = 0;
      for (const l of text) {
        const m = /^(\s*)(\d+)\. /.exec(l);
        if (m) step = Number(m[2]);
        lines.push(m && r.witness.hidden[step - 1] ? l.replace(/^(\s*)(\d+)\. /, (_, sp, n) => `${sp.slice(1)}*${n}. `) : l);
      }
    }
    return lines.join('\n');
  }
  const rej = r.rejection!;
  const lines = [`rejected: ${file}:${rej.line}: ${rej.message}`];
  if (rej.reasons.length > 0) {
    lines.push('  why:');
    for (const why of rej.reasons.slice(0, 8)) lines.push(`    - ${why}`);
    if (rej.reasons.length > 8) lines.push(`    - (and ${rej.reasons.length - 8} more instances)`);
  }
  const before = rej.afterLine === undefined ? 'the initial states' : `after line ${rej.afterLine}`;
  lines.push(`  model states possible just before it (${before}): ${rej.possibleCount}`);
  for (const l of formatPossibleStates(rej)) lines.push(`    ${l}`);
  lines.push(`  ${r.explained} of ${r.events} events explained before it (max gap ${r.maxGap}${r.truncated ? ', search cut by --max-states' : ''}); ${speed}`);
  return lines.join('\n');
}

export function validationToJson(file: string, model: string, r: ValidationResult) {
  return {
    trace: file,
    against: model,
    verdict: r.verdict,
    events: r.events,
    explained: r.explained,
    maxGap: r.maxGap,
    truncated: r.truncated,
    hiddenSteps: r.hiddenSteps ?? null,
    seconds: Number(r.stats.seconds.toFixed(4)),
    eventsPerSecond: Math.round(r.stats.eventsPerSecond),
    rejection: r.rejection
      ? {
          line: r.rejection.line,
          event: r.rejection.index + 1,
          text: describeEvent(r.rejection.event),
          message: r.rejection.message,
          reasons: r.rejection.reasons,
          possibleCount: r.rejection.possibleCount,
          possibleStates: r.rejection.possibleStates,
        }
      : null,
    ...(r.witness ? { witness: { ...(traceToJson(r.witness.trace) as object), hidden: r.witness.hidden } } : {}),
  };
}
