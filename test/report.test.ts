/**
 * Reports: every violated variant (each built-in protocol, the checker's examples, the guide's examples) renders
 * as text, Markdown with a Mermaid diagram, ITF (valid against the ADR-015 schema and read back to the same
 * trace), HTML and dot; plus the pieces: lane inference, escaping, ITF encodings, the state graph.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { builtinProtocols } from '../spec/index.ts';
import { type Data, actionsOf, buildTrace, check, defineSystem, eventually, formatTrace } from '../model/index.ts';
import { isProtocol } from '../model/registry.ts';
import type { System } from '../model/system.ts';
import type { Trace } from '../model/trace.ts';
import {
  GraphTooLarge,
  ITF_SCHEMA_URL,
  ItfError,
  type ReportInput,
  exploreGraph,
  fromItfValue,
  kindOfAction,
  lanesOf,
  mdCode,
  mermaidSequence,
  mermaidText,
  pathGraph,
  readItf,
  renderDot,
  renderHtml,
  renderItf,
  renderMarkdown,
  renderText,
  toItfValue,
  traceToItf,
} from '../model/report/index.ts';

interface Case {
  /** `protocol:variant` or `file:system`. */
  readonly name: string;
  readonly summary?: string;
  readonly build: () => System<any>;
  /** The property the case is expected to fail (undefined: a user system, whatever it fails). */
  readonly property?: string;
}

function isSystem(x: unknown): x is System<unknown> {
  return typeof x === 'object' && x !== null && 'instances' in x && 'inits' in x && 'spec' in x;
}

function casesOf(mod: Record<string, unknown>, label: string): Case[] {
  const exported = mod.default ?? mod.protocol ?? mod.system;
  if (isProtocol(exported)) {
    return exported.variants
      .filter((v) => v.expect.verdict === 'violated')
      .map((v) => ({
        name: `${exported.name}:${v.name}`,
        summary: v.summary,
        build: () => v.build(v.config ?? exported.configs.check),
        property: v.expect.verdict === 'violated' ? v.expect.property : undefined,
      }));
  }
  if (isSystem(exported)) return [{ name: `${label}:${exported.name}`, build: () => exported }];
  return [];
}

/** Every violated variant of every built-in protocol, plus spec/examples and docs/examples, loaded now. */
async function violatedCases(): Promise<Case[]> {
  const out: Case[] = [];
  for (const p of builtinProtocols) {
    const protocol = await p.load();
    out.push(...casesOf({ default: protocol }, p.name));
  }
  for (const dir of ['spec/examples', 'docs/examples']) {
    for (const f of readdirSync(dir).filter((x) => /\.m?ts$/.test(x) && !/\.test\.m?ts$/.test(x) && !/config/.test(x)).sort()) {
      const mod = (await import(pathToFileURL(join(process.cwd(), dir, f)).href)) as Record<string, unknown>;
      out.push(...casesOf(mod, `${dir}/${f}`));
    }
  }
  return out;
}

const MM_TEXT = String.raw`(?:[^;#<>\n]|#\d+;|<br/>)*`;
const MM_LINES = [
  /^sequenceDiagram$/,
  new RegExp(String.raw`^  participant (L\d+) as ${MM_TEXT}$`),
  new RegExp(String.raw`^ +(L\d+)(?:->>|-->>|-\)|--\))(L\d+): ${MM_TEXT}$`),
  new RegExp(String.raw`^ +Note over (L\d+)(?:,(L\d+))?: ${MM_TEXT}$`),
  new RegExp(String.raw`^  loop ${MM_TEXT}$`),
  /^  end$/,
];

/**
 * Checks a Mermaid sequence diagram the way Interleave writes them: every line one known statement, no raw
 * `;` `#` `<` `>` in text (only entity codes and `<br/>`), participants declared before use, loops closed.
 * Returns the problems (empty when fine).
 */
function mermaidProblems(src: string): string[] {
  const problems: string[] = [];
  const declared = new Set<string>();
  let depth = 0;
  src.split('\n').forEach((line, i) => {
    const re = MM_LINES.find((r) => r.test(line));
    if (!re) {
      problems.push(`line ${i + 1}: not a statement: ${line}`);
      return;
    }
    const m = re.exec(line)!;
    if (line.startsWith('  participant')) declared.add(m[1]);
    else for (const id of m.slice(1).filter(Boolean)) if (!declared.has(id)) problems.push(`line ${i + 1}: ${id} is not declared`);
    if (/^  loop /.test(line)) depth++;
    if (line === '  end' && --depth < 0) problems.push(`line ${i + 1}: end without loop`);
  });
  if (depth !== 0) problems.push('a loop is not closed');
  if (!src.startsWith('sequenceDiagram\n')) problems.push('does not start with sequenceDiagram');
  return problems;
}

let validator: ReturnType<Ajv['compile']> | undefined;

/** Validates a document against model/report/itf.schema.json (ADR-015); returns the errors (empty when valid). */
function itfSchemaErrors(doc: unknown): string[] {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, strict: true });
    validator = ajv.compile(JSON.parse(readFileSync(ITF_SCHEMA_URL, 'utf8')) as object);
  }
  if (validator(doc)) return [];
  return (validator.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? ''}`);
}

// ---- tests ----

const cases = await violatedCases();
/** Graphviz, when installed: `nop` parses a graph without laying it out; `dot` lays out the small ones. */
const NOP = existsSync('/usr/bin/nop') ? '/usr/bin/nop' : undefined;
const DOT = existsSync('/usr/bin/dot') ? '/usr/bin/dot' : undefined;

function inputOf(name: string, system: System<any>, summary?: string): ReportInput {
  const result = check(system);
  if (result.verdict !== 'violated' || !result.trace) throw new Error(`${name}: no counterexample (${result.verdict})`);
  return { title: name, ...(summary ? { summary } : {}), result: result as ReportInput['result'], system };
}

function mermaidOf(md: string): string {
  const m = /```mermaid\n([\s\S]*?)\n```/.exec(md);
  if (!m) throw new Error('no mermaid block');
  return m[1];
}

/** The ADR's rules JSON Schema cannot state: every state sets every variable, indices in order, loop in range. */
function itfRuleErrors(doc: { vars: string[]; states: Record<string, unknown>[]; loop?: number }): string[] {
  const errors: string[] = [];
  doc.states.forEach((s, i) => {
    for (const v of doc.vars) if (!(v in s)) errors.push(`states[${i}] lacks ${v}`);
    if ((s['#meta'] as { index?: number } | undefined)?.index !== i) errors.push(`states[${i}] has index ${JSON.stringify(s['#meta'])}`);
  });
  if (doc.loop !== undefined && (doc.loop < 0 || doc.loop >= doc.states.length)) errors.push(`loop ${doc.loop} out of range`);
  return errors;
}

function stripped(t: Trace) {
  return { initial: t.initial, loopStart: t.loopStart, steps: t.steps };
}

/** Renders one counterexample in every format and checks each. */
function assertRendersEverywhere(input: ReportInput): void {
  const t = input.result.trace;
  const n = t.steps.length;

  const text = renderText(input);
  expect(text).toContain(formatTrace(t));
  expect(text.split('\n')[0]).toContain(input.result.message);

  const md = renderMarkdown(input);
  expect(md).toMatch(/^# Counterexample: /);
  expect(md).toContain('**Property that failed:**');
  expect(md.split('\n').filter((l) => /^\| \d+( ↻)? \|/.test(l))).toHaveLength(n + 1);
  const mm = mermaidOf(md);
  expect(mermaidProblems(mm)).toEqual([]);
  for (const s of t.steps) expect(mm).toMatch(new RegExp(`: ${s.index}\\. `));
  if (t.loopStart !== undefined && t.loopStart < n) expect(mm).toMatch(/\n {2}loop [^\n]*\n[\s\S]*\n {2}end(\n|$)/);

  const itfText = renderItf(input);
  const itf = JSON.parse(itfText);
  expect(itfSchemaErrors(itf)).toEqual([]);
  expect(itfRuleErrors(itf)).toEqual([]);
  expect(itf.states).toHaveLength(n + 1);
  expect(itf['#meta']).toMatchObject({ format: 'ITF', source: input.title, property: input.result.property });
  if (t.loopStart !== undefined) expect(itf.loop).toBe(t.loopStart);
  const back = readItf(itfText);
  expect(stripped(back.trace)).toEqual(stripped(t));

  const html = renderHtml(input);
  expect(html).toMatch(/^<!doctype html>/);
  expect(html).not.toMatch(/<[^>]*\s(src|href)\s*=|url\(|@import/i);
  const data = JSON.parse(/<script id="trace-data" type="application\/json">([\s\S]*?)<\/script>/.exec(html)![1]);
  const lanes = lanesOf(t);
  expect(data.lanes).toEqual(lanes.names.length > 0 ? lanes.names : ['system']);
  expect(data.steps).toHaveLength(n);
  expect(data.steps.map((s: { changes: { path: string }[] }) => s.changes.map((c) => c.path))).toEqual(t.steps.map((s) => s.changes.map((c) => c.path)));
  expect(html.match(/class="lane-head"/g)).toHaveLength(data.lanes.length);
  expect(html.match(/class="step /g) ?? []).toHaveLength(n);

  let dot: string;
  try {
    dot = renderDot(input);
  } catch (e) {
    expect(e).toBeInstanceOf(GraphTooLarge);
    expect((e as Error).message).toMatch(/has more than 2000 states/);
    dot = renderDot(input, { scope: 'path' });
  }
  expect(dot).toMatch(/^digraph "/);
  expect(dot.trimEnd().endsWith('}')).toBe(true);
  // Every step of the counterexample is a highlighted edge.
  for (const s of t.steps) {
    const label = `${s.actor ? `[${s.actor}] ` : ''}${s.action}`;
    const highlighted = dot.split('\n').filter((l) => l.includes('->') && /penwidth=2\.5/.test(l));
    expect(highlighted.some((l) => l.includes(label.replace(/\\/g, '\\\\').replace(/"/g, '\\"')))).toBe(true);
  }
  if (NOP) {
    const r = spawnSync(NOP, [], { input: dot, encoding: 'utf8', maxBuffer: 1 << 28 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  }
  if (DOT && (dot.match(/ -> /g) ?? []).length <= 300) {
    const r = spawnSync(DOT, ['-Tsvg'], { input: dot, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  }
}

describe('every violated variant renders in every format', () => {
  it('covers the built-in protocols, the examples and the guide', () => {
    const names = cases.map((c) => c.name);
    expect(names).toContain('peterson:turn-before-flag');
    expect(names).toContain('dining-philosophers:left-first');
    expect(names).toContain('kv-double-buffer:reuse-on-post');
    expect(names.some((n) => n.endsWith(':kv-double-buffer-draft'))).toBe(true);
    for (const p of builtinProtocols) expect(names.some((n) => n.startsWith(`${p.name}:`))).toBe(true);
  });

  for (const c of cases) {
    it(c.name, () => {
      const system = c.build();
      const result = check(system);
      expect(result.verdict).toBe('violated');
      if (c.property !== undefined) expect(result.property).toBe(c.property);
      if (!result.trace) {
        // A reachability goal no state meets has no trace: `interleave trace` says so (exit 2).
        expect(result.propertyKind).toBe('reachability');
        return;
      }
      assertRendersEverywhere({ title: c.name, ...(c.summary ? { summary: c.summary } : {}), result: result as ReportInput['result'], system });
    });
  }
});

// ---- lanes ----

function traceOf(initial: Data, steps: { action: string; params?: Record<string, Data>; actor?: string; text?: string; state: Data }[], loopStart?: number): Trace {
  return buildTrace(
    initial,
    steps.map((s) => ({
      label: { action: s.action, params: s.params ?? {}, ...(s.actor !== undefined ? { actor: s.actor } : {}) },
      ...(s.text !== undefined ? { text: s.text } : {}),
      state: s.state,
    })),
    loopStart,
  );
}

describe('lanes: one per actor, messages inferred from the steps', () => {
  const t = traceOf({ n: 0 }, [
    { action: 'isend', params: { dst: 1 }, actor: 'rank 0 main', state: { n: 1 } },
    { action: 'irecv', params: { src: 0 }, actor: 'rank 1 main', state: { n: 2 } },
    { action: 'waitEvent', params: { stream: 'C' }, actor: 'rank 0 main', state: { n: 3 } },
    { action: 'exec', params: { rank: 0, stream: 'C' }, actor: 'rank 0 stream C', state: { n: 4 } },
    { action: 'allreduce', params: { rank: 0 }, actor: 'rank 0 main', state: { n: 5 } },
    { action: 'alloc', params: { rank: 1 }, actor: 'rank 1 main', text: 'rank 1 main: allocate x on stream C', state: { n: 6 } },
    { action: 'signal', actor: 'rank 1 main', text: 'rank 1 main raises the flag for rank 0 stream C', state: { n: 7 } },
    { action: 'send', params: { peer: 3 }, actor: 'rank 1 main', state: { n: 8 } },
    { action: 'transfer', params: { from: 0, to: 1 }, actor: 'nccl', state: { n: 9 } },
    { action: 'all_gather', actor: 'group tp0', text: 'group tp0 (ranks 0, 1): all_gather runs on every rank', state: { n: 10 } },
  ]);
  const l = lanesOf(t);
  const at = (name: string) => l.names.indexOf(name);

  it('orders lanes by rank, then first appearance; actors without a rank last', () => {
    expect(l.names).toEqual(['rank 0 main', 'rank 0 stream C', 'rank 1 main', 'rank 3', 'nccl', 'group tp0']);
  });
  it('a send to a peer rank goes from the actor to the same role on that rank', () => {
    expect(l.steps[0]).toMatchObject({ kind: 'send', from: at('rank 0 main'), to: at('rank 1 main') });
  });
  it('a receive from a peer comes into the actor', () => {
    expect(l.steps[1]).toMatchObject({ kind: 'receive', from: at('rank 0 main'), to: at('rank 1 main') });
  });
  it('an event wait on a stream of the same rank comes from that stream', () => {
    expect(l.steps[2]).toMatchObject({ kind: 'wait', from: at('rank 0 stream C'), to: at('rank 0 main') });
  });
  it('a step naming only itself is local', () => {
    expect(l.steps[3]).toMatchObject({ kind: 'local', lane: at('rank 0 stream C') });
    expect(l.steps[3].from).toBeUndefined();
    expect(l.steps[5]).toMatchObject({ kind: 'local' });
  });
  it('a collective spans the lanes of its role', () => {
    expect(l.steps[4]).toMatchObject({ kind: 'collective', span: [at('rank 0 main'), at('rank 1 main')] });
    expect(l.steps[9]).toMatchObject({ kind: 'collective', span: [at('rank 0 main'), at('rank 0 stream C'), at('rank 1 main')] });
  });
  it('a sentence naming another lane makes a message; an unknown peer rank gets a lane', () => {
    expect(l.steps[6]).toMatchObject({ kind: 'record', from: at('rank 1 main'), to: at('rank 0 stream C') });
    expect(l.steps[7]).toMatchObject({ kind: 'send', from: at('rank 1 main'), to: at('rank 3') });
  });
  it('a transfer naming both ends runs between them, whoever carries it', () => {
    expect(l.steps[8]).toMatchObject({ kind: 'send', lane: at('nccl'), from: at('rank 0 main'), to: at('rank 1 main') });
  });
  it('numbered actors other than ranks find their peers by number', () => {
    const u = lanesOf(traceOf({ x: 0 }, [
      { action: 'notify', params: { other: 1 }, actor: 'thread 0', state: { x: 1 } },
      { action: 'poll', actor: 'thread 1', state: { x: 2 } },
    ]));
    expect(u.names).toEqual(['thread 0', 'thread 1']);
    expect(u.steps[0]).toMatchObject({ from: 0, to: 1 });
  });
  it('reads the kind of a step from its action name', () => {
    expect(kindOfAction('isendTensorDict')).toBe('send');
    expect(kindOfAction('irecv_tensor_dict')).toBe('receive');
    expect(kindOfAction('recordEvent')).toBe('record');
    expect(kindOfAction('streamWaitEvent')).toBe('wait');
    expect(kindOfAction('all_reduce')).toBe('collective');
    expect(kindOfAction('allGather')).toBe('collective');
    expect(kindOfAction('computeChunk')).toBe('local');
  });
});

// ---- Mermaid and Markdown ----

describe('Mermaid and Markdown escaping', () => {
  it('turns the characters Mermaid reads as syntax into entity codes', () => {
    expect(mermaidText('a; b # c <d> `e`\nf')).toBe('a#59; b #35; c #60;d#62; #96;e#96; f');
    expect(mermaidText('pc[0]: "idle" → {x: 1}, y - z + w')).toBe('pc[0]: "idle" → {x: 1}, y - z + w');
  });

  it('a hostile step still gives a well-formed diagram and table', () => {
    const t = traceOf({ 'a|b': '`x`' }, [
      { action: 'send', params: { dst: 1 }, actor: 'rank 0 <main>; #1', text: 'sends ```; end\nloop', state: { 'a|b': 'y|z' } },
      { action: 'recv', params: { src: 0 }, actor: 'rank 1 main', text: '%% comment ; #9829;', state: { 'a|b': '``' } },
    ]);
    const input: ReportInput = {
      title: 'hostile|title',
      result: { verdict: 'violated', property: 'p', propertyKind: 'invariant', message: "invariant 'p' is violated", trace: t, stats: { states: 3, transitions: 2, depth: 2, seconds: 0, statesPerSecond: 0, bytesPerState: 0, peakRssMB: 0 } },
    };
    const md = renderMarkdown(input);
    const mm = mermaidOf(md);
    expect(mermaidProblems(mm)).toEqual([]);
    expect(mm).toContain('participant L0 as rank 0 #60;main#62;#59; #35;1');
    // Table rows keep their four cells: pipes inside values are escaped.
    for (const row of md.split('\n').filter((l) => /^\| \d/.test(l))) expect(row.split(/(?<!\\)\|/).length).toBe(6);
    expect(mdCode('a`b|c')).toBe('``a`b\\|c``');
  });

  it('marks the cycle of a lasso with a loop block', () => {
    const t = traceOf({ s: 0 }, [
      { action: 'raise', actor: 'worker', state: { s: 1 } },
      { action: 'poll', actor: 'main', state: { s: 1 } },
      { action: 'spin', actor: 'main', state: { s: 1 } },
    ], 1);
    const mm = mermaidSequence(t);
    expect(mermaidProblems(mm)).toEqual([]);
    expect(mm).toMatch(/Note over L0: 1\. raise[^\n]*\n {2}loop cycle: back to the state after step 1, forever\n {4}Note over L1: 2\. poll[^\n]*\n {4}Note over L1: 3\. spin[^\n]*\n {2}end$/);
  });

  it('a lasso whose cycle is empty (the run stops where nothing is enabled) says so everywhere', () => {
    const t = traceOf({ s: 0 }, [{ action: 'stop', actor: 'main', state: { s: 1 } }], 1);
    const mm = mermaidSequence(t);
    expect(mermaidProblems(mm)).toEqual([]);
    expect(mm).not.toMatch(/loop/);
    expect(mm).toMatch(/no action is enabled any more/);
    const input: ReportInput = {
      title: 'stops',
      result: { verdict: 'violated', property: 'p', propertyKind: 'liveness', message: 'liveness p fails', trace: t, stats: { states: 2, transitions: 1, depth: 1, seconds: 0, statesPerSecond: 0, bytesPerState: 0, peakRssMB: 0 } },
    };
    expect(renderMarkdown(input)).toMatch(/After step 1 no action is enabled any more/);
    expect(renderHtml(input)).toMatch(/After step 1 no action is enabled any more/);
    const itf = JSON.parse(renderItf(input));
    expect(itf.loop).toBe(1);
    expect(itfSchemaErrors(itf)).toEqual([]);
    expect(readItf(itf).trace.loopStart).toBe(1);
  });

  it('a trace with no steps (the initial state fails) is still a diagram', () => {
    const mm = mermaidSequence(traceOf({ s: 0 }, []));
    expect(mermaidProblems(mm)).toEqual([]);
  });
});

// ---- ITF ----

describe('ITF (ADR-015)', () => {
  it('encodes plain data: integers as #bigint, null as None, fractions as unserializable, #-keys as a map', () => {
    expect(toItfValue(3)).toEqual({ '#bigint': '3' });
    expect(toItfValue(-0)).toEqual({ '#bigint': '0' });
    expect(toItfValue(1e21)).toEqual({ '#bigint': '1000000000000000000000' });
    expect(toItfValue(3, 'number')).toBe(3);
    expect(toItfValue(2 ** 60, 'number')).toEqual({ '#bigint': String(2n ** 60n) });
    expect(toItfValue(null)).toEqual({ tag: 'None', value: { '#tup': [] } });
    expect(toItfValue(0.5)).toEqual({ '#unserializable': '0.5' });
    expect(toItfValue({ '#x': 1, y: [true, 'a'] })).toEqual({ '#map': [['#x', { '#bigint': '1' }], ['y', [true, 'a']]] });
    for (const v of [3, -7, 1e21, null, 0.25, 'x', [1, [2, null]], { a: { b: [] }, '#c': {} }, {}, []] as Data[]) {
      expect(fromItfValue(toItfValue(v))).toEqual(v);
      expect(fromItfValue(JSON.parse(JSON.stringify(toItfValue(v, 'number'))))).toEqual(v);
      expect(itfSchemaErrors({ vars: ['v'], states: [{ v: toItfValue(v) }] })).toEqual([]);
    }
  });

  it('makes the top-level fields the variables, or wraps states that are not alike', () => {
    const alike = traceToItf(traceOf({ a: 1, b: 'x' }, [{ action: 'go', state: { a: 2, b: 'y' } }]));
    expect(alike.vars).toEqual(['a', 'b']);
    expect(alike.states[1]).toEqual({ '#meta': { index: 1, action: 'go', params: {} }, a: { '#bigint': '2' }, b: 'y' });
    const unlike = traceToItf(traceOf({ a: 1 }, [{ action: 'grow', state: { a: 1, b: 2 } }]));
    expect(unlike.vars).toEqual(['state']);
    expect(unlike['#meta']).toMatchObject({ stateVariable: 'state' });
    const scalar = traceToItf(traceOf(0, [{ action: 'inc', params: { by: 1 }, actor: 'rank 0 main', text: 'adds one', state: 1 }], 0));
    expect(scalar.loop).toBe(0);
    for (const doc of [alike, unlike, scalar]) {
      expect(itfSchemaErrors(JSON.parse(JSON.stringify(doc)))).toEqual([]);
    }
    const back = readItf(JSON.stringify(scalar)).trace;
    expect(back.initial).toBe(0);
    expect(back.steps[0]).toMatchObject({ action: 'inc', params: { by: 1 }, actor: 'rank 0 main', text: 'adds one', state: 1 });
    expect(back.loopStart).toBe(0);
    expect(readItf(JSON.stringify(unlike)).trace.steps[0].state).toEqual({ a: 1, b: 2 });
  });

  it("reads a trace another tool wrote (the ADR's own example: maps of sets)", () => {
    const adr = {
      '#meta': { source: 'MC_MissionariesAndCannibalsTyped.tla' },
      vars: ['bank_of_boat', 'who_is_on_bank'],
      states: [
        { '#meta': { index: 0 }, bank_of_boat: 'E', who_is_on_bank: { '#map': [['E', { '#set': ['c1', 'm1'] }], ['W', { '#set': [] }]] } },
        { '#meta': { index: 1 }, bank_of_boat: 'W', who_is_on_bank: { '#map': [['E', { '#set': ['c1'] }], ['W', { '#set': ['m1'] }]] } },
      ],
    };
    expect(itfSchemaErrors(adr)).toEqual([]);
    const { trace } = readItf(adr);
    expect(trace.initial).toEqual({ bank_of_boat: 'E', who_is_on_bank: { E: ['c1', 'm1'], W: [] } });
    expect(trace.steps[0]).toMatchObject({ action: 'step', state: { bank_of_boat: 'W', who_is_on_bank: { E: ['c1'], W: ['m1'] } } });
    expect(trace.steps[0].changes.map((c) => c.path)).toEqual(['bank_of_boat', 'who_is_on_bank.E', 'who_is_on_bank.W']);
  });

  it('the schema and the reader refuse what the ADR does not allow', () => {
    const bad: [unknown, RegExp][] = [
      [{ vars: ['x'], states: [{ x: null }] }, /anyOf|must be/],
      [{ vars: ['x'], states: [{ x: 0.5 }] }, /anyOf|must be/],
      [{ vars: ['x'], states: [{ x: { '#bigint': '1.5' } }] }, /anyOf|must/],
      [{ vars: ['x'], states: [{ x: { '#y': 1 } }] }, /anyOf|must/],
      [{ vars: ['x'], states: [{ x: 1 }], loop: -1 }, /loop/],
      [{ states: [] }, /vars/],
    ];
    for (const [doc, why] of bad) expect(itfSchemaErrors(doc).join('; ')).toMatch(why);
    expect(() => readItf({ vars: ['x', 'y'], states: [{ x: 1 }] })).toThrow(ItfError);
    expect(() => readItf({ vars: ['x', 'y'], states: [{ x: 1 }] })).toThrow(/states\[0\]: variable 'y' is not set/);
    expect(() => readItf({ vars: ['x'], states: [{ x: 1 }], loop: 3 })).toThrow(/loop: must be the index of a state/);
    expect(() => readItf({ vars: ['x'], states: [{ x: { '#bigint': 'ten' } }] })).toThrow(/#bigint must be a string of digits/);
    expect(() => readItf({ vars: ['x'], states: [{ x: null }] })).toThrow(/null is not an ITF expression/);
    expect(() => readItf('[]')).toThrow(/must be a JSON object/);
  });
});

// ---- dot ----

describe('dot: the state graph', () => {
  it('explores the same states as the checker', async () => {
    const peterson = (await import('../spec/examples/peterson.ts')).default;
    const correct = peterson.variants.find((v) => v.name === 'correct')!.build(null);
    const g = exploreGraph(correct);
    expect(g.states.length).toBe(check(correct).stats.states);
    expect(g.inits).toEqual([0]);
  });

  it('refuses a graph past its limit, and draws the path scope of any model', async () => {
    const { twoPhase } = await import('../spec/examples/two-phase.ts');
    expect(() => exploreGraph(twoPhase(5), 2000)).toThrow(/more than 2000 states/);
    const dining = (await import('../spec/examples/dining-philosophers.ts')).dining(5, false);
    const input = inputOf('dining', dining);
    expect(() => renderDot(input, { limit: 10 })).toThrow(GraphTooLarge);
    const g = pathGraph(dining, input.result.trace);
    expect(g.states.length).toBeGreaterThan(input.result.trace.steps.length);
    expect(g.frontier.size).toBe(g.states.length - (input.result.trace.steps.length + 1));
    const dot = renderDot(input, { scope: 'path' });
    expect(dot).toContain('one-step successors');
  });

  it('highlights a lasso: its cycle in purple, back to the state it returns to', () => {
    type S = { readonly w: 'run' | 'raised' | 'done'; readonly main: 'poll' | 'used' };
    const act = actionsOf<S>();
    const sys = defineSystem<S>({
      name: 'spin',
      init: { w: 'run', main: 'poll' },
      actions: [
        act('finish', { actor: 'worker', guard: (s) => s.w === 'run', effect: (s) => ({ ...s, w: 'done' }) }),
        act('raise', { actor: 'worker', guard: (s) => s.w === 'run', effect: (s) => ({ ...s, w: 'raised' }) }),
        act('poll', { actor: 'main', guard: (s) => s.main === 'poll' && s.w !== 'done', effect: (s) => s }),
        act('use', { actor: 'main', guard: (s) => s.main === 'poll' && s.w === 'done', effect: (s) => ({ ...s, main: 'used' }) }),
      ],
      terminal: (s) => s.main === 'used',
      liveness: { progresses: eventually((s) => s.main === 'used') },
      fairness: 'weak',
    });
    const input = inputOf('spin', sys);
    expect(input.result.trace.loopStart).toBe(1);
    const dot = renderDot(input);
    expect(dot).toMatch(/-> s\d+ \[label="\[main\] poll", color="#8a4fd8"/);
    assertRendersEverywhere(input);
  });
});
