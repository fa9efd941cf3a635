// The playground page: the editor, the problems list and the panels. The compiler and the
// kernels run in two Web Workers; this thread only edits, draws and routes messages.
import { basicSetup, EditorView } from 'codemirror';
import { EditorSelection } from '@codemirror/state';
import { lintGutter } from '@codemirror/lint';
import { languageServer } from './lsp.js';
import EXAMPLES from 'virtual:peer-examples';
import { expertsChart, lineChart, lossChart, usageHistory } from '../train/plots.js';
import { benchChart } from './charts.js';
import { peerLanguage } from './highlight.js';
import { type BackendAvailability, type BenchRow, type BrowserBackend, type CompilerReply, type CompilerRequest, type KernelReply, type KernelRequest, type PageDiagnostic, type TrainPoint } from './protocol.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const FILE = 'playground.peer';
const STORE = 'peerc.playground.';
const CHECK_DELAY_MS = 250;
/** A check that takes longer is stopped (the worker is replaced): the page stays usable on any input. */
const CHECK_WATCHDOG_MS = 20_000;

/** What tests and curious users can inspect from the console. */
const hooks = {
  readyAt: NaN,
  checks: 0,
  lastChecked: undefined as Extract<CompilerReply, { kind: 'checked' }> | undefined,
  benchRows: [] as BenchRow[],
  benchDone: false,
  trainPoints: [] as TrainPoint[],
  trainStopped: undefined as { step: number; finished: boolean } | undefined,
  lastRun: undefined as Extract<KernelReply, { kind: 'ran' }> | undefined,
  errors: [] as string[],
  backends: [] as BackendAvailability[],
  view: undefined as EditorView | undefined,
  /** The diagnostic counts the language server published, in order. */
  lspDiagnostics: [] as number[],
};
(window as unknown as { __peerc: typeof hooks }).__peerc = hooks;

// ---- program text: URL (#code=...) over local storage over the default example ----
const b64url = {
  encode: (s: string) => {
    // In chunks: spreading a large program's bytes as arguments would overflow the call stack.
    const bytes = new TextEncoder().encode(s);
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
  decode: (s: string) => new TextDecoder().decode(Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0))),
};
function initialText(): string {
  const hash = new URLSearchParams(location.hash.slice(1));
  const code = hash.get('code');
  if (code) {
    try {
      return b64url.decode(code);
    } catch {
      /* a damaged link: fall through */
    }
  }
  const example = hash.get('example');
  if (example && EXAMPLES[example]) return EXAMPLES[example]!;
  return localStorage.getItem(STORE + 'source') ?? EXAMPLES['recall'] ?? Object.values(EXAMPLES)[0]!;
}

// ---- the editor ----
let docVersion = 0;
let saveTimer: ReturnType<typeof setTimeout> | undefined;
// The editor's diagnostics, hover, completion and the rest come from the language server (the
// one `peerc lsp` runs) in its own worker; the compiler worker below feeds the panels.
const server = languageServer(`file:///${FILE}`, (n) => hooks.lspDiagnostics.push(n));
const view = new EditorView({
  doc: initialText(),
  parent: $('editor'),
  extensions: [
    basicSetup,
    peerLanguage,
    server.extension,
    lintGutter(),
    EditorView.lineWrapping,
    EditorView.updateListener.of((u) => {
      if (!u.docChanged) return;
      docVersion++;
      showEditedExample();
      scheduleCheck();
      clearTimeout(saveTimer);
      saveTimer = setTimeout(() => {
        try {
          localStorage.setItem(STORE + 'source', view.state.doc.toString());
        } catch {
          setStatus('the program is too large for local storage: it will not survive a reload', 'bad');
        }
      }, 500);
    }),
  ],
});
hooks.view = view;
const source = () => view.state.doc.toString();

// ---- status, tabs, the stale banner ----
function setStatus(text: string, cls: '' | 'ok' | 'bad' = '') {
  const s = $('status');
  s.textContent = text;
  s.className = cls;
}
function showTab(tab: string) {
  for (const b of document.querySelectorAll<HTMLButtonElement>('#tabs button')) b.classList.toggle('active', b.dataset.tab === tab);
  for (const p of document.querySelectorAll<HTMLElement>('.panel')) p.classList.toggle('active', p.id === `panel-${tab}`);
  localStorage.setItem(STORE + 'tab', tab);
}
for (const b of document.querySelectorAll<HTMLButtonElement>('#tabs button')) b.onclick = () => showTab(b.dataset.tab!);
showTab(localStorage.getItem(STORE + 'tab') ?? 'info');

// ---- the compiler worker: checks as you type ----
let compiler: Worker;
let inFlight: { version: number; timer: ReturnType<typeof setTimeout> } | undefined;
let checkTimer: ReturnType<typeof setTimeout> | undefined;
/** The last program that compiled with a model: Run, Bench and Train use it; its panels stay. */
let lastGood: { source: string; reply: Extract<CompilerReply, { kind: 'checked' }> } | undefined;
let emitWaiter: ((r: CompilerReply) => void) | undefined;

function startCompiler() {
  compiler = new Worker(new URL('./compiler-worker.js', import.meta.url), { type: 'module' });
  compiler.onmessage = (e: MessageEvent<CompilerReply>) => onCompilerReply(e.data);
  compiler.onerror = (e) => {
    hooks.errors.push(String(e.message));
    setStatus(`the compiler worker failed: ${e.message}`, 'bad');
  };
}
startCompiler();

function scheduleCheck() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(sendCheck, CHECK_DELAY_MS);
}
function sendCheck() {
  if (inFlight) return; // the reply sends the newest version
  const version = docVersion;
  const text = source();
  inFlight = {
    version,
    timer: setTimeout(() => {
      compiler.terminate();
      startCompiler();
      inFlight = undefined;
      showProblems([{ code: 'PEER0004', message: `the checker did not finish within ${CHECK_WATCHDOG_MS / 1000} s on this text (${text.length.toLocaleString('en-US')} characters) and was stopped`, from: null, to: null, line: null, col: null, rendered: '' }]);
      setStatus('check stopped: the text is too large or too deep to check in time', 'bad');
    }, CHECK_WATCHDOG_MS),
  };
  setStatus('checking…');
  compiler.postMessage({ kind: 'check', version, source: text, file: FILE } satisfies CompilerRequest);
}

function onCompilerReply(r: CompilerReply) {
  if (r.kind === 'emitted' || (r.kind === 'failed' && emitWaiter && r.version < 0)) {
    emitWaiter?.(r);
    emitWaiter = undefined;
    return;
  }
  if (inFlight && r.version === inFlight.version) {
    clearTimeout(inFlight.timer);
    inFlight = undefined;
  }
  if (r.version !== docVersion) {
    sendCheck(); // the text changed while this check ran
    return;
  }
  if (r.kind === 'failed') {
    showProblems([{ code: 'internal', message: r.message, from: null, to: null, line: null, col: null, rendered: r.message }]);
    setStatus('internal error', 'bad');
    return;
  }
  if (r.kind !== 'checked') return;
  hooks.checks++;
  hooks.lastChecked = r;
  showProblems(r.diagnostics);
  if (r.diagnostics.length) {
    setStatus(`✗ ${r.diagnostics.length} error${r.diagnostics.length === 1 ? '' : 's'}`, 'bad');
  } else if (r.noModel) {
    setStatus(`✓ ok in ${r.ms.toFixed(0)} ms · no model (add one to run it)`, 'ok');
  } else {
    setStatus(`✓ ok in ${r.ms.toFixed(0)} ms · @${r.info!.entry} · ${r.info!.parameters.toLocaleString('en-US')} parameters`, 'ok');
  }
  if (!r.diagnostics.length && r.info) {
    const before = lastGood?.reply.info?.train.task;
    lastGood = { source: source(), reply: r };
    showCompiled(r);
    // The program's task, unless the user chose one for this program already.
    if (r.info.train.task !== before) {
      $<HTMLSelectElement>('train-task').value = r.info.train.task;
      $('train-task').dispatchEvent(new Event('change'));
    }
    trainPlaceholders();
  }
  const stale = $('stale');
  stale.hidden = !(r.diagnostics.length && lastGood);
  stale.textContent = 'The program has errors: the panels show the last version that compiled.';
  if (Number.isNaN(hooks.readyAt)) hooks.readyAt = performance.now();
}

function showProblems(ds: PageDiagnostic[]) {
  const list = $('problems');
  list.replaceChildren(...ds.map((d) => {
    const row = document.createElement('div');
    row.className = 'problem';
    row.title = d.rendered;
    const code = document.createElement('span');
    code.className = 'code';
    code.textContent = d.code;
    row.append(d.line !== null && d.from !== null ? `${d.line}:${d.col} ` : '', code, ` ${d.message}`);
    if (d.from !== null) row.onclick = () => {
      view.dispatch({ selection: EditorSelection.range(d.from!, d.to!), scrollIntoView: true });
      view.focus();
    };
    return row;
  }));
}

function showCompiled(r: Extract<CompilerReply, { kind: 'checked' }>) {
  $('info').textContent = r.info!.text;
  $('fusion').textContent = r.noModel ? 'no model' : (r.fusion ?? []).join('\n') || 'no fusion patterns in this program';
  const sel = $<HTMLSelectElement>('ir-pass');
  const chosen = sel.value || 'fuse-dce';
  sel.replaceChildren(...(r.ir ?? []).map((d) => new Option(d.pass, d.pass)));
  sel.value = (r.ir ?? []).some((d) => d.pass === chosen) ? chosen : 'fuse-dce';
  showIR();
}
function showIR() {
  const pass = $<HTMLSelectElement>('ir-pass').value;
  $('ir').textContent = lastGood?.reply.ir?.find((d) => d.pass === pass)?.text ?? 'no IR (the program has no model)';
}
$<HTMLSelectElement>('ir-pass').onchange = showIR;

// ---- examples, backends, sharing, the emitted module ----
const examples = $<HTMLSelectElement>('examples');
examples.append(new Option('(choose an example)', ''), ...Object.keys(EXAMPLES).sort().map((n) => new Option(`${n}.peer`, n)));
examples.onchange = () => {
  if (EXAMPLES[examples.value] !== undefined) openExample(examples.value);
};
/** The leading comment of an example, as its description. */
function description(text: string): string {
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('#')) break;
    lines.push(line.replace(/^#\s?/, ''));
  }
  return lines.join(' ');
}
function openExample(name: string) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: EXAMPLES[name]! } });
  examples.value = name;
  showEditedExample();
}
/** The dropdown names an example only while the editor holds it unchanged; after an edit it says whose edit. */
let openedExample = '';
function showEditedExample() {
  const text = source();
  const same = Object.keys(EXAMPLES).find((n) => EXAMPLES[n] === text);
  if (same) openedExample = same;
  examples.value = same ?? '';
  examples.options[0]!.text = same ? '(choose an example)' : openedExample ? `(${openedExample}.peer, edited)` : '(your program)';
}
showEditedExample();
$('gallery').replaceChildren(...Object.keys(EXAMPLES).sort().map((name) => {
  const card = document.createElement('div');
  card.className = 'card';
  card.dataset.example = name;
  const h = document.createElement('h4');
  h.textContent = `${name}.peer`;
  const p = document.createElement('p');
  p.textContent = description(EXAMPLES[name]!);
  card.append(h, p);
  card.onclick = () => {
    openExample(name);
    showTab('info');
  };
  return card;
}));
$('share').onclick = async () => {
  const url = `${location.origin}${location.pathname}#code=${b64url.encode(source())}`;
  history.replaceState(null, '', url);
  await navigator.clipboard?.writeText(url).catch(() => undefined);
  setStatus('link copied (the program is in the URL)', 'ok');
};
function download(name: string, data: BlobPart, type = 'application/octet-stream') {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([data], { type }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
$('download-module').onclick = () => {
  if (!lastGood || lastGood.reply.noModel) return setStatus('the program must compile and have a model to emit its module', 'bad');
  setStatus('emitting the TypeScript module (loads ts-morph once)…');
  emitWaiter = (r) => {
    if (r.kind === 'emitted') {
      download(r.fileName, r.text, 'text/typescript');
      setStatus(`emitted ${r.fileName}`, 'ok');
    } else if (r.kind === 'failed') setStatus(r.message, 'bad');
  };
  compiler.postMessage({ kind: 'emit', version: -1, source: lastGood.source, file: FILE, lowering: 'fused' } satisfies CompilerRequest);
};

// ---- the kernel worker ----
const kernels = new Worker(new URL('./kernel-worker.js', import.meta.url), { type: 'module' });
let nextId = 1;
const waiting = new Map<number, (r: KernelReply) => void>();
kernels.onmessage = (e: MessageEvent<KernelReply>) => waiting.get(e.data.id)?.(e.data);
kernels.onerror = (e) => {
  hooks.errors.push(String(e.message));
  setStatus(`the kernel worker failed: ${e.message}`, 'bad');
};
/** A request without its id (distributed over the union, so each kind keeps its fields). */
type Unsent<T> = T extends unknown ? Omit<T, 'id'> : never;
function ask(req: Unsent<KernelRequest>, on: (r: KernelReply) => void): number {
  const id = nextId++;
  waiting.set(id, on);
  kernels.postMessage({ ...req, id } as KernelRequest);
  return id;
}
function errorText(el: HTMLElement, message: string) {
  const d = document.createElement('div');
  d.className = 'error';
  d.textContent = message;
  el.replaceChildren(d);
  hooks.errors.push(message);
}
/** The program Run, Bench and Train use; null (with a message) when it does not compile now. */
function runnable(out: HTMLElement): string | null {
  const now = hooks.lastChecked;
  if (!lastGood || !now || now.diagnostics.length || lastGood.reply.noModel) {
    errorText(out, now?.diagnostics.length ? `fix the ${now.diagnostics.length} error(s) in the program first` : 'the program needs a model to run');
    return null;
  }
  return lastGood.source;
}

const backendSelect = $<HTMLSelectElement>('backend');
ask({ kind: 'backends' }, (r) => {
  if (r.kind !== 'backends') return;
  hooks.backends = r.list;
  backendSelect.replaceChildren(...r.list.map((b) => {
    const o = new Option(b.unavailable ? `${b.backend} (unavailable)` : b.backend, b.backend);
    o.disabled = b.unavailable !== null;
    o.title = b.unavailable ?? b.device;
    return o;
  }));
  const saved = localStorage.getItem(STORE + 'backend');
  const first = r.list.find((b) => !b.unavailable && (b.backend === saved)) ?? r.list.find((b) => b.backend === 'wasm-simd' && !b.unavailable) ?? r.list.find((b) => !b.unavailable);
  backendSelect.value = first?.backend ?? 'cpu';
  const box = $('bench-backends');
  box.replaceChildren(...r.list.map((b) => {
    const label = document.createElement('label');
    label.className = b.unavailable ? 'unavailable' : '';
    label.title = b.unavailable ?? b.device;
    const c = document.createElement('input');
    c.type = 'checkbox';
    c.value = b.backend;
    c.checked = b.unavailable === null;
    c.disabled = b.unavailable !== null;
    label.append(c, ` ${b.backend}`);
    return label;
  }));
  if (!r.isolated) box.append(' (not cross-origin isolated: no wasm threads)');
});
backendSelect.onchange = () => localStorage.setItem(STORE + 'backend', backendSelect.value);
const chosenBackend = () => backendSelect.value as BrowserBackend;
const num = (id: string) => Number($<HTMLInputElement>(id).value);
/** A training field the user filled in, or undefined (the program's setting or the default applies). */
const given = (id: string) => ($<HTMLInputElement>(id).value.trim() === '' ? undefined : num(id));
/** Shows what an empty training field means for this program and task. */
function trainPlaceholders() {
  const d = lastGood?.reply.info?.train?.perTask[$<HTMLSelectElement>('train-task').value as 'recall' | 'text'];
  const fields: [string, number | undefined][] = [['train-steps', d?.steps], ['train-batch', d?.batch], ['train-seq', d?.seq], ['train-lr', d?.lr], ['train-eval', d?.evalEvery]];
  for (const [id, v] of fields) $<HTMLInputElement>(id).placeholder = v === undefined ? '' : String(v);
}

// Run
$('run-go').onclick = () => {
  const out = $('run-out');
  const src = runnable(out);
  if (src === null) return;
  const params = lastGood?.reply.info?.parameters ?? 0;
  out.textContent = `running… ${params > 5e7 ? `(seeding ${params.toLocaleString('en-US')} weights first: the paper's 1M-expert layer takes about 40 s here)` : ''}`;
  ask({ kind: 'run', source: src, file: FILE, backend: chosenBackend(), lowering: $<HTMLSelectElement>('run-lowering').value as 'fused' | 'naive', seed: num('run-seed'), tokens: num('run-tokens') }, (r) => {
    if (r.kind === 'error') return errorText(out, r.message);
    if (r.kind !== 'ran') return;
    hooks.lastRun = r;
    const f = (v: number) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toFixed(4));
    const ref = 'maxError' in r.reference ? `max error vs the float64 interpreter: ${r.reference.maxError.toExponential(2)} of the output's scale` : `reference: ${r.reference.skipped}`;
    out.textContent = [`ran on ${r.detail} in ${r.ms.toFixed(2)} ms (after a first call that compiled the kernels)`, ref, '',
      ...r.outputs.map((o, i) => `output ${i}: f32[${o.shape.join(', ')}]  min ${f(o.min)}  max ${f(o.max)}  mean ${f(o.mean)}  std ${f(o.std)}\n  first values: ${o.head.map(f).join(', ')}`),
      '', 'per kernel (ms):', ...r.timings.map(([k, ms]) => `  ${ms.toFixed(3).padStart(9)}  ${k}`)].join('\n');
    $('kernels-note').textContent = `${r.kernels.length} kernels of the last Run (${r.detail}):`;
    $('kernels').textContent = r.kernels.join('\n\n');
  });
};

// Bench
$('bench-go').onclick = () => {
  const chart = $('bench-chart'), table = $<HTMLTableElement>('bench-table');
  const src = runnable(chart);
  if (src === null) return;
  const backends = [...document.querySelectorAll<HTMLInputElement>('#bench-backends input:checked')].map((c) => c.value as BrowserBackend);
  const tokens = num('bench-tokens');
  hooks.benchRows = [];
  hooks.benchDone = false;
  chart.textContent = `benchmarking ${backends.join(', ')}…`;
  table.replaceChildren();
  $('bench-kernels').replaceChildren();
  const head = table.insertRow();
  for (const h of ['backend', 'ran on', 'device', 'fused ms', 'naive ms', 'naive / fused', 'kernels fused / naive', 'max |fused − naive|', 'slowest fused kernels']) head.append(Object.assign(document.createElement('th'), { textContent: h }));
  ask({ kind: 'bench', source: src, file: FILE, backends, tokens, runs: num('bench-runs') }, (r) => {
    if (r.kind === 'error') return errorText(chart, r.message);
    if (r.kind === 'bench-row') {
      const b = r.row;
      hooks.benchRows.push(b);
      const row = table.insertRow();
      row.dataset.backend = b.backend;
      const top = (b.perKernel ?? []).filter((k) => k.lowering === 'fused').sort((x, y) => y.ms - x.ms).slice(0, 3).map((k) => `${k.label} ${k.ms.toFixed(2)}`).join('; ');
      const cells = b.unavailable || b.error
        ? [b.backend, b.unavailable ? `unavailable: ${b.unavailable}` : `error: ${b.error}`]
        : [b.backend, b.detail ?? b.ran ?? '', b.device ?? '', b.fusedMs!.toFixed(2), b.naiveMs!.toFixed(2), `${(b.naiveMs! / b.fusedMs!).toFixed(2)}x`, `${b.fusedKernels} / ${b.naiveKernels}`, b.fusedVsNaive!.toExponential(1), top];
      for (const c of cells) row.insertCell().textContent = c;
      if (b.unavailable || b.error) (row.cells[1]!).colSpan = 8;
      chart.innerHTML = benchChart(hooks.benchRows, tokens);
      if (b.perKernel?.length) {
        const details = document.createElement('details');
        const summary = document.createElement('summary');
        summary.textContent = `${b.backend}: every kernel (ms of the last run)`;
        const t = document.createElement('table');
        const hr = t.insertRow();
        for (const h of ['lowering', 'kernel', 'ms']) hr.append(Object.assign(document.createElement('th'), { textContent: h }));
        for (const k of b.perKernel) {
          const r = t.insertRow();
          for (const c of [k.lowering, k.label, k.ms.toFixed(3)]) r.insertCell().textContent = c;
        }
        details.append(summary, t);
        $('bench-kernels').append(details);
      }
    }
    if (r.kind === 'bench-done') hooks.benchDone = true;
  });
};

// Train
const trainTask = $<HTMLSelectElement>('train-task');
let droppedText: { name: string; bytes: Uint8Array } | undefined;
trainTask.onchange = () => {
  const text = trainTask.value === 'text';
  $('train-file-label').hidden = !text;
  $('drop').hidden = !text;
  trainPlaceholders();
};
async function takeFile(f: File) {
  droppedText = { name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) };
  $('drop').textContent = `${f.name}: ${droppedText.bytes.length.toLocaleString('en-US')} bytes`;
}
$<HTMLInputElement>('train-file').onchange = (e) => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (f) void takeFile(f);
};
const drop = $('drop');
drop.ondragover = (e) => {
  e.preventDefault();
  drop.classList.add('over');
};
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer?.files[0];
  if (f) void takeFile(f);
};

let trainId = 0;
let lastCounts = new Map<string, Float64Array>();
let drawPending = false;
function drawTraining() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    const pts = hooks.trainPoints;
    $('loss-chart').innerHTML = lossChart(pts);
    const acc = pts.filter((p) => p.split === 'validation' && p.accuracy !== undefined).map((p) => [p.step, 100 * p.accuracy!] as [number, number]);
    $('accuracy-chart').innerHTML = acc.length ? lineChart('Validation accuracy (%)', 'step', 'accuracy', [{ name: 'validation', color: '#2ca02c', points: acc, dots: true }], { y0: 0 }) : '';
    const usage = usageHistory(pts);
    if (usage.length) $('experts-chart').innerHTML = expertsChart(usage, lastCounts);
  });
}
function trainButtons(running: boolean, resumable: boolean) {
  $<HTMLButtonElement>('train-go').disabled = running;
  $<HTMLButtonElement>('train-stop').disabled = !running;
  $<HTMLButtonElement>('train-resume').disabled = running || !resumable;
  $<HTMLButtonElement>('train-checkpoint').disabled = running || trainId === 0;
  $<HTMLButtonElement>('sample-go').disabled = running || trainId === 0 || trainTask.value !== 'text';
}
function onTrain(r: KernelReply) {
  const status = $('train-status');
  if (r.kind === 'error') {
    errorText(status, r.message);
    trainButtons(false, hooks.trainStopped ? !hooks.trainStopped.finished : false);
    return;
  }
  if (r.kind === 'train-start') status.textContent = `training @ ${r.parameters.toLocaleString('en-US')} parameters on ${r.describe}; ${r.data}`;
  if (r.kind === 'train-point') {
    hooks.trainPoints.push(r.point);
    const p = r.point;
    if (p.split === 'validation') {
      if (r.counts) lastCounts = new Map(r.counts);
      status.textContent = `step ${p.step}: validation loss ${p.loss.toFixed(4)}${p.accuracy === undefined ? '' : `, accuracy ${(100 * p.accuracy).toFixed(1)}%`}${(p.experts ?? []).map((e) => `; ${e.param} used ${(100 * e.usage).toFixed(1)}%`).join('')}`;
    } else status.dataset.last = `step ${p.step}: loss ${p.loss.toFixed(4)}, ${Math.round(p.tokensPerS ?? 0).toLocaleString('en-US')} tokens/s`;
    drawTraining();
  }
  if (r.kind === 'train-stopped') {
    hooks.trainStopped = { step: r.step, finished: r.finished };
    status.textContent = `${r.finished ? 'finished' : 'stopped'} at step ${r.step}. ${status.textContent ?? ''}`;
    trainButtons(false, !r.finished);
  }
}
$('train-go').onclick = () => {
  const status = $('train-status');
  const src = runnable(status);
  if (src === null) return;
  const task = trainTask.value as 'recall' | 'text';
  if (task === 'text' && !droppedText) return errorText(status, 'drop a text file (or choose one) to train on text');
  hooks.trainPoints = [];
  hooks.trainStopped = undefined;
  lastCounts = new Map();
  $('experts-chart').replaceChildren();
  $('accuracy-chart').replaceChildren();
  status.textContent = 'compiling the training program…';
  trainButtons(true, false);
  trainId = ask({ kind: 'train', source: src, file: FILE, backend: chosenBackend(), settings: { task, text: droppedText?.bytes, textName: droppedText?.name, steps: given('train-steps'), batch: given('train-batch'), seq: given('train-seq'), lr: given('train-lr'), evalEvery: given('train-eval') } }, onTrain);
};
$('train-stop').onclick = () => kernels.postMessage({ kind: 'stop', id: trainId } satisfies KernelRequest);
$('train-resume').onclick = () => {
  trainButtons(true, false);
  hooks.trainStopped = undefined;
  kernels.postMessage({ kind: 'resume', id: trainId } satisfies KernelRequest);
};
$('train-checkpoint').onclick = () => ask({ kind: 'checkpoint' }, (r) => {
  if (r.kind === 'error') return errorText($('train-status'), r.message);
  if (r.kind === 'checkpoint') download(`checkpoint-step${r.step}.safetensors`, r.bytes as Uint8Array<ArrayBuffer>);
});
$('sample-go').onclick = () => {
  const out = $('sample-out');
  out.textContent = 'sampling…';
  ask({ kind: 'sample', prompt: $<HTMLInputElement>('sample-prompt').value, tokens: num('sample-tokens'), temperature: num('sample-temp') }, (r) => {
    if (r.kind === 'error') return errorText(out, r.message);
    if (r.kind === 'sampled') out.textContent = $<HTMLInputElement>('sample-prompt').value + r.text;
  });
};
trainTask.dispatchEvent(new Event('change'));
trainButtons(false, false);

sendCheck();
