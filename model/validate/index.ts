/** Trace validation: recorded events, their readers, the validator, and the model-trace exporter. */
export {
  type PathSegment,
  type ReadTrace,
  type TraceEvent,
  type TraceHeader,
  type TraceReader,
  TraceInputError,
  parsePath,
  resolvePath,
  toEvent,
} from './events.ts';
export { jsonlReader, readJsonl } from './jsonl.ts';
export { readerFor, readerNames, registerReader } from './readers.ts';
export {
  type Rejection,
  type ValidateOptions,
  type ValidationResult,
  ValidationModelError,
  compileEvents,
  describeEvent,
  formatPossibleStates,
  instanceRank,
  validateEvents,
} from './validator.ts';
export { type RecordedEvent, type ToEventsOptions, eventsToJsonl, numbered, traceToEvents } from './export.ts';
export { firstDeparture, keepMaskArb, walkTraceArb } from './arbitraries.ts';
