/**
 * A counterexample as one self-contained HTML file (no network: inline style and script, and a
 * Content-Security-Policy that forbids every fetch): the actors' lanes with each step drawn in its actor's
 * lane (and its message to another lane), a step slider and keyboard stepping (ArrowRight / ArrowLeft, Home /
 * End), the fields the selected step changed highlighted, and the full state after the selected step.
 *
 * Testable by attribute: `body[data-step]` is the selected step (0 = initial state), `body[data-lane-index]`
 * its actor's lane; lane headers carry `data-lane` / `data-lane-index`; each step's marker carries
 * `data-step-index`, `data-lane-index` and, for a message, `data-from-lane` / `data-to-lane`; in the state
 * view every value carries `data-path` (the path as traces write it, `rank[1].flag`), and the values the
 * selected step changed carry `data-changed="true"`.
 */
import { show } from '../data.ts';
import { formatLabel } from '../system.ts';
import { type ReportInput, propertyLine, stepTitle } from './input.ts';
import { lanesOf } from './lanes.ts';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON that can sit inside a <script> element: no `</script>`, `<!--` or line separators can close or confuse it. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const ARROW_GLYPH: Record<string, string> = { send: '▶', message: '▶', record: '▷', receive: '▶', wait: '▷' };

export function renderHtml(input: ReportInput): string {
  const r = input.result;
  const t = r.trace;
  const lanes = lanesOf(t);
  const names = lanes.names.length > 0 ? lanes.names : ['system'];
  const n = t.steps.length;
  const col = (lane: number) => lane + 2;

  const heads = names
    .map((name, i) => `<div class="lane-head" data-lane="${escapeHtml(name)}" data-lane-index="${i}" style="grid-column:${col(i)};grid-row:1">${escapeHtml(name)}</div>`)
    .join('\n');
  const lifelines = names
    .map((_, i) => `<div class="lifeline" aria-hidden="true" style="grid-column:${col(i)};grid-row:2 / span ${n + 1}"></div>`)
    .join('\n');

  const rows: string[] = [];
  rows.push(
    `<div class="num row-0" data-row="0" style="grid-column:1;grid-row:2">0</div>` +
      `<div class="init row-0" data-row="0" style="grid-column:2 / span ${names.length};grid-row:2">initial state</div>`,
  );
  for (const v of lanes.steps) {
    const s = v.step;
    const row = s.index + 2;
    const cls = `row-${s.index}${v.inLoop ? ' in-loop' : ''}`;
    const title = escapeHtml(stepTitle(s));
    const label = escapeHtml(formatLabel(s));
    const changed = s.changes.length === 0 ? 'no field changed' : `${s.changes.length} field${s.changes.length === 1 ? '' : 's'} changed`;
    rows.push(`<div class="num ${cls}" data-row="${s.index}" style="grid-column:1;grid-row:${row}">${s.index}${v.inLoop ? ' ↻' : ''}</div>`);
    if (v.from !== undefined && v.to !== undefined) {
      const lo = Math.min(v.from, v.to);
      const hi = Math.max(v.from, v.to);
      const dir = v.to > v.from ? 'ltr' : 'rtl';
      rows.push(
        `<div class="msg ${dir} kind-${v.kind} ${cls}" data-row="${s.index}" data-from-lane="${v.from}" data-to-lane="${v.to}" ` +
          `style="grid-column:${col(lo)} / ${col(hi) + 1};grid-row:${row};margin:0 calc(100% / ${2 * (hi - lo + 1)})" title="${label}">` +
          `<span class="msg-label">${title}</span><span class="msg-line"><span class="msg-head">${ARROW_GLYPH[v.kind] ?? '▶'}</span></span></div>`,
      );
    } else if (v.span && v.span.length > 1) {
      const lo = Math.min(...v.span);
      const hi = Math.max(...v.span);
      rows.push(
        `<div class="collective ${cls}" data-row="${s.index}" style="grid-column:${col(lo)} / ${col(hi) + 1};grid-row:${row}" title="${label}">${title}</div>`,
      );
    }
    const local = v.from === undefined && !(v.span && v.span.length > 1);
    rows.push(
      `<div class="step ${local ? 'local' : 'end'} ${cls}" data-row="${s.index}" data-step-index="${s.index}" data-lane-index="${v.lane}" ` +
        `data-actor="${escapeHtml(s.actor ?? '')}" data-kind="${v.kind}"` +
        (v.from !== undefined ? ` data-from-lane="${v.from}" data-to-lane="${v.to}"` : '') +
        ` style="grid-column:${col(v.lane)};grid-row:${row}" title="${label}">` +
        `<span class="dot"></span>${local ? `<span class="step-label">${title}</span>` : ''}<span class="step-changes">${changed}</span></div>`,
    );
  }

  const data = {
    title: input.title,
    lanes: names,
    loopStart: t.loopStart ?? null,
    initial: t.initial,
    steps: lanes.steps.map((v) => ({
      index: v.step.index,
      title: stepTitle(v.step),
      label: formatLabel(v.step),
      actor: v.step.actor ?? null,
      lane: v.lane,
      kind: v.kind,
      changes: v.step.changes.map((c) => ({
        path: c.path,
        before: c.before === undefined ? null : show(c.before, 200),
        after: c.after === undefined ? null : show(c.after, 200),
        removed: c.after === undefined,
        added: c.before === undefined,
      })),
      state: v.step.state,
    })),
  };

  const stuck = r.stuck && r.stuck.length > 0 ? `<ul class="stuck">${r.stuck.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>` : '';
  let loopNote = '';
  if (t.loopStart !== undefined) {
    const first = t.loopStart + 1;
    loopNote =
      t.loopStart === n
        ? `<p class="loop-note">↻ After step ${n} no action is enabled any more: the run stays in this state forever.</p>`
        : `<p class="loop-note">↻ ${first === n ? `Step ${n} forms` : `Steps ${first} to ${n} form`} a cycle: after step ${n} the run is back in the state after step ${t.loopStart}, and repeats ${first === n ? 'it' : 'them'} forever.</p>`;
  }

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>Counterexample: ${escapeHtml(input.title)}</title>
<style>${STYLE}</style>
</head>
<body data-step="0" data-steps="${n}" data-lane-index="">
<header>
<h1>Counterexample: ${escapeHtml(input.title)}</h1>
<p class="property"><strong>Property that failed:</strong> ${escapeHtml(propertyLine(input))}</p>
<p class="message">${escapeHtml(r.message ?? '')}</p>
${input.summary ? `<p class="summary">${escapeHtml(input.summary)}</p>` : ''}
${stuck}
${loopNote}
</header>
<nav id="controls" aria-label="steps">
<button id="prev" type="button" title="previous step (ArrowLeft)">◀</button>
<input id="slider" type="range" min="0" max="${n}" step="1" value="0" aria-label="step">
<button id="next" type="button" title="next step (ArrowRight)">▶</button>
<span id="position">step 0 of ${n}</span>
<span class="hint">ArrowLeft / ArrowRight step, Home / End jump</span>
</nav>
<main>
<section id="lanes" aria-label="lanes" style="grid-template-columns:3.5em repeat(${names.length}, minmax(11em, 1fr));grid-template-rows:auto repeat(${n + 1}, minmax(2.4em, auto))">
${heads}
${lifelines}
${rows.join('\n')}
</section>
<section id="detail">
<h2 id="step-title">Initial state</h2>
<ul id="changes"></ul>
<h3>State after this step</h3>
<div id="state"></div>
</section>
</main>
<script id="trace-data" type="application/json">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

const STYLE = String.raw`
:root { --bg: #fff; --fg: #1d2330; --muted: #6b7280; --lane: #d7dbe3; --cur: #fff3c4; --hl: #ffd54a; --msg: #2a6fdb; --loop: #8a4fd8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 12px 20px 4px; border-bottom: 1px solid var(--lane); }
h1 { font-size: 18px; margin: 0 0 6px; }
header p { margin: 2px 0; }
.message, .summary { color: var(--muted); }
.loop-note { color: var(--loop); }
.stuck { margin: 4px 0; color: #a33; }
#controls { position: sticky; top: 0; z-index: 5; display: flex; gap: 10px; align-items: center; padding: 8px 20px; background: #f6f7f9; border-bottom: 1px solid var(--lane); }
#slider { flex: 1; max-width: 520px; }
.hint { color: var(--muted); font-size: 12px; }
main { display: grid; grid-template-columns: minmax(0, 1fr) minmax(300px, 34%); gap: 0; align-items: start; }
#lanes { display: grid; position: relative; padding: 0 12px 24px; overflow: auto; max-height: calc(100vh - 46px); column-gap: 0; }
.lane-head { position: sticky; top: 0; z-index: 3; text-align: center; font-weight: 600; padding: 6px 4px; background: #eef1f6; border: 1px solid var(--lane); border-radius: 6px; margin: 8px 6px 6px; box-shadow: 0 -8px 0 #fff; }
.lifeline { justify-self: center; width: 0; border-left: 2px dashed var(--lane); z-index: 0; }
.num { color: var(--muted); text-align: right; padding: 8px 8px 0 0; font-variant-numeric: tabular-nums; }
.init { align-self: center; text-align: center; color: var(--muted); font-style: italic; z-index: 1; }
.step { position: relative; z-index: 2; display: flex; flex-direction: column; align-items: center; justify-content: center; text-align: center; padding: 4px 6px; }
.step .dot { width: 12px; height: 12px; border-radius: 50%; background: var(--fg); border: 2px solid var(--bg); flex: none; }
.step-label { background: #fff; border: 1px solid var(--lane); border-radius: 6px; padding: 2px 6px; margin-top: 2px; max-width: 100%; overflow-wrap: anywhere; }
.step-changes { font-size: 11px; color: var(--muted); }
.step.end .step-changes { margin-top: 18px; }
.msg { position: relative; z-index: 1; align-self: center; display: flex; flex-direction: column; color: var(--msg); }
.msg-label { text-align: center; font-size: 12px; overflow-wrap: anywhere; background: rgba(255,255,255,.85); margin: 0 auto; padding: 0 4px; }
.msg-line { position: relative; display: block; height: 0; border-top: 2px solid var(--msg); margin: 2px 0 14px; }
.msg.kind-receive .msg-line, .msg.kind-wait .msg-line { border-top-style: dashed; }
.msg-head { position: absolute; top: -11px; font-size: 14px; line-height: 1; }
.msg.ltr .msg-head { right: -6px; }
.msg.rtl .msg-head { left: -6px; transform: scaleX(-1); }
.collective { align-self: center; text-align: center; color: var(--msg); border: 1px dashed var(--msg); border-radius: 6px; margin: 0 6px; padding: 2px; z-index: 1; font-size: 12px; }
.in-loop.num { color: var(--loop); font-weight: 600; }
.future { opacity: .28; }
.current.step .dot { background: var(--hl); border-color: var(--fg); transform: scale(1.5); }
.current.step .step-label { background: var(--cur); border-color: var(--fg); }
.current.num { color: var(--fg); font-weight: 700; }
.current.msg { color: #0b3ea8; font-weight: 600; }
.current.init { color: var(--fg); font-weight: 600; }
#detail { position: sticky; top: 46px; max-height: calc(100vh - 46px); overflow: auto; padding: 10px 16px; border-left: 1px solid var(--lane); }
#detail h2 { font-size: 15px; margin: 4px 0 8px; }
#detail h3 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
#changes { margin: 0; padding-left: 18px; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
#changes .arrow { color: var(--muted); }
#state { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.node { padding-left: 14px; border-left: 1px solid transparent; }
.node > .key { color: #7a3e9d; }
.node > .val { color: #0b5d3b; }
.node.changed > .val, .node.changed > .key, .node.elem.changed { background: var(--hl); border-radius: 3px; }
.node.elem { padding: 0; border: 0; display: inline; }
.node.changed { border-left-color: #e0a800; background: #fff8dc; }
.node.has-changed { border-left-color: #f3d36b; }
.root { padding-left: 0; }
.node.elem.changed { background: var(--hl); border: 0; }
`;

const SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('trace-data').textContent);
  var n = data.steps.length;
  var cur = 0;
  var slider = document.getElementById('slider');
  var ident = /^[A-Za-z_$][\w$]*$/;
  function join(base, key) {
    var k = ident.test(key) ? key : JSON.stringify(key);
    if (k === key) return base ? base + '.' + key : key;
    return base + '[' + k + ']';
  }
  function showValue(v) {
    if (v === null) return 'null';
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v !== 'object') return String(v);
    if (Array.isArray(v)) return '[' + v.map(showValue).join(', ') + ']';
    return '{' + Object.keys(v).map(function (k) { return k + ': ' + showValue(v[k]); }).join(', ') + '}';
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function mark(node, path, changed) {
    node.setAttribute('data-path', path);
    if (changed.has(path)) {
      node.classList.add('changed');
      node.setAttribute('data-changed', 'true');
    }
  }
  function isScalar(x) { return x === null || typeof x !== 'object'; }
  function renderNode(v, path, key, changed, parent) {
    var node = el('div', 'node');
    if (key !== null) node.appendChild(el('span', 'key', key));
    if (key !== null) node.appendChild(document.createTextNode(': '));
    if (isScalar(v)) {
      node.appendChild(el('span', 'val', showValue(v)));
    } else if (Array.isArray(v) && v.every(isScalar) && showValue(v).length <= 60) {
      // A short array of scalars on one line; each element still carries its own path.
      node.appendChild(document.createTextNode('['));
      v.forEach(function (x, i) {
        if (i > 0) node.appendChild(document.createTextNode(', '));
        var e = el('span', 'node elem val', showValue(x));
        mark(e, path + '[' + i + ']', changed);
        node.appendChild(e);
      });
      node.appendChild(document.createTextNode(']'));
    } else if (Array.isArray(v)) {
      node.appendChild(el('span', 'punct', v.length === 0 ? '[]' : '[' + v.length + ']'));
      v.forEach(function (x, i) { renderNode(x, path + '[' + i + ']', '[' + i + ']', changed, node); });
    } else {
      if (Object.keys(v).length === 0) node.appendChild(el('span', 'val', '{}'));
      Object.keys(v).forEach(function (k) { renderNode(v[k], join(path, k), k, changed, node); });
    }
    mark(node, path, changed);
    parent.appendChild(node);
    return node;
  }
  function markAncestors(root) {
    root.querySelectorAll('.changed').forEach(function (c) {
      for (var p = c.parentElement; p && p !== root; p = p.parentElement) if (p.classList.contains('node')) p.classList.add('has-changed');
    });
  }
  function go(i) {
    i = Math.max(0, Math.min(n, i));
    cur = i;
    var step = i === 0 ? null : data.steps[i - 1];
    document.body.setAttribute('data-step', String(i));
    document.body.setAttribute('data-lane-index', step ? String(step.lane) : '');
    document.body.setAttribute('data-actor', step && step.actor !== null ? step.actor : '');
    slider.value = String(i);
    document.getElementById('position').textContent = 'step ' + i + ' of ' + n + (data.loopStart !== null && i > data.loopStart ? ' (in the cycle)' : '');
    document.querySelectorAll('[data-row]').forEach(function (e) {
      var r = Number(e.getAttribute('data-row'));
      e.classList.toggle('current', r === i);
      e.classList.toggle('future', r > i);
    });
    var title = document.getElementById('step-title');
    title.textContent = step ? 'Step ' + step.index + (step.actor !== null ? ' [' + step.actor + ']' : '') + ': ' + step.title : 'Initial state';
    if (step && step.title !== step.label) title.appendChild(el('span', 'label', '  (' + step.label + ')'));
    var list = document.getElementById('changes');
    list.textContent = '';
    var changed = new Set();
    if (step) {
      if (step.changes.length === 0) list.appendChild(el('li', 'none', 'no field changed'));
      step.changes.forEach(function (c) {
        changed.add(c.path);
        var li = el('li', 'change');
        li.setAttribute('data-change-path', c.path);
        li.appendChild(el('code', 'path', c.path || '(state)'));
        li.appendChild(document.createTextNode(': ' + (c.added ? '(absent)' : c.before)));
        li.appendChild(el('span', 'arrow', ' → '));
        li.appendChild(document.createTextNode(c.removed ? '(removed)' : c.after));
        list.appendChild(li);
      });
    }
    var box = document.getElementById('state');
    box.textContent = '';
    var root = renderNode(step ? step.state : data.initial, '', null, changed, box);
    root.classList.add('root');
    markAncestors(box);
    var mark = document.querySelector('.step.current');
    if (mark && mark.scrollIntoView) mark.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }
  document.addEventListener('keydown', function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var to = null;
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown') to = cur + 1;
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') to = cur - 1;
    else if (e.key === 'Home') to = 0;
    else if (e.key === 'End') to = n;
    if (to === null) return;
    e.preventDefault();
    go(to);
  });
  slider.addEventListener('input', function () { go(Number(slider.value)); });
  document.getElementById('prev').addEventListener('click', function () { go(cur - 1); });
  document.getElementById('next').addEventListener('click', function () { go(cur + 1); });
  document.querySelectorAll('[data-row]').forEach(function (e) {
    e.addEventListener('click', function () { go(Number(e.getAttribute('data-row'))); });
  });
  go(0);
})();
`;
