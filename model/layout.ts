/**
 * A declared state layout: every field is a bool, a bounded int, one of a few names, or a fixed-length array of
 * those, so a state packs into a few 32-bit words. Reading and writing go through generated view classes
 * (`s.tm`, `s.rm.at(2)`, `d.rm.set(2, 'prepared')`) whose accessors are plain shifts and masks with the offsets
 * baked in: the explorer copies a state's words into a view and runs guards and effects without allocating.
 *
 *   const layout = defineLayout({
 *     rm: field.array(8, field.oneOf('working', 'prepared', 'committed', 'aborted')),
 *     tm: field.oneOf('init', 'committed', 'aborted'),
 *     msgCommit: field.bool(),
 *   });
 */
import { type Data, show } from './data.ts';
import { ModelError } from './system.ts';

export interface BoolField {
  readonly kind: 'bool';
}
export interface IntField {
  readonly kind: 'int';
  readonly min: number;
  readonly max: number;
}
export interface EnumField<N extends string = string> {
  readonly kind: 'enum';
  readonly names: readonly N[];
}
export type ScalarField = BoolField | IntField | EnumField;
export interface ArrayField<E extends ScalarField = ScalarField> {
  readonly kind: 'array';
  readonly length: number;
  readonly of: E;
}
export type Field = ScalarField | ArrayField;
export type Fields = { readonly [name: string]: Field };

/** Field constructors for `defineLayout`. */
export const field = {
  bool: (): BoolField => ({ kind: 'bool' }),
  /** An integer in [min, max] (both included); at most 2^31 values. */
  int: (min: number, max: number): IntField => ({ kind: 'int', min, max }),
  /** One of the given names, e.g. `field.oneOf('idle', 'busy')`. */
  oneOf: <const N extends readonly string[]>(...names: N): EnumField<N[number]> => ({ kind: 'enum', names }),
  /** `length` elements of one scalar kind, read with `at(i)` and written with `set(i, v)`. */
  array: <E extends ScalarField>(length: number, of: E): ArrayField<E> => ({ kind: 'array', length, of }),
};

type ScalarValue<F> = F extends BoolField ? boolean : F extends IntField ? number : F extends EnumField<infer N> ? N : never;

/** The plain, immutable form of a state: what traces show and `init` is written in. */
export type Plain<L extends Fields> = {
  readonly [K in keyof L]: L[K] extends ArrayField<infer E> ? readonly ScalarValue<E>[] : ScalarValue<L[K]>;
};

export interface ArrayReader<T> {
  readonly length: number;
  /** The element at `i`; an index outside the array is an error. */
  at(i: number): T;
  includes(v: T): boolean;
  indexOf(v: T): number;
  /** How many elements equal `v`. */
  count(v: T): number;
  every(pred: (v: T, i: number) => boolean): boolean;
  some(pred: (v: T, i: number) => boolean): boolean;
  toArray(): T[];
}
export interface ArrayWriter<T> extends ArrayReader<T> {
  set(i: number, v: T): void;
  fill(v: T): void;
}

type ArrayKeys<L extends Fields> = { [K in keyof L]: L[K] extends ArrayField ? K : never }[keyof L];
type ScalarKeys<L extends Fields> = Exclude<keyof L, ArrayKeys<L>>;

/** A read-only view of a state: what guards, invariants and other predicates receive. */
export type Reader<L extends Fields> = {
  readonly [K in keyof L]: L[K] extends ArrayField<infer E> ? ArrayReader<ScalarValue<E>> : ScalarValue<L[K]>;
} & { toJSON(): Plain<L> };

/** A writable view of the next state: what effects receive (it starts as a copy of the current state). */
export type Draft<L extends Fields> = { -readonly [K in ScalarKeys<L>]: ScalarValue<L[K]> } & {
  readonly [K in ArrayKeys<L>]: L[K] extends ArrayField<infer E> ? ArrayWriter<ScalarValue<E>> : never;
} & { toJSON(): Plain<L> };

/** Where one scalar lives: bit `bit` of word `word`, `bits` wide. */
export interface Slot {
  readonly path: string;
  readonly word: number;
  readonly shift: number;
  readonly bits: number;
}

export interface Layout<L extends Fields = Fields> {
  readonly fields: L;
  /** 32-bit words a state takes. */
  readonly words: number;
  readonly slots: readonly Slot[];
  /** A read-only view over `words` (the view reads whatever the array holds when it is asked). */
  reader(words: Int32Array): Reader<L>;
  /** A writable view over `words`. */
  draft(words: Int32Array): Draft<L>;
  /** Writes a plain state into `out` (from `offset`); a value outside the layout is a ModelError naming its field. */
  pack(state: Plain<L>, out: Int32Array, offset?: number, where?: string): void;
  /** The plain (frozen) state held in `words` from `offset`. */
  unpack(words: Int32Array, offset?: number): Plain<L>;
}

/** A value outside its field's domain, written by an effect: names the field and what it accepts. */
export class LayoutValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayoutValueError';
  }
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED = new Set(['toJSON', 'constructor', '__proto__', 'prototype', 'length']);

function bitsFor(f: ScalarField, where: string): number {
  switch (f.kind) {
    case 'bool':
      return 1;
    case 'int': {
      if (!Number.isSafeInteger(f.min) || !Number.isSafeInteger(f.max) || f.min > f.max) {
        throw new ModelError(`${where}: field.int(min, max) needs integers with min <= max, got (${f.min}, ${f.max})`);
      }
      const span = f.max - f.min + 1;
      if (span > 2 ** 31) throw new ModelError(`${where}: field.int(${f.min}, ${f.max}) spans more than 2^31 values`);
      return Math.max(1, Math.ceil(Math.log2(span)));
    }
    case 'enum': {
      if (!Array.isArray(f.names) || f.names.length === 0) throw new ModelError(`${where}: field.oneOf(...) needs at least one name`);
      if (f.names.some((n) => typeof n !== 'string')) throw new ModelError(`${where}: field.oneOf(...) takes strings`);
      if (new Set(f.names).size !== f.names.length) throw new ModelError(`${where}: field.oneOf(...) lists a name twice`);
      return Math.max(1, Math.ceil(Math.log2(f.names.length)));
    }
    default:
      throw new ModelError(`${where}: not a field (use field.bool(), field.int(min, max), field.oneOf(...) or field.array(n, ...))`);
  }
}

/** Checks the fields and places every scalar (first fit, never across a word boundary). */
function place(fields: Fields): { slots: Slot[]; words: number } {
  const used: number[] = [];
  const slots: Slot[] = [];
  const alloc = (path: string, bits: number) => {
    let w = used.findIndex((u) => u + bits <= 32);
    if (w < 0) {
      w = used.length;
      used.push(0);
    }
    slots.push({ path, word: w, shift: used[w], bits });
    used[w] += bits;
  };
  if (!fields || typeof fields !== 'object') throw new ModelError('defineLayout({...}) takes an object of fields');
  for (const [name, f] of Object.entries(fields)) {
    const where = `layout field '${name}'`;
    if (!FIELD_NAME.test(name) || RESERVED.has(name)) throw new ModelError(`${where}: not a usable field name (letters, digits, _; not ${[...RESERVED].join(', ')})`);
    if (f?.kind === 'array') {
      if (!Number.isSafeInteger(f.length) || f.length < 1) throw new ModelError(`${where}: field.array(length, ...) needs a length of at least 1, got ${f.length}`);
      if ((f.of as Field)?.kind === 'array') throw new ModelError(`${where}: arrays of arrays are not supported; use one array per row or flatten it`);
      const bits = bitsFor(f.of, `${where} elements`);
      for (let i = 0; i < f.length; i++) alloc(`${name}[${i}]`, bits);
    } else alloc(name, bitsFor(f as ScalarField, where));
  }
  if (slots.length === 0) throw new ModelError('defineLayout({...}) needs at least one field');
  return { slots, words: used.length };
}

/** JS source that maps a value of field `f` to its code in variable `c`, or -1 when it is not a value of `f`. */
function encodeSrc(f: ScalarField, v: string): string {
  switch (f.kind) {
    case 'bool':
      return `${v} === true ? 1 : ${v} === false ? 0 : -1`;
    case 'int':
      return `(Number.isInteger(${v}) && ${v} >= ${f.min} && ${v} <= ${f.max}) ? ${v} - ${f.min} : -1`;
    case 'enum':
      return f.names.length <= 8
        ? f.names.map((n, i) => `${v} === ${JSON.stringify(n)} ? ${i} : `).join('') + '-1'
        : `(CODES.get(${v}) ?? -1)`;
  }
}

/** JS source that turns code `c` back into a value of field `f`. */
function decodeSrc(f: ScalarField, c: string): string {
  switch (f.kind) {
    case 'bool':
      return `(${c}) !== 0`;
    case 'int':
      return f.min === 0 ? `(${c})` : `((${c}) + ${f.min})`;
    case 'enum':
      return `NAMES[${c}]`;
  }
}

function domainText(f: ScalarField): string {
  switch (f.kind) {
    case 'bool':
      return 'true or false';
    case 'int':
      return `an integer from ${f.min} to ${f.max}`;
    case 'enum':
      return `one of ${f.names.map((n) => JSON.stringify(n)).join(', ')}`;
  }
}

function badValue(path: string, f: ScalarField, v: unknown): LayoutValueError {
  return new LayoutValueError(`field ${path}: ${show(v as Data)} is not ${domainText(f)}`);
}

/** Compiles the view classes for one array field: offsets as a constant table, codes mapped inline. */
function arrayClasses(name: string, f: ArrayField, slots: readonly Slot[]): { Reader: any; Writer: any } {
  const offsets = slots.map((s) => s.word * 32 + s.shift);
  const mask = (2 ** slots[0].bits - 1) | 0;
  const el = f.of;
  const CODES = el.kind === 'enum' ? new Map(el.names.map((n, i) => [n, i])) : undefined;
  const NAMES = el.kind === 'enum' ? el.names : undefined;
  const len = f.length;
  const src = `
    const index = (i) => { const o = OFF[i]; if (o === undefined) throw new LayoutValueError('field ${name}: index ' + String(i) + ' is outside 0..${len - 1}'); return o; };
    const code = (v, what) => { const c = ${encodeSrc(el, 'v')}; if (c < 0) throw badValue('${name}' + what, EL, v); return c; };
    class Reader {
      constructor(w) { this.$w = w; }
      get length() { return ${len}; }
      at(i) { const o = index(i); return ${decodeSrc(el, `(this.$w[o >>> 5] >>> (o & 31)) & ${mask}`)}; }
      indexOf(v) { const c = code(v, '.indexOf'); const w = this.$w; for (let i = 0; i < ${len}; i++) { const o = OFF[i]; if (((w[o >>> 5] >>> (o & 31)) & ${mask}) === c) return i; } return -1; }
      includes(v) { return this.indexOf(v) >= 0; }
      count(v) { const c = code(v, '.count'); const w = this.$w; let n = 0; for (let i = 0; i < ${len}; i++) { const o = OFF[i]; if (((w[o >>> 5] >>> (o & 31)) & ${mask}) === c) n++; } return n; }
      every(p) { for (let i = 0; i < ${len}; i++) if (!p(this.at(i), i)) return false; return true; }
      some(p) { for (let i = 0; i < ${len}; i++) if (p(this.at(i), i)) return true; return false; }
      toArray() { const out = []; for (let i = 0; i < ${len}; i++) out.push(this.at(i)); return out; }
      toJSON() { return this.toArray(); }
    }
    class Writer extends Reader {
      set(i, v) { const o = index(i); const c = code(v, '[' + i + ']'); const w = this.$w; const k = o >>> 5, s = o & 31; w[k] = (w[k] & ~(${mask} << s)) | (c << s); }
      fill(v) { const c = code(v, '.fill'); const w = this.$w; for (let i = 0; i < ${len}; i++) { const o = OFF[i]; const k = o >>> 5, s = o & 31; w[k] = (w[k] & ~(${mask} << s)) | (c << s); } }
    }
    return { Reader, Writer };`;
  return new Function('OFF', 'EL', 'CODES', 'NAMES', 'LayoutValueError', 'badValue', src)(offsets, el, CODES, NAMES, LayoutValueError, badValue);
}

/** Compiles a layout: places its fields and generates its reader and draft classes. */
export function defineLayout<const L extends Fields>(fields: L): Layout<L> {
  const { slots, words } = place(fields);
  const byName = new Map<string, Slot[]>();
  for (const s of slots) {
    const name = s.path.replace(/\[\d+\]$/, '');
    if (!byName.has(name)) byName.set(name, []);
    byName.get(name)!.push(s);
  }
  const entries = Object.entries(fields);
  const arrays = new Map(entries.filter(([, f]) => f.kind === 'array').map(([n, f]) => [n, arrayClasses(n, f as ArrayField, byName.get(n)!)]));

  // Scalars: getters (and, on drafts, setters) with the word, shift and mask as literals.
  const consts: unknown[] = [];
  const constName = (v: unknown) => {
    consts.push(v);
    return `K${consts.length - 1}`;
  };
  const getters: string[] = [];
  const setters: string[] = [];
  const readerInit: string[] = [];
  const draftInit: string[] = [];
  for (const [name, f] of entries) {
    if (f.kind === 'array') {
      const cls = constName(arrays.get(name));
      readerInit.push(`this.${name} = new ${cls}.Reader(w);`);
      draftInit.push(`this.${name} = new ${cls}.Writer(w);`);
      continue;
    }
    const s = byName.get(name)![0];
    const mask = (2 ** s.bits - 1) | 0;
    const names = f.kind === 'enum' ? constName(f.names) : '';
    const codes = f.kind === 'enum' ? constName(new Map(f.names.map((n, i) => [n, i]))) : '';
    const fieldConst = constName(f);
    getters.push(`get ${name}() { ${f.kind === 'enum' ? `const NAMES = ${names}; ` : ''}return ${decodeSrc(f, `(this.$w[${s.word}] >>> ${s.shift}) & ${mask}`)}; }`);
    setters.push(
      `set ${name}(v) { ${f.kind === 'enum' ? `const CODES = ${codes}; ` : ''}const c = ${encodeSrc(f, 'v')}; if (c < 0) throw badValue('${name}', ${fieldConst}, v); ` +
        `const w = this.$w; w[${s.word}] = (w[${s.word}] & ${~(mask << s.shift)}) | (c << ${s.shift}); }`,
    );
  }
  const src = `
    class Reader {
      constructor(w) { this.$w = w; ${readerInit.join(' ')} }
      ${getters.join('\n')}
      toJSON() { return unpack(this.$w, 0); }
    }
    class Draft {
      constructor(w) { this.$w = w; ${draftInit.join(' ')} }
      ${getters.join('\n')}
      ${setters.join('\n')}
      toJSON() { return unpack(this.$w, 0); }
    }
    return { Reader, Draft };`;
  let unpack: (w: Int32Array, off: number) => Plain<L>;
  const classes = new Function(...consts.map((_, i) => `K${i}`), 'badValue', 'unpack', src)(...consts, badValue, (w: Int32Array, off: number) => unpack(w, off));

  // Pack and unpack walk the slots; they are off the hot path (initial states, traces, the generic engines).
  const scalarOf = (name: string): ScalarField => {
    const f = fields[name];
    return f.kind === 'array' ? f.of : f;
  };
  const codeOf = (f: ScalarField, v: unknown): number => {
    switch (f.kind) {
      case 'bool':
        return v === true ? 1 : v === false ? 0 : -1;
      case 'int':
        return Number.isInteger(v) && (v as number) >= f.min && (v as number) <= f.max ? (v as number) - f.min : -1;
      case 'enum':
        return f.names.indexOf(v as string);
    }
  };
  const valueOf = (f: ScalarField, c: number): boolean | number | string =>
    f.kind === 'bool' ? c !== 0 : f.kind === 'int' ? c + f.min : f.names[c];

  unpack = (w, off) => {
    const out: Record<string, unknown> = {};
    for (const [name, f] of entries) {
      const ss = byName.get(name)!;
      const el = scalarOf(name);
      const read = (s: Slot) => valueOf(el, (w[off + s.word] >>> s.shift) & ((2 ** s.bits - 1) | 0));
      out[name] = f.kind === 'array' ? Object.freeze(ss.map(read)) : read(ss[0]);
    }
    return Object.freeze(out) as Plain<L>;
  };

  const pack = (state: Plain<L>, out: Int32Array, offset = 0, where = 'state') => {
    if (!state || typeof state !== 'object' || Array.isArray(state)) throw new ModelError(`${where}: must be an object with the layout's fields (${entries.map(([n]) => n).join(', ')})`);
    for (const key of Object.keys(state)) {
      if (!(key in fields)) throw new ModelError(`${where}: field '${key}' is not in the layout (fields: ${entries.map(([n]) => n).join(', ')})`);
    }
    for (let i = 0; i < words; i++) out[offset + i] = 0;
    for (const [name, f] of entries) {
      const v = (state as Record<string, unknown>)[name];
      const el = scalarOf(name);
      const ss = byName.get(name)!;
      const put = (s: Slot, x: unknown, path: string) => {
        const c = codeOf(el, x);
        if (c < 0) throw new ModelError(`${where}: field ${path}: ${show(x as Data)} is not ${domainText(el)}`);
        out[offset + s.word] |= c << s.shift;
      };
      if (f.kind === 'array') {
        if (!Array.isArray(v) || v.length !== f.length) throw new ModelError(`${where}: field ${name}: must be an array of ${f.length} elements, got ${show(v as Data)}`);
        ss.forEach((s, i) => put(s, v[i], `${name}[${i}]`));
      } else put(ss[0], v, name);
    }
  };

  return {
    fields,
    words,
    slots,
    reader: (w) => new classes.Reader(w),
    draft: (w) => new classes.Draft(w),
    pack,
    unpack: (w, off = 0) => unpack(w, off),
  };
}
