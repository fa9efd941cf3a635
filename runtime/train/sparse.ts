// Sparse gradients of expert tables. A step's gathers produce (row id, gradient row) pairs,
// often several for one row. They are bucketed by row id (a CSR: sorted order, start, length)
// on the host and summed per touched row in a kernel, one thread per output cell, no atomics.
import gpujs from 'gpu.js';
import { decompose } from '../../codegen/kernel.js';
import type { BackendInfo } from '../backends/info.js';
import { sumRowsTask } from '../../codegen/host/experts.js';
import { sharedFloat32, type WorkerPool } from '../pool.js';

const { GPU } = gpujs;

export interface SparseGrad {
  /** Distinct touched rows, ascending. */
  rows: Int32Array;
  /** Their summed gradients, rows.length x rowSize. */
  values: Float32Array;
}

export interface Buckets {
  rows: Int32Array;
  /** Slot numbers sorted by row id; bucket b is order[start[b] .. start[b] + length[b]). */
  order: Float32Array;
  start: Float32Array;
  length: Float32Array;
  longest: number;
}

export function bucketByRow(ids: ArrayLike<number>): Buckets {
  const m = ids.length;
  const keys = new Float64Array(m);
  for (let i = 0; i < m; i++) keys[i] = ids[i]! * m + i;
  keys.sort();
  const order = new Float32Array(m), start = new Float32Array(m), length = new Float32Array(m);
  const rows: number[] = [];
  let longest = 0;
  for (let i = 0; i < m; i++) {
    const row = Math.floor(keys[i]! / m);
    order[i] = keys[i]! - row * m;
    if (rows.length === 0 || rows[rows.length - 1] !== row) {
      rows.push(row);
      start[rows.length - 1] = i;
    }
    const b = rows.length - 1;
    length[b] = length[b]! + 1;
    longest = Math.max(longest, length[b]!);
  }
  return { rows: Int32Array.from(rows), order, start, length, longest };
}

/** Sums on the host, in slot order within each row (the reference, and the CPU backends' path). */
export function sumRowsOnHost(ids: ArrayLike<number>, grads: Float32Array, rowSize: number): SparseGrad {
  const b = bucketByRow(ids);
  const values = new Float32Array(b.rows.length * rowSize);
  for (let r = 0; r < b.rows.length; r++) {
    const start = b.start[r]!, len = b.length[r]!, out = r * rowSize;
    // Most rows are touched once: a block copy; the others add their further rows.
    const first = b.order[start]! * rowSize;
    values.set(grads.subarray(first, first + rowSize), out);
    for (let j = 1; j < len; j++) {
      const src = b.order[start + j]! * rowSize;
      for (let c = 0; c < rowSize; c++) values[out + c] = values[out + c]! + grads[src + c]!;
    }
  }
  return { rows: b.rows, values };
}

type Kernel = ((...args: unknown[]) => unknown) & { kernel?: { constructor: { name: string } } };

/**
 * Sums gradient rows per touched table row. On GPU backends with a gpu.js kernel; on the CPU
 * backends (cpu, webasm) the host loop is used by default, because there the kernel runs on
 * the same cores after copying every row into kernel memory (measured ~10x slower at 16k x 256).
 */
export class RowSummer {
  private gpu: InstanceType<typeof GPU> | undefined;
  private readonly kernels = new Map<string, Kernel>();
  readonly useKernel: boolean;

  /** `pool`: sum the buckets across its threads (the wasm-simd backend). */
  constructor(private readonly backend: BackendInfo, options: { kernel?: boolean; pool?: WorkerPool } = {}) {
    this.useKernel = options.kernel ?? !['cpu', 'webasm'].includes(backend.mode);
    this.pool = options.pool;
  }

  private readonly pool: WorkerPool | undefined;

  /** Sums per table (`key`), reused across steps: a step's sums are consumed by its optimizer update. */
  private readonly sums = new Map<string, Float32Array>();

  /** `key` names the table: with a pool, its sums live in a buffer reused by the next call with that key. */
  async sum(ids: ArrayLike<number>, grads: Float32Array, rowSize: number, key = ''): Promise<SparseGrad> {
    if (this.pool) {
      const b = bucketByRow(ids);
      let buf = this.sums.get(key);
      if (!buf || buf.length < ids.length * rowSize) this.sums.set(key, (buf = sharedFloat32(ids.length * rowSize)));
      const values = buf.subarray(0, b.rows.length * rowSize);
      await this.pool.run(sumRowsTask(rowSize), [grads, b.order, b.start, b.length, values], b.rows.length, { minLanes: 256, outputs: [4] });
      return { rows: b.rows, values };
    }
    if (!this.useKernel) return sumRowsOnHost(ids, grads, rowSize);
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
    return { rows: b.rows, values: (out as Float32Array).slice(0, b.rows.length * rowSize) };
  }

  destroy(): void {
    this.gpu?.destroy();
  }
}
