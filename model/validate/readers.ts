/** The trace readers, by format name. JSON Lines is the default; a new format registers a TraceReader here. */
import type { TraceReader } from './events.ts';
import { jsonlReader } from './jsonl.ts';

const readers = new Map<string, TraceReader>([[jsonlReader.format, jsonlReader]]);

export function registerReader(reader: TraceReader): void {
  readers.set(reader.format, reader);
}

export function readerNames(): string[] {
  return [...readers.keys()];
}

/** The reader named by `format`, or the first that accepts the file (JSON Lines when none claims it). */
export function readerFor(fileName: string, head: string, format?: string): TraceReader | undefined {
  if (format !== undefined) return readers.get(format);
  for (const r of readers.values()) if (r !== jsonlReader && r.accepts(fileName, head)) return r;
  return jsonlReader;
}
