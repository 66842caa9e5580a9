/**
 * The HTML report end to end in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
 * open the file, step with the keyboard, and check that the highlighted fields and the lane of each step are
 * what the trace says. Screenshots go to out/html-chromium/ (gitignored).
 *
 * Skipped, with a message, only when /usr/bin/chromium is absent and CI is not set; in CI it must run.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kv from '../docs/examples/kv-double-buffer.ts';
import { builtinProtocols } from '../spec/index.ts';
import { type System, actionsOf, check, defineSystem, eventually } from '../model/index.ts';
import { type ReportInput, lanesOf, renderHtml } from '../model/report/index.ts';
import type { Trace } from '../model/trace.ts';
import { variantOf } from '../model/vitest.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const OUT = join(process.cwd(), 'out', 'html-chromium');
const available = existsSync(CHROMIUM);
const required = Boolean(process.env.CI);
const SKIP_MESSAGE = `skipped: ${CHROMIUM} is absent and CI is not set (install it with: apt-get install -y chromium)`;

function inputOf(title: string, system: System<any>): ReportInput {
  const result = check(system);
  if (result.verdict !== 'violated' || !result.trace) throw new Error(`${title}: expected a counterexample, got ${result.verdict}`);
  return { title, result: result as ReportInput['result'], system };
}

/** A worker may raise and leave `ongoing` set: main then polls forever (a lasso). */
type Spin = { readonly worker: 'running' | 'done' | 'raised'; readonly ongoing: boolean; readonly main: 'polling' | 'used' };
const spin = actionsOf<Spin>();
const spinLoop = defineSystem<Spin>({
  name: 'spin-loop',
  init: { worker: 'running', ongoing: true, main: 'polling' },
  actions: [
    spin('finish', { actor: 'rank 0 worker', guard: (s) => s.worker === 'running', effect: (s) => ({ ...s, worker: 'done', ongoing: false }) }),
    spin('raise', { actor: 'rank 0 worker', guard: (s) => s.worker === 'running', effect: (s) => ({ ...s, worker: 'raised' as const }) }),
    spin('poll', { actor: 'rank 0 main', guard: (s) => s.main === 'polling' && s.ongoing, effect: (s) => s }),
    spin('use', { actor: 'rank 0 main', guard: (s) => s.main === 'polling' && !s.ongoing, effect: (s) => ({ ...s, main: 'used' }) }),
  ],
  terminal: (s) => s.main === 'used',
  liveness: { mainProgresses: eventually((s) => s.main === 'used') },
  fairness: 'weak',
});

interface Box {
  readonly x: number;
  readonly width: number;
}

async function box(page: Page, selector: string): Promise<Box> {
  const b = await page.locator(selector).first().boundingBox();
  if (!b) throw new Error(`${selector} is not visible`);
  return b;
}

const center = (b: Box) => b.x + b.width / 2;

/** Steps through the whole report with the keyboard, checking each step against the trace. */
async function walk(page: Page, trace: Trace, name: string): Promise<void> {
  const lanes = lanesOf(trace);
  const heads = await page.locator('.lane-head').evaluateAll((els) => els.map((e) => [e.getAttribute('data-lane'), e.getAttribute('data-lane-index')]));
  expect(heads).toEqual(lanes.names.map((n, i) => [n, String(i)]));
  // Every actor of the trace has its lane.
  for (const s of trace.steps) expect(lanes.names).toContain(s.actor);

  expect(await page.getAttribute('body', 'data-step')).toBe('0');
  expect(await page.locator('[data-changed="true"]').count()).toBe(0);

  for (const step of trace.steps) {
    await page.keyboard.press('ArrowRight');
    const i = step.index;
    expect(await page.getAttribute('body', 'data-step')).toBe(String(i));
    expect(await page.inputValue('#slider')).toBe(String(i));

    // The highlighted fields are the fields this step changed (those still present after it).
    const highlighted = await page.locator('#state [data-changed="true"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-path')));
    const expected = step.changes.filter((c) => c.after !== undefined).map((c) => c.path);
    expect(new Set(highlighted)).toEqual(new Set(expected));
    const listed = await page.locator('#changes [data-change-path]').evaluateAll((els) => els.map((e) => e.getAttribute('data-change-path')));
    expect(listed).toEqual(step.changes.map((c) => c.path));

    // The step sits in its actor's lane: same index, and geometrically inside that lane's column.
    const lane = lanes.names.indexOf(step.actor!);
    expect(await page.getAttribute('body', 'data-lane-index')).toBe(String(lane));
    const mark = page.locator(`.step[data-step-index="${i}"]`);
    expect(await mark.getAttribute('data-lane-index')).toBe(String(lane));
    expect(await mark.getAttribute('class')).toMatch(/\bcurrent\b/);
    const head = await box(page, `.lane-head[data-lane-index="${lane}"]`);
    const dot = await box(page, `.step[data-step-index="${i}"] .dot`);
    expect(Math.abs(center(dot) - center(head))).toBeLessThan(head.width / 2);

    // A message runs between the two lanes the trace implies.
    const view = lanes.steps[i - 1];
    if (view.from !== undefined && view.to !== undefined) {
      const msg = page.locator(`.msg[data-row="${i}"]`);
      expect(await msg.getAttribute('data-from-lane')).toBe(String(view.from));
      expect(await msg.getAttribute('data-to-lane')).toBe(String(view.to));
      const line = await box(page, `.msg[data-row="${i}"] .msg-line`);
      const from = await box(page, `.lane-head[data-lane-index="${view.from}"]`);
      const to = await box(page, `.lane-head[data-lane-index="${view.to}"]`);
      const [lo, hi] = view.from < view.to ? [from, to] : [to, from];
      expect(Math.abs(line.x - center(lo))).toBeLessThan(12);
      expect(Math.abs(line.x + line.width - center(hi))).toBeLessThan(12);
    }
    if (i === Math.min(trace.steps.length, 5)) await page.screenshot({ path: join(OUT, `${name}-step-${i}.png`), fullPage: true });
  }

  // Past the end stays at the end; back one step; Home returns to the initial state.
  await page.keyboard.press('ArrowRight');
  expect(await page.getAttribute('body', 'data-step')).toBe(String(trace.steps.length));
  await page.keyboard.press('ArrowLeft');
  expect(await page.getAttribute('body', 'data-step')).toBe(String(trace.steps.length - 1));
  await page.keyboard.press('Home');
  expect(await page.getAttribute('body', 'data-step')).toBe('0');
  expect(await page.locator('.step.current').count()).toBe(0);
}

if (!available && !required) {
  describe('HTML report in headless Chromium', () => {
    it.skip(SKIP_MESSAGE, () => {});
  });
  console.warn(`html-chromium.test.ts: ${SKIP_MESSAGE}`);
} else {
  describe('HTML report in headless Chromium', () => {
    let browser: Browser;
    const requests: string[] = [];

    beforeAll(async () => {
      if (!available) throw new Error(`${CHROMIUM} is absent but CI is set: CI must install it (apt-get install -y chromium)`);
      mkdirSync(OUT, { recursive: true });
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    });
    afterAll(async () => {
      await browser?.close();
    });

    async function open(input: ReportInput, name: string): Promise<Page> {
      const file = join(OUT, `${name}.html`);
      writeFileSync(file, renderHtml(input));
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(pathToFileURL(file).href);
      await page.waitForSelector('body[data-step="0"] #state .node');
      expect(errors).toEqual([]);
      // Self-contained: the only thing loaded is the file itself.
      expect(requests.filter((u) => u !== pathToFileURL(file).href)).toEqual([]);
      requests.length = 0;
      return page;
    }

    it('steps through a send/receive counterexample (KV double buffer) with the keyboard', async () => {
      const input = inputOf('kv-double-buffer:reuse-on-post', variantOf(kv, 'reuse-on-post'));
      const page = await open(input, 'kv-double-buffer');
      const lanes = lanesOf(input.result.trace);
      expect(lanes.names).toEqual(['rank 0 prefill', 'rank 1 decode']);
      await walk(page, input.result.trace, 'kv-double-buffer');
      // The receive that corrupts the cache: decode's kv[0] becomes chunk 2's data, highlighted at step 5.
      await page.keyboard.press('End');
      expect(await page.getAttribute('body', 'data-step')).toBe('5');
      expect(await page.locator('#state [data-changed="true"][data-path="kv[0]"]').textContent()).toBe('2');
      await page.screenshot({ path: join(OUT, 'kv-double-buffer-end.png'), fullPage: true });
      await page.close();
    });

    it('marks the cycle of a lasso and keeps lanes per actor', async () => {
      const input = inputOf('spin-loop', spinLoop);
      expect(input.result.trace.loopStart).toBe(1);
      const page = await open(input, 'spin-loop');
      expect(await page.locator('.num.in-loop').count()).toBe(input.result.trace.steps.length - 1);
      await expect(page.locator('.loop-note').textContent()).resolves.toMatch(/cycle/);
      await walk(page, input.result.trace, 'spin-loop');
      await page.close();
    });

    it.skipIf(builtinProtocols.length === 0)('steps through a built-in protocol with several ranks, threads and streams', async () => {
      // The first violated variant (in registry order) whose counterexample has three lanes or more.
      let chosen: ReportInput | undefined;
      search: for (const entry of builtinProtocols) {
        const p = await entry.load();
        for (const v of p.variants) {
          if (v.expect.verdict !== 'violated') continue;
          const system = v.build(v.config ?? p.configs.check);
          const result = check(system, { timeLimit: 60 });
          if (result.verdict !== 'violated' || !result.trace || result.trace.steps.length > 80) continue;
          if (lanesOf(result.trace).names.length >= 3) {
            chosen = { title: `${p.name}:${v.name}`, summary: v.summary, result: result as ReportInput['result'], system };
            break search;
          }
        }
      }
      expect(chosen, 'no violated built-in variant has three lanes or more').toBeDefined();
      const page = await open(chosen!, 'builtin');
      await walk(page, chosen!.result.trace, 'builtin');
      await page.close();
    });

    it('the slider selects a step too', async () => {
      const input = inputOf('kv-double-buffer:reuse-on-post', variantOf(kv, 'reuse-on-post'));
      const page = await open(input, 'kv-slider');
      await page.locator('#slider').evaluate((el, v) => {
        (el as unknown as { value: string }).value = v;
        el.dispatchEvent(new Event('input', { bubbles: true }));
      }, '3');
      expect(await page.getAttribute('body', 'data-step')).toBe('3');
      const highlighted = await page.locator('#state [data-changed="true"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-path')));
      expect(new Set(highlighted)).toEqual(new Set(input.result.trace.steps[2].changes.filter((c) => c.after !== undefined).map((c) => c.path)));
      await page.close();
    });
  });
}
