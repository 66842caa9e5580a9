/**
 * Symmetry reduction: when ranks are interchangeable, states that differ only by a renaming of ranks behave
 * alike, so the explorer keeps one representative per class. A model declares the symmetry by saying how to
 * rename ranks in a state (`permute`), and optionally a per-rank `signature` to sort ranks by and a `pair`
 * relation between two ranks that refines the sort when ranks tie.
 *
 * The representative (a canonical labelling, in the way of graph canonisation by individualisation and
 * refinement): ranks are coloured by signature; with `pair`, colours are refined until stable (a rank's new
 * colour is its colour plus the multiset of (its relation to p, p's colour) over the other ranks p). While a
 * colour class has several ranks, one of them is individualised (given a colour of its own) and the search
 * branches over which one; a branch is skipped when swapping its rank with one already tried leaves the state
 * unchanged (an automorphism: both branches give the same representatives). Each leaf, where every rank has a
 * colour of its own, is a renaming; the representative is the leaf with the least encoding. Signatures and
 * pairs that do not change when ranks are renamed (`signature(permute(s, p), p[r])` equals `signature(s, r)`)
 * make the representative canonical: every state of a class gets the same one. Past the leaf budget the search
 * keeps the least leaf seen: the reduction is then smaller but still sound, because a representative is always a
 * renaming of the state it stands for.
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
  /**
   * What rank r holds in s, compared to sort ranks (default: the whole state with r swapped to rank 0). For a
   * canonical representative it must not change when ranks are renamed: rank-indexed data in it should be
   * given as r's own entry and a sorted list, not in rank order.
   */
  readonly signature?: (s: S, r: number) => Data;
  /**
   * What relates rank r to rank p in s (p != r), e.g. whether r's message has reached p; must not change when
   * ranks are renamed. Refines the order of ranks whose signatures tie.
   */
  readonly pair?: (s: S, r: number, p: number) => Data;
  /**
   * A fast answer to "does swapping ranks a and b leave s unchanged?", asked only of two ranks with equal
   * signatures: true or false when sure, undefined to let the canonicaliser compare encodings. Optional.
   */
  readonly swappable?: (s: S, a: number, b: number) => boolean | undefined;
}

/** Leaves (complete orders of the ranks) tried per state, at most. */
const LEAF_BUDGET = 720;

/** The function from a state to its representative. */
export function canonicalizer<S>(sym: Symmetry<S>): (s: S) => S {
  const n = sym.size;
  const sigEnc = new Encoder();
  const fullEnc = new Encoder();
  const identity = Array.from({ length: n }, (_, i) => i);
  const swapTo0 = (r: number) => identity.map((i) => (i === r ? 0 : i === 0 ? r : i));
  const signature = sym.signature ?? ((s: S, r: number) => sym.permute(s, swapTo0(r)) as Data);
  const pair = sym.pair;
  // Pair values by first appearance (a fixed order for the whole search, which is all colours need).
  const pairIdOf = new Map<string, number>();
  const pairKey = (d: Data): string | undefined => {
    if (d === null || typeof d !== 'object') return typeof d === 'string' ? `s${d}` : String(d);
    if (!Array.isArray(d)) return undefined;
    let k = 'a';
    for (const x of d as readonly Data[]) {
      if (x !== null && typeof x === 'object') return undefined;
      k += typeof x === 'string' ? `|s${x.replaceAll('|', '||')}` : `|${String(x)}`;
    }
    return k;
  };
  const pairNumIds = new Map<number, number>();
  const pairId = (d: Data): number => {
    if (typeof d === 'number') {
      let id = pairNumIds.get(d);
      if (id === undefined) pairNumIds.set(d, (id = pairIdOf.size + pairNumIds.size));
      return id;
    }
    let k = pairKey(d);
    if (k === undefined) {
      sigEnc.encode(d);
      k = `w${Array.from(sigEnc.words.subarray(0, sigEnc.length)).join(',')}`;
    }
    let id = pairIdOf.get(k);
    if (id === undefined) pairIdOf.set(k, (id = pairIdOf.size + pairNumIds.size));
    return id;
  };
  let calls = 0;

  /** Dense ranks of word strings: equal strings get equal numbers, in sorted order. */
  const denseRanks = (ws: readonly Int32Array[]): Int32Array => {
    const idx = ws.map((_, i) => i).sort((a, b) => compareWords(ws[a], ws[b]));
    const out = new Int32Array(ws.length);
    let c = 0;
    idx.forEach((i, k) => {
      if (k > 0 && compareWords(ws[idx[k - 1]], ws[i]) !== 0) c++;
      out[i] = c;
    });
    return out;
  };

  return (s: S): S => {
    if (n < 2) return s;
    calls++;
    const specialise = calls === 1 || calls === 64 || calls === 4096 || (calls & 0xffff) === 0;
    const sigs: Int32Array[] = [];
    for (let r = 0; r < n; r++) {
      const sig = signature(s, r);
      if (specialise && r === 0) sigEnc.specialise(sig);
      sigEnc.encode(sig);
      sigs.push(sigEnc.words.slice(0, sigEnc.length));
    }
    if (specialise) fullEnc.specialise(s as Data);
    const byRank = denseRanks(sigs);
    // Every rank sorts apart: a single order.
    if (countClasses(byRank) === n) return sym.permute(s, Array.from(byRank));
    let pairIds: Int32Array | undefined;
    if (pair) {
      pairIds = new Int32Array(n * n);
      for (let r = 0; r < n; r++) for (let p = 0; p < n; p++) if (p !== r) pairIds[r * n + p] = pairId(pair(s, r, p));
    }

    /** Refines colours with the pair relation until the number of classes is stable (colours are dense). */
    const refine = (color: Int32Array): Int32Array => {
      let cur = color;
      let classes = countClasses(cur);
      while (pairIds !== undefined && classes < n) {
        const keys: Int32Array[] = [];
        for (let r = 0; r < n; r++) {
          const around: number[] = [];
          for (let p = 0; p < n; p++) if (p !== r) around.push(pairIds[r * n + p] * n + cur[p]);
          around.sort((a, b) => a - b);
          keys.push(Int32Array.from([cur[r], ...around]));
        }
        const next = denseRanks(keys);
        const k = countClasses(next);
        if (k === classes) break;
        cur = next;
        classes = k;
      }
      return cur;
    };

    // Automorphisms found so far (a swap of two ranks that leaves s unchanged), by pair of ranks.
    let baseWords: Int32Array | undefined;
    const autCache = new Map<number, boolean>();
    const isAutomorphism = (a: number, b: number): boolean => {
      const k = a < b ? a * n + b : b * n + a;
      let v = autCache.get(k);
      if (v === undefined && sym.swappable) {
        v = sym.swappable(s, a, b);
        if (v !== undefined) autCache.set(k, v);
      }
      if (v === undefined) {
        if (baseWords === undefined) {
          fullEnc.encode(s);
          baseWords = fullEnc.words.slice(0, fullEnc.length);
        }
        const swap = identity.map((i) => (i === a ? b : i === b ? a : i));
        fullEnc.encode(sym.permute(s, swap));
        v = compareWords(fullEnc.words.subarray(0, fullEnc.length), baseWords) === 0;
        autCache.set(k, v);
      }
      return v;
    };

    let first: S | undefined;
    let best: S | undefined;
    let bestWords: Int32Array | undefined;
    let leaves = 0;
    const leaf = (color: Int32Array) => {
      leaves++;
      const cand = sym.permute(s, Array.from(color));
      if (first === undefined) {
        first = cand;
        return;
      }
      if (bestWords === undefined) {
        fullEnc.encode(first);
        best = first;
        bestWords = fullEnc.words.slice(0, fullEnc.length);
      }
      fullEnc.encode(cand);
      const w = fullEnc.words.subarray(0, fullEnc.length);
      if (compareWords(w, bestWords) < 0) {
        best = cand;
        bestWords = w.slice();
      }
    };
    const search = (color: Int32Array) => {
      if (leaves >= LEAF_BUDGET) return;
      // The first colour class with several ranks, in colour order.
      const size = new Int32Array(n);
      for (let r = 0; r < n; r++) size[color[r]]++;
      let c = -1;
      for (let k = 0; k < n; k++) {
        if (size[k] > 1) {
          c = k;
          break;
        }
      }
      if (c < 0) {
        leaf(color);
        return;
      }
      const cell = identity.filter((r) => color[r] === c);
      const tried: number[] = [];
      for (const m of cell) {
        if (tried.some((b) => isAutomorphism(b, m))) continue;
        tried.push(m);
        // m keeps colour c; the rest of its class moves just after it, every later class one further.
        const split = new Int32Array(n);
        for (let r = 0; r < n; r++) split[r] = color[r] > c || (color[r] === c && r !== m) ? color[r] + 1 : color[r];
        search(refine(split));
        if (leaves >= LEAF_BUDGET) return;
      }
    };
    search(refine(byRank));
    return best ?? first!;
  };
}

function countClasses(color: Int32Array): number {
  let max = -1;
  for (const c of color) if (c > max) max = c;
  return max + 1;
}

function compareWords(a: Int32Array, b: Int32Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
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
