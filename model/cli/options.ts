/** Flag parsing shared by the commands: node's parseArgs, with its errors turned into one-line usage errors. */
import { parseArgs } from 'node:util';
import { UsageError } from './errors.ts';

export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export function parseFlags<T extends FlagSpec>(command: string, argv: string[], flags: T) {
  try {
    return parseArgs({ args: argv, options: flags, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message.replace(/\. To specify a positional argument.*$/s, '') : String(e);
    throw new UsageError(`${command}: ${msg} (see 'interleave help')`);
  }
}

/** A positive integer flag, or undefined when absent. */
export function intFlag(name: string, raw: string | undefined, min = 1): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min) throw new UsageError(`--${name} expects an integer >= ${min}, got '${raw}'`);
  return Number(raw);
}

/** A positive number flag (seconds), or undefined when absent. */
export function numberFlag(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} expects a positive number, got '${raw}'`);
  return n;
}
