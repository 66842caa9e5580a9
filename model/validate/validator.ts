/**
 * Trace validation: does a recorded run (a sequence of events) describe a behaviour of the model?
 *
 * The search keeps the set of model states the run could be in. For each event it lets the model take up to
 * `maxGap` unlogged steps (any action), then fires every action instance the event can stand for (same
 * action, same given parameters, actor and rank) whose guard holds and whose next state has the observed
 * field values; the next states form the new set. The run is accepted when every event is explained, and
 * rejected at the first event no state of the set can explain: that event's line and the states that were
 * possible just before it are the diagnosis. It first tries with no unlogged steps (exact, and fast for fully
 * logged runs), and only searches gaps when that fails.
 */
import { type Data, DataError, Encoder, diff, equalData, show } from '../data.ts';
import { errText, replay } from '../explorer.ts';
import { hashWords } from '../fingerprints.ts';
import type { ActionInstance, System } from '../system.ts';
import { formatLabel } from '../system.ts';
import type { Trace } from '../trace.ts';
import { type PathSegment, type TraceEvent, TraceInputError, parsePath, resolvePath } from './events.ts';

export interface ValidateOptions {
  /** Most unlogged model steps between two logged events (and before the first). Default 8; 0: every step is logged. */
  readonly maxGap?: number;
  /** Most states one event's gap search may hold before it is cut (the verdict then says so). Default 200,000. */
  readonly maxStates?: number;
  /** Actions the recorder always logs: never taken as unlogged steps. */
  readonly alwaysLogged?: readonly string[];
  /** Rebuild the model trace that explains an accepted run (default false). */
  readonly witness?: boolean;
  /** Name of the trace in error messages. */
  readonly source?: string;
}

export interface Rejection {
  /** 0-based index of the event in the trace. */
  readonly index: number;
  /** Its line in the source. */
  readonly line: number;
  readonly event: TraceEvent;
  /** Line of the event before it (the last one explained), if any. */
  readonly afterLine?: number;
  /** One line: why no state explains it. */
  readonly message: string;
  /** One line per action instance the event could stand for. */
  readonly reasons: readonly string[];
  /** How many model states were possible just before the event (after the previous event). */
  readonly possibleCount: number;
  /** A few of them. */
  readonly possibleStates: readonly Data[];
  /** How many states the unlogged steps before the event could reach (the states the event was tried in). */
  readonly triedCount: number;
}

export interface ValidationResult {
  readonly verdict: 'accepted' | 'rejected';
  readonly events: number;
  /** Events explained (all of them when accepted; those before the rejected one otherwise). */
  readonly explained: number;
  readonly maxGap: number;
  /** Whether a gap search was cut by `maxStates` (a rejection may then be spurious). */
  readonly truncated: boolean;
  /** Unlogged steps in the explanation found (accepted runs). */
  readonly hiddenSteps?: number;
  /** Model states at the end of the run (accepted runs). */
  readonly finalStates?: number;
  readonly rejection?: Rejection;
  /** With `witness`: a model trace that explains the run, and which of its steps were unlogged. */
  readonly witness?: { readonly trace: Trace; readonly hidden: readonly boolean[] };
  readonly stats: { readonly statesVisited: number; readonly seconds: number; readonly eventsPerSecond: number };
}

/** An event resolved against the model: the instances it can stand for and its observed fields. */
interface CompiledEvent {
  readonly event: TraceEvent;
  readonly candidates: readonly ActionInstance<unknown>[];
  readonly observed: readonly { readonly path: string; readonly segs: readonly PathSegment[]; readonly value: Data }[];
}

interface Node {
  readonly state: unknown;
  readonly parent: Node | null;
  /** Instance id of the step that reached it; for a root, the initial-state index. */
  readonly via: number;
  /** Whether that step was logged (an event) or unlogged. */
  readonly logged: boolean;
}

/** A model misbehaving during validation (guard or effect throws, non-data state). */
export class ValidationModelError extends Error {}

/** The instance's rank: its numeric `rank` parameter, or `rank N` in its actor. */
export function instanceRank(inst: ActionInstance<unknown>): number | undefined {
  const r = inst.params.rank;
  if (typeof r === 'number') return r;
  const m = inst.actor ? /\brank (\d+)\b/.exec(inst.actor) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * Resolves each event against the model; throws TraceInputError naming the line for an event that names no
 * action instance (unknown action, parameter, value, rank or actor) or an observed field the state lacks.
 */
export function compileEvents<S>(system: System<S>, events: readonly TraceEvent[], source = ''): CompiledEvent[] {
  const byAction = new Map<string, ActionInstance<unknown>[]>();
  const ranks = new Set<number>();
  for (const inst of system.instances as readonly ActionInstance<unknown>[]) {
    let list = byAction.get(inst.action.name);
    if (!list) byAction.set(inst.action.name, (list = []));
    list.push(inst);
    const r = instanceRank(inst);
    if (r !== undefined) ranks.add(r);
  }
  const init = system.inits[0] as Data;
  return events.map((ev) => {
    const fail = (msg: string): never => {
      throw new TraceInputError(ev.line, msg, source);
    };
    const all = byAction.get(ev.action);
    if (!all) fail(`unknown action ${JSON.stringify(ev.action)} (the model's actions: ${[...byAction.keys()].join(', ')})${hint(ev.action, [...byAction.keys()])}`);
    let cands = all!;
    const domains = (cands[0].action.spec.params ?? {}) as Record<string, readonly Data[]>;
    for (const [k, v] of Object.entries(ev.params ?? {})) {
      if (!(k in domains)) {
        const names = Object.keys(domains);
        fail(`action '${ev.action}' has no parameter '${k}' (${names.length ? `its parameters: ${names.join(', ')}` : 'it takes no parameters'})`);
      }
      const next = cands.filter((i) => equalData(i.params[k], v));
      if (next.length === 0) {
        fail(`action '${ev.action}' has no step with ${k}=${show(v)} (${k} ranges over ${domains[k].map((x) => show(x)).join(', ')})`);
      }
      cands = next;
    }
    if (ev.rank !== undefined && ranks.size > 0) {
      if (!ranks.has(ev.rank)) fail(`unknown rank ${ev.rank} (the model's ranks: ${[...ranks].sort((a, b) => a - b).join(', ')})`);
      const next = cands.filter((i) => {
        const r = instanceRank(i);
        return r === undefined || r === ev.rank;
      });
      if (next.length === 0) fail(`action '${ev.action}' has no step on rank ${ev.rank}${ev.params ? ` with ${showParams(ev.params)}` : ''}`);
      cands = next;
    }
    if (ev.actor !== undefined) {
      const next = cands.filter((i) => i.actor === undefined || i.actor === ev.actor);
      if (next.length === 0) {
        const actors = [...new Set(cands.map((i) => i.actor))].slice(0, 6).map((a) => JSON.stringify(a));
        fail(`action '${ev.action}' has no step by actor ${JSON.stringify(ev.actor)} (its actors: ${actors.join(', ')})`);
      }
      cands = next;
    }
    const observed = Object.entries(ev.observed ?? {}).map(([path, value]) => {
      const segs = parsePath(path);
      const bad = staticFieldError(init, segs);
      if (bad) fail(`observed field ${JSON.stringify(path)} ${bad}`);
      return { path, segs, value };
    });
    return { event: ev, candidates: cands, observed };
  });
}

/** Why a path can never name a field of states shaped like `init` (objects only: arrays may grow). */
function staticFieldError(init: Data, segs: readonly PathSegment[]): string | undefined {
  let cur: Data = init;
  for (let i = 0; i < segs.length; i++) {
    if (cur === null || typeof cur !== 'object') {
      return i === 0 ? 'names a field, but the model state is not an object' : `goes below a value that has no fields (${show(cur)})`;
    }
    if (Array.isArray(cur)) return undefined;
    const o = cur as Record<string, Data>;
    const k = String(segs[i]);
    if (!Object.prototype.hasOwnProperty.call(o, k)) {
      const where = i === 0 ? "the model's state" : `'${segs.slice(0, i).join('.')}'`;
      return `is not a field of the model state (${where} has: ${Object.keys(o).slice(0, 12).join(', ')})`;
    }
    cur = o[k];
  }
  return undefined;
}

function showParams(p: object): string {
  return Object.entries(p)
    .map(([k, v]) => `${k}=${show(v as Data)}`)
    .join(', ');
}

/** A "did you mean" for a misspelt name. */
function hint(name: string, names: readonly string[]): string {
  const lower = name.toLowerCase();
  const close = names.find((n) => n.toLowerCase() === lower || editDistance(n.toLowerCase(), lower) <= 2);
  return close ? `; did you mean '${close}'?` : '';
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return d[b.length];
}

/** Validates recorded events against a system. Throws TraceInputError for events that name nothing in the model. */
export function validateEvents<S>(system: System<S>, events: readonly TraceEvent[], options: ValidateOptions = {}): ValidationResult {
  const started = performance.now();
  const compiled = compileEvents(system, events, options.source);
  const maxGap = options.maxGap ?? 8;
  const search = new Search(system as System<unknown>, compiled, options);
  let out = search.run(0);
  if (out.verdict === 'rejected' && maxGap > 0) out = search.run(maxGap);
  const seconds = (performance.now() - started) / 1000;
  const stats = {
    statesVisited: search.visited,
    seconds,
    eventsPerSecond: seconds > 0 ? events.length / seconds : 0,
  };
  const base = { events: events.length, maxGap, truncated: search.truncated, stats };
  if (out.verdict === 'rejected') return { verdict: 'rejected', ...base, explained: out.rejection.index, rejection: out.rejection };
  const witness = options.witness ? search.witness(out.final[0]) : undefined;
  return {
    verdict: 'accepted',
    ...base,
    explained: events.length,
    hiddenSteps: countHidden(out.final[0]),
    finalStates: out.final.length,
    ...(witness ? { witness } : {}),
  };
}

function countHidden(n: Node | null): number {
  let c = 0;
  for (; n !== null && n.parent !== null; n = n.parent) if (!n.logged) c++;
  return c;
}

type RunOutcome = { verdict: 'accepted'; final: Node[] } | { verdict: 'rejected'; rejection: Rejection };

class Search<S> {
  private readonly enc = new Encoder();
  private readonly fp = new Uint32Array(2);
  private readonly hideable: readonly ActionInstance<S>[];
  private readonly maxStates: number;
  visited = 0;
  truncated = false;

  constructor(
    private readonly system: System<S>,
    private readonly events: readonly CompiledEvent[],
    private readonly options: ValidateOptions,
  ) {
    const logged = new Set(options.alwaysLogged ?? []);
    this.hideable = system.instances.filter((i) => !logged.has(i.action.name));
    this.maxStates = options.maxStates ?? 200_000;
  }

  /**
   * A state's identity in the search: its 64-bit fingerprint (the explorer's hash of its encoding) as a
   * 4-character string. Two distinct states collide with probability about n^2 / 2^65.
   */
  private key(s: unknown): string {
    try {
      this.enc.encode(s);
    } catch (e) {
      if (e instanceof DataError) throw new ValidationModelError(`a model state has a bad field ${e.message}`);
      throw e;
    }
    hashWords(this.enc.words, this.enc.length, this.fp);
    const a = this.fp[0];
    const b = this.fp[1];
    return String.fromCharCode(a & 0xffff, a >>> 16, b & 0xffff, b >>> 16);
  }

  run(maxGap: number): RunOutcome {
    let frontier: Node[] = [];
    const seen0 = new Set<string>();
    this.system.inits.forEach((s, i) => {
      const k = this.key(s);
      if (!seen0.has(k)) {
        seen0.add(k);
        frontier.push({ state: s, parent: null, via: i, logged: true });
      }
    });
    for (let e = 0; e < this.events.length; e++) {
      const ce = this.events[e];
      const next = new Map<string, Node>();
      const seen = new Set<string>();
      for (const n of frontier) seen.add(this.key(n.state));
      let level = frontier;
      let tried = 0;
      for (let g = 0; ; g++) {
        for (const n of level) this.fire(ce, n, next);
        tried += level.length;
        if (g >= maxGap || level.length === 0) break;
        if (seen.size >= this.maxStates) {
          this.truncated = true;
          break;
        }
        const grown: Node[] = [];
        outer: for (const n of level) {
          for (const inst of this.hideable) {
            if (!this.guard(inst, n.state as S)) continue;
            const t = this.effect(inst, n.state as S);
            this.visited++;
            const k = this.key(t);
            if (seen.has(k)) continue;
            seen.add(k);
            grown.push({ state: t, parent: n, via: inst.id, logged: false });
            if (seen.size >= this.maxStates) {
              this.truncated = true;
              break outer;
            }
          }
        }
        level = grown;
      }
      if (next.size === 0) return { verdict: 'rejected', rejection: this.reject(e, frontier, maxGap, tried) };
      frontier = [...next.values()];
    }
    return { verdict: 'accepted', final: frontier };
  }

  /** Fires every instance the event can stand for from node `n`; adds the explained next states. */
  private fire(ce: CompiledEvent, n: Node, next: Map<string, Node>): void {
    const s = n.state as S;
    for (const inst of ce.candidates as readonly ActionInstance<S>[]) {
      if (!this.guard(inst, s)) continue;
      const t = this.effect(inst, s);
      this.visited++;
      if (!this.observedMatch(ce, t as Data)) continue;
      const k = this.key(t);
      if (!next.has(k)) next.set(k, { state: t, parent: n, via: inst.id, logged: true });
    }
  }

  private observedMatch(ce: CompiledEvent, t: Data): boolean {
    for (const o of ce.observed) if (!equalData(resolvePath(t, o.segs), o.value)) return false;
    return true;
  }

  /** Builds the diagnosis at event `e`, re-running its gap search to say, per candidate, why it fails. */
  private reject(e: number, frontier: Node[], maxGap: number, tried: number): Rejection {
    const ce = this.events[e];
    const ev = ce.event;
    // Every state the event was tried in (the frontier and its unlogged successors), bounded like the search.
    const states: S[] = [];
    const seen = new Set<string>();
    let level = frontier.map((n) => n.state as S);
    for (const s of level) seen.add(this.key(s));
    for (let g = 0; ; g++) {
      states.push(...level);
      if (g >= maxGap || level.length === 0 || seen.size >= this.maxStates) break;
      const grown: S[] = [];
      for (const s of level) {
        for (const inst of this.hideable) {
          if (!this.guard(inst, s)) continue;
          const t = this.effect(inst, s);
          const k = this.key(t);
          if (seen.has(k) || seen.size >= this.maxStates) continue;
          seen.add(k);
          grown.push(t);
        }
      }
      level = grown;
    }
    const where =
      maxGap === 0
        ? `${plural(frontier.length, 'possible state')}`
        : `${plural(states.length, 'state')} reachable with up to ${maxGap} unlogged steps`;
    const reasons = ce.candidates.map((inst) => {
      let enabled = 0;
      const mismatches = new Map<string, Set<string>>();
      for (const s of states) {
        if (!this.guard(inst as ActionInstance<S>, s)) continue;
        enabled++;
        const t = this.effect(inst as ActionInstance<S>, s) as Data;
        for (const o of ce.observed) {
          const got = resolvePath(t, o.segs);
          if (!equalData(got, o.value)) {
            let set = mismatches.get(o.path);
            if (!set) mismatches.set(o.path, (set = new Set()));
            set.add(show(got, 60));
            break;
          }
        }
      }
      const label = formatLabel(inst.label);
      if (enabled === 0) return `${label} is not enabled in any of the ${where}`;
      const parts = [...mismatches].map(([path, vals]) => {
        const o = ce.observed.find((x) => x.path === path)!;
        const list = [...vals].slice(0, 3).join(' or ');
        return `the recorder saw ${path} = ${show(o.value, 60)} where the model has ${list}${vals.size > 3 ? ' or …' : ''}`;
      });
      return `${label} is enabled in ${enabled} of the ${where}, but ${parts.join('; ')}`;
    });
    const gapText = maxGap === 0 ? 'with every step logged' : `with up to ${maxGap} unlogged steps before it`;
    const cut = this.truncated ? ` (the search was cut at ${this.maxStates} states: raise --max-states to be sure)` : '';
    return {
      index: e,
      line: ev.line,
      event: ev,
      ...(e > 0 ? { afterLine: this.events[e - 1].event.line } : {}),
      message: `event ${e + 1} (line ${ev.line}) ${describeEvent(ev)} is not a step the model can take ${gapText}${cut}`,
      reasons,
      possibleCount: frontier.length,
      possibleStates: frontier.slice(0, 3).map((n) => n.state as Data),
      triedCount: tried,
    };
  }

  witness(final: Node): { trace: Trace; hidden: boolean[] } {
    const chain: Node[] = [];
    let n: Node = final;
    while (n.parent !== null) {
      chain.push(n);
      n = n.parent;
    }
    chain.reverse();
    const insts = chain.map((c) => this.system.instances[c.via]);
    return { trace: replay(this.system.inits[n.via], insts), hidden: chain.map((c) => !c.logged) };
  }

  private guard(inst: ActionInstance<S>, s: S): boolean {
    const g = inst.action.spec.guard;
    if (!g) return true;
    try {
      return g(s, inst.params);
    } catch (e) {
      throw new ValidationModelError(`guard of action ${formatLabel(inst.label)} threw: ${errText(e)}`);
    }
  }

  private effect(inst: ActionInstance<S>, s: S): S {
    try {
      return inst.action.spec.effect(s, inst.params);
    } catch (e) {
      throw new ValidationModelError(`effect of action ${formatLabel(inst.label)} threw: ${errText(e)}`);
    }
  }
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** An event as one short phrase: `[rank 0 main] startCompute(rank=0) observed {flag: true}`. */
export function describeEvent(ev: TraceEvent): string {
  const who = ev.actor ? `[${ev.actor}] ` : ev.rank !== undefined ? `[rank ${ev.rank}] ` : '';
  const params = ev.params && Object.keys(ev.params).length > 0 ? `(${showParams(ev.params)})` : '';
  const obs = ev.observed && Object.keys(ev.observed).length > 0 ? ` observing ${show(showParams(ev.observed) as Data, 160).replace(/^"|"$/g, '')}` : '';
  return `${who}${ev.action}${params}${obs}`;
}

/** The possible states as a reader scans them: the first in full, the others as their differences from it. */
export function formatPossibleStates(r: Rejection, max = 400): string[] {
  if (r.possibleStates.length === 0) return [];
  const [first, ...rest] = r.possibleStates;
  const lines = [`state 1: ${show(first, max)}`];
  rest.forEach((s, i) => {
    const d = diff(first, s);
    lines.push(`state ${i + 2}: as state 1 but ${d.map((c) => `${c.path || '(state)'} = ${show(c.after, 60)}`).join(', ')}`);
  });
  if (r.possibleCount > r.possibleStates.length) lines.push(`(and ${r.possibleCount - r.possibleStates.length} more)`);
  return lines;
}
