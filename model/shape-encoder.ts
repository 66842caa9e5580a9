/**
 * A fast path for the encoder: JavaScript generated for the shape of one sample state (its object keys and
 * array lengths), writing exactly the words the generic encoder writes. Any value that strays from the
 * shape (another key set, another length, a wide number, a nested value where a scalar was) makes the
 * compiled function return -1 and the generic encoder takes over, so the encoding of a value never depends
 * on which path encoded it.
 */
import type { Data } from './data.ts';

/** Writes the encoding of `v` into `words` (which has room for `maxWords`); returns its length, or -1. */
export type CompiledEncoder = (v: unknown, words: Int32Array, shared: SharedLookup | null) => number;

/** The generic encoder's copy-from-parent cache, for subtrees large enough to be worth a lookup. */
export interface SharedLookup {
  copy(v: object, words: Int32Array, at: number): number;
}

export interface ShapeEncoder {
  readonly encode: CompiledEncoder;
  readonly maxWords: number;
}

/** Arrays and objects this large (in words) try the copy-from-parent cache before encoding. */
const SHARE_MIN_WORDS = 12;
/** Past this many words or nodes the generated code would be too large to pay off. */
const MAX_WORDS = 4096;

interface Gen {
  lines: string[];
  vars: number;
  strings: string[];
  words: number;
}

/**
 * Compiles an encoder for the shape of `sample`. `intern` and `keyId` must be the generic encoder's own
 * (same ids), and `knownStrings` the strings worth comparing inline before falling back to `intern`.
 */
export function compileShapeEncoder(
  sample: Data,
  intern: (s: string) => number,
  knownStrings: readonly string[],
): ShapeEncoder | undefined {
  const g: Gen = { lines: [], vars: 0, strings: [], words: 0 };
  if (!emit(g, sample, 'v', intern)) return undefined;
  if (g.words > MAX_WORDS) return undefined;
  const known = knownStrings.slice(0, 24);
  const consts = known.map((s, i) => `const S${i} = K[${i}], I${i} = ${intern(s)};`).join('\n');
  const chain = known.map((_, i) => `t === S${i} ? I${i} : `).join('');
  const body = [
    '"use strict";',
    consts,
    `const OP = Object.prototype;`,
    // for-in over a plain object walks V8's enum cache without allocating, unlike Object.keys.
    `const ownKeyCount = (o) => { let n = 0; for (const k in o) n++; return n; };`,
    `const id = (t) => ${chain}intern(t);`,
    `return function encodeShape(v, w, shared) {`,
    `let p = 0, t;`,
    ...g.lines,
    `return p;`,
    `};`,
  ].join('\n');
  // eslint-disable-next-line no-new-func -- generated from the model's own shape: no user strings become code
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
    `else return -1;`,
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
  const headerAt = g.lines.length;
  if (Array.isArray(v)) {
    g.lines.push(`const ${x} = ${expr};`, `if (!Array.isArray(${x}) || ${x}.length !== ${v.length}) return -1;`);
    g.lines.push(`w[p++] = ${(v.length << 3) | 6};`);
    g.words += 1;
    const elemShapes = new Set(v.map(shapeKey));
    if (v.length > 2 && elemShapes.size === 1) {
      // One shape for every element: a loop instead of unrolled code.
      const i = `i${g.vars++}`;
      const before = g.words;
      g.lines.push(`for (let ${i} = 0; ${i} < ${v.length}; ${i}++) {`);
      if (!emit(g, v[0], `${x}[${i}]`, intern)) return false;
      g.lines.push('}');
      g.words = before + (g.words - before) * v.length;
    } else {
      for (let i = 0; i < v.length; i++) if (!emit(g, v[i], `${x}[${i}]`, intern)) return false;
    }
  } else {
    const o = v as Record<string, Data>;
    const keys = Object.keys(o).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    g.lines.push(
      `const ${x} = ${expr};`,
      `if (${x} === null || typeof ${x} !== 'object' || Array.isArray(${x}) || Object.getPrototypeOf(${x}) !== OP || ownKeyCount(${x}) !== ${keys.length}) return -1;`,
      `w[p++] = ${(keys.length << 3) | 7};`,
    );
    g.words += 1;
    for (const k of keys) {
      g.lines.push(`w[p++] = ${intern(k)};`);
      g.words += 1;
      // An absent key reads as undefined, which no scalar check accepts, so the key set is exact.
      if (!emit(g, o[k], `${x}[${JSON.stringify(k)}]`, intern)) return false;
    }
  }
  if (g.words - start >= SHARE_MIN_WORDS) {
    // Large subtree: first try copying it from the parent state's encoding.
    const bodyLines = g.lines.splice(headerAt + 1);
    const header = g.lines.pop()!;
    const name = x;
    g.lines.push(`${header.replace(`const ${name} = `, `let ${name} = `)}`);
    g.lines.push(`let c${name} = shared !== null && ${name} !== null && typeof ${name} === 'object' ? shared.copy(${name}, w, p) : -1;`);
    g.lines.push(`if (c${name} >= 0) p = c${name}; else {`, ...bodyLines, '}');
  }
  return true;
}
