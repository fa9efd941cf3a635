// The layout kernels (codegen/wasm/layout.ts): the 4 x 4 tile transpose against the JavaScript
// permute, in parts as the threads split it, the block copy a slice runs on, and scatter_rows.
import { describe, expect, it } from 'vitest';
import { layoutModule } from '../codegen/wasm/layout.js';
import { permuteAxes } from '../runtime/backends/backend.js';
import { scatterRowsModule } from '../codegen/wasm/scatter.js';
import { bucketByRow } from '../runtime/backends/row-sums.js';
import { scatter_rows } from '../src/ir/ops/scatter.js';
import { Tensor } from '../src/interp/tensor.js';
import { Dim } from '../src/shapes/dim.js';

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

describe('scatter_rows kernel', () => {
  it('sums each row from its slots in float64, rounded once: the reference bit for bit, in two parts', () => {
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 64 });
    const scatterRows = new WebAssembly.Instance(new WebAssembly.Module(scatterRowsModule({ minPages: 16, maxPages: 64 })), { env: { memory } }).exports.scatterRows as (...a: number[]) => void;
    const [rows, rowSize, slots] = [9, 12, 40];
    const ids = Float32Array.from({ length: slots }, (_, i) => (i * 7 + (i % 3)) % rows);
    // Values of very different sizes, so rounding each addition would change the sums.
    const g = Float32Array.from({ length: slots * rowSize }, (_, i) => Math.sin(i) * 10 ** ((i % 5) - 2));
    const b = bucketByRow(ids);
    const n = b.rows.length;
    const f = new Float32Array(memory.buffer), i32 = new Int32Array(memory.buffer);
    const [gAt, orderAt, startAt, lenAt, rowsAt, outAt] = [0, 4096, 8192, 12288, 16384, 20480];
    f.set(g, gAt / 4);
    i32.set(b.order, orderAt / 4);
    i32.set(b.start.subarray(0, n), startAt / 4);
    i32.set(b.length.subarray(0, n), lenAt / 4);
    i32.set(b.rows, rowsAt / 4);
    f.fill(0, outAt / 4, outAt / 4 + rows * rowSize);
    scatterRows(gAt, orderAt, startAt, lenAt, rowsAt, outAt, 0, 3, 4 * rowSize);
    scatterRows(gAt, orderAt, startAt, lenAt, rowsAt, outAt, 3, n, 4 * rowSize);
    const [ref] = scatter_rows.evaluate!([new Tensor('f32', [slots, rowSize], Float64Array.from(g)), new Tensor('index', [slots], Float64Array.from(ids))], { rows: [Dim.of(rows)] }, { training: false, dimValue: (d) => d.value!, updateBuffer: () => undefined, inputParamNames: [] });
    expect([...f.subarray(outAt / 4, outAt / 4 + rows * rowSize)]).toEqual([...Float32Array.from(ref!.data)]);
  });
});
