/**
 * The state graph of a small model in Graphviz dot, with the counterexample's path highlighted.
 *
 * `full` scope explores the whole graph breadth-first (states deduplicated by their canonical encoding, as the
 * explorer does) and refuses past a size limit: a graph of thousands of states is no picture. `path` scope
 * draws only the counterexample's states and every one-step successor of them, for models of any size.
 */
import { type Data, Encoder, show } from '../data.ts';
import { errText } from '../explorer.ts';
import { type ActionInstance, type System, formatLabel } from '../system.ts';
import type { Trace } from '../trace.ts';
import type { ReportInput } from './input.ts';

export const DEFAULT_DOT_LIMIT = 2000;

export type DotScope = 'full' | 'path';

export interface GraphEdge {
  readonly from: number;
  readonly to: number;
  readonly instance: number;
  readonly label: string;
}

export interface StateGraphPicture {
  readonly states: readonly Data[];
  readonly inits: readonly number[];
  readonly edges: readonly GraphEdge[];
  /** `path` scope: the states whose successors were not explored. */
  readonly frontier: ReadonlySet<number>;
}

/** The graph has more states than the limit allows. */
export class GraphTooLarge extends Error {
  constructor(
    readonly limit: number,
    readonly system: string,
  ) {
    super(`the state graph of '${system}' has more than ${limit} states`);
    this.name = 'GraphTooLarge';
  }
}

class Graph<S> {
  readonly enc = new Encoder();
  readonly ids = new Map<string, number>();
  readonly states: Data[] = [];
  readonly edges: GraphEdge[] = [];

  constructor(
    readonly system: System<S>,
    readonly limit: number,
  ) {}

  key(s: Data): string {
    this.enc.encode(s);
    return Array.prototype.join.call(this.enc.words.subarray(0, this.enc.length), ',');
  }

  /** The id of a state, adding it (and returning isNew) when unseen. */
  add(s: Data): { id: number; isNew: boolean } {
    const k = this.key(s);
    const known = this.ids.get(k);
    if (known !== undefined) return { id: known, isNew: false };
    if (this.states.length >= this.limit) throw new GraphTooLarge(this.limit, this.system.name);
    const id = this.states.length;
    this.ids.set(k, id);
    this.states.push(s);
    return { id, isNew: true };
  }

  find(s: Data): number | undefined {
    return this.ids.get(this.key(s));
  }

  successors(s: S): { inst: ActionInstance<S>; next: S }[] {
    const out: { inst: ActionInstance<S>; next: S }[] = [];
    for (const inst of this.system.instances) {
      let enabled: boolean;
      try {
        enabled = inst.action.spec.guard ? inst.action.spec.guard(s, inst.params) : true;
      } catch (e) {
        throw new Error(`guard of action ${formatLabel(inst.label)} threw: ${errText(e)}`);
      }
      if (!enabled) continue;
      try {
        out.push({ inst, next: inst.action.spec.effect(s, inst.params) });
      } catch (e) {
        throw new Error(`effect of action ${formatLabel(inst.label)} threw: ${errText(e)}`);
      }
    }
    return out;
  }
}

function edgeLabel<S>(inst: ActionInstance<S>): string {
  return inst.actor ? `[${inst.actor}] ${formatLabel(inst.label)}` : formatLabel(inst.label);
}

/** Explores the whole state graph breadth-first; throws GraphTooLarge past `limit` states. */
export function exploreGraph<S>(system: System<S>, limit = DEFAULT_DOT_LIMIT): StateGraphPicture {
  const g = new Graph(system, limit);
  const inits: number[] = [];
  const queue: number[] = [];
  for (const s of system.inits) {
    const { id, isNew } = g.add(s as Data);
    if (!inits.includes(id)) inits.push(id);
    if (isNew) queue.push(id);
  }
  for (let q = 0; q < queue.length; q++) {
    const from = queue[q];
    for (const { inst, next } of g.successors(g.states[from] as S)) {
      const { id, isNew } = g.add(next as Data);
      if (isNew) queue.push(id);
      g.edges.push({ from, to: id, instance: inst.id, label: edgeLabel(inst) });
    }
  }
  return { states: g.states, inits, edges: g.edges, frontier: new Set() };
}

/** The counterexample's states and their one-step successors (successors' own successors are left out). */
export function pathGraph<S>(system: System<S>, trace: Trace, limit = DEFAULT_DOT_LIMIT): StateGraphPicture {
  const g = new Graph(system, limit);
  const path = [trace.initial, ...trace.steps.map((s) => s.state)];
  const onPath = path.map((s) => g.add(s).id);
  const inits = system.inits.map((s) => g.add(s as Data).id).filter((id, i, a) => a.indexOf(id) === i);
  const expanded = new Set<number>();
  for (const id of onPath) {
    if (expanded.has(id)) continue;
    expanded.add(id);
    for (const { inst, next } of g.successors(g.states[id] as S)) {
      g.edges.push({ from: id, to: g.add(next as Data).id, instance: inst.id, label: edgeLabel(inst) });
    }
  }
  const frontier = new Set(g.states.map((_, i) => i).filter((i) => !expanded.has(i)));
  return { states: g.states, inits, edges: g.edges, frontier };
}

/** A dot double-quoted string body: backslashes and quotes escaped, lines left-justified (`\l`). */
export function dotString(lines: readonly string[], justify = true): string {
  const esc = (l: string) => l.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, ' ');
  return justify ? lines.map((l) => `${esc(l)}\\l`).join('') : lines.map(esc).join('\\n');
}

function stateLines(s: Data): string[] {
  if (s !== null && typeof s === 'object' && !Array.isArray(s)) {
    const o = s as Record<string, Data>;
    const keys = Object.keys(o);
    if (keys.length > 0) return keys.map((k) => `${k} = ${show(o[k], 70)}`);
  }
  return [show(s, 70)];
}

export interface DotOptions {
  readonly scope?: DotScope;
  readonly limit?: number;
}

/** The dot source of the report's system, its counterexample highlighted. Throws GraphTooLarge. */
export function renderDot(input: ReportInput, opts: DotOptions = {}): string {
  if (!input.system) throw new Error('the dot format needs the system (ReportInput.system)');
  const t = input.result.trace;
  const scope = opts.scope ?? 'full';
  const limit = opts.limit ?? DEFAULT_DOT_LIMIT;
  // The checker already counted more distinct states than the limit: no need to explore them again.
  if (scope === 'full' && input.result.stats.states > limit) throw new GraphTooLarge(limit, input.system.name);
  // The path scope is as large as the trace times the actions: the limit is for whole graphs.
  const picture = scope === 'full' ? exploreGraph(input.system, limit) : pathGraph(input.system, t, Number.POSITIVE_INFINITY);
  return dotSource(input, picture, scope);
}

export function dotSource(input: ReportInput, picture: StateGraphPicture, scope: DotScope): string {
  const t = input.result.trace;
  const ids = new Map<string, number>();
  const enc = new Encoder();
  const key = (s: Data) => {
    enc.encode(s);
    return Array.prototype.join.call(enc.words.subarray(0, enc.length), ',');
  };
  picture.states.forEach((s, i) => ids.set(key(s), i));
  const pathStates = [t.initial, ...t.steps.map((s) => s.state)].map((s) => ids.get(key(s)));
  const onPath = new Set(pathStates.filter((x): x is number => x !== undefined));
  const loopFrom = t.loopStart ?? Number.POSITIVE_INFINITY;
  // The edge each step took: same ends and same label.
  const pathEdge = new Map<number, 'path' | 'loop'>();
  t.steps.forEach((s, i) => {
    const from = pathStates[i];
    const to = pathStates[i + 1];
    const label = s.actor ? `[${s.actor}] ${formatLabel(s)}` : formatLabel(s);
    const e = picture.edges.findIndex((x) => x.from === from && x.to === to && x.label === label);
    if (e >= 0) pathEdge.set(e, i >= loopFrom ? 'loop' : 'path');
  });
  const last = pathStates[pathStates.length - 1];
  const loopTarget = t.loopStart !== undefined ? pathStates[t.loopStart] : undefined;

  const r = input.result;
  const caption = [
    `${input.title}: ${r.message ?? `property '${r.property}' fails`}`,
    scope === 'full'
      ? `${picture.states.length} states, ${picture.edges.length} transitions; the counterexample in red${t.loopStart !== undefined ? ', its cycle in purple' : ''}`
      : `the counterexample (red) and the one-step successors of its states (grey); the rest of the graph is left out`,
  ];
  const out: string[] = [];
  out.push(`digraph "${dotString([input.title], false)}" {`);
  // Past a few dozen labelled edges dot's crossing minimisation dominates the layout time (minutes for a
  // hundred states): bound its iterations.
  const bounded = picture.edges.length > 60 ? ', nslimit=2, mclimit=0.5' : '';
  out.push(`  graph [rankdir=TB, labelloc=t, fontname="Helvetica", fontsize=12${bounded}, label="${dotString(caption, false)}"];`);
  out.push('  node [shape=box, style="rounded", fontname="Courier", fontsize=10];');
  out.push('  edge [fontname="Helvetica", fontsize=9, color="#888888", fontcolor="#555555"];');
  picture.inits.forEach((id, i) => {
    out.push(`  init${i} [shape=point, width=0.08, label=""];`);
    out.push(`  init${i} -> s${id} [color="${onPath.has(id) && pathStates[0] === id ? '#d62728' : '#888888'}"];`);
  });
  picture.states.forEach((s, id) => {
    const attrs = [`label="${dotString(stateLines(s))}"`];
    if (id === last) attrs.push('color="#d62728"', 'penwidth=2.5', 'style="rounded,filled"', 'fillcolor="#ffd6d6"');
    else if (id === loopTarget) attrs.push('color="#8a4fd8"', 'penwidth=2', 'style="rounded,filled"', 'fillcolor="#efe4fb"');
    else if (onPath.has(id)) attrs.push('color="#d62728"', 'penwidth=2');
    else if (picture.frontier.has(id)) attrs.push('color="#bbbbbb"', 'fontcolor="#777777"');
    if (onPath.has(id)) attrs.push(`tooltip="state after step ${pathStates.indexOf(id)}"`);
    out.push(`  s${id} [${attrs.join(', ')}];`);
  });
  picture.edges.forEach((e, i) => {
    const attrs = [`label="${dotString([e.label], false)}"`];
    const kind = pathEdge.get(i);
    if (kind === 'path') attrs.push('color="#d62728"', 'fontcolor="#d62728"', 'penwidth=2.5');
    if (kind === 'loop') attrs.push('color="#8a4fd8"', 'fontcolor="#8a4fd8"', 'penwidth=2.5', 'style=bold');
    out.push(`  s${e.from} -> s${e.to} [${attrs.join(', ')}];`);
  });
  out.push('}');
  return `${out.join('\n')}\n`;
}
