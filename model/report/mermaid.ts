/**
 * A counterexample as a Mermaid `sequenceDiagram`: one participant per lane (rank, thread, stream), an arrow
 * for each inferred message (send, receive, event wait or record), a note for each local step, a note with the
 * fields each step changed, and a `loop` block around the cycle of a lasso.
 */
import type { Trace } from '../trace.ts';
import { changeText, stepTitle } from './input.ts';
import { type Lanes, type StepView, lanesOf } from './lanes.ts';

/** Most changed fields listed in one note; the rest are counted. */
const MAX_CHANGES = 6;

const ENTITY: Record<string, string> = {
  '#': '#35;',
  ';': '#59;',
  '<': '#60;',
  '>': '#62;',
  '`': '#96;',
  '\r': ' ',
  '\n': ' ',
  '\t': ' ',
};

/**
 * Text safe inside a Mermaid message, note or participant label: `;` (which ends a Mermaid statement), `#`
 * (which starts an entity code), `<` and `>` (which Mermaid would render as HTML) and backticks (which could
 * close the Markdown fence) become Mermaid entity codes; line breaks become spaces. Quotes, braces, colons,
 * commas, `-` and `+` are left alone: they are plain text after the colon that starts a message or a note.
 */
export function mermaidText(s: string): string {
  return s.replace(/[#;<>`\r\n\t]/g, (c) => ENTITY[c]);
}

const ARROW: Record<string, string> = {
  send: '->>',
  message: '->>',
  record: '-)',
  receive: '-->>',
  wait: '--)',
};

function participantId(i: number): string {
  return `L${i}`;
}

function changeNote(v: StepView): string[] {
  const cs = v.step.changes;
  const lines = cs.slice(0, MAX_CHANGES).map((c) => mermaidText(changeText(c, 48)));
  if (cs.length > MAX_CHANGES) lines.push(`…and ${cs.length - MAX_CHANGES} more fields`);
  return lines;
}

function stepLines(v: StepView): string[] {
  const title = mermaidText(`${v.step.index}. ${stepTitle(v.step)}`);
  const changes = changeNote(v);
  const me = participantId(v.lane);
  if (v.from !== undefined && v.to !== undefined) {
    const out = [`${participantId(v.from)}${ARROW[v.kind] ?? '->>'}${participantId(v.to)}: ${title}`];
    if (changes.length > 0) out.push(`Note over ${me}: ${changes.join('<br/>')}`);
    return out;
  }
  const where =
    v.span && v.span.length > 1
      ? `over ${participantId(Math.min(...v.span))},${participantId(Math.max(...v.span))}`
      : `over ${v.span && v.span.length === 1 ? participantId(v.span[0]) : me}`;
  const body = changes.length > 0 ? [title, ...changes] : [title, '(no field changed)'];
  return [`Note ${where}: ${body.join('<br/>')}`];
}

export function mermaidSequence(trace: Trace, lanes: Lanes = lanesOf(trace)): string {
  const out = ['sequenceDiagram'];
  lanes.names.forEach((n, i) => out.push(`  participant ${participantId(i)} as ${mermaidText(n)}`));
  if (lanes.names.length === 0) {
    out.push(`  participant ${participantId(0)} as system`, `  Note over ${participantId(0)}: the initial state already fails`);
  }
  if (trace.loopStart === 0) out.push(`  Note over ${participantId(0)}: the cycle starts at the initial state`);
  let open = false;
  for (const v of lanes.steps) {
    if (v.inLoop && !open) {
      out.push(`  loop cycle: back to the state after step ${trace.loopStart}, forever`);
      open = true;
    }
    for (const l of stepLines(v)) out.push(`${open ? '    ' : '  '}${l}`);
  }
  if (open) out.push('  end');
  if (trace.loopStart !== undefined && trace.loopStart === trace.steps.length) {
    out.push(`  Note over ${participantId(0)}: no action is enabled any more: the run stays here forever`);
  }
  return out.join('\n');
}
