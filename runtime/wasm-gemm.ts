// Runs the generated SIMD128 contraction kernel (codegen/wasm/gemm.ts): operands are copied
// into the module's memory, full 4 x 8 tiles run in wasm, the ragged edge in JavaScript.
// The first building block of the WebAssembly SIMD backend; measured by bench/wasm-gemm.mjs.
import { gemmModule, MR, NR } from '../codegen/wasm/gemm.js';
import { wasmFeatures } from '../codegen/wasm/module.js';

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: wasm32's limit

export { wasmFeatures };

export class WasmGemm {
  readonly relaxed: boolean;
  private readonly memory: WebAssembly.Memory;
  private readonly gemm: (a: number, b: number, c: number, m: number, n: number, k: number) => void;

  /** `relaxed`: use relaxed-SIMD multiply-add when the engine has it (detected, never assumed). */
  constructor(options: { relaxed?: boolean } = {}) {
    const features = wasmFeatures();
    if (!features.simd) throw new Error('this WebAssembly engine has no SIMD128');
    this.relaxed = (options.relaxed ?? true) && features.relaxedSimd;
    this.memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES });
    const module = new WebAssembly.Module(gemmModule(this.relaxed, { minPages: 16, maxPages: MAX_PAGES }));
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.gemm = instance.exports.gemm as WasmGemm['gemm'];
  }

  /** C[M, N] = A[M, K] B[K, N], row-major float32. */
  matmul(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float32Array {
    return this.batched(a, b, 1, m, n, k);
  }

  /** C[batch, M, N] = A[batch, M, K] B[batch, K, N], one product per batch entry. */
  batched(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, k: number): Float32Array {
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
    for (let t = 0; t < batch; t++) this.gemm((pa + t * m * k) * 4, (pb + t * k * n) * 4, (pc + t * m * n) * 4, m, n, k);
    const c = heap.slice(pc, pc + batch * m * n);
    // The ragged edge: rows past the last full tile of 4, columns past the last full tile of 8.
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
