import { describe, expect, it } from 'vitest';
import { actionsOf, alwaysEventually, check, defineSystem, eventually, formatTrace, leadsTo } from '../model/index.ts';
import { type TwoPhaseState, twoPhase } from '../spec/examples/two-phase.ts';

/** A worker clears `ongoing` when done (or raises first); main spins on the flag, then uses the plan. */
type Spin = { readonly worker: 'running' | 'done' | 'raised'; readonly ongoing: boolean; readonly main: 'polling' | 'used' };
const spin = actionsOf<Spin>();

function spinLoop(opts: { raises: boolean; fair: boolean }) {
  return defineSystem<Spin>({
    name: 'spin-loop',
    init: { worker: 'running', ongoing: true, main: 'polling' },
    actions: [
      spin('finish', { actor: 'worker', guard: (s) => s.worker === 'running', effect: (s) => ({ ...s, worker: 'done', ongoing: false }) }),
      ...(opts.raises
        ? [spin('raise', { actor: 'worker', guard: (s) => s.worker === 'running', effect: (s) => ({ ...s, worker: 'raised' as const }) })]
        : []),
      // Polling a set flag is a real step that changes nothing: the loop spins.
      spin('poll', { actor: 'main', guard: (s) => s.main === 'polling' && s.ongoing, effect: (s) => s }),
      spin('use', { actor: 'main', guard: (s) => s.main === 'polling' && !s.ongoing, effect: (s) => ({ ...s, main: 'used' }) }),
    ],
    terminal: (s) => s.main === 'used',
    liveness: { mainProgresses: eventually((s) => s.main === 'used') },
    ...(opts.fair ? { fairness: 'weak' as const } : {}),
  });
}

describe('liveness under fairness', () => {
  it('without fairness, a spin loop that may run forever fails eventually with a lasso', () => {
    const r = check(spinLoop({ raises: false, fair: false }));
    expect(r.verdict).toBe('violated');
    expect(r.property).toBe('mainProgresses');
    expect(r.propertyKind).toBe('liveness');
    expect(r.trace!.loopStart).toBe(0);
    expect(r.trace!.steps.map((s) => s.action)).toEqual(['poll']);
  });

  it('with weak fairness on every actor the fixed worker lets main progress', () => {
    expect(check(spinLoop({ raises: false, fair: true })).verdict).toBe('holds');
  });

  it('a worker that raises leaves the flag set: main spins forever even under fairness', () => {
    const r = check(spinLoop({ raises: true, fair: true }));
    expect(r.verdict).toBe('violated');
    expect(r.property).toBe('mainProgresses');
    const t = r.trace!;
    expect(t.steps.map((s) => s.action)).toEqual(['raise', 'poll']);
    expect(t.loopStart).toBe(1);
    expect(formatTrace(t)).toMatch(/-- cycle starts here --[\s\S]*poll[\s\S]*repeats forever/);
  });

  type Toggle = { readonly x: 0 | 1; readonly done: boolean };
  const tog = actionsOf<Toggle>();
  const toggler = (grabFairness: 'weak' | 'strong') =>
    defineSystem<Toggle>({
      name: 'toggle',
      init: { x: 0, done: false },
      actions: [
        tog('toggle', { actor: 'toggler', guard: (s) => !s.done, effect: (s) => ({ ...s, x: s.x === 0 ? 1 : 0 }) }),
        tog('grab', { actor: 'grabber', guard: (s) => !s.done && s.x === 0, effect: (s) => ({ ...s, done: true }), fairness: grabFairness }),
      ],
      terminal: (s) => s.done,
      liveness: { grabs: eventually((s) => s.done) },
    });

  it('weak fairness does not force an action enabled only intermittently', () => {
    const r = check(toggler('weak'));
    expect(r.verdict).toBe('violated');
    expect(r.trace!.steps.every((s) => s.action === 'toggle')).toBe(true);
    expect(r.trace!.steps.length).toBe(2);
  });

  it('strong fairness does', () => {
    expect(check(toggler('strong')).verdict).toBe('holds');
  });

  type Req = { readonly requested: boolean; readonly granted: boolean; readonly broken: boolean };
  const req = actionsOf<Req>();
  const server = (canBreak: boolean) =>
    defineSystem<Req>({
      name: 'server',
      init: { requested: false, granted: false, broken: false },
      actions: [
        req('request', { actor: 'client', guard: (s) => !s.requested, effect: (s) => ({ ...s, requested: true, granted: false }) }),
        req('grant', { actor: 'server', guard: (s) => s.requested && !s.broken, effect: (s) => ({ ...s, requested: false, granted: true }) }),
        ...(canBreak ? [req('break', { actor: 'server', guard: (s) => !s.broken, effect: (s) => ({ ...s, broken: true }) })] : []),
        req('idle', { actor: 'client', effect: (s) => s }),
      ],
      fairness: 'weak',
      liveness: {
        requestsAreGranted: leadsTo((s) => s.requested, (s) => s.granted),
        grantsRecur: alwaysEventually((s) => s.granted || !s.requested),
      },
    });

  it('leadsTo holds for a server that always grants, and fails when it can break', () => {
    expect(check(server(false)).verdict).toBe('holds');
    const r = check(server(true));
    expect(r.verdict).toBe('violated');
    expect(r.property).toBe('requestsAreGranted');
    const last = r.trace!.steps.at(-1)!.state as Req;
    expect(last.granted).toBe(false);
  });

  it('safety runs first; liveness can be switched off', () => {
    const r = check(spinLoop({ raises: true, fair: true }), { liveness: false });
    expect(r.verdict).toBe('holds');
  });

  it('checks a liveness property on a large graph with the same state count as safety', () => {
    const plain = twoPhase(5);
    const live = defineSystem<TwoPhaseState>({
      ...plain.spec,
      fairness: 'weak',
      liveness: { everyoneDecides: eventually<TwoPhaseState>((s) => s.rm.every((r) => r === 'committed' || r === 'aborted')) },
    });
    const a = check(plain);
    const b = check(live);
    expect(b.verdict).toBe('holds');
    expect(b.stats.states).toBe(a.stats.states);
    // Two-phase commit's graph has no cycle, so every behaviour ends decided even without fairness.
    const noFair = defineSystem({ ...live.spec, fairness: undefined, name: 'no-fairness' });
    expect(check(noFair).verdict).toBe('holds');
  });
});

describe('stuck states left to liveness (deadlock: false) and checking chosen properties', () => {
  /** A worker that may raise and leave the flag set; main blocks on it (a guard, not a spin step). */
  type Blk = { readonly worker: 'running' | 'done' | 'raised'; readonly ongoing: boolean; readonly main: 'waiting' | 'used' };
  const blk = actionsOf<Blk>();
  const blocking = defineSystem<Blk>({
    name: 'blocking-wait',
    init: { worker: 'running', ongoing: true, main: 'waiting' },
    actions: [
      blk('finish', { actor: 'worker', guard: (s) => s.worker === 'running', effect: (s) => ({ ...s, worker: 'done', ongoing: false }) }),
      blk('raise', { actor: 'worker', guard: (s) => s.worker === 'running', effect: (s) => ({ ...s, worker: 'raised' }) }),
      blk('use', { actor: 'main', guard: (s) => s.main === 'waiting' && !s.ongoing, effect: (s) => ({ ...s, main: 'used' }) }),
    ],
    invariants: { 'flag-defined': (s) => typeof s.ongoing === 'boolean' },
    terminal: (s) => s.main === 'used',
    explainStuck: (s) => [`main waits for ongoing to clear (ongoing = ${s.ongoing})`],
    liveness: { 'main-uses-plan': eventually((s) => s.main === 'used') },
  });

  it('by default the stuck state is a deadlock', () => {
    expect(check(blocking)).toMatchObject({ verdict: 'violated', property: 'deadlock' });
  });

  it('with deadlock: false it is the liveness failure: a lasso stuttering in the stuck state, with what main waits for', () => {
    const r = check(blocking, { deadlock: false });
    expect(r).toMatchObject({ verdict: 'violated', property: 'main-uses-plan', propertyKind: 'liveness' });
    expect(r.trace!.steps.map((s) => s.action)).toEqual(['raise']);
    expect(r.trace!.loopStart).toBe(1);
    expect(r.stuck).toEqual(['main waits for ongoing to clear (ongoing = true)']);
    expect(formatTrace(r.trace!)).toMatch(/no step is enabled here: the behaviour stays in this state forever/);
  });

  it('deadlock: false with no liveness property accepts the stuck state', () => {
    expect(check(blocking, { deadlock: false, liveness: false }).verdict).toBe('holds');
  });

  it('properties: checks only those named (deadlock included by name)', () => {
    expect(check(blocking, { properties: ['flag-defined'] }).verdict).toBe('holds');
    expect(check(blocking, { properties: ['deadlock'] })).toMatchObject({ verdict: 'violated', property: 'deadlock' });
    expect(check(blocking, { properties: ['main-uses-plan'] })).toMatchObject({ verdict: 'violated', property: 'main-uses-plan' });
    expect(() => check(blocking, { properties: ['nope'] })).toThrow(/no property 'nope' \(properties: flag-defined, main-uses-plan, deadlock\)/);
  });
});
