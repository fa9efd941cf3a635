// The layout kernels (codegen/wasm/layout.ts): the 4 x 4 tile transpose against the JavaScript
// permute, in parts as the threads split it, and the block copy a slice runs on.
import { describe, expect, it } from 'vitest';
import { layoutModule } from '../codegen/wasm/layout.js';
import { permuteAxes } from '../runtime/backends/backend.js';

function instance() {
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 64 });
  const exports = new WebAssembly.Instance(new WebAssembly.Module(layoutModule({ minPages: 16, maxPages: 64 })), { env: { memory } }).exports;
  return { f: new Float32Array(memory.buffer), transpose: exports.transpose as (...a: number[]) => void, copyBlocks: exports.copyBlocks as (...a: number[]) => void };
}

describe('layout kernels', () => {
  it.each([[4, 4], [8, 20], [36, 12], [256, 512]])('transposes [%i, %i] as the JavaScript permute does, in two parts', (rows, cols) => {
    const { f, transpose } = instance();
    const src = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * 1e3);
    f.set(src, 0);
    const dst = rows * cols;
    f.fill(NaN, dst, 2 * dst);
    const half = Math.floor(rows / 8);
    transpose(0, 4 * dst, rows, cols, 0, half);
    transpose(0, 4 * dst, rows, cols, half, rows / 4);
    expect([...f.subarray(dst, 2 * dst)]).toEqual([...permuteAxes(src, [rows, cols], [1, 0])]);
  });

  it('copies a slice of the middle axis as the runs of the axis, block by block', () => {
    const { f, copyBlocks } = instance();
    const [outer, n, inner, start, end] = [5, 7, 3, 2, 6];
    const src = Float32Array.from({ length: outer * n * inner }, (_, i) => i);
    f.set(src, 0);
    const at = 4 * src.length, block = (end - start) * inner;
    copyBlocks(4 * start * inner, at, 0, outer, 4 * n * inner, 4 * block);
    const expected: number[] = [];
    for (let o = 0; o < outer; o++) for (let i = start; i < end; i++) for (let j = 0; j < inner; j++) expected.push(src[(o * n + i) * inner + j]!);
    expect([...f.subarray(src.length, src.length + outer * block)]).toEqual(expected);
  });
});
