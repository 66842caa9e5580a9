/** The `interleave` command line: dispatches to one module per command; usage errors exit 2 in one line. */
import { checkCommand, checkHelp } from './check.ts';
import { EXIT_OK, EXIT_USAGE, UsageError } from './errors.ts';
import { gpuReportCommand, gpuReportHelp } from './gpu-report.ts';
import { initCommand, initHelp } from './init.ts';
import { listCommand } from './list.ts';
import { proveCommand, proveHelp } from './prove.ts';
import { simulateCommand, simulateHelp } from './simulate.ts';
import { traceCommand, traceHelp } from './trace.ts';
import { validateCommand, validateHelp } from './validate.ts';

type Command = { run: (argv: string[]) => Promise<number>; help: string };

const commands: Record<string, Command> = {
  check: { run: checkCommand, help: checkHelp },
  list: { run: listCommand, help: 'interleave list [--json]   built-in protocols and their variants, one line each' },
  trace: { run: traceCommand, help: traceHelp },
  prove: { run: proveCommand, help: proveHelp },
  simulate: { run: simulateCommand, help: simulateHelp },
  validate: { run: validateCommand, help: validateHelp },
  init: { run: initCommand, help: initHelp },
  'gpu-report': { run: gpuReportCommand, help: gpuReportHelp },
};

export function registerCommand(name: string, command: Command): void {
  commands[name] = command;
}

function usage(): string {
  return [
    'interleave: a model checker for the asynchronous protocols of GPU inference engines',
    '',
    ...Object.values(commands).map((c) => c.help),
    '',
    'exit codes: 0 every verdict as expected, 1 a verdict differs (or a user model is violated), 2 usage or input error',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const command = commands[name];
  try {
    if (!command) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(commands).join(', ')})`);
    return await command.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`interleave: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
}
