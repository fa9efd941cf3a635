// The wasm-simd backend's memory for one expert table: a shared WebAssembly.Memory holding the
// table (weights at byte 0) and a scratch area after it for each call's small operands (row
// offsets, the tokens' vectors, results).
// The row kernels (codegen/wasm/rows.ts) run in it on every thread of the pool, reading the
// selected rows where they live: no gather copy, no per-call copy of the table. The weights are a
// view into the memory, so host code (other kernels, outputs) reads them as a plain array. wasm32 caps a memory at 4 GiB: a table that does not fit gets the reason.
import { rowKernelsModule } from '../../../codegen/wasm/rows.js';
import { WASM_MEMORY_LIMIT } from './gemm.js';
import type { PoolTask, WorkerPool } from '../../pool.js';

const PAGE = 65536;
/** Room kept for the scratch area when a table is placed (grown on demand past it). */
const SCRATCH_RESERVE = 64 * 1024 * 1024;

let rowModule: WebAssembly.Module | undefined;
const module = () => (rowModule ??= new WebAssembly.Module(rowKernelsModule({ minPages: 1, maxPages: WASM_MEMORY_LIMIT / PAGE, shared: true })));

interface RowKernels {
  dots(x: number, off: number, out: number, tokens: number, perToken: number, dBytes: number): void;
  axpys(h: number, off: number, out: number, tokens: number, perToken: number, dBytes: number): void;
}

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
let nextTable = 0;
const released = typeof FinalizationRegistry === 'function' ? new FinalizationRegistry<{ pool: WorkerPool; key: string }>(({ pool, key }) => pool.forgetWasm(key)) : undefined;

/** Why a table of `rows` x `rowSize` floats cannot live in a table memory, or null. */
export function tableMemoryUnfit(rows: number, rowSize: number): string | null {
  if (rowSize % 4 !== 0) return `its rows of ${rowSize} values are not a multiple of 4 (one SIMD vector)`;
  const bytes = rows * rowSize * 4;
  if (bytes + SCRATCH_RESERVE > WASM_MEMORY_LIMIT) return `it needs ${(bytes / 2 ** 30).toFixed(2)} GiB, past wasm32's 4 GiB memory`;
  return null;
}

export class TableMemory {
  readonly memory: WebAssembly.Memory;
  /** The table's weights, a view into the memory (byte 0). */
  readonly weights: Float32Array;
  readonly rowBytes: number;
  private readonly id = nextTable++;
  private readonly scratchBase: number;
  private readonly local: RowKernels;

  /** `pool`: run the kernels on its threads (more than one) as well as this one. */
  constructor(readonly rows: number, readonly rowSize: number, options: { pool?: WorkerPool } = {}) {
    const why = tableMemoryUnfit(rows, rowSize);
    if (why) throw new RangeError(why);
    const floats = rows * rowSize;
    this.rowBytes = rowSize * 4;
    this.scratchBase = floats * 4;
    this.memory = new WebAssembly.Memory({ initial: Math.ceil((this.scratchBase + PAGE) / PAGE), maximum: WASM_MEMORY_LIMIT / PAGE, shared: true });
    this.weights = new Float32Array(this.memory.buffer, 0, floats);
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

  /** Byte offsets of rows `idx` (float row ids, checked) into `off`; `op` names the caller in the error. */
  rowOffsets(idx: Float32Array, off: Uint32Array, op: string): void {
    const rows = this.rows, rowBytes = this.rowBytes;
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

  /** out[i] = row(off[i]) . x[token of i], tokens [0, tokens); pointers in bytes. */
  dots(x: number, off: number, out: number, tokens: number, perToken: number): Promise<void> {
    const d = this.rowBytes;
    return this.split(DOTS_TASK, [x, off, out, perToken, d], tokens, 8, (a, b) => this.local.dots(x + a * d, off + a * perToken * 4, out + a * perToken * 4, b - a, perToken, d));
  }

  /** out[t] += sum of h[i] row(off[i]) over token t's slots. */
  axpys(h: number, off: number, out: number, tokens: number, perToken: number): Promise<void> {
    const d = this.rowBytes;
    return this.split(AXPYS_TASK, [h, off, out, perToken, d], tokens, 8, (a, b) => this.local.axpys(h + a * perToken * 4, off + a * perToken * 4, out + a * d, b - a, perToken, d));
  }
}
