/**
 * `npm run bench [-- --json] [-- --sizes 7,8]`: two-phase commit in Interleave and in SPIN (same model, same
 * state count), side by side in one run so that the ratio, not the noisy absolute speed, is what we read.
 */
import { parseArgs } from 'node:util';
import { check } from '../model/index.ts';
import { renderTable } from '../model/cli/table.ts';
import { knownStateCounts, twoPhase } from '../spec/examples/two-phase.ts';
import { ensureSpin, runSpin } from './spin/runSpin.ts';

interface Row {
  model: string;
  size: number;
  tool: string;
  states: number;
  seconds: number;
  statesPerSecond: number;
  bytesPerState: number | null;
  memoryMB: number | null;
}

const { values } = parseArgs({
  options: { json: { type: 'boolean' }, sizes: { type: 'string', default: '7,8' } },
  strict: true,
});
const sizes = values.sizes!.split(',').map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 12)) {
  console.error(`bench: --sizes expects resource-manager counts between 1 and 12, got '${values.sizes}'`);
  process.exit(2);
}

const rows: Row[] = [];
const spin = ensureSpin();
if (!spin.ok) console.error(`bench: SPIN rows skipped: ${spin.message}`);

for (const n of sizes) {
  const r = check(twoPhase(n));
  if (r.verdict !== 'holds' || (knownStateCounts[n] !== undefined && r.stats.states !== knownStateCounts[n])) {
    throw new Error(`two-phase(${n}): ${r.verdict} with ${r.stats.states} states, expected holds with ${knownStateCounts[n]}`);
  }
  rows.push({
    model: 'two-phase',
    size: n,
    tool: 'interleave',
    states: r.stats.states,
    seconds: r.stats.seconds,
    statesPerSecond: r.stats.statesPerSecond,
    bytesPerState: r.stats.bytesPerState,
    memoryMB: r.stats.peakRssMB,
  });
  if (spin.ok) {
    const s = await runSpin(n);
    rows.push({
      model: 'two-phase',
      size: n,
      tool: 'spin',
      states: s.states,
      seconds: s.seconds,
      statesPerSecond: s.seconds > 0 ? s.states / s.seconds : 0,
      bytesPerState: (s.memoryMB * 1e6) / s.states,
      memoryMB: s.memoryMB,
    });
  }
}

if (values.json) {
  console.log(JSON.stringify({ rows }, null, 2));
} else {
  const spinRate = (n: number) => rows.find((r) => r.tool === 'spin' && r.size === n)?.statesPerSecond;
  console.log(
    renderTable(
      ['model', 'size', 'tool', 'states', 'seconds', 'states/s', 'bytes/state', 'memory MB', 'vs spin'],
      rows.map((r) => {
        const base = spinRate(r.size);
        return [
          r.model,
          r.size,
          r.tool,
          r.states,
          r.seconds.toFixed(2),
          Math.round(r.statesPerSecond),
          r.bytesPerState === null ? '-' : r.bytesPerState.toFixed(1),
          r.memoryMB === null ? '-' : r.memoryMB.toFixed(0),
          base ? `${(r.statesPerSecond / base).toFixed(2)}x` : '-',
        ];
      }),
    ),
  );
  console.log('\nbytes/state: Interleave counts its visited set and trace links; SPIN its whole search memory.');
}
