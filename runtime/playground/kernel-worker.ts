// The playground's kernel worker: seeded runs, fused-vs-naive benchmarks on every backend the
// browser has, and training with live metrics, all with the runtime `peerc` uses in Node. The
// page's thread never runs a kernel.
import { compileSource } from '../../src/frontend.js';
import { CompileError } from '../../src/diagnostics/diagnostic.js';
import { renderDiagnostic } from '../../src/diagnostics/render.js';
import type { IRModule } from '../../src/ir/graph.js';
import { entryFunction, interpret } from '../../src/interp/interpreter.js';
import { seededInputs, seededTensors } from '../../src/io/seeded.js';
import { median } from '../stats.js';
import { optimize } from '../../src/passes/pipeline.js';
import { seededWeights } from '../api.js';
import { resolveBackend, unavailableReason } from '../backends/info.js';
import { Executor, type F32Tensor } from '../executor.js';
import { checkpointTensors, encodeCheckpoint, runMeta } from '../train/checkpoint-format.js';
import { RecallDataset, TextDataset, type Dataset } from '../train/data.js';
import { generateBytes } from '../train/pick.js';
import { settingsOf, type RunSettings } from '../train/settings.js';
import { Diverged, Trainer } from '../train/trainer.js';
import { BROWSER_BACKENDS, type BackendAvailability, type BenchRow, type BrowserBackend, type KernelReply, type KernelRequest, type OutputSummary } from './protocol.js';

const post = (r: KernelReply, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(r, transfer);

/** A coded error as the CLI prints it; anything else by its message. */
class Reported extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

function compiled(source: string, file: string): { m: IRModule; sources: Map<string, string> } {
  const r = compileSource(source, file);
  if (!r.module || r.diagnostics.length) throw new Reported(r.diagnostics.map((d) => renderDiagnostic(d, r.sources)).join('\n\n'), r.diagnostics[0]?.code);
  if (!r.module.entry) throw new Reported('this program has no model to run: add `model NAME(...)` (or mark the layer to run as the model)');
  return { m: r.module, sources: r.sources };
}

function reported(e: unknown, sources?: Map<string, string>): Reported {
  if (e instanceof Reported) return e;
  if (e instanceof CompileError) return new Reported(sources ? renderDiagnostic(e.diagnostic, sources) : e.message, e.diagnostic.code);
  if (e instanceof Diverged) return new Reported(`training diverged: ${e.what}. Try a lower learning rate.`, 'PEER0703');
  return new Reported(e instanceof Error ? e.message : String(e));
}

async function device(b: BrowserBackend): Promise<{ unavailable: string | null; device: string }> {
  const why = unavailableReason(b);
  if (why) return { unavailable: why, device: '' };
  if (b === 'webgpu' || b === 'gpujs-webgpu') {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: Record<string, string> } | null> } }).gpu;
    if (!gpu) return { unavailable: 'this browser has no WebGPU (navigator.gpu is missing)', device: '' };
    const adapter = await gpu.requestAdapter().catch(() => null);
    if (!adapter) return { unavailable: 'no WebGPU adapter (the browser offers WebGPU but found no usable GPU)', device: '' };
    const i = adapter.info ?? {};
    return { unavailable: null, device: [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'WebGPU adapter' };
  }
  if (b === 'webgl2') {
    const gl = typeof OffscreenCanvas === 'undefined' ? null : (new OffscreenCanvas(1, 1).getContext('webgl2') as WebGL2RenderingContext | null);
    if (!gl) return { unavailable: 'no WebGL2 context in a worker (OffscreenCanvas)', device: '' };
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    return { unavailable: null, device: String(ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)) };
  }
  if (b === 'wasm-simd') return { unavailable: null, device: `${navigator.hardwareConcurrency} cores` };
  return { unavailable: null, device: b === 'cpu' ? 'JavaScript' : 'WebAssembly' };
}

const backendsCache = new Map<BrowserBackend, Promise<{ unavailable: string | null; device: string }>>();
const deviceOf = (b: BrowserBackend) => backendsCache.get(b) ?? (backendsCache.set(b, device(b)), backendsCache.get(b)!);

function summary(t: F32Tensor): OutputSummary {
  let min = Infinity, max = -Infinity, sum = 0, sq = 0;
  for (const v of t.data) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
    sq += v * v;
  }
  const n = Math.max(1, t.data.length), mean = sum / n;
  return { shape: [...t.shape], min, max, mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)), head: Array.from(t.data.subarray(0, 8)) };
}

const workOf = (m: IRModule, tokens: number) => m.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0) * tokens;

async function run(req: Extract<KernelRequest, { kind: 'run' }>): Promise<void> {
  const { m, sources } = compiled(req.source, req.file);
  const backend = resolveBackend(req.backend).name;
  const inputs = seededInputs(m, req.tokens, req.seed);
  const ex = new Executor(optimize(m, { lowering: req.lowering }), seededWeights(m.params, req.seed), backend);
  try {
    await ex.forward(inputs); // compiles the kernels
    const t0 = performance.now();
    const r = await ex.forward(inputs);
    const ms = performance.now() - t0;
    // The float64 interpreter defines the answer; it is slow, so only for small programs.
    let reference: { maxError: number } | { skipped: string } = { skipped: 'the program is too large for the float64 interpreter in a page (> 2e7 parameter-tokens)' };
    if (workOf(m, req.tokens) <= 2e7) {
      const ref = interpret(m, inputs, seededTensors(m, req.seed)).outputs;
      let err = 0;
      r.outputs.forEach((o, k) => {
        const want = ref[k]!.data;
        let scale = 1e-30;
        for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
        for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(o.data[i]! - want[i]!) / scale);
      });
      reference = { maxError: err };
    }
    post({ kind: 'ran', id: req.id, backend: ex.backend.name, detail: ex.describe(), outputs: r.outputs.map(summary), ms, reference, kernels: ex.kernelSources(), timings: [...r.timings] });
  } catch (e) {
    throw reported(e, sources);
  } finally {
    ex.destroy();
  }
}

async function benchOne(m: IRModule, b: BrowserBackend, tokens: number, runs: number): Promise<BenchRow> {
  const dev = await deviceOf(b);
  if (dev.unavailable) return { backend: b, unavailable: dev.unavailable };
  const inputs = seededInputs(m, tokens, 1);
  const weights = seededWeights(m.params, 0);
  const row: BenchRow = { backend: b, device: dev.device, perKernel: [] };
  const outs: Partial<Record<'fused' | 'naive', Float32Array[]>> = {};
  for (const lowering of ['fused', 'naive'] as const) {
    const ex = new Executor(optimize(m, { lowering }), weights, b);
    try {
      let last = await ex.forward(inputs);
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        last = await ex.forward(inputs);
        times.push(performance.now() - t0);
      }
      row.ran = ex.backend.name;
      row.detail = ex.describe();
      row[lowering === 'fused' ? 'fusedMs' : 'naiveMs'] = median(times);
      row[lowering === 'fused' ? 'fusedKernels' : 'naiveKernels'] = ex.kernelCount();
      for (const [label, ms] of last.timings) row.perKernel!.push({ lowering, label, ms });
      outs[lowering] = last.outputs.map((o) => Float32Array.from(o.data));
    } finally {
      ex.destroy();
    }
  }
  let err = 0, scale = 1e-30;
  outs.naive!.forEach((n, k) => n.forEach((v, i) => {
    scale = Math.max(scale, Math.abs(v));
    err = Math.max(err, Math.abs(v - outs.fused![k]![i]!));
  }));
  row.fusedVsNaive = err / scale;
  return row;
}

async function bench(req: Extract<KernelRequest, { kind: 'bench' }>): Promise<void> {
  const { m, sources } = compiled(req.source, req.file);
  for (const b of req.backends) {
    let row: BenchRow;
    try {
      row = await benchOne(m, b, req.tokens, req.runs);
    } catch (e) {
      const r = reported(e, sources);
      row = { backend: b, error: r.message };
    }
    post({ kind: 'bench-row', id: req.id, row });
  }
  post({ kind: 'bench-done', id: req.id, tokens: req.tokens });
}

interface TrainingRun {
  id: number;
  m: IRModule;
  source: string;
  file: string;
  backend: BrowserBackend;
  settings: RunSettings;
  trainer: Trainer;
  weights: Map<string, Float32Array>;
  dataset: Dataset;
  step: number;
  running: boolean;
  stop: boolean;
  sources: Map<string, string>;
}
let training: TrainingRun | undefined;

/** Lets queued messages (stop) in between steps: awaiting a settled promise would not. */
const breathe = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

async function evaluate(r: TrainingRun): Promise<void> {
  const batches = Array.from({ length: r.settings.evalBatches }, (_, i) => r.dataset.batch('validation', i));
  const ev = await r.trainer.evaluate(batches);
  const counts = ev.experts.map((e) => [e.param, Float64Array.from(e.counts)] as [string, Float64Array]);
  post({ kind: 'train-point', id: r.id, point: { step: r.step, split: 'validation', loss: ev.loss, accuracy: Number.isNaN(ev.accuracy) ? undefined : ev.accuracy, experts: ev.experts.map((e) => ({ param: e.param, usage: e.usage, unevenness: e.unevenness, cap: e.cap })) }, counts }, counts.map(([, c]) => c.buffer));
}

async function trainLoop(r: TrainingRun): Promise<void> {
  r.running = true;
  r.stop = false;
  try {
    if (r.step === 0) await evaluate(r);
    while (r.step < r.settings.steps && !r.stop) {
      const s = await r.trainer.step(r.dataset.batch('train', r.step));
      r.step++;
      post({ kind: 'train-point', id: r.id, point: { step: r.step, split: 'train', loss: s.loss, tokensPerS: (s.tokens / s.ms) * 1000 } });
      if (r.step % r.settings.evalEvery === 0 || r.step === r.settings.steps) await evaluate(r);
      await breathe();
    }
  } catch (e) {
    r.stop = true;
    throw reported(e, r.sources);
  } finally {
    r.running = false;
    post({ kind: 'train-stopped', id: r.id, step: r.step, finished: r.step >= r.settings.steps });
  }
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes.slice() as Uint8Array<ArrayBuffer>));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function train(req: Extract<KernelRequest, { kind: 'train' }>): Promise<void> {
  if (training?.running) throw new Reported('a training run is in progress: stop it first');
  training?.trainer.destroy();
  training = undefined;
  const { m, sources } = compiled(req.source, req.file);
  const s = req.settings;
  const given: [string, number | undefined][] = [['steps', s.steps], ['batch', s.batch], ['seq', s.seq], ['lr', s.lr], ['eval-every', s.evalEvery]];
  const flags = new Map<string, string | number | boolean>([['task', s.task], ...given.filter((g): g is [string, number] => g[1] !== undefined)]);
  if (s.task === 'text') flags.set('data', s.textName ?? 'dropped text');
  try {
    let settings = settingsOf(m, flags);
    // The text's hash, so `peerc train --resume --data FILE` recognises it by content.
    if (s.task === 'text' && s.text) settings = { ...settings, dataSha256: await sha256Hex(s.text) };
    const dataset: Dataset = s.task === 'recall' ? new RecallDataset(m, settings.batch, settings.seed) : new TextDataset(s.text ?? new Uint8Array(), settings.data!, m, settings.batch, settings.seq, settings.seed);
    const weights = seededWeights(m.params, settings.seed);
    const trainer = new Trainer(m, weights, { backend: resolveBackend(req.backend).name, optimizer: settings.optimizer, seed: settings.seed });
    training = { id: req.id, m, source: req.source, file: req.file, backend: req.backend, settings, trainer, weights, dataset, step: 0, running: false, stop: false, sources };
    const parameters = m.params.filter((p) => p.role === 'param').reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
    post({ kind: 'train-start', id: req.id, describe: trainer.describe(), backend: trainer.backend.name, data: dataset.describe(), steps: settings.steps, parameters });
  } catch (e) {
    throw reported(e, sources);
  }
  await trainLoop(training);
}

async function sample(req: Extract<KernelRequest, { kind: 'sample' }>): Promise<void> {
  const r = training;
  if (!r) throw new Reported('train a model first');
  if (r.running) throw new Reported('stop the training run before sampling');
  if (r.settings.task !== 'text') throw new Reported('sampling needs a byte-level language model trained on text (the recall task has no text to continue)');
  const fn = entryFunction(r.m);
  const input = fn.graph.node(fn.inputs[0]!).attrs.name as string;
  const ex = new Executor(optimize(r.m, { lowering: 'fused' }), r.weights, resolveBackend(r.backend).name);
  try {
    const made = await generateBytes(ex, input, r.settings.seq, new TextEncoder().encode(req.prompt), { tokens: req.tokens, temperature: req.temperature, seed: r.settings.seed });
    post({ kind: 'sampled', id: req.id, text: new TextDecoder().decode(Uint8Array.from(made)) });
  } finally {
    ex.destroy();
  }
}

async function checkpoint(req: Extract<KernelRequest, { kind: 'checkpoint' }>): Promise<void> {
  const r = training;
  if (!r) throw new Reported('train a model first');
  if (r.running) throw new Reported('stop the training run before downloading its checkpoint');
  const meta = runMeta({ source: r.source, file: r.file, entry: r.m.entry!, step: r.step, settings: r.settings, optimizerStep: r.trainer.optimizer.t, backend: r.trainer.backend.name });
  await r.trainer.syncWeights(); // tables the GPU updated in place come back first
  const bytes = encodeCheckpoint(meta, checkpointTensors(r.m, r.weights, r.trainer.optimizer));
  post({ kind: 'checkpoint', id: req.id, bytes, step: r.step }, [bytes.buffer]);
}

async function handle(req: KernelRequest): Promise<void> {
  switch (req.kind) {
    case 'backends': {
      const list: BackendAvailability[] = [];
      for (const b of BROWSER_BACKENDS) list.push({ backend: b, ...(await deviceOf(b)) });
      post({ kind: 'backends', id: req.id, list, isolated: (self as unknown as { crossOriginIsolated?: boolean }).crossOriginIsolated === true });
      return;
    }
    case 'run':
      return run(req);
    case 'bench':
      return bench(req);
    case 'train':
      return train(req);
    case 'stop':
      if (training) training.stop = true;
      return;
    case 'resume':
      if (!training) throw new Reported('nothing to resume: start a training run');
      if (training.running) return;
      if (training.step >= training.settings.steps) throw new Reported(`the run finished its ${training.settings.steps} steps; start a new run with more steps`);
      return trainLoop(training);
    case 'sample':
      return sample(req);
    case 'checkpoint':
      return checkpoint(req);
  }
}

self.onmessage = (e: MessageEvent<KernelRequest>) => {
  const req = e.data;
  handle(req).catch((err: unknown) => {
    const r = reported(err);
    post({ kind: 'error', id: req.id, message: r.message, code: r.code });
  });
};
