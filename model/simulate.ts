/**
 * Simulation: random walks over a model, for configurations too large to enumerate. Each walk is a sequence
 * of choice indices drawn by fast-check (each taken modulo the number of action instances enabled at that
 * step), so a failing walk is shrunk by fast-check like any other counterexample, then minimised once more on
 * the concrete path (dropping steps that the violation does not need). The result is a Trace in the format
 * every engine reports in. Walks check invariants, action properties and deadlocks (a non-terminal state with
 * no enabled action); reachability goals are tallied (a goal no walk reached is reported, never proved).
 *
 * Swarm testing (on by default): besides its choices, each walk draws a scheduling configuration of its own.
 * A third of the walks are uniform (every enabled action instance equally likely, as without swarm). Each of
 * the others makes a random subset of the action names *pause* the actor that takes them (its next step weighs
 * 1/400 against 1, as if the thread were descheduled right after that statement), and half of them also slow a
 * random subset of the actors (their steps weigh 1/20). Slowed and paused steps still run when nothing else is
 * enabled, so no actor is starved for good. A biased walk reaches schedules a uniform walk almost never takes:
 * a thread starved for many steps, or caught between two of its statements while the others run on. The
 * configuration is part of the walk's random input: fast-check draws it, replays it with the seed, and shrinks
 * it (towards the uniform walk) with the choices.
 *
 * Everything is deterministic given (seed, runs, depth, swarm): the seed is printed, and the same seed replays
 * the same walks, the same shrink and the same trace.
 */
import fc from 'fast-check';
import { type Data, DataError, Encoder, deepFreeze, show } from './data.ts';
import { type PropertyKind, replay } from './explorer.ts';
import { effectOf, errText, guardHolds, threwText } from './faults.ts';
import { mulberry32 } from './random.ts';
import type { ActionInstance, StepLabel, System } from './system.ts';
import { formatLabel } from './system.ts';
import type { Trace } from './trace.ts';

export interface SimulateOptions<S = unknown> {
  /** Number of random walks (default 1000). */
  readonly runs?: number;
  /** Most steps in one walk (default 200). */
  readonly depth?: number;
  /** fast-check seed; a random one is drawn (and reported) when absent. */
  readonly seed?: number;
  /** fast-check replay path of a counterexample (from an earlier result's `path`): re-runs that walk only. */
  readonly path?: string;
  /**
   * Most shrink candidates fast-check tries (default 2000); the path minimisation that follows removes what
   * is left. Each candidate costs a walk, so this bounds the shrinking time on large models.
   */
  readonly shrinkBudget?: number;
  /** Seconds; walks stop (not failing) when it is spent. */
  readonly timeLimit?: number;
  /** Called on every state a walk reaches (initial states included); for tests and coverage tools. */
  readonly onState?: (s: S) => void;
  /**
   * Swarm testing (default true): a third of the walks are uniform, the others each pause actors after a
   * random subset of the action names and (half of them) slow a random subset of the actors. False: every walk
   * is uniform (the walks of a seed differ between the two).
   */
  readonly swarm?: boolean;
}

/**
 * The scheduling bias of one walk (swarm testing). Both lists empty: a uniform walk. Instances of an action with
 * no actor count as an actor named after the action.
 */
export interface SwarmConfig {
  /** Actors whose enabled steps are taken rarely (weight 1/20 against 1), unless nothing else is enabled. */
  readonly slowed: readonly string[];
  /** Action names after which the actor that took the step pauses: its next step weighs 1/400. */
  readonly pauseAfter: readonly string[];
}

export type SimulationVerdict = 'violated' | 'no-violation' | 'error';

export interface SimulationStats {
  /** Walks run (up to and including the first failing one). */
  readonly runs: number;
  /** Steps taken over all walks, shrinking included. */
  readonly steps: number;
  readonly seconds: number;
  readonly stepsPerSecond: number;
  /** Length of the longest walk. */
  readonly longestWalk: number;
}

export interface SimulationResult {
  /** `no-violation` is never a proof: it says that `runs` walks of at most `depth` steps found nothing. */
  readonly verdict: SimulationVerdict;
  readonly property?: string;
  readonly propertyKind?: PropertyKind;
  readonly message?: string;
  /** The shrunk counterexample. */
  readonly trace?: Trace;
  /** At a deadlock: what each blocked actor waits for (the model's `explainStuck`). */
  readonly stuck?: readonly string[];
  readonly seed: number;
  readonly runsRequested: number;
  readonly depth: number;
  /** fast-check's path to the counterexample, for `path` replay. */
  readonly path?: string;
  /** Steps of the failing walk as first found, before any shrinking. */
  readonly foundLength?: number;
  /** Shrink steps fast-check took. */
  readonly shrinks?: number;
  /** The scheduling bias of the shrunk failing walk (absent when it is a uniform walk). */
  readonly swarmConfig?: SwarmConfig;
  /** Reachability goals that no walk reached (not a proof that they are unreachable). */
  readonly unreached: readonly string[];
  /** True when the time limit stopped the walks early. */
  readonly interrupted: boolean;
  readonly stats: SimulationStats;
}

/** Why a walk failed, and the concrete path (instance ids) that reaches the failure. */
interface WalkFailure {
  readonly kind: PropertyKind | 'error';
  readonly property: string;
  readonly message: string;
  readonly init: number;
  readonly path: readonly number[];
  readonly stuck?: readonly string[];
}

/** Raised inside a walk when the model itself misbehaves. */
class WalkFault extends Error {}
/** Walks have no state index: a fault is the walk's. */
const walkFault = (message: string) => new WalkFault(message);

/**
 * (initial state, swarm configuration seed, choices). fast-check shrinks the configuration first: towards 0 (a
 * uniform walk), and through other configurations that replay the same choices under another bias, which often
 * finds a shorter failing walk before the choices themselves are shrunk.
 */
type WalkInput = readonly [number, number, readonly number[]];

/**
 * Tuning of the swarm, measured on the built-in protocols (README, simulation section): the share of walks that
 * are uniform; the share of swarm walks that slow actors, and the chance that such a walk slows a given actor;
 * the chance that a swarm walk pauses after a given action name; the weights of a slowed and of a paused step
 * against 1 (a step both slowed and paused weighs their product). Pausing after names is what reaches
 * one-statement windows (eplb-staged-transfer:nonblocking-lock: main paused after `start_rebalance`, the
 * worker after `publish_layer_0`): pName 0.3 with a pause between 1/100 and 1/1000 did best there (pName 0.1 to
 * 0.5 and pauses 1/20 to 1/10^6 tried), and walks that pause after names but slow no actor find it more often
 * than walks that do both, hence actorShare.
 */
const swarmTuning = Object.freeze({ uniformShare: 1 / 3, actorShare: 0.5, pActor: 0.5, pName: 0.3, slow: 1 / 20, pause: 1 / 400 });
/** Configuration seeds are drawn from [0, CFG_RANGE]; those below uniformShare * CFG_RANGE give a uniform walk. */
const CFG_RANGE = 0x7fffffff;

export const DEFAULT_SHRINK_BUDGET = 2000;
/** Steps the path minimisation may replay (it stops early, keeping the shortest failing path so far). */
const MINIMISE_STEPS = 60_000;

/**
 * Every state is checked to be plain data and frozen (so that an effect mutating its input throws) for the
 * first FULL_CHECKS steps of a simulation, then one step in CHECK_EVERY: the checks cost a third of a step
 * on large states, and the explorer checks every state anyway.
 */
const FULL_CHECKS = 2000;
const CHECK_EVERY = 16;

export function simulate<S>(system: System<S>, options: SimulateOptions<S> = {}): SimulationResult {
  const runs = options.runs ?? 1000;
  const depth = options.depth ?? 200;
  const seed = options.seed ?? randomSeed();
  const started = performance.now();
  const walker = new Walker(system, options.onState);
  const swarm = options.swarm ?? true;

  const choice = fc.noBias(fc.integer({ min: 0, max: 0xffff }));
  // The configuration seed shrinks towards 0, a uniform walk: a counterexample that needs no bias loses it.
  const cfg = swarm ? fc.noBias(fc.integer({ min: 0, max: CFG_RANGE })) : fc.constant(0);
  const arb = fc.limitShrink(
    fc.tuple(fc.integer({ min: 0, max: system.inits.length - 1 }), cfg, fc.array(choice, { maxLength: depth, size: 'max' })),
    options.shrinkBudget ?? DEFAULT_SHRINK_BUDGET,
  );
  const params: fc.Parameters<[WalkInput]> = {
    numRuns: runs,
    seed,
    ...(options.path !== undefined ? { path: options.path } : {}),
    ...(options.timeLimit !== undefined ? { interruptAfterTimeLimit: options.timeLimit * 1000 } : {}),
    endOnFailure: false,
  };
  let firstLength: number | undefined;
  // While shrinking, a candidate walk that has not failed within the shortest failure so far cannot improve
  // on it: it is cut there (and counts as passing), so a shrink attempt costs at most that many steps.
  let shortest = Infinity;
  const details = fc.check(
    fc.property(arb, (input) => {
      const f = walker.walk(input[0], walker.bias(input[1]), input[2], shortest);
      if (f === undefined) return true;
      if (firstLength === undefined) firstLength = f.path.length;
      shortest = Math.min(shortest, f.path.length);
      return false;
    }),
    params,
  );

  const stats = (): SimulationStats => {
    const secs = (performance.now() - started) / 1000;
    return {
      runs: details.numRuns,
      steps: walker.steps,
      seconds: secs,
      stepsPerSecond: secs > 0 ? walker.steps / secs : 0,
      longestWalk: walker.longest,
    };
  };
  const base = {
    seed: details.seed,
    runsRequested: runs,
    depth,
    unreached: walker.unreached(),
    interrupted: details.interrupted,
  };
  if (!details.failed || details.counterexample === null) {
    return { verdict: 'no-violation', ...base, stats: stats() };
  }
  const [[init, cfgSeed, choices]] = details.counterexample;
  const bias = walker.bias(cfgSeed);
  let failure = walker.walk(init, bias, choices);
  if (failure === undefined) {
    // The property is deterministic, so this would be a bug of ours: report it rather than hide it.
    return {
      verdict: 'error',
      ...base,
      message: 'internal: the shrunk walk did not fail again when replayed',
      stats: stats(),
    };
  }
  if (failure.kind !== 'error') failure = walker.minimise(failure);
  const trace = walker.trace(failure);
  return {
    verdict: failure.kind === 'error' ? 'error' : 'violated',
    ...(failure.kind !== 'error' ? { property: failure.property, propertyKind: failure.kind } : {}),
    message: failure.message,
    ...(trace !== undefined ? { trace } : {}),
    ...(failure.stuck ? { stuck: failure.stuck } : {}),
    ...base,
    ...(details.counterexamplePath !== null ? { path: details.counterexamplePath } : {}),
    ...(firstLength !== undefined ? { foundLength: firstLength } : {}),
    shrinks: details.numShrinks,
    ...(bias !== undefined ? { swarmConfig: bias.config } : {}),
    stats: stats(),
  };
}

/** A swarm configuration compiled for one system: the weight of each instance, and whether it pauses its actor. */
interface Bias {
  readonly config: SwarmConfig;
  /** Per instance: SLOW if its actor is slowed, else 1. */
  readonly base: Float64Array;
  /** Per instance: whether taking it pauses its actor. */
  readonly pauses: Uint8Array;
}

/** A fresh non-negative 31-bit seed. */
export function randomSeed(): number {
  return (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) & 0x7fffffff;
}

class Walker<S> {
  private readonly enc = new Encoder();
  private readonly invariants: [string, (s: S) => boolean][];
  private readonly actionProps: [string, (b: S, l: StepLabel, a: S) => boolean][];
  private readonly goals: [string, (s: S) => boolean][];
  private readonly reached = new Set<string>();
  private enabled: Int32Array;
  private readonly weights: Float64Array;
  /** Per instance, the index of its actor (an action with no actor is its own). */
  private readonly actorOf: Int32Array;
  private readonly actorNames: string[] = [];
  private readonly actionNames: string[] = [];
  private readonly paused: Uint8Array;
  steps = 0;
  longest = 0;

  constructor(
    private readonly system: System<S>,
    private readonly onState: ((s: S) => void) | undefined,
  ) {
    const spec = system.spec;
    this.invariants = Object.entries(spec.invariants ?? {});
    this.actionProps = Object.entries(spec.actionProperties ?? {});
    this.goals = Object.entries(spec.reachable ?? {});
    this.enabled = new Int32Array(system.instances.length);
    this.weights = new Float64Array(system.instances.length);
    this.actorOf = new Int32Array(system.instances.length);
    const actors = new Map<string, number>();
    const names = new Set<string>();
    for (const inst of system.instances) {
      const a = inst.actor ?? inst.action.name;
      let k = actors.get(a);
      if (k === undefined) {
        k = actors.size;
        actors.set(a, k);
        this.actorNames.push(a);
      }
      this.actorOf[inst.id] = k;
      if (!names.has(inst.action.name)) {
        names.add(inst.action.name);
        this.actionNames.push(inst.action.name);
      }
    }
    this.paused = new Uint8Array(actors.size);
  }

  /**
   * The swarm configuration of a configuration seed: undefined (a uniform walk) below the uniform share, else
   * a random subset of the actors slowed and a random subset of the action names that pause their actor.
   */
  bias(cfgSeed: number): Bias | undefined {
    const t = swarmTuning;
    if (cfgSeed < t.uniformShare * CFG_RANGE) return undefined;
    const rnd = mulberry32(cfgSeed); // the swarm configuration is a function of the walk's configuration seed
    const slowsActors = rnd() < t.actorShare;
    const slowed = new Set(slowsActors ? this.actorNames.filter(() => rnd() < t.pActor) : []);
    const pauseAfter = new Set(this.actionNames.filter(() => rnd() < t.pName));
    if (slowed.size === 0 && pauseAfter.size === 0) return undefined;
    const { instances } = this.system;
    const base = new Float64Array(instances.length);
    const pauses = new Uint8Array(instances.length);
    for (const inst of instances) {
      base[inst.id] = slowed.has(this.actorNames[this.actorOf[inst.id]]) ? t.slow : 1;
      pauses[inst.id] = pauseAfter.has(inst.action.name) ? 1 : 0;
    }
    return { config: { slowed: [...slowed], pauseAfter: [...pauseAfter] }, base, pauses };
  }

  unreached(): string[] {
    return this.goals.map(([n]) => n).filter((n) => !this.reached.has(n));
  }

  /**
   * Runs one walk; undefined when it ends (choices spent, a terminal state, or `limit` steps taken) with no
   * violation.
   */
  walk(init: number, bias: Bias | undefined, choices: readonly number[], limit = Infinity): WalkFailure | undefined {
    const { instances } = this.system;
    const path: number[] = [];
    if (bias !== undefined) this.paused.fill(0);
    try {
      let s = this.system.inits[init];
      this.visit(s);
      const bad = this.checkState(s);
      if (bad) return { ...bad, init, path };
      for (let k = 0; ; k++) {
        let n = 0;
        for (let a = 0; a < instances.length; a++) if (this.guard(instances[a], s)) this.enabled[n++] = a;
        if (n === 0) {
          if (this.isTerminal(s)) return undefined;
          return this.deadlock(s, init, path);
        }
        if (k >= choices.length || k >= limit) return undefined;
        const inst = instances[bias === undefined ? this.enabled[choices[k] % n] : this.pick(bias, n, choices[k])];
        if (bias !== undefined) this.paused[this.actorOf[inst.id]] = bias.pauses[inst.id];
        path.push(inst.id);
        const t = this.apply(inst, s);
        this.steps++;
        if (path.length > this.longest) this.longest = path.length;
        for (const [name, prop] of this.actionProps) {
          let ok: boolean;
          try {
            ok = prop(s, inst.label, t);
          } catch (e) {
            throw new WalkFault(threwText(`action property '${name}' on step ${formatLabel(inst.label)}`, e, s, 'from state'));
          }
          if (!ok) {
            return {
              kind: 'action-property',
              property: name,
              message: `step ${formatLabel(inst.label)} breaks '${name}'`,
              init,
              path,
            };
          }
        }
        s = t;
        if (this.onState !== undefined || this.steps <= FULL_CHECKS || this.steps % CHECK_EVERY === 0) this.visit(s);
        const bad2 = this.checkState(s);
        if (bad2) return { ...bad2, init, path };
      }
    } catch (e) {
      if (e instanceof WalkFault) return { kind: 'error', property: '', message: e.message, init, path };
      throw e;
    }
  }

  /**
   * A weighted pick among the n enabled instances: a slowed actor's step weighs 1/20, a paused actor's 1/400
   * (both: the product) against 1; the choice (16 bits) selects a point of the cumulative weights, so choice 0
   * still takes the first enabled instance.
   */
  private pick(bias: Bias, n: number, choice: number): number {
    const pause = swarmTuning.pause;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const id = this.enabled[j];
      const w = bias.base[id] * (this.paused[this.actorOf[id]] ? pause : 1);
      this.weights[j] = w;
      total += w;
    }
    let x = (choice / 0x10000) * total;
    for (let j = 0; j < n - 1; j++) {
      x -= this.weights[j];
      if (x < 0) return this.enabled[j];
    }
    return this.enabled[n - 1];
  }

  /** Replays a concrete path; the failure it ends in, or undefined if a step is disabled or nothing fails. */
  private replayPath(init: number, path: readonly number[]): WalkFailure | undefined {
    const { instances } = this.system;
    try {
      let s = this.system.inits[init];
      if (this.checkState(s)) return undefined; // the initial state itself fails: nothing to minimise
      for (let k = 0; k < path.length; k++) {
        const inst = instances[path[k]];
        if (!this.guard(inst, s)) return undefined;
        const t = this.apply(inst, s);
        this.steps++;
        const upTo = path.slice(0, k + 1);
        for (const [name, prop] of this.actionProps) {
          if (!prop(s, inst.label, t)) {
            return { kind: 'action-property', property: name, message: `step ${formatLabel(inst.label)} breaks '${name}'`, init, path: upTo };
          }
        }
        s = t;
        const bad = this.checkState(s);
        if (bad) return { ...bad, init, path: upTo };
      }
      for (const inst of instances) if (this.guard(inst, s)) return undefined;
      if (this.isTerminal(s)) return undefined;
      return this.deadlock(s, init, path);
    } catch {
      return undefined;
    }
  }

  /**
   * Greedy path minimisation after fast-check's shrink: drop any single step (or run of steps) whose removal
   * still leaves a valid path failing the same property, until no removal works.
   */
  minimise(f: WalkFailure, stepBudget = MINIMISE_STEPS): WalkFailure {
    let best = f;
    const stopAt = this.steps + stepBudget;
    let improved = true;
    while (improved && this.steps < stopAt) {
      improved = false;
      for (let width = Math.max(1, best.path.length >> 1); width >= 1 && this.steps < stopAt; width >>= 1) {
        for (let i = 0; i + width <= best.path.length && this.steps < stopAt; ) {
          const cand = [...best.path.slice(0, i), ...best.path.slice(i + width)];
          const r = this.replayPath(best.init, cand);
          if (r !== undefined && r.kind === best.kind && r.property === best.property) {
            best = r;
            improved = true;
          } else {
            i++;
          }
        }
      }
    }
    return best;
  }

  trace(f: WalkFailure): Trace | undefined {
    const insts = f.path.map((id) => this.system.instances[id]);
    try {
      return replay(this.system.inits[f.init], insts);
    } catch {
      return undefined;
    }
  }

  private visit(s: S): void {
    try {
      this.enc.encode(s);
    } catch (e) {
      if (e instanceof DataError) throw new WalkFault(`a state has a bad field ${e.message}`);
      throw e;
    }
    if (this.onState) this.onState(s);
  }

  private checkState(s: S): Omit<WalkFailure, 'init' | 'path'> | undefined {
    for (const [name, inv] of this.invariants) {
      let ok: boolean;
      try {
        ok = inv(s);
      } catch (e) {
        throw new WalkFault(threwText(`invariant '${name}'`, e, s));
      }
      if (!ok) return { kind: 'invariant', property: name, message: `invariant '${name}' is violated` };
    }
    for (const [name, goal] of this.goals) {
      if (this.reached.has(name)) continue;
      let hit = false;
      try {
        hit = goal(s);
      } catch (e) {
        throw new WalkFault(threwText(`reachability property '${name}'`, e, s));
      }
      if (hit) this.reached.add(name);
    }
    return undefined;
  }

  private deadlock(s: S, init: number, path: readonly number[]): WalkFailure {
    const stuck = this.explain(s);
    return {
      kind: 'deadlock',
      property: 'deadlock',
      message: `deadlock: no action is enabled after ${path.length} steps, and the state is not terminal`,
      init,
      path,
      ...(stuck ? { stuck } : {}),
    };
  }

  private guard(inst: ActionInstance<S>, s: S): boolean {
    return guardHolds(inst, s, walkFault, 0);
  }

  private apply(inst: ActionInstance<S>, s: S): S {
    const t = effectOf(inst, s, walkFault, 0);
    if (t === undefined) {
      throw new WalkFault(`effect of action ${formatLabel(inst.label)} returned undefined (an effect must return the next state)`);
    }
    // Frozen states turn a later effect's mutation into a TypeError that names the field (shared subtrees are
    // already frozen, so this costs only the new parts).
    return this.steps <= FULL_CHECKS || this.steps % CHECK_EVERY === 0 ? deepFreeze(t) : t;
  }

  private isTerminal(s: S): boolean {
    const terminal = this.system.spec.terminal;
    if (!terminal) return false;
    try {
      return terminal(s);
    } catch (e) {
      throw new WalkFault(threwText('terminal predicate', e, s));
    }
  }

  private explain(s: S): readonly string[] | undefined {
    const f = this.system.spec.explainStuck;
    if (!f) return undefined;
    try {
      return f(s);
    } catch (e) {
      return [`(explainStuck threw: ${errText(e)})`];
    }
  }
}

/**
 * A canonical, encoder-independent key for a state (JSON with object keys sorted): two states get the same
 * key exactly when they are equal data.
 */
export function stateKey(s: unknown): string {
  return canon(s);
}

function canon(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canon(o[k])}`)
    .join(',')}}`;
}

/**
 * Every reachable state of a (small) system by breadth-first search, as canonical keys. `complete` is false
 * when `maxStates` stopped the search. Independent of the explorer on purpose: tests compare the two engines.
 */
export function reachableStates<S>(system: System<S>, maxStates = 1_000_000): { keys: Set<string>; complete: boolean } {
  const keys = new Set<string>();
  let frontier: S[] = [];
  for (const s of system.inits) {
    const k = stateKey(s);
    if (!keys.has(k)) {
      keys.add(k);
      frontier.push(s);
    }
  }
  while (frontier.length > 0) {
    const next: S[] = [];
    for (const s of frontier) {
      for (const inst of system.instances) {
        const g = inst.action.spec.guard;
        if (g && !g(s, inst.params)) continue;
        const t = inst.action.spec.effect(s, inst.params);
        const k = stateKey(t);
        if (keys.has(k)) continue;
        keys.add(k);
        if (keys.size >= maxStates) return { keys, complete: false };
        next.push(t);
      }
    }
    frontier = next;
  }
  return { keys, complete: true };
}

/**
 * One random walk without property checks: from `inits[init]`, step k takes the enabled instance
 * `choices[k] % enabled`; stops when the choices run out or nothing is enabled. For tests and harnesses that
 * want model behaviours (e.g. to record them as events); `replay(system.inits[init], path)` gives its Trace.
 */
export function walkPath<S>(system: System<S>, init: number, choices: readonly number[]): ActionInstance<S>[] {
  const path: ActionInstance<S>[] = [];
  let s = system.inits[init % system.inits.length];
  const enabled: ActionInstance<S>[] = [];
  for (const c of choices) {
    enabled.length = 0;
    for (const inst of system.instances) {
      const g = inst.action.spec.guard;
      if (!g || g(s, inst.params)) enabled.push(inst);
    }
    if (enabled.length === 0) break;
    const inst = enabled[c % enabled.length];
    s = inst.action.spec.effect(s, inst.params);
    path.push(inst);
  }
  return path;
}
