/**
 * Async rebalance with a TP step-max barrier (seed 004, SGLang #8529): the margin question.
 *
 * Tick semantics (one tick = one forward pass; TP ranks run forward passes in lockstep, so all ranks are at
 * the same step in a tick; the generator is advanced once per rank per tick):
 *   - rank r sees its plan ready at some tick s_r (any skew between ranks) and in that tick posts its s_r to
 *     every peer (W-1 sends, W-1 receives);
 *   - its sync thread completes, and the generator observes it, at some tick t_r with
 *     max(s) <= t_r <= max(s) + D: no rank can learn before every rank has posted, and the signal delay
 *     (posting of the last signal to the generator observing all of them) is at most D ticks;
 *   - at t_r it computes begin_step = max(all s) + margin;
 *   - 'same-advance' (the PR's generator: compute begin_step, then in the same advance test
 *     step >= begin_step): it starts the transfer at the first tick t >= begin_step at which it knows
 *     begin_step; it is late if it learns begin_step at a tick t_r > begin_step;
 *   - 'next-advance' (the check runs at the start of a tick, before the signals of that tick are seen): it
 *     is late if t_r >= begin_step.
 * Properties: every rank computes the same begin_step; no rank has passed begin_step when it learns it; every
 * rank starts the transfer at begin_step (hence at the same tick).
 *
 * Result: the smallest safe margin is D (same-advance) or D + 1 (next-advance), for every W, every step and
 * every skew: proved by k-induction for a symbolic W >= 1 (one arbitrary rank and a count of its peers: the
 * ranks are symmetric), D and margin symbolic (margin >= f(D)), rechecked rank by rank for W = 1..4; BMC gives
 * counterexamples at margin f(D) - 1 for D = 1..3. The PR's margin of 2 tolerates a delay of at most 2 ticks
 * (same-advance), 1 tick (next-advance).
 */
import { bmc, kInduction } from './engine/check.ts';
import { type Vars, bool, enumSort, int } from './engine/sorts.ts';
import { system } from './engine/system.ts';
import { type Ctx, type Z3Bool, type Z3Int, z3 } from './engine/z3.ts';
import { type Proof, type ProofOptions, type ProofOutcome, combine, fromBmc, fromInduction } from './types.ts';

const PROTOCOL = 'eplb-async-rebalance';
/** The counterexamples at margin f(D) - 1 are found for D = 1..MAX_D_CEX. */
export const MAX_D_CEX = 3;

export type Semantics = 'same-advance' | 'next-advance';
/** The smallest safe margin for a signal delay of at most D ticks. */
export const minimalMargin = (d: number, sem: Semantics): number => (sem === 'same-advance' ? d : d + 1);

const Phase = enumSort('plan', 'posted', 'waiting', 'transferring');
const PH = Phase.idx;

/**
 * The TP group of W ranks, one transition per tick (every rank advances its generator once). Parameters:
 * D (delay bound), margin, T0 (the tick the window opens: every step count is covered). `assume` picks the
 * parameter range.
 */
export function barrierSystem(ctx: Ctx, W: number, sem: Semantics, assume: (p: { D: Z3Int; margin: Z3Int }) => Z3Bool) {
  const vars: Record<string, ReturnType<typeof int> | ReturnType<typeof bool> | typeof Phase> = { tick: int(), maxS: int() };
  const choose: Record<string, ReturnType<typeof bool>> = {};
  for (let r = 0; r < W; r++) {
    Object.assign(vars, { [`phase${r}`]: Phase, [`s${r}`]: int(), [`begin${r}`]: int(), [`start${r}`]: int(), [`late${r}`]: bool() });
    Object.assign(choose, { [`post${r}`]: bool(), [`learn${r}`]: bool() });
  }
  type S = Record<string, Z3Int>;
  const flag = (s: S, k: string) => s[k] as unknown as Z3Bool;
  const ranks = Array.from({ length: W }, (_, r) => r);
  const ph = (s: S, r: number) => s[`phase${r}`] as Z3Int;
  const posted = (s: S, r: number) => ph(s, r).neq(PH.plan);
  const allPosted = (s: S) => ctx.And(...ranks.map((r) => posted(s, r)));
  // max(s) is kept in a variable (every post happens at the current tick, later than all earlier posts);
  // the property 'maxS is the max of the posted steps' ties it to the definition.
  const maxS = (s: S) => s.maxS as Z3Int;
  const knows = (s: S, r: number) => ctx.Or(ph(s, r).eq(PH.waiting), ph(s, r).eq(PH.transferring));

  const sys = system(ctx, `eplb-async-rebalance.W${W}.${sem}`, {
    vars: vars as Vars,
    params: { D: int({ min: 0 }), margin: int(), T0: int({ min: 0 }) },
  })
    .assume((p) => assume(p as unknown as { D: Z3Int; margin: Z3Int }))
    .init((s0, p) => {
      const s = s0 as unknown as S;
      return ctx.And(
        s.tick.eq(p.T0 as Z3Int),
        s.maxS.eq(0),
        ...ranks.flatMap((r) => [ph(s, r).eq(PH.plan), s[`s${r}`].eq(0), s[`begin${r}`].eq(0), s[`start${r}`].eq(0), ctx.Not(flag(s, `late${r}`))]),
      );
    })
    .action('tick', {
      actor: 'every rank',
      text: 'one forward pass: every rank advances its generator',
      choose: choose as Vars,
      update: (s0, p0, c0) => {
        const s = s0 as unknown as S;
        const c = c0 as unknown as S;
        const p = p0 as unknown as { D: Z3Int; margin: Z3Int };
        const t = s.tick;
        const postNow = ranks.map((r) => ctx.And(ph(s, r).eq(PH.plan), flag(c, `post${r}`)));
        const sNext = ranks.map((r) => ctx.If(postNow[r], t, s[`s${r}`]) as Z3Int);
        const allPostedNext = ctx.And(...ranks.map((r) => ctx.Or(posted(s, r), postNow[r])));
        const maxNext = ctx.If(ctx.Or(...postNow), t, s.maxS) as Z3Int;
        const begin = maxNext.add(p.margin);
        const out: Record<string, Z3Int | Z3Bool> = { tick: t.add(1), maxS: maxNext };
        for (const r of ranks) {
          const canLearn = ctx.And(ctx.Or(ph(s, r).eq(PH.posted), postNow[r]), allPostedNext);
          const mustLearn = ctx.And(canLearn, t.ge(maxNext.add(p.D)));
          const learnNow = ctx.And(canLearn, ctx.Or(flag(c, `learn${r}`), mustLearn));
          const waiting = ph(s, r).eq(PH.waiting);
          const b = s[`begin${r}`];
          const startNow =
            sem === 'same-advance'
              ? ctx.Or(ctx.And(learnNow, t.ge(begin)), ctx.And(waiting, t.ge(b)))
              : ctx.And(waiting, t.ge(b));
          const lateNow =
            sem === 'same-advance'
              ? ctx.Or(ctx.And(learnNow, t.gt(begin)), ctx.And(waiting, t.gt(b)))
              : ctx.Or(ctx.And(learnNow, t.ge(begin)), ctx.And(waiting, t.gt(b)));
          out[`phase${r}`] = ctx.If(startNow, PH.transferring, ctx.If(learnNow, PH.waiting, ctx.If(postNow[r], PH.posted, ph(s, r)))) as Z3Int;
          out[`s${r}`] = sNext[r];
          out[`begin${r}`] = ctx.If(learnNow, begin, b) as Z3Int;
          out[`start${r}`] = ctx.If(startNow, t, s[`start${r}`]) as Z3Int;
          out[`late${r}`] = ctx.Or(flag(s, `late${r}`), lateNow);
        }
        return out as never;
      },
    })
    .property('every rank computes the same begin_step', (s0, p) => {
      const s = s0 as unknown as S;
      return ctx.And(...ranks.map((r) => ctx.Implies(knows(s, r), ctx.And(allPosted(s), s[`begin${r}`].eq(maxS(s).add(p.margin as Z3Int))))));
    })
    .property('maxS is the max of the posted steps', (s0) => {
      const s = s0 as unknown as S;
      const anyPosted = ctx.Or(...ranks.map((r) => posted(s, r)));
      return ctx.Implies(
        anyPosted,
        ctx.And(...ranks.map((r) => ctx.Implies(posted(s, r), s[`s${r}`].le(s.maxS))), ctx.Or(...ranks.map((r) => ctx.And(posted(s, r), s[`s${r}`].eq(s.maxS))))),
      );
    })
    .property('no rank has passed begin_step when it learns it', (s0) => {
      const s = s0 as unknown as S;
      return ctx.And(...ranks.map((r) => ctx.Not(flag(s, `late${r}`))));
    })
    .property('every rank starts the transfer at begin_step', (s0) => {
      const s = s0 as unknown as S;
      return ctx.And(...ranks.map((r) => ctx.Implies(ph(s, r).eq(PH.transferring), s[`start${r}`].eq(s[`begin${r}`]))));
    })
    .invariant('timing', (s0, p) => {
      const s = s0 as unknown as S;
      const D = p.D as Z3Int;
      return ctx.And(
        s.maxS.lt(s.tick).or(ctx.Not(ctx.Or(...ranks.map((r) => posted(s, r))))),
        ...ranks.flatMap((r) => [
          ctx.Implies(posted(s, r), s[`s${r}`].lt(s.tick)),
          ctx.Implies(ctx.And(ph(s, r).eq(PH.posted), allPosted(s)), s.tick.le(maxS(s).add(D))),
          ctx.Implies(ph(s, r).eq(PH.waiting), s.tick.le(s[`begin${r}`])),
          ctx.Implies(ph(s, r).eq(PH.transferring), s[`start${r}`].lt(s.tick)),
        ]),
      );
    });
  return sys;
}

/**
 * The same protocol for a symbolic number of ranks W >= 1, seen from one arbitrary rank p: the ranks are
 * symmetric and a rank's behaviour depends on its peers only through max(s) and whether all have posted,
 * so the peers are kept as a count (`others`: peers still computing their plan, any number of which post
 * in a tick). A property proved for p holds for every rank of every W; agreement follows because every rank's
 * begin_step is shown equal to the one global max(s) + margin.
 */
export function symmetricBarrierSystem(ctx: Ctx, sem: Semantics, assume: (p: { W: Z3Int; D: Z3Int; margin: Z3Int }) => Z3Bool) {
  return system(ctx, `eplb-async-rebalance.symbolic-W.${sem}`, {
    params: { W: int({ min: 1 }), D: int({ min: 0 }), margin: int(), T0: int({ min: 0 }) },
    vars: { tick: int(), maxS: int(), others: int(), phase: Phase, s: int(), begin: int(), start: int(), late: bool() },
  })
    .assume((p) => assume(p))
    .init((s, p) =>
      ctx.And(s.tick.eq(p.T0), s.maxS.eq(0), s.others.eq(p.W.sub(1)), s.phase.eq(PH.plan), s.s.eq(0), s.begin.eq(0), s.start.eq(0), ctx.Not(s.late)),
    )
    .action('tick', {
      actor: 'every rank',
      text: 'one forward pass: rank p and its peers advance their generators',
      choose: { post: bool(), learn: bool(), peersPosting: int({ min: 0 }) },
      guard: (s, _p, c) => c.peersPosting.le(s.others),
      update: (s, p, c) => {
        const t = s.tick;
        const postNow = ctx.And(s.phase.eq(PH.plan), c.post);
        const maxNext = ctx.If(ctx.Or(postNow, c.peersPosting.gt(0)), t, s.maxS) as Z3Int;
        const allPostedNext = ctx.And(s.others.sub(c.peersPosting).eq(0), ctx.Or(s.phase.neq(PH.plan), postNow));
        const begin = maxNext.add(p.margin);
        const canLearn = ctx.And(ctx.Or(s.phase.eq(PH.posted), postNow), allPostedNext);
        const learnNow = ctx.And(canLearn, ctx.Or(c.learn, t.ge(maxNext.add(p.D))));
        const waiting = s.phase.eq(PH.waiting);
        const startNow =
          sem === 'same-advance' ? ctx.Or(ctx.And(learnNow, t.ge(begin)), ctx.And(waiting, t.ge(s.begin))) : ctx.And(waiting, t.ge(s.begin));
        const lateNow =
          sem === 'same-advance'
            ? ctx.Or(ctx.And(learnNow, t.gt(begin)), ctx.And(waiting, t.gt(s.begin)))
            : ctx.Or(ctx.And(learnNow, t.ge(begin)), ctx.And(waiting, t.gt(s.begin)));
        return {
          tick: t.add(1),
          maxS: maxNext,
          others: s.others.sub(c.peersPosting),
          phase: ctx.If(startNow, PH.transferring, ctx.If(learnNow, PH.waiting, ctx.If(postNow, PH.posted, s.phase))) as Z3Int,
          s: ctx.If(postNow, t, s.s) as Z3Int,
          begin: ctx.If(learnNow, begin, s.begin) as Z3Int,
          start: ctx.If(startNow, t, s.start) as Z3Int,
          late: ctx.Or(s.late, lateNow),
        };
      },
    })
    .property('every rank computes the same begin_step', (s, p) =>
      ctx.Implies(ctx.Or(s.phase.eq(PH.waiting), s.phase.eq(PH.transferring)), ctx.And(s.others.eq(0), s.begin.eq(s.maxS.add(p.margin)))),
    )
    .property('no rank has passed begin_step when it learns it', (s) => ctx.Not(s.late))
    .property('every rank starts the transfer at begin_step', (s) => ctx.Implies(s.phase.eq(PH.transferring), s.start.eq(s.begin)))
    .invariant('timing', (s, p) => {
      const posted = s.phase.neq(PH.plan);
      return ctx.And(
        s.others.ge(0),
        s.others.le(p.W.sub(1)),
        ctx.Implies(posted, ctx.And(s.s.lt(s.tick), s.s.le(s.maxS))),
        ctx.Implies(ctx.Or(posted, s.others.lt(p.W.sub(1))), s.maxS.lt(s.tick)),
        ctx.Implies(ctx.And(s.phase.eq(PH.posted), s.others.eq(0)), s.tick.le(s.maxS.add(p.D))),
        ctx.Implies(s.phase.eq(PH.waiting), s.tick.le(s.begin)),
        ctx.Implies(s.phase.eq(PH.transferring), s.start.lt(s.tick)),
      );
    });
}

/** Ranks modelled one by one for small W (a check of the symmetric abstraction). */
export const EXPLICIT_W = 4;

async function safeAtMinimalMargin(sem: Semantics, opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  const extra = sem === 'same-advance' ? 0 : 1;
  const assume = (p: { D: Z3Int; margin: Z3Int }) => p.margin.ge(p.D.add(extra));
  const parts = [fromInduction(await kInduction(symmetricBarrierSystem(ctx, sem, assume), { ...opts, maxK: 2, logic: 'QF_LIA' }), 'symbolic W >= 1')];
  for (let W = 1; W <= EXPLICIT_W && parts[parts.length - 1].result === 'proved'; W++) {
    parts.push(fromInduction(await kInduction(barrierSystem(ctx, W, sem, assume), { ...opts, maxK: 2, logic: 'QF_LIA' }), `explicit W = ${W}`));
  }
  return combine(
    parts,
    `every W >= 1 (symmetric model) and W = 1..${EXPLICIT_W} rank by rank; every D >= 0, margin >= ${sem === 'same-advance' ? 'D' : 'D + 1'}, start step, skew: k-induction, k = 1`,
  );
}

/** margin = f(D) - 1 for D = 1..3 (W = 2): every one violated; the trace shown is the PR's margin 2. */
async function unsafeBelow(sem: Semantics, opts: ProofOptions): Promise<ProofOutcome> {
  const ctx = await z3();
  const parts: ProofOutcome[] = [];
  let shown: ProofOutcome | undefined;
  for (let D = 1; D <= MAX_D_CEX; D++) {
    const m = minimalMargin(D, sem) - 1;
    const sys = barrierSystem(ctx, 2, sem, (p) => ctx.And(p.D.eq(D), p.margin.eq(m)));
    const hint = (v: { params: Record<string, unknown> }) => (v.params.T0 as Z3Int).eq(0);
    const r = fromBmc(await bmc(sys, { ...opts, depth: D + 2, hint, logic: 'QF_LIA' }), `D = ${D}, margin = ${m}`);
    if (r.result !== 'violated') return { ...r, detail: `expected a counterexample: ${r.detail}` };
    parts.push(r);
    if (m === 2) shown = r;
  }
  return { ...(shown ?? parts[0]), detail: `W = 2, D = 1..${MAX_D_CEX} with margin f(D) - 1: each violated; shown: ${(shown ?? parts[0]).detail}` };
}

export const eplbAsyncRebalanceProofs: readonly Proof[] = [
  {
    protocol: PROTOCOL,
    name: 'margin-D-safe',
    claim: 'with signal delay <= D and margin >= D (same-advance generator), every rank computes the same begin_step, none has passed it when it learns it, all start the transfer at it',
    range: 'every W >= 1, every D >= 0, every step, every skew',
    variants: ['pr (begin_step = max(s) + margin, same-advance check)'],
    expectation: 'proved',
    run: (o) => safeAtMinimalMargin('same-advance', o),
  },
  {
    protocol: PROTOCOL,
    name: 'pr-margin-2-tolerates-delay-2',
    claim: 'the PR’s begin_step = max(s) + 2 is safe for every signal delay of at most 2 ticks (same-advance generator)',
    range: 'every W >= 1, D = 0..2, every step, every skew',
    variants: ['pr (margin 2)'],
    expectation: 'proved',
    run: async (opts) => {
      const ctx = await z3();
      const sys = symmetricBarrierSystem(ctx, 'same-advance', (p) => ctx.And(p.margin.eq(2), p.D.le(2)));
      return fromInduction(await kInduction(sys, { ...opts, maxK: 2, logic: 'QF_LIA' }), 'symbolic W >= 1, margin 2, D <= 2');
    },
  },
  {
    protocol: PROTOCOL,
    name: 'margin-D-minus-1-unsafe',
    claim: 'with margin D - 1 a rank learns begin_step after passing it (the PR’s margin 2 fails at D = 3)',
    range: `W = 2, D = 1..${MAX_D_CEX} (BMC)`,
    variants: ['pr with delay > margin'],
    expectation: 'violated',
    run: (o) => unsafeBelow('same-advance', o),
  },
  {
    protocol: PROTOCOL,
    name: 'margin-D+1-safe-next-advance',
    claim: 'if the step check runs before the tick’s signals are seen, margin >= D + 1 is safe',
    range: 'every W >= 1, every D >= 0, every step, every skew',
    variants: ['next-advance check'],
    expectation: 'proved',
    run: (o) => safeAtMinimalMargin('next-advance', o),
  },
  {
    protocol: PROTOCOL,
    name: 'margin-D-unsafe-next-advance',
    claim: 'if the step check runs before the tick’s signals are seen, margin D is unsafe (the PR’s margin 2 fails at D = 2)',
    range: `W = 2, D = 1..${MAX_D_CEX} (BMC)`,
    variants: ['next-advance check, delay >= margin'],
    expectation: 'violated',
    run: (o) => unsafeBelow('next-advance', o),
  },
];

