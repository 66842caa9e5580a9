/**
 * A worker thread of a parallel search (see protocol.ts for the scheme): it loads the system from its source
 * and answers the coordinator's messages with its share of the search (search.ts, or packed-search.ts for a
 * model over a layout that the packed fast path can run), and before it, for a model of plain states, with its
 * share of the sweep (sweep.ts).
 */
import { parentPort } from 'node:worker_threads';
import type { System } from '../system.ts';
import type { FromWorker, ToWorker } from './protocol.ts';
import { loadSystem } from './source.ts';
import { packedUnfit } from '../packed-explorer.ts';
import { packedOf } from '../packed.ts';
import { PackedWorkerSearch } from './packed-search.ts';
import { WorkerSearch } from './search.ts';
import { PackedSweep } from './packed-sweep.ts';
import { Sweep } from './sweep.ts';

const port = parentPort;
if (!port) throw new Error('model/parallel/worker.ts runs as a worker thread (started by checkParallel)');

let search: WorkerSearch<unknown> | undefined;
let sweep: Sweep<unknown> | undefined;
let workers = 1;

function reply(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(m, transfer);
}

port.on('message', async (msg: ToWorker) => {
  try {
    switch (msg.type) {
      case 'init': {
        let system: System<unknown>;
        try {
          system = await loadSystem(msg.source);
        } catch (e) {
          reply({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
          return;
        }
        const o = msg.options;
        const model = packedOf(system);
        const fast = model !== undefined && packedUnfit(system, { packed: o.packed, liveness: false, ...(o.properties ? { properties: o.properties } : {}) }) === undefined;
        search = fast
          ? new PackedWorkerSearch(system, model, msg.index, msg.workers, msg.strings, msg.progress, msg.control, o)
          : new WorkerSearch(system, msg.index, msg.workers, msg.strings, msg.progress, msg.control, o);
        sweep = fast
          ? new PackedSweep(system, model, msg.strings, msg.control, msg.progress, msg.index, o)
          : new Sweep(system, msg.strings, msg.control, msg.progress, msg.index, o);
        workers = msg.workers;
        reply({ type: 'ready', instances: system.instances.length });
        return;
      }
      case 'inits':
        reply(search!.inits());
        return;
      case 'pass': {
        const r = search!.pass(msg);
        reply(r, search!.transfer);
        search!.transfer = [];
        return;
      }
      case 'dedupe':
        reply(search!.dedupe(msg.incoming));
        return;
      case 'count':
        reply(search!.count(msg.key, msg.level));
        return;
      case 'link':
        reply(search!.link(msg.state));
        return;
      case 'sweep-start':
        reply(sweep!.start(msg.table, workers));
        return;
      case 'sweep-level':
        reply(sweep!.level(msg.frontiers, msg.table, msg.resume));
        return;
      case 'sweep-rehash':
        reply(sweep!.rehash(msg.from, msg.to, msg.part, msg.parts));
        return;
      case 'sweep-end':
        // Its frontiers and table go; the exact scheme starts from the initial states.
        sweep = undefined;
        reply({ type: 'sweep-ended' });
        return;
    }
  } catch (e) {
    reply({ type: 'crash', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
});
