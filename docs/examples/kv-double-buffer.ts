// docs/examples/kv-double-buffer.ts: double-buffered KV-cache transfer from a prefill worker to a decode worker.
//
// Prefill (rank 0) computes the KV cache of a prompt chunk by chunk into two staging buffers, alternating,
// and posts a non-blocking isend of each filled buffer to decode (rank 1). The NIC reads the buffer while the
// transfer runs. Two designs:
//   reuse-on-post     the buffer is reusable as soon as isend returns (the code under review): violated
//   reuse-after-wait  the buffer is reusable once prefill has waited the send handle (the fix): holds
//   blocking-send     prefill waits each send before computing the next chunk: safe, but nothing overlaps
import { actionsOf, defineProtocol, defineSystem } from 'interleave';

export interface KvConfig {
  /** Chunks in the prompt. */
  readonly chunks: number;
}

export type Reuse = 'on-post' | 'after-wait' | 'blocking';

interface Staging {
  /** The chunk whose KV the buffer holds now (null: never written). */
  readonly holds: number | null;
  /** free: prefill may write it; filled: written, not yet sent; sending: a posted send may still read it. */
  readonly stage: 'free' | 'filled' | 'sending';
}

export interface KvState {
  /** Chunks prefill has computed; chunk c goes into staging buffer c % 2. */
  readonly computed: number;
  /** Chunks whose isend prefill has posted. */
  readonly posted: number;
  /** The two staging buffers on the prefill GPU. */
  readonly staging: readonly Staging[];
  /** Posted sends the NIC has not finished, oldest first: which buffer it reads, for which chunk. */
  readonly inflight: readonly { readonly buf: number; readonly chunk: number }[];
  /** Send handles that completed and prefill has not waited yet (their buffers), oldest first. */
  readonly completed: readonly number[];
  /** Decode's KV cache: slot c holds the data of chunk kv[c] (null: nothing arrived yet). */
  readonly kv: readonly (number | null)[];
  /** Chunks decode has consumed. */
  readonly decoded: number;
}

const act = actionsOf<KvState>();
const bufOf = (chunk: number) => chunk % 2;

export function kvDoubleBuffer({ chunks }: KvConfig, reuse: Reuse) {
  return defineSystem<KvState>({
    name: `kv-double-buffer(${chunks} chunks, reuse ${reuse})`,
    init: {
      computed: 0,
      posted: 0,
      staging: [
        { holds: null, stage: 'free' },
        { holds: null, stage: 'free' },
      ],
      inflight: [],
      completed: [],
      kv: Array.from({ length: chunks }, () => null),
      decoded: 0,
    },
    actions: [
      act('computeChunk', {
        actor: 'rank 0 prefill',
        guard: (s) =>
          s.computed < chunks &&
          s.staging[bufOf(s.computed)].stage === 'free' &&
          // A blocking send: the next chunk waits until every send has completed and been waited.
          (reuse !== 'blocking' || (s.posted === s.computed && s.inflight.length === 0 && s.completed.length === 0)),
        effect: (s) => ({
          ...s,
          staging: s.staging.with(bufOf(s.computed), { holds: s.computed, stage: 'filled' }),
          computed: s.computed + 1,
        }),
        describe: (_, s) => `prefill writes the KV of chunk ${s.computed} into staging buffer ${bufOf(s.computed)}`,
      }),
      act('isend', {
        params: { dst: [1] },
        actor: 'rank 0 prefill',
        guard: (s) => s.posted < s.computed,
        effect: (s) => ({
          ...s,
          inflight: [...s.inflight, { buf: bufOf(s.posted), chunk: s.posted }],
          staging: s.staging.with(bufOf(s.posted), {
            ...s.staging[bufOf(s.posted)],
            stage: reuse === 'on-post' ? 'free' : 'sending',
          }),
          posted: s.posted + 1,
        }),
        describe: (_, s) => `prefill posts the isend of chunk ${s.posted} (staging buffer ${bufOf(s.posted)}) to rank 1`,
      }),
      act('irecvDone', {
        params: { src: [0] },
        actor: 'rank 1 decode',
        guard: (s) => s.inflight.length > 0,
        // The NIC reads the staging buffer while the transfer runs: what lands is what the buffer holds now.
        effect: (s) => {
          const [t, ...rest] = s.inflight;
          return {
            ...s,
            inflight: rest,
            completed: [...s.completed, t.buf],
            kv: s.kv.with(t.chunk, s.staging[t.buf].holds),
          };
        },
        describe: (_, s) => `the transfer of chunk ${s.inflight[0].chunk} lands in decode's KV cache`,
      }),
      act('waitSend', {
        actor: 'rank 0 prefill',
        guard: (s) => s.completed.length > 0,
        // The fix: a buffer becomes free only here, once its send handle has completed.
        effect: (s) => {
          const [buf, ...rest] = s.completed;
          const b = s.staging[buf];
          return { ...s, completed: rest, staging: b.stage === 'sending' ? s.staging.with(buf, { ...b, stage: 'free' }) : s.staging };
        },
        describe: (_, s) => `prefill waits the send handle of staging buffer ${s.completed[0]}`,
      }),
      act('decodeChunk', {
        actor: 'rank 1 decode',
        guard: (s) => s.decoded < chunks && s.kv[s.decoded] !== null,
        effect: (s) => ({ ...s, decoded: s.decoded + 1 }),
      }),
    ],
    invariants: {
      // Every KV slot decode has received holds the data of its own chunk.
      kvIntact: (s) => s.kv.every((c, i) => c === null || c === i),
    },
    reachable: {
      // The point of double buffering: prefill has a new chunk ready while the previous one is on the wire.
      // Without this, a design that serialises everything would "hold" and the check would prove nothing.
      computeOverlapsTransfer: (s) => s.inflight.length > 0 && s.computed > s.posted,
    },
    terminal: (s) => s.decoded === chunks && s.completed.length === 0,
    explainStuck: (s) => [
      `prefill has computed ${s.computed} and posted ${s.posted} of ${chunks} chunks; staging: ${s.staging.map((b) => b.stage).join(', ')}`,
      `decode has consumed ${s.decoded} chunks; ${s.inflight.length} transfers in flight`,
    ],
  });
}

export default defineProtocol<KvConfig>({
  name: 'kv-double-buffer',
  summary: 'double-buffered KV-cache transfer from prefill (rank 0) to decode (rank 1)',
  configs: { check: { chunks: 3 }, pr: { chunks: 8 } },
  variants: [
    {
      name: 'reuse-on-post',
      summary: 'a staging buffer is reused as soon as its isend is posted: the NIC can send the next chunk in its place',
      expect: { verdict: 'violated', property: 'kvIntact' },
      build: (c) => kvDoubleBuffer(c, 'on-post'),
    },
    {
      name: 'reuse-after-wait',
      summary: 'a staging buffer is reused only after its send handle is waited',
      expect: { verdict: 'holds' },
      build: (c) => kvDoubleBuffer(c, 'after-wait'),
    },
    {
      name: 'blocking-send',
      summary: 'each send is waited before the next chunk is computed: no corruption, and no overlap either',
      expect: { verdict: 'violated', property: 'computeOverlapsTransfer' },
      build: (c) => kvDoubleBuffer(c, 'blocking'),
    },
  ],
});
