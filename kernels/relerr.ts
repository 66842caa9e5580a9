/**
 * Relative error ||a - b||_2 / ||b||_2 with `b` the reference, accumulated in
 * float64. When the reference is exactly zero the absolute error is returned,
 * so a zero reference only matches a zero result.
 */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relErr: length ${a.length} vs ${b.length}`);
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    diff += d * d;
    ref += b[i]! * b[i]!;
  }
  if (Number.isNaN(diff)) return Number.POSITIVE_INFINITY;
  return ref === 0 ? Math.sqrt(diff) : Math.sqrt(diff / ref);
}
