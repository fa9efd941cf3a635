// scatter_rows (the adjoint of a row gather: an embedding's gradient) as WebAssembly SIMD128:
// the slots are bucketed by row on the host (runtime/backends/row-sums.ts), and each touched
// row is summed here from its slots in slot order, in float64 lanes, rounded once: the
// reference's arithmetic. The naive kernel visits every slot for every output value instead.
import { buildModule, HIGH_HALF, I, LOW_HALVES, type FunctionDef, type ValType } from './module.js';

/**
 * `scatterRows(g, order, start, len, rowIds, out, bucketFrom, bucketTo, rowBytes)`: for buckets
 * [bucketFrom, bucketTo), out row rowIds[u] = the sum of g's rows order[start[u] ..
 * start[u] + len[u]). Byte pointers; i32 indices; rowBytes a multiple of 16. Other rows of out
 * are left as they are (the caller zeroes them).
 */
export function scatterRowsFunction(): FunctionDef {
  const get = I.localGet, set = I.localSet;
  const [g, order, start, len, rowIds, out, from, to, rowBytes] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [u, j, t, s, n, dst, v, lo, hi] = [9, 10, 11, 12, 13, 14, 15, 16, 17];
  const at = (base: number) => [get(base), get(u), I.i32(4), I.i32Mul, I.i32Add, I.i32Load(0)];
  const body: number[][] = [
    get(from), set(u),
    I.block, I.loop,
    get(u), get(to), I.i32GeS, I.brIf(1),
    ...at(start), I.i32(4), I.i32Mul, get(order), I.i32Add, set(s),
    ...at(len), set(n),
    ...at(rowIds), get(rowBytes), I.i32Mul, get(out), I.i32Add, set(dst),
    I.i32(0), set(j),
    I.block, I.loop,
    get(j), get(rowBytes), I.i32GeS, I.brIf(1),
    ...I.v128Const0, set(lo), ...I.v128Const0, set(hi),
    I.i32(0), set(t),
    I.block, I.loop,
    get(t), get(n), I.i32GeS, I.brIf(1),
    // v = g[order[s + t]] at byte j of the row
    get(s), get(t), I.i32(4), I.i32Mul, I.i32Add, I.i32Load(0), get(rowBytes), I.i32Mul, get(g), I.i32Add, get(j), I.i32Add, I.v128Load(0), set(v),
    get(lo), get(v), I.f64x2PromoteLowF32x4, I.f64x2Add, set(lo),
    get(hi), get(v), get(v), I.i8x16Shuffle(HIGH_HALF), I.f64x2PromoteLowF32x4, I.f64x2Add, set(hi),
    get(t), I.i32(1), I.i32Add, set(t),
    I.br(0), I.end, I.end,
    get(dst), get(j), I.i32Add, get(lo), I.f32x4DemoteF64x2Zero, get(hi), I.f32x4DemoteF64x2Zero, I.i8x16Shuffle(LOW_HALVES), I.v128Store(0),
    get(j), I.i32(16), I.i32Add, set(j),
    I.br(0), I.end, I.end,
    get(u), I.i32(1), I.i32Add, set(u),
    I.br(0), I.end, I.end,
  ];
  return { name: 'scatterRows', params: Array<ValType>(9).fill('i32'), locals: [...Array<ValType>(6).fill('i32'), 'v128', 'v128', 'v128'], body };
}

export function scatterRowsModule(memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([scatterRowsFunction()], memory);
}
