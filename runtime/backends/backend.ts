// The backend interface: what the executor (runtime/executor.ts) asks of a backend, and the
// helpers every backend shares. A backend is a folder (gpujs/, wasm-simd/) that plans each IR
// node as a step, owns the memory its kernels read (parameters included), runs, and says what
// ran and what runs slower than it could. The executor binds dims, orders the steps, handles
// the backend-independent ones (views, counter-based noise) and never asks which backend it is:
// what differs is data (info.ts) or a method here.
import type { IRFunction, IRModule, Node, ValueRef } from '../../src/ir/graph.js';
import type { Dim } from '../../src/shapes/dim.js';
import type { Tensor } from '../../src/interp/tensor.js';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import { attrsOf } from '../../src/ir/ops/types.js';
import { param } from '../../src/ir/ops/leaves.js';
import type { WorkerPool } from '../pool.js';
import type { SparseGrad } from './row-sums.js';
import type { KernelArg } from '../../codegen/kernel.js';

/** A backend's capabilities as data (runtime/backends/info.ts lists them). */
/** Gradient rows as an outer product: row q = coef[q] * vec[token of q] (vec is [T, rowSize], coef [slots]). */
export interface FactoredRows {
  coef: Float32Array;
  vec: Float32Array;
}

/** The rows of a FactoredRows, built (float32 products, as the einsum makes them). */
export function outerRows(f: FactoredRows, rowSize: number): Float32Array {
  const slots = f.coef.length, perToken = slots / (f.vec.length / rowSize);
  const out = new Float32Array(slots * rowSize);
  for (let q = 0; q < slots; q++) {
    const c = f.coef[q]!, t = Math.floor(q / perToken) * rowSize, o = q * rowSize;
    for (let j = 0; j < rowSize; j++) out[o + j] = c * f.vec[t + j]!;
  }
  return out;
}

/**
 * Adds factored rows into a dense gradient `full` at `ids` (each id owns rows.length / ids.length
 * consecutive rows of `rowSize`), without building them: the same float32 products, added in the
 * same order as outerRows and a loop over its rows would.
 */
export function addOuterRows(full: Float32Array, ids: ArrayLike<number>, f: FactoredRows, rowSize: number): void {
  const slots = f.coef.length, perToken = slots / (f.vec.length / rowSize), perId = slots / ids.length;
  for (let q = 0; q < slots; q++) {
    const c = f.coef[q]!, t = Math.floor(q / perToken) * rowSize;
    const i = Math.floor(q / perId), dst = (ids[i]! * perId + (q - i * perId)) * rowSize;
    for (let j = 0; j < rowSize; j++) full[dst + j] = full[dst + j]! + Math.fround(c * f.vec[t + j]!);
  }
}

/**
 * One step's update of a table's touched rows, with its state arrays and settings (float64, as
 * the host loops of runtime/train/optim.ts use them; Optimizer.rowsUpdate makes it).
 */
export type RowsUpdate =
  | { kind: 'adam'; m: Float32Array; v: Float32Array; scale: number; b1: number; b2: number; stepSize: number; epsHat: number; keep: number }
  /** m: the velocity where momentum > 0. */
  | { kind: 'sgd'; m?: Float32Array; scale: number; momentum: number; lr: number; decay: number }
  | { kind: 'adagrad'; v: Float32Array; scale: number; lr: number; keep: number; eps: number };

/**
 * What updateRows did: done (false: not this backend's table, the caller updates the rows), every
 * updated weight finite, and onDevice where the table and its state now live on the device ahead
 * of their host arrays (the trainer then reports no change for them; syncToHost brings them back).
 */
export interface RowsUpdated {
  done: boolean;
  finite: boolean;
  onDevice?: boolean;
}

export interface BackendInfo {
  name: string;
  /** gpu.js `mode` of its gpu.js kernels. */
  mode: string;
  /** gpu.js kernel calls return Promises. */
  asyncMode: boolean;
  /** The class of a gpu.js kernel that really runs on this backend (anything else is a fallback). */
  kernelClass: string;
  /**
   * Runs on peerc's worker pool over shared memory (--threads and --plain-simd apply; the
   * trainer sums sparse rows and runs lazy Adam on the same threads).
   */
  pool: boolean;
  /** Runs only in a page (or a Web Worker of one). */
  browserOnly?: boolean;
  /**
   * Reads parameter tables in place while training (placeTable), so the training program may
   * read expert rows with fused ops instead of gathering them (compileTraining's fuseExpertReads).
   */
  tablesInPlace?: boolean;
}

export type Read = (r: ValueRef) => Float32Array;

/**
 * A value left where a device backend computed it (a GPU buffer): the executor passes it to
 * the backend's next steps as it is and downloads it only for a host step or an output.
 */
export interface DeviceValue {
  readonly onDevice: true;
  readonly length: number;
  download(): Promise<Float32Array>;
}

export type ReadAny = (r: ValueRef) => Float32Array | DeviceValue;

export function isDeviceValue(v: Float32Array | DeviceValue): v is DeviceValue {
  return (v as DeviceValue).onDevice === true;
}

/** One IR node as the backend runs it. */
export interface PlannedStep {
  /** Timing label (per-stage labels are reported through `time` when `timesItself`). */
  label: string;
  run(read: Read, time: (label: string, ms: number) => void): Float32Array[] | Promise<Float32Array[]>;
  /**
   * The step taking and leaving values on the device (a device backend's), where it can: its
   * inputs may be DeviceValues, its results are. The executor then uses it instead of run.
   */
  runOnDevice?(read: ReadAny, time: (label: string, ms: number) => void): Promise<(Float32Array | DeviceValue)[]>;
  /** The step reports its own (per-stage) times; otherwise the executor times the whole run. */
  timesItself?: boolean;
  /** Generated kernel sources, for review and goldens. */
  sources?: string[];
  /** Kernels it launches (for reports). */
  kernels: number;
}

/** What planning a node may ask of the executor. */
export interface PlanContext {
  fn: IRFunction;
  module: IRModule;
  training: boolean;
  /** Parameters are read per call (training: they change between calls). */
  paramsAsArguments: boolean;
  /** Where a value's data lives: a parameter, or a computed value (views followed). */
  source(r: ValueRef): { kind: 'value'; ref: ValueRef } | { kind: 'param'; name: string };
  param(name: string): Float32Array;
  /** A parameter's data permuted once (cached), for operands read in another layout. */
  permuted(name: string, perm: number[]): Float32Array;
  shapeOf(r: ValueRef): number[];
  dimValue(d: Dim): number;
}

export interface BackendOptions {
  /** Worker threads, the caller included (backends with a pool). */
  threads?: number;
  /** Relaxed-SIMD multiply-add where the engine has it (SIMD backends). */
  relaxedSimd?: boolean;
  /** webgpu: bind at most this many bytes per buffer (below the adapter's own limit). */
  maxBindingBytes?: number;
  /** webgpu: false keeps to kernels without subgroup operations where the adapter has them (tests compare both). */
  subgroups?: boolean;
}

export interface Backend {
  readonly info: BackendInfo;
  /** How it runs here, for reports: e.g. 'wasm-simd, 2 threads, relaxed SIMD'. */
  describe(): string;
  /**
   * Takes the weights (reference tensors, or float32 arrays used as they are) into the memory
   * its kernels read; returns them as float32 arrays by parameter name. `constant`: they do not
   * change between calls (evaluation), so a backend may keep them in a layout of its own.
   */
  adoptParams(module: IRModule, fn: IRFunction, weights: ReadonlyMap<string, Tensor | Float32Array>, given: Map<string, Float32Array>, constant: boolean): Map<string, Float32Array>;
  /** The node as a step; throws PEER0606 where the backend cannot compute it correctly. */
  plan(node: Node, ctx: PlanContext): PlannedStep;
  /** GFLOP/s of its best 512^3 matmul: the yardstick for its contraction kernels. */
  matmulReference(runs?: number): Promise<number>;
  /** The memory's rate for reads of random rows of the largest table the backend keeps (where it keeps tables). */
  rowReadReference?(): Promise<{ gbPerS: number; rows: number; rowBytes: number } | undefined>;
  /** What runs slower than it could here, and why (run, bench and train print these). */
  notes(): string[];
  /** Bytes copied between host memory and device memory so far (device backends): up to the device (`params` of it into parameters' copies), down to the host. */
  transfers?(): { up: number; down: number; params: number };
  /**
   * Sums gradient rows per touched table row (an expert table's sparse gradient); `key` names
   * the table (a backend may keep a buffer per table: the sums are valid until its next call).
   */
  sumRows(ids: ArrayLike<number>, grads: Float32Array, rowSize: number, key: string): Promise<SparseGrad>;
  /**
   * Moves a trained table (parameter `name`, `rows` x `rowSize`) to where the backend's kernels read
   * it in place, returning the array that now holds it (the caller uses it instead of `data`), or
   * why it stays where it is.
   */
  placeTable?(name: string, data: Float32Array, rowSize: number): Float32Array | string;
  /**
   * sumRows of rows given as factors (row q = coef[q] * vec[q / perToken]), without building
   * them; undefined where the backend cannot for this table (the executor builds the rows then).
   * `forUpdate`: the sums go to updateRows next, so a device backend may keep them on its device.
   */
  sumFactoredRows?(ids: ArrayLike<number>, rows: FactoredRows, rowSize: number, key: string, forUpdate?: boolean): Promise<SparseGrad> | undefined;
  /**
   * Adds factored rows into a zero-filled dense gradient `full` of table `key` as addOuterRows
   * does (ids owning `block` consecutive rows each: experts of a mixture, or one row: a placed
   * table's rows), with the same sums. Returns how, for the step's timings; undefined where the
   * backend cannot for these sizes (the caller sums them otherwise).
   */
  addFactoredRows?(full: Float32Array, ids: ArrayLike<number>, rows: FactoredRows, rowSize: number, key: string): Promise<string | undefined>;
  /** Optimizer state arrays for a placed table, where the backend's row updates read them (or why not). */
  tableState?(name: string, count: number): Float32Array[] | string;
  /**
   * The optimizer's update of a placed table's rows as summed by the last sumRows; done: false when
   * these are not its arrays. `denseToo`: the table also has a dense gradient, already applied to
   * its host array (a backend keeping the table elsewhere leaves its rows to the host too).
   */
  updateRows?(name: string, sparse: SparseGrad, update: RowsUpdate, denseToo?: boolean): Promise<RowsUpdated>;
  /**
   * A parameter's host array changed (`rows` of `rowSize` floats, or all of it): a backend that
   * keeps copies of parameters (a GPU's buffers) brings them up to date before their next use.
   */
  paramsChanged?(data: Float32Array, rows?: ArrayLike<number>, rowSize?: number): void;
  /**
   * Copies back to the host arrays what updateRows left newer on the device (the tables and their
   * optimizer state): checkpoints, exports and other backends read the host arrays.
   */
  syncToHost?(): Promise<void>;
  /** Whether the device holds newer values of this host array than the array does (syncToHost has not run since). */
  newerOnDevice?(data: Float32Array): boolean;
  /** Its worker pool, where it has more than one thread (the trainer's lazy Adam uses it). */
  pool(): WorkerPool | undefined;
  /** Threads it runs on, the caller included. */
  readonly threads: number;
  destroy(): void;
}

/**
 * A node's inputs as generated-kernel arguments: parameters bound once as constants (unless
 * they are passed per call, in training), values (views followed) read per call.
 */
export function kernelArgs(node: Node, ctx: PlanContext): KernelArg[] {
  return node.inputs.map((r) => {
    const src = ctx.source(r);
    return src.kind === 'param' && !ctx.paramsAsArguments ? { kind: 'param', name: src.name, shape: ctx.shapeOf(r) } : { kind: 'value', ref: src.kind === 'param' ? r : src.ref, shape: ctx.shapeOf(r) };
  });
}

/** Ops that are views of their input's buffer: no kernel, no copy. */
export const VIEW_OPS: ReadonlySet<string> = new Set(['reshape', 'expand_dims', 'aux_loss', 'metric']);

/** Follows views back to the value (or parameter) that holds a value's data. */
export function dataSource(fn: IRFunction, r: ValueRef): { kind: 'value'; ref: ValueRef } | { kind: 'param'; name: string } {
  let cur = r;
  for (;;) {
    const n = fn.graph.node(cur.node);
    if (n.op === 'param') return { kind: 'param', name: attrsOf(param, n).name };
    if (!VIEW_OPS.has(n.op)) return { kind: 'value', ref: cur };
    cur = n.inputs[0]!;
  }
}

export class KernelFallback extends Error {}

/** A backend cannot run here; the message says what is missing. */
export class BackendUnavailable extends Error {}

/** A computed row index was out of range: only NaN or infinite values upstream can cause it (indices are checked at compile time). */
export class NonFiniteIndex extends Error {}

/**
 * A program needs a kernel beyond what the backend computes correctly (a flat index over 2^24
 * on gpu.js, products past wasm32's 4 GiB on wasm-simd): PEER0606 at the op, before any kernel runs.
 */
export function kernelLimit(node: Node, backend: string, detail: string): CompileError {
  return new CompileError(diagnostic('PEER0606', node.span ?? null, { backend, detail }));
}

/** data (row-major, `shape`) with its axes reordered: result axis i is source axis perm[i]. */
export function permuteAxes(src: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const out = new Float32Array(src.length);
  const srcStrides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const newShape = perm.map((j) => shape[j]!);
  const rank = newShape.length;
  // The innermost axis is copied in a tight loop; the outer ones are counted like an odometer.
  const inner = newShape[rank - 1] ?? 1, innerStride = srcStrides[perm[rank - 1]!] ?? 1;
  const idx = new Array<number>(Math.max(0, rank - 1)).fill(0);
  for (let f = 0; f < out.length; f += inner) {
    let s = 0;
    for (let i = 0; i < rank - 1; i++) s += idx[i]! * srcStrides[perm[i]!]!;
    for (let j = 0; j < inner; j++) out[f + j] = src[s + j * innerStride]!;
    for (let i = rank - 2; i >= 0; i--) {
      if (++idx[i]! < newShape[i]!) break;
      idx[i] = 0;
    }
  }
  return out;
}

/** Writes a reference tensor's values into `out` as float32. */
export function fillFloat32(t: Tensor, out: Float32Array): Float32Array {
  if (!t.isLazy) {
    out.set(t.data);
    return out;
  }
  for (let i = 0; i < t.size; i++) out[i] = t.element(i);
  return out;
}

/** The weights as float32 arrays: the given ones as they are, tensors written into `alloc`'d arrays. */
export function weightArrays(module: IRModule, weights: ReadonlyMap<string, Tensor | Float32Array>, given: ReadonlyMap<string, Float32Array>, alloc: (length: number) => Float32Array): Map<string, Float32Array> {
  const params = new Map(given);
  for (const p of module.params) if (!params.has(p.name)) params.set(p.name, fillFloat32(weights.get(p.name) as Tensor, alloc(p.shape.reduce((a, b) => a * b, 1))));
  return params;
}
