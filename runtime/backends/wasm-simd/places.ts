// What the wasm-simd backend's steps are given (HostContext), and where their operands are in
// the contraction kernel's memory.
import type { IRFunction, ValueRef } from '../../../src/ir/graph.js';
import type { WorkerPool } from '../../pool.js';
import type { WasmGemm } from './gemm.js';
import type { TableContext } from './table-steps.js';

export type Read = (r: ValueRef) => Float32Array;
export type HostFn = (read: Read) => Promise<Float32Array[]> | Float32Array[];

export interface HostContext extends TableContext {
  fn: IRFunction;
  pool: WorkerPool;
  gemm(): WasmGemm;
  /** Where a value's data lives: a parameter, or a computed value (views followed). */
  source(r: ValueRef): { kind: 'value'; ref: ValueRef } | { kind: 'param'; name: string };
  /** A parameter's data permuted once (cached), for operands read in another layout. */
  permuted(name: string, perm: number[]): Float32Array;
  param(name: string): Float32Array;
  /** Parameters are read per call (training: they change between calls). */
  paramsAsArguments: boolean;
  /** The program runs in training mode (BatchNorm with batch statistics). */
  training: boolean;
  permuteAxes(src: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array;
  /** Tells the user a step runs slower than it could, and why (run, bench and train print it). */
  note(message: string): void;
}

export const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** An operand's byte offset in the kernel memory: where it is when a kernel left it there, else a place of its own (made on first use) it is copied to. */
export function inPlaceOrCopied(gemm: WasmGemm, length: number, what: string, onCopy?: () => void): (a: Float32Array) => number {
  let at: number | undefined, view: (() => Float32Array) | undefined;
  return (a) => {
    const there = gemm.locate(a);
    if (there !== undefined) return there;
    onCopy?.();
    at ??= gemm.reserve(4 * Math.max(4, length), what);
    view ??= gemm.view(Float32Array, at, length);
    view().set(a);
    return at;
  };
}

