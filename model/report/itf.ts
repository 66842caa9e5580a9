/**
 * Counterexamples in the Informal Trace Format (ITF, Apalache ADR-015,
 * https://apalache-mc.org/docs/adr/015adr-trace.html), which Apalache and Quint write and read, and a reader
 * that gives an ITF trace back as an Interleave trace.
 *
 * The trace object is `{ "#meta", "vars", "states", "loop"? }`; each state is `{ "#meta": { "index" }, var: expr }`.
 * Interleave states are plain JSON data and map onto ITF expressions as follows:
 *
 *   | Interleave                        | ITF                                                              |
 *   | --------------------------------- | ---------------------------------------------------------------- |
 *   | boolean, string                   | JSON boolean, string                                             |
 *   | integer                           | `{"#bigint": "-12"}` (the form Apalache and Quint write; the ADR allows it for every integer); with `integers: 'number'`, a JSON integer when in [-(2^53)+1, 2^53-1] |
 *   | array                             | list (a JSON array)                                              |
 *   | object (no key starting with `#`) | record (a JSON object)                                           |
 *   | object with a key starting `#`    | `{"#map": [["#key", expr], ...]}` (ADR: record fields must not start with `#`) |
 *   | null                              | `{"tag": "None", "value": {"#tup": []}}` (the `None` of Quint's `Option`; ITF has no null) |
 *   | non-integer number                | `{"#unserializable": "0.5"}` (ITF has no fractions)              |
 *
 * The variables (`vars`) are the top-level fields of the state when every state of the trace is an object with
 * the same fields; otherwise the whole state is one variable, `state` (and `#meta.stateVariable` says so).
 * Each state's `#meta` carries the step that led to it (`action`, `params`, `actor`, `text`); `loop` is the
 * index of the state a lasso's cycle returns to (Interleave's `loopStart`).
 */
import type { Data } from '../data.ts';
import type { Params } from '../system.ts';
import { type Trace, buildTrace } from '../trace.ts';
import type { ReportInput } from './input.ts';

export const ITF_FORMAT_DESCRIPTION = 'https://apalache-mc.org/docs/adr/015adr-trace.html';
/** The JSON Schema (draft-07) of what the ADR allows, next to this module. */
export const ITF_SCHEMA_URL = new URL('./itf.schema.json', import.meta.url);

export type ItfValue =
  | boolean
  | string
  | number
  | readonly ItfValue[]
  | { readonly '#bigint': string }
  | { readonly '#tup': readonly ItfValue[] }
  | { readonly '#set': readonly ItfValue[] }
  | { readonly '#map': readonly (readonly [ItfValue, ItfValue])[] }
  | { readonly '#unserializable': string }
  | { readonly [field: string]: ItfValue };

export interface ItfState {
  readonly '#meta'?: { readonly [k: string]: unknown };
  readonly [variable: string]: unknown;
}

export interface ItfTrace {
  readonly '#meta'?: { readonly [k: string]: unknown };
  readonly params?: readonly string[];
  readonly vars: readonly string[];
  readonly states: readonly ItfState[];
  readonly loop?: number;
}

export interface ItfOptions {
  /** `bigint` (default): every integer as `{"#bigint": "…"}`; `number`: safe integers as JSON numbers. */
  readonly integers?: 'bigint' | 'number';
  /** Extra fields for the trace's `#meta` (source, property…). */
  readonly meta?: { readonly [k: string]: unknown };
}

/** The single variable that holds the whole state when its top-level fields cannot be the variables. */
export const STATE_VARIABLE = 'state';

const NONE = { tag: 'None', value: { '#tup': [] } } as const;

export function toItfValue(v: Data, integers: 'bigint' | 'number' = 'bigint'): ItfValue {
  if (v === null) return NONE;
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return v;
    case 'number': {
      if (!Number.isInteger(v)) return { '#unserializable': String(v) };
      const n = Object.is(v, -0) ? 0 : v;
      if (integers === 'number' && Number.isSafeInteger(n)) return n;
      return { '#bigint': BigInt(n).toString() };
    }
    default:
      break;
  }
  if (Array.isArray(v)) return v.map((x: Data) => toItfValue(x, integers));
  const o = v as { readonly [k: string]: Data };
  const keys = Object.keys(o);
  if (keys.some((k) => k.startsWith('#'))) return { '#map': keys.map((k) => [k, toItfValue(o[k], integers)] as const) };
  const out: Record<string, ItfValue> = {};
  for (const k of keys) out[k] = toItfValue(o[k], integers);
  return out;
}

function variablesOf(states: readonly Data[]): string[] | undefined {
  let keys: string[] | undefined;
  for (const s of states) {
    if (s === null || typeof s !== 'object' || Array.isArray(s)) return undefined;
    const ks = Object.keys(s);
    if (ks.some((k) => k.startsWith('#'))) return undefined;
    if (keys === undefined) keys = ks;
    else if (ks.length !== keys.length || !ks.every((k) => keys!.includes(k))) return undefined;
  }
  return keys;
}

/** A trace as an ITF object (serialise with JSON.stringify). */
export function traceToItf(trace: Trace, opts: ItfOptions = {}): ItfTrace {
  const integers = opts.integers ?? 'bigint';
  const all = [trace.initial, ...trace.steps.map((s) => s.state)];
  const vars = variablesOf(all);
  const states: ItfState[] = all.map((s, i) => {
    const step = i === 0 ? undefined : trace.steps[i - 1];
    const meta: Record<string, unknown> = { index: i };
    if (step) {
      meta.action = step.action;
      meta.params = step.params;
      if (step.actor !== undefined) meta.actor = step.actor;
      if (step.text !== undefined) meta.text = step.text;
    }
    const state: Record<string, unknown> = { '#meta': meta };
    if (vars) for (const k of vars) state[k] = toItfValue((s as Record<string, Data>)[k], integers);
    else state[STATE_VARIABLE] = toItfValue(s, integers);
    return state;
  });
  const meta: Record<string, unknown> = {
    format: 'ITF',
    'format-description': ITF_FORMAT_DESCRIPTION,
    description: 'Created by Interleave',
    ...(vars ? {} : { stateVariable: STATE_VARIABLE }),
    ...opts.meta,
  };
  return {
    '#meta': meta,
    vars: vars ?? [STATE_VARIABLE],
    states,
    ...(trace.loopStart !== undefined ? { loop: trace.loopStart } : {}),
  };
}

/** The ITF document of a report's counterexample, with the target and the failed property in `#meta`. */
export function renderItf(input: ReportInput, opts: ItfOptions = {}): string {
  const r = input.result;
  const itf = traceToItf(r.trace, {
    ...opts,
    meta: {
      source: input.title,
      ...(input.summary ? { summary: input.summary } : {}),
      verdict: r.verdict,
      ...(r.property !== undefined ? { property: r.property } : {}),
      ...(r.propertyKind !== undefined ? { propertyKind: r.propertyKind } : {}),
      ...(r.message !== undefined ? { message: r.message } : {}),
      ...(r.stuck ? { stuck: r.stuck } : {}),
      ...opts.meta,
    },
  });
  return `${JSON.stringify(itf, null, 2)}\n`;
}

/** A malformed ITF document; `path` points at the offending part (`states[2].x`). */
export class ItfError extends Error {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`ITF ${path || '(root)'}: ${problem}`);
    this.name = 'ItfError';
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An ITF expression back as Interleave data (the inverse of toItfValue; also reads what Apalache and Quint write). */
export function fromItfValue(v: unknown, path = ''): Data {
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return v;
    case 'number':
      if (!Number.isInteger(v)) throw new ItfError(path, `${v} is not an integer (ITF numbers are integers)`);
      return v;
    default:
      break;
  }
  if (Array.isArray(v)) return v.map((x, i) => fromItfValue(x, `${path}[${i}]`));
  if (!isObj(v)) throw new ItfError(path, `${v === null ? 'null' : typeof v} is not an ITF expression`);
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0].startsWith('#')) {
    const k = keys[0];
    const x = v[k];
    switch (k) {
      case '#bigint':
        if (typeof x !== 'string' || !/^-?[0-9]+$/.test(x)) throw new ItfError(path, `#bigint must be a string of digits, got ${JSON.stringify(x)}`);
        return Number(x);
      case '#tup':
      case '#set':
        if (!Array.isArray(x)) throw new ItfError(path, `${k} must hold an array`);
        return x.map((e, i) => fromItfValue(e, `${path}.${k}[${i}]`));
      case '#map': {
        if (!Array.isArray(x) || !x.every((p) => Array.isArray(p) && p.length === 2)) {
          throw new ItfError(path, '#map must hold an array of [key, value] pairs');
        }
        const pairs = x as unknown[][];
        if (pairs.every((p) => typeof p[0] === 'string')) {
          const o: Record<string, Data> = {};
          for (const [key, val] of pairs) o[key as string] = fromItfValue(val, `${path}[${JSON.stringify(key)}]`);
          return o;
        }
        return pairs.map(([key, val], i) => [fromItfValue(key, `${path}.#map[${i}][0]`), fromItfValue(val, `${path}.#map[${i}][1]`)]);
      }
      case '#unserializable': {
        if (typeof x !== 'string') throw new ItfError(path, '#unserializable must hold a string');
        const n = Number(x);
        return x.trim() !== '' && Number.isFinite(n) ? n : x;
      }
      default:
        throw new ItfError(path, `unknown ITF form '${k}'`);
    }
  }
  if (
    keys.length === 2 &&
    v.tag === 'None' &&
    isObj(v.value) &&
    Object.keys(v.value).length === 1 &&
    Array.isArray(v.value['#tup']) &&
    v.value['#tup'].length === 0
  ) {
    return null;
  }
  const o: Record<string, Data> = {};
  for (const k of keys) o[k] = fromItfValue(v[k], path ? `${path}.${k}` : k);
  return o;
}

export interface ReadItf {
  readonly trace: Trace;
  /** The trace's `#meta` (source, property… for Interleave's own traces). */
  readonly meta: { readonly [k: string]: unknown };
  readonly vars: readonly string[];
}

/**
 * Reads an ITF trace (a JSON string or the parsed object) back into an Interleave trace: the states, and for
 * each step the action, parameters, actor and sentence from the state's `#meta` (a trace from another tool,
 * without them, gets steps named `step`). Checks the shape the ADR requires and throws ItfError naming the part.
 */
export function readItf(doc: string | unknown): ReadItf {
  const t = typeof doc === 'string' ? (JSON.parse(doc) as unknown) : doc;
  if (!isObj(t)) throw new ItfError('', 'a trace must be a JSON object');
  if (!Array.isArray(t.vars) || !t.vars.every((x) => typeof x === 'string')) throw new ItfError('vars', 'must be an array of strings');
  if (!Array.isArray(t.states) || t.states.length === 0) throw new ItfError('states', 'must be a non-empty array of states');
  if (t['#meta'] !== undefined && !isObj(t['#meta'])) throw new ItfError('#meta', 'must be an object');
  const vars = t.vars as string[];
  const meta = (t['#meta'] ?? {}) as Record<string, unknown>;
  const wrapped = vars.length === 1 && meta.stateVariable === vars[0];
  const states: Data[] = [];
  const labels: { action: string; params: Params; actor?: string; text?: string }[] = [];
  t.states.forEach((s, i) => {
    const where = `states[${i}]`;
    if (!isObj(s)) throw new ItfError(where, 'a state must be an object');
    for (const v of vars) if (!(v in s)) throw new ItfError(where, `variable '${v}' is not set (every state sets every variable in vars)`);
    for (const k of Object.keys(s)) if (k !== '#meta' && !vars.includes(k)) throw new ItfError(where, `'${k}' is not a variable in vars`);
    const m = (isObj(s['#meta']) ? s['#meta'] : {}) as Record<string, unknown>;
    if (m.index !== undefined && m.index !== i) throw new ItfError(`${where}.#meta.index`, `is ${JSON.stringify(m.index)}, expected ${i}`);
    if (wrapped) states.push(fromItfValue(s[vars[0]], `${where}.${vars[0]}`));
    else {
      const o: Record<string, Data> = {};
      for (const v of vars) o[v] = fromItfValue(s[v], `${where}.${v}`);
      states.push(o);
    }
    if (i > 0) {
      labels.push({
        action: typeof m.action === 'string' ? m.action : 'step',
        params: (isObj(m.params) ? m.params : {}) as Params,
        ...(typeof m.actor === 'string' ? { actor: m.actor } : {}),
        ...(typeof m.text === 'string' ? { text: m.text } : {}),
      });
    }
  });
  let loop: number | undefined;
  if (t.loop !== undefined) {
    if (typeof t.loop !== 'number' || !Number.isInteger(t.loop) || t.loop < 0 || t.loop >= t.states.length) {
      throw new ItfError('loop', `must be the index of a state (0 to ${t.states.length - 1}), got ${JSON.stringify(t.loop)}`);
    }
    loop = t.loop;
  }
  const trace = buildTrace(
    states[0],
    labels.map((l, i) => {
      const { text, ...label } = l;
      return { label, ...(text !== undefined ? { text } : {}), state: states[i + 1] };
    }),
    loop,
  );
  return { trace, meta, vars };
}
