/**
 * SPIN baseline runner for the two-phase commit benchmark.
 *
 * Generates a verifier from `two_phase.pml` for a given number of resource
 * managers, compiles it, runs an exhaustive safety search and parses pan's
 * report. The model is written so that pan's "states, stored" equals TLC's
 * distinct-state count, which makes the numbers directly comparable with
 * Interleave's.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const HERE = dirname(fileURLToPath(import.meta.url));
export const MODEL_PATH = join(HERE, 'two_phase.pml');

/** Distinct reachable states of TLA+ TwoPhase (TLC), keyed by number of RMs. */
export const EXPECTED_STATES: Readonly<Record<number, number>> = {
  3: 288,
  4: 1_568,
  5: 8_832,
  6: 50_816,
  7: 296_448,
  8: 1_745_408,
};

/**
 * Compiler flags for pan. Chosen by measurement (N=8, this repo's dev box):
 *  -O2          -O3 / -march=native were no faster, within noise.
 *  -DSAFETY     safety-only search: no cycle detection machinery.
 *  -DNOFAIR     no weak-fairness support compiled in (only matters for
 *               liveness, but keeps the binary lean).
 *  -DNOCOMP     store state vectors uncompressed: ~10% faster here; the
 *               search is still exhaustive and exact (unlike -DBITSTATE or
 *               -DHC, which are lossy and deliberately not used).
 *  -DMEMLIM     fail loudly instead of swapping if a model blows up.
 * Partial-order reduction stays on (the default; -DNOREDUCE is not passed).
 * It cannot prune anything in a one-process model, but it is what a SPIN
 * user gets out of the box.
 */
export const GCC_FLAGS: readonly string[] = ['-O2', '-DSAFETY', '-DNOFAIR', '-DNOCOMP', '-DMEMLIM=8000'];

/** Max DFS depth. Every TwoPhase step is monotone, so real depth is ~3N+2. */
export const MAX_DEPTH = 10_000;

/**
 * Hash table size exponent (-w). Roughly 4-8 slots per stored state keeps
 * chains short without paying for a huge table that must be zeroed on start
 * (table bytes = 8 * 2^w): N=7 -> -w21, N=8 -> -w23.
 */
export function hashBitsFor(n: number): number {
  return Math.min(28, Math.max(16, 2 * n + 7));
}

export interface SpinResult {
  n: number;
  /** pan's "states, stored": distinct states visited. */
  states: number;
  /** pan's "transitions (= stored+matched)". */
  transitions: number;
  /** pan's own "elapsed time": the search only, no spin -a / gcc / process start. */
  seconds: number;
  /** pan's "total actual memory usage" (or "memory usage" for small runs), MB, hash table included. */
  memoryMB: number;
  /** Wall time of the gcc step, for reference; not part of `seconds`. */
  compileSeconds: number;
  /** Wall time of the `spin -a` step. */
  generateSeconds: number;
  gccFlags: string[];
  panArgs: string[];
  /** pan's full stdout. */
  raw: string;
}

export interface RunSpinOptions {
  /** Where pan.c and the binary go; bench/spin/work/n<N> (git-ignored) by default. */
  workDir?: string;
  /** Override the -w hash table exponent. */
  hashBits?: number;
}

const INSTALL_HINT = 'SPIN is not installed. Install it with: sudo apt-get install -y spin';

function hasCommand(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

function spinPresent(): boolean {
  return hasCommand('spin', ['-V']);
}

/**
 * Make sure `spin` is on PATH. As root with apt available it installs the
 * Debian package itself (so CI / fresh dev boxes need no manual step);
 * otherwise it only explains how.
 */
export function ensureSpin(): { ok: boolean; message: string } {
  if (spinPresent()) return { ok: true, message: 'spin is installed' };
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !hasCommand('apt-get', ['--version'])) {
    return { ok: false, message: INSTALL_HINT };
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', 'spin'], { encoding: 'utf8', env });
  if (r.status !== 0) {
    // A fresh machine often has no package lists yet.
    spawnSync('apt-get', ['update'], { encoding: 'utf8', env });
    r = spawnSync('apt-get', ['install', '-y', 'spin'], { encoding: 'utf8', env });
  }
  if (spinPresent()) return { ok: true, message: 'installed spin with apt-get' };
  return {
    ok: false,
    message: `${INSTALL_HINT}\n(apt-get install -y spin failed: ${(r.stderr ?? '').trim().slice(-500)})`,
  };
}

function findCompiler(): string {
  for (const cc of ['gcc', 'cc']) if (hasCommand(cc, ['--version'])) return cc;
  throw new Error('No C compiler found (need gcc or cc to build the SPIN pan verifier): sudo apt-get install -y gcc');
}

function parseNumber(raw: string, re: RegExp, what: string): number {
  const m = re.exec(raw);
  if (!m) throw new Error(`Could not find '${what}' in pan output:\n${raw}`);
  return Number(m[1]);
}

/** Parse the numbers we report out of pan's stdout. */
export function parsePanOutput(raw: string): Pick<SpinResult, 'states' | 'transitions' | 'seconds' | 'memoryMB'> {
  return {
    states: parseNumber(raw, /^\s*(\d+) states, stored/m, 'states, stored'),
    transitions: parseNumber(raw, /^\s*(\d+) transitions \(= stored\+matched\)/m, 'transitions'),
    seconds: parseNumber(raw, /^pan: elapsed time ([\d.eE+-]+) seconds/m, 'pan: elapsed time'),
    // Large runs print a breakdown ending in "total actual memory usage";
    // small ones (a few MB) print a single "memory usage (Mbyte)" line instead.
    memoryMB: parseNumber(
      raw,
      /^\s*([\d.]+)\s+(?:total actual memory usage|memory usage \(Mbyte\))/m,
      'total actual memory usage',
    ),
  };
}

/**
 * A baseline number is only meaningful if the search really was exhaustive
 * and clean, so refuse anything pan flags as partial or erroneous.
 */
function assertCompleteSearch(raw: string): void {
  const errors = /errors: (\d+)/.exec(raw);
  if (!errors) throw new Error(`pan output has no error count:\n${raw}`);
  if (errors[1] !== '0') throw new Error(`pan reported ${errors[1]} error(s):\n${raw}`);
  for (const bad of ['max search depth too small', 'out of memory', 'search was not completed', 'Warning: Search not completed']) {
    if (raw.includes(bad)) throw new Error(`pan search incomplete ('${bad}'):\n${raw}`);
  }
  if (!raw.includes('Full statespace search')) throw new Error(`pan did not run a full state-space search:\n${raw}`);
}

/** Run the SPIN baseline for `n` resource managers. */
export async function runSpin(n: number, opts: RunSpinOptions = {}): Promise<SpinResult> {
  if (!Number.isInteger(n) || n < 1 || n > 12) throw new RangeError(`n must be an integer in 1..12, got ${n}`);
  if (!spinPresent()) throw new Error(INSTALL_HINT);
  const cc = findCompiler();

  const workDir = opts.workDir ?? join(HERE, 'work', `n${n}`);
  mkdirSync(workDir, { recursive: true });
  const big = { cwd: workDir, maxBuffer: 64 * 1024 * 1024 };

  // N only matters to spin's preprocessor pass; pan.c comes out with it
  // already expanded, so gcc does not need -DN.
  let t0 = performance.now();
  await execFileAsync('spin', [`-DN=${n}`, '-a', MODEL_PATH], big);
  const generateSeconds = (performance.now() - t0) / 1000;

  const gccFlags = [...GCC_FLAGS];
  t0 = performance.now();
  await execFileAsync(cc, [...gccFlags, '-o', 'pan', 'pan.c'], big);
  const compileSeconds = (performance.now() - t0) / 1000;

  const panArgs = [`-m${MAX_DEPTH}`, `-w${opts.hashBits ?? hashBitsFor(n)}`];
  let raw: string;
  try {
    raw = (await execFileAsync(join(workDir, 'pan'), panArgs, big)).stdout;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`pan failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
  assertCompleteSearch(raw);

  return { n, ...parsePanOutput(raw), compileSeconds, generateSeconds, gccFlags, panArgs, raw };
}
