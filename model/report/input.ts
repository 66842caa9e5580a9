/** What every report renders: one violated check with its counterexample, and where it came from. */
import { type Data, show } from '../data.ts';
import type { CheckResult, PropertyKind } from '../explorer.ts';
import type { System } from '../system.ts';
import { type Params, formatLabel } from '../system.ts';
import type { Trace, TraceStep } from '../trace.ts';

export interface ReportInput {
  /** The target as the command line names it, e.g. `peterson:turn-before-flag` or `models/kv.ts`. */
  readonly title: string;
  /** One sentence on the variant (what design or which bug it is). */
  readonly summary?: string;
  /** A violated result with its counterexample. */
  readonly result: CheckResult & { readonly trace: Trace };
  /** The system checked: the `dot` format explores it again to draw its state graph. */
  readonly system?: System<any>;
}

export const PROPERTY_KIND_TEXT: Record<PropertyKind, string> = {
  invariant: 'invariant',
  'action-property': 'step property',
  deadlock: 'deadlock freedom',
  reachability: 'reachability',
  liveness: 'liveness',
};

export function propertyLine(input: ReportInput): string {
  const r = input.result;
  const kind = r.propertyKind ? PROPERTY_KIND_TEXT[r.propertyKind] : 'property';
  return `${kind} '${r.property ?? '?'}'`;
}

/** `isend(dst=1)`, or the model's own sentence when it gives one. */
export function stepTitle(s: TraceStep): string {
  return s.text ?? formatLabel(s);
}

export function formatParams(p: Params): string {
  return formatLabel({ action: '', params: p });
}

export function changeText(c: { path: string; before: Data | undefined; after: Data | undefined }, max = 80): string {
  return `${c.path || '(state)'}: ${show(c.before, max)} → ${show(c.after, max)}`;
}

