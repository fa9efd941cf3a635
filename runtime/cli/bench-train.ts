// `peerc bench --train`: the training step (forward, backward, sparse row sums, optimizer) of
// a model on random inputs and targets; median of several steps after a warm-up step that
// compiles the kernels, per-kernel times, tokens/s, peak RSS against the bytes of parameters
// and optimizer state (to see that no hidden copy of a big table exists).
import type { IRModule } from '../../src/ir/graph.js';
import type { BackendName } from '../backends/info.js';
import { DEFAULT_OPTIMIZER, stateCount, type OptimizerKind } from '../train/optim.js';
import { Trainer } from '../train/trainer.js';
import type { Batch } from '../train/data.js';
import type { F32Tensor } from '../executor.js';
import { benchInputs, benchWeights, einsumFlops } from './bench.js';
import { targetsShape } from '../../src/autodiff/differentiate.js';
import { bindInputDims, entryFunction } from '../../src/interp/interpreter.js';
import type { Tensor } from '../../src/interp/tensor.js';
import { median } from '../stats.js';

export interface TrainBenchOptions {
  tokens: number;
  backend: BackendName | 'auto';
  runs: number;
  json: boolean;
  /** The run's optimizer (default adam; sgd with the default momentum). */
  optimizer?: OptimizerKind;
}


export async function runTrainBench(m: IRModule, o: TrainBenchOptions): Promise<number> {
  const weights = benchWeights(m);
  const kind = o.optimizer ?? 'adam';
  // State arrays beside each parameter: Adam's two moments, SGD's velocity (the default momentum is > 0).
  const states = stateCount(kind, DEFAULT_OPTIMIZER);
  const t0 = performance.now();
  const trainer = new Trainer(m, weights, { backend: o.backend, optimizer: { ...DEFAULT_OPTIMIZER, kind, steps: o.runs + 1 } });
  const inputs = new Map<string, F32Tensor>([...benchInputs(m, o.tokens)].map(([k, t]) => [k, { shape: [...t.shape], data: Float32Array.from(t.data) }]));
  const t = trainer.train.targets;
  let targets: F32Tensor = { shape: [], data: new Float32Array(1) };
  if (t) {
    const { shape, classes } = targetsShape(t, bindInputDims(entryFunction(m), inputs as unknown as ReadonlyMap<string, Tensor>));
    targets = { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => (i * 7919) % classes) };
  }
  const batch: Batch = { inputs, targets, tokens: o.tokens };
  const setupMs = performance.now() - t0;
  const runs: number[] = [];
  const kernels = new Map<string, number[]>();
  let warmupMs = 0;
  let movedBefore: ReturnType<Trainer['transfers']>;
  let movedAfter: ReturnType<Trainer['transfers']>;
  let yardsticks: Awaited<ReturnType<Trainer['yardsticks']>> | undefined;
  let touched = new Map<string, { rows: number; rowSize: number }>();
  try {
    for (let i = 0; i <= o.runs; i++) {
      const r = await trainer.step(batch);
      if (i === 0) {
        warmupMs = r.ms;
        movedBefore = trainer.transfers();
        continue;
      }
      runs.push(r.ms);
      for (const [k, v] of r.timings) kernels.set(k, [...(kernels.get(k) ?? []), v]);
    }
    movedAfter = trainer.transfers();
    touched = trainer.touchedRows();
    // The yardsticks in the same conditions as the step's kernels they are compared with.
    yardsticks = await trainer.yardsticks();
  } finally {
    trainer.destroy();
  }
  // After the first step (which sends every parameter once): what a step moves.
  const perStep = movedBefore && movedAfter && o.runs ? { up: (movedAfter.up - movedBefore.up) / o.runs, down: (movedAfter.down - movedBefore.down) / o.runs, params: (movedAfter.params - movedBefore.params) / o.runs } : undefined;
  const stateBytes = m.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1) * 4 * (p.role === 'param' ? 1 + states : 1), 0);
  const medianMs = median(runs);
  const kernelMs = (label: string) => median(kernels.get(label) ?? []) || undefined;
  const timedAs = (label: string) => [...kernels.keys()].find((k) => k === label || k.startsWith(`${label} (`));
  // Each contraction of the training program against the best matmul (labels as the step times them).
  const flops = einsumFlops(trainer.train.module, o.tokens, m);
  const einsumGflops = Object.fromEntries([...flops.perKernel].flatMap(([label, gflop]) => {
    const k = timedAs(label);
    const ms = k && kernelMs(k);
    return ms ? [[k, gflop / (ms / 1000)]] : [];
  }));
  // The update reads each touched row of the weights, its state and the summed gradient, and writes the weights and state back
  // (lazy Adam: 7 row transfers, SGD with momentum 5).
  const adamBytes = [...touched.values()].reduce((a, t) => a + t.rows * t.rowSize * 4 * (3 + 2 * states), 0);
  const optimizerMs = kernelMs('optimizer');
  const optimizerGbPerS = adamBytes && optimizerMs ? adamBytes / 1e9 / (optimizerMs / 1000) : undefined;
  const result = {
    model: m.entry, backend: trainer.backend.name, backend_detail: trainer.describe(), tokens: o.tokens, runs: o.runs,
    setup_ms: setupMs, warmup_ms: warmupMs, median_ms: medianMs, runs_ms: runs, tokens_per_s: (o.tokens / medianMs) * 1000,
    kernels: [...kernels].map(([label, v]) => ({ label, median_ms: median(v) })).sort((a, b) => b.median_ms - a.median_ms),
    state_bytes: stateBytes, peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    ...(perStep ? { host_device_bytes_per_step: perStep } : {}),
    einsum_gflop: flops.total, einsum_gflops_per_s: einsumGflops,
    ...(yardsticks ? { matmul_reference_gflops_per_s: yardsticks.matmulGflops } : {}),
    ...(yardsticks?.rowReads ? { row_read_reference: { gb_per_s: yardsticks.rowReads.gbPerS, table_rows: yardsticks.rowReads.rows, row_bytes: yardsticks.rowReads.rowBytes } } : {}),
    optimizer: kind, optimizer_row_bytes: adamBytes, ...(kind === 'adam' ? { lazy_adam_bytes: adamBytes } : {}), ...(optimizerGbPerS ? { optimizer_gb_per_s: optimizerGbPerS } : {}),
  };
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  else {
    process.stdout.write(`train step of @${m.entry} on ${result.backend_detail}, ${o.tokens} tokens: median ${medianMs.toFixed(1)} ms over ${o.runs} steps (${result.tokens_per_s.toFixed(0)} tokens/s); first step ${warmupMs.toFixed(0)} ms (kernel compilation)\n`);
    for (const k of result.kernels.slice(0, 12)) process.stdout.write(`  ${k.median_ms.toFixed(1).padStart(8)} ms  ${k.label}\n`);
    if (yardsticks) {
      process.stdout.write(`einsum work: ${flops.total.toFixed(3)} GFLOP per step; best 512^3 matmul on this backend: ${yardsticks.matmulGflops.toFixed(2)} GFLOP/s\n`);
      for (const [label, g] of Object.entries(einsumGflops).sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${label.padEnd(36)} ${g.toFixed(2)} GFLOP/s (${((100 * g) / yardsticks.matmulGflops).toFixed(0)}% of the matmul)\n`);
    }
    if (optimizerGbPerS) {
      const reads = yardsticks?.rowReads;
      const of = reads ? ` (${((100 * optimizerGbPerS) / reads.gbPerS).toFixed(0)}% of reading random rows of the largest table on all threads, ${reads.gbPerS.toFixed(2)} GB/s)` : '';
      process.stdout.write(`optimizer: ${(adamBytes / 1e6).toFixed(1)} MB of touched rows (weights, ${states === 2 ? 'moments' : states === 1 ? 'velocity' : 'no state'}, summed gradient; ${kind}) at ${optimizerGbPerS.toFixed(2)} GB/s${of}\n`);
    }
    if (perStep) process.stdout.write(`host <-> device per step: ${(perStep.up / 1e6).toFixed(2)} MB up (${(perStep.params / 1e6).toFixed(2)} MB of it into parameters' GPU copies), ${(perStep.down / 1e6).toFixed(2)} MB down\n`);
    process.stdout.write(`parameters + Adam state: ${(stateBytes / 2 ** 30).toFixed(2)} GiB; peak RSS ${(result.peak_rss_bytes / 2 ** 30).toFixed(2)} GiB (${(result.peak_rss_bytes / stateBytes).toFixed(2)}x)\n`);
  }
  return 0;
}
