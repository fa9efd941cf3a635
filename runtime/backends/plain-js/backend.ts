// A single-threaded float32 backend in plain JavaScript: every op is its own float64 reference
// semantics (the op table's `evaluate`), with values stored as float32 between ops, as every
// real backend stores them. It generates no code, so it has no lowering gaps: the smallest
// backend the interface allows, and in tests the line between a kernel's arithmetic and
// float32 storage (a result that differs from it is the kernel's doing, not the rounding's).
import type { IRFunction, IRModule, Node } from '../../../src/ir/graph.js';
import { opDef } from '../../../src/ir/ops/registry.js';
import { Tensor } from '../../../src/interp/tensor.js';
import { CompileError } from '../../../src/diagnostics/diagnostic.js';
import type { WorkerPool } from '../../pool.js';
import { weightArrays, NonFiniteIndex, type Backend, type BackendInfo, type PlanContext, type PlannedStep, type Read } from '../backend.js';
import { timeMatmul } from '../gpujs/backend.js';
import { sumRowsOnHost, type SparseGrad } from '../row-sums.js';

export class PlainJsBackend implements Backend {
  readonly threads = 1;

  constructor(readonly info: BackendInfo) {}

  describe(): string {
    return `${this.info.name} (float64 op semantics, float32 storage, 1 thread)`;
  }

  notes(): string[] {
    return [];
  }

  pool(): WorkerPool | undefined {
    return undefined;
  }

  async sumRows(ids: ArrayLike<number>, grads: Float32Array, rowSize: number): Promise<SparseGrad> {
    return sumRowsOnHost(ids, grads, rowSize);
  }

  adoptParams(module: IRModule, _fn: IRFunction, weights: ReadonlyMap<string, Tensor | Float32Array>, given: Map<string, Float32Array>): Map<string, Float32Array> {
    return weightArrays(module, weights, given, (n) => new Float32Array(n));
  }

  plan(node: Node, ctx: PlanContext): PlannedStep {
    const def = opDef(node.op);
    if (!def.evaluate) throw new Error(`op '${node.op}' has no reference semantics`);
    const inShapes = node.inputs.map((r) => ctx.shapeOf(r));
    const run = (read: Read) => {
      const ins = node.inputs.map((r, i) => new Tensor(ctx.fn.graph.typeOf(r).dtype, inShapes[i]!, Float64Array.from(read(r))));
      let outs: Tensor[];
      try {
        outs = def.evaluate!(ins, node.attrs, { training: ctx.training, dimValue: ctx.dimValue, updateBuffer: () => undefined, inputParamNames: [] });
      } catch (e) {
        // A row id out of range at run time (PEER0603 in the reference) can only come from NaN upstream.
        if (e instanceof CompileError && e.diagnostic.code === 'PEER0603') throw new NonFiniteIndex(`${node.op}: ${e.message}`);
        throw e;
      }
      return outs.map((t) => Float32Array.from({ length: t.size }, (_, i) => t.element(i)));
    };
    return { label: `${node.op} (plain-js)`, run, kernels: 1 };
  }

  async matmulReference(runs = 3): Promise<number> {
    const n = 512;
    const a = new Float32Array(n * n).map((_, i) => (i % 13) * 0.01);
    const c = new Float32Array(n * n);
    // The plain triple loop this backend's einsum amounts to.
    return timeMatmul(n, runs, () => {
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let k = 0; k < n; k++) acc += a[i * n + k]! * a[k * n + j]!;
          c[i * n + j] = acc;
        }
    });
  }

  destroy(): void {}
}
