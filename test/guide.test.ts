/**
 * The modelling guide runs as written: every ```sh block's commands run from the repository root, in order,
 * each with the exit code its trailing `# exit N` comment states (0 when none); a ```text block right after a
 * ```sh block is output those commands print (each of its lines, in order, with runs of spaces and timings
 * normalised). Every ```ts block that starts with `// docs/examples/FILE` is that file's own text (chunks
 * separated by `// ...` lines), and the Mermaid diagram shown is the one `interleave trace` draws.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import draft from '../docs/examples/kv-double-buffer-draft.ts';
import { check } from '../model/explorer.ts';
import { type ReportInput, renderMarkdown } from '../model/report/index.ts';

const GUIDE = 'docs/modelling-a-new-protocol.md';
const text = readFileSync(GUIDE, 'utf8');

interface Block {
  readonly lang: string;
  readonly body: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
}

function blocksOf(md: string): Block[] {
  const out: Block[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && l === open[1]);
    if (end < 0) throw new Error(`${GUIDE}:${i + 1}: unclosed code block`);
    out.push({ lang: open[2], body: lines.slice(i + 1, end).join('\n'), line: i + 1 });
    i = end;
  }
  return out;
}

interface Command {
  readonly command: string;
  readonly exit: number;
}

function commandsOf(b: Block): Command[] {
  return b.body
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /\s+#\s*exit\s+(\d+)\s*$/.exec(l);
      return { command: m ? l.slice(0, m.index) : l.replace(/\s+#.*$/, ''), exit: m ? Number(m[1]) : 0 };
    });
}

/** Output as the guide shows it: no colours, runs of spaces collapsed, timings (0.02 s) as #.##. */
function normalise(s: string): string[] {
  return s
    .replace(/\x1b\[[0-9;]*m/g, '')
    .split('\n')
    .map((l) => l.replace(/\b\d+\.\d\d\b/g, '#.##').replace(/\s+/g, ' ').trim())
    .filter((l) => l !== '');
}

const blocks = blocksOf(text);
const runs = blocks
  .map((b, i) => ({ block: b, output: blocks[i + 1]?.lang === 'text' ? blocks[i + 1] : undefined }))
  .filter((r) => r.block.lang === 'sh');

describe(`${GUIDE} runs as written`, () => {
  beforeAll(() => rmSync(join('out', 'guide'), { recursive: true, force: true }));

  it('has commands to run and outputs to compare', () => {
    expect(runs.length).toBeGreaterThanOrEqual(5);
    expect(runs.filter((r) => r.output).length).toBeGreaterThanOrEqual(4);
  });

  for (const { block, output } of runs) {
    const commands = commandsOf(block);
    it(`line ${block.line}: ${commands.map((c) => c.command).join(' && ')}`, () => {
      let all = '';
      for (const c of commands) {
        const r = spawnSync('bash', ['-c', c.command], {
          encoding: 'utf8',
          env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
          maxBuffer: 1 << 26,
        });
        all += `${r.stdout}\n${r.stderr}\n`;
        expect(r.status, `${c.command}\n${r.stdout}\n${r.stderr}`).toBe(c.exit);
      }
      if (output) {
        const got = normalise(all);
        let at = 0;
        for (const want of normalise(output.body)) {
          const found = got.findIndex((l, i) => i >= at && l.includes(want));
          expect(found, `line '${want}' (guide line ${output.line}) not in the output, in order:\n${got.join('\n')}`).toBeGreaterThanOrEqual(0);
          at = found + 1;
        }
      }
    });
  }
});

describe(`${GUIDE} shows the real thing`, () => {
  it('every excerpt of an example file is that file’s own text', () => {
    const excerpts = blocks.filter((b) => b.lang === 'ts' && /^\/\/ docs\/examples\//.test(b.body));
    expect(excerpts.length).toBeGreaterThanOrEqual(3);
    for (const b of excerpts) {
      const [first, ...rest] = b.body.split('\n');
      const file = /^\/\/ (docs\/examples\/[\w.-]+\.ts)/.exec(first)![1];
      const source = readFileSync(file, 'utf8');
      // A first line that is only the file name is a caption; otherwise it is the file's own first line.
      const lines = first.trim() === `// ${file}` ? rest : [first, ...rest];
      const chunks = lines.join('\n').split(/\n?^\/\/ \.\.\.$\n?/m).filter((c) => c.trim() !== '');
      for (const chunk of chunks) expect(source, `${GUIDE}:${b.line}: this excerpt is not in ${file}:\n${chunk}`).toContain(chunk);
    }
  });

  it('the Mermaid diagram is the one interleave trace draws for the draft', () => {
    const shown = blocks.filter((b) => b.lang === 'mermaid');
    expect(shown).toHaveLength(1);
    const result = check(draft);
    expect(result.verdict).toBe('violated');
    const md = renderMarkdown({ title: 'draft', result: result as ReportInput['result'], system: draft });
    expect(/```mermaid\n([\s\S]*?)\n```/.exec(md)![1]).toBe(shown[0].body);
  });

  it('names the files it talks about, and they exist', () => {
    for (const m of text.matchAll(/\]\((examples\/[\w.-]+)\)/g)) expect(() => readFileSync(join('docs', m[1]))).not.toThrow();
  });
});
