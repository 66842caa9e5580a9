/**
 * Cross-validation of the Z3 margin model against the explicit model of the same protocol
 * (spec/eplb-async-rebalance.ts, SGLang #8529's step-max barrier).
 *
 * A small symbolic twin of the barrier (two ranks, one transition per tick, the explicit model's timing:
 * posts in [N+2, N+2+C], a rank learns begin_step at a tick u with max(s_r + 1, max s) <= u <= max s + 1 + D)
 * is unrolled over k ticks with the proof engine; every reachable outcome (each rank's post tick, learn tick
 * and begin_step) is enumerated with blocking clauses and compared with the outcomes of every reachable state
 * of the explicit model, found by a plain breadth-first search of its transitions: equal at safe margins; at an
 * unsafe one the explicit model deadlocks before some late learnings (see the test). Then each outcome is checked
 * against the proof model's timing (max s <= u <= max s + D' with D' = D + 1: the proof counts the delay from
 * the last post, the post tick included), so the margin bound proved there (margin >= D') is the explicit
 * model's (margin >= D + 1).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type EplbAsyncConfig, buildEplbAsync } from '../spec/eplb-async-rebalance.ts';
import { Unroller, bool, int, shutdownZ3, system, z3 } from '../proofs/engine/index.ts';
import type { Ctx, Z3Bool, Z3Int } from '../proofs/engine/z3.ts';
import { minimalMargin } from '../proofs/eplb-async-rebalance.ts';

afterAll(async () => {
  await shutdownZ3();
});

type Outcome = readonly [number, number, number][]; // per rank: [post tick, learn tick, begin_step]
const key = (o: Outcome) => JSON.stringify(o);

const base: EplbAsyncConfig = {
  tpSize: 2,
  tpGroups: 1,
  layers: 1,
  layersPerChunk: 1,
  window: 1,
  computeTicks: 1,
  delay: 1,
  margin: 2,
  computeMayRaise: false,
};

/** Every outcome of the explicit model: BFS over its transitions, projected where every rank has learnt begin_step. */
function explicitOutcomes(cfg: EplbAsyncConfig): { outcomes: Set<string>; states: number } {
  const sys = buildEplbAsync(cfg);
  type St = { vars: { sendStep: number | null; learnedAt: number | null; begin: unknown }[] };
  const seen = new Set<string>();
  const queue: St[] = [];
  for (const s of sys.inits as unknown as St[]) {
    seen.add(JSON.stringify(s));
    queue.push(s);
  }
  const outcomes = new Set<string>();
  while (queue.length > 0) {
    const s = queue.pop()!;
    if (s.vars.every((v) => v.learnedAt !== null)) outcomes.add(key(s.vars.map((v) => [v.sendStep!, v.learnedAt!, v.begin as number])));
    for (const inst of sys.instances) {
      const spec = inst.action.spec;
      if (spec.guard && !spec.guard(s as never, inst.params)) continue;
      const n = spec.effect(s as never, inst.params) as unknown as St;
      const k = JSON.stringify(n);
      if (!seen.has(k)) {
        seen.add(k);
        queue.push(n);
      }
    }
  }
  return { outcomes, states: seen.size };
}

/** The symbolic twin: W ranks, one transition per tick from tick N+2 (the first tick a plan can be ready). */
function twin(ctx: Ctx, W: number, cfg: EplbAsyncConfig) {
  const N = cfg.window;
  const lastPost = N + 2 + cfg.computeTicks;
  const vars: Record<string, ReturnType<typeof int> | ReturnType<typeof bool>> = { t: int() };
  const choose: Record<string, ReturnType<typeof bool>> = {};
  for (let r = 0; r < W; r++) {
    Object.assign(vars, { [`posted${r}`]: bool(), [`s${r}`]: int(), [`learned${r}`]: bool(), [`u${r}`]: int(), [`b${r}`]: int() });
    Object.assign(choose, { [`post${r}`]: bool(), [`learn${r}`]: bool() });
  }
  type S = Record<string, Z3Int>;
  const B = (s: S, k: string) => s[k] as unknown as Z3Bool;
  const ranks = [...Array(W).keys()];
  return system(ctx, `barrier-twin.W${W}`, { vars })
    .init((s0) => {
      const s = s0 as unknown as S;
      return ctx.And(s.t.eq(N + 2), ...ranks.flatMap((r) => [ctx.Not(B(s, `posted${r}`)), ctx.Not(B(s, `learned${r}`)), s[`s${r}`].eq(0), s[`u${r}`].eq(0), s[`b${r}`].eq(0)]));
    })
    .action('tick', {
      choose,
      update: (s0, _p, c0) => {
        const s = s0 as unknown as S;
        const c = c0 as unknown as S;
        const t = s.t;
        const postNow = ranks.map((r) => ctx.And(ctx.Not(B(s, `posted${r}`)), ctx.Or(B(c, `post${r}`), t.ge(lastPost))));
        const sNext = ranks.map((r) => ctx.If(postNow[r], t, s[`s${r}`]) as Z3Int);
        const allPosted = ctx.And(...ranks.map((r) => ctx.Or(B(s, `posted${r}`), postNow[r])));
        const maxS = sNext.slice(1).reduce((m, x) => ctx.If(x.gt(m), x, m) as Z3Int, sNext[0]);
        const out: Record<string, unknown> = { t: t.add(1) };
        for (const r of ranks) {
          // Learnable once it posted at an earlier tick and every rank has posted (this tick included).
          const can = ctx.And(B(s, `posted${r}`), ctx.Not(B(s, `learned${r}`)), allPosted);
          const learn = ctx.And(can, ctx.Or(B(c, `learn${r}`), t.ge(maxS.add(1 + cfg.delay))));
          out[`posted${r}`] = ctx.Or(B(s, `posted${r}`), postNow[r]);
          out[`s${r}`] = sNext[r];
          out[`learned${r}`] = ctx.Or(B(s, `learned${r}`), learn);
          out[`u${r}`] = ctx.If(learn, t, s[`u${r}`]);
          out[`b${r}`] = ctx.If(learn, maxS.add(cfg.margin), s[`b${r}`]);
        }
        return out as never;
      },
    })
    .property('true', () => ctx.Bool.val(true));
}

/** Enumerates the outcomes of the twin after k ticks, one blocking clause per outcome found. */
async function symbolicOutcomes(cfg: EplbAsyncConfig, W: number): Promise<Set<string>> {
  const ctx = await z3();
  const u = new Unroller(twin(ctx, W, cfg));
  const k = cfg.computeTicks + cfg.delay + 3;
  const solver = new ctx.Solver();
  solver.add(u.assumption(), u.initial());
  for (let i = 0; i < k; i++) solver.add(u.transition(i));
  const last = u.state(k) as unknown as Record<string, Z3Int>;
  const ranks = [...Array(W).keys()];
  solver.add(...ranks.map((r) => last[`learned${r}`] as unknown as Z3Bool));
  const terms = ranks.flatMap((r) => [last[`s${r}`], last[`u${r}`], last[`b${r}`]]);
  const outcomes = new Set<string>();
  while ((await solver.check()) === 'sat') {
    const m = solver.model();
    const vals = terms.map((e) => Number((m.eval(e, true) as unknown as { value(): bigint }).value()));
    outcomes.add(key(ranks.map((r) => [vals[3 * r], vals[3 * r + 1], vals[3 * r + 2]] as [number, number, number])));
    solver.add(ctx.Or(...terms.map((e, i) => e.neq(vals[i]))));
    if (outcomes.size > 10_000) throw new Error('too many outcomes');
  }
  return outcomes;
}

describe('eplb-async-rebalance: the symbolic barrier agrees with the explicit model', () => {
  for (const [delay, margin] of [
    [1, 2],
    [2, 2],
    [0, 1],
  ] as const) {
    it(`W = 2, C = 1, D = ${delay}, margin ${margin}: outcomes agree`, async () => {
      const cfg = { ...base, delay, margin };
      const explicit = explicitOutcomes(cfg);
      const symbolic = await symbolicOutcomes(cfg, 2);
      expect(explicit.outcomes.size).toBeGreaterThan(4);
      const mixed = (o: string) => {
        const ranks = JSON.parse(o) as [number, number, number][];
        return ranks.some(([, u, b]) => u <= b) && ranks.some(([, u, b]) => u > b);
      };
      if (margin >= delay + 1) {
        expect([...symbolic].sort()).toEqual([...explicit.outcomes].sort());
      } else {
        // Unsafe margin: the explicit model runs on past the late learning. A rank that learnt in time starts
        // the transfer at begin_step; its chunk exchange (a collective) waits for the peer, which waits in the
        // next forward pass's all-to-all: the group deadlocks (the variant pr-margin-late-signal-deadlock),
        // and the late peer never reaches its learning tick. The twin has no transfer and keeps ticking, so it
        // has exactly those outcomes more: one rank in time, another late.
        for (const o of explicit.outcomes) expect(symbolic.has(o)).toBe(true);
        const extra = [...symbolic].filter((o) => !explicit.outcomes.has(o));
        expect(extra.length).toBeGreaterThan(0);
        for (const o of extra) expect(mixed(o), o).toBe(true);
        for (const o of explicit.outcomes) expect(mixed(o), o).toBe(false);
      }

      // Every outcome is allowed by the proof model with D' = D + 1; a rank is late exactly when margin < D'.
      const dProof = delay + 1;
      let late = false;
      for (const o of explicit.outcomes) {
        const ranks = JSON.parse(o) as [number, number, number][];
        const maxS = Math.max(...ranks.map(([s]) => s));
        for (const [s, learn, begin] of ranks) {
          expect(learn).toBeGreaterThanOrEqual(Math.max(s, maxS));
          expect(learn).toBeLessThanOrEqual(maxS + dProof);
          expect(begin).toBe(maxS + margin);
          if (learn > begin) late = true;
        }
      }
      expect(late).toBe(margin < minimalMargin(dProof, 'same-advance'));
    });
  }
});
