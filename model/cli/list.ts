/** `interleave list`: the built-in protocols and their variants, one line each. */
import { formatExpectation } from '../registry.ts';
import { EXIT_OK } from './errors.ts';
import { parseFlags } from './options.ts';
import { renderTable } from './table.ts';
import { allBuiltins } from './targets.ts';

export async function listCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('list', argv, { json: { type: 'boolean' } });
  if (positionals.length > 0) throw new (await import('./errors.ts')).UsageError(`list takes no targets (got '${positionals[0]}')`);
  const protocols = await allBuiltins();
  const rows = protocols.flatMap((p) =>
    p.variants.map((v) => ({ protocol: p.name, variant: v.name, expected: formatExpectation(v.expect), summary: v.summary })),
  );
  if (values.json) process.stdout.write(`${JSON.stringify({ variants: rows }, null, 2)}\n`);
  else process.stdout.write(`${renderTable(['protocol', 'variant', 'expected', 'summary'], rows.map((r) => [r.protocol, r.variant, r.expected, r.summary]))}\n`);
  return EXIT_OK;
}
