import { describe, expect, it } from 'vitest';
import { SWEEP_STOP_AT, SweepStop } from '../model/parallel/protocol.ts';
import { weightier } from '../model/parallel/sweep.ts';
import { SweepTable } from '../model/parallel/sweep-table.ts';

function control(stopAt: number): Int32Array {
  const c = new Int32Array(new SharedArrayBuffer(16));
  c[SWEEP_STOP_AT] = stopAt;
  return c;
}

describe('the shared fingerprint table of a sweep', () => {
  it('adds a fingerprint once, tells 64-bit fingerprints apart that share a half, and keeps them when copied in parts into a larger table', () => {
    const c = control(90);
    const buf = SweepTable.allocate(100);
    const t = new SweepTable(buf, c);
    expect(t.stopAt).toBe(90);
    const fps: [number, number][] = [];
    for (let i = 0; i < 40; i++) fps.push([(i * 2654435761) | 0, (i * 40503 + 7) | 0]);
    // Same hi, other lo; same lo, other hi (the low bit is forced on, so change a higher one).
    fps.push([fps[0][0], fps[0][1] ^ 0x100], [fps[1][0] ^ 0x100, fps[1][1]]);
    for (const [hi, lo] of fps) expect(t.insert(hi, lo)).toBe(true);
    for (const [hi, lo] of fps) expect(t.insert(hi, lo)).toBe(false);
    // One part, or three whose bounds fall between slots unevenly (100 slots): every entry is copied once.
    for (const parts of [1, 3]) {
      const bigger = new SweepTable(SweepTable.allocate(150), c);
      for (let part = 0; part < parts; part++) bigger.copyPart(buf, part, parts);
      expect(bigger.capacity).toBe(150);
      for (const [hi, lo] of fps) expect(bigger.insert(hi, lo)).toBe(false);
      expect(bigger.insert(12345, 678)).toBe(true);
      let entries = 0;
      const words = new Int32Array(bigger.buffer);
      for (let k = 0; k < words.length; k += 2) if (words[k] !== 0) entries++;
      expect(entries).toBe(fps.length + 1);
    }
  });

  it('says so rather than probing forever when it is full', () => {
    const t = new SweepTable(SweepTable.allocate(4), control(3));
    for (let i = 0; i < 4; i++) expect(t.insert(i * 2 + 2, i * 2 + 2)).toBe(true);
    expect(() => t.insert(99, 99)).toThrow(/table is full/);
  });
});

describe('why a sweep stops', () => {
  it('keeps the weightier reason: something met over a limit over a full table, whichever came first', () => {
    expect(weightier(SweepStop.None, SweepStop.Full)).toBe(SweepStop.Full);
    // A worker met something mid-chunk after another asked for growth: the level must not resume.
    expect(weightier(SweepStop.Full, SweepStop.Met)).toBe(SweepStop.Met);
    expect(weightier(SweepStop.Met, SweepStop.Full)).toBe(SweepStop.Met);
    expect(weightier(SweepStop.Full, SweepStop.Time)).toBe(SweepStop.Time);
    expect(weightier(SweepStop.Memory, SweepStop.Full)).toBe(SweepStop.Memory);
    expect(weightier(SweepStop.Time, SweepStop.Met)).toBe(SweepStop.Met);
    expect(weightier(SweepStop.Time, SweepStop.Memory)).toBe(SweepStop.Time);
  });
});
