/**
 * A counterexample as Markdown for a design review or a CI summary: the property that failed, a table of the
 * steps (actor, action, changed fields), a Mermaid sequence diagram with one lane per actor, and the initial
 * and final states.
 */
import { show } from '../data.ts';
import { formatLabel } from '../system.ts';
import { type ReportInput, propertyLine } from './input.ts';
import { lanesOf } from './lanes.ts';
import { mermaidSequence } from './mermaid.ts';

/** Text safe in a Markdown paragraph or table cell (no HTML, links, emphasis or cell breaks). */
export function mdText(s: string): string {
  return s
    .replace(/[\\`*_[\]<>|#~]/g, (c) => `\\${c}`)
    .replace(/\r?\n/g, ' ');
}

/** An inline code span for any text, safe in a table cell: fenced by more backticks than it contains. */
export function mdCode(s: string): string {
  const flat = s.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
  const longest = Math.max(0, ...(flat.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') || flat === '' ? ' ' : '';
  return `${fence}${pad}${flat}${pad}${fence}`;
}

/** A fenced code block whose fence is longer than any backtick run inside it. */
function fenced(lang: string, body: string): string {
  const longest = Math.max(2, ...(body.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${lang}\n${body}\n${fence}`;
}

export function renderMarkdown(input: ReportInput): string {
  const r = input.result;
  const t = r.trace;
  const lanes = lanesOf(t);
  const out: string[] = [];
  out.push(`# Counterexample: ${mdText(input.title)}`, '');
  out.push(`**Property that failed:** ${mdText(propertyLine(input))}  `);
  out.push(`**Verdict:** ${mdText(r.message ?? 'violated')}  `);
  if (input.summary) out.push(`**Model:** ${mdText(input.summary)}  `);
  out.push(
    `**Search:** ${r.stats.states.toLocaleString('en-US')} states, ${r.stats.transitions.toLocaleString('en-US')} transitions, ` +
      `depth ${r.stats.depth}; ` +
      (t.loopStart !== undefined
        ? `the counterexample is a lasso of ${t.steps.length} steps whose cycle starts after step ${t.loopStart}`
        : `the counterexample is a shortest one (${t.steps.length} steps)`),
  );
  if (r.stuck && r.stuck.length > 0) {
    out.push('', 'At the end, nothing can move:', '');
    for (const l of r.stuck) out.push(`- ${mdText(l)}`);
  }

  out.push('', '## Steps', '');
  if (t.loopStart !== undefined) {
    out.push(
      t.loopStart === t.steps.length
        ? `After step ${t.steps.length} no action is enabled any more: the run stays in that state forever.`
        : `Steps marked ↻ form the cycle: after step ${t.steps.length} the run is back in the state after step ${t.loopStart}, and repeats them forever.`,
      '',
    );
  }
  out.push('| # | actor | action | changed fields |', '| ---: | --- | --- | --- |');
  out.push(`| 0 |  | *initial state* | ${mdCode(show(t.initial, 300))} |`);
  for (const v of lanes.steps) {
    const s = v.step;
    const action = s.text ? `${mdText(s.text)} (${mdCode(formatLabel(s))})` : mdCode(formatLabel(s));
    const changes = s.changes.length === 0 ? '*(no field changed)*' : s.changes.map((c) => mdCode(`${c.path || '(state)'}: ${show(c.before, 80)} → ${show(c.after, 80)}`)).join('<br>');
    const mark = v.inLoop ? ' ↻' : '';
    out.push(`| ${s.index}${mark} | ${mdText(s.actor ?? '')} | ${action} | ${changes} |`);
  }

  out.push('', '## Sequence diagram', '');
  out.push('One lane per actor; arrows are the messages, receives and event waits the steps imply, notes the fields each step changed.', '');
  out.push(fenced('mermaid', mermaidSequence(t, lanes)));

  const last = t.steps.length > 0 ? t.steps[t.steps.length - 1].state : t.initial;
  out.push('', '## States', '');
  out.push('<details><summary>Initial state</summary>', '', fenced('json', JSON.stringify(t.initial, null, 2)), '', '</details>', '');
  out.push(`<details><summary>State after the last step (${t.steps.length})</summary>`, '', fenced('json', JSON.stringify(last, null, 2)), '', '</details>', '');
  return out.join('\n');
}
