// The runtime API that generated modules (peerc compile) build on. Pure ESM without Node
// built-ins, so the same bundle runs in Node and in a browser.
import type { ParamInfo } from '../src/ir/graph.js';
import { moduleFromJSON, type ModuleJSON } from '../src/ir/serialize.js';
import { initialTensor } from '../src/interp/init.js';
import { Tensor } from '../src/interp/tensor.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { BACKENDS, resolveBackend, unavailableReason, type BackendName } from './backends.js';
import { Executor, toFloat32 } from './executor.js';

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
    this.executor = new Executor(moduleFromJSON(ir), weights, options.backend ?? 'auto');
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
