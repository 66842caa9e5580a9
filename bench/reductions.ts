/**
 * The second bench table: what each reduction and liveness cost or save, each measured against the plain
 * search of the same model in the same run (ratios, not absolute speeds).
 *
 * - liveness: two-phase commit (8 RMs, 1.7 M states) with `eventually(every RM decided)` under weak fairness,
 *   against the safety check of the same model (target: under 3x);
 * - symmetry: the seed protocols that declare it, at 3 ranks, without and with it (states and time), and with
 *   partial-order reduction as well (the default for them);
 * - partial-order reduction: compute-then-barrier at 8 ranks x 4 steps, without and with it.
 *
 * The third table: the seed protocols' fixed designs at 8 ranks (`ranks8`), both reductions on, under the
 * target's 60 s limit: complete or not, with the states and depth reached.
 */
import { check, defineSystem, eventually } from '../model/index.ts';
import type { Protocol } from '../model/registry.ts';
import type { System } from '../model/system.ts';
import { type TwoPhaseState, twoPhase } from '../spec/examples/two-phase.ts';
import { computeThenBarrier } from '../spec/examples/compute-then-barrier.ts';

export interface ReductionRow {
  readonly what: string;
  readonly model: string;
  /** The plain search: states and seconds. */
  readonly baseStates: number;
  readonly baseSeconds: number;
  /** With the feature. */
  readonly states: number;
  readonly seconds: number;
}

function measure(sys: System<any>, opts: Parameters<typeof check>[1], expect: 'holds'): { states: number; seconds: number } {
  const r = check(sys, opts);
  if (r.verdict !== expect) throw new Error(`bench: ${sys.name} gave ${r.verdict} (${r.message ?? r.reason ?? ''}), expected ${expect}`);
  return { states: r.stats.states, seconds: r.stats.seconds };
}

async function variantOf(path: string, variant: string, config: string): Promise<System<any>> {
  const p = (await import(path)).default as Protocol;
  const v = p.variants.find((x) => x.name === variant)!;
  return v.build(p.configs[config]);
}

export async function reductionRows(rms: number): Promise<ReductionRow[]> {
  const rows: ReductionRow[] = [];

  const plain = twoPhase(rms);
  const live = defineSystem<TwoPhaseState>({
    ...plain.spec,
    name: `${plain.name} + liveness`,
    fairness: 'weak',
    liveness: { everyRmDecides: eventually((s) => s.rm.every((r) => r === 'committed' || r === 'aborted')) },
  });
  const safety = measure(plain, {}, 'holds');
  const withLive = measure(live, {}, 'holds');
  rows.push({ what: 'liveness (weak fairness)', model: `two-phase ${rms} RMs`, baseStates: safety.states, baseSeconds: safety.seconds, ...withLive });

  for (const [name, path, variant] of [
    ['eplb-async-rebalance', '../spec/eplb-async-rebalance.ts', 'fixed'],
    ['eplb-async-rebalance', '../spec/eplb-async-rebalance.ts', 'fixed-ticks'],
    ['dp-padding', '../spec/dp-padding.ts', 'fixed'],
  ] as const) {
    // Symmetry alone, then with partial-order reduction too (the default), each against the plain search.
    const sys = await variantOf(path, variant, 'large');
    const model = `${name} ${variant}, large (3 ranks)`;
    const off = measure(sys, { symmetry: false, por: false, liveness: false }, 'holds');
    const sym = measure(sys, { por: false, liveness: false }, 'holds');
    const both = measure(sys, { liveness: false }, 'holds');
    rows.push({ what: 'symmetry', model, baseStates: off.states, baseSeconds: off.seconds, ...sym });
    rows.push({ what: 'symmetry + partial-order', model, baseStates: off.states, baseSeconds: off.seconds, ...both });
  }

  const barrier = computeThenBarrier({ ranks: 8, steps: 4 });
  const full = measure(barrier, { por: false }, 'holds');
  const reduced = measure(barrier, {}, 'holds');
  rows.push({ what: 'partial-order reduction', model: 'compute-then-barrier 8 ranks x 4 steps', baseStates: full.states, baseSeconds: full.seconds, ...reduced });
  return rows;
}

/** Table cells: states and seconds without and with, the state factor and the time ratio. */
export function reductionCells(r: ReductionRow): (string | number)[] {
  return [
    r.what,
    r.model,
    r.baseStates,
    r.baseSeconds.toFixed(2),
    r.states,
    r.seconds.toFixed(2),
    `${(r.baseStates / r.states).toFixed(2)}x`,
    `${(r.seconds / r.baseSeconds).toFixed(2)}x`,
  ];
}

export const REDUCTION_HEADERS = ['feature', 'model', 'states without', 'seconds without', 'states with', 'seconds with', 'state factor', 'time ratio'];

export interface RanksRow {
  readonly model: string;
  readonly verdict: string;
  readonly states: number;
  readonly depth: number;
  readonly seconds: number;
}

/** Each seed protocol's fixed design on `ranks8`, symmetry and partial-order reduction on, within `limit` seconds. */
export async function ranks8Rows(limit: number): Promise<RanksRow[]> {
  const rows: RanksRow[] = [];
  // eplb-async-rebalance twice: the kit model (every thread, stream and signal) and the protocol-level model.
  for (const [name, path, variant] of [
    ['dp-padding', '../spec/dp-padding.ts', 'fixed'],
    ['eplb-async-rebalance', '../spec/eplb-async-rebalance.ts', 'fixed'],
    ['eplb-async-rebalance', '../spec/eplb-async-rebalance.ts', 'fixed-ticks'],
  ] as const) {
    const r = check(await variantOf(path, variant, 'ranks8'), { liveness: false, timeLimit: limit });
    if (r.verdict !== 'holds' && r.verdict !== 'incomplete') throw new Error(`bench: ${name} ${variant} ranks8 gave ${r.verdict} (${r.message ?? ''})`);
    rows.push({ model: `${name} ${variant}, ranks8 (8 ranks)`, verdict: r.verdict === 'holds' ? 'holds (exhaustive)' : `incomplete (${r.reason})`, states: r.stats.states, depth: r.stats.depth, seconds: r.stats.seconds });
  }
  return rows;
}

export const RANKS_HEADERS = ['model', 'verdict', 'states', 'depth', 'seconds'];
export const ranksCells = (r: RanksRow): (string | number)[] => [r.model, r.verdict, r.states, r.depth, r.seconds.toFixed(1)];
