/** Interleave's public API: write a system, check it (explore, simulate), validate recorded runs, read traces. */
export { type Data, type FieldChange, DataError, diff, equalData, show } from './data.ts';
export {
  type Action,
  type ActionInstance,
  type ActionSpec,
  type Condition,
  type Params,
  type StepLabel,
  type System,
  type SystemSpec,
  ModelError,
  action,
  actionsOf,
  defineSystem,
  formatLabel,
} from './system.ts';
export {
  type ArrayReader,
  type ArrayWriter,
  type Draft,
  type Field,
  type Layout,
  type Plain,
  type Reader,
  LayoutValueError,
  defineLayout,
  field,
} from './layout.ts';
export { type PackedAction, type PackedActionSpec, type PackedSystem, type PackedSystemSpec, definePackedSystem, packedActionsOf } from './packed.ts';
export { type Expectation, type Protocol, type Variant, defineProtocol } from './registry.ts';
export { type CheckOptions, type CheckResult, type PropertyKind, type Stats, type Verdict, check, replay } from './explorer.ts';
export { type Symmetry, canonicalizer } from './symmetry.ts';
export { ENABLERS, type StepObservation, observing, stable, stepObserving } from './por.ts';
export { type FairnessKind, type Liveness, alwaysEventually, eventually, leadsTo } from './liveness.ts';
export { type Trace, type TraceStep, buildTrace, formatTrace, traceToJson } from './trace.ts';
export { type SimulateOptions, type SimulationResult, simulate } from './simulate.ts';
export { type TraceEvent, type ValidateOptions, type ValidationResult, readJsonl, traceToEvents, validateEvents } from './validate/index.ts';
export { type ModuleSource, type ParallelOptions, type ProtocolSource, type SystemSource, SourceError, checkParallel } from './parallel/coordinator.ts';
