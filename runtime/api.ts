// The runtime API that generated modules (peerc compile) build on. Pure ESM without Node
// built-ins, so the same bundle runs in Node and in a browser.
import type { ParamInfo } from '../src/ir/graph.js';
import { moduleFromJSON, type ModuleJSON } from '../src/ir/serialize.js';
import { initialTensor } from '../src/interp/init.js';
import { Tensor } from '../src/interp/tensor.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { BACKENDS, resolveBackend, unavailableReason, type BackendName } from './backends.js';
import { Executor, toFloat32 } from './executor.js';
import { Trainer } from './train/trainer.js';
import { DEFAULT_OPTIMIZER, type OptimizerConfig } from './train/optim.js';
import type { Batch } from './train/data.js';
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
}

/** The seeded initial weights, bit-identical to `peerc run --seed` and `peerc init`. */
export function seededWeights(params: readonly ParamInfo[], seed: number): Map<string, Float32Array> {
  return new Map(params.map((p) => [p.name, toFloat32(initialTensor(p, seed))]));
}

/** Weights from a safetensors file's bytes, checked against the parameters' shapes. */
export function safetensorsWeights(params: readonly ParamInfo[], bytes: Uint8Array, file = 'weights'): Map<string, Float32Array> {
  const { tensors } = readSafetensors(bytes, file);
  return new Map(
    params.map((p) => {
      const t = tensors.get(p.name);
      if (!t) throw new Error(`${file} has no tensor '${p.name}'`);
      if (t.shape.join() !== p.shape.join()) throw new Error(`tensor '${p.name}': expected [${p.shape.join(', ')}] but found [${t.shape.join(', ')}]`);
      return [p.name, Float32Array.from(t.data)];
    }),
  );
}

/** A compiled program with its weights on one backend; kernels are generated per input shape. */
export class CompiledModel {
  private readonly executor: Executor;

  constructor(ir: ModuleJSON, weights: ReadonlyMap<string, Float32Array>, options: ModelOptions = {}) {
    this.executor = new Executor(optimize(moduleFromJSON(ir), { lowering: options.lowering ?? 'fused' }), weights, options.backend ?? 'auto');
  }

  /** The backend every kernel was verified to run on. */
  get backend(): BackendName {
    return this.executor.backend.name;
  }

  async forward(inputs: Record<string, TensorIn>, dtypes: Record<string, 'f32' | 'index'>): Promise<{ outputs: TensorOut[]; timings: Map<string, number> }> {
    const map = new Map(Object.entries(inputs).map(([name, t]) => [name, new Tensor(dtypes[name] ?? 'f32', [...t.shape], Float64Array.from(t.data))]));
    return this.executor.forward(map);
  }

  destroy(): void {
    this.executor.destroy();
  }
}

export interface TrainOptions extends ModelOptions {
  /** Optimizer, learning rate, schedule, clipping; defaults: AdamW, lr 1e-3, cosine over `steps`. */
  optimizer?: Partial<OptimizerConfig>;
}

export interface TrainStep {
  loss: number;
  lr: number;
  gradNorm: number;
  ms: number;
}

/**
 * Training for library users: the same step as `peerc train` (loss, gradients, sparse lazy
 * updates of expert tables, the optimizer) on one batch of inputs and targets. The weights
 * are updated in place; `model()` makes a forward model from their current values.
 */
export class CompiledTrainer {
  private readonly trainer: Trainer;

  constructor(private readonly ir: ModuleJSON, readonly weights: Map<string, Float32Array>, private readonly options: TrainOptions = {}) {
    this.trainer = new Trainer(moduleFromJSON(ir), weights, { backend: options.backend ?? 'auto', optimizer: { ...DEFAULT_OPTIMIZER, ...options.optimizer } });
  }

  get backend(): BackendName {
    return this.trainer.backend.name;
  }

  private batch(inputs: Record<string, TensorIn>, targets?: TensorIn): Batch {
    const map = new Map(Object.entries(inputs).map(([k, t]) => [k, { shape: [...t.shape], data: Float32Array.from(t.data) }]));
    const tg = targets ? { shape: [...targets.shape], data: Float32Array.from(targets.data) } : { shape: [], data: new Float32Array(1) };
    return { inputs: map, targets: tg, tokens: targets ? tg.data.length : 1 };
  }

  /** One optimisation step; targets are the class of each logits row (omit for a model that returns its loss). */
  async step(inputs: Record<string, TensorIn>, targets?: TensorIn): Promise<TrainStep> {
    const r = await this.trainer.step(this.batch(inputs, targets));
    return { loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, ms: r.ms };
  }

  /** Loss (and accuracy for logits) without updating, BatchNorm on running statistics. */
  async evaluate(inputs: Record<string, TensorIn>, targets?: TensorIn): Promise<{ loss: number; accuracy: number }> {
    const r = await this.trainer.evaluate([this.batch(inputs, targets)]);
    return { loss: r.loss, accuracy: r.accuracy };
  }

  /** A forward model on the current weights (copied into its kernels when it first runs). */
  model(options: ModelOptions = {}): CompiledModel {
    return new CompiledModel(this.ir, this.weights, { lowering: this.options.lowering, ...options, backend: options.backend ?? this.backend });
  }

  destroy(): void {
    this.trainer.destroy();
  }
}
