/**
 * Recorded events: what a run of a real implementation logged, one event per model step it observed. The
 * format is documented in docs/trace-format.md; readers (JSON Lines first) turn a file into `TraceEvent`s.
 */
import type { Data } from '../data.ts';
import type { Params } from '../system.ts';

export interface TraceEvent {
  /** 1-based line (or record) number in the source, for error messages. */
  readonly line: number;
  /** The model action this event is a step of. */
  readonly action: string;
  /** Parameters of the step; a subset is fine (absent parameters match any value). */
  readonly params?: Params;
  /** Who took the step: must equal the action instance's actor when given. */
  readonly actor?: string;
  /** The rank that logged the event: must equal the instance's rank (its `rank` parameter, or `rank N` in its actor). */
  readonly rank?: number;
  /** When the recorder saw it (any unit); informational: events are taken in file order. */
  readonly time?: number;
  /** State fields the recorder saw just after the step, by path (`flag`, `rank[1].step`, `maps.0.row`). */
  readonly observed?: { readonly [path: string]: Data };
}

/** Optional first record of a trace: what produced it and which model it is meant for. */
export interface TraceHeader {
  readonly format: 'interleave-events';
  readonly version: 1;
  /** `protocol` or `protocol:variant`, used when `--against` is not given. */
  readonly protocol?: string;
  readonly config?: string;
  readonly source?: string;
}

export interface ReadTrace {
  readonly header?: TraceHeader;
  readonly events: readonly TraceEvent[];
}

/** A reader for one recorded-trace format. JSON Lines is the first; others (Flight Recorder dumps) plug in here. */
export interface TraceReader {
  /** Short name, as given to `--format`. */
  readonly format: string;
  /** Whether this reader should handle a file by default, from its name (and its first bytes). */
  accepts(fileName: string, head: string): boolean;
  /** Parses a whole trace; throws TraceInputError (naming the line) on anything malformed. */
  read(text: string, source: string): ReadTrace;
}

/** Malformed input (a trace, or an event that names nothing in the model): one line, exit code 2. */
export class TraceInputError extends Error {
  constructor(
    readonly line: number,
    readonly problem: string,
    readonly source = '',
  ) {
    super(`${source ? `${source}:` : ''}${line > 0 ? `line ${line}: ` : ''}${problem}`);
    this.name = 'TraceInputError';
  }
}

const EVENT_KEYS = new Set(['action', 'params', 'actor', 'rank', 'time', 'observed', 'meta']);

/** Checks one decoded record and turns it into an event; `_`-prefixed keys and `meta` are ignored. */
export function toEvent(obj: unknown, line: number, source = ''): TraceEvent {
  const fail = (msg: string): never => {
    throw new TraceInputError(line, msg, source);
  };
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    fail(`an event must be a JSON object, got ${describeJson(obj)}`);
  }
  const o = obj as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!EVENT_KEYS.has(k) && !k.startsWith('_')) {
      fail(`unknown field ${JSON.stringify(k)} (an event has action, params, actor, rank, time, observed, meta)`);
    }
  }
  if (typeof o.action !== 'string' || o.action === '') fail('the event has no "action" (a non-empty string)');
  const ev: { -readonly [K in keyof TraceEvent]: TraceEvent[K] } = { line, action: o.action as string };
  if (o.params !== undefined) {
    if (o.params === null || typeof o.params !== 'object' || Array.isArray(o.params)) {
      fail(`"params" must be an object of parameter values, got ${describeJson(o.params)}`);
    }
    for (const [k, v] of Object.entries(o.params as object)) {
      const bad = nonData(v);
      if (bad) fail(`params.${k}: ${bad}`);
    }
    ev.params = o.params as Params;
  }
  if (o.actor !== undefined) {
    if (typeof o.actor !== 'string') fail(`"actor" must be a string, got ${describeJson(o.actor)}`);
    ev.actor = o.actor as string;
  }
  if (o.rank !== undefined) {
    if (typeof o.rank !== 'number' || !Number.isInteger(o.rank) || o.rank < 0) {
      fail(`"rank" must be a non-negative integer, got ${describeJson(o.rank)}`);
    }
    ev.rank = o.rank as number;
  }
  if (o.time !== undefined) {
    if (typeof o.time !== 'number' || !Number.isFinite(o.time)) fail(`"time" must be a finite number, got ${describeJson(o.time)}`);
    ev.time = o.time as number;
  }
  if (o.observed !== undefined) {
    if (o.observed === null || typeof o.observed !== 'object' || Array.isArray(o.observed)) {
      fail(`"observed" must be an object of field paths to values, got ${describeJson(o.observed)}`);
    }
    for (const [k, v] of Object.entries(o.observed as object)) {
      try {
        parsePath(k);
      } catch (e) {
        fail(`observed field ${JSON.stringify(k)}: ${(e as Error).message}`);
      }
      const bad = nonData(v);
      if (bad) fail(`observed.${k}: ${bad}`);
    }
    ev.observed = o.observed as Record<string, Data>;
  }
  return ev;
}

/** Whether a decoded record is a header line. */
export function isHeader(obj: unknown): boolean {
  return obj !== null && typeof obj === 'object' && !Array.isArray(obj) && (obj as Record<string, unknown>).format === 'interleave-events';
}

export function toHeader(obj: unknown, line: number, source = ''): TraceHeader {
  const o = obj as Record<string, unknown>;
  if (o.version !== 1) throw new TraceInputError(line, `unsupported trace format version ${JSON.stringify(o.version)} (this reader knows version 1)`, source);
  for (const k of ['protocol', 'config', 'source'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'string') {
      throw new TraceInputError(line, `header field "${k}" must be a string, got ${describeJson(o[k])}`, source);
    }
  }
  return o as unknown as TraceHeader;
}

function nonData(v: unknown): string | undefined {
  if (typeof v === 'number' && !Number.isFinite(v)) return `${v} is not a finite number`;
  if (v !== null && typeof v === 'object') {
    for (const c of Object.values(v)) {
      const bad = nonData(c);
      if (bad) return bad;
    }
  }
  return undefined;
}

export function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** One step of a field path: an object key or an array index. */
export type PathSegment = string | number;

/**
 * Parses a field path: `a.b`, `a[0].b`, `a.0.b`, `a["odd key"]` (the forms traces print). Throws on a
 * malformed path.
 */
export function parsePath(path: string): PathSegment[] {
  const out: PathSegment[] = [];
  let i = 0;
  if (path === '') throw new Error('an empty path');
  const ident = /[A-Za-z_$][\w$-]*|\d+/y;
  let first = true;
  while (i < path.length) {
    if (path[i] === '[') {
      const close = findClose(path, i);
      const inner = path.slice(i + 1, close);
      if (/^\d+$/.test(inner)) out.push(Number(inner));
      else {
        let key: unknown;
        try {
          key = JSON.parse(inner);
        } catch {
          throw new Error(`malformed bracket ${JSON.stringify(path.slice(i, close + 1))}`);
        }
        if (typeof key !== 'string') throw new Error(`malformed bracket ${JSON.stringify(path.slice(i, close + 1))}`);
        out.push(key);
      }
      i = close + 1;
      first = false;
      continue;
    }
    if (!first) {
      if (path[i] !== '.') throw new Error(`expected '.' or '[' at position ${i}`);
      i++;
    }
    ident.lastIndex = i;
    const m = ident.exec(path);
    if (!m) throw new Error(`expected a field name at position ${i}`);
    out.push(/^\d+$/.test(m[0]) ? Number(m[0]) : m[0]);
    i += m[0].length;
    first = false;
  }
  return out;
}

function findClose(path: string, open: number): number {
  let i = open + 1;
  if (path[i] === '"') {
    i++;
    while (i < path.length && path[i] !== '"') i += path[i] === '\\' ? 2 : 1;
    i++;
  }
  const close = path.indexOf(']', i);
  if (close < 0) throw new Error(`unclosed '[' at position ${open}`);
  return close;
}

/** The value at a parsed path, or undefined where the path does not exist. */
export function resolvePath(v: Data | undefined, segs: readonly PathSegment[]): Data | undefined {
  let cur: Data | undefined = v;
  for (const s of segs) {
    if (cur === null || typeof cur !== 'object' || cur === undefined) return undefined;
    if (Array.isArray(cur)) {
      if (typeof s !== 'number') return undefined;
      cur = (cur as readonly Data[])[s];
    } else {
      const o = cur as { readonly [k: string]: Data };
      const k = String(s);
      if (!Object.prototype.hasOwnProperty.call(o, k)) return undefined;
      cur = o[k];
    }
  }
  return cur;
}
