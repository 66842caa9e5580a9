/**
 * From a model trace to recorded events: turns a counterexample (or any Trace) into the JSON Lines events a
 * recorder would have written, so that tests and the GPU harness can produce traces from the model.
 */
import type { Data } from '../data.ts';
import type { Trace, TraceStep } from '../trace.ts';
import { type TraceEvent, type TraceHeader, parsePath, resolvePath } from './events.ts';

export interface ToEventsOptions {
  /**
   * Which state fields each event reports as observed: none (default), the fields the step changed
   * (`'changes'`), every top-level field of the state after the step (`'state'`), or a fixed list of paths
   * read from the state after the step.
   */
  readonly observe?: 'none' | 'changes' | 'state' | readonly string[];
  /** Keep a step as an event (default: all); dropping steps makes a partial log. */
  readonly keep?: (step: TraceStep) => boolean;
  /** The rank to log for a step (default: its numeric `rank` parameter, else `rank N` in its actor, else none). */
  readonly rank?: (step: TraceStep) => number | undefined;
  /** Include the actor (default true). */
  readonly actor?: boolean;
  /** Time of step i (default: i, the 1-based step index). */
  readonly time?: (step: TraceStep) => number;
}

export type RecordedEvent = Omit<TraceEvent, 'line'>;

export function traceToEvents(trace: Trace, opts: ToEventsOptions = {}): RecordedEvent[] {
  const out: RecordedEvent[] = [];
  for (const step of trace.steps) {
    if (opts.keep && !opts.keep(step)) continue;
    const rank = opts.rank ? opts.rank(step) : defaultRank(step);
    const ev: { -readonly [K in keyof RecordedEvent]: RecordedEvent[K] } = {
      time: opts.time ? opts.time(step) : step.index,
      ...(rank !== undefined ? { rank } : {}),
      ...(opts.actor !== false && step.actor !== undefined ? { actor: step.actor } : {}),
      action: step.action,
      params: step.params,
    };
    const obs = observedOf(step, opts.observe ?? 'none');
    if (obs) ev.observed = obs;
    out.push(ev);
  }
  return out;
}

function defaultRank(step: TraceStep): number | undefined {
  if (typeof step.params.rank === 'number') return step.params.rank;
  const m = step.actor ? /\brank (\d+)\b/.exec(step.actor) : null;
  return m ? Number(m[1]) : undefined;
}

function observedOf(step: TraceStep, observe: 'none' | 'changes' | 'state' | readonly string[]): Record<string, Data> | undefined {
  if (observe === 'none') return undefined;
  const o: Record<string, Data> = {};
  if (observe === 'state') {
    const st = step.state;
    if (st !== null && typeof st === 'object' && !Array.isArray(st)) {
      for (const [k, v] of Object.entries(st)) o[/^[A-Za-z_$][\w$]*$/.test(k) ? k : `[${JSON.stringify(k)}]`] = v;
    }
  } else if (observe === 'changes') {
    for (const c of step.changes) if (c.after !== undefined && c.path !== '') o[c.path] = c.after;
  } else {
    for (const p of observe) {
      const v = readPath(step.state, p);
      if (v !== undefined) o[p] = v;
    }
  }
  return Object.keys(o).length > 0 ? o : undefined;
}

function readPath(state: Data, path: string): Data | undefined {
  return resolvePath(state, parsePath(path));
}

/** JSON Lines text: an optional header line, then one event per line, each line ending in a newline. */
export function eventsToJsonl(events: readonly RecordedEvent[], header?: Omit<TraceHeader, 'format' | 'version'>): string {
  const lines = events.map((e) => JSON.stringify(stripLine(e)));
  if (header) lines.unshift(JSON.stringify({ format: 'interleave-events', version: 1, ...header }));
  return `${lines.join('\n')}\n`;
}

function stripLine(e: RecordedEvent | TraceEvent): RecordedEvent {
  if ('line' in e) {
    const { line: _line, ...rest } = e as TraceEvent;
    return rest;
  }
  return e;
}

/** Events as `validateEvents` takes them, numbered as lines 1, 2, … */
export function numbered(events: readonly RecordedEvent[]): TraceEvent[] {
  return events.map((e, i) => ({ ...e, line: i + 1 }));
}
