/** The JSON Lines reader: one event per line (docs/trace-format.md), an optional header line first. */
import {
  type ReadTrace,
  type TraceEvent,
  type TraceHeader,
  type TraceReader,
  TraceInputError,
  isHeader,
  toEvent,
  toHeader,
} from './events.ts';

export const jsonlReader: TraceReader = {
  format: 'jsonl',
  accepts: (name, head) => /\.(jsonl|ndjson)$/i.test(name) || /^\s*\{/.test(head),
  read: readJsonl,
};

export function readJsonl(text: string, source = ''): ReadTrace {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n');
  const endsWithNewline = text.endsWith('\n');
  // The last element after a final newline is empty: not a line.
  const count = endsWithNewline ? lines.length - 1 : lines.length;
  const events: TraceEvent[] = [];
  let header: TraceHeader | undefined;
  let lastContent = 0;
  for (let i = 0; i < count; i++) {
    const raw = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (raw.trim() === '') continue;
    lastContent = i + 1;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      if (i === count - 1 && !endsWithNewline) {
        throw new TraceInputError(i + 1, 'truncated: the file ends in the middle of an event (the last line is cut off)', source);
      }
      const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      throw new TraceInputError(i + 1, `not valid JSON (${why})`, source);
    }
    if (isHeader(obj)) {
      if (events.length > 0 || header !== undefined) {
        throw new TraceInputError(i + 1, 'a header line ({"format": "interleave-events", ...}) may only come first', source);
      }
      header = toHeader(obj, i + 1, source);
      continue;
    }
    events.push(toEvent(obj, i + 1, source));
  }
  if (events.length === 0) {
    const line = lastContent === 0 ? 1 : lastContent + 1;
    throw new TraceInputError(line, lastContent === 0 ? 'empty trace: the file has no events' : 'empty trace: a header but no events', source);
  }
  return header ? { header, events } : { events };
}
