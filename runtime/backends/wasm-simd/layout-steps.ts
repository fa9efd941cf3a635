// The wasm-simd backend's layout steps: values moved, not computed (a slice's runs, a transpose
// of two groups of axes) and scatter_rows (an embedding's gradient), as kernels in the
// contraction kernel's memory, so the steps around them read and write there in place.
import type { Node, ValueRef } from '../../../src/ir/graph.js';
import { attrsOf } from '../../../src/ir/ops/types.js';
import { slice } from '../../../src/ir/ops/indexing.js';
import { layoutModule } from '../../../codegen/wasm/layout.js';
import { scatterRowsModule } from '../../../codegen/wasm/scatter.js';
import { bucketByRow } from '../row-sums.js';
import type { PoolTask } from '../../pool.js';
import { inPlaceOrCopied, size, type HostContext, type HostFn } from './places.js';

/** A slice of an axis as the block-copy kernel in the contraction kernel's memory (its runs copied whole, by memory.copy), the result left there. */
export function sliceStep(ctx: HostContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: HostFn } {
  const shape = shapeOf(node.inputs[0]!);
  const { axis: at, start, end } = attrsOf(slice, node);
  const axis = (at + shape.length) % shape.length;
  const inner = size(shape.slice(axis + 1)), outer = size(shape.slice(0, axis)), n = shape[axis]!;
  const block = (end - start) * inner;
  const gemm = ctx.gemm();
  const kernel = gemm.instantiate('layout', (limits) => layoutModule(limits));
  const task: PoolTask = {
    key: `${kernel}:blocks`,
    source: `function copyBlocks(args, from, to, ctx) {
  ctx.wasm[${JSON.stringify(kernel)}].copyBlocks(args[0], args[1], from, to, args[2], args[3]);
}`,
  };
  const what = `slice of [${shape.join(', ')}]`;
  const outAt = gemm.reserve(4 * Math.max(4, outer * block), what);
  const result = gemm.view(Float32Array, outAt, outer * block);
  const place = inPlaceOrCopied(gemm, size(shape), what);
  return {
    label: 'slice (wasm)',
    host: async (read) => {
      const x = place(read(node.inputs[0]!));
      // A part should copy at least 256 KB to be worth a second thread.
      await ctx.pool.run(task, [x + 4 * start * inner, outAt, 4 * n * inner, 4 * block], outer, { minLanes: Math.max(1, Math.ceil(2 ** 18 / (4 * block))) });
      return [result()];
    },
  };
}

/**
 * A permutation that swaps two groups of axes (perm a rotation: [j, ..., n-1, 0, ..., j-1]) is
 * the transpose of [P, Q] (P the first group's size): done by the 4 x 4 tile kernel into a place
 * of its own in the kernel memory, blocks of rows split across the threads. Undefined for other
 * permutations and for sizes that are not multiples of 4 (the JavaScript permute does those).
 */
export function transposer(ctx: HostContext, shape: readonly number[], perm: readonly number[]): ((a: Float32Array) => Promise<Float32Array>) | undefined {
  const j = perm[0]!, n = perm.length;
  if (j === 0 || !perm.every((p, i) => p === (i + j) % n)) return undefined;
  const rows = size(shape.slice(0, j)), cols = size(shape.slice(j));
  if (rows % 4 !== 0 || cols % 4 !== 0) return undefined;
  const gemm = ctx.gemm();
  const kernel = gemm.instantiate('layout', (limits) => layoutModule(limits));
  const task: PoolTask = {
    key: `${kernel}:transpose`,
    source: `function transpose(args, from, to, ctx) {
  ctx.wasm[${JSON.stringify(kernel)}].transpose(args[0], args[1], args[2], args[3], from, to);
}`,
  };
  const what = `a transpose of [${rows}, ${cols}]`;
  const outAt = gemm.reserve(4 * rows * cols, what);
  const result = gemm.view(Float32Array, outAt, rows * cols);
  const place = inPlaceOrCopied(gemm, rows * cols, what);
  // A part should move at least 256 KB to be worth a second thread.
  const minLanes = Math.max(1, Math.ceil(2 ** 18 / (16 * cols)));
  return async (a) => {
    await ctx.pool.run(task, [place(a), outAt, rows, cols], rows / 4, { minLanes });
    return result();
  };
}

/**
 * scatter_rows as the SIMD kernel: the slots bucketed by row on the host, each touched row summed
 * from its slots (float64, slot order, rounded once) straight into the zeroed result in the
 * kernel memory, buckets split across the threads. Undefined (the gpu.js kernel) for rows that
 * are not whole f32x4 vectors. An index that is not a row (NaN upstream) stops the step.
 */
export function scatterRowsStep(ctx: HostContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: HostFn } | undefined {
  const out = shapeOf({ node: node.id, result: 0 });
  const rows = out[0]!, rowSize = size(out.slice(1)), slots = size(shapeOf(node.inputs[1]!));
  if (rowSize % 4 !== 0 || slots === 0) return undefined;
  if (4 * rows * rowSize > 2 ** 30) {
    ctx.note(`scatter_rows into [${out.join(', ')}] passes 1 GiB, more than the kernel memory should hold for one gradient: it stays the generic kernel, which visits every slot for every value (mark the table @sparse for row gradients)`);
    return undefined;
  }
  const gemm = ctx.gemm();
  const kernel = gemm.instantiate('scatterRows', (limits) => scatterRowsModule(limits));
  const task: PoolTask = {
    key: `${kernel}:buckets`,
    source: `function scatterRows(args, from, to, ctx) {
  ctx.wasm[${JSON.stringify(kernel)}].scatterRows(args[0], args[1], args[2], args[3], args[4], args[5], from, to, args[6]);
}`,
  };
  const what = `scatter_rows into [${out.join(', ')}]`;
  const outAt = gemm.reserve(4 * rows * rowSize, what);
  const result = gemm.view(Float32Array, outAt, rows * rowSize);
  // order, start, length and row ids: i32, at most one bucket per slot.
  const indexAt = gemm.reserve(16 * slots, what);
  const indices = gemm.view(Int32Array, indexAt, 4 * slots);
  const place = inPlaceOrCopied(gemm, slots * rowSize, what);
  return {
    label: 'scatter_rows (wasm-simd)',
    host: async (read) => {
      const ids = read(node.inputs[1]!);
      for (let i = 0; i < ids.length; i++) {
        const r = ids[i]!;
        if (!(r >= 0 && r < rows && r === Math.floor(r))) throw new Error(`NonFiniteIndex: scatter_rows: index ${r} is out of range for ${rows} rows (the values it was selected from are not finite)`);
      }
      const b = bucketByRow(ids);
      const n = b.rows.length, idx = indices();
      idx.set(b.order, 0);
      idx.set(b.start.subarray(0, n), slots);
      idx.set(b.length.subarray(0, n), 2 * slots);
      idx.set(b.rows, 3 * slots);
      const g = place(read(node.inputs[0]!));
      result().fill(0);
      // A part should sum at least ~64 KB of rows to be worth a second thread.
      await ctx.pool.run(task, [g, indexAt, indexAt + 4 * slots, indexAt + 8 * slots, indexAt + 12 * slots, outAt, 4 * rowSize], n, { minLanes: Math.max(1, Math.ceil(2 ** 16 / (4 * rowSize))) });
      return [result()];
    },
  };
}
