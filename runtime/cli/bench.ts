// `peerc bench`: the fused kernels, the naive kernels and the float64 reference interpreter
// on the same weights and inputs in one process; medians after a warm-up, per-kernel times,
// tokens/s, peak RSS and the backend that actually ran.
import { unfusedPatterns } from '../../src/passes/fusion-notes.js';
import type { IRModule } from '../../src/ir/graph.js';
import { parseEinsum } from '../../src/ir/ops/einsum.js';
import { entryFunction, interpret } from '../../src/interp/interpreter.js';
import { Tensor } from '../../src/interp/tensor.js';
import { initialTensor } from '../../src/interp/init.js';
import { tokenDims } from '../../src/io/seeded.js';
import { optimize } from '../../src/passes/pipeline.js';
import type { BackendName } from '../backends/info.js';
import { Executor, toFloat32 } from '../executor.js';
import { ortBaseline, type OrtBaseline } from './bench-ort.js';
import { median } from '../stats.js';
import { CompileError } from '../../src/diagnostics/diagnostic.js';

export interface BenchOptions {
  tokens: number;
  backend: BackendName | 'auto';
  runs: number;
  json: boolean;
  naive: boolean;
  reference: boolean;
  /** The ONNX Runtime (CPU) baseline, where onnxruntime-node is installed. */
  ort: boolean;
}


/**
 * Fast pseudo-random weights with each initializer's mean and spread (values do not change the
 * work done), as lazy tensors: an executor writes each straight into the memory its kernels read
 * (an expert table into its table memory), so no second copy of a table exists even briefly.
 */
export function benchWeightTensors(m: IRModule): Map<string, Tensor> {
  return new Map(
    m.params.map((p, salt) => {
      // Index buffers keep their seeded values: they decide which rows are read, and must be in range.
      if (p.dtype === 'index') return [p.name, initialTensor(p, 0)];
      const init = p.init;
      const [lo, hi] = init.kind === 'constant' ? [init.value, init.value] : init.kind === 'uniform' || init.kind === 'randint' ? [init.low, init.high] : [init.mean - init.std * Math.sqrt(3), init.mean + init.std * Math.sqrt(3)];
      // A multiplicative hash of (element, parameter): any element without the ones before it.
      const at = (i: number) => {
        let h = Math.imul(i ^ Math.imul(salt + 1, 0x9e3779b9), 0x85ebca6b);
        h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
        return lo + (hi - lo) * (((h ^ (h >>> 16)) >>> 0) / 4294967296);
      };
      return [p.name, new Tensor('f32', p.shape, at)];
    }),
  );
}

/** The same weights as shared float32 arrays (for the trainer, which updates them in place). */
export function benchWeights(m: IRModule): Map<string, Float32Array> {
  return new Map([...benchWeightTensors(m)].map(([name, t]) => [name, toFloat32(t, m.params.find((p) => p.name === name))]));
}

/** The open dims as bench binds them: tokenDims, the one meaning of "tokens". */
export function benchDims(m: IRModule, tokens: number): (sym: string) => number {
  return tokenDims(entryFunction(m).symbols, tokens);
}

/** Inputs with `tokens` tokens: the last symbolic dim is the token count, others are 1. */
export function benchInputs(m: IRModule, tokens: number): Map<string, Tensor> {
  const fn = entryFunction(m);
  const size = benchDims(m, tokens);
  const vocab = m.params.find((p) => p.name === 'E')?.shape[0] ?? 256;
  const out = new Map<string, Tensor>();
  let seed = 12345;
  for (const id of fn.inputs) {
    const node = fn.graph.node(id);
    const t = node.types[0]!;
    const shape = t.shape.map((d) => d.evaluate(size)!);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float64Array.from({ length: n }, () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return t.dtype === 'index' ? seed % vocab : seed / 1073741824 - 1;
    });
    out.set(node.attrs.name as string, new Tensor(t.dtype, shape, data));
  }
  return out;
}

interface Measured {
  medianMs: number;
  runsMs: number[];
  kernels: { label: string; medianMs: number }[];
  kernelCount: number;
  /** Bytes between host and device memory per forward (device backends). */
  hostDeviceBytesPerForward?: { up: number; down: number };
}

export async function runBench(m: IRModule, o: BenchOptions): Promise<number> {
  // The first executor (fused) writes the weights into its memory; the others read those arrays.
  const lazyWeights = benchWeightTensors(m);
  let weights = new Map<string, Float32Array>();
  const inputs = benchInputs(m, o.tokens);
  const lowerings = o.naive ? (['fused', 'naive'] as const) : (['fused'] as const);
  const executors: Executor[] = [];
  let matmulGflops = 0;
  let rowReads: { gbPerS: number; rows: number; rowBytes: number } | undefined;
  const samples = lowerings.map(() => ({ runs: [] as number[], kernels: new Map<string, number[]>(), moved: undefined as { up: number; down: number } | undefined }));
  let fusedOutput = new Float32Array(0);
  /** Why the naive lowering was not timed (it does not fit the backend at this size), if so. */
  let naiveUnfit: string | undefined;
  try {
    // One lowering after the other, each warmed up (kernels compiled) right before its runs: the
    // naive kernels' garbage (hundreds of MB per call) kept V8's collector busy on the cores the
    // fused runs needed when the two were interleaved (fused 60 ms instead of 42-45 at N = 1024^2).
    for (const [i, l] of lowerings.entries()) {
      const ex = new Executor(optimize(m, { lowering: l }), i === 0 ? lazyWeights : weights, o.backend);
      if (i === 0) weights = new Map(ex.params);
      executors.push(ex);
      try {
        await ex.forward(inputs);
      } catch (e) {
        // The naive lowering's gathered tensors can pass what the backend indexes at sizes the
        // fused kernels handle: that is a result of the comparison, said as such, not an abort.
        if (l !== 'naive' || !(e instanceof CompileError) || e.diagnostic.code !== 'PEER0606') throw e;
        naiveUnfit = e.diagnostic.message;
        break;
      }
      const movedBefore = ex.transfers();
      for (let run = 0; run < o.runs; run++) {
        const t0 = performance.now();
        const r = await ex.forward(inputs);
        samples[i]!.runs.push(performance.now() - t0);
        if (i === 0 && run === o.runs - 1) fusedOutput = Float32Array.from(r.outputs[0]!.data);
        for (const [k, ms] of r.timings) samples[i]!.kernels.set(k, [...(samples[i]!.kernels.get(k) ?? []), ms]);
      }
      const movedAfter = ex.transfers();
      if (movedBefore && movedAfter && o.runs) samples[i]!.moved = { up: (movedAfter.up - movedBefore.up) / o.runs, down: (movedAfter.down - movedBefore.down) / o.runs };
      // The yardstick in the same conditions as the fused kernels it is compared with.
      if (i === 0) {
        matmulGflops = await ex.matmulReference();
        rowReads = await ex.rowReadReference();
      }
    }
    const measured: Record<string, Measured> = {};
    lowerings.forEach((l, i) => {
      if (!samples[i]!.runs.length) return;
      measured[l] = {
        medianMs: median(samples[i]!.runs),
        runsMs: samples[i]!.runs,
        kernels: [...samples[i]!.kernels].map(([label, xs]) => ({ label, medianMs: median(xs) })).sort((a, b) => b.medianMs - a.medianMs),
        kernelCount: executors[i]!.kernelCount(),
        ...(samples[i]!.moved ? { hostDeviceBytesPerForward: samples[i]!.moved } : {}),
      };
    });
    let referenceMs: number | undefined;
    if (o.reference) {
      const refWeights = new Map([...weights].map(([k, v]) => [k, new Tensor('f32', m.params.find((p) => p.name === k)!.shape, (i) => v[i]!)]));
      const t0 = performance.now();
      interpret(optimize(m), inputs, refWeights);
      referenceMs = performance.now() - t0;
    }
    // peerc's peak, before ONNX Runtime's session (same process) adds its own arena to the figure.
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    const fusedModule = optimize(m, { lowering: 'fused' });
    const ort: OrtBaseline | undefined = o.ort ? await ortBaseline(fusedModule, weights, inputs, o.runs, fusedOutput) : undefined;
    const flops = einsumFlops(fusedModule, o.tokens);
    // A contraction timed only inside a larger kernel has no time of its own: it is listed as such, never as 0 GFLOP/s.
    const timedAlone = [...flops.perKernel].map(([label, gflop]) => [label, gflop, measured.fused!.kernels.find((k) => k.label === label || k.label.startsWith(`${label} (`))?.medianMs] as const);
    const kernelGflops = Object.fromEntries(timedAlone.filter(([, , ms]) => ms).map(([label, gflop, ms]) => [label, gflop / (ms! / 1000)]));
    const untimed = timedAlone.filter(([, , ms]) => !ms).map(([label]) => label);
    // The per-slot expert kernels' work is reading the selected rows (random rows of the
    // tables): GB/s. The kernels grouped by expert read each expert once and are products: GFLOP/s.
    const rowBytes = expertRowBytes(fusedModule, o.tokens);
    const expertKernel = (op: string) => measured.fused!.kernels.find((x) => x.label === op || x.label.startsWith(`${op} (`));
    const expertGbPerS = Object.fromEntries([...rowBytes].flatMap(([op, bytes]) => {
      const k = expertKernel(op);
      return k && !k.label.includes('by expert') ? [[k.label, bytes / 1e9 / (k.medianMs / 1000)]] : [];
    }));
    // Each selected row is one multiply-add per value (4 bytes): 2 FLOP per 4 bytes.
    const expertGflops = Object.fromEntries([...rowBytes].flatMap(([op, bytes]) => {
      const k = expertKernel(op);
      return k && k.label.includes('by expert') ? [[k.label, bytes / 2 / 1e9 / (k.medianMs / 1000)]] : [];
    }));
    const report = {
      backend: executors[0]!.backend.name,
      backend_detail: executors[0]!.describe(),
      threads: executors[0]!.backend.pool ? executors[0]!.threads : undefined,
      tokens: o.tokens,
      runs: o.runs,
      fused: measured.fused,
      naive: measured.naive,
      naive_not_run: naiveUnfit,
      reference_ms: referenceMs,
      tokens_per_s: Object.fromEntries(Object.entries(measured).map(([k, v]) => [k, (o.tokens / v.medianMs) * 1000])),
      speedup_fused_vs_naive: measured.naive ? measured.naive.medianMs / measured.fused!.medianMs : undefined,
      onnxruntime: ort,
      einsum_gflop: flops.total,
      einsum_gflops_per_s: kernelGflops,
      einsum_not_timed_alone: untimed,
      expert_row_bytes: Object.fromEntries(rowBytes),
      expert_rows_gb_per_s: expertGbPerS,
      expert_products_gflops_per_s: expertGflops,
      matmul_reference_gflops_per_s: matmulGflops,
      row_read_reference: rowReads && { gb_per_s: rowReads.gbPerS, table_rows: rowReads.rows, row_bytes: rowReads.rowBytes },
      peak_rss_mb: peakRssMb,
      fusion_notes: unfusedPatterns(fusedModule).map((n) => n.message),
      backend_notes: [...new Set(executors.flatMap((e) => e.notes()))],
    };
    if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else process.stdout.write(renderReport(report, measured));
    return 0;
  } finally {
    executors.forEach((e) => e.destroy());
  }
}

/** Bytes of expert-table rows the fused expert ops read per forward (every selected row once), by op. */
function expertRowBytes(m: IRModule, tokens: number): Map<string, number> {
  const fn = entryFunction(m);
  const dims = benchDims(m, tokens);
  const bytes = new Map<string, number>();
  for (const n of fn.graph.nodes) {
    if (n.op !== 'expert_act' && n.op !== 'expert_out') continue;
    const size = (r: (typeof n.inputs)[number]) => fn.graph.typeOf(r).shape.reduce((a, d) => a * d.evaluate(dims)!, 1);
    const rowSize = fn.graph.typeOf(n.inputs[1]!).shape.at(-1)!.evaluate(dims)!;
    bytes.set(n.op, (bytes.get(n.op) ?? 0) + size(n.inputs[2]!) * rowSize * 4);
  }
  return bytes;
}

/** Multiply-adds x 2 of every einsum in the fused module (GFLOP), in total and per kernel label. */
export function einsumFlops(m: IRModule, tokens: number, dimsFrom: IRModule = m): { total: number; perKernel: Map<string, number> } {
  const fn = entryFunction(m);
  let total = 0;
  const perKernel = new Map<string, number>();
  for (const n of fn.graph.nodes) {
    if (n.op !== 'einsum' && n.op !== 'einsum_bn') continue;
    const spec = parseEinsum(n.attrs.spec as string, n.op === 'einsum_bn' ? 2 : n.inputs.length);
    const size = new Map<string, number>();
    // The dims bound exactly as the inputs bench runs (benchDims), so every figure follows from the IR's work.
    spec.inputs.forEach((s, i) => [...s].forEach((c, j) => size.set(c, fn.graph.typeOf(n.inputs[i]!).shape[j]!.evaluate(benchDims(dimsFrom, tokens))!)));
    const gflop = (2 * [...size.values()].reduce((a, b) => a * b, 1)) / 1e9;
    total += gflop;
    const label = n.op === 'einsum_bn' ? 'einsum_bn' : `einsum ${n.attrs.spec as string}`;
    perKernel.set(label, (perKernel.get(label) ?? 0) + gflop);
  }
  return { total, perKernel };
}

function renderReport(r: { onnxruntime?: OrtBaseline; fusion_notes: string[]; backend_notes: string[]; expert_row_bytes: Record<string, number>; expert_rows_gb_per_s: Record<string, number>; expert_products_gflops_per_s: Record<string, number>; naive_not_run?: string; backend: string; backend_detail: string; tokens: number; runs: number; reference_ms?: number; tokens_per_s: Record<string, number>; speedup_fused_vs_naive?: number; einsum_gflop: number; einsum_gflops_per_s: Record<string, number>; einsum_not_timed_alone: string[]; matmul_reference_gflops_per_s: number; row_read_reference?: { gb_per_s: number; table_rows: number; row_bytes: number }; peak_rss_mb: number }, measured: Record<string, Measured>): string {
  const lines = [`peerc bench: ${r.tokens} tokens, backend ${r.backend_detail} (verified on every kernel), median of ${r.runs} runs after a warm-up`];
  for (const n of [...r.fusion_notes, ...r.backend_notes]) lines.push(`  note: ${n}`);
  for (const [name, m] of Object.entries(measured)) {
    lines.push(`  ${name.padEnd(6)} ${m.medianMs.toFixed(1).padStart(9)} ms  ${r.tokens_per_s[name]!.toFixed(0).padStart(8)} tokens/s  (${m.kernelCount} kernels)`);
  }
  if (r.reference_ms !== undefined) lines.push(`  reference (float64 interpreter, 1 run) ${r.reference_ms.toFixed(1)} ms  ${((r.tokens / r.reference_ms) * 1000).toFixed(0)} tokens/s`);
  if (r.naive_not_run) lines.push(`  naive: not run: ${r.naive_not_run}`);
  if (r.speedup_fused_vs_naive) lines.push(`  fused is ${r.speedup_fused_vs_naive.toFixed(2)}x the naive lowering`);
  const moved = Object.entries(measured).filter(([, v]) => v.hostDeviceBytesPerForward);
  if (moved.length) lines.push(`  host <-> device per forward: ${moved.map(([k, v]) => `${k} ${(v.hostDeviceBytesPerForward!.up / 1e6).toFixed(2)} MB up, ${(v.hostDeviceBytesPerForward!.down / 1e6).toFixed(2)} MB down`).join('; ')}`);
  const ort = r.onnxruntime;
  if (ort?.available) {
    lines.push(`  onnxruntime ${ort.medianMs.toFixed(1).padStart(9)} ms  ${((r.tokens / ort.medianMs) * 1000).toFixed(0).padStart(8)} tokens/s  (ONNX Runtime ${ort.version} CPU, ${ort.threads} threads, the model from peerc export --onnx; max |ORT - fused| ${ort.maxDiffVsFused.toExponential(1)})`);
    lines.push(`  fused takes ${(measured.fused!.medianMs / ort.medianMs).toFixed(2)}x ONNX Runtime's time`);
  } else if (ort) lines.push(`  note: no ONNX Runtime baseline: ${ort.reason}`);
  lines.push(`  einsum work: ${r.einsum_gflop.toFixed(3)} GFLOP per forward; best 512^3 matmul on this backend: ${r.matmul_reference_gflops_per_s.toFixed(2)} GFLOP/s`);
  for (const [label, g] of Object.entries(r.einsum_gflops_per_s))
    lines.push(`    ${label.padEnd(30)} ${g.toFixed(2)} GFLOP/s (${((100 * g) / r.matmul_reference_gflops_per_s).toFixed(0)}% of the matmul)`);
  if (r.einsum_not_timed_alone.length) lines.push(`    (timed inside fused kernels, no GFLOP/s of their own: ${r.einsum_not_timed_alone.join(', ')})`);
  const rowMb = Object.values(r.expert_row_bytes).reduce((a, b) => a + b, 0) / 1e6;
  if (rowMb > 0) {
    lines.push(`  expert rows selected: ${rowMb.toFixed(1)} MB per forward (each selected once per slot; the kernels by expert read each expert's rows once per call)`);
    const reads = r.row_read_reference;
    if (reads && Object.keys(r.expert_rows_gb_per_s).length)
      lines.push(
        `    yardstick: reading random rows of the largest table (${reads.table_rows} rows of ${reads.row_bytes} bytes) on all threads: ${reads.gb_per_s.toFixed(2)} GB/s`,
        '    (fresh rows each run; the timed forwards read the same rows every run, so part of theirs may come from the cache, and over 100% says so)',
      );
    for (const [label, g] of Object.entries(r.expert_rows_gb_per_s)) lines.push(`    ${label.padEnd(30)} ${g.toFixed(2)} GB/s${reads ? ` (${((100 * g) / reads.gb_per_s).toFixed(0)}% of the random row reads)` : ''}`);
    for (const [label, g] of Object.entries(r.expert_products_gflops_per_s))
      lines.push(`    ${label.padEnd(30)} ${g.toFixed(2)} GFLOP/s (${((100 * g) / r.matmul_reference_gflops_per_s).toFixed(0)}% of the matmul)`);
  }
  for (const [name, m] of Object.entries(measured)) {
    lines.push(`  ${name} kernels (median ms):`);
    for (const k of m.kernels.slice(0, 12)) lines.push(`    ${k.label.padEnd(32)} ${k.medianMs.toFixed(2).padStart(9)}`);
  }
  lines.push(`  peak RSS ${r.peak_rss_mb.toFixed(0)} MB (peerc's executors and the reference interpreter; taken before any baseline runs)`);
  return lines.join('\n') + '\n';
}
