// The runtime API that generated modules (peerc compile) build on. Pure ESM without Node
// built-ins, so the same bundle runs in Node and in a browser.
import type { IRModule, ParamInfo } from '../src/ir/graph.js';
import { entryFunction } from '../src/interp/interpreter.js';
import { moduleFromJSON, type ModuleJSON } from '../src/ir/serialize.js';
import { initialTensor } from '../src/interp/init.js';
import { Tensor } from '../src/interp/tensor.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { BACKENDS, resolveBackend, unavailableReason, type BackendName } from './backends/info.js';
import { Executor, toFloat32 } from './executor.js';
import { paramFloat32 } from './pool.js';
import { Trainer } from './train/trainer.js';
import { checkOptimizerConfig, DEFAULT_OPTIMIZER, type OptimizerConfig } from './train/optim.js';
import { fail } from '../src/diagnostics/diagnostic.js';
import { checkFiniteOutputs, checkWeightValues } from '../src/interp/input-checks.js';
export { CompileError as PeercError } from '../src/diagnostics/diagnostic.js';
import type { Batch } from './train/data.js';
import { checkpointTensors, encodeCheckpoint, libraryMeta, restoreOptimizerState, type LibraryRun } from './train/checkpoint-format.js';
import { optimize, type Lowering } from '../src/passes/pipeline.js';
export type { Lowering } from '../src/passes/pipeline.js';
export type { OptimizerConfig } from './train/optim.js';

export type { ModuleJSON } from '../src/ir/serialize.js';
export { BACKENDS, resolveBackend, unavailableReason, type BackendName };

export interface TensorIn {
  shape: readonly number[];
  data: ArrayLike<number>;
}

export interface TensorOut {
  shape: number[];
  data: Float32Array;
}

export interface ModelOptions {
  /** A gpu.js backend, or 'auto' (the fastest measured here that is available). */
  backend?: BackendName | 'auto';
  /** Kernels: 'fused' (default) or 'naive' (one per op). */
  lowering?: Lowering;
  /** wasm-simd: worker threads, the caller included (default: the cores available; 1 where the page is not cross-origin isolated). */
  threads?: number;
}

/** The seeded initial weights, bit-identical to `peerc run --seed` and `peerc init`. */
export function seededWeights(params: readonly ParamInfo[], seed: number): Map<string, Float32Array> {
  return new Map(params.map((p) => [p.name, toFloat32(initialTensor(p, seed), p)]));
}

/** Weights from a safetensors file's bytes, checked against the parameters' shapes and for NaN. */
export function safetensorsWeights(params: readonly ParamInfo[], bytes: Uint8Array, file = 'weights'): Map<string, Float32Array> {
  const { tensors } = readSafetensors(bytes, file);
  return new Map(
    params.map((p) => {
      // A peerc train checkpoint names the weights param.NAME (beside the optimizer's state).
      const t = tensors.get(p.name) ?? tensors.get(`param.${p.name}`);
      if (!t) fail('PEER0601', null, { file, name: p.name, kind: `${p.role} ${p.dtype}[${p.shape.join(', ')}]` });
      if (t.shape.join() !== p.shape.join()) fail('PEER0602', null, { name: p.name, expected: `[${p.shape.join(', ')}]`, found: `[${t.shape.join(', ')}]` });
      checkWeightValues(p, t.data, t.shape, file);
      const w = paramFloat32(p, t.data.length); // shared: wasm-simd threads read and train it in place
      w.set(t.data);
      return [p.name, w];
    }),
  );
}

/**
 * Inputs from a library caller as reference tensors, checked before anything runs: every
 * input present and no unknown ones, shapes of whole numbers whose product is the data's
 * length (ranks, dims, dtypes and index ranges are checked by the executor, PEER0602/0603).
 */
export function tensorsIn(inputs: Record<string, TensorIn>, dtypes: Record<string, 'f32' | 'index'>, what = 'the inputs'): Map<string, Tensor> {
  if (typeof inputs !== 'object' || inputs === null) fail('PEER0602', null, { name: what, expected: `an object with the tensors ${Object.keys(dtypes).join(', ')}`, found: String(inputs) });
  for (const name of Object.keys(inputs))
    if (!(name in dtypes)) fail('PEER0602', null, { name, expected: `one of the inputs ${Object.keys(dtypes).join(', ')}`, found: 'an unknown input' });
  const out = new Map<string, Tensor>();
  for (const [name, dtype] of Object.entries(dtypes)) {
    const t = inputs[name];
    if (t === undefined) fail('PEER0601', null, { file: what, name, kind: `${dtype} input` });
    const shape = (t as { shape?: unknown }).shape;
    const data = (t as { data?: ArrayLike<number> }).data;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0))
      fail('PEER0602', null, { name, expected: 'a shape of whole numbers, e.g. { shape: [2, 3], data }', found: JSON.stringify(shape) ?? 'no shape' });
    const size = (shape as number[]).reduce((a, b) => a * b, 1);
    if (!data || typeof data.length !== 'number') fail('PEER0602', null, { name, expected: `data of ${size} numbers`, found: 'no data' });
    if (data.length !== size) fail('PEER0602', null, { name, expected: `${size} values for shape [${shape.join(', ')}]`, found: `${data.length}` });
    out.set(name, new Tensor(dtype, [...(shape as number[])], Float64Array.from(data)));
  }
  return out;
}

function inputDtypesOf(m: IRModule): Record<string, 'f32' | 'index'> {
  const fn = entryFunction(m);
  return Object.fromEntries(fn.inputs.map((id) => [fn.graph.node(id).attrs.name as string, fn.graph.node(id).types[0]!.dtype]));
}

/** A compiled program with its weights on one backend; kernels are generated per input shape. */
export class CompiledModel {
  private readonly executor: Executor;
  /** The entry's inputs and their dtypes. */
  readonly inputDtypes: Record<string, 'f32' | 'index'>;

  /** `beforeForward`: a trainer's syncWeights, so a model of its weights reads what the device updated. */
  constructor(ir: ModuleJSON, weights: ReadonlyMap<string, Float32Array>, options: ModelOptions = {}, private readonly beforeForward?: () => Promise<void>) {
    const m = moduleFromJSON(ir);
    this.inputDtypes = inputDtypesOf(m);
    this.executor = new Executor(optimize(m, { lowering: options.lowering ?? 'fused' }), weights, options.backend ?? 'auto', { threads: options.threads });
  }

  /** The backend every kernel was verified to run on. */
  get backend(): BackendName {
    return this.executor.backend.name;
  }

  /** The backend as it runs here, e.g. 'wasm-simd, 2 threads, plain SIMD128'. */
  get backendDetail(): string {
    return this.executor.describe();
  }

  /** Runs the model; inputs, index ranges and outputs are checked (coded errors, never a silent NaN). */
  async forward(inputs: Record<string, TensorIn>, dtypes: Record<string, 'f32' | 'index'> = this.inputDtypes): Promise<{ outputs: TensorOut[]; timings: Map<string, number> }> {
    await this.beforeForward?.();
    const r = await this.executor.forward(tensorsIn(inputs, dtypes));
    checkFiniteOutputs(r.outputs);
    return r;
  }

  destroy(): void {
    this.executor.destroy();
  }
}

export interface TrainOptions extends ModelOptions {
  /** Optimizer, learning rate, schedule, clipping; defaults: AdamW, lr 1e-3, cosine over `steps`. */
  optimizer?: Partial<OptimizerConfig>;
  /** Seed of training-time noise (dropout, Gumbel noise); default 0. */
  seed?: number;
}

export interface TrainStep {
  /** The objective: the task's loss plus the program's aux_loss terms, if any. */
  loss: number;
  /** The weighted sum of the aux_loss terms, where the program has any. */
  aux?: number;
  /** The program's metric(x, value, name) values by name, where it has any. */
  metrics?: Record<string, number>;
  lr: number;
  gradNorm: number;
  ms: number;
}

/** A validation batch's figures; `experts` per @sparse table and, for a table several calls share, per call (`U (line 12)`). */
export interface EvalFigures {
  loss: number;
  accuracy: number;
  experts: { param: string; usage: number; unevenness: number; cap: number }[];
}

/**
 * Training for library users: the same step as `peerc train` (loss, gradients, sparse lazy
 * updates of expert tables, the optimizer) on one batch of inputs and targets. The weights
 * are updated in place; `model()` makes a forward model from their current values.
 */
export class CompiledTrainer {
  private readonly trainer: Trainer;
  private readonly inputDtypes: Record<string, 'f32' | 'index'>;
  private readonly module: IRModule;

  /** `program`: the source `peerc compile` embedded, recorded in checkpoints so the CLI (info, sample, run) reads them. */
  constructor(private readonly ir: ModuleJSON, readonly weights: Map<string, Float32Array>, private readonly options: TrainOptions = {}, private readonly program?: LibraryRun['program']) {
    checkOptimizerConfig(options.optimizer ?? {});
    this.module = moduleFromJSON(ir);
    this.inputDtypes = inputDtypesOf(this.module);
    this.trainer = new Trainer(this.module, weights, { backend: options.backend ?? 'auto', optimizer: { ...DEFAULT_OPTIMIZER, ...options.optimizer }, seed: options.seed, threads: options.threads });
  }

  /**
   * A trainer that goes on from a checkpoint's bytes (written by checkpoint() or by `peerc train`):
   * weights, the optimizer's moments and step count. The optimizer settings are the checkpoint's
   * unless `options.optimizer` changes them; a different optimizer kind is PEER0501.
   */
  static fromCheckpoint(ir: ModuleJSON, bytes: Uint8Array, options: TrainOptions = {}, program?: LibraryRun['program'], file = 'checkpoint'): CompiledTrainer {
    const { tensors, metadata } = readSafetensors(bytes, file);
    const params = moduleFromJSON(ir).params;
    let saved: Partial<OptimizerConfig> = {};
    try {
      saved = JSON.parse(metadata.optimizer ?? '{}') as Partial<OptimizerConfig>;
    } catch {
      fail('PEER0601', null, { file, name: 'optimizer', kind: 'the optimizer settings (JSON in the metadata)' });
    }
    if (metadata.optimizer === undefined) fail('PEER0601', null, { file, name: 'optimizer', kind: "the optimizer settings (a weights file has none: use fromSafetensors)" });
    if (options.optimizer?.kind && saved.kind && options.optimizer.kind !== saved.kind)
      fail('PEER0501', null, { name: 'kind', detail: `the checkpoint was trained with ${saved.kind}; its state does not fit ${options.optimizer.kind}` });
    const trainer = new CompiledTrainer(ir, safetensorsWeights(params, bytes, file), { ...options, optimizer: { ...saved, ...options.optimizer } }, program);
    const step = Number(metadata.optimizerStep ?? NaN);
    if (!Number.isInteger(step) || step < 0) fail('PEER0601', null, { file, name: 'optimizerStep', kind: 'the optimizer step count (a whole number in the metadata)' });
    restoreOptimizerState(trainer.trainer.optimizer, new Map([...tensors].map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }])), step, file);
    return trainer;
  }

  /**
   * Call after writing into `weights` yourself (loading, editing): a backend that keeps the
   * parameters on a device (webgpu) sends them there again before the next step. The trainer's
   * own updates need no call.
   */
  weightsChanged(): void {
    this.trainer.weightsChanged();
  }

  /**
   * Brings `weights` and the optimizer's state up to date where the backend updates tables on its
   * device (webgpu keeps a trained table and its state on the GPU; the arrays lag until this
   * call): call before reading them yourself. checkpoint() and model() call it. A no-op elsewhere.
   */
  syncWeights(): Promise<void> {
    return this.trainer.syncWeights();
  }

  /** Steps taken (the optimizer's count; it goes on from a checkpoint's). */
  get stepCount(): number {
    return this.trainer.optimizer.t;
  }

  /**
   * The weights, the optimizer's state and settings as a peerc checkpoint (safetensors bytes):
   * fromCheckpoint() goes on from it, and `peerc info`, `peerc run --weights` and `peerc sample`
   * read it. Write it to a file with any API that writes bytes.
   */
  async checkpoint(): Promise<Uint8Array> {
    await this.trainer.syncWeights();
    const meta = libraryMeta({
      program: this.program ?? { file: 'unknown.peer', text: '', set: '' },
      entry: this.module.entry ?? '',
      optimizer: this.trainer.optimizer.config,
      optimizerStep: this.trainer.optimizer.t,
      seed: this.options.seed ?? 0,
      backend: this.backend,
    });
    return encodeCheckpoint(meta, checkpointTensors(this.module, this.weights, this.trainer.optimizer));
  }

  get backend(): BackendName {
    return this.trainer.backend.name;
  }

  /** The backend as it runs here, e.g. 'wasm-simd, 2 threads, plain SIMD128'. */
  get backendDetail(): string {
    return this.trainer.describe();
  }

  private batch(inputs: Record<string, TensorIn>, targets?: TensorIn): Batch {
    const f32 = (t: Tensor) => ({ shape: [...t.shape], data: Float32Array.from(t.data) });
    const map = new Map([...tensorsIn(inputs, this.inputDtypes)].map(([k, t]) => [k, f32(t)]));
    const needsTargets = this.trainer.train.targets !== undefined;
    if (needsTargets && targets === undefined) fail('PEER0601', null, { file: 'the training batch', name: 'targets', kind: 'the class of each logits row' });
    if (!needsTargets && targets !== undefined) fail('PEER0602', null, { name: 'targets', expected: 'none (the model returns its own loss)', found: 'targets' });
    const tg = targets ? f32(tensorsIn({ targets }, { targets: 'index' }, 'the training batch').get('targets')!) : { shape: [], data: new Float32Array(1) };
    return { inputs: map, targets: tg, tokens: targets ? tg.data.length : 1 };
  }

  /** One optimisation step; targets are the class of each logits row (omit for a model that returns its loss). */
  async step(inputs: Record<string, TensorIn>, targets?: TensorIn): Promise<TrainStep> {
    const r = await this.trainer.step(this.batch(inputs, targets));
    return { loss: r.loss, ...(r.aux === undefined ? {} : { aux: r.aux }), ...(r.metrics ? { metrics: r.metrics } : {}), lr: r.lr, gradNorm: r.gradNorm, ms: r.ms };
  }

  /** Loss (and accuracy for logits) without updating, BatchNorm on running statistics. */
  async evaluate(inputs: Record<string, TensorIn>, targets?: TensorIn): Promise<EvalFigures> {
    const r = await this.trainer.evaluate([this.batch(inputs, targets)]);
    return { loss: r.loss, accuracy: r.accuracy, experts: r.experts.map(({ param, usage, unevenness, cap }) => ({ param, usage, unevenness, cap })) };
  }

  /** A forward model on the current weights (copied into its kernels when it first runs). */
  model(options: ModelOptions = {}): CompiledModel {
    const backend = options.backend ?? this.backend;
    // A model on the trainer's backend reads the same device copies; another backend reads the host arrays, brought up to date first.
    const sync = resolveBackend(backend).name === this.backend ? undefined : () => this.trainer.syncWeights();
    return new CompiledModel(this.ir, this.weights, { lowering: this.options.lowering, ...options, backend }, sync);
  }

  /** Frees the backend's memory; what the device updated comes back into `weights` first (a GPU's buffers are gone after). */
  async destroy(): Promise<void> {
    await this.trainer.syncWeights();
    this.trainer.destroy();
  }
}
