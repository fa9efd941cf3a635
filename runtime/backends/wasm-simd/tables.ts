// The wasm-simd backend's memory for one expert table: a shared WebAssembly.Memory holding the
// table (weights at byte 0) and a scratch area after it for each call's small operands (row
// offsets, the tokens' vectors, results).
// The row kernels (codegen/wasm/rows.ts) run in it on every thread of the pool, reading the
// selected rows where they live: no gather copy, no per-call copy of the table. The weights are a
// view into the memory, so host code (other kernels, outputs) reads them as a plain array. wasm32 caps a memory at 4 GiB: a table that does not fit gets the reason.
import { rowKernelsModule } from '../../../codegen/wasm/rows.js';
import { ROW_UPDATES } from '../../../codegen/wasm/row-updates.js';
import { WASM_MEMORY_LIMIT } from './gemm.js';
import { skewBytes, wasmMemoryOf, type PoolTask, type WorkerPool } from '../../pool.js';
import { ACTIVATIONS } from '../../../codegen/naive.js';
import { MR, NR } from '../../../codegen/wasm/gemm.js';

const PAGE = 65536;
/**
 * State array i starts skewBytes(i) past a 4 KiB boundary. A row update (adamRows) loads and stores a row of
 * the weights and of each moment in step; were the arrays 4 KiB-aligned alike, each load would
 * share its address's low 12 bits with a store just issued to another array, and the CPU (4K
 * aliasing) waits for the store: measured 33 ms vs 19.8 ms for lazy Adam on 16k rows of a
 * [1M, 256] table, one thread.
 */
const STATE_SKEW_LIMIT = 4096;
const skewed = (at: number, i: number) => at + ((skewBytes(i) - (at % STATE_SKEW_LIMIT) + STATE_SKEW_LIMIT) % STATE_SKEW_LIMIT);
/** Room kept for the scratch area when a table is placed (grown on demand past it). */
const SCRATCH_RESERVE = 64 * 1024 * 1024;

let rowModule: WebAssembly.Module | undefined;
const module = () => (rowModule ??= new WebAssembly.Module(rowKernelsModule({ minPages: 1, maxPages: WASM_MEMORY_LIMIT / PAGE, shared: true })));

interface RowKernels {
  dots(x: number, off: number, out: number, tokens: number, perToken: number, dBytes: number): void;
  axpys(h: number, off: number, out: number, tokens: number, perToken: number, dBytes: number): void;
  sumRows(g: number, order: number, start: number, len: number, out: number, squares: number, rows: number, dBytes: number): void;
  sumFactoredRows(coef: number, order: number, start: number, len: number, out: number, squares: number, rows: number, dBytes: number, vec: number, perToken: number): void;
  gemm(a: number, b: number, c: number, m: number, n: number, k: number): void;
  readRows(off: number, out: number, rows: number, dBytes: number): void;
  scatterFactoredRows(coef: number, ids: number, vec: number, out: number, tokens: number, perToken: number, dBytes: number, colFrom: number, colTo: number): void;
}
/** The row updates (codegen/wasm/row-updates.ts): state offsets, g, ids, rows, dBytes, flag, settings. */
type RowUpdateKernel = (...args: number[]) => void;

// Tasks split over lanes (tokens, or rows for Adam); args[0] names the table's instance.
const DOTS_TASK: PoolTask = {
  key: 'table_dots',
  source: `function tableDots(args, from, to, ctx) {
  const k = ctx.wasm['table' + args[0]], perToken = args[4], dBytes = args[5];
  k.dots(args[1] + from * dBytes, args[2] + from * perToken * 4, args[3] + from * perToken * 4, to - from, perToken, dBytes);
}`,
};
const AXPYS_TASK: PoolTask = {
  key: 'table_axpys',
  source: `function tableAxpys(args, from, to, ctx) {
  const k = ctx.wasm['table' + args[0]], perToken = args[4], dBytes = args[5];
  k.axpys(args[1] + from * perToken * 4, args[2] + from * perToken * 4, args[3] + from * dBytes, to - from, perToken, dBytes);
}`,
};
const SUM_ROWS_TASK: PoolTask = {
  key: 'table_sum_rows',
  source: `function tableSumRows(args, from, to, ctx) {
  const k = ctx.wasm['table' + args[0]], dBytes = args[7];
  k.sumRows(args[1], args[2], args[3] + from * 4, args[4] + from * 4, args[5] + from * dBytes, args[6] + from * 8, to - from, dBytes);
}`,
};
const SUM_FACTORED_ROWS_TASK: PoolTask = {
  key: 'table_sum_factored_rows',
  source: `function tableSumFactoredRows(args, from, to, ctx) {
  const k = ctx.wasm['table' + args[0]], dBytes = args[7];
  k.sumFactoredRows(args[1], args[2], args[3] + from * 4, args[4] + from * 4, args[5] + from * dBytes, args[6] + from * 8, to - from, dBytes, args[8], args[9]);
}`,
};
// Lanes are column blocks of 16 bytes (threads write disjoint columns of every row).
const SCATTER_FACTORED_ROWS_TASK: PoolTask = {
  key: 'table_scatter_factored_rows',
  source: `function tableScatterFactoredRows(args, from, to, ctx) {
  ctx.wasm['table' + args[0]].scatterFactoredRows(args[1], args[2], args[3], args[4], args[5], args[6], args[7], from * 16, to * 16);
}`,
};
const READ_ROWS_TASK: PoolTask = {
  key: 'table_read_rows',
  source: `function tableReadRows(args, from, to, ctx) {
  ctx.wasm['table' + args[0]].readRows(args[1] + from * 4, args[2] + from * 4, to - from, args[3]);
}`,
};
/** args: [table, ...state offsets, g, ids, dBytes, flag, ...settings]; lanes are rows. */
const rowUpdateTasks = new Map<string, PoolTask>();
function rowUpdateTask(fn: keyof typeof ROW_UPDATES): PoolTask {
  let task = rowUpdateTasks.get(fn);
  if (!task) rowUpdateTasks.set(fn, (task = {
    key: `table_${fn}`,
    source: `function tableRowUpdate(args, from, to, ctx) {
  const s = ${ROW_UPDATES[fn].states}, dBytes = args[s + 3];
  ctx.wasm['table' + args[0]].${fn}(...args.slice(1, s + 1), args[s + 1] + from * dBytes, args[s + 2] + from * 4, to - from, dBytes, ...args.slice(s + 4));
}`,
  }));
  return task;
}

// The expert ops grouped by expert (TableMemory.groupedDots, groupedAxpys): lanes are experts;
// meta holds per expert [a, b, c (bytes), columns or rows padded, first position in order, slots].
const META = 6;
/**
 * A task per activation, made once each: `source(value)` is the task's source with `value` the
 * activation of a float named v, in JavaScript (wasm has no exp or erf).
 */
function tasksPerActivation(key: string, source: (value: string) => string): (act: string) => PoolTask {
  const made = new Map<string, PoolTask>();
  return (act) => {
    let task = made.get(act);
    if (!task) made.set(act, (task = { key: `${key}:${act}`, source: source(act === 'none' ? 'v' : ACTIVATIONS[act]!('v')) }));
    return task;
  };
}

/** The product, then out[i] = w[i] * act(C) for the expert's slots. */
const groupedDotsTask = tasksPerActivation('table_grouped_dots', (value) => `function tableGroupedDots(args, from, to, ctx) {
  const k = ctx.wasm['table' + args[0]], mem = args[1], meta = args[2], order = args[3], out = args[4], w = args[5], block = args[6], d = args[7];
  for (let g = from; g < to; g++) {
    const o = g * ${META}, c = meta[o + 2], n8 = meta[o + 3], start = meta[o + 4], n = meta[o + 5];
    k.gemm(meta[o], meta[o + 1], c, block, n8, d);
    const c4 = c >>> 2;
    for (let q = 0; q < n; q++) {
      const at = order[start + q] * block;
      for (let j = 0; j < block; j++) {
        const v = mem[c4 + j * n8 + q], i = at + j;
        out[i] = w[i] * (${value});
      }
    }
  }
}`);

/**
 * expert_act per slot: the dots of the thread's tokens, then out[i] = w[i] * act(dot) for their
 * slots on the same thread (the activation needs exp/erf, so JavaScript; done here it is split
 * over the threads and runs while the other thread still waits on rows, instead of after them).
 */
const gatedDotsTask = tasksPerActivation('table_gated_dots', (value) => `function tableGatedDots(args, from, to, ctx) {
  const k = ctx.wasm['table' + args[0]], x = args[1], off = args[2], dots = args[3], perToken = args[4], dBytes = args[5], mem = args[6], w = args[7], out = args[8];
  k.dots(x + from * dBytes, off + from * perToken * 4, dots + from * perToken * 4, to - from, perToken, dBytes);
  const d4 = dots >>> 2;
  for (let i = from * perToken, end = to * perToken; i < end; i++) {
    const v = mem[d4 + i];
    out[i] = w[i] * (${value});
  }
}`);
const GROUPED_AXPYS_TASK: PoolTask = {
  key: 'table_grouped_axpys',
  source: `function tableGroupedAxpys(args, from, to, ctx) {
  const k = ctx.wasm['table' + args[0]], meta = args[1], block = args[2], d = args[3];
  for (let g = from; g < to; g++) {
    const o = g * ${META};
    k.gemm(meta[o + 1], meta[o], meta[o + 2], meta[o + 3], d, block);
  }
}`,
};

import type { RowsUpdate } from '../backend.js';

let nextTable = 0;
const released = typeof FinalizationRegistry === 'function' ? new FinalizationRegistry<{ pool: WorkerPool; key: string }>(({ pool, key }) => pool.forgetWasm(key)) : undefined;

/** Why a table of `rows` x `rowSize` floats cannot live in a table memory, or null. */
export function tableMemoryUnfit(rows: number, rowSize: number): string | null {
  if (rowSize % 4 !== 0) return `its rows of ${rowSize} values are not a multiple of 4 (one SIMD vector)`;
  const bytes = rows * rowSize * 4;
  if (bytes + SCRATCH_RESERVE > WASM_MEMORY_LIMIT) return `it needs ${(bytes / 2 ** 30).toFixed(2)} GiB, past wasm32's 4 GiB memory`;
  return null;
}

/** The table memory each weights view belongs to: any backend instance finds a table placed by another. */
const holding = new WeakMap<Float32Array, TableMemory>();

/** Whether `a` can become a table memory's weights without a copy (TableMemory's `adopt`). */
export function adoptable(a: Float32Array): boolean {
  return wasmMemoryOf(a) !== undefined;
}

/** The table memory whose weights `a` is, if any. */
export function tableHolding(a: Float32Array | undefined): TableMemory | undefined {
  return a && holding.get(a);
}

export class TableMemory {
  readonly memory: WebAssembly.Memory;
  /** The table's weights, a view into the memory (byte 0). */
  readonly weights: Float32Array;
  readonly rowBytes: number;
  private readonly id = nextTable++;
  /** Where the scratch starts: after the weights and any optimizer state (addState). */
  private scratchBase: number;
  /** The optimizer state arrays (addState). */
  private readonly states: Float32Array[] = [];
  /** The last sumRows' results in the scratch, for updateRows to read in place. */
  private sums: { values: Float32Array; out: number; ids: number; rows: number } | undefined;
  private readonly local: RowKernels;

  /**
   * `pool`: run the kernels on its threads (more than one) as well as this one. `adopt`: an
   * array of the table's size that is byte 0 of a wasm memory (sharedFloat32's large arrays):
   * that memory becomes the table memory and the array its weights, with no copy.
   */
  constructor(readonly rows: number, readonly rowSize: number, options: { pool?: WorkerPool; adopt?: Float32Array } = {}) {
    const why = tableMemoryUnfit(rows, rowSize);
    if (why) throw new RangeError(why);
    const floats = rows * rowSize;
    this.rowBytes = rowSize * 4;
    this.scratchBase = floats * 4;
    const adopted = options.adopt && options.adopt.length === floats ? wasmMemoryOf(options.adopt) : undefined;
    this.memory = adopted ?? new WebAssembly.Memory({ initial: Math.ceil((this.scratchBase + PAGE) / PAGE), maximum: WASM_MEMORY_LIMIT / PAGE, shared: true });
    this.weights = adopted ? options.adopt! : new Float32Array(this.memory.buffer, 0, floats);
    holding.set(this.weights, this);
    const key = `table${this.id}`;
    if (options.pool && options.pool.threads > 1) {
      this.pool = options.pool;
      this.local = options.pool.defineWasm(key, module(), this.memory) as unknown as RowKernels;
      released?.register(this, { pool: options.pool, key });
    } else {
      this.local = new WebAssembly.Instance(module(), { env: { memory: this.memory } }).exports as unknown as RowKernels;
    }
  }

  private readonly pool: WorkerPool | undefined;

  /** Whether optimizer state for `count` more arrays of the table's size fits beside it (and a scratch). */
  stateFits(count: number): boolean {
    return this.scratchBase + count * (this.rows * this.rowBytes + STATE_SKEW_LIMIT) + SCRATCH_RESERVE <= WASM_MEMORY_LIMIT;
  }

  /**
   * A zero-filled array of the table's size for optimizer state (Adam's moments), placed after
   * the weights and earlier state: updateRows reads an id's rows of all of them in one memory. Only
   * before the first scratch is used (the scratch moves past it).
   */
  addState(): Float32Array {
    const bytes = this.rows * this.rowBytes;
    if (!this.stateFits(1)) throw new RangeError(`optimizer state beside a table of ${bytes} bytes passes wasm32's 4 GiB`);
    const at = skewed(this.scratchBase, this.states.length + 1);
    this.scratchBase = at + bytes;
    this.scratch(0);
    const a = new Float32Array(this.memory.buffer, at, bytes / 4);
    a.fill(0);
    this.states.push(a);
    return a;
  }

  /** The byte offset of optimizer state array `a` (from addState), or undefined. */
  private stateOffset(a: Float32Array): number | undefined {
    return this.states.includes(a) ? a.byteOffset : undefined;
  }

  /**
   * Sums gradient rows per touched row (CSR from bucketByRow) into the scratch, with each row's
   * sum of squares, on the pool's threads; the sums stay there for updateRows. The rows are given
   * whole (`grads`, slots x rowSize) or as factors (row q = coef[q] * vec[q / perToken]: a [slots]
   * coefficient and [T, rowSize] token vectors, 1/64 of the bytes at 64 slots per token).
   * Returns the sums as a view (valid until the next scratch use) and their squares' total.
   */
  async sumRows(grads: Float32Array | { coef: Float32Array; vec: Float32Array }, order: Float32Array, start: Float32Array, length: Float32Array, rowIds: Int32Array): Promise<{ values: Float32Array; sumSquares: number }> {
    const factored = !(grads instanceof Float32Array);
    const slots = order.length, rows = rowIds.length, d = this.rowBytes;
    const inBytes = factored ? Math.ceil((slots * 4) / 16) * 16 + grads.vec.length * 4 : slots * d;
    const g = this.scratch(inBytes + slots * 4 + rows * (8 + d + 8 + 4) + 32);
    const vecAt = factored ? g + Math.ceil((slots * 4) / 16) * 16 : 0;
    const orderAt = g + inBytes, startAt = orderAt + slots * 4, lenAt = startAt + rows * 4, outAt = Math.ceil((lenAt + rows * 4) / 16) * 16, squaresAt = outAt + rows * d, idsAt = squaresAt + rows * 8;
    if (factored) {
      this.f32(g, slots).set(grads.coef);
      this.f32(vecAt, grads.vec.length).set(grads.vec);
    } else this.f32(g, grads.length).set(grads);
    new Int32Array(this.memory.buffer, orderAt, slots).set(order);
    new Int32Array(this.memory.buffer, startAt, rows).set(start.subarray(0, rows));
    new Int32Array(this.memory.buffer, lenAt, rows).set(length.subarray(0, rows));
    new Int32Array(this.memory.buffer, idsAt, rows).set(rowIds);
    const perToken = factored ? slots / (grads.vec.length / this.rowSize) : 0;
    if (factored)
      await this.split(SUM_FACTORED_ROWS_TASK, [g, orderAt, startAt, lenAt, outAt, squaresAt, d, vecAt, perToken], rows, 64, (a, b) => this.local.sumFactoredRows(g, orderAt, startAt + a * 4, lenAt + a * 4, outAt + a * d, squaresAt + a * 8, b - a, d, vecAt, perToken));
    else await this.split(SUM_ROWS_TASK, [g, orderAt, startAt, lenAt, outAt, squaresAt, d], rows, 64, (a, b) => this.local.sumRows(g, orderAt, startAt + a * 4, lenAt + a * 4, outAt + a * d, squaresAt + a * 8, b - a, d));
    const squares = new Float64Array(this.memory.buffer, squaresAt, rows);
    let sumSquares = 0;
    for (let r = 0; r < rows; r++) sumSquares += squares[r]!;
    const values = this.f32(outAt, rows * this.rowSize);
    this.sums = { values, out: outAt, ids: idsAt, rows };
    return { values, sumSquares };
  }

  /**
   * A dense gradient of this table's shape (`full`, written whole) from factored rows: slot q
   * (perToken slots per token) adds coef[q] * vec[token of q] to row ids[q], in slot order, on
   * the pool's threads by columns; the same float32 bits as summing the rows per touched row.
   * False (nothing written) where the sizes do not fit the kernel.
   */
  async scatterFactoredRows(full: Float32Array, ids: ArrayLike<number>, f: { coef: Float32Array; vec: Float32Array }): Promise<boolean> {
    const d = this.rowBytes, slots = f.coef.length, tokens = f.vec.length / this.rowSize, perToken = slots / tokens;
    if (full.length !== this.rows * this.rowSize || ids.length !== slots || !Number.isInteger(tokens) || !Number.isInteger(perToken) || tokens === 0) return false;
    const coefAt = this.scratch(slots * 8 + f.vec.length * 4 + this.rows * d + 16);
    const idsAt = coefAt + slots * 4, vecAt = idsAt + slots * 4, outAt = vecAt + f.vec.length * 4;
    this.f32(coefAt, slots).set(f.coef);
    this.rowOffsets(ids instanceof Float32Array ? ids : Float32Array.from(ids), this.u32(idsAt, slots), 'factored row gradients', 1);
    this.f32(vecAt, f.vec.length).set(f.vec);
    const out = this.f32(outAt, this.rows * this.rowSize);
    out.fill(0);
    await this.split(SCATTER_FACTORED_ROWS_TASK, [coefAt, idsAt, vecAt, outAt, tokens, perToken, d], d / 16, 4, (a, b) => this.local.scatterFactoredRows(coefAt, idsAt, vecAt, outAt, tokens, perToken, d, a * 16, b * 16));
    full.set(out);
    return true;
  }

  /**
   * The optimizer's update (lazy Adam, SGD with or without momentum, Adagrad) of the rows the last
   * sumRows summed (`values` must be its result), with state arrays from addState, on the pool's
   * threads. Returns false (nothing done) when the arrays are not these; reports a non-finite
   * weight through the returned flag.
   */
  async updateRows(values: Float32Array, u: RowsUpdate): Promise<{ done: boolean; finite: boolean }> {
    const sums = this.sums;
    const [fn, states, settings]: [keyof typeof ROW_UPDATES, (Float32Array | undefined)[], number[]] =
      u.kind === 'adam' ? ['adamRows', [u.m, u.v], [u.scale, u.b1, 1 - u.b1, u.b2, 1 - u.b2, u.stepSize, u.epsHat, u.keep]]
      : u.kind === 'adagrad' ? ['adagradRows', [u.v], [u.scale, u.lr, u.keep, u.eps]]
      : u.m ? ['sgdMomentumRows', [u.m], [u.scale, u.momentum, u.lr, u.decay]]
      : ['sgdRows', [], [u.scale, u.lr, u.decay]];
    const offsets = states.map((a) => (a ? this.stateOffset(a) : undefined));
    if (offsets.some((o) => o === undefined) || !sums || sums.values !== values) return { done: false, finite: true };
    const flagAt = sums.ids + sums.rows * 4;
    const flag = new Int32Array(this.memory.buffer, flagAt, 1);
    flag[0] = 0;
    const d = this.rowBytes, at = offsets as number[];
    const kernel = (this.local as unknown as Record<string, RowUpdateKernel>)[fn]!;
    await this.split(rowUpdateTask(fn), [...at, sums.out, sums.ids, d, flagAt, ...settings], sums.rows, 64, (a, b) => kernel(...at, sums.out + a * d, sums.ids + a * 4, b - a, d, flagAt, ...settings));
    return { done: true, finite: flag[0] === 0 };
  }

  /** The scratch area (byte offset), at least `bytes` long; valid until the next call's scratch. */
  scratch(bytes: number): number {
    const need = Math.ceil((this.scratchBase + bytes) / PAGE), have = this.memory.buffer.byteLength / PAGE;
    if (need > WASM_MEMORY_LIMIT / PAGE) throw new RangeError(`a call needs ${bytes} bytes of scratch beside a table of ${this.scratchBase} bytes, past wasm32's 4 GiB`);
    if (need > have) this.memory.grow(need - have);
    return this.scratchBase;
  }

  f32(byteOffset: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, byteOffset, length);
  }

  u32(byteOffset: number, length: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, byteOffset, length);
  }

  /** Byte offsets of rows `idx` (float row ids, checked) into `off` (`scale` 1: the row numbers); `op` names the caller in the error. */
  rowOffsets(idx: Float32Array, off: Uint32Array, op: string, scale = this.rowBytes): void {
    const rows = this.rows, rowBytes = scale;
    for (let i = 0; i < idx.length; i++) {
      const e = idx[i]!;
      // Only NaN upstream makes a selected row id out of range (inputs are checked before any kernel).
      if (!(e >= 0 && e < rows)) throw new Error(`NonFiniteIndex: ${op}: index ${e} is out of range for ${rows} rows (the values it was selected from are not finite)`);
      off[i] = e * rowBytes;
    }
  }

  private async split(task: PoolTask, args: number[], lanes: number, minLanes: number, local: (from: number, to: number) => void): Promise<void> {
    if (this.pool) await this.pool.run(task, [this.id, ...args], lanes, { minLanes });
    else local(0, lanes);
  }

  /**
   * GB/s of reading `count` rows of the table at random (a fixed pseudo-random sequence, so
   * every bench reads the same rows) on all the pool's threads: the memory's rate for the access
   * the per-slot expert kernels make, median of `runs`.
   */
  async randomRowReads(count = 65536, runs = 7): Promise<number> {
    const d = this.rowBytes;
    const at = this.scratch(count * 8 + 16);
    const off = new Int32Array(this.memory.buffer, at, count);
    let x = 0x9e3779b9;
    const times: number[] = [];
    for (let r = 0; r < runs + 1; r++) {
      // Fresh rows each run (the sequence goes on): rows read by the run before would still be
      // in the last-level cache, and the yardstick would measure the cache, not the memory.
      for (let i = 0; i < count; i++) {
        x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6a09e667) | 0; // a fixed mix (xorshift-multiply), not Math.random: the same rows every time
        off[i] = ((x >>> 0) % this.rows) * d;
      }
      const t0 = performance.now();
      await this.split(READ_ROWS_TASK, [at, at + count * 4, d], count, 256, (a, b) => this.local.readRows(at + a * 4, at + count * 4 + a * 4, b - a, d));
      if (r > 0) times.push(performance.now() - t0);
    }
    // The kernel's sums checked on a few rows: a yardstick that read the wrong bytes would flatter.
    const sums = new Float32Array(this.memory.buffer, at + count * 4, count);
    for (const i of [0, 1, 2, 3, 4, count - 1]) {
      let want = 0;
      for (let c = 0; c < this.rowSize; c++) want += this.weights[off[i]! / 4 + c]!;
      if (Math.abs(sums[i]! - want) > 1e-3 * (1 + Math.abs(want))) throw new Error(`row-read yardstick: row ${off[i]! / d} summed to ${sums[i]}, not ${want}`);
    }
    times.sort((a, b) => a - b);
    return (count * d) / 1e9 / (times[Math.floor(times.length / 2)]! / 1000);
  }

  /** out[i] = row(off[i]) . x[token of i], tokens [0, tokens); pointers in bytes. */
  dots(x: number, off: number, out: number, tokens: number, perToken: number): Promise<void> {
    const d = this.rowBytes;
    return this.split(DOTS_TASK, [x, off, out, perToken, d], tokens, 8, (a, b) => this.local.dots(x + a * d, off + a * perToken * 4, out + a * perToken * 4, b - a, perToken, d));
  }

  /**
   * out[i] = w[i] * act(row(off[i]) . x[token of i]): dots() and then the gate and activation,
   * each thread over its own tokens; the dots are left at `dots` (bytes) too.
   */
  async gatedDots(x: number, off: number, dots: number, tokens: number, perToken: number, w: Float32Array, out: Float32Array, act: string): Promise<void> {
    const task = gatedDotsTask(act);
    const args = [this.id, x, off, dots, perToken, this.rowBytes, this.memory32(), w, out];
    if (this.pool) await this.pool.run(task, args, tokens, { minLanes: 8, outputs: [8] });
    else runLocally(task, args, tokens, this.local);
  }

  /** out[t] += sum of h[i] row(off[i]) over token t's slots. */
  axpys(h: number, off: number, out: number, tokens: number, perToken: number): Promise<void> {
    const d = this.rowBytes;
    return this.split(AXPYS_TASK, [h, off, out, perToken, d], tokens, 8, (a, b) => this.local.axpys(h + a * perToken * 4, off + a * perToken * 4, out + a * d, b - a, perToken, d));
  }

  /** Why the grouped expert kernels cannot run for a block of `block` rows per expert, or null. */
  static groupedUnfit(block: number, rowSize: number): string | null {
    if (block < MR) return `its experts have ${block} row${block === 1 ? '' : 's'}, fewer than the ${MR} of a product tile`;
    if (block % MR !== 0) return `its experts' ${block} rows are not a multiple of ${MR} (a product tile)`;
    if (rowSize % NR !== 0) return `its rows of ${rowSize} values are not a multiple of ${NR} (a product tile)`;
    return null;
  }

  /**
   * The slots of a call grouped by expert: slot s reads rows idx[s*block] .. + block (checked
   * in range). Returns the experts' first rows (ascending), each one's slots in slot order.
   */
  private groups(idx: Float32Array, block: number, op: string): { bases: number[]; order: Int32Array; starts: number[] } {
    const slots = idx.length / block, rows = this.rows;
    const count = new Map<number, number>();
    for (let s = 0; s < slots; s++) {
      const e = idx[s * block]!;
      // Only NaN upstream makes a selected row id out of range (inputs are checked before any kernel).
      if (!(e >= 0 && e + block <= rows)) throw new Error(`NonFiniteIndex: ${op}: index ${e} is out of range for ${rows} rows (the values it was selected from are not finite)`);
      count.set(e, (count.get(e) ?? 0) + 1);
    }
    const bases = [...count.keys()].sort((a, b) => a - b);
    const next = new Map<number, number>(), starts: number[] = [];
    let at = 0;
    for (const b of bases) {
      starts.push(at);
      next.set(b, at);
      at += count.get(b)!;
    }
    const order = new Int32Array(slots);
    for (let s = 0; s < slots; s++) {
      const e = idx[s * block]!, p = next.get(e)!;
      order[p] = s;
      next.set(e, p + 1);
    }
    return { bases, order, starts };
  }

  private memViews: { buffer: ArrayBufferLike; f32: Float32Array } | undefined;
  /** The whole memory as one view, made again only after growth (pool tasks get it by reference, once). */
  private memory32(): Float32Array {
    if (this.memViews?.buffer !== this.memory.buffer) this.memViews = { buffer: this.memory.buffer, f32: new Float32Array(this.memory.buffer) };
    return this.memViews.f32;
  }

  /**
   * expert_act grouped by expert: for each expert, C [block, n] = its rows [block, d] x the
   * transposed vectors of its n slots' tokens [d, n] (columns padded to a tile of 8 with zeros),
   * read where the rows live; then out[s*block + j] = w[..] * act(C[j, slot]). Each expert's
   * rows are read once per call, not once per slot.
   */
  async groupedDots(x: Float32Array, idx: Float32Array, w: Float32Array, out: Float32Array, tokens: number, block: number, act: string): Promise<void> {
    const d = this.rowSize, slots = idx.length / block, perToken = slots / tokens;
    const { bases, order, starts } = this.groups(idx, block, 'expert_act');
    const G = bases.length, widths = bases.map((_, g) => Math.ceil(((starts[g + 1] ?? slots) - starts[g]!) / NR) * NR);
    const metaBytes = Math.ceil((G * META * 4 + slots * 4) / 16) * 16;
    const operandBytes = widths.reduce((a, n) => a + n * (d + block) * 4, 0);
    const at = this.scratch(metaBytes + operandBytes);
    const meta = new Int32Array(this.memory.buffer, at, G * META), orderView = new Int32Array(this.memory.buffer, at + G * META * 4, slots);
    orderView.set(order);
    const mem = this.memory32();
    let p = at + metaBytes;
    for (let g = 0; g < G; g++) {
      const start = starts[g]!, n = (starts[g + 1] ?? slots) - start, n8 = widths[g]!;
      const b = p, c = b + d * n8 * 4;
      const b4 = b >>> 2;
      for (let q = 0; q < n8; q++) {
        if (q >= n) {
          for (let r = 0; r < d; r++) mem[b4 + r * n8 + q] = 0;
          continue;
        }
        const xo = Math.floor(order[start + q]! / perToken) * d;
        for (let r = 0; r < d; r++) mem[b4 + r * n8 + q] = x[xo + r]!;
      }
      meta.set([bases[g]! * this.rowBytes, b, c, n8, start, n], g * META);
      p = c + block * n8 * 4;
    }
    const task = groupedDotsTask(act);
    const args = [this.id, mem, meta, orderView, out, w, block, d] as const;
    if (this.pool) await this.pool.run(task, [...args], G, { minLanes: 1 });
    else runLocally(task, [...args], G, this.local);
  }

  /**
   * expert_out grouped by expert: for each expert, C [n, d] = its slots' h rows [n, block]
   * (rows padded to a tile of 4 with zeros) x its rows [block, d], read where they live; then
   * each slot's row of C is added to its token's output (here, in slot order per expert).
   */
  async groupedAxpys(h: Float32Array, idx: Float32Array, y: Float32Array, tokens: number, block: number): Promise<void> {
    const d = this.rowSize, slots = idx.length / block, perToken = slots / tokens;
    const { bases, order, starts } = this.groups(idx, block, 'expert_out');
    const G = bases.length, heights = bases.map((_, g) => Math.ceil(((starts[g + 1] ?? slots) - starts[g]!) / MR) * MR);
    const metaBytes = Math.ceil((G * META * 4) / 16) * 16;
    const operandBytes = heights.reduce((a, n) => a + n * (block + d) * 4, 0);
    const at = this.scratch(metaBytes + operandBytes);
    const meta = new Int32Array(this.memory.buffer, at, G * META);
    const mem = this.memory32();
    let p = at + metaBytes;
    for (let g = 0; g < G; g++) {
      const start = starts[g]!, n = (starts[g + 1] ?? slots) - start, n4 = heights[g]!;
      const a = p, c = a + n4 * block * 4;
      for (let q = 0; q < n; q++) mem.set(h.subarray(order[start + q]! * block, (order[start + q]! + 1) * block), (a >>> 2) + q * block);
      mem.fill(0, (a >>> 2) + n * block, (a >>> 2) + n4 * block);
      meta.set([bases[g]! * this.rowBytes, a, c, n4, start, n], g * META);
      p = c + n4 * d * 4;
    }
    const args = [this.id, meta, block, d] as const;
    if (this.pool) await this.pool.run(GROUPED_AXPYS_TASK, [...args], G, { minLanes: 1 });
    else runLocally(GROUPED_AXPYS_TASK, [...args], G, this.local);
    for (let g = 0; g < G; g++) {
      const c4 = meta[g * META + 2]! >>> 2, start = starts[g]!, n = meta[g * META + 5]!;
      for (let q = 0; q < n; q++) {
        const yo = Math.floor(order[start + q]! / perToken) * d, co = c4 + q * d;
        for (let j = 0; j < d; j++) y[yo + j] = y[yo + j]! + mem[co + j]!;
      }
    }
  }
}

/** Runs a table task on this thread alone (no pool): its source, compiled once per key. */
const localTasks = new Map<string, (args: unknown[], from: number, to: number, ctx: { wasm: Record<string, unknown> }) => void>();
function runLocally(task: PoolTask, args: unknown[], lanes: number, kernels: RowKernels): void {
  let fn = localTasks.get(task.key);
  if (!fn) localTasks.set(task.key, (fn = new Function(`return (${task.source})`)() as never));
  fn([0, ...args.slice(1)], 0, lanes, { wasm: { table0: kernels } });
}
