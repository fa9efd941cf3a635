// Runs an IR module's entry with generated gpu.js kernels: binds dims from the inputs,
// renders one kernel per op (per fused op under the fused lowering), creates and caches
// kernels per shape, and reports the backend that actually ran and per-kernel times.
import gpujs from 'gpu.js';
import { renderKernels } from '../codegen/render.js';
import type { KernelArg, KernelPlan } from '../codegen/kernel.js';
import { FLAT_INDEX_LIMIT } from '../codegen/kernel.js';
import type { IRFunction, IRModule, Node, ValueRef } from '../src/ir/graph.js';
import { liveNodes } from '../src/ir/graph.js';
import { bindInputDims, checkWeights, entryFunction } from '../src/interp/interpreter.js';
import { checkIndexInputs, indexInputUses, type IndexUse } from '../src/interp/input-checks.js';
import { dropoutValues, gumbelValues, noiseKey } from '../src/ir/ops/noise.js';
import { GemmMemoryExceeded, WasmGemm } from './wasm-gemm.js';
import { CompileError, diagnostic } from '../src/diagnostics/diagnostic.js';
import { hostStep, reused, type HostContext } from './host-steps.js';
import { kernelTask, taskable } from '../codegen/host/kernel-task.js';
import { defaultThreads, sharedFloat32, simdSettings, toShared, workerPool, type WorkerPool } from './pool.js';
import type { Tensor } from '../src/interp/tensor.js';
import type { Dim } from '../src/shapes/dim.js';
import { resolveBackend, type BackendInfo, type BackendName } from './backends.js';
import { TableMemory, tableMemoryUnfit } from './wasm-tables.js';

const { GPU } = gpujs;
// gpu.js builds multi-dimensional views with input(); its typings omit it.
const input = (gpujs as unknown as { input: (data: Float32Array, size: number[]) => unknown }).input;

export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

export interface ForwardResult {
  outputs: F32Tensor[];
  /** Milliseconds per kernel label, summed over this call. */
  timings: Map<string, number>;
}

/** The flat data of views (reshape, expand_dims) is their source's: no kernel, no copy. */
/** Ops that are views of their input's buffer: no kernel. */
export const VIEW_OPS: ReadonlySet<string> = new Set(['reshape', 'expand_dims']);
/** Ops the executor evaluates on the host (counter-based noise, bit-identical to the interpreter). */
export const HOST_NOISE_OPS: ReadonlySet<string> = new Set(['dropout', 'gumbel']);

/** Inputs as reference tensors, or float32 data used as it is. */
export type InputTensor = Tensor | F32Tensor;

export interface ExecutorOptions {
  /** Evaluate BatchNorm with batch statistics. */
  training?: boolean;
  /**
   * Pass parameters to kernels on every call instead of uploading them once as constants, so
   * updates to the arrays (training) are seen; gathers from parameter tables then run on the
   * host, so a big expert table is never copied into kernel memory, only its selected rows.
   */
  paramsAsArguments?: boolean;
  /** wasm-simd: threads of the worker pool, the caller included (default: PEERC_THREADS or the cores available). */
  threads?: number;
  /**
   * Return outputs as the executor's own buffers, valid until its next forward (the trainer
   * consumes them within the step), instead of copies: no per-step copy of the gradient rows.
   */
  viewOutputs?: boolean;
  /** wasm-simd: use relaxed-SIMD multiply-add where the engine has it (default); false forces the plain SIMD128 path. */
  relaxedSimd?: boolean;
  /**
   * wasm-simd: expert tables already in table memories, by parameter name (their weights must be
   * the arrays passed as weights). Without it, constant tables read by the fused expert ops move
   * into table memories of their own.
   */
  tables?: Map<string, TableMemory>;
}

interface Step {
  node: number;
  /** A host step (gather from a parameter table, the wasm-simd backend's own steps) instead of a kernel: the node's results. */
  host?: (read: (r: ValueRef) => Float32Array) => Float32Array[] | Promise<Float32Array[]>;
  /** Index among the stages of its node; only the last stage's output is the node's value. */
  stage: number;
  last: boolean;
  plan: KernelPlan;
  kernel: (...args: unknown[]) => unknown;
  checked: boolean;
}

export class KernelFallback extends Error {}

/**
 * A program needs a kernel beyond what the backend computes correctly (a flat index over 2^24
 * on gpu.js, products past wasm32's 4 GiB on wasm-simd): PEER0606 at the op, before any kernel runs.
 */
function kernelLimit(node: Node, backend: string, detail: string): CompileError {
  return new CompileError(diagnostic('PEER0606', node.span ?? null, { backend, detail }));
}

/** A computed row index was out of range: only NaN or infinite values upstream can cause it (indices are checked at compile time). */
export class NonFiniteIndex extends Error {}

/** data (row-major, `shape`) with its axes reordered: result axis i is source axis perm[i]. */
export function permuteAxes(src: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const out = new Float32Array(src.length);
  const srcStrides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const newShape = perm.map((j) => shape[j]!);
  const rank = newShape.length;
  // The innermost axis is copied in a tight loop; the outer ones are counted like an odometer.
  const inner = newShape[rank - 1] ?? 1, innerStride = srcStrides[perm[rank - 1]!] ?? 1;
  const idx = new Array<number>(Math.max(0, rank - 1)).fill(0);
  for (let f = 0; f < out.length; f += inner) {
    let s = 0;
    for (let i = 0; i < rank - 1; i++) s += idx[i]! * srcStrides[perm[i]!]!;
    for (let j = 0; j < inner; j++) out[f + j] = src[s + j * innerStride]!;
    for (let i = rank - 2; i >= 0; i--) {
      if (++idx[i]! < newShape[i]!) break;
      idx[i] = 0;
    }
  }
  return out;
}

/** FNV-1a of a kernel source: tasks with the same source share their compiled function. */
function sourceHash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36) + s.length.toString(36);
}

/** Float32 copy of a reference tensor, element by element for lazy (seeded) ones. */
export function toFloat32(t: Tensor): Float32Array {
  // Shared memory, so the wasm-simd backend's worker threads read the weights without a copy.
  return fillFloat32(t, sharedFloat32(t.size));
}

/** Writes a reference tensor's values into `out` as float32. */
function fillFloat32(t: Tensor, out: Float32Array): Float32Array {
  if (!t.isLazy) {
    out.set(t.data);
    return out;
  }
  for (let i = 0; i < t.size; i++) out[i] = t.element(i);
  return out;
}

export class Executor {
  readonly backend: BackendInfo;
  private readonly gpu: InstanceType<typeof GPU>;
  private readonly fn: IRFunction;
  private readonly plans = new Map<string, Step[]>();
  /** The float32 weights kernels read; with paramsAsArguments, updating them in place updates the model. */
  readonly params = new Map<string, Float32Array>();
  readonly training: boolean;
  private readonly paramsAsArguments: boolean;
  private readonly indexUses: Map<string, IndexUse[]>;

  /** Weights are reference tensors, or float32 arrays used as they are (no copy). */
  constructor(readonly module: IRModule, weights: ReadonlyMap<string, Tensor | Float32Array>, backend: BackendName | 'auto', options: ExecutorOptions = {}) {
    this.training = options.training ?? false;
    this.paramsAsArguments = options.paramsAsArguments ?? false;
    this.threads = options.threads ?? defaultThreads();
    this.viewOutputs = options.viewOutputs ?? false;
    this.relaxedSimd = options.relaxedSimd ?? simdSettings.relaxed ?? true;
    this.backend = resolveBackend(backend);
    this.gpu = new GPU({ mode: this.backend.mode as 'cpu' });
    this.fn = entryFunction(module);
    this.indexUses = indexInputUses(this.fn);
    if ([...module.functions.values()].some((f) => f.graph.nodes.some((n) => n.op === 'call'))) throw new Error('the executor needs an inlined module (run the pass pipeline first)');
    for (const p of module.params) {
      const w = weights.get(p.name);
      if (w instanceof Float32Array) {
        if (w.length !== p.shape.reduce((a, b) => a * b, 1)) throw new Error(`weights '${p.name}': ${w.length} values for shape [${p.shape.join(', ')}]`);
        this.params.set(p.name, w);
      }
    }
    checkWeights(module, new Map([...weights].filter((e): e is [string, Tensor] => !(e[1] instanceof Float32Array))), [...this.params.keys()]);
    this.tables = options.tables ?? new Map();
    if (this.backend.simdContractions && !this.paramsAsArguments) this.placeTables(weights);
    for (const p of module.params) if (!this.params.has(p.name)) this.params.set(p.name, toFloat32(weights.get(p.name) as Tensor));
    // Constants are read-only here: one shared copy, so the pool's threads read them in place.
    // Weights passed per call (training) are the caller's to share (the Trainer does).
    if (this.backend.simdContractions && this.threads > 1 && !this.paramsAsArguments)
      for (const [name, w] of this.params) this.params.set(name, toShared(w));
  }

  private readonly tables: Map<string, TableMemory>;
  private readonly noteSet = new Set<string>();

  /** What runs slower than it could on this backend, and why (for run, bench and train to print). */
  notes(): string[] {
    return [...this.noteSet];
  }

  /**
   * Constant tables read by the fused expert ops move into table memories of their own (a copy
   * the shared-memory copy below would make anyway), so the SIMD kernels read their rows in place.
   */
  private placeTables(weights: ReadonlyMap<string, Tensor | Float32Array>): void {
    for (const node of this.fn.graph.nodes) {
      if (node.op !== 'expert_act' && node.op !== 'expert_out') continue;
      const src = this.source(node.inputs[1]!);
      if (src.kind !== 'param' || this.tables.has(src.name)) continue;
      const cells = this.module.params.find((p) => p.name === src.name)!.shape.reduce((a, b) => a * b, 1);
      const rowSize = this.fn.graph.typeOf(node.inputs[1]!).shape.at(-1)!.evaluate(() => undefined);
      if (rowSize === undefined || tableMemoryUnfit(cells / rowSize, rowSize)) continue;
      const table = new TableMemory(cells / rowSize, rowSize, { pool: this.threads > 1 ? this.pool : undefined });
      const w = weights.get(src.name)!;
      // Seeded and loaded weights are written straight into the table memory (no second copy).
      if (w instanceof Float32Array) table.weights.set(w);
      else fillFloat32(w, table.weights);
      this.params.set(src.name, table.weights);
      this.tables.set(src.name, table);
    }
  }

  private table(name: string, rowSize: number): TableMemory | string {
    const have = this.tables.get(name);
    if (have) return have.rowSize === rowSize ? have : `its table memory holds rows of ${have.rowSize} values, this op reads rows of ${rowSize}`;
    const w = this.params.get(name)!;
    const why = tableMemoryUnfit(w.length / rowSize, rowSize);
    if (why) return why;
    return this.paramsAsArguments ? 'parameters passed per call (training) are plain shared arrays, not table memories' : 'it was not placed in a table memory';
  }

  /** wasm-simd: threads of the worker pool (the calling thread included). */
  readonly threads: number;

  /** How the backend runs here, for reports: e.g. 'wasm-simd, 2 threads, relaxed SIMD'. */
  describe(): string {
    if (!this.backend.simdContractions) return this.backend.name;
    return `${this.backend.name}, ${this.threads} thread${this.threads === 1 ? '' : 's'}, ${this.gemm().relaxed ? 'relaxed SIMD' : 'plain SIMD128'}`;
  }
  private readonly relaxedSimd: boolean;
  private readonly viewOutputs: boolean;

  /** The generated kernels for the shapes run so far, as gpu.js sources (for review and goldens). */
  kernelSources(): string[] {
    return [...this.plans.values()].flat().map((s) => `// ${s.plan.label}: ${s.plan.outputLength} cells\n${this.sourceOf(s.plan)}`);
  }

  private sourceOf(plan: KernelPlan): string {
    const params = plan.args.flatMap((a, i) => (a.kind === 'value' ? [`a${i}`] : []));
    for (let s = 0; s < plan.earlierStages; s++) params.push(`st${s}`);
    return `function(${params.join(', ')}) {\n${plan.source}\n}`;
  }

  /** Number of kernels the current shapes need (for reports). */
  kernelCount(): number {
    return [...this.plans.values()].reduce((a, s) => a + s.length, 0);
  }

  async forward(inputs: ReadonlyMap<string, InputTensor>): Promise<ForwardResult> {
    const fn = this.fn;
    const dims = bindInputDims(fn, inputs as ReadonlyMap<string, Tensor>);
    const dimValue = (d: Dim) => d.evaluate((s) => dims.get(s))!;
    checkIndexInputs(this.indexUses, inputs, dimValue);
    const key = [...dims].map(([k, v]) => `${k}=${v}`).join(',');
    const shapeOf = (r: ValueRef) => fn.graph.typeOf(r).shape.map(dimValue);
    let steps = this.plans.get(key);
    if (!steps) {
      steps = this.build(shapeOf, dimValue);
      this.plans.set(key, steps);
    }
    const values = new Map<number, Float32Array[]>();
    fn.inputs.forEach((id) => {
      const data = inputs.get(fn.graph.node(id).attrs.name as string)!.data;
      values.set(id, [data instanceof Float32Array ? data : Float32Array.from(data)]);
    });
    const timings = new Map<string, number>();
    const read = (r: ValueRef): Float32Array => {
      const src = this.source(r);
      if (src.kind === 'param') return this.params.get(src.name)!;
      const v = values.get(src.ref.node);
      if (!v) throw new Error(`value %${src.ref.node} used before it was computed`);
      return v[src.ref.result]!;
    };
    let stageOutputs: Float32Array[] = [];
    for (const step of steps) {
      if (step.host) {
        const t0 = performance.now();
        try {
          values.set(step.node, await step.host(read));
        } catch (e) {
          // Generated host tasks report an out-of-range row (only NaN upstream causes one) by this prefix.
          const m = /NonFiniteIndex: ([^\n]*)/.exec(String((e as Error).message));
          if (m) throw new NonFiniteIndex(m[1]!);
          throw e;
        }
        timings.set(step.plan.label, (timings.get(step.plan.label) ?? 0) + performance.now() - t0);
        continue;
      }
      if (step.stage === 0) stageOutputs = [];
      const views = step.plan.views;
      const args = [
        ...step.plan.args.flatMap((a, i) => {
          if (a.kind !== 'value') return [];
          const data = a.perm ? permuteAxes(read(a.ref), a.perm.map((_, j) => a.shape[a.perm!.indexOf(j)]!), a.perm) : read(a.ref);
          const view = views?.get(i);
          return [view ? input(data, view) : data];
        }),
        ...stageOutputs.slice(0, step.plan.earlierStages),
      ];
      const t0 = performance.now();
      let out = step.kernel(...args) as Float32Array | Promise<Float32Array>;
      if (this.backend.asyncMode) out = await out;
      timings.set(step.plan.label, (timings.get(step.plan.label) ?? 0) + performance.now() - t0);
      if (!step.checked) {
        this.checkKernel(step);
        step.checked = true;
      }
      let flat = out as Float32Array;
      if (step.plan.grid) {
        const rows = out as unknown as Float32Array[];
        const [w] = step.plan.grid;
        flat = new Float32Array(rows.length * w);
        for (let y = 0; y < rows.length; y++) flat.set(rows[y]!, y * w);
      } else if (step.plan.vec4) {
        const cells = out as unknown as Float32Array[];
        flat = new Float32Array(cells.length * 4);
        for (let i = 0; i < cells.length; i++) flat.set(cells[i]!, i * 4);
      }
      if (step.plan.layout === 'pairs') {
        const half = flat.length / 2;
        const split = new Float32Array(flat.length);
        for (let t = 0; t < flat.length / 4; t++) {
          split[2 * t] = flat[4 * t]!;
          split[half + 2 * t] = flat[4 * t + 1]!;
          split[2 * t + 1] = flat[4 * t + 2]!;
          split[half + 2 * t + 1] = flat[4 * t + 3]!;
        }
        flat = split;
      }
      if (!step.last) {
        stageOutputs.push(flat);
        continue;
      }
      let offset = 0;
      values.set(step.node, step.plan.results.map((len) => flat.subarray(offset, (offset += len))));
    }
    // GL backends can produce -0 for an index 0; indices leave as plain non-negative numbers.
    const outputs = fn.outputs.map((o) => {
      // Views of parameters are always copied: a caller must not write into the weights.
      const data = this.viewOutputs && this.source(o).kind === 'value' ? read(o) : Float32Array.from(read(o));
      if (fn.graph.typeOf(o).dtype === 'index') for (let i = 0; i < data.length; i++) data[i] = data[i]! + 0;
      return { shape: shapeOf(o), data };
    });
    return { outputs, timings };
  }

  /** Follows views back to the value (or parameter) that holds the data. */
  private source(r: ValueRef): { kind: 'value'; ref: ValueRef } | { kind: 'param'; name: string } {
    let cur = r;
    for (;;) {
      const n = this.fn.graph.node(cur.node);
      if (n.op === 'param') return { kind: 'param', name: n.attrs.name as string };
      if (!VIEW_OPS.has(n.op)) return { kind: 'value', ref: cur };
      cur = n.inputs[0]!;
    }
  }

  /** Seed and step of training-time noise (dropout, Gumbel): set by the trainer before each step. */
  noise = { seed: 0, step: 0 };

  private build(shapeOf: (r: ValueRef) => number[], dimValue: (d: Dim) => number): Step[] {
    const fn = this.fn;
    const live = liveNodes(fn);
    const steps: Step[] = [];
    for (const node of fn.graph.nodes) {
      if (!live.has(node.id) || node.op === 'input' || node.op === 'param' || VIEW_OPS.has(node.op)) continue;
      if (HOST_NOISE_OPS.has(node.op)) {
        steps.push(this.hostNoise(node.id));
        continue;
      }
      const own = this.backend.simdContractions ? this.ownStep(node, shapeOf) : undefined;
      if (own) {
        steps.push(own);
        continue;
      }
      if (this.paramsAsArguments && node.op === 'gather' && this.source(node.inputs[0]!).kind === 'param') {
        steps.push(this.hostGather(node.id, node.inputs[0]!, node.inputs[1]!, shapeOf(node.inputs[0]!)));
        continue;
      }
      const args: KernelArg[] = node.inputs.map((r) => {
        const src = this.source(r);
        return src.kind === 'param' && !this.paramsAsArguments ? { kind: 'param', name: src.name, shape: shapeOf(r) } : { kind: 'value', ref: src.kind === 'param' ? r : src.ref, shape: shapeOf(r) };
      });
      const plans = renderKernels(node, args, node.types.map((_, i) => shapeOf({ node: node.id, result: i })), dimValue, this.training);
      if (this.backend.simdContractions && plans.every(taskable)) {
        steps.push(this.kernelTaskStep(node.id, plans));
        continue;
      }
      for (const a of args)
        if (a.kind === 'value' && a.shape.reduce((x, y) => x * y, 1) > FLAT_INDEX_LIMIT)
          throw kernelLimit(node, this.backend.name, `${node.op} reads an intermediate of ${a.shape.join(' x ')} cells, beyond the 2^24 cells gpu.js indexes correctly; use fewer tokens per call`);
      plans.forEach((plan, stage) => {
        if (plan.outputLength > FLAT_INDEX_LIMIT) throw kernelLimit(node, this.backend.name, `${plan.label} would write ${plan.outputLength} cells, beyond the 2^24 cells gpu.js indexes correctly; use fewer tokens per call`);
        steps.push({ node: node.id, stage, last: stage === plans.length - 1, plan, kernel: this.createKernel(plan), checked: false });
      });
    }
    return steps;
  }

  /**
   * wasm-simd: the gpu.js kernels of a node run as generated tasks on the worker pool (same
   * source, cells looped), stage after stage; outputs in buffers kept across calls.
   */
  private kernelTaskStep(node: number, plans: KernelPlan[]): Step {
    const tasks = plans.map((p) => kernelTask(p, `kernel:${sourceHash(p.source)}:${p.args.map((a) => a.kind[0]).join('')}:${p.earlierStages}`));
    const outs = plans.map((p) => reused(p.outputLength));
    const host = async (read: (r: ValueRef) => Float32Array) => {
      const stages: Float32Array[] = [];
      for (const [s, plan] of plans.entries()) {
        const args = plan.args.map((a) => {
          if (a.kind === 'param') return a.perm ? this.permuted(a.name, a.perm) : this.params.get(a.name)!;
          return a.perm ? permuteAxes(read(a.ref), a.perm.map((_, j) => a.shape[a.perm!.indexOf(j)]!), a.perm) : read(a.ref);
        });
        const out = outs[s]!();
        await this.pool.run(tasks[s]!, [out, ...args, ...stages.slice(0, plan.earlierStages)], plan.outputLength, { minLanes: 4096, outputs: [0] });
        stages.push(out);
      }
      let offset = 0;
      return plans[plans.length - 1]!.results.map((len) => stages[stages.length - 1]!.subarray(offset, (offset += len)));
    };
    const label = plans.length === 1 ? `${plans[0]!.label} (host)` : `${plans[0]!.label.split(':')[0]} (host)`;
    const plan: KernelPlan = { label, args: [], source: '', outputLength: 0, results: [], loopMax: 1, earlierStages: 0 };
    return { node, stage: 0, last: true, plan, kernel: () => undefined, checked: true, host };
  }

  private gemmKernel: WasmGemm | undefined;
  private poolInstance: WorkerPool | undefined;

  /** The wasm-simd backend's threads (shared by every executor of this thread count). */
  get pool(): WorkerPool {
    return (this.poolInstance ??= workerPool(this.threads));
  }

  private gemm(): WasmGemm {
    return (this.gemmKernel ??= new WasmGemm({ pool: this.pool, relaxed: this.relaxedSimd }));
  }

  /** An op as one of the wasm-simd backend's own steps (runtime/host-steps.ts), when it has one. */
  private ownStep(node: Node, shapeOf: (r: ValueRef) => number[]): Step | undefined {
    const ctx: HostContext = {
      fn: this.fn,
      pool: this.pool,
      gemm: () => this.gemm(),
      source: (r) => this.source(r),
      permuted: (name, perm) => this.permuted(name, perm),
      param: (name) => this.params.get(name)!,
      paramsAsArguments: this.paramsAsArguments,
      permuteAxes,
      table: (name, rowSize) => this.table(name, rowSize),
      note: (message) => this.noteSet.add(message),
    };
    let own;
    try {
      own = hostStep(ctx, node, shapeOf);
    } catch (e) {
      if (e instanceof GemmMemoryExceeded) throw kernelLimit(node, this.backend.name, `${e.message}; use fewer tokens per call`);
      throw e;
    }
    if (!own) return undefined;
    const plan: KernelPlan = { label: own.label, args: [], source: '', outputLength: 0, results: [], loopMax: 1, earlierStages: 0 };
    return { node: node.id, stage: 0, last: true, plan, kernel: () => undefined, checked: true, host: own.host };
  }

  /**
   * Dropout and Gumbel noise on the host: the same counter-based draws as the reference
   * interpreter (a function of seed, salt, element and step), so every backend agrees exactly.
   */
  private hostNoise(id: number): Step {
    const node = this.fn.graph.node(id);
    const host = (read: (r: ValueRef) => Float32Array) => {
      const x = read(node.inputs[0]!);
      if (!this.training) return [x];
      const out = new Float32Array(x.length);
      const key = noiseKey(this.noise.seed, node.attrs.salt as number);
      if (node.op === 'dropout') dropoutValues(x, out, node.attrs.p as number, key, this.noise.step);
      else gumbelValues(x, out, node.attrs.scale as number, key, this.noise.step);
      return [out];
    };
    const plan: KernelPlan = { label: `${node.op} (host)`, args: [], source: '', outputLength: 0, results: [], loopMax: 1, earlierStages: 0 };
    return { node: id, stage: 0, last: true, plan, kernel: () => undefined, checked: true, host };
  }

  /** Copies the selected rows of a parameter table on the host: the table never enters kernel memory. */
  private hostGather(node: number, table: ValueRef, indices: ValueRef, tableShape: number[]): Step {
    const rowSize = tableShape.slice(1).reduce((a, b) => a * b, 1);
    const rows = tableShape[0]!;
    const host = (read: (r: ValueRef) => Float32Array) => {
      const t = read(table), idx = read(indices);
      const out = new Float32Array(idx.length * rowSize);
      for (let i = 0; i < idx.length; i++) {
        const r = idx[i]!;
        if (!(r >= 0 && r < rows)) throw new NonFiniteIndex(`gather: index ${r} is out of range for ${rows} rows (the values it was selected from are not finite)`);
        out.set(t.subarray(r * rowSize, r * rowSize + rowSize), i * rowSize);
      }
      return [out];
    };
    const plan: KernelPlan = { label: 'gather (host)', args: [], source: '', outputLength: 0, results: [], loopMax: 1, earlierStages: 0 };
    return { node, stage: 0, last: true, plan, kernel: () => undefined, checked: true, host };
  }

  private createKernel(plan: KernelPlan): (...args: unknown[]) => unknown {
    const constants: Record<string, unknown> = {};
    plan.args.forEach((a, i) => {
      if (a.kind === 'value') return;
      const data = a.perm ? this.permuted(a.name, a.perm) : this.params.get(a.name)!;
      const cells = a.shape.reduce((x, y) => x * y, 1);
      const view = plan.views?.get(i);
      constants[`p${i}`] = view ? input(data, view) : cells >= FLAT_INDEX_LIMIT ? input(data, [cells / a.shape[0]!, a.shape[0]!]) : data;
    });
    const source = this.sourceOf(plan);
    const create = this.gpu.createKernel as unknown as (src: string, settings: object) => (...args: unknown[]) => unknown;
    return create.call(this.gpu, source, {
      ...(plan.vec4 ? { returnType: 'Array(4)' } : {}),
      output: plan.grid ?? [plan.outputLength],
      constants,
      loopMaxIterations: Math.max(1000, plan.loopMax + 1),
      tactic: 'precision',
      precision: 'single',
      asyncMode: this.backend.asyncMode,
    });
  }

  private readonly permutedCache = new Map<string, Float32Array>();

  /** A parameter with its axes permuted (made once per layout), for kernels that read it so. */
  private permuted(name: string, perm: number[]): Float32Array {
    const key = `${name}:${perm.join(',')}`;
    let out = this.permutedCache.get(key);
    if (out) return out;
    const shape = this.module.params.find((p) => p.name === name)!.shape;
    out = permuteAxes(this.params.get(name)!, shape, perm);
    this.permutedCache.set(key, out);
    return out;
  }

  /** Never let a kernel fall back to another backend silently. */
  private checkKernel(step: Step): void {
    const k = step.kernel as unknown as { kernel?: { constructor: { name: string }; fallbackReason?: string | null } };
    const cls = k.kernel?.constructor?.name;
    if (cls !== this.backend.kernelClass)
      throw new KernelFallback(`kernel '${step.plan.label}' ran as ${cls ?? 'unknown'} instead of ${this.backend.kernelClass}${k.kernel?.fallbackReason ? `: ${k.kernel.fallbackReason}` : ''}`);
  }

  /**
   * GFLOP/s of the backend's best 512^3 matmul: gpu.js's own fastest kernel shape (2-D views),
   * or on wasm-simd peerc's SIMD kernel: the yardstick for the generated contraction kernels.
   */
  async matmulReference(runs = 3): Promise<number> {
    const n = 512;
    const m = new Float32Array(n * n).map((_, i) => (i % 13) * 0.01);
    let run: () => unknown;
    if (this.backend.simdContractions) {
      // The backend's own contraction kernel is the yardstick there.
      const gemm = this.gemm();
      run = () => gemm.batched(m, m, 1, n, n, n);
    } else {
      const create = this.gpu.createKernel as unknown as (src: string, settings: object) => (...args: unknown[]) => unknown;
      const k = create.call(this.gpu, `function(a, b) { let acc = 0.0; for (let s = 0; s < ${n}; s++) { acc += a[this.thread.y][s] * b[s][this.thread.x]; } return acc; }`, { output: [n, n], asyncMode: this.backend.asyncMode, tactic: 'precision' });
      run = () => k(input(m, [n, n]), input(m, [n, n]));
    }
    const times: number[] = [];
    for (let i = 0; i <= runs; i++) {
      const t0 = performance.now();
      await run();
      if (i > 0) times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return (2 * n ** 3) / times[Math.floor(times.length / 2)]! / 1e6;
  }

  destroy(): void {
    this.gpu.destroy();
  }
}
