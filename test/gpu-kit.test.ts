/**
 * Each primitive of the GPU kit on its own: small systems, checked exhaustively or stepped by hand.
 */
import { describe, expect, it } from 'vitest';
import { type Params, type System, check, formatLabel } from '../model/index.ts';
import {
  type GpuState,
  allGather,
  allReduce,
  alloc,
  barrier,
  batchIsendIrecv,
  bufferValue,
  copy,
  cpuRead,
  faultOf,
  free,
  gpuSystem,
  irecv,
  isend,
  join,
  launch,
  mayRaise,
  raise,
  record,
  recordStream,
  set,
  start,
  step,
  syncDevice,
  syncEvent,
  syncStream,
  tryCatch,
  tryFinally,
  until,
  wait,
  waitEvent,
  waitStream,
  when,
} from '../model/gpu/index.ts';

type St = GpuState<any>;

/** The enabled steps of a state, as `action(params)` labels. */
function enabled(sys: System<St>, s: St): string[] {
  return sys.instances.filter((i) => !i.action.spec.guard || i.action.spec.guard(s, i.params)).map((i) => formatLabel(i.label));
}

/** Fires the one enabled instance of `action` whose params include `params`; fails if there is none. */
function fire(sys: System<St>, s: St, action: string, params: Params = {}): St {
  const cands = sys.instances.filter(
    (i) => i.action.name === action && Object.entries(params).every(([k, v]) => i.params[k] === v) && (!i.action.spec.guard || i.action.spec.guard(s, i.params)),
  );
  if (cands.length !== 1) throw new Error(`expected one enabled ${action}(${JSON.stringify(params)}), found ${cands.length}; enabled: ${enabled(sys, s).join(', ')}`);
  return cands[0].action.spec.effect(s, cands[0].params);
}

function isEnabled(sys: System<St>, s: St, action: string, params: Params = {}): boolean {
  return sys.instances.some(
    (i) => i.action.name === action && Object.entries(params).every(([k, v]) => i.params[k] === v) && (!i.action.spec.guard || i.action.spec.guard(s, i.params)),
  );
}

/** Runs a schedule of [action, params] from the initial state. */
function run(sys: System<St>, schedule: [string, Params?][]): St {
  let s = sys.inits[0];
  for (const [a, p] of schedule) s = fire(sys, s, a, p ?? {});
  return s;
}

const main0 = { rank: 0, thread: 'main' };

describe('streams', () => {
  it('run their ops in issue order (FIFO): a later op on the same stream always sees the earlier one', () => {
    const sys = gpuSystem({
      name: 'fifo',
      ranks: 1,
      streams: ['C'],
      buffers: ['x', 'y'],
      threads: () => ({ main: [launch('C', 'first', { writes: ['x'] }), launch('C', 'second', { reads: [{ buf: 'x', expect: 'first' }], writes: ['y'] })] }),
      reachable: { 'second-done': (s) => bufferValue(s, 0, 'y') === 'second' },
    });
    const r = check(sys);
    expect(r.verdict).toBe('holds');
    // Only the head of a queue can run: with both queued, exactly one exec is enabled.
    const s = run(sys, [['launch', main0], ['launch', main0]]);
    expect(s.streams[0].C).toEqual(['first#0', 'second#1']);
    expect(enabled(sys, s)).toEqual(['exec(rank=0, stream=C)']);
  });

  it('on different streams interleave freely: both completion orders are reachable, and unordered access is a race', () => {
    const mk = (reads: boolean) =>
      gpuSystem({
        name: 'free',
        ranks: 1,
        streams: ['C', 'S'],
        buffers: { x: {}, y: {}, z: {} },
        threads: () => ({ main: [launch('C', 'a', { writes: ['x'] }), launch('S', 'b', reads ? { reads: ['x'], writes: ['z'] } : { writes: ['y'] })] }),
        reachable: {
          'a-first': (s) => bufferValue(s, 0, 'x') === 'a' && s.streams[0].S.length === 1,
          'b-first': (s) => s.streams[0].C.length === 1 && s.streams[0].S.length === 0 && s.threads[0].main === 'done',
        },
      });
    expect(check(mk(false)).verdict).toBe('holds');
    const racy = check(mk(true));
    expect(racy.verdict).toBe('violated');
    expect(racy.property).toBe('no-read-while-writing');
    expect(racy.trace!.steps.map((x) => x.actor)).toEqual(['rank 0 main', 'rank 0 main', 'rank 0 stream S']);
  });
});

describe('events', () => {
  const mk = (order: 'wait' | 'none' | 'wait-before-record') =>
    gpuSystem({
      name: 'events',
      ranks: 1,
      streams: ['C', 'S'],
      buffers: { a: { init: 'a' }, out: {}, side: {} },
      threads: () => ({
        main: [
          launch('C', 'matmul', { reads: ['a'], writes: ['out'] }),
          order === 'wait' && [record('e', 'C'), waitEvent('S', 'e')],
          order === 'wait-before-record' && [waitEvent('S', 'e'), record('e', 'C')],
          copy('S', { buf: 'out', expect: 'matmul' }, 'side'),
        ],
      }),
    });

  it('order a waiting stream after the capture point', () => {
    const r = check(mk('wait'));
    expect(r.verdict).toBe('holds');
    // The wait marker holds S until the matmul (and the record after it) are done.
    const sys = mk('wait');
    const s = run(sys, [['launch', main0], ['record', main0], ['waitEvent', main0], ['launch', main0]]);
    expect(s.streams[0].S).toEqual(['wait e(record e#1)#2', 'copy#3']);
    expect(isEnabled(sys, s, 'exec', { stream: 'S' })).toBe(false);
    const t = fire(sys, s, 'exec', { stream: 'C' });
    expect(t.streams[0].S).toEqual(['copy#3']);
    expect(t.streams[0].C).toEqual([]);
  });

  it('without a wait, the copy races the matmul', () => {
    const r = check(mk('none'));
    expect(r.property).toBe('no-read-while-writing');
    expect(r.trace!.steps.at(-1)!.text).toBe('rank 0 stream S: runs copy (reads out; writes side)');
  });

  it('waiting an event that was never recorded is a no-op', () => {
    const sys = mk('wait-before-record');
    const s = run(sys, [['launch', main0], ['waitEvent', main0]]);
    expect(s.streams[0].S).toEqual([]);
    const r = check(sys);
    expect(r.property).toBe('no-read-while-writing');
    expect(r.trace!.steps.some((x) => x.text === 'rank 0 main: stream S waits event e (never recorded: a no-op)')).toBe(true);
  });

  it('wait_stream orders the waiting stream after the other stream\'s queued work', () => {
    const mkWs = (ws: boolean) =>
      gpuSystem({
        name: 'ws',
        ranks: 1,
        streams: ['C', 'S'],
        buffers: { out: {}, side: {} },
        threads: () => ({ main: [launch('C', 'k', { writes: ['out'] }), ws && waitStream('S', 'C'), copy('S', 'out', 'side')] }),
      });
    expect(check(mkWs(true)).verdict).toBe('holds');
    expect(check(mkWs(false)).property).toBe('no-read-while-writing');
  });

  it('synchronize blocks the CPU thread until the queued work is done', () => {
    const sys = gpuSystem({
      name: 'sync',
      ranks: 1,
      streams: ['C'],
      buffers: ['x'],
      vars: { v: null },
      threads: () => ({ main: [launch('C', 'k', { writes: ['x'] }), record('e', 'C'), syncEvent('e'), cpuRead('x', { into: 'v' }), launch('C', 'k2', { writes: ['x'] }), syncStream('C'), cpuRead('x', { into: 'v' })] }),
    });
    expect(check(sys).verdict).toBe('holds');
    const s = run(sys, [['launch', main0], ['record', main0]]);
    expect(isEnabled(sys, s, 'synchronize', main0)).toBe(false);
    const t = fire(sys, fire(sys, s, 'exec', { stream: 'C' }), 'synchronize', main0);
    expect(t.threads[0].main).toBe(3);
    // Without the synchronizes, the CPU read races the kernel.
    const bad = gpuSystem({ name: 'nosync', ranks: 1, streams: ['C'], buffers: ['x'], threads: () => ({ main: [launch('C', 'k', { writes: ['x'] }), cpuRead('x')] }) });
    expect(check(bad).property).toBe('no-read-while-writing');
  });
});

describe('caching allocator', () => {
  const mk = (recordOn?: string, copyWaits = true) =>
    gpuSystem({
      name: 'alloc',
      ranks: 1,
      streams: ['D', 'S'],
      buffers: { x: { alloc: true }, y: { alloc: true }, z: {} },
      threads: () => ({
        main: [
          alloc('x', 'D'),
          launch('D', 'fill_x', { writes: ['x'] }),
          copyWaits && [record('e', 'D'), waitEvent('S', 'e')],
          copy('S', 'x', 'z'),
          recordOn && recordStream('x', recordOn),
          free('x'),
          alloc('y', 'D'),
          launch('D', 'fill_y', { writes: ['y'] }),
        ],
      }),
    });
  const upToAllocY = (sys: System<St>, withRecord: boolean) =>
    run(sys, [
      ['alloc', main0],
      ['launch', main0],
      ['record', main0],
      ['waitEvent', main0],
      ['launch', main0],
      ...(withRecord ? ([['recordStream', main0]] as [string, Params][]) : []),
      ['free', main0],
      ['alloc', main0],
    ]);

  it('reuses a freed block at once on its allocation stream, even while another stream reads it', () => {
    const s = upToAllocY(mk(), false);
    expect(s.buffers[0].y).toBe(s.blocks[0].findIndex((b) => b.buf === 'y'));
    expect(s.buffers[0].y).toBe(1); // x's block
    expect(s.blocks[0][1].pending).toEqual(['w x fill_x#1', 'r x copy#4']);
    expect(check(mk()).property).toBe('no-write-while-reading');
  });

  it('record_stream(side) delays reuse until the side work queued at free time is done', () => {
    const sys = mk('S');
    const s = upToAllocY(sys, true);
    expect(s.buffers[0].y).toBe(2); // a fresh block
    expect(check(sys).verdict).toBe('holds');
    // Once the side stream has run its copy, the block is back in the pool.
    const t = run(sys, [['alloc', main0], ['launch', main0], ['record', main0], ['waitEvent', main0], ['launch', main0], ['recordStream', main0], ['free', main0]]);
    const u = fire(sys, fire(sys, fire(sys, t, 'exec', { stream: 'D' }), 'exec', { stream: 'S' }), 'alloc', main0);
    expect(u.buffers[0].y).toBe(1);
  });

  it('record_stream on the allocation stream is ignored', () => {
    const sys = mk('D');
    expect(upToAllocY(sys, true).buffers[0].y).toBe(1);
    expect(check(sys).property).toBe('no-write-while-reading');
  });

  it('does not protect a live buffer from being overwritten (that needs events)', () => {
    const sys = gpuSystem({
      name: 'overwrite',
      ranks: 1,
      streams: ['C', 'K'],
      buffers: { out: {}, recv: {} },
      threads: () => ({ main: [launch('C', 'step1', { writes: ['out'] }), record('e', 'C'), waitEvent('K', 'e'), copy('K', 'out', 'recv'), recordStream('out', 'K'), launch('C', 'step2', { writes: ['out'] })] }),
    });
    expect(check(sys).property).toBe('no-write-while-reading');
  });

  it('reports a use after free', () => {
    const sys = gpuSystem({ name: 'uaf', ranks: 1, streams: ['D'], buffers: { x: { alloc: true } }, threads: () => ({ main: [alloc('x', 'D'), free('x'), launch('D', 'k', { reads: ['x'] })] }) });
    expect(check(sys).property).toBe('no-use-after-free');
  });
});

describe('work handles', () => {
  const mk = (backend: 'nccl' | 'gloo') =>
    gpuSystem({
      name: `p2p-${backend}`,
      ranks: 2,
      streams: ['C'],
      buffers: { x: { init: 'payload' }, y: {} },
      vars: { got: null },
      threads: (r) => ({ main: r === 0 ? [isend(1, 'x', { backend, handle: 'h' }), wait('h')] : [irecv(0, 'y', { backend, handle: 'h' }), wait('h'), cpuRead('y', { into: 'got' })] }),
    });
  const rank1 = { rank: 1, thread: 'main' };

  it('NCCL wait() orders the current stream, not the CPU', () => {
    const sys = mk('nccl');
    const s = run(sys, [['irecv', rank1], ['wait', rank1]]);
    expect(s.threads[1].main).toBe(2); // the CPU went on
    // Statement ids are numbered per rank: rank 1's irecv is its statement 0, its wait statement 1.
    expect(s.streams[1].C).toEqual(['wait(recv y from 0#0)#1']);
    const r = check(sys);
    expect(r.property).toBe('no-read-while-writing');
    expect(faultOf(r.trace!.steps.at(-1)!.state as unknown as St)![1]).toBe(
      'rank 1: main reads y on the CPU while the nccl receive into y from rank 0 (issued before, still queued on p2p:0) has not finished writing y',
    );
  });

  it('gloo wait() blocks the CPU thread until the work is done', () => {
    const sys = mk('gloo');
    const s = run(sys, [['irecv', rank1]]);
    expect(isEnabled(sys, s, 'wait', rank1)).toBe(false);
    const t = fire(sys, fire(sys, s, 'isend', main0), 'transfer', { from: 0, to: 1 });
    expect(isEnabled(sys, t, 'wait', rank1)).toBe(true);
    expect(check(sys).verdict).toBe('holds');
  });

  it('a send completes only once the peer posted the matching receive', () => {
    const sys = mk('nccl');
    const s = run(sys, [['isend', main0], ['wait', main0]]);
    expect(isEnabled(sys, s, 'transfer')).toBe(false);
    expect(s.streams[0]['p2p:1']).toEqual(['send x to 1#0']);
    const t = fire(sys, fire(sys, s, 'irecv', { rank: 1 }), 'transfer', { from: 0, to: 1 });
    expect(t.streams[0]['p2p:1']).toEqual([]);
    expect(bufferValue(t, 1, 'y')).toBe('payload');
  });

  it('P2P ops between a pair match in issue order, not by name', () => {
    const sys = gpuSystem({
      name: 'order',
      ranks: 2,
      streams: ['C'],
      buffers: { a: { init: 'A' }, b: { init: 'B' }, p: {}, q: {} },
      threads: (r) => ({ main: r === 0 ? [isend(1, 'a'), isend(1, 'b'), syncDevice()] : [irecv(0, 'q'), irecv(0, 'p'), syncDevice()] }),
      invariants: { 'q-gets-first-send': (s) => bufferValue(s, 1, 'q') === null || bufferValue(s, 1, 'q') === 'A' },
      reachable: { 'all-received': (s) => bufferValue(s, 1, 'p') === 'B' },
    });
    expect(check(sys).verdict).toBe('holds');
  });

  it('two ranks that both send first deadlock, naming the unmatched ops', () => {
    const sys = gpuSystem({
      name: 'send-send',
      ranks: 2,
      streams: ['C'],
      buffers: { a: { init: 'A' }, p: {} },
      threads: (r) => ({ main: [isend(1 - r, 'a', { handle: 's' }), irecv(1 - r, 'p', { handle: 'r' }), wait('s'), wait('r'), syncStream('C')] }),
    });
    const res = check(sys);
    expect(res.property).toBe('deadlock');
    expect(res.stuck).toContain("rank 0 stream p2p:1: the nccl send of a to rank 1 cannot complete: rank 1's next op with rank 0 is the nccl send of a to rank 0 (1 more queued behind)");
  });
});

describe('batched and gloo point-to-point', () => {
  const exchange = (how: 'nccl' | 'gloo' | 'batch') =>
    gpuSystem({
      name: `exchange-${how}`,
      ranks: 2,
      streams: ['C'],
      buffers: { mine: { init: 'M' }, theirs: {} },
      vars: { got: null },
      threads: (r) => {
        const ops = [isend(1 - r, 'mine', { backend: how === 'gloo' ? 'gloo' : 'nccl', handle: 's' }), irecv(1 - r, 'theirs', { backend: how === 'gloo' ? 'gloo' : 'nccl', handle: 'r' })];
        return {
          main: [
            how === 'batch' ? batchIsendIrecv(ops, { handle: 'b' }) : ops,
            how === 'batch' ? wait('b') : [wait('s'), wait('r')],
            syncStream('C'),
            cpuRead('theirs', { into: 'got', expect: 'M' }),
          ],
        };
      },
    });

  it('ungrouped NCCL: both ranks sending first deadlock', () => {
    expect(check(exchange('nccl')).property).toBe('deadlock');
  });

  it('gloo: the two directions are independent queues, so both sending first is fine', () => {
    const sys = exchange('gloo');
    expect(check(sys).verdict).toBe('holds');
    const s = run(sys, [['isend', main0], ['irecv', main0]]);
    expect(s.streams[0]['gloo-send:1']).toEqual(['send mine to 1#0']);
    expect(s.streams[0]['gloo-recv:1']).toEqual(['recv theirs from 1#1']);
  });

  it('batch_isend_irecv: a batch completes with the mirrored batch of its peer', () => {
    const sys = exchange('batch');
    expect(check(sys).verdict).toBe('holds');
    const s = run(sys, [['batch_isend_irecv', main0], ['batch_isend_irecv', { rank: 1 }], ['transfer', { from: 0, to: 1 }]]);
    expect(bufferValue(s, 0, 'theirs')).toBe('M');
    expect(bufferValue(s, 1, 'theirs')).toBe('M');
    expect(s.streams[0]['p2p:1']).toEqual([]);
  });

  it('batch_isend_irecv: a batch whose peer posts a different batch hangs, named in the explanation', () => {
    const sys = gpuSystem({
      name: 'batch-mismatch',
      ranks: 2,
      streams: ['C'],
      buffers: { a: { init: 'A' }, b: {} },
      threads: (r) => ({ main: [batchIsendIrecv(r === 0 ? [isend(1, 'a'), irecv(1, 'b')] : [isend(0, 'a')], { handle: 'h' }), wait('h'), syncStream('C')] }),
    });
    const res = check(sys);
    expect(res.property).toBe('deadlock');
    expect(res.stuck).toContain(
      "rank 0 stream p2p:1: the batched exchange with rank 1 (sends a; receives b) cannot complete: rank 1's next op with rank 0 is the batched exchange with rank 0 (sends a)",
    );
  });
});

describe('collectives', () => {
  it('run when every rank of the group reaches the same kind', () => {
    const sys = gpuSystem({
      name: 'coll-ok',
      ranks: 3,
      streams: ['C'],
      buffers: { g: { init: 'g' }, h: { init: 'h' } },
      threads: () => ({ main: [allReduce('g'), allGather('h'), cpuRead('g', { expect: 'all_reduce#1' }), syncDevice(), cpuRead('g', { expect: 'all_reduce#1' })] }),
    });
    const r = check(sys);
    // The first CPU read does not wait for the all-reduce: a race; with only the second, it holds.
    expect(r.property).toBe('no-read-while-writing');
    const ok = gpuSystem({
      name: 'coll-ok2',
      ranks: 3,
      streams: ['C'],
      buffers: { g: { init: 'g' }, h: { init: 'h' } },
      threads: () => ({ main: [allReduce('g'), allGather('h'), syncDevice(), cpuRead('g', { expect: 'all_reduce#1' })] }),
    });
    expect(check(ok).verdict).toBe('holds');
  });

  it('in different orders hang the group: a deadlock naming each rank and its peers', () => {
    const sys = gpuSystem({
      name: 'coll-bad',
      ranks: 2,
      streams: ['C'],
      buffers: { g: { init: 'g' }, h: { init: 'h' } },
      threads: (r) => ({ main: [...(r === 0 ? [allReduce('g'), allGather('h')] : [allGather('h'), allReduce('g')]), syncDevice()] }),
    });
    const res = check(sys);
    expect(res.property).toBe('deadlock');
    expect(res.stuck).toContain('rank 0 stream nccl:world: blocked in all_reduce #1 (peers: rank 1 is in all_gather #1) (3 more queued behind)');
    expect(res.stuck).toContain('rank 1 stream nccl:world: blocked in all_gather #1 (peers: rank 0 is in all_reduce #1) (3 more queued behind)');
    expect(res.stuck!.some((l) => l.startsWith('rank 0 main: blocked in torch.cuda.synchronize()'))).toBe(true);
  });

  it('gloo collectives block the CPU thread; a mismatch names the blocked threads', () => {
    const sys = gpuSystem({
      name: 'gloo-bad',
      ranks: 2,
      streams: ['C'],
      buffers: { g: { init: 'g' }, h: { init: 'h' } },
      threads: (r) => ({ main: r === 0 ? [allReduce('g', { backend: 'gloo' }), allGather('h', { backend: 'gloo' })] : [allGather('h', { backend: 'gloo' }), allReduce('g', { backend: 'gloo' })] }),
    });
    const res = check(sys);
    expect(res.property).toBe('deadlock');
    expect(res.trace!.steps.length).toBe(0);
    expect(res.stuck).toEqual([
      'rank 0 main: blocked in all_reduce #1 (gloo, group world; peers: rank 1 is in all_gather #1)',
      'rank 1 main: blocked in all_gather #1 (gloo, group world; peers: rank 0 is in all_reduce #1)',
    ]);
  });

  it('a rank that never reaches the collective hangs its peers', () => {
    const sys = gpuSystem({
      name: 'barrier-skip',
      ranks: 2,
      streams: ['C'],
      vars: { skip: false },
      threads: (r) => ({ main: [when(() => r === 1, 'this rank skips the barrier', [], [barrier()])] }),
    });
    const res = check(sys);
    expect(res.property).toBe('deadlock');
    expect(res.stuck!.join('\n')).toContain('rank 1 has not issued collective #1 (main: finished)');
  });

  it('only group members take part', () => {
    const sys = gpuSystem({
      name: 'groups',
      ranks: 3,
      streams: ['C'],
      buffers: { g: { init: 'g' } },
      groups: { tp: [0, 1] },
      threads: (r) => ({ main: r < 2 ? [allReduce('g', { group: 'tp' }), syncDevice()] : [] }),
    });
    expect(check(sys).verdict).toBe('holds');
  });
});

describe('threads and flags', () => {
  const mk = (mode: 'plain' | 'finally' | 'catch') => {
    const work = [mayRaise('boom'), step('compute', { effect: () => ({ vars: { plan: 'plan' } }) })];
    return gpuSystem({
      name: `raise-${mode}`,
      ranks: 1,
      streams: ['C'],
      vars: { ongoing: true, plan: null, after: false },
      threads: () => ({
        main: [start('worker'), until((c) => c.vars.ongoing === false, 'ongoing is clear')],
        worker: {
          autoStart: false,
          body:
            mode === 'plain'
              ? [...work, set('ongoing', false)]
              : mode === 'finally'
                ? [tryFinally(work, [set('ongoing', false)]), set('after', true)]
                : [tryCatch(work, []), set('ongoing', false)],
        },
      }),
    });
  };
  const w0 = { rank: 0, thread: 'worker' };

  it('a thread that raises ends there: the flag it would clear stays set, and the poll never ends', () => {
    const sys = mk('plain');
    const s = fire(sys, fire(sys, sys.inits[0], 'start', main0), 'raise', w0);
    expect(s.threads[0].worker).toBe('raised');
    expect(s.vars[0].ongoing).toBe(true);
    const r = check(sys);
    expect(r.property).toBe('deadlock');
    expect(r.stuck).toEqual(['rank 0 main: polls forever until ongoing is clear (after = false, ongoing = true, plan = null)']);
  });

  it('try/finally clears the flag on the raising path, and the exception still ends the thread', () => {
    const sys = mk('finally');
    const s = fire(sys, fire(sys, fire(sys, sys.inits[0], 'start', main0), 'raise', w0), 'set', w0);
    expect(s.vars[0].ongoing).toBe(false);
    expect(s.vars[0].after).toBe(false);
    expect(s.threads[0].worker).toBe('raised');
    expect(check(sys).verdict).toBe('holds');
  });

  it('try/except stops the exception', () => {
    const sys = mk('catch');
    const s = fire(sys, fire(sys, fire(sys, sys.inits[0], 'start', main0), 'raise', w0), 'set', w0);
    expect(s.threads[0].worker).toBe('done');
    expect(check(sys).verdict).toBe('holds');
  });

  it('a flag set by the thread after start() can be read before it is set', () => {
    const mkFlag = (inThread: boolean) =>
      gpuSystem({
        name: 'flag',
        ranks: 1,
        streams: ['C'],
        vars: { ongoing: false, plan: null, used: null },
        threads: () => ({
          main: [!inThread && set('ongoing', true), start('worker'), until((c) => !c.vars.ongoing, 'ongoing is clear'), step('use', { effect: (c) => ({ vars: { used: c.vars.plan ?? 'missing' } }) })],
          worker: { autoStart: false, body: [inThread && set('ongoing', true), step('compute', { effect: () => ({ vars: { plan: 'plan' } }) }), set('ongoing', false)] },
        }),
        invariants: { 'uses-plan': (s) => s.vars[0].used !== 'missing' },
      });
    expect(check(mkFlag(true)).property).toBe('uses-plan');
    expect(check(mkFlag(false)).verdict).toBe('holds');
  });

  it('join waits for the thread; an unconditional raise skips the rest', () => {
    const sys = gpuSystem({
      name: 'join',
      ranks: 1,
      streams: ['C'],
      vars: { x: 0 },
      threads: () => ({ main: [start('w'), join('w'), until((c) => c.vars.x === 1, 'x is 1')], w: { autoStart: false, body: [set('x', 1), raise('done'), set('x', 2)] } }),
    });
    const s = fire(sys, sys.inits[0], 'start', main0);
    expect(isEnabled(sys, s, 'join', main0)).toBe(false);
    expect(check(sys).verdict).toBe('holds');
  });

  it('rejects a model naming an undeclared stream, buffer or variable', () => {
    expect(() => gpuSystem({ name: 'e1', ranks: 1, streams: ['C'], threads: () => ({ main: [launch('X', 'k')] }) })).toThrow(/stream 'X'/);
    expect(() => gpuSystem({ name: 'e2', ranks: 1, streams: ['C'], threads: () => ({ main: [launch('C', 'k', { reads: ['nope'] })] }) })).toThrow(/buffer 'nope'/);
    expect(() => gpuSystem({ name: 'e3', ranks: 1, streams: ['C'], threads: () => ({ main: [set('nope', 1)] }) })).toThrow(/variable 'nope'/);
  });

  it('records that ranks are interchangeable', () => {
    const sys = gpuSystem({ name: 'sym', ranks: 4, streams: ['C'], threads: () => ({ main: [] }) });
    expect(sys.symmetry).toEqual({ ranks: 4 });
  });
});

describe('state helpers', () => {
  it('queued lists what is in flight, for reachability properties', async () => {
    const { queued } = await import('../model/gpu/index.ts');
    const sys = gpuSystem({
      name: 'overlap',
      ranks: 2,
      streams: ['C'],
      buffers: { x: { init: 'x' }, y: {}, a: { init: 'a' }, o: {} },
      threads: (r) => ({ main: r === 0 ? [isend(1, 'x')] : [irecv(0, 'y', { handle: 'h' }), launch('C', 'fwd', { reads: ['a'], writes: ['o'] }), wait('h'), syncStream('C')] }),
      reachable: { 'recv-overlaps-forward': (s) => queued(s, 1, 'p2p:0').some((k) => k.startsWith('recv')) && queued(s, 1, 'C').some((k) => k.startsWith('fwd')) },
    });
    expect(check(sys).verdict).toBe('holds');
    const serial = gpuSystem({
      name: 'serial',
      ranks: 2,
      streams: ['C'],
      buffers: { x: { init: 'x' }, y: {}, a: { init: 'a' }, o: {} },
      threads: (r) => ({ main: r === 0 ? [isend(1, 'x')] : [irecv(0, 'y', { handle: 'h' }), wait('h'), syncStream('C'), launch('C', 'fwd', { reads: ['a'], writes: ['o'] }), syncStream('C')] }),
      reachable: { 'recv-overlaps-forward': (s) => queued(s, 1, 'p2p:0').some((k) => k.startsWith('recv')) && queued(s, 1, 'C').some((k) => k.startsWith('fwd')) },
    });
    const r = check(serial);
    expect(r.verdict).toBe('violated');
    expect(r.property).toBe('recv-overlaps-forward');
  });
});

describe('events recorded by different statements on different paths', () => {
  it('one wait statement waits whichever record the path made (not the first one the search registered)', async () => {
    const { gpuSystem, launch, record, waitEvent, copy, set, when } = await import('../model/gpu/index.ts');
    const { check } = await import('../model/index.ts');
    // A chooser thread may flip `late` at any time; main's branch then records `e` after one or two matmuls,
    // and the same waitEvent statement must order the copy after whichever record happened.
    const sys = gpuSystem({
      name: 'rewait',
      ranks: 1,
      streams: ['C', 'S'],
      buffers: { a: { init: 'a' }, out: {}, side: {} },
      vars: { late: false },
      threads: () => ({
        chooser: [set('late', true)],
        main: [
          launch('C', 'mm1', { reads: ['a'], writes: ['out'] }),
          when((c) => c.vars.late === true, 'late', [launch('C', 'mm2', { reads: ['a'], writes: ['out'] }), record('e', 'C')], [record('e', 'C')]),
          waitEvent('S', 'e'),
          copy('S', 'out', 'side'),
        ],
      }),
    });
    expect(check(sys).verdict).toBe('holds');
  });
});
