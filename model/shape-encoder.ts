/**
 * A fast path for the encoder: JavaScript generated for the shape of one sample state (its object keys and
 * array lengths), writing exactly the words the generic encoder writes. A subtree that strays from the shape
 * (another key set, another length, a wide number, a nested value where a scalar was) is handed to the
 * generic encoder at that position, so the encoding of a value never depends on which path encoded it, and
 * a state whose queues grow and shrink still takes the fast path everywhere else.
 */
import type { Data } from './data.ts';

/** The generic encoder's services the compiled code calls back into. */
export interface EncoderHooks {
  /** Encodes `v` generically at word `p`; returns the new end. May reallocate the word buffer. */
  readonly generic: (v: unknown, p: number) => number;
  /** The current word buffer, grown to hold at least `p + need` words. */
  readonly room: (p: number, need: number) => Int32Array;
  /** Copies a subtree shared with the parent state (see Encoder): returns the new end, or -1. */
  readonly copyShared: ((v: object, p: number) => number) | null;
}

/** Writes the encoding of `v` from word 0 of `hooks.room(0, maxWords)`; returns its length. */
export type CompiledEncoder = (v: unknown, hooks: EncoderHooks) => number;

export interface ShapeEncoder {
  readonly encode: CompiledEncoder;
  /** Words the compiled code writes between fallbacks, at most (it re-checks room after each fallback). */
  readonly maxWords: number;
}

/** Arrays and objects this large (in words) try the copy-from-parent cache before encoding. */
const SHARE_MIN_WORDS = 12;
/** Past this many words the generated code would be too large to pay off. */
const MAX_WORDS = 4096;

interface Gen {
  lines: string[];
  vars: number;
  words: number;
}

/** After any generic fallback: continue writing into the (possibly reallocated) buffer, with room. */
const FALLBACK = (expr: string) => `p = H.generic(${expr}, p); w = H.room(p, MAXW);`;

export function compileShapeEncoder(
  sample: Data,
  intern: (s: string) => number,
  knownStrings: readonly string[],
): ShapeEncoder | undefined {
  const g: Gen = { lines: [], vars: 0, words: 0 };
  if (!emit(g, sample, 'v', intern)) return undefined;
  if (g.words > MAX_WORDS) return undefined;
  const known = knownStrings.slice(0, 24);
  const consts = known.map((s, i) => `const S${i} = K[${i}], I${i} = ${intern(s)};`).join('\n');
  const chain = known.map((_, i) => `t === S${i} ? I${i} : `).join('');
  const body = [
    '"use strict";',
    consts,
    `const OP = Object.prototype;`,
    `const MAXW = ${g.words};`,
    // for-in over a plain object walks V8's enum cache without allocating, unlike Object.keys.
    `const ownKeyCount = (o) => { let n = 0; for (const k in o) n++; return n; };`,
    `const id = (t) => ${chain}intern(t);`,
    `return function encodeShape(v, H) {`,
    `let p = 0, t, c;`,
    `let w = H.room(0, MAXW);`,
    ...g.lines,
    `return p;`,
    `};`,
  ].join('\n');
  // Generated from the model's own shape: keys are embedded through JSON.stringify, no other text becomes code.
  const make = new Function('K', 'intern', body) as (k: readonly string[], i: (s: string) => number) => CompiledEncoder;
  return { encode: make(known, intern), maxWords: g.words };
}

function scalar(g: Gen, expr: string): void {
  g.words += 1;
  g.lines.push(
    `t = ${expr};`,
    `if (typeof t === 'string') w[p++] = (id(t) << 3) | 5;`,
    `else if (t === true) w[p++] = 2; else if (t === false) w[p++] = 1; else if (t === null) w[p++] = 0;`,
    `else if (typeof t === 'number' && (t | 0) === t && t >= -134217728 && t <= 134217727) w[p++] = (t << 3) | 3;`,
    `else { ${FALLBACK('t')} }`,
  );
}

function isScalar(v: Data): boolean {
  return v === null || typeof v !== 'object';
}

function shapeKey(v: Data): string {
  if (isScalar(v)) return 's';
  if (Array.isArray(v)) return `[${v.length}:${v.map(shapeKey).join(',')}]`;
  const o = v as Record<string, Data>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${k}:${shapeKey(o[k])}`)
    .join(',')}}`;
}

function emit(g: Gen, v: Data, expr: string, intern: (s: string) => number): boolean {
  if (g.words > MAX_WORDS) return false;
  if (isScalar(v)) {
    scalar(g, expr);
    return true;
  }
  const x = `x${g.vars++}`;
  const start = g.words;
  const inner: string[] = [];
  const outer = g.lines;
  g.lines = inner;
  let test: string;
  if (Array.isArray(v)) {
    test = `Array.isArray(${x}) && ${x}.length === ${v.length}`;
    inner.push(`w[p++] = ${(v.length << 3) | 6};`);
    g.words += 1;
    const elemShapes = new Set(v.map(shapeKey));
    if (v.length > 2 && elemShapes.size === 1) {
      // One shape for every element: a loop instead of unrolled code.
      const i = `i${g.vars++}`;
      const before = g.words;
      inner.push(`for (let ${i} = 0; ${i} < ${v.length}; ${i}++) {`);
      if (!emit(g, v[0], `${x}[${i}]`, intern)) return false;
      inner.push('}');
      g.words = before + (g.words - before) * v.length;
    } else {
      for (let i = 0; i < v.length; i++) if (!emit(g, v[i], `${x}[${i}]`, intern)) return false;
    }
  } else {
    const o = v as Record<string, Data>;
    const keys = Object.keys(o).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    test =
      `${x} !== null && typeof ${x} === 'object' && !Array.isArray(${x}) && Object.getPrototypeOf(${x}) === OP && ` +
      `ownKeyCount(${x}) === ${keys.length}` +
      // Every expected key present (an absent one reads as undefined): with the count, the key set is exact.
      keys.map((k) => ` && ${x}[${JSON.stringify(k)}] !== undefined`).join('');
    inner.push(`w[p++] = ${(keys.length << 3) | 7};`);
    g.words += 1;
    for (const k of keys) {
      inner.push(`w[p++] = ${intern(k)};`);
      g.words += 1;
      if (!emit(g, o[k], `${x}[${JSON.stringify(k)}]`, intern)) return false;
    }
  }
  g.lines = outer;
  outer.push(`const ${x} = ${expr};`);
  const shared = g.words - start >= SHARE_MIN_WORDS;
  if (shared) {
    // Large subtree: first try copying it from the parent state's encoding.
    outer.push(`c = H.copyShared !== null && ${x} !== null && typeof ${x} === 'object' ? H.copyShared(${x}, p) : -1;`);
    outer.push(`if (c >= 0) { p = c; w = H.room(p, MAXW); } else if (${test}) {`, ...inner, `} else { ${FALLBACK(x)} }`);
  } else {
    outer.push(`if (${test}) {`, ...inner, `} else { ${FALLBACK(x)} }`);
  }
  return true;
}
