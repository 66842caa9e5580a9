/**
 * `interleave init NAME`: writes the skeleton of a new model (NAME.ts), a small complete system that holds, with
 * a comment at each place a protocol author fills in: the state, the actors' steps, the invariants, the ends.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT_OK, UsageError } from './errors.ts';
import { parseFlags } from './options.ts';

export const initHelp = `interleave init NAME [--out PATH] [--force]
  write the skeleton of a new model to NAME.ts (or PATH): a small system that holds, to edit into your protocol
  --out PATH          where to write it (default: ./NAME.ts)
  --force             overwrite an existing file`;

/** How the skeleton imports the checker from `dir`: the package name when it resolves there, else a relative path. */
export function importSpecifierFor(dir: string): string {
  for (let d = resolve(dir); ; d = dirname(d)) {
    if (existsSync(join(d, 'node_modules', 'interleave', 'package.json'))) return 'interleave';
    const pkg = join(d, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'interleave') return 'interleave';
      } catch {
        // An unreadable package.json says nothing about where interleave is.
      }
    }
    if (dirname(d) === d) break;
  }
  const api = fileURLToPath(new URL('../index.ts', import.meta.url));
  let rel = relative(resolve(dir), api).split(sep).join('/');
  if (!rel.startsWith('.')) rel = `./${rel}`;
  return rel;
}

/** Whether Node loads a `.ts` file in `dir` as an ES module: the nearest package.json says "type": "module". */
export function isEsmScope(dir: string): boolean {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const pkg = join(d, 'package.json');
    if (existsSync(pkg)) {
      try {
        return (JSON.parse(readFileSync(pkg, 'utf8')) as { type?: string }).type === 'module';
      } catch {
        return false;
      }
    }
    if (dirname(d) === d) return false;
  }
}

export function skeleton(name: string, from: string, file: string): string {
  return `/**
 * ${name}: a new Interleave model. Replace this hand-off between two actors with your protocol.
 *
 *   npx interleave check ${file}                         # explore every interleaving (exit 0: it holds)
 *   npx interleave trace ${file} --format md             # once a property fails: the counterexample as Markdown
 *
 * The guide (docs/modelling-a-new-protocol.md) walks from a protocol to a model, a counterexample and a fix.
 */
import { actionsOf, defineSystem } from '${from}';

// 1. The state: plain immutable data (booleans, numbers, strings, arrays, plain objects; no undefined).
//    One field for each thing an actor writes or another one reads: flags, buffers, queues, handles.
interface State {
  /** The staging buffer rank 0 fills. */
  readonly buffer: 'empty' | 'writing' | 'full';
  /** The flag rank 1's main loop polls. */
  readonly ready: boolean;
  /** What rank 1 copied out of the buffer. */
  readonly copied: 'nothing' | 'garbage' | 'data';
}

const act = actionsOf<State>();

export default defineSystem<State>({
  name: ${JSON.stringify(name)},
  init: { buffer: 'empty', ready: false, copied: 'nothing' },
  // 2. The steps: one action per atomic step of one actor (a rank, thread or stream). A guard says when the
  //    step can run, an effect returns the next state ({ ...s, field }: never mutate s). Add \`params\` for
  //    steps that exist once per rank, layer or buffer: params: { rank: [0, 1] }.
  actions: [
    act('startWrite', {
      actor: 'rank 0 worker',
      guard: (s) => s.buffer === 'empty',
      effect: (s) => ({ ...s, buffer: 'writing' }),
    }),
    act('finishWrite', {
      actor: 'rank 0 stream',
      guard: (s) => s.buffer === 'writing',
      effect: (s) => ({ ...s, buffer: 'full' }),
    }),
    // The flag goes up only once the write is done. Raise it as soon as the write has started instead
    // (guard: s.buffer !== 'empty' && !s.ready) and check again: rank 1 copies a half-written buffer.
    act('raiseReady', {
      actor: 'rank 0 worker',
      guard: (s) => s.buffer === 'full' && !s.ready,
      effect: (s) => ({ ...s, ready: true }),
      describe: () => 'rank 0 raises ready for rank 1',
    }),
    act('copyOut', {
      actor: 'rank 1 main',
      guard: (s) => s.ready && s.copied === 'nothing',
      effect: (s) => ({ ...s, copied: s.buffer === 'full' ? 'data' : 'garbage' }),
      describe: () => 'rank 1 sees ready and copies the buffer out',
    }),
  ],
  // 3. What must hold in every reachable state.
  invariants: {
    copiesOnlyData: (s) => s.copied !== 'garbage',
  },
  // 4. The proper ends: a state where nothing can move and that is not one of these is a deadlock.
  terminal: (s) => s.copied !== 'nothing',
});
`;
}

export async function initCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('init', argv, {
    out: { type: 'string', short: 'o' },
    force: { type: 'boolean' },
  });
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'init: name the new model, e.g. interleave init kv-transfer' : `init: takes one NAME, got ${positionals.length}`);
  }
  const raw = positionals[0].replace(/\.m?ts$/, '');
  if (!/^[A-Za-z_][\w.-]*$/.test(raw)) {
    throw new UsageError(`init: '${positionals[0]}' is not a model name (letters, digits, _ . -, starting with a letter or _)`);
  }
  // Models are ES modules: outside a package that says "type": "module", a .ts file would load as CommonJS and
  // fail, so the default file is then NAME.mts, which Node always loads as an ES module.
  const esm = isEsmScope(process.cwd());
  const out = values.out ?? `${raw}.${esm ? 'ts' : 'mts'}`;
  if (!/\.m?ts$/.test(out)) throw new UsageError(`init: --out must name a .ts or .mts file, got '${out}'`);
  if (existsSync(out) && !values.force) throw new UsageError(`init: '${out}' already exists (use --force to overwrite it)`);
  const dir = dirname(resolve(out));
  mkdirSync(dir, { recursive: true });
  const shown = out.includes('/') || out.includes('\\') ? out : basename(out);
  writeFileSync(out, skeleton(raw, importSpecifierFor(dir), shown));
  process.stdout.write(`wrote ${out}: a model that holds as it is; check it with: npx interleave check ${shown}\n`);
  if (!esm && values.out === undefined) {
    process.stdout.write(`(no package.json with "type": "module" governs this directory, so the model is an .mts file, which Node always loads as an ES module)\n`);
  } else if (out.endsWith('.ts') && !isEsmScope(dir)) {
    process.stderr.write(`interleave: note: no package.json with "type": "module" governs '${out}'; Node will load it as CommonJS and the model will not load: rename it .mts or add "type": "module"\n`);
  }
  return EXIT_OK;
}
