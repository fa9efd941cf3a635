// Sparse gradient rows summed per touched row in a gpu.js kernel, one thread per output cell,
// no atomics (the GPU backends' Backend.sumRows).
import gpujs from 'gpu.js';
import { decompose } from '../../../codegen/kernel.js';
import type { BackendInfo } from '../backend.js';
import { bucketByRow, type SparseGrad } from '../row-sums.js';

const { GPU } = gpujs;

type Kernel = ((...args: unknown[]) => unknown) & { kernel?: { constructor: { name: string } } };

export class KernelRowSummer {
  private gpu: InstanceType<typeof GPU> | undefined;
  private readonly kernels = new Map<string, Kernel>();

  constructor(private readonly backend: BackendInfo) {}

  async sum(ids: ArrayLike<number>, grads: Float32Array, rowSize: number): Promise<SparseGrad> {
    const m = ids.length;
    const b = bucketByRow(ids);
    const shapeKey = `${m}x${rowSize}`;
    let k = this.kernels.get(shapeKey);
    if (!k) {
      // Threads past the touched rows read a length of 0 and return 0; the loop stops at the bucket's end.
      const source = `function(grads, order, start, len) {\n${decompose('this.thread.x', [m, rowSize], 'o')}\nlet acc = 0.0;\nlet s = start[o0];\nlet n = len[o0];\nfor (let j = 0; j < ${m}; j++) {\n  if (j >= n) { break; }\n  acc += grads[order[s + j] * ${rowSize} + o1];\n}\nreturn acc;\n}`;
      this.gpu ??= new GPU({ mode: this.backend.mode as 'cpu' });
      const create = this.gpu.createKernel as unknown as (src: string, settings: object) => Kernel;
      k = create.call(this.gpu, source, { output: [m * rowSize], loopMaxIterations: m + 1, tactic: 'precision', precision: 'single', asyncMode: this.backend.asyncMode });
      this.kernels.set(shapeKey, k);
    }
    let out = k(grads, b.order, b.start, b.length) as Float32Array | Promise<Float32Array>;
    if (this.backend.asyncMode) out = await out;
    const cls = k.kernel?.constructor.name;
    if (cls !== this.backend.kernelClass) throw new Error(`row-sum kernel ran as ${cls} instead of ${this.backend.kernelClass}`);
    return { rows: b.rows, rowSize, values: (out as Float32Array).slice(0, b.rows.length * rowSize) };
  }

  destroy(): void {
    this.gpu?.destroy();
  }
}
