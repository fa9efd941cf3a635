// peerc's own CPU backend: contractions as its WebAssembly SIMD128 micro-kernel (gemm.ts), the
// fused expert ops as SIMD kernels in each table's own wasm memory (tables.ts), retrieval,
// gathers and slices as generated tasks (steps.ts), every other op as its gpu.js kernel source
// turned into a pool task, all on a worker pool over shared memory. Only kernels a task cannot
// take (2-D grids and views, vector returns) run as gpu.js webasm kernels.
import { kernelTask, taskable } from '../../../codegen/host/kernel-task.js';
import type { KernelPlan } from '../../../codegen/kernel.js';
import { renderKernels } from '../../../codegen/render.js';
import type { IRFunction, IRModule, Node } from '../../../src/ir/graph.js';
import type { Tensor } from '../../../src/interp/tensor.js';
import { defaultThreads, keptShared, sharedFloat32, simdSettings, toShared, workerPool, type WorkerPool } from '../../pool.js';
import { dataSource, fillFloat32, kernelArgs, kernelLimit, permuteAxes, weightArrays, type Backend, type FactoredRows, type BackendOptions, type PlanContext, type PlannedStep, type Read, type RowsUpdate } from '../backend.js';
import { GpujsBackend, timeMatmul } from '../gpujs/backend.js';
import type { BackendInfo } from '../backend.js';
import { GemmMemoryExceeded, WasmGemm, type GemmRegion } from './gemm.js';
import { hostStep, type HostContext } from './steps.js';
import { TableMemory, tableHolding, tableMemoryUnfit } from './tables.js';
import { bucketByRow, sumRowsOnHost, type SparseGrad } from '../row-sums.js';
import { sumRowsTask } from '../../../codegen/host/experts.js';

/** FNV-1a of a kernel source: tasks with the same source share their compiled function. */
function sourceHash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36) + s.length.toString(36);
}

export class WasmSimdBackend implements Backend {
  readonly threads: number;
  private readonly relaxedSimd: boolean;
  /** Kernels a pool task cannot take run as gpu.js webasm kernels. */
  private readonly gpujs: GpujsBackend;
  private gemmKernel: WasmGemm | undefined;
  private poolInstance: WorkerPool | undefined;
  /** Expert tables in wasm memories of their own, by parameter name. */
  private readonly tables = new Map<string, TableMemory>();
  private readonly noteSet = new Set<string>();

  constructor(readonly info: BackendInfo, options: BackendOptions = {}) {
    this.threads = options.threads ?? defaultThreads();
    this.relaxedSimd = options.relaxedSimd ?? simdSettings.relaxed ?? true;
    this.gpujs = new GpujsBackend(info);
  }

  describe(): string {
    return `${this.info.name}, ${this.threads} thread${this.threads === 1 ? '' : 's'}, ${this.gemm().relaxed ? 'relaxed SIMD' : 'plain SIMD128'}`;
  }

  notes(): string[] {
    return [...this.noteSet];
  }

  /** Sums per table (`key`), reused across steps: a step's sums are consumed by its optimizer update. */
  private readonly sums = new Map<string, { values: Float32Array; squares: Float64Array }>();

  /**
   * Optimizer state for a placed table (Adam's moments), in its table memory after the weights,
   * so the row updates read a row's weights and state in one memory (updateRows); or why not.
   */
  tableState(name: string, count: number): Float32Array[] | string {
    const table = this.tables.get(name);
    if (!table) return 'the table is not in a table memory';
    if (!table.stateFits(count)) {
      const why = `its optimizer state (${count} more arrays of ${((table.rows * table.rowBytes) / 2 ** 30).toFixed(2)} GiB) does not fit beside it in wasm32's 4 GiB`;
      this.noteSet.add(`the optimizer's update of table ${name} runs as a host loop over its table memory (several times slower than the SIMD kernel): ${why}`);
      return why;
    }
    return Array.from({ length: count }, () => table.addState());
  }

  /** The optimizer's update of a placed table's summed rows, in its table memory (false: not this table's state). */
  async updateRows(name: string, sparse: SparseGrad, update: RowsUpdate): Promise<{ done: boolean; finite: boolean }> {
    const table = this.tables.get(name);
    return table && sparse.values ? table.updateRows(sparse.values, update) : { done: false, finite: true };
  }

  /**
   * A dense table's factored gradient rows with `block` rows per id (the matrix experts of a
   * mixture: ids are experts, each owning block consecutive rows), as one product per expert:
   * its rows' gradient [block, d] = (its slots' coefficients [block, n]) x (their tokens' vectors
   * [n, d]), instead of a host loop over every (slot, row) (5.5 s of a 6.5 s step at E = 64,
   * d = 256, m = 1024, 1024 tokens). Every id appears in one group, so the product is the
   * expert's whole gradient: it is written, not added (full starts at zero).
   */
  async addFactoredRows(full: Float32Array, ids: ArrayLike<number>, f: FactoredRows, rowSize: number, key: string): Promise<string | undefined> {
    const slots = f.coef.length, groups = ids.length, block = slots / groups, perToken = slots / (f.vec.length / rowSize);
    const table = this.tables.get(key);
    // One row per id of a placed table (the sub-key tables): scattered by columns in its memory, no bucketing.
    if (block === 1 && table?.rowSize === rowSize && (await table.scatterFactoredRows(full, ids, f))) return 'factored row gradients into dense tables (scatter)';
    if (groups === 0 || !Number.isInteger(block) || TableMemory.groupedUnfit(block, rowSize) !== null || full.length % (block * rowSize) !== 0) return undefined;
    const experts = full.length / (block * rowSize);
    const slotsOf = new Map<number, number[]>();
    for (let i = 0; i < groups; i++) {
      const e = ids[i]!;
      if (!(e >= 0 && e < experts && Number.isInteger(e))) return undefined;
      const mine = slotsOf.get(e);
      if (mine) mine.push(i);
      else slotsOf.set(e, [i]);
    }
    const gemm = this.gemm();
    const used = [...slotsOf.keys()];
    // Floats: every A [block, n] (block * groups in all), every B [n, d], every C [block, d].
    const at = gemm.scratchArea(4 * (slots + groups * rowSize + used.length * block * rowSize));
    const mem = gemm.floats();
    const list = new Int32Array(new SharedArrayBuffer(used.length * 24));
    let p = at / 4;
    used.forEach((e, u) => {
      const mine = slotsOf.get(e)!, n = mine.length;
      const a = p, b = a + block * n, c = b + n * rowSize;
      // A [block, n]: column q is slot mine[q]'s coefficients; B [n, d]: its token's vector.
      mine.forEach((i, q) => {
        for (let j = 0; j < block; j++) mem[a + j * n + q] = f.coef[i * block + j]!;
        const t = Math.floor((i * block) / perToken) * rowSize;
        mem.set(f.vec.subarray(t, t + rowSize), b + q * rowSize);
      });
      list.set([a * 4, b * 4, c * 4, block, rowSize, n], u * 6);
      p = c + block * rowSize;
    });
    await gemm.products(list);
    used.forEach((e, u) => full.set(mem.subarray(list[u * 6 + 2]! / 4, list[u * 6 + 2]! / 4 + block * rowSize), e * block * rowSize));
    return 'expert gradients (by expert)';
  }

  /** Factored rows summed by the SIMD kernel in a placed table's memory (undefined for other tables). */
  sumFactoredRows(ids: ArrayLike<number>, rows: FactoredRows, rowSize: number, key: string): Promise<SparseGrad> | undefined {
    const table = this.tables.get(key);
    if (!table || table.rowSize !== rowSize || ids.length === 0) return undefined;
    const b = bucketByRow(ids);
    return table.sumRows(rows, b.order, b.start, b.length, b.rows).then(({ values, sumSquares }) => ({ rows: b.rows, rowSize, values, sumSquares }));
  }

  /**
   * The buckets summed across the pool's threads (the host loop on one thread); for a placed
   * table, by the SIMD kernel in its table memory, where lazy Adam then reads them.
   */
  async sumRows(ids: ArrayLike<number>, grads: Float32Array, rowSize: number, key: string): Promise<SparseGrad> {
    const table = this.tables.get(key);
    if (table && table.rowSize === rowSize && ids.length > 0) {
      const b = bucketByRow(ids);
      const { values, sumSquares } = await table.sumRows(grads, b.order, b.start, b.length, b.rows);
      return { rows: b.rows, rowSize, values, sumSquares };
    }
    const pool = this.pool();
    if (!pool) return sumRowsOnHost(ids, grads, rowSize);
    const b = bucketByRow(ids);
    let buf = this.sums.get(key);
    if (!buf || buf.values.length < ids.length * rowSize)
      this.sums.set(key, (buf = { values: sharedFloat32(ids.length * rowSize), squares: new Float64Array(new SharedArrayBuffer(8 * ids.length)) }));
    const values = buf.values.subarray(0, b.rows.length * rowSize), squares = buf.squares.subarray(0, b.rows.length);
    await pool.run(sumRowsTask(rowSize), [grads, b.order, b.start, b.length, values, squares], b.rows.length, { minLanes: 256, outputs: [4, 5] });
    let sumSquares = 0;
    for (let r = 0; r < squares.length; r++) sumSquares += squares[r]!;
    return { rows: b.rows, rowSize, values, sumSquares };
  }

  /** The backend's threads (shared by every executor of this thread count). */
  pool(): WorkerPool | undefined {
    return this.threads > 1 ? this.threadPool : undefined;
  }

  private get threadPool(): WorkerPool {
    return (this.poolInstance ??= workerPool(this.threads));
  }

  private gemm(): WasmGemm {
    return (this.gemmKernel ??= new WasmGemm({ pool: this.threadPool, relaxed: this.relaxedSimd }));
  }

  /**
   * Constant tables read by the fused expert ops move into table memories of their own, written
   * straight from seeded or loaded weights (no second copy), so the SIMD kernels read their rows
   * in place; the rest are shared arrays the pool's threads read without a copy. Weights passed
   * per call (training) are the caller's to share (the Trainer does).
   */
  adoptParams(module: IRModule, fn: IRFunction, weights: ReadonlyMap<string, Tensor | Float32Array>, given: Map<string, Float32Array>, constant: boolean): Map<string, Float32Array> {
    const params = new Map(given);
    if (constant) {
      for (const node of fn.graph.nodes) {
        if (node.op !== 'expert_act' && node.op !== 'expert_out') continue;
        const src = dataSource(fn, node.inputs[1]!);
        if (src.kind !== 'param') continue;
        const name = src.name;
        if (this.tables.has(name)) continue;
        const cells = module.params.find((p) => p.name === name)!.shape.reduce((a, b) => a * b, 1);
        const rowSize = fn.graph.typeOf(node.inputs[1]!).shape.at(-1)!.evaluate(() => undefined);
        if (rowSize === undefined || tableMemoryUnfit(cells / rowSize, rowSize)) continue;
        const w = weights.get(name)!;
        const table = new TableMemory(cells / rowSize, rowSize, { pool: this.pool(), adopt: w instanceof Float32Array ? w : undefined });
        if (w instanceof Float32Array) {
          if (table.weights !== w) table.weights.set(w);
        } else fillFloat32(w, table.weights);
        params.set(name, table.weights);
        this.tables.set(name, table);
      }
    }
    const all = weightArrays(module, weights, params, sharedFloat32);
    // Constants are read-only: one shared copy, so the pool's threads read them in place.
    if (constant && this.threads > 1) for (const [name, w] of all) all.set(name, toShared(w));
    return all;
  }

  /** A trained table moves into a table memory of its own (weights copied once), so the SIMD row kernels read it in place. */
  placeTable(name: string, data: Float32Array, rowSize: number): Float32Array | string {
    const held = tableHolding(data);
    if (held) return held.rowSize === rowSize ? data : `its table memory holds rows of ${held.rowSize} values, this op reads rows of ${rowSize}`;
    const why = tableMemoryUnfit(data.length / rowSize, rowSize);
    if (why) return why;
    const table = new TableMemory(data.length / rowSize, rowSize, { pool: this.pool(), adopt: data });
    if (table.weights !== data) table.weights.set(data);
    this.tables.set(name, table);
    return table.weights;
  }

  private table(name: string, rowSize: number, ctx: PlanContext): TableMemory | string {
    const have = this.tables.get(name) ?? tableHolding(ctx.param(name));
    if (have) return have.rowSize === rowSize ? have : `its table memory holds rows of ${have.rowSize} values, this op reads rows of ${rowSize}`;
    const why = tableMemoryUnfit(ctx.param(name).length / rowSize, rowSize);
    if (why) return why;
    return ctx.paramsAsArguments ? 'parameters passed per call (training) are plain shared arrays, not table memories' : 'it was not placed in a table memory';
  }

  plan(node: Node, ctx: PlanContext): PlannedStep {
    const own = this.ownStep(node, ctx);
    if (own) return own;
    if (ctx.paramsAsArguments && node.op === 'gather' && ctx.source(node.inputs[0]!).kind === 'param') return this.gpujs.plan(node, ctx);
    const args = kernelArgs(node, ctx);
    const plans = renderKernels(node, args, node.types.map((_, i) => ctx.shapeOf({ node: node.id, result: i })), (d) => ctx.dimValue(d), ctx.training);
    if (plans.every(taskable)) return this.kernelTaskStep(plans, ctx);
    return this.gpujs.kernelStep(node, plans, ctx);
  }

  /** An op as one of the backend's own steps (steps.ts), when it has one. */
  private ownStep(node: Node, ctx: PlanContext): PlannedStep | undefined {
    const host: HostContext = {
      fn: ctx.fn,
      pool: this.threadPool,
      gemm: () => this.gemm(),
      source: ctx.source,
      permuted: ctx.permuted,
      param: ctx.param,
      paramsAsArguments: ctx.paramsAsArguments,
      training: ctx.training,
      permuteAxes,
      table: (name, rowSize) => this.table(name, rowSize, ctx),
      note: (message) => this.noteSet.add(message),
    };
    let own;
    try {
      own = hostStep(host, node, ctx.shapeOf);
    } catch (e) {
      if (e instanceof GemmMemoryExceeded) throw kernelLimit(node, this.info.name, `${e.message}; use fewer tokens per call`);
      throw e;
    }
    return own && { label: own.label, run: own.host, kernels: 1 };
  }

  /**
   * The gpu.js kernels of a node as generated tasks on the worker pool (same source, cells
   * looped), stage after stage; outputs in buffers kept across calls.
   */
  private kernelTaskStep(plans: KernelPlan[], ctx: PlanContext): PlannedStep {
    const tasks = plans.map((p) => kernelTask(p, `kernel:${sourceHash(p.source)}:${p.args.map((a) => a.kind[0]).join('')}:${p.earlierStages}`));
    const outs = plans.map((p) => keptShared(p.outputLength));
    const run = async (read: Read) => {
      const stages: Float32Array[] = [];
      for (const [s, plan] of plans.entries()) {
        const args = plan.args.map((a) => {
          if (a.kind === 'param') return a.perm ? ctx.permuted(a.name, a.perm) : ctx.param(a.name);
          return a.perm ? permuteAxes(read(a.ref), a.perm.map((_, j) => a.shape[a.perm!.indexOf(j)]!), a.perm) : read(a.ref);
        });
        const out = outs[s]!();
        await this.threadPool.run(tasks[s]!, [out, ...args, ...stages.slice(0, plan.earlierStages)], plan.outputLength, { minLanes: 4096, outputs: [0] });
        stages.push(out);
      }
      let offset = 0;
      return plans[plans.length - 1]!.results.map((len) => stages[stages.length - 1]!.subarray(offset, (offset += len)));
    };
    const label = plans.length === 1 ? `${plans[0]!.label} (host)` : `${plans[0]!.label.split(':')[0]} (host)`;
    return { label, run, kernels: 1 };
  }

  /** GB/s of random row reads in the largest placed table (undefined without one). */
  async rowReadReference(): Promise<{ gbPerS: number; rows: number; rowBytes: number } | undefined> {
    const table = [...this.tables.values()].sort((a, b) => b.rows * b.rowBytes - a.rows * a.rowBytes)[0];
    return table && { gbPerS: await table.randomRowReads(), rows: table.rows, rowBytes: table.rowBytes };
  }

  /** GFLOP/s of the backend's own contraction kernel on a 512^3 matmul. */
  private matmulRegion: GemmRegion | undefined;

  async matmulReference(runs = 3): Promise<number> {
    const n = 512;
    const m = new Float32Array(n * n).map((_, i) => (i % 13) * 0.01);
    const gemm = this.gemm();
    // B held as a constant (packed once, as a parameter's is): the yardstick is the kernel, not the copy.
    const region = (this.matmulRegion ??= gemm.region(1, n, n, n));
    return timeMatmul(n, runs, () => gemm.run(region, m, m, true));
  }

  destroy(): void {
    this.gpujs.destroy();
  }
}
