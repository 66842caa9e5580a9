// spec/examples/handoff.ts: a worker fills a buffer and raises `ready`; the main thread copies it out.
import { actionsOf, defineSystem } from 'interleave';

interface State {
  readonly buffer: 'empty' | 'writing' | 'full';
  readonly ready: boolean;
  readonly copied: 'nothing' | 'garbage' | 'data';
}
const act = actionsOf<State>();

export default defineSystem<State>({
  name: 'handoff',
  init: { buffer: 'empty', ready: false, copied: 'nothing' },
  actions: [
    act('startWrite', { actor: 'worker', guard: (s) => s.buffer === 'empty',
      effect: (s) => ({ ...s, buffer: 'writing' }) }),
    // The bug under review: `ready` is raised when the write is *queued*, not when it is done.
    act('raiseReady', { actor: 'worker', guard: (s) => s.buffer === 'writing' && !s.ready,
      effect: (s) => ({ ...s, ready: true }) }),
    act('finishWrite', { actor: 'worker stream', guard: (s) => s.buffer === 'writing',
      effect: (s) => ({ ...s, buffer: 'full' }) }),
    act('copyOut', { actor: 'main', guard: (s) => s.ready && s.copied === 'nothing',
      effect: (s) => ({ ...s, copied: s.buffer === 'full' ? 'data' : 'garbage' }),
      describe: () => 'main sees ready and copies the buffer out' }),
  ],
  invariants: { copiesOnlyData: (s) => s.copied !== 'garbage' },
  terminal: (s) => s.copied !== 'nothing',
});
