/**
 * `npm run bench [-- --json] [-- --sizes 7,8] [-- --workers 2] [-- --no-reductions]`: two-phase commit in
 * Interleave (its object model and its layout model, each single-threaded and with worker threads) and in SPIN
 * (same model, same state count), side by side in one run so that the ratios, not the noisy absolute speeds,
 * are what we read, with the machine's own ceiling for threads (bench/scaling.ts); then the reductions table
 * (bench/reductions.ts): liveness, symmetry and partial-order reduction against the plain search; then the seed
 * protocols at 8 ranks within 60 s.
 */
import { parseArgs } from 'node:util';
import { type CheckResult, check, checkParallel } from '../model/index.ts';
import { renderTable } from '../model/cli/table.ts';
import { knownStateCounts, twoPhase } from '../spec/examples/two-phase.ts';
import { twoPhasePacked } from '../spec/examples/two-phase-packed.ts';
import { RANKS_HEADERS, REDUCTION_HEADERS, ranks8Rows, ranksCells, reductionCells, reductionRows } from './reductions.ts';
import { scalingRows } from './scaling.ts';
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
  options: {
    json: { type: 'boolean' },
    sizes: { type: 'string', default: '7,8' },
    workers: { type: 'string', default: '2' },
    'no-reductions': { type: 'boolean' },
  },
  strict: true,
});
const sizes = values.sizes!.split(',').map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 12)) {
  console.error(`bench: --sizes expects resource-manager counts between 1 and 12, got '${values.sizes}'`);
  process.exit(2);
}

const workers = Number(values.workers);
if (!Number.isInteger(workers) || workers < 1) {
  console.error(`bench: --workers expects an integer >= 1, got '${values.workers}'`);
  process.exit(2);
}
/**
 * Two models of the same protocol, with the same states: the object model (spec/examples/two-phase.ts, states
 * as plain objects, effects return new ones) and the layout model (two-phase-packed.ts, the packed fast path).
 */
const models = [
  { model: 'two-phase (objects)', file: '../spec/examples/two-phase.ts', export: 'twoPhase', build: twoPhase },
  { model: 'two-phase (layout)', file: '../spec/examples/two-phase-packed.ts', export: 'twoPhasePacked', build: twoPhasePacked },
] as const;

const rows: Row[] = [];
const spin = ensureSpin();
if (!spin.ok) console.error(`bench: SPIN rows skipped: ${spin.message}`);

for (const n of sizes) {
  for (const m of models) {
    // The same search spread over worker threads, each loading the model itself (start-up included in its time).
    // It runs first: worker heaps go when the workers end, while the single-threaded run's garbage would stay on
    // this thread's heap (and its collector's threads) through a run after it.
    const p = await checkParallel({ module: new URL(m.file, import.meta.url).href, export: m.export, args: [n] }, { workers });
    const r = check(m.build(n));
    if (r.verdict !== 'holds' || (knownStateCounts[n] !== undefined && r.stats.states !== knownStateCounts[n])) {
      throw new Error(`${m.model} ${n}: ${r.verdict} with ${r.stats.states} states, expected holds with ${knownStateCounts[n]}`);
    }
    if (p.verdict !== 'holds' || p.stats.states !== r.stats.states) {
      throw new Error(`${m.model} ${n} with ${workers} workers: ${p.verdict} with ${p.stats.states} states, expected holds with ${r.stats.states}`);
    }
    rows.push({ model: m.model, size: n, tool: 'interleave', ...measured(r) });
    rows.push({ model: m.model, size: n, tool: `interleave:workers=${workers}`, ...measured(p) });
  }
  if (spin.ok) {
    const s = await runSpin(n);
    rows.push({
      model: 'two-phase (promela)',
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

function measured(r: CheckResult): Pick<Row, 'states' | 'seconds' | 'statesPerSecond' | 'bytesPerState' | 'memoryMB'> {
  return {
    states: r.stats.states,
    seconds: r.stats.seconds,
    statesPerSecond: r.stats.statesPerSecond,
    bytesPerState: r.stats.bytesPerState,
    memoryMB: r.stats.peakRssMB,
  };
}

// The machine's ceiling for the parallel rows: the same loops on one thread and on `workers` threads.
const scaling = await scalingRows(workers);

// Liveness, symmetry and partial-order reduction, each against the plain search of the same model.
const reductions = values['no-reductions'] ? [] : await reductionRows(Math.max(...sizes));
// The seed protocols at 8 ranks, both reductions, within the target's 60 s.
const ranks8 = values['no-reductions'] ? [] : await ranks8Rows(60);

if (values.json) {
  console.log(JSON.stringify({ rows, scaling, reductions, ranks8 }, null, 2));
} else {
  const rate = (model: string | undefined, tool: string, n: number) =>
    rows.find((r) => (model === undefined || r.model === model) && r.tool === tool && r.size === n)?.statesPerSecond;
  console.log(
    renderTable(
      ['model', 'size', 'tool', 'states', 'seconds', 'states/s', 'bytes/state', 'memory MB', 'vs spin', 'vs interleave'],
      rows.map((r) => {
        const base = rate(undefined, 'spin', r.size);
        const single = rate(r.model, 'interleave', r.size);
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
          single && r.tool !== 'interleave' && r.tool !== 'spin' ? `${(r.statesPerSecond / single).toFixed(2)}x` : '-',
        ];
      }),
    ),
  );
  console.log('\nbytes/state: Interleave counts its visited set and trace links; SPIN its whole search memory.');
  console.log('vs interleave: states/s against the single-threaded row of the same model and size (worker start-up included).');
  console.log('objects: states as plain objects (spec/examples/two-phase.ts); layout: the same model over a packed layout (two-phase-packed.ts).');
  const ceiling = scaling.map((r) => `${r.kind} ${r.ratio.toFixed(2)}x`).join(', ');
  console.log(`this machine with ${workers} threads against one (bench/scaling.ts; ideal ${workers}x): ${ceiling}.`);
  if (reductions.length > 0) {
    console.log(`\n${renderTable(REDUCTION_HEADERS, reductions.map(reductionCells))}`);
    console.log('\nstate factor: states without / with; time ratio: seconds with / without (liveness: against the safety check).');
  }
  if (ranks8.length > 0) {
    console.log(`\n${renderTable(RANKS_HEADERS, ranks8.map(ranksCells))}`);
    console.log('\n8 ranks, symmetry and partial-order reduction on, safety only, a 60 s limit (the target).');
    console.log('fixed-ticks: the protocol-level model of the same round (spec/eplb-async-rebalance-ticks.ts), which reaches the');
    console.log("kit model's rank-variable vectors exactly at W = 2 and 3 (test/spec-eplb-ticks.test.ts).");
  }
}
