/**
 * DP attention padding and gather mode (seed 003, SGLang #8278, merged as DpPaddingMode).
 *
 * Mode rule: all-gather (every rank padded to max, a max*dp buffer) when 2*sum > max*dp, else all-reduce
 * (a sum-row buffer, rank r's rows at its prefix offset).
 *
 * - mode-moves-least: per dp 1..64 the counts are dp integers (every vector with counts >= 0), max and sum
 *   are defined from them: linear integer arithmetic, one validity query per dp; plus one
 *   query for symbolic dp.
 * - pad-unpad-roundtrip: the padded layout is built by a scan over the ranks (rank j's segment starts where
 *   rank j-1's ends: j*max in all-gather, the prefix sum in all-reduce), a symbolic transition system with dp
 *   and every count symbolic. Two arbitrary rows (r, i) and (r2, i2) are followed through the scan; k-induction
 *   proves that real rows land inside the buffer at distinct offsets (so writing both, in any order, and
 *   reading one back gives it back) and that all-gather pad rows land on no real row: for every dp >= 1.
 * - rank-local-mode: the same scan where each rank picks its layout from a rank-local flag: BMC finds two
 *   ranks whose rows collide.
 */
import { bmc, kInduction, valid } from './engine/check.ts';
import { bool, enumSort, int } from './engine/sorts.ts';
import { system } from './engine/system.ts';
import { type Ctx, type Z3Array, type Z3Bool, type Z3Int, z3 } from './engine/z3.ts';
import { type Proof, type ProofOptions, type ProofOutcome, combine, fromBmc, fromInduction, fromValidity } from './types.ts';

const PROTOCOL = 'dp-padding';
export const MAX_DP = 64;

let fresh = 0;

/** Counts of a dp-rank group, one integer per rank (>= 0), with max and sum defined from them. */
function counts(ctx: Ctx, dp: number) {
  const tag = `dp${dp}#${++fresh}`;
  const c = Array.from({ length: dp }, (_, j) => ctx.Int.const(`count${j}.${tag}`));
  let max: Z3Int = c[0];
  for (const x of c.slice(1)) max = ctx.If(x.gt(max), x, max) as Z3Int;
  const sum = ctx.Sum(c[0], ...c.slice(1));
  return { dp, c, max, sum, defs: c.map((x) => x.ge(0)) };
}

/** The chosen mode never moves more rows than the other: per dp with real counts, and for every dp symbolically. */
async function modeMovesLeast(opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  const parts: ProofOutcome[] = [];
  for (let dp = 1; dp <= MAX_DP; dp++) {
    const k = counts(ctx, dp);
    const agRows = k.max.mul(dp);
    const arRows = k.sum.mul(2);
    const chosen = ctx.If(arRows.gt(agRows), agRows, arRows) as Z3Int;
    const claim = ctx.And(chosen.le(agRows), chosen.le(arRows));
    parts.push(fromValidity(await valid(ctx, claim, k.defs, { ...opts, logic: 'QF_LIA' }), `dp = ${dp}`));
    if (parts[parts.length - 1].result !== 'proved') return combine(parts, 'mode rule');
  }
  // Every dp >= 1, using only the facts 0 <= max <= sum <= dp*max of a count vector.
  const dp = ctx.Int.const('dp.sym');
  const max = ctx.Int.const('max.sym');
  const sum = ctx.Int.const('sum.sym');
  const chosen = ctx.If(sum.mul(2).gt(max.mul(dp)), max.mul(dp), sum.mul(2)) as Z3Int;
  const facts = [dp.ge(1), max.ge(0), sum.ge(max), sum.le(max.mul(dp))];
  parts.push(fromValidity(await valid(ctx, ctx.And(chosen.le(max.mul(dp)), chosen.le(sum.mul(2))), facts, opts), 'symbolic dp'));
  return combine(parts, `${MAX_DP} per-dp queries (counts unrolled) and one for symbolic dp >= 1`);
}

const Layout = enumSort('all-gather', 'all-reduce');
export type PadVariant = 'all-gather' | 'all-reduce' | 'rank-local';

/**
 * The padding scan. Parameters: dp, max, and two rows followed through the scan, A = (r, i) and B = (r2, i2).
 * One step per rank j: its count c (0..max) is chosen; its segment starts at baseAG (= j*max) in all-gather
 * layout or baseAR (= c_0 + ... + c_{j-1}) in all-reduce layout; when j is r (r2) the offset of row A (B) is
 * fixed. The buffer holds baseAG (= max*dp) rows in all-gather layout, baseAR (= sum) in all-reduce layout.
 */
export function padScan(ctx: Ctx, variant: PadVariant) {
  const uniform = variant === 'rank-local' ? undefined : Layout.idx[variant];
  const sys = system(ctx, `dp-padding.scan.${variant}`, {
    params: { dp: int({ min: 1 }), max: int({ min: 0 }), r: int(), i: int(), r2: int(), i2: int() },
    vars: {
      j: int(),
      baseAG: int(),
      baseAR: int(),
      seenA: bool(),
      seenB: bool(),
      cA: int(),
      cB: int(),
      layA: Layout,
      layB: Layout,
      offA: int(),
      offB: int(),
    },
  });
  const ag = (l: Z3Int) => l.eq(Layout.idx['all-gather']);
  const size = (s: { baseAG: Z3Int; baseAR: Z3Int }, l: Z3Int) => ctx.If(ag(l), s.baseAG, s.baseAR) as Z3Int;
  const realA = (s: { seenA: Z3Bool; cA: Z3Int }, p: { i: Z3Int }) => ctx.And(s.seenA, p.i.lt(s.cA));
  const realB = (s: { seenB: Z3Bool; cB: Z3Int }, p: { i2: Z3Int }) => ctx.And(s.seenB, p.i2.lt(s.cB));
  // B as a pad row: all-gather layout, past its count, below max.
  const padB = (s: { seenB: Z3Bool; cB: Z3Int; layB: Z3Int }, p: { i2: Z3Int; max: Z3Int }) =>
    ctx.And(s.seenB, ag(s.layB), p.i2.ge(s.cB), p.i2.lt(p.max));
  sys
    .assume((p) =>
      ctx.And(p.r.ge(0), p.r.lt(p.dp), p.r2.ge(0), p.r2.lt(p.dp), p.i.ge(0), p.i2.ge(0), ctx.Or(p.r.neq(p.r2), p.i.neq(p.i2))),
    )
    .init((s) =>
      ctx.And(
        ...[s.j, s.baseAG, s.baseAR, s.cA, s.cB, s.offA, s.offB, s.layA, s.layB].map((x) => x.eq(0)),
        ctx.Not(s.seenA),
        ctx.Not(s.seenB),
      ),
    )
    .action('pad_rank', {
      text: 'the next rank reports its count and gets its padded segment',
      choose: { count: int({ min: 0 }), layout: Layout },
      guard: (s, p, c) => ctx.And(s.j.lt(p.dp), c.count.le(p.max), uniform === undefined ? ctx.Bool.val(true) : c.layout.eq(uniform)),
      update: (s, p, c) => {
        const base = ctx.If(ag(c.layout), s.baseAG, s.baseAR) as Z3Int;
        const isA = s.j.eq(p.r);
        const isB = s.j.eq(p.r2);
        return {
          j: s.j.add(1),
          baseAG: s.baseAG.add(p.max),
          baseAR: s.baseAR.add(c.count),
          seenA: ctx.Or(s.seenA, isA),
          seenB: ctx.Or(s.seenB, isB),
          cA: ctx.If(isA, c.count, s.cA) as Z3Int,
          cB: ctx.If(isB, c.count, s.cB) as Z3Int,
          layA: ctx.If(isA, c.layout, s.layA) as Z3Int,
          layB: ctx.If(isB, c.layout, s.layB) as Z3Int,
          offA: ctx.If(isA, base.add(p.i), s.offA) as Z3Int,
          offB: ctx.If(isB, base.add(p.i2), s.offB) as Z3Int,
        };
      },
    })
    .property('real row inside buffer', (s, p) => ctx.Implies(realA(s, p), ctx.And(s.offA.ge(0), s.offA.lt(size(s, s.layA)))))
    .property('unpad reads back the row', (s, p) => {
      // Write A then B into a buffer of owners and row indices; A's offset must still hold A.
      const empty = ctx.Array.K(ctx.Int.sort(), ctx.Int.val(-1)) as unknown as Z3Array;
      const owner = (empty.store(s.offA as never, p.r as never) as Z3Array).store(s.offB as never, p.r2 as never) as Z3Array;
      const row = (empty.store(s.offA as never, p.i as never) as Z3Array).store(s.offB as never, p.i2 as never) as Z3Array;
      const back = ctx.And((owner.select(s.offA as never) as unknown as Z3Int).eq(p.r), (row.select(s.offA as never) as unknown as Z3Int).eq(p.i));
      return ctx.Implies(ctx.And(realA(s, p), realB(s, p)), back);
    })
    .property('pad rows touch no real row', (s, p) =>
      ctx.Implies(ctx.And(realA(s, p), padB(s, p)), ctx.And(s.offB.neq(s.offA), s.offB.ge(0), s.offB.lt(size(s, s.layB)))),
    )
    // Strengthening: the scan's bookkeeping (what k-induction cannot see from one state alone).
    .invariant('scan position', (s, p) =>
      ctx.And(
        s.j.ge(0),
        s.j.le(p.dp),
        s.baseAR.ge(0),
        s.baseAG.ge(0),
        s.seenA.eq(s.j.gt(p.r)),
        s.seenB.eq(s.j.gt(p.r2)),
      ),
    )
    .invariant('seen rows', (s, p) =>
      ctx.And(
        ctx.Implies(s.seenA, ctx.And(s.cA.ge(0), s.cA.le(p.max), s.offA.ge(p.i))),
        ctx.Implies(s.seenB, ctx.And(s.cB.ge(0), s.cB.le(p.max), s.offB.ge(p.i2))),
        ctx.Implies(realA(s, p), s.offA.lt(ctx.If(ag(s.layA), s.baseAG, s.baseAR) as Z3Int)),
        ctx.Implies(ctx.Or(realB(s, p), padB(s, p)), s.offB.lt(ctx.If(ag(s.layB), s.baseAG, s.baseAR) as Z3Int)),
        // Rows of an earlier rank sit below every offset of a later rank's segment.
        ctx.Implies(ctx.And(realA(s, p), s.seenB, p.r.lt(p.r2)), s.offA.lt(s.offB.sub(p.i2))),
        ctx.Implies(ctx.And(ctx.Or(realB(s, p), padB(s, p)), s.seenA, p.r2.lt(p.r)), s.offB.lt(s.offA.sub(p.i))),
        ctx.Implies(ctx.And(s.seenA, s.seenB, p.r.eq(p.r2)), s.offA.sub(p.i).eq(s.offB.sub(p.i2))),
      ),
    );
  if (uniform !== undefined) sys.invariant('uniform layout', (s) => ctx.And(ctx.Implies(s.seenA, s.layA.eq(uniform)), ctx.Implies(s.seenB, s.layB.eq(uniform))));
  return sys;
}

/** Padding then unpadding gives back every real row, in both layouts, for every dp and count vector. */
async function roundTrip(opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  const parts: ProofOutcome[] = [];
  for (const l of ['all-gather', 'all-reduce'] as const) {
    parts.push(fromInduction(await kInduction(padScan(ctx, l), { ...opts, maxK: 2 }), l));
    if (parts[parts.length - 1].result !== 'proved') break;
  }
  return combine(parts, 'padding scan, both layouts');
}

/**
 * The pre-fix bug: each rank picks the mode from a rank-local flag, so two ranks can use different layouts
 * (one all-gathers while the other all-reduces). Expected violated: a rank unpads another rank's row.
 */
async function rankLocalMode(opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  const sys = padScan(ctx, 'rank-local');
  // Small numbers keep the counterexample readable (any model is a counterexample).
  const hint = (v: { params: Record<string, unknown> }) => {
    const p = v.params as Record<string, Z3Int>;
    return ctx.And(p.dp.le(3), p.max.le(3));
  };
  return fromBmc(await bmc(sys, { ...opts, depth: 6, hint }), 'ranks with different layouts');
}

export const dpPaddingProofs: readonly Proof[] = [
  {
    protocol: PROTOCOL,
    name: 'mode-moves-least',
    claim: 'the mode rule (all-gather iff 2*sum > max*dp) never moves more rows than the other mode (all-gather max*dp, all-reduce 2*sum)',
    range: `dp 1..${MAX_DP} with every count vector (counts >= 0), and every dp >= 1 from 0 <= max <= sum <= dp*max`,
    variants: ['merged (DpPaddingMode)'],
    expectation: 'proved',
    run: modeMovesLeast,
  },
  {
    protocol: PROTOCOL,
    name: 'pad-unpad-roundtrip',
    claim:
      'padding then unpadding gives back every real row (rank r row i at r*max+i in all-gather layout, prefix+i in all-reduce layout): rows inside the buffer, no two rows at one offset, pad rows on no real row',
    range: 'every dp >= 1, every count vector (counts 0..max), both layouts',
    variants: ['merged (DpPaddingMode)', 'cuda-graph (always pads to max)'],
    expectation: 'proved',
    run: roundTrip,
  },
  {
    protocol: PROTOCOL,
    name: 'rank-local-mode',
    claim: 'with the mode taken from a rank-local flag, two ranks use different layouts and a rank unpads another rank’s row',
    range: 'BMC, 6 ranks deep',
    variants: ['rank-local-mode (pre-fix)'],
    expectation: 'violated',
    run: rankLocalMode,
  },
];
