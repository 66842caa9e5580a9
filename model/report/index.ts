/**
 * Reports of a counterexample for design reviews and CI: text (as `check` prints it), Markdown with a Mermaid
 * sequence diagram, ITF JSON (Apalache ADR-015), a self-contained HTML stepper, and the Graphviz state graph.
 */
import { formatTrace } from '../trace.ts';
import { type DotScope, renderDot } from './dot.ts';
import { renderHtml } from './html.ts';
import type { ReportInput } from './input.ts';
import { type ItfOptions, renderItf } from './itf.ts';
import { renderMarkdown } from './markdown.ts';

export { type DotScope, DEFAULT_DOT_LIMIT, GraphTooLarge, exploreGraph, pathGraph, renderDot } from './dot.ts';
export { escapeHtml, renderHtml } from './html.ts';
export type { ReportInput } from './input.ts';
export {
  type ItfTrace,
  type ItfValue,
  type ReadItf,
  ITF_SCHEMA_URL,
  ItfError,
  fromItfValue,
  readItf,
  renderItf,
  toItfValue,
  traceToItf,
} from './itf.ts';
export { type Lanes, type StepView, kindOfAction, lanesOf } from './lanes.ts';
export { mdCode, mdText, renderMarkdown } from './markdown.ts';
export { mermaidSequence, mermaidText } from './mermaid.ts';

export const FORMATS = ['text', 'md', 'itf', 'html', 'dot'] as const;
export type Format = (typeof FORMATS)[number];

export interface RenderOptions {
  /** text: the full state after every step. */
  readonly full?: boolean;
  readonly dotScope?: DotScope;
  readonly dotLimit?: number;
  readonly itf?: ItfOptions;
}

/** The counterexample as `check` prints it, headed by the target and what failed. */
export function renderText(input: ReportInput, opts: RenderOptions = {}): string {
  const r = input.result;
  const parts = [`${input.title}: ${r.message ?? `property '${r.property}' is violated`}`];
  if (r.stuck && r.stuck.length > 0) parts.push(`  blocked:\n${r.stuck.map((l) => `    - ${l}`).join('\n')}`);
  parts.push(formatTrace(r.trace, { fullStates: Boolean(opts.full) }));
  return `${parts.join('\n')}\n`;
}

export function renderReport(format: Format, input: ReportInput, opts: RenderOptions = {}): string {
  switch (format) {
    case 'text':
      return renderText(input, opts);
    case 'md':
      return renderMarkdown(input);
    case 'itf':
      return renderItf(input, opts.itf);
    case 'html':
      return renderHtml(input);
    case 'dot':
      return renderDot(input, { ...(opts.dotScope ? { scope: opts.dotScope } : {}), ...(opts.dotLimit ? { limit: opts.dotLimit } : {}) });
  }
}

/** The format a file name implies (`.md`, `.html`, `.itf.json`/`.json`, `.dot`/`.gv`, `.txt`), if any. */
export function formatOfPath(path: string): Format | undefined {
  const p = path.toLowerCase();
  if (p.endsWith('.md') || p.endsWith('.markdown')) return 'md';
  if (p.endsWith('.html') || p.endsWith('.htm')) return 'html';
  if (p.endsWith('.json')) return 'itf';
  if (p.endsWith('.dot') || p.endsWith('.gv')) return 'dot';
  if (p.endsWith('.txt')) return 'text';
  return undefined;
}
