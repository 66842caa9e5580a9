/**
 * Counterexample traces: the format every engine (explorer, simulation, Z3) reports in, and their
 * rendering as text for terminals and as JSON.
 */
import { type Data, type FieldChange, diff, show } from './data.ts';
import { type Params, type StepLabel, formatLabel } from './system.ts';

export interface TraceStep {
  /** 1-based position in the trace. */
  readonly index: number;
  readonly action: string;
  readonly params: Params;
  readonly actor?: string;
  /** The action's own sentence, when the model gives one. */
  readonly text?: string;
  readonly changes: readonly FieldChange[];
  readonly state: Data;
}

export interface Trace {
  readonly initial: Data;
  readonly steps: readonly TraceStep[];
  /** For a lasso (liveness counterexample): the step index after which the cycle starts (0 = at the initial state). */
  readonly loopStart?: number;
}

/** Builds a trace from an initial state and the (label, text, state) of each step. */
export function buildTrace(
  initial: Data,
  steps: readonly { label: StepLabel; text?: string; state: Data }[],
  loopStart?: number,
): Trace {
  let prev = initial;
  const out: TraceStep[] = steps.map((s, i) => {
    const step: TraceStep = {
      index: i + 1,
      action: s.label.action,
      params: s.label.params,
      ...(s.label.actor !== undefined ? { actor: s.label.actor } : {}),
      ...(s.text !== undefined ? { text: s.text } : {}),
      changes: diff(prev, s.state),
      state: s.state,
    };
    prev = s.state;
    return step;
  });
  return loopStart === undefined ? { initial, steps: out } : { initial, steps: out, loopStart };
}

export interface TextOptions {
  /** Print the full state after every step, not only the changed fields. */
  readonly fullStates?: boolean;
  readonly indent?: string;
}

/** A trace as a reviewer reads it: one numbered line per step, the changed fields beneath. */
export function formatTrace(t: Trace, opts: TextOptions = {}): string {
  const ind = opts.indent ?? '  ';
  const lines: string[] = [`${ind}initial state: ${show(t.initial, 400)}`];
  for (const s of t.steps) {
    if (t.loopStart !== undefined && s.index === t.loopStart + 1) lines.push(`${ind}-- cycle starts here --`);
    const who = s.actor ? `[${s.actor}] ` : '';
    const label = formatLabel(s);
    lines.push(`${ind}${String(s.index).padStart(3)}. ${who}${s.text ? `${s.text}  (${label})` : label}`);
    if (s.changes.length === 0) lines.push(`${ind}       (no field changed)`);
    for (const c of s.changes) lines.push(`${ind}       ${c.path || '(state)'}: ${show(c.before)} -> ${show(c.after)}`);
    if (opts.fullStates) lines.push(`${ind}       state: ${show(s.state, 2000)}`);
  }
  if (t.loopStart !== undefined) {
    lines.push(
      t.loopStart === t.steps.length
        ? `${ind}-- no step is enabled here: the behaviour stays in this state forever --`
        : `${ind}-- back to the state after step ${t.loopStart}: repeats forever --`,
    );
  }
  return lines.join('\n');
}

/** JSON form: the same steps, states included only when asked (they can be large). */
export function traceToJson(t: Trace, withStates = false): unknown {
  return {
    initial: t.initial,
    ...(t.loopStart !== undefined ? { loopStart: t.loopStart } : {}),
    steps: t.steps.map((s) => ({
      index: s.index,
      action: s.action,
      params: s.params,
      ...(s.actor !== undefined ? { actor: s.actor } : {}),
      ...(s.text !== undefined ? { text: s.text } : {}),
      changes: s.changes.map((c) => ({ path: c.path, before: c.before ?? null, after: c.after ?? null })),
      ...(withStates ? { state: s.state } : {}),
    })),
  };
}
