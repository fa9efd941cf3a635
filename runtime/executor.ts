// Runs an IR module's entry on a backend (runtime/backends/): binds dims from the inputs, has
// the backend plan every node once per shape, runs the steps in order, and reports the backend
// as it ran, per-kernel times and what ran slower than it could. Views and counter-based noise
// are the executor's own steps, the same on every backend; it never asks which backend it is.
import type { IRFunction, IRModule, Node, ValueRef } from '../src/ir/graph.js';
import { liveNodes } from '../src/ir/graph.js';
import { bindInputDims, checkWeights, entryFunction } from '../src/interp/interpreter.js';
import { checkIndexInputs, checkIndexOperand, indexInputUses, unboundedIndexOperands, type IndexUse } from '../src/interp/input-checks.js';
import { dropoutValues, gumbelValues, noiseKey } from '../src/ir/ops/noise.js';
import { paramFloat32, sharedFloat32 } from './pool.js';
import type { Tensor } from '../src/interp/tensor.js';
import type { Dim } from '../src/shapes/dim.js';
import { createBackend, resolveBackend, type BackendName, type RegisteredBackend } from './backends/info.js';
import { dataSource, fillFloat32, isDeviceValue, NonFiniteIndex, outerRows, permuteAxes, VIEW_OPS, type Backend, type DeviceValue, type FactoredRows, type PlanContext, type PlannedStep, type Read, type RowsUpdate, type RowsUpdated } from './backends/backend.js';
import type { WorkerPool } from './pool.js';
import type { SparseGrad } from './backends/row-sums.js';
import { attrsOf } from '../src/ir/ops/types.js';
import { input } from '../src/ir/ops/leaves.js';
import { dropout, gumbel } from '../src/ir/ops/noise.js';

export { KernelFallback, NonFiniteIndex, permuteAxes, VIEW_OPS } from './backends/backend.js';

export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

export interface ForwardResult {
  outputs: F32Tensor[];
  /** Milliseconds per kernel label, summed over this call. */
  timings: Map<string, number>;
}

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
   * A backend that keeps parameters on a device (webgpu) keeps them there instead and relies on
   * paramsChanged: report every change to a parameter array.
   */
  paramsAsArguments?: boolean;
  /** Backends with a worker pool: threads, the caller included (default: PEERC_THREADS or the cores available). */
  threads?: number;
  /**
   * Return outputs as the executor's own buffers, valid until its next forward (the trainer
   * consumes them within the step), instead of copies: no per-step copy of the gradient rows.
   */
  viewOutputs?: boolean;
  /** SIMD backends: use relaxed-SIMD multiply-add where the engine has it (default); false forces the plain SIMD128 path. */
  relaxedSimd?: boolean;
  /** webgpu: bind at most this many bytes per buffer (below the adapter's limit; tests split tables with it). */
  maxBindingBytes?: number;
  /** webgpu: false keeps to kernels without subgroup operations where the adapter has them. */
  subgroups?: boolean;
}

interface Step extends PlannedStep {
  node: number;
}

/** Float32 copy of a reference tensor, element by element for lazy (seeded) ones. */
export function toFloat32(t: Tensor, param?: { readonly sparse: boolean }): Float32Array {
  // Shared memory, so a backend's worker threads read the weights without a copy; an expert
  // table where the kernels read it in place.
  return fillFloat32(t, param ? paramFloat32(param, t.size) : sharedFloat32(t.size));
}

export class Executor {
  readonly backend: RegisteredBackend;
  private readonly impl: Backend;
  private readonly fn: IRFunction;
  private readonly plans = new Map<string, Step[]>();
  /** The float32 weights kernels read; with paramsAsArguments, updating them in place updates the model. */
  readonly params: Map<string, Float32Array>;
  readonly training: boolean;
  private readonly paramsAsArguments: boolean;
  private readonly viewOutputs: boolean;
  private readonly indexUses: Map<string, IndexUse[]>;

  /** Weights are reference tensors, or float32 arrays used as they are (no copy). */
  constructor(readonly module: IRModule, weights: ReadonlyMap<string, Tensor | Float32Array>, backend: BackendName | 'auto', options: ExecutorOptions = {}) {
    this.training = options.training ?? false;
    this.paramsAsArguments = options.paramsAsArguments ?? false;
    this.viewOutputs = options.viewOutputs ?? false;
    this.backend = resolveBackend(backend);
    this.fn = entryFunction(module);
    this.indexUses = indexInputUses(this.fn);
    if ([...module.functions.values()].some((f) => f.graph.nodes.some((n) => n.op === 'call'))) throw new Error('the executor needs an inlined module (run the pass pipeline first)');
    const given = new Map<string, Float32Array>();
    for (const p of module.params) {
      const w = weights.get(p.name);
      if (w instanceof Float32Array) {
        if (w.length !== p.shape.reduce((a, b) => a * b, 1)) throw new Error(`weights '${p.name}': ${w.length} values for shape [${p.shape.join(', ')}]`);
        given.set(p.name, w);
      }
    }
    checkWeights(module, new Map([...weights].filter((e): e is [string, Tensor] => !(e[1] instanceof Float32Array))), [...given.keys()]);
    this.impl = createBackend(this.backend, { threads: options.threads, relaxedSimd: options.relaxedSimd, maxBindingBytes: options.maxBindingBytes, subgroups: options.subgroups });
    this.params = this.impl.adoptParams(module, this.fn, weights, given, !this.paramsAsArguments);
  }

  /**
   * Moves the parameter tables the fused expert ops read to where the backend reads them in place
   * (BackendInfo.tablesInPlace), for training; returns the arrays that now hold them, by name (the
   * caller updates those from now on). Tables that stay where they are get the backend's note.
   */
  placeTables(): Map<string, Float32Array> {
    const moved = new Map<string, Float32Array>();
    if (!this.impl.placeTable) return moved;
    for (const node of this.fn.graph.nodes) {
      if (node.op !== 'expert_act' && node.op !== 'expert_out') continue;
      const src = dataSource(this.fn, node.inputs[1]!);
      if (src.kind !== 'param' || moved.has(src.name)) continue;
      const rowSize = this.fn.graph.typeOf(node.inputs[1]!).shape.at(-1)!.evaluate(() => undefined);
      if (rowSize === undefined) continue;
      const placed = this.impl.placeTable(src.name, this.params.get(src.name)!, rowSize);
      if (typeof placed === 'string') continue;
      this.params.set(src.name, placed);
      moved.set(src.name, placed);
    }
    return moved;
  }

  /** Optimizer state arrays beside a placed table (placeTables), or undefined where the backend keeps none. */
  tableState(name: string, count: number): Float32Array[] | undefined {
    const s = this.impl.tableState?.(name, count);
    return Array.isArray(s) ? s : undefined;
  }

  /** Factored rows added into table `key`'s zero-filled dense gradient by the backend's kernels: how (a timing label), or undefined where it cannot. */
  addFactoredRows(full: Float32Array, ids: ArrayLike<number>, rows: FactoredRows, rowSize: number, key: string): Promise<string | undefined> {
    return this.impl.addFactoredRows ? this.impl.addFactoredRows(full, ids, rows, rowSize, key) : Promise.resolve(undefined);
  }

  /** The optimizer's update in the backend, of a placed table's rows from the last sumRows (done: false where it cannot). */
  updateRows(name: string, sparse: SparseGrad, update: RowsUpdate, denseToo = false): Promise<RowsUpdated> {
    return this.impl.updateRows ? this.impl.updateRows(name, sparse, update, denseToo) : Promise.resolve({ done: false, finite: true });
  }

  /** Parameters whose host arrays lag the backend's device (its row updates ran there since the last syncToHost). */
  paramsNewerOnDevice(): string[] {
    return [...this.params].filter(([, data]) => this.impl.newerOnDevice?.(data) === true).map(([name]) => name);
  }

  /** What the backend's row updates left newer on its device, copied back into the host arrays (a no-op elsewhere). */
  async syncToHost(): Promise<void> {
    await this.impl.syncToHost?.();
  }

  /** Threads the backend runs on (the calling thread included). */
  get threads(): number {
    return this.impl.threads;
  }

  /** The backend's worker pool, where it has more than one thread. */
  get pool(): WorkerPool | undefined {
    return this.impl.pool();
  }

  /** How the backend runs here, for reports: e.g. 'wasm-simd, 2 threads, relaxed SIMD'. */
  describe(): string {
    return this.impl.describe();
  }

  /** What runs slower than it could on this backend, and why (for run, bench and train to print). */
  notes(): string[] {
    return this.impl.notes();
  }

  /** Bytes copied between host and device memory so far, where the backend has a device of its own. */
  transfers(): { up: number; down: number; params: number } | undefined {
    return this.impl.transfers?.();
  }

  /** The generated kernels for the shapes run so far, as gpu.js sources (for review and goldens). */
  kernelSources(): string[] {
    return [...this.plans.values()].flat().flatMap((s) => s.sources ?? []);
  }

  /** Number of kernels the current shapes need (for reports). */
  kernelCount(): number {
    return [...this.plans.values()].flat().reduce((a, s) => a + s.kernels, 0);
  }

  async forward(inputs: ReadonlyMap<string, InputTensor>): Promise<ForwardResult> {
    const fn = this.fn;
    const dims = bindInputDims(fn, inputs as ReadonlyMap<string, Tensor>);
    const dimValue = (d: Dim) => d.evaluate((s) => dims.get(s))!;
    checkIndexInputs(this.indexUses, inputs, dimValue);
    const key = [...dims].map(([k, v]) => `${k}=${v}`).join(',');
    let steps = this.plans.get(key);
    if (!steps) {
      steps = this.build(dimValue);
      this.plans.set(key, steps);
    }
    const values = new Map<number, (Float32Array | DeviceValue)[]>();
    fn.inputs.forEach((id) => {
      const data = inputs.get(attrsOf(input, fn.graph.node(id)).name)!.data;
      values.set(id, [data instanceof Float32Array ? data : Float32Array.from(data)]);
    });
    const timings = new Map<string, number>();
    const time = (label: string, ms: number) => timings.set(label, (timings.get(label) ?? 0) + ms);
    const readAny = (r: ValueRef): Float32Array | DeviceValue => {
      const src = this.source(r);
      if (src.kind === 'param') return this.params.get(src.name)!;
      const v = values.get(src.ref.node);
      if (!v) throw new Error(`value %${src.ref.node} used before it was computed`);
      return v[src.ref.result]!;
    };
    const read = (r: ValueRef): Float32Array => {
      const v = readAny(r);
      if (isDeviceValue(v)) throw new Error(`value %${r.node} is still on the device (the executor downloads a host step's inputs first)`);
      return v;
    };
    // A value still on the device comes to the host before a host step or the caller reads it.
    const toHost = async (r: ValueRef) => {
      const src = this.source(r);
      if (src.kind === 'param') return;
      const v = values.get(src.ref.node)?.[src.ref.result];
      if (v && isDeviceValue(v)) values.get(src.ref.node)![src.ref.result] = await v.download();
    };
    for (const step of steps) {
      const t0 = performance.now();
      try {
        if (step.runOnDevice) values.set(step.node, await step.runOnDevice(readAny, time));
        else {
          for (const r of fn.graph.node(step.node).inputs) await toHost(r);
          values.set(step.node, await step.run(read, time));
        }
      } catch (e) {
        // Generated host tasks report an out-of-range row (only NaN upstream causes one) by this prefix.
        const m = /NonFiniteIndex: ([^\n]*)/.exec(String((e as Error).message));
        if (m && !(e instanceof NonFiniteIndex)) throw new NonFiniteIndex(m[1]!);
        throw e;
      }
      if (!step.timesItself) time(step.label, performance.now() - t0);
    }
    for (const o of fn.outputs) await toHost(o);
    const shapeOf = (r: ValueRef) => fn.graph.typeOf(r).shape.map(dimValue);
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
    return dataSource(this.fn, r);
  }

  /** Seed and step of training-time noise (dropout, Gumbel): set by the trainer before each step. */
  noise = { seed: 0, step: 0 };

  private build(dimValue: (d: Dim) => number): Step[] {
    const fn = this.fn;
    const ctx: PlanContext = {
      fn,
      module: this.module,
      training: this.training,
      paramsAsArguments: this.paramsAsArguments,
      source: (r) => this.source(r),
      param: (name) => this.params.get(name)!,
      permuted: (name, perm) => this.permuted(name, perm),
      shapeOf: (r) => fn.graph.typeOf(r).shape.map(dimValue),
      dimValue,
    };
    const live = liveNodes(fn);
    const steps: Step[] = [];
    for (const node of fn.graph.nodes) {
      if (!live.has(node.id) || node.op === 'input' || node.op === 'param' || VIEW_OPS.has(node.op)) continue;
      const step: Step = { node: node.id, ...(HOST_NOISE_OPS.has(node.op) ? this.hostNoise(node) : this.impl.plan(node, ctx)) };
      steps.push(this.checkingIndices(step, node, dimValue));
    }
    return steps;
  }

  /**
   * A step whose index operands nothing bounds at compile time (computed from an input or an
   * index buffer) checks them before it runs: a kernel would read outside its table silently.
   */
  private checkingIndices(step: Step, node: Node, dimValue: (d: Dim) => number): Step {
    const operands = unboundedIndexOperands(this.fn, node, dimValue);
    if (operands.length === 0) return step;
    const run = step.run;
    return {
      ...step,
      // The check reads the indices on the host, so the step takes host values.
      runOnDevice: undefined,
      run: (read, time) => {
        for (const o of operands) checkIndexOperand(this.fn, node, o, read(node.inputs[o.input]!));
        return run(read, time);
      },
    };
  }

  /**
   * Dropout and Gumbel noise on the host: the same counter-based draws as the reference
   * interpreter (a function of seed, salt, element and step), so every backend agrees exactly.
   */
  private hostNoise(node: Node): PlannedStep {
    const run = (read: Read) => {
      const x = read(node.inputs[0]!);
      if (!this.training) return [x];
      const out = new Float32Array(x.length);
      if (node.op === 'dropout') {
        const { p, salt } = attrsOf(dropout, node);
        dropoutValues(x, out, p, noiseKey(this.noise.seed, salt), this.noise.step);
      } else {
        const { scale, salt } = attrsOf(gumbel, node);
        gumbelValues(x, out, scale, noiseKey(this.noise.seed, salt), this.noise.step);
      }
      return [out];
    };
    return { label: `${node.op} (host)`, run, kernels: 1 };
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

  /**
   * Parameter `name`'s array changed in place (`rows` of `rowSize` floats, or all of it). With
   * paramsAsArguments, every change must be reported so: a backend keeping parameters on a
   * device (webgpu) reads its copies, brought up to date from the reports, not the array.
   */
  paramsChanged(name: string, rows?: ArrayLike<number>, rowSize?: number): void {
    for (const key of [...this.permutedCache.keys()]) if (key.startsWith(`${name}:`)) this.permutedCache.delete(key);
    const data = this.params.get(name);
    if (data) this.impl.paramsChanged?.(data, rows, rowSize);
  }

  /** Sums gradient rows per touched table row on the backend (`key` names the table). */
  /** Factored rows summed by the backend's own kernel (a placed table's), or undefined where it has none for `key`. */
  sumFactoredRowsByBackend(ids: ArrayLike<number>, rows: FactoredRows, rowSize: number, key: string): Promise<SparseGrad> | undefined {
    return this.impl.sumFactoredRows?.(ids, rows, rowSize, key);
  }

  /** `forUpdate`: the sums go to updateRows next (a device backend may keep them there). */
  sumRows(ids: ArrayLike<number>, grads: Float32Array | FactoredRows, rowSize: number, key: string, forUpdate = false): Promise<SparseGrad> {
    if (grads instanceof Float32Array) return this.impl.sumRows(ids, grads, rowSize, key);
    return this.impl.sumFactoredRows?.(ids, grads, rowSize, key, forUpdate) ?? this.impl.sumRows(ids, outerRows(grads, rowSize), rowSize, key);
  }

  /** GB/s of random row reads in the backend's largest table: the yardstick for the per-slot expert kernels. */
  rowReadReference(): Promise<{ gbPerS: number; rows: number; rowBytes: number } | undefined> {
    return this.impl.rowReadReference ? this.impl.rowReadReference() : Promise.resolve(undefined);
  }

  /** GFLOP/s of the backend's best 512^3 matmul: the yardstick for the generated contraction kernels. */
  matmulReference(runs = 3): Promise<number> {
    return this.impl.matmulReference(runs);
  }

  destroy(): void {
    this.impl.destroy();
  }
}
