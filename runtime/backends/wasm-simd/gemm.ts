// Runs the generated SIMD128 contraction kernel (codegen/wasm/gemm.ts): full 4 x 8 tiles in
// wasm, the ragged edge in JavaScript. B is copied in as panels of 8 columns (gemmPacked), which
// doubled the scoring products' rate; products() takes B row-major (grouped expert products lay
// their operands out themselves). With a worker pool the memory is shared and row blocks
// are split across the threads, each running the same module instantiated on that memory.
// A contraction step owns a region of the memory (operands and result, laid out once when its
// plan is built), so parameters are copied in once and results are read in place (views into
// the shared memory, valid until that step runs again). Measured by bench/wasm-gemm.mjs.
import { gemmModule, MR, NR, packPanels } from '../../../codegen/wasm/gemm.js';
import { wasmFeatures } from '../../../codegen/wasm/module.js';
import { toShared, type PoolTask, type WorkerPool } from '../../pool.js';

const PAGE = 65536;
/** wasm32's limit: 4 GiB less one page (a memory of exactly 4 GiB is not allocatable everywhere). */
export const WASM_MEMORY_LIMIT = (65536 - 1) * PAGE;

export { wasmFeatures };

let instances = 0;

/** A product's place in the memory: float offsets of A [batch, m, k], B [batch, k, n], C [batch, m, n]. */
export interface GemmRegion {
  batch: number;
  m: number;
  n: number;
  k: number;
  pa: number;
  pb: number;
  pc: number;
  /** B was copied in and is constant (a parameter read as it is): not copied again. */
  bLoaded: boolean;
}

export class GemmMemoryExceeded extends RangeError {}

export class WasmGemm {
  readonly relaxed: boolean;
  /** Threads the products are split across (1 without a pool). */
  readonly threads: number;
  private readonly memory: WebAssembly.Memory;
  /** gemmPacked: B in panels (run, matmul). */
  private readonly gemm: (a: number, b: number, c: number, m: number, n: number, k: number) => void;
  /** gemm: B row-major (products). */
  private readonly gemmRows: (a: number, b: number, c: number, m: number, n: number, k: number) => void;
  private readonly task: PoolTask | undefined;
  private readonly pool: WorkerPool | undefined;
  /** Where kernels instantiated on this memory (instantiate) run: every thread of the given pool. */
  private readonly taskPool: WorkerPool | undefined;
  /** Names this memory's instances in a pool (ctx.wasm keys). */
  private readonly key = `gemm${instances++}`;
  /** Every buffer object the memory has had (a view's buffer identifies a view into this memory). */
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  private readonly limits: { minPages: number; maxPages: number; shared: boolean };
  /** Bytes handed out to regions (the next region starts here). */
  private top = 0;

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
    const maxPages = WASM_MEMORY_LIMIT / PAGE;
    // Shared wherever the engine allows, pool or not: a shared memory's views survive its growth
    // (a plain one detaches them), so results stay readable in place.
    const shared = typeof SharedArrayBuffer !== 'undefined';
    this.memory = new WebAssembly.Memory({ initial: 16, maximum: maxPages, shared });
    this.buffers.add(this.memory.buffer);
    this.limits = { minPages: 16, maxPages, shared };
    this.taskPool = options.pool;
    const module = new WebAssembly.Module(gemmModule(this.relaxed, this.limits));
    if (pool) {
      const key = this.key;
      this.pool = pool;
      const exports = pool.defineWasm(key, module, this.memory);
      this.gemm = exports.gemmPacked as WasmGemm['gemm'];
      this.gemmRows = exports.gemm as WasmGemm['gemm'];
      // Lanes are blocks of MR rows of one batch entry; consecutive blocks of an entry run as one call.
      this.task = {
        key: `${key}:rows`,
        source: `function gemmRows(args, from, to, ctx) {
  const gemm = ctx.wasm[${JSON.stringify(key)}].gemmPacked;
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
      const exports = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports;
      this.gemm = exports.gemmPacked as WasmGemm['gemm'];
      this.gemmRows = exports.gemm as WasmGemm['gemm'];
    }
  }

  /** Bytes a product of these sizes needs in the memory. */
  static bytes(batch: number, m: number, n: number, k: number): number {
    return 4 * batch * (m * k + k * n + m * n);
  }

  /** Bytes of the memory given to regions so far. */
  get used(): number {
    return this.top;
  }

  /** Places a product in the memory for good (a step's operands and result); refuses what passes 4 GiB. */
  region(batch: number, m: number, n: number, k: number): GemmRegion {
    const pa = this.reserve(WasmGemm.bytes(batch, m, n, k), `${batch} x [${m}, ${k}] x [${k}, ${n}]`) / 4;
    const pb = pa + batch * m * k, pc = pb + batch * k * n;
    return { batch, m, n, k, pa, pb, pc, bLoaded: false };
  }

  /** Reserves `bytes` of the memory for good (16-byte aligned) and returns its byte offset; refuses what passes 4 GiB. */
  reserve(bytes: number, what = 'a kernel'): number {
    const start = Math.ceil(this.top / 16) * 16;
    if (start + bytes > WASM_MEMORY_LIMIT)
      throw new GemmMemoryExceeded(`${what} needs ${bytes} bytes, and with the ${start} bytes the other products hold that passes wasm32's limit of ${WASM_MEMORY_LIMIT} bytes`);
    this.top = start + bytes;
    const need = Math.ceil(this.top / PAGE), have = this.memory.buffer.byteLength / PAGE;
    if (need > have) {
      this.memory.grow(need - have);
      this.buffers.add(this.memory.buffer);
    }
    return start;
  }

  /** The byte offset of `a` when it is a view into this memory (a product's result), else undefined. */
  locate(a: Float32Array): number | undefined {
    return this.buffers.has(a.buffer) ? a.byteOffset : undefined;
  }

  /** A view of `length` elements at byte offset `at`, made again only where growth detached it (a memory that is not shared). */
  view<T extends Float32Array | Float64Array | Int32Array>(type: new (b: ArrayBufferLike, at: number, length: number) => T, at: number, length: number): () => T {
    let v: T | undefined;
    return () => {
      if (!v || (v.byteLength === 0 && length > 0)) {
        v = new type(this.memory.buffer, at, length);
        this.buffers.add(this.memory.buffer);
      }
      return v;
    };
  }

  /**
   * Instantiates another kernel module (`make`, given the memory's import limits) on this memory,
   * on every thread of the pool; returns the ctx.wasm key tasks call it by.
   */
  instantiate(name: string, make: (limits: { minPages: number; maxPages: number; shared: boolean }) => Uint8Array<ArrayBuffer>): string {
    const key = `${this.key}:${name}`;
    if (!this.kernels.has(key)) {
      const module = new WebAssembly.Module(make(this.limits));
      if (!this.taskPool) throw new Error(`kernel ${name} needs the worker pool the contraction kernel was made with`);
      this.taskPool.defineWasm(key, module, this.memory);
      this.kernels.add(key);
    }
    return key;
  }
  private readonly kernels = new Set<string>();

  /**
   * Runs the product of a region: copies A in, B too unless `bConstant` and already there, and
   * returns C as a view into the memory (shared; overwritten when the region runs again).
   * `bTransposed`: b holds B's transpose, [batch, n, k].
   */
  async run(r: GemmRegion, a: Float32Array, b: Float32Array, bConstant = false, bTransposed = false): Promise<Float32Array> {
    const { batch, m, n, k, pa, pb, pc } = r;
    if (a.length !== batch * m * k || b.length !== batch * k * n) throw new Error(`matmul: operands of ${a.length} and ${b.length} values for ${batch} x [${m}, ${k}] x [${k}, ${n}]`);
    const buffer = this.memory.buffer;
    this.buffers.add(buffer);
    new Float32Array(buffer, pa * 4, a.length).set(a);
    if (!(bConstant && r.bLoaded)) {
      const mem = this.floats();
      for (let t = 0; t < batch; t++) packPanels(b, t * k * n, mem, pb + t * k * n, k, n, bTransposed);
    }
    r.bLoaded = bConstant;
    const blocks = Math.floor(m / MR);
    if (this.pool && this.task) {
      // A part should be worth a message round trip (~0.1 ms): at least ~1 MFLOP.
      const minLanes = Math.max(1, Math.ceil(2 ** 20 / (2 * MR * n * k)));
      await this.pool.run(this.task, [pa * 4, pb * 4, pc * 4, m, n, k, blocks], batch * blocks, { minLanes });
    } else {
      for (let t = 0; t < batch; t++) this.gemm((pa + t * m * k) * 4, (pb + t * k * n) * 4, (pc + t * m * n) * 4, blocks * MR, n, k);
    }
    const c = new Float32Array(buffer, pc * 4, batch * m * n);
    // Rows past the last full tile of 4, columns past the last full tile of 8.
    const mFull = m - (m % MR), nFull = n - (n % NR);
    if (mFull === m && nFull === n) return c;
    for (let t = 0; t < batch; t++) {
      const ao = t * m * k, bo = t * k * n, co = t * m * n;
      for (let i = 0; i < m; i++)
        for (let j = i < mFull ? nFull : 0; j < n; j++) {
          let acc = 0;
          for (let q = 0; q < k; q++) acc += a[ao + i * k + q]! * b[bTransposed ? bo + j * k + q : bo + q * n + j]!;
          c[co + i * n + j] = acc;
        }
    }
    return c;
  }

  private readonly scratch = new Map<string, GemmRegion>();

  /** C[batch, M, N] = A[batch, M, K] B[batch, K, N] as a new array (a region per shape, reused). */
  async batched(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, k: number): Promise<Float32Array> {
    const key = `${batch}x${m}x${n}x${k}`;
    let r = this.scratch.get(key);
    if (!r) this.scratch.set(key, (r = this.region(batch, m, n, k)));
    return (await this.run(r, a, b)).slice();
  }

  /** C[M, N] = A[M, K] B[K, N], row-major float32, on this thread. */
  matmul(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float32Array {
    if (a.length !== m * k || b.length !== k * n) throw new Error(`matmul: operands of ${a.length} and ${b.length} values for [${m}, ${k}] x [${k}, ${n}]`);
    const key = `1x${m}x${n}x${k}`;
    let r = this.scratch.get(key);
    if (!r) this.scratch.set(key, (r = this.region(1, m, n, k)));
    const buffer = this.memory.buffer;
    new Float32Array(buffer, r.pa * 4, a.length).set(a);
    packPanels(b, 0, this.floats(), r.pb, k, n);
    this.gemm(r.pa * 4, r.pb * 4, r.pc * 4, m - (m % MR), n, k);
    const c = new Float32Array(buffer, r.pc * 4, m * n).slice();
    const mFull = m - (m % MR), nFull = n - (n % NR);
    for (let i = 0; i < m; i++)
      for (let j = i < mFull ? nFull : 0; j < n; j++) {
        let acc = 0;
        for (let q = 0; q < k; q++) acc += a[i * k + q]! * b[q * n + j]!;
        c[i * n + j] = acc;
      }
    return c;
  }

  /** A scratch area of at least `bytes` in the memory (byte offset), kept and reused; grown by reserving anew. */
  scratchArea(bytes: number): number {
    if (!this.area || this.area.bytes < bytes) this.area = { at: this.reserve(bytes, 'a grouped product'), bytes };
    return this.area.at;
  }
  private area: { at: number; bytes: number } | undefined;

  /** The memory as one float view (made again after growth). */
  floats(): Float32Array {
    if (this.whole?.buffer !== this.memory.buffer) {
      this.whole = new Float32Array(this.memory.buffer);
      this.buffers.add(this.memory.buffer);
    }
    return this.whole;
  }
  private whole: Float32Array | undefined;

  /**
   * Products of different sizes already in the memory, split across the threads by product:
   * `list` holds 6 numbers per product, the byte offsets of A, B, C and M, N, K, with M a
   * multiple of 4 and N of 8 (full tiles only). Grouped expert gradients: one product per expert.
   */
  async products(list: Int32Array): Promise<void> {
    const count = list.length / 6;
    if (this.pool) {
      this.groupTask ??= {
        key: `${this.key}:products`,
        source: `function gemmProducts(args, from, to, ctx) {
  const gemm = ctx.wasm[${JSON.stringify(this.key)}].gemm, l = args[0];
  // B row-major here: gemm, not gemmPacked.
  for (let p = from; p < to; p++) gemm(l[6 * p], l[6 * p + 1], l[6 * p + 2], l[6 * p + 3], l[6 * p + 4], l[6 * p + 5]);
}`,
      };
      await this.pool.run(this.groupTask, [toShared(list)], count, { minLanes: 1 });
    } else for (let p = 0; p < count; p++) this.gemmRows(list[6 * p]!, list[6 * p + 1]!, list[6 * p + 2]!, list[6 * p + 3]!, list[6 * p + 4]!, list[6 * p + 5]!);
  }
  private groupTask: PoolTask | undefined;
}

