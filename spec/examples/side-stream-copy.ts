// spec/examples/side-stream-copy.ts: a side stream copies a matmul result out; the fix orders it with an event.
import { defineProtocol } from '../../model/index.ts';
import { copy, gpuSystem, launch, record, waitEvent } from '../../model/gpu/index.ts';

const build = (waits: boolean) =>
  gpuSystem({
    name: waits ? 'side-copy-waits' : 'side-copy-races',
    ranks: 1,
    streams: ['C', 'S'],
    buffers: { a: { init: 'a' }, out: {}, host: {} },
    threads: () => ({
      main: [
        launch('C', 'matmul', { reads: ['a'], writes: ['out'] }), // with torch.cuda.stream(C): out = a @ b
        record('done', 'C'), //                                     done.record(C)
        waits && waitEvent('S', 'done'), //                         S.wait_event(done)
        copy('S', 'out', 'host'), //                                with torch.cuda.stream(S): host.copy_(out)
      ],
    }),
  });

export default defineProtocol<null>({
  name: 'side-stream-copy',
  summary: 'a side stream reads what the compute stream writes',
  configs: { check: null },
  variants: [
    { name: 'no-wait', summary: 'S never waits: it may copy out while the matmul still writes', expect: { verdict: 'violated', property: 'no-read-while-writing' }, build: () => build(false) },
    { name: 'wait-event', summary: 'S waits the event recorded after the matmul', expect: { verdict: 'holds' }, build: () => build(true) },
  ],
});
