// Where a step's operands are in the contraction kernel's memory.
import type { WasmGemm } from './gemm.js';

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

