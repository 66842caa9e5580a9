/**
 * What an implementation under test needs from its environment, as an interface: Python-like threads whose
 * switch points are explicit `await rt.preempt(...)` calls, and a recorder for the events a model checks.
 *
 * In production code the runtime is trivial (`preempt` resolves at once). In a test it is backed by
 * fast-check's scheduler (`schedulerRuntime`): every preemption point and every thread start becomes a
 * scheduled task, so fast-check picks (and shrinks) the interleaving.
 */
import type fc from 'fast-check';
import type { Data } from '../../model/data.ts';
import type { Params } from '../../model/system.ts';

export interface ImplEvent {
  readonly actor: string;
  readonly action: string;
  readonly params?: Params;
  readonly rank?: number;
  readonly observed?: { readonly [path: string]: Data };
}

export interface Runtime {
  /** A point where the current thread may lose the CPU (a GIL switch, a kernel launch returning, ...). */
  preempt(thread: string, where: string): Promise<void>;
  /**
   * `threading.Thread(target=body, daemon=True).start()`: the body starts at a later switch point; an
   * exception it raises is only logged (as Python does for a thread), never seen by the caller. When the
   * thread ends (either way) the runtime records a `threadExit` event with the thread's name as actor.
   */
  startThread(name: string, body: () => Promise<void>, options?: { readonly recordExit?: boolean }): void;
  /** Records one observable event (for validation against a model). */
  record(e: ImplEvent): void;
}

/** A thread's end, as the test sees it. */
export interface ThreadRecord {
  readonly name: string;
  state: 'started' | 'running' | 'done' | 'raised';
  error?: string;
}

/** A runtime backed by a fast-check scheduler; it also keeps the event log and every thread's fate. */
export class SchedulerRuntime implements Runtime {
  readonly events: ImplEvent[] = [];
  readonly threads: ThreadRecord[] = [];
  /** Exceptions raised inside threads ("Exception in thread ...": logged only). */
  readonly logged: string[] = [];

  constructor(private readonly s: fc.Scheduler) {}

  preempt(thread: string, where: string): Promise<void> {
    return this.s.schedule(Promise.resolve(), `${thread}: ${where}`);
  }

  startThread(name: string, body: () => Promise<void>, options: { readonly recordExit?: boolean } = {}): void {
    const recordExit = options.recordExit ?? true;
    const rec: ThreadRecord = { name, state: 'started' };
    this.threads.push(rec);
    this.s
      .schedule(Promise.resolve(), `${name}: start`)
      .then(() => {
        rec.state = 'running';
        return body();
      })
      .then(
        () => {
          rec.state = 'done';
          if (recordExit) this.record({ actor: name, action: 'threadExit' });
        },
        (e: unknown) => {
          rec.state = 'raised';
          rec.error = e instanceof Error ? e.message : String(e);
          this.logged.push(`Exception in thread ${name}: ${rec.error}`);
          if (recordExit) this.record({ actor: name, action: 'threadExit' });
        },
      );
  }

  record(e: ImplEvent): void {
    this.events.push(e);
  }

  /** Whether a thread of that name is started or running. */
  alive(name: string): boolean {
    return this.threads.some((t) => t.name === name && (t.state === 'started' || t.state === 'running'));
  }
}

/** The production runtime: real microtask switches, no recording. */
export const plainRuntime: Runtime = {
  preempt: () => Promise.resolve(),
  startThread: (name, body) => {
    void Promise.resolve()
      .then(body)
      .catch((e: unknown) => console.error(`Exception in thread ${name}:`, e));
  },
  record: () => {},
};
