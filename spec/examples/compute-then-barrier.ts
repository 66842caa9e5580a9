/**
 * Ranks compute on their own, then meet at a barrier: the shape of every step of a tensor-parallel forward
 * (local matmuls, then an all-reduce). Each rank takes `steps` local steps; only the barrier is shared. The
 * local steps of different ranks commute, so their (steps + 1)^ranks interleavings are one behaviour for
 * every property here: the model declares what each action reads and writes, and partial-order reduction
 * explores one order (compare `check spec/examples/compute-then-barrier.ts` with `--no-por`).
 *
 * Variants: the barrier as it should be (holds); a rank that leaves before the barrier opened (the invariant
 * fails); a rank that is one local step short of arriving, so the barrier never opens (deadlock).
 */
import { actionsOf, defineProtocol, defineSystem, type System } from '../../model/index.ts';

type Phase = 'compute' | 'arrived' | 'left';

export interface BarrierState {
  /** Local steps each rank has taken. */
  readonly work: readonly number[];
  readonly phase: readonly Phase[];
  /** The barrier has opened: every rank arrived. */
  readonly open: boolean;
}

const act = actionsOf<BarrierState>();

export interface BarrierConfig {
  readonly ranks: number;
  readonly steps: number;
}

export function computeThenBarrier(cfg: BarrierConfig, bug?: 'leaves-early' | 'rank-short'): System<BarrierState> {
  const R = Array.from({ length: cfg.ranks }, (_, r) => r);
  // With the `rank-short` bug the last rank needs one step more than it may take: it never arrives.
  const needed = (r: number) => (bug === 'rank-short' && r === cfg.ranks - 1 ? cfg.steps + 1 : cfg.steps);
  const rank = ({ r }: { r: number }) => `rank ${r}`;
  return defineSystem<BarrierState>({
    name: `compute-then-barrier(${cfg.ranks} ranks, ${cfg.steps} steps${bug ? `, ${bug}` : ''})`,
    init: { work: R.map(() => 0), phase: R.map(() => 'compute'), open: false },
    actions: [
      act('compute', {
        params: { r: R },
        actor: rank,
        conditions: [
          { reads: ({ r }) => [`phase[${r}]`], holds: (s, { r }) => s.phase[r] === 'compute' },
          { reads: ({ r }) => [`work[${r}]`], holds: (s, { r }) => s.work[r] < cfg.steps },
        ],
        reads: ({ r }) => [`phase[${r}]`, `work[${r}]`],
        writes: ({ r }) => [`work[${r}]`],
        effect: (s, { r }) => ({ ...s, work: s.work.with(r, s.work[r] + 1) }),
        describe: ({ r }, s) => `rank ${r} runs local step ${s.work[r] + 1}`,
      }),
      act('arrive', {
        params: { r: R },
        actor: rank,
        conditions: [
          { reads: ({ r }) => [`phase[${r}]`], holds: (s, { r }) => s.phase[r] === 'compute' },
          { reads: ({ r }) => [`work[${r}]`], holds: (s, { r }) => s.work[r] === needed(r) },
        ],
        reads: ({ r }) => [`phase[${r}]`, `work[${r}]`],
        writes: ({ r }) => [`phase[${r}]`],
        effect: (s, { r }) => ({ ...s, phase: s.phase.with(r, 'arrived') }),
        describe: ({ r }) => `rank ${r} arrives at the barrier`,
      }),
      act('open', {
        actor: 'barrier',
        conditions: [
          { reads: ['open'], holds: (s) => !s.open },
          { reads: ['phase'], holds: (s) => s.phase.every((p) => p !== 'compute') },
        ],
        reads: ['open', 'phase'],
        writes: ['open'],
        effect: (s) => ({ ...s, open: true }),
        describe: () => 'every rank arrived: the barrier opens',
      }),
      act('leave', {
        params: { r: R },
        actor: rank,
        conditions: [
          { reads: ({ r }) => [`phase[${r}]`], holds: (s, { r }) => s.phase[r] === (bug === 'leaves-early' ? 'compute' : 'arrived') },
          ...(bug === 'leaves-early' ? [] : [{ reads: ['open'], holds: (s: BarrierState) => s.open }]),
        ],
        reads: ({ r }) => [`phase[${r}]`, 'open'],
        writes: ({ r }) => [`phase[${r}]`],
        effect: (s, { r }) => ({ ...s, phase: s.phase.with(r, 'left') }),
        describe: ({ r }) => `rank ${r} leaves the barrier`,
      }),
    ],
    invariants: {
      // Nobody is past the barrier while another rank has not reached it.
      'no-rank-leaves-early': (s) => !s.phase.includes('left') || s.phase.every((p) => p !== 'compute'),
    },
    observes: ['phase'],
    terminal: (s) => s.phase.every((p) => p === 'left'),
    explainStuck: (s) =>
      R.map((r) => `rank ${r}: ${s.phase[r]} after ${s.work[r]} of ${needed(r)} local steps${s.phase[r] === 'arrived' ? ', waits for the barrier' : ''}`),
  });
}

export default defineProtocol<BarrierConfig>({
  name: 'compute-then-barrier',
  summary: 'ranks take local steps, then meet at a barrier; declares reads/writes for partial-order reduction',
  configs: { check: { ranks: 4, steps: 3 }, large: { ranks: 8, steps: 4 } },
  variants: [
    { name: 'fixed', summary: 'every rank leaves once the barrier opened', expect: { verdict: 'holds' }, build: (c) => computeThenBarrier(c) },
    {
      name: 'leaves-early',
      summary: 'a rank may leave before arriving: it is past the barrier while others compute',
      expect: { verdict: 'violated', property: 'no-rank-leaves-early' },
      build: (c) => computeThenBarrier(c, 'leaves-early'),
    },
    {
      name: 'rank-short',
      summary: 'the last rank waits for one local step more than it takes: the barrier never opens',
      expect: { verdict: 'violated', property: 'deadlock' },
      build: (c) => computeThenBarrier(c, 'rank-short'),
    },
  ],
});
