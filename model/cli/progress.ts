/** Progress on stderr for long runs: a live line on a terminal, plain lines otherwise. Silent under a second. */
import type { Stats } from '../explorer.ts';

export function progressReporter(label: string, enabled: boolean): { tick: (s: Stats) => void; done: () => void } {
  const tty = Boolean(process.stderr.isTTY);
  let shown = false;
  return {
    tick: (s) => {
      if (!enabled) return;
      const line = `${label}: ${s.states.toLocaleString('en-US')} states, ${s.transitions.toLocaleString('en-US')} transitions, depth ${s.depth}, ${Math.round(s.statesPerSecond).toLocaleString('en-US')} states/s, ${s.seconds.toFixed(0)} s`;
      if (tty) process.stderr.write(`\r\x1b[2K${line}`);
      else process.stderr.write(`${line}\n`);
      shown = true;
    },
    done: () => {
      if (tty && shown) process.stderr.write('\r\x1b[2K');
    },
  };
}
