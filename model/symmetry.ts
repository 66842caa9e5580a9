/**
 * Symmetry reduction: when ranks are interchangeable, states that differ only by a renaming of ranks behave
 * alike, so the explorer keeps one representative per class. A model declares the symmetry by saying how to
 * rename ranks in a state (`permute`), and optionally a per-rank `signature` to sort ranks by.
 *
 * The representative: ranks sorted by signature; ties are broken by trying every order within tied groups
 * (up to a budget) and keeping the least encoding. Past the budget ties keep their order: the reduction is then
 * smaller but still sound, because a representative is always a renaming of the state it stands for.
 * Soundness also needs the properties to be symmetric (not naming a specific rank) and the transitions to
 * commute with renaming; the explorer samples both at the start and refuses a model that breaks either.
 */
import { type Data, Encoder } from './data.ts';

export interface Symmetry<S> {
  /** How many interchangeable indices (ranks 0 .. size-1). */
  readonly size: number;
  /**
   * The state with every rank r renamed to perm[r]: rank-indexed arrays reordered (new[perm[r]] = old[r]) and
   * rank-valued fields mapped through perm. Must be pure.
   */
  readonly permute: (s: S, perm: readonly number[]) => S;
  /** What rank r holds in s, compared to sort ranks (default: the whole state with r swapped to rank 0). */
  readonly signature?: (s: S, r: number) => Data;
}

/** Orders tried for tied ranks, at most. */
const TIE_BUDGET = 720;

/** The function from a state to its representative. */
export function canonicalizer<S>(sym: Symmetry<S>): (s: S) => S {
  const n = sym.size;
  const sigEnc = new Encoder();
  const fullEnc = new Encoder();
  const identity = Array.from({ length: n }, (_, i) => i);
  const swapTo0 = (r: number) => identity.map((i) => (i === r ? 0 : i === 0 ? r : i));
  const signature = sym.signature ?? ((s: S, r: number) => sym.permute(s, swapTo0(r)) as Data);

  return (s: S): S => {
    if (n < 2) return s;
    const sigs: Int32Array[] = [];
    for (let r = 0; r < n; r++) {
      sigEnc.encode(signature(s, r));
      sigs.push(sigEnc.words.slice(0, sigEnc.length));
    }
    const order = identity.slice().sort((a, b) => compareWords(sigs[a], sigs[b]) || a - b);
    // Groups of tied ranks (consecutive in `order`).
    const groups: number[][] = [];
    for (const r of order) {
      const g = groups[groups.length - 1];
      if (g && compareWords(sigs[g[0]], sigs[r]) === 0) g.push(r);
      else groups.push([r]);
    }
    let combos = 1;
    for (const g of groups) combos *= factorial(g.length);
    const permFor = (ord: readonly number[]) => {
      const perm = new Array<number>(n);
      ord.forEach((oldRank, pos) => {
        perm[oldRank] = pos;
      });
      return perm;
    };
    if (combos === 1 || combos > TIE_BUDGET) return sym.permute(s, permFor(order));
    let best: S | undefined;
    let bestWords: Int32Array | undefined;
    for (const ord of tieOrders(groups)) {
      const cand = sym.permute(s, permFor(ord));
      fullEnc.encode(cand);
      const w = fullEnc.words.subarray(0, fullEnc.length);
      if (bestWords === undefined || compareWords(w, bestWords) < 0) {
        best = cand;
        bestWords = w.slice();
      }
    }
    return best!;
  };
}

function compareWords(a: Int32Array, b: Int32Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function factorial(k: number): number {
  let f = 1;
  for (let i = 2; i <= k; i++) f *= i;
  return f;
}

/** Every order of the ranks that keeps groups in place and permutes within each group. */
function* tieOrders(groups: readonly number[][]): Generator<number[]> {
  if (groups.length === 0) {
    yield [];
    return;
  }
  const [first, ...rest] = groups;
  for (const p of permutations(first)) for (const tail of tieOrders(rest)) yield [...p, ...tail];
}

function* permutations(xs: readonly number[]): Generator<number[]> {
  if (xs.length <= 1) {
    yield [...xs];
    return;
  }
  for (let i = 0; i < xs.length; i++) {
    const rest = [...xs.slice(0, i), ...xs.slice(i + 1)];
    for (const p of permutations(rest)) yield [xs[i], ...p];
  }
}

/** A random permutation of 0..n-1 from a seeded generator (deterministic sampling of symmetry checks). */
export function samplePermutation(n: number, seed: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  let x = seed | 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
