// Runs the generated SIMD128 contraction kernel (codegen/wasm/gemm.ts): operands are copied
// into the module's memory, full 4 x 8 tiles run in wasm, the ragged edge in JavaScript.
// With a worker pool the memory is shared and the row blocks are split across the threads,
// each running the same module instantiated on that memory. Measured by bench/wasm-gemm.mjs.
import { gemmModule, MR, NR } from '../codegen/wasm/gemm.js';
import { wasmFeatures } from '../codegen/wasm/module.js';
import { sharedFloat32, type PoolTask, type WorkerPool } from './pool.js';

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: wasm32's limit

export { wasmFeatures };

let instances = 0;

export class WasmGemm {
  readonly relaxed: boolean;
  /** Threads the products are split across (1 without a pool). */
  readonly threads: number;
  private readonly memory: WebAssembly.Memory;
  private readonly gemm: (a: number, b: number, c: number, m: number, n: number, k: number) => void;
  private readonly task: PoolTask | undefined;

  /**
   * `relaxed`: use relaxed-SIMD multiply-add when the engine has it (detected, never assumed).
   * `pool`: split row blocks across its threads (over a shared memory).
   */
  constructor(options: { relaxed?: boolean; pool?: WorkerPool } = {}) {
    const features = wasmFeatures();
    if (!features.simd) throw new Error('this WebAssembly engine has no SIMD128');
    this.relaxed = (options.relaxed ?? true) && features.relaxedSimd;
    const pool = options.pool && options.pool.threads > 1 ? options.pool : undefined;
    this.threads = pool?.threads ?? 1;
    this.memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, ...(pool ? { shared: true } : {}) });
    const module = new WebAssembly.Module(gemmModule(this.relaxed, { minPages: 16, maxPages: MAX_PAGES, shared: !!pool }));
    if (pool) {
      const key = `gemm${instances++}`;
      this.pool = pool;
      this.gemm = pool.defineWasm(key, module, this.memory).gemm as WasmGemm['gemm'];
      // Lanes are blocks of MR rows of one batch entry; consecutive blocks of an entry run as one call.
      this.task = {
        key: `${key}:rows`,
        source: `function gemmRows(args, from, to, ctx) {
  const gemm = ctx.wasm[${JSON.stringify(key)}].gemm;
  const pa = args[0], pb = args[1], pc = args[2], m = args[3], n = args[4], k = args[5], blocks = args[6];
  let l = from;
  while (l < to) {
    const t = (l / blocks) | 0, blk = l - t * blocks, count = Math.min(to - l, blocks - blk);
    gemm(pa + (t * m * k + blk * ${MR} * k) * 4, pb + t * k * n * 4, pc + (t * m * n + blk * ${MR} * n) * 4, count * ${MR}, n, k);
    l += count;
  }
}`,
      };
    } else {
      this.gemm = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports.gemm as WasmGemm['gemm'];
    }
  }

  private readonly pool: WorkerPool | undefined;

  /** C[M, N] = A[M, K] B[K, N], row-major float32, on this thread. */
  matmul(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float32Array {
    const layout = this.load(a, b, 1, m, n, k);
    this.gemm(layout.pa * 4, layout.pb * 4, layout.pc * 4, m - (m % MR), n, k);
    return this.finish(layout, a, b, 1, m, n, k);
  }

  /** C[batch, M, N] = A[batch, M, K] B[batch, K, N], one product per batch entry, split across the pool's threads. */
  async batched(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, k: number, out?: Float32Array): Promise<Float32Array> {
    const layout = this.load(a, b, batch, m, n, k);
    const blocks = Math.floor(m / MR);
    const { pa, pb, pc } = layout;
    if (this.pool && this.task) {
      // A part should be worth a message round trip (~0.1 ms): at least ~1 MFLOP.
      const minLanes = Math.max(1, Math.ceil(2 ** 20 / (2 * MR * n * k)));
      await this.pool.run(this.task, [pa * 4, pb * 4, pc * 4, m, n, k, blocks], batch * blocks, { minLanes });
    } else {
      for (let t = 0; t < batch; t++) this.gemm((pa + t * m * k) * 4, (pb + t * k * n) * 4, (pc + t * m * n) * 4, blocks * MR, n, k);
    }
    return this.finish(layout, a, b, batch, m, n, k, out);
  }

  /** Copies the operands in (growing the memory); offsets in floats. */
  private load(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, k: number) {
    if (a.length !== batch * m * k || b.length !== batch * k * n) throw new Error(`matmul: operands of ${a.length} and ${b.length} values for ${batch} x [${m}, ${k}] x [${k}, ${n}]`);
    const bytes = 4 * batch * (m * k + k * n + m * n);
    if (bytes > MAX_PAGES * PAGE - 16) throw new RangeError(`matmul: ${bytes} bytes of operands exceed wasm32's 4 GiB memory`);
    const need = Math.ceil(bytes / PAGE);
    const have = this.memory.buffer.byteLength / PAGE;
    if (need > have) this.memory.grow(need - have);
    const heap = new Float32Array(this.memory.buffer);
    const pa = 0, pb = batch * m * k, pc = pb + batch * k * n;
    heap.set(a, pa);
    heap.set(b, pb);
    return { pa, pb, pc };
  }

  /** The result (in `out`, or a new shared array for the pool's other tasks), with the ragged edge computed here. */
  private finish(layout: { pc: number }, a: Float32Array, b: Float32Array, batch: number, m: number, n: number, k: number, out?: Float32Array): Float32Array {
    const c = out ?? sharedFloat32(batch * m * n);
    c.set(new Float32Array(this.memory.buffer, layout.pc * 4, batch * m * n));
    // Rows past the last full tile of 4, columns past the last full tile of 8.
    const mFull = m - (m % MR), nFull = n - (n % NR);
    if (mFull === m && nFull === n) return c;
    for (let t = 0; t < batch; t++) {
      const ao = t * m * k, bo = t * k * n, co = t * m * n;
      for (let i = 0; i < m; i++)
        for (let j = i < mFull ? nFull : 0; j < n; j++) {
          let acc = 0;
          for (let q = 0; q < k; q++) acc += a[ao + i * k + q]! * b[bo + q * n + j]!;
          c[co + i * n + j] = acc;
        }
    }
    return c;
  }
}
