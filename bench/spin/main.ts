/**
 * Print the SPIN two-phase-commit baseline for N = 3..8 (or the N values
 * given as arguments): `npx tsx bench/spin/main.ts [n...]`.
 * Exits non-zero if any state count differs from TLC's, since the
 * comparison with Interleave is meaningless unless the state spaces match.
 */
import { EXPECTED_STATES, ensureSpin, runSpin } from './runSpin.ts';

const ns = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [3, 4, 5, 6, 7, 8];

const spin = ensureSpin();
if (!spin.ok) {
  console.error(spin.message);
  process.exit(1);
}

const header = ['N', 'states', 'expected', 'match', 'transitions', 'search s', 'states/s', 'memory MB', 'compile s'];
const rows: string[][] = [];
let mismatch = false;
let flags = '';

for (const n of ns) {
  const r = await runSpin(n);
  const expected = EXPECTED_STATES[n];
  const ok = expected === undefined ? '?' : r.states === expected ? 'yes' : 'NO';
  if (ok === 'NO') mismatch = true;
  // pan reports elapsed time in 10 ms steps, so tiny runs read as 0 s.
  const rate = r.seconds > 0 ? Math.round(r.states / r.seconds).toLocaleString('en-US') : '-';
  rows.push([
    String(n),
    r.states.toLocaleString('en-US'),
    expected === undefined ? '-' : expected.toLocaleString('en-US'),
    ok,
    r.transitions.toLocaleString('en-US'),
    r.seconds.toFixed(2),
    rate,
    r.memoryMB.toFixed(1),
    r.compileSeconds.toFixed(2),
  ]);
  flags = `gcc ${r.gccFlags.join(' ')}; pan ${r.panArgs.join(' ')}`;
}

const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
console.log(fmt(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const row of rows) console.log(fmt(row));
console.log(`\nlast run: ${flags} (-w grows with N)`);

if (mismatch) {
  console.error('State count mismatch against the TLC counts for TwoPhase.');
  process.exit(1);
}
