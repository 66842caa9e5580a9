// docs/examples/kv-double-buffer-draft.ts: the first model, the transfer loop as the code under review has it.
import { actionsOf, defineSystem } from 'interleave';

const CHUNKS = 3;

interface Staging {
  /** The chunk whose KV the buffer holds now (null: never written). */
  readonly holds: number | null;
  /** free: prefill may write it; filled: written, not yet sent. */
  readonly stage: 'free' | 'filled';
}

interface KvState {
  /** Chunks prefill has computed; chunk c goes into staging buffer c % 2. */
  readonly computed: number;
  /** Chunks whose isend prefill has posted. */
  readonly posted: number;
  /** The two staging buffers on the prefill GPU. */
  readonly staging: readonly Staging[];
  /** Posted sends the NIC has not finished, oldest first: which buffer it reads, for which chunk. */
  readonly inflight: readonly { readonly buf: number; readonly chunk: number }[];
  /** Decode's KV cache: slot c holds the data of chunk kv[c] (null: nothing arrived yet). */
  readonly kv: readonly (number | null)[];
  /** Chunks decode has consumed. */
  readonly decoded: number;
}

const act = actionsOf<KvState>();
const bufOf = (chunk: number) => chunk % 2;

export default defineSystem<KvState>({
  name: 'kv-double-buffer-draft',
  init: {
    computed: 0,
    posted: 0,
    staging: [
      { holds: null, stage: 'free' },
      { holds: null, stage: 'free' },
    ],
    inflight: [],
    kv: Array.from({ length: CHUNKS }, () => null),
    decoded: 0,
  },
  actions: [
    act('computeChunk', {
      actor: 'rank 0 prefill',
      guard: (s) => s.computed < CHUNKS && s.staging[bufOf(s.computed)].stage === 'free',
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
      // The code under review: the loop treats the buffer as reusable as soon as isend returns.
      effect: (s) => ({
        ...s,
        inflight: [...s.inflight, { buf: bufOf(s.posted), chunk: s.posted }],
        staging: s.staging.with(bufOf(s.posted), { ...s.staging[bufOf(s.posted)], stage: 'free' }),
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
        return { ...s, inflight: rest, kv: s.kv.with(t.chunk, s.staging[t.buf].holds) };
      },
      describe: (_, s) => `the transfer of chunk ${s.inflight[0].chunk} lands in decode's KV cache`,
    }),
    act('decodeChunk', {
      actor: 'rank 1 decode',
      guard: (s) => s.decoded < CHUNKS && s.kv[s.decoded] !== null,
      effect: (s) => ({ ...s, decoded: s.decoded + 1 }),
    }),
  ],
  invariants: {
    // Every KV slot decode has received holds the data of its own chunk.
    kvIntact: (s) => s.kv.every((c, i) => c === null || c === i),
  },
  terminal: (s) => s.decoded === CHUNKS,
});
