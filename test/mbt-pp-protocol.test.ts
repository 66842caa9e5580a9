/**
 * The PP implementation against the protocol model (spec/pp-async-p2p.ts, written with the GPU kit): each
 * scheduled run's CPU events, as the kit's statements (alloc, irecv, wait, launch, isend), are validated
 * against the protocol's design that the implementation variant is. The device side (stream execution, NCCL
 * transfers) is not logged; the validator's gap search supplies it. The fixed implementation's runs are
 * behaviours of the fixed design; a buggy run is a behaviour of its bug's design, and the fixed design
 * rejects it at the CPU step where the code departs from it.
 */
import { fc, it as itProp } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { numbered } from '../model/validate/export.ts';
import { validateEvents } from '../model/validate/validator.ts';
import { makePpReal, ppCommands, runPp } from '../spec/implementations/pp-harness.ts';
import { KIT_CPU_ACTIONS, kitConfig, kitDesign, toKitEvents } from '../spec/implementations/pp-kit-events.ts';
import type { PpVariant } from '../spec/implementations/pp-stage-model.ts';
import type { ImplEvent } from '../spec/implementations/runtime.ts';
import ppProtocol, { build } from '../spec/pp-async-p2p.ts';

const RUNS = 600;
const MAX_GAP = 8;

describe('PP implementation events against the pp-async-p2p protocol model', () => {
  let runs = 0;
  let events = 0;
  let seconds = 0;
  let hidden = 0;

  itProp.prop([fc.scheduler(), ppCommands], { numRuns: RUNS, seed: 5 })(
    `fixed: ${RUNS} schedules, each a behaviour of pp-async-p2p's fixed design (static output buffer), device steps unlogged`,
    async (s, cmds) => {
      const real = makePpReal('fixed', s);
      const m = await runPp(real, cmds);
      if (m === 0) return;
      const evs = numbered(toKitEvents(real.rt.events, kitDesign('fixed')));
      const v = validateEvents(build(kitConfig(m), kitDesign('fixed')), evs, { maxGap: MAX_GAP, alwaysLogged: KIT_CPU_ACTIONS });
      if (v.verdict !== 'accepted') throw new Error(`${v.rejection!.message}\n${v.rejection!.reasons.join('\n')}`);
      runs++;
      events += evs.length;
      hidden += v.hiddenSteps ?? 0;
      seconds += v.stats.seconds;
    },
  );

  it('(speed)', () => {
    expect(runs).toBeGreaterThan(RUNS / 2);
    console.log(
      `pp-async-p2p: ${runs} implementation runs accepted by the fixed design, ${events} CPU events, ${hidden} device steps supplied by the gap search, ${Math.round(events / seconds).toLocaleString('en-US')} events/s`,
    );
  });

  const bugs: [PpVariant, string, string, number][] = [
    // variant, the protocol's named variant of the same design (or ''), the kit step the fixed design rejects, its rank
    ['deferred-send-wait', 'b4-deferred-send-wait-static', 'launch', 0],
    ['read-before-wait', '', 'launch', 1],
  ];
  for (const [variant, named, rejectedAt, rank] of bugs) {
    it(`${variant}: the shrunk failing run is a behaviour of the bug's design${named ? ` (${named})` : ''}, and the fixed design rejects it at rank ${rank}'s '${rejectedAt}'`, async () => {
      let last: { events: ImplEvent[]; m: number } | undefined;
      const details = await fc.check(
        fc.asyncProperty(fc.scheduler(), ppCommands, async (s, cmds) => {
          const real = makePpReal(variant, s);
          try {
            await runPp(real, cmds);
          } catch (e) {
            last = { events: [...real.rt.events], m: real.pipe.submitted };
            throw e;
          }
        }),
        { numRuns: 500, seed: 6 },
      );
      expect(details.failed).toBe(true);
      const { m } = last!;
      const evs = numbered(toKitEvents(last!.events, kitDesign(variant)));
      const opts = { maxGap: MAX_GAP, alwaysLogged: KIT_CPU_ACTIONS };
      const own = validateEvents(build(kitConfig(m), kitDesign(variant)), evs, opts);
      expect(own.verdict, own.rejection?.message).toBe('accepted');
      if (named) {
        const v = ppProtocol.variants.find((x) => x.name === named)!;
        expect(validateEvents(v.build(kitConfig(m)), evs, opts).verdict).toBe('accepted');
      }
      const fixed = validateEvents(build(kitConfig(m), kitDesign('fixed')), evs, opts);
      expect(fixed.verdict).toBe('rejected');
      expect(fixed.rejection!.event.action).toBe(rejectedAt);
      expect(fixed.rejection!.event.rank).toBe(rank);
      console.log(`pp-async-p2p ${variant}: ${(details.errorInstance as Error).message}\n  fixed design: ${fixed.rejection!.message}\n    ${fixed.rejection!.reasons.join('\n    ')}`);
    });
  }
});
