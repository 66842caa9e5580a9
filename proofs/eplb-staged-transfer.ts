/**
 * Async expert rebalancing with a staging buffer (seed 001, vLLM #20990; merged successor vLLM #22179):
 * the placement maps.
 *
 * - plan-is-valid-placement: the maps of one layer are built from the plan's physical_to_logical row by a
 *   scan over the physical slots (slot p holding expert e becomes logical_to_physical[e][count[e]], then
 *   count[e] += 1; unused entries stay -1), as the EPLB code does. A symbolic transition system over the scan,
 *   with the number of slots P, of experts N and the plan all symbolic, and arbitrary expert n*, replica k*,
 *   slot q* followed through it (quantifier-free): k-induction proves the two maps inverse, every expert with
 *   at least one replica when the plan gives it one, entries past count -1. That the counts sum to P is a
 *   per-size query (N, P unrolled); that each rank holds the same number of slots is the layout itself
 *   (slot p on rank p // (P/E)).
 * - per-layer-commit: the commit loop over L layers (symbolic), each commit replacing one layer's map rows
 *   at once between forward passes. One arbitrary layer λ is followed (layers are independent): its rows are
 *   entirely the old plan's or entirely the new plan's at every step boundary, and the new plan's once the
 *   loop ends. With the row replaced in two commits and a forward pass allowed between them, BMC finds a
 *   forward that sees new physical_to_logical with old logical_to_physical.
 */
import { bmc, kInduction } from './engine/check.ts';
import { array, bool, int } from './engine/sorts.ts';
import { system } from './engine/system.ts';
import { type Ctx, type Z3Array, type Z3Int, z3 } from './engine/z3.ts';
import { type Proof, type ProofOptions, type ProofOutcome, combine, fromBmc, fromInduction } from './types.ts';

const PROTOCOL = 'eplb-staged-transfer';

const sel = (a: Z3Array, i: Z3Int | number): Z3Int => a.select(i as never) as unknown as Z3Int;
const selA = (a: Z3Array, i: Z3Int | number): Z3Array => a.select(i as never) as unknown as Z3Array;
const store = (a: Z3Array, i: Z3Int | number, v: Z3Int | Z3Array | number): Z3Array => a.store(i as never, v as never) as Z3Array;

/** The map-building scan of one layer. */
export function placementScan(ctx: Ctx) {
  const intArr = (show: number | string) => array(int(), { show });
  return system(ctx, 'eplb-staged-transfer.placement-scan', {
    params: {
      N: int({ min: 1 }),
      P: int({ min: 1 }),
      R: int({ min: 1 }),
      physical_to_logical: intArr('P'),
      nStar: int(),
      kStar: int(),
      qStar: int(),
      /** A slot the plan gives expert n* (the planner replicates every expert at least once). */
      replicaOfNStar: int(),
    },
    vars: {
      p: int(),
      replica_count: intArr('N'),
      logical_to_physical: array(intArr('R'), { show: 'N' }),
      kOfQStar: int(),
    },
  })
    .assume((a) =>
      ctx.And(
        a.nStar.ge(0),
        a.nStar.lt(a.N),
        a.kStar.ge(0),
        a.qStar.ge(0),
        a.qStar.lt(a.P),
        a.replicaOfNStar.ge(0),
        a.replicaOfNStar.lt(a.P),
        sel(a.physical_to_logical, a.replicaOfNStar).eq(a.nStar),
      ),
    )
    .init((s) => {
      const minus1 = ctx.Array.K(ctx.Int.sort(), ctx.Int.val(-1));
      return ctx.And(
        s.p.eq(0),
        ctx.Eq(s.replica_count, ctx.Array.K(ctx.Int.sort(), ctx.Int.val(0))),
        ctx.Eq(s.logical_to_physical, ctx.Array.K(ctx.Int.sort(), minus1 as never)),
        s.kOfQStar.eq(0),
      );
    })
    .action('scan_slot', {
      text: 'slot p: its expert gets the next replica index',
      guard: (s, a) => {
        const e = sel(a.physical_to_logical, s.p);
        return ctx.And(s.p.lt(a.P), e.ge(0), e.lt(a.N));
      },
      update: (s, a) => {
        const e = sel(a.physical_to_logical, s.p);
        const c = sel(s.replica_count, e);
        return {
          p: s.p.add(1),
          replica_count: store(s.replica_count, e, c.add(1)),
          logical_to_physical: store(s.logical_to_physical, e, store(selA(s.logical_to_physical, e), c, s.p)),
          kOfQStar: ctx.If(s.p.eq(a.qStar), c, s.kOfQStar) as Z3Int,
        };
      },
    })
    .property('logical_to_physical[n][k] holds n for k < count', (s, a) => {
      const slot = sel(selA(s.logical_to_physical, a.nStar), a.kStar);
      return ctx.Implies(
        a.kStar.lt(sel(s.replica_count, a.nStar)),
        ctx.And(slot.ge(0), slot.lt(s.p), sel(a.physical_to_logical, slot).eq(a.nStar)),
      );
    })
    .property('entries past the count are -1', (s, a) =>
      ctx.Implies(a.kStar.ge(sel(s.replica_count, a.nStar)), sel(selA(s.logical_to_physical, a.nStar), a.kStar).eq(-1)),
    )
    .property('every scanned slot is in logical_to_physical of its expert', (s, a) => {
      const e = sel(a.physical_to_logical, a.qStar);
      return ctx.Implies(
        a.qStar.lt(s.p),
        ctx.And(s.kOfQStar.ge(0), s.kOfQStar.lt(sel(s.replica_count, e)), sel(selA(s.logical_to_physical, e), s.kOfQStar).eq(a.qStar)),
      );
    })
    .property('every expert has a replica', (s, a) => ctx.Implies(s.p.eq(a.P), sel(s.replica_count, a.nStar).ge(1)))
    .invariant('scan bookkeeping', (s, a) =>
      ctx.And(
        s.p.ge(0),
        s.p.le(a.P),
        sel(s.replica_count, a.nStar).ge(0),
        sel(s.replica_count, sel(a.physical_to_logical, a.qStar)).ge(0),
        ctx.Implies(a.replicaOfNStar.lt(s.p), sel(s.replica_count, a.nStar).ge(1)),
        ctx.Implies(a.qStar.ge(s.p), s.kOfQStar.eq(0)),
      ),
    );
}

/**
 * Expert counts for which the count sum is proved. The unrolled sum grows quadratically in Z3: 128
 * (Qwen3-30B-A3B) takes about 5 s on two cores and 256 (DeepSeek-R1) passes the 10 s query timeout.
 */
export const SUM_EXPERTS: readonly number[] = [8, 64];

/**
 * The replica counts of the scan sum to the number of slots scanned, for N experts (concrete: the sum is
 * unrolled) and any number of slots P and plan (k-induction over the scan).
 */
export function countScan(ctx: Ctx, N: number) {
  return system(ctx, `eplb-staged-transfer.count-sum.N${N}`, {
    params: { P: int({ min: 1 }), physical_to_logical: array(int(), { show: 'P' }) },
    vars: { p: int(), replica_count: array(int(), { show: N }) },
  })
    .init((s) => ctx.And(s.p.eq(0), ctx.Eq(s.replica_count, ctx.Array.K(ctx.Int.sort(), ctx.Int.val(0)))))
    .action('scan_slot', {
      guard: (s, a) => {
        const e = sel(a.physical_to_logical, s.p);
        return ctx.And(s.p.lt(a.P), e.ge(0), e.lt(N));
      },
      update: (s, a) => {
        const e = sel(a.physical_to_logical, s.p);
        return { p: s.p.add(1), replica_count: store(s.replica_count, e, sel(s.replica_count, e).add(1)) };
      },
    })
    .property('replica counts sum to the slots scanned', (s) => {
      const c = Array.from({ length: N }, (_, n) => sel(s.replica_count, n));
      return ctx.Sum(c[0], ...c.slice(1)).eq(s.p);
    });
}

async function validPlacement(opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  const parts: ProofOutcome[] = [];
  parts.push(fromInduction(await kInduction(placementScan(ctx), { ...opts, maxK: 2 }), 'map-building scan, every N, P and plan'));
  for (const N of SUM_EXPERTS) {
    if (parts[parts.length - 1].result !== 'proved') break;
    parts.push(fromInduction(await kInduction(countScan(ctx, N), { ...opts, maxK: 1 }), `counts sum to P, N = ${N}, every P`));
  }
  return combine(parts, `inverse maps by k-induction over the scan (every N, P, plan); count sums for N = ${SUM_EXPERTS.join(', ')} (every P)`);
}

export type CommitVariant = 'atomic' | 'split';

/** The per-layer commit loop, following one arbitrary layer λ of L (both symbolic). */
export function commitSystem(ctx: Ctx, variant: CommitVariant) {
  const intArr = (show: number | string) => array(int(), { show });
  const l2pSort = array(intArr('R'), { show: 'N' });
  const sys = system(ctx, `eplb-staged-transfer.commit.${variant}`, {
    params: {
      L: int({ min: 1 }),
      layer: int(),
      N: int({ min: 1 }),
      P: int({ min: 1 }),
      R: int({ min: 1 }),
      old_p2l: intArr('P'),
      old_l2p: l2pSort,
      old_count: intArr('N'),
      new_p2l: intArr('P'),
      new_l2p: l2pSort,
      new_count: intArr('N'),
    },
    vars: {
      next: int(),
      half: bool(),
      forwards: int(),
      inconsistentRead: bool(),
      physical_to_logical: intArr('P'),
      logical_to_physical: l2pSort,
      replica_count: intArr('N'),
    },
  });
  type Rows = { physical_to_logical: Z3Array; logical_to_physical: Z3Array; replica_count: Z3Array };
  type Plans = { old_p2l: Z3Array; old_l2p: Z3Array; old_count: Z3Array; new_p2l: Z3Array; new_l2p: Z3Array; new_count: Z3Array };
  const isOld = (s: Rows, a: Plans) =>
    ctx.And(ctx.Eq(s.physical_to_logical, a.old_p2l), ctx.Eq(s.logical_to_physical, a.old_l2p), ctx.Eq(s.replica_count, a.old_count));
  const isNew = (s: Rows, a: Plans) =>
    ctx.And(ctx.Eq(s.physical_to_logical, a.new_p2l), ctx.Eq(s.logical_to_physical, a.new_l2p), ctx.Eq(s.replica_count, a.new_count));
  sys
    .assume((a) => ctx.And(a.layer.ge(0), a.layer.lt(a.L)))
    .init((s, a) => ctx.And(s.next.eq(0), ctx.Not(s.half), s.forwards.eq(0), ctx.Not(s.inconsistentRead), isOld(s, a)))
    .action('forward', {
      text: 'a forward pass reads the maps',
      update: (s, a) => ({ forwards: s.forwards.add(1), inconsistentRead: ctx.Or(s.inconsistentRead, ctx.Not(ctx.Or(isOld(s, a), isNew(s, a)))) }),
    });
  if (variant === 'atomic') {
    sys.action('commit_layer', {
      text: 'commit the next layer: its map rows replaced at once',
      guard: (s, a) => s.next.lt(a.L),
      update: (s, a) => {
        const mine = s.next.eq(a.layer);
        return {
          next: s.next.add(1),
          physical_to_logical: ctx.If(mine, a.new_p2l, s.physical_to_logical) as unknown as Z3Array,
          logical_to_physical: ctx.If(mine, a.new_l2p, s.logical_to_physical) as unknown as Z3Array,
          replica_count: ctx.If(mine, a.new_count, s.replica_count) as unknown as Z3Array,
        };
      },
    });
  } else {
    sys
      .action('commit_physical_to_logical', {
        text: 'commit the next layer’s physical_to_logical row',
        guard: (s, a) => ctx.And(s.next.lt(a.L), ctx.Not(s.half)),
        update: (s, a) => ({
          half: ctx.Bool.val(true),
          physical_to_logical: ctx.If(s.next.eq(a.layer), a.new_p2l, s.physical_to_logical) as unknown as Z3Array,
        }),
      })
      .action('commit_logical_to_physical', {
        text: 'commit the same layer’s logical_to_physical and replica_count rows',
        guard: (s) => s.half,
        update: (s, a) => {
          const mine = s.next.eq(a.layer);
          return {
            next: s.next.add(1),
            half: ctx.Bool.val(false),
            logical_to_physical: ctx.If(mine, a.new_l2p, s.logical_to_physical) as unknown as Z3Array,
            replica_count: ctx.If(mine, a.new_count, s.replica_count) as unknown as Z3Array,
          };
        },
      });
  }
  // In the atomic variant every state is a step boundary; in the split one the state between the two commits
  // is one too (a forward may run there), so the property is what a forward pass reads.
  return sys
    .property('no forward pass reads inconsistent maps', (s) => ctx.Not(s.inconsistentRead))
    .property('every layer on the new plan when the loop ends', (s, a) => ctx.Implies(s.next.eq(a.L), isNew(s, a)))
    .invariant('layers before next are committed', (s, a) =>
      ctx.And(s.next.ge(0), s.next.le(a.L), ctx.Not(s.half), ctx.Or(isOld(s, a), isNew(s, a)), ctx.Implies(a.layer.lt(s.next), isNew(s, a)), ctx.Implies(a.layer.ge(s.next), isOld(s, a))),
    );
}

async function commitConsistent(opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  return fromInduction(await kInduction(commitSystem(ctx, 'atomic'), { ...opts, maxK: 2 }), 'every L >= 1, every layer, every plan');
}

async function splitCommit(opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  const sys = commitSystem(ctx, 'split');
  // Show two real placements of 3 slots and 2 experts (any pair of different plans is a counterexample).
  const hint = (v: { params: Record<string, unknown> }) => {
    const a = v.params as Record<string, Z3Int>;
    const arr = v.params as Record<string, Z3Array>;
    const row = (x: Z3Array, vals: number[]) => vals.map((val, i) => sel(x, i).eq(val));
    const rows = (x: Z3Array, vals: number[][]) => vals.flatMap((r, n) => row(selA(x, n), r));
    return ctx.And(
      a.L.eq(2),
      a.layer.eq(0),
      a.N.eq(2),
      a.P.eq(3),
      a.R.eq(2),
      ...row(arr.old_p2l, [0, 1, 1]),
      ...rows(arr.old_l2p, [[0, -1], [1, 2]]),
      ...row(arr.old_count, [1, 2]),
      ...row(arr.new_p2l, [0, 0, 1]),
      ...rows(arr.new_l2p, [[0, 1], [2, -1]]),
      ...row(arr.new_count, [2, 1]),
    );
  };
  return fromBmc(await bmc(sys, { ...opts, depth: 5, hint }), 'map rows committed in two steps');
}

export const eplbStagedTransferProofs: readonly Proof[] = [
  {
    protocol: PROTOCOL,
    name: 'plan-is-valid-placement',
    claim:
      'maps built from a plan are a valid placement: logical_to_physical and physical_to_logical inverse, every expert >= 1 replica, replica counts sum to the slots, each rank the same number of slots',
    range: 'inverse maps and replicas: every N, P and plan; count sums: N = 8 and 64 with every P (k-induction over the scan); equal slots per rank: by the layout',
    variants: ['vllm (map rebuild from physical_to_logical)'],
    expectation: 'proved',
    run: validPlacement,
  },
  {
    protocol: PROTOCOL,
    name: 'per-layer-commit-consistent',
    claim: 'committing layer by layer, each layer’s map rows replaced at once between forward passes, every layer’s maps are wholly the old or the new plan at every step boundary, all new at the end',
    range: 'every layer count L >= 1, every layer, every pair of plans (k-induction over the commit loop)',
    variants: ['merged (#22179: commit per layer)'],
    expectation: 'proved',
    run: commitConsistent,
  },
  {
    protocol: PROTOCOL,
    name: 'split-commit',
    claim: 'replacing physical_to_logical and logical_to_physical in two commits with a forward between lets a forward see inconsistent maps',
    range: 'BMC, 5 steps',
    variants: ['split commit (maps swapped separately)'],
    expectation: 'violated',
    run: splitCommit,
  },
];
