// Kernels over the rows of one expert table as WebAssembly SIMD128, run in the table's own
// memory (runtime/wasm-tables.ts): the table and a scratch area share one wasm32 memory, so a
// kernel reads the selected rows where they live, with no gather copy.
// Rows are named by byte offsets (validated by the caller), eight rows at a time where a token
// has eight slots left (ROW_STREAMS): independent row streams keep more memory reads in flight.
//   dots:  out[i] = U[row i] . x[token of i]               (expert activations, before the gate)
//   axpys: out[t] += sum over t's slots i of h[i] U[row i]  (expert outputs)
//   gemm:  the contraction micro-kernel (gemm.ts) on this memory, for the expert ops grouped by
//          expert: one product per expert of its m rows with its tokens' vectors
// Row sizes are multiples of 4 floats (one f32x4); other sizes stay host tasks.
import { buildModule, HIGH_HALF, I, type FunctionDef } from './module.js';
import { gemmFunction } from './gemm.js';
import { rowUpdateFunctions } from './row-updates.js';
import { addConst, addLocal, code, get, horizontalSum, locals, set, v128At, whileLoop, zero, type Code } from './structured.js';

/**
 * Rows per group of the per-slot kernels: eight independent row streams, the most memory reads
 * in flight that still keep every accumulator in a register (measured on one core: random 1 KiB
 * rows read at about 1.3x the rate of four streams; sixteen gave no more).
 */
export const ROW_STREAMS = 8;

/** Group sizes the per-slot kernels walk a token's slots in: as many full groups as fit, then fewer. */
const GROUPS = [ROW_STREAMS, 4, 1];

/** dots(x, off, out, tokens, perToken, dBytes): pointers in bytes; `off` holds one row offset per slot. */
function dotsFunction(): FunctionDef {
  const [x, off, out, tokens, perToken, dBytes, s, j] = [0, 1, 2, 3, 4, 5, 6, 7];
  const p = Array.from({ length: ROW_STREAMS }, (_, r) => 8 + r);
  const acc = Array.from({ length: ROW_STREAMS }, (_, r) => 8 + ROW_STREAMS + r), xv = 8 + 2 * ROW_STREAMS;
  const group = (n: number) => whileLoop([get(s), I.i32(n), I.i32GeS], [
    ...p.slice(0, n).flatMap((pr, r) => [get(off), I.i32Load(4 * r), set(pr)]),
    ...acc.slice(0, n).flatMap(zero),
    I.i32(0), set(j),
    ...whileLoop([get(j), get(dBytes), I.i32LtS], [
      ...v128At(x, j), set(xv),
      ...p.slice(0, n).flatMap((pr, r) => [get(acc[r]!), ...v128At(pr, j), get(xv), I.f32x4Mul, I.f32x4Add, set(acc[r]!)]),
      addConst(j, 16),
    ]),
    ...acc.slice(0, n).flatMap((a, r) => [get(out), ...horizontalSum(a), I.f32Store(4 * r)]),
    addConst(off, 4 * n), addConst(out, 4 * n), addConst(s, -n),
  ]);
  const body = whileLoop([get(tokens)], [get(perToken), set(s), ...GROUPS.flatMap(group), addLocal(x, dBytes), addConst(tokens, -1)]);
  return { name: 'dots', params: locals(['i32', 6]), locals: locals(['i32', 2 + ROW_STREAMS], ['v128', ROW_STREAMS + 1]), body: code(body) };
}

/** axpys(h, off, out, tokens, perToken, dBytes): out rows (one per token) are added to, not cleared. */
function axpysFunction(): FunctionDef {
  const [h, off, out, tokens, perToken, dBytes, s, j] = [0, 1, 2, 3, 4, 5, 6, 7];
  const p = Array.from({ length: ROW_STREAMS }, (_, r) => 8 + r);
  const hv = Array.from({ length: ROW_STREAMS }, (_, r) => 8 + ROW_STREAMS + r);
  // Each out float gets its slots' products added one by one in slot order, whatever the grouping.
  const group = (n: number) => whileLoop([get(s), I.i32(n), I.i32GeS], [
    ...p.slice(0, n).flatMap((pr, r) => [get(off), I.i32Load(4 * r), set(pr)]),
    ...hv.slice(0, n).flatMap((v, r) => [get(h), I.v128Load32Splat(4 * r), set(v)]),
    I.i32(0), set(j),
    ...whileLoop([get(j), get(dBytes), I.i32LtS], [
      get(out), get(j), I.i32Add,
      ...v128At(out, j),
      ...p.slice(0, n).flatMap((pr, r) => [...v128At(pr, j), get(hv[r]!), I.f32x4Mul, I.f32x4Add]),
      I.v128Store(0),
      addConst(j, 16),
    ]),
    addConst(off, 4 * n), addConst(h, 4 * n), addConst(s, -n),
  ]);
  const body = whileLoop([get(tokens)], [get(perToken), set(s), ...GROUPS.flatMap(group), addLocal(out, dBytes), addConst(tokens, -1)]);
  return { name: 'axpys', params: locals(['i32', 6]), locals: locals(['i32', 2 + ROW_STREAMS], ['v128', ROW_STREAMS]), body: code(body) };
}

/**
 * sumRows(g, order, start, len, out, squares, rows, dBytes): for each touched row r, the sum of
 * gradient rows order[start[r] .. start[r] + len[r]) of g (in that order, as the reference adds
 * them) into row r of out, and its sum of squares (float64) into squares[r]. Indices are i32.
 * sumFactoredRows(coef, order, start, len, out, squares, rows, dBytes, vec, perToken): the same
 * with gradient row q made as coef[q] * vec[q / perToken].
 */
function sumRowsFunction(factored: boolean): FunctionDef {
  // Factored: g is the [slots] coefficients, vec the [T, d] token vectors; gradient row q is
  // coef[q] * vec[q / perToken], multiplied here (one float32 product, as the einsum made it).
  const [g, order, start, len, out, squares, rows, dBytes, vec, perToken] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const first = factored ? 10 : 8;
  const [q, s, src, j] = [first, first + 1, first + 2, first + 3];
  const [x, acc0, acc1, c] = [first + 4, first + 5, first + 6, first + 7];
  const slotOf = (slot: Code[]) => [...slot, I.i32(2), I.i32Shl, get(order), I.i32Add, I.i32Load(0)];
  const srcOf = (slot: Code[]) => factored
    ? [
      ...slotOf(slot), set(src),
      get(src), I.i32(2), I.i32Shl, get(g), I.i32Add, I.v128Load32Splat(0), set(c),
      get(src), get(perToken), I.i32DivU, get(dBytes), I.i32Mul, get(vec), I.i32Add, set(src),
    ]
    : [...slotOf(slot), get(dBytes), I.i32Mul, get(g), I.i32Add, set(src)];
  const row = (v: Code[]) => (factored ? [...v, get(c), I.f32x4Mul] : v);
  const body = whileLoop([get(rows)], [
    get(start), I.i32Load(0), set(s),
    ...srcOf([get(s)]),
    I.i32(0), set(j),
    ...whileLoop([get(j), get(dBytes), I.i32LtS], [get(out), get(j), I.i32Add, ...row(v128At(src, j)), I.v128Store(0), addConst(j, 16)]),
    I.i32(1), set(q),
    ...whileLoop([get(q), get(len), I.i32Load(0), I.i32LtS], [
      ...srcOf([get(s), get(q), I.i32Add]),
      I.i32(0), set(j),
      ...whileLoop([get(j), get(dBytes), I.i32LtS], [get(out), get(j), I.i32Add, ...v128At(out, j), ...row(v128At(src, j)), I.f32x4Add, I.v128Store(0), addConst(j, 16)]),
      addConst(q, 1),
    ]),
    ...zero(acc0), ...zero(acc1), I.i32(0), set(j),
    ...whileLoop([get(j), get(dBytes), I.i32LtS], [
      ...v128At(out, j), set(x),
      get(acc0), get(x), I.f64x2PromoteLowF32x4, get(x), I.f64x2PromoteLowF32x4, I.f64x2Mul, I.f64x2Add, set(acc0),
      get(x), get(x), I.i8x16Shuffle(HIGH_HALF), set(x),
      get(acc1), get(x), I.f64x2PromoteLowF32x4, get(x), I.f64x2PromoteLowF32x4, I.f64x2Mul, I.f64x2Add, set(acc1),
      addConst(j, 16),
    ]),
    get(squares), get(acc0), get(acc1), I.f64x2Add, set(x), get(x), I.f64x2ExtractLane(0), get(x), I.f64x2ExtractLane(1), I.f64Add, I.f64Store(0),
    addConst(start, 4), addConst(len, 4), addLocal(out, dBytes), addConst(squares, 8), addConst(rows, -1),
  ]);
  return { name: factored ? 'sumFactoredRows' : 'sumRows', params: locals(['i32', factored ? 10 : 8]), locals: locals(['i32', 4], ['v128', 4]), body: code(body) };
}


/**
 * scatterFactoredRows(coef, ids, vec, out, tokens, perToken, dBytes, colFrom, colTo): for each
 * slot q in order (perToken slots per token, token-major), row ids[q] of out gets
 * coef[q] * vec[token of q] added, in columns [colFrom, colTo) (bytes, whole f32x4): a dense
 * table's gradient from factored rows, no bucketing. Threads take column ranges, so no two
 * write one float; each float gets its slots' products in slot order, float32 products and
 * sums, as the host's sum per row does (the same bits). Tokens outer: no division per slot.
 */
function scatterFactoredRowsFunction(): FunctionDef {
  const [coef, ids, vec, out, tokens, perToken, dBytes, colFrom, colTo] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [p, dst, j, c] = [9, 10, 11, 12];
  const body = whileLoop([get(tokens)], [
    get(perToken), set(p),
    ...whileLoop([get(p)], [
      get(coef), I.v128Load32Splat(0), set(c),
      get(ids), I.i32Load(0), get(dBytes), I.i32Mul, get(out), I.i32Add, set(dst),
      get(colFrom), set(j),
      ...whileLoop([get(j), get(colTo), I.i32LtS], [get(dst), get(j), I.i32Add, ...v128At(dst, j), ...v128At(vec, j), get(c), I.f32x4Mul, I.f32x4Add, I.v128Store(0), addConst(j, 16)]),
      addConst(coef, 4), addConst(ids, 4), addConst(p, -1),
    ]),
    addLocal(vec, dBytes), addConst(tokens, -1),
  ]);
  return { name: 'scatterFactoredRows', params: locals(['i32', 9]), locals: locals(['i32', 3], ['v128', 1]), body: code(body) };
}

/**
 * readRows(off, out, rows, dBytes): out[r] = the sum of the floats of the row at byte offset
 * off[r]: nothing but the reads of random rows (the sums keep them live), ROW_STREAMS rows at a time as
 * the per-slot expert kernels read them, the yardstick their GB/s are compared with.
 */
function readRowsFunction(): FunctionDef {
  const [off, out, rows, dBytes, j] = [0, 1, 2, 3, 4];
  const p = Array.from({ length: ROW_STREAMS }, (_, r) => 5 + r), acc = Array.from({ length: ROW_STREAMS }, (_, r) => 5 + ROW_STREAMS + r);
  const group = (n: number) => whileLoop([get(rows), I.i32(n), I.i32GeS], [
    ...p.slice(0, n).flatMap((pr, r) => [get(off), I.i32Load(4 * r), set(pr)]),
    ...acc.slice(0, n).flatMap(zero), I.i32(0), set(j),
    ...whileLoop([get(j), get(dBytes), I.i32LtS], [...p.slice(0, n).flatMap((pr, r) => [get(acc[r]!), ...v128At(pr, j), I.f32x4Add, set(acc[r]!)]), addConst(j, 16)]),
    ...acc.slice(0, n).flatMap((a, r) => [get(out), ...horizontalSum(a), I.f32Store(4 * r)]),
    addConst(off, 4 * n), addConst(out, 4 * n), addConst(rows, -n),
  ]);
  return { name: 'readRows', params: locals(['i32', 4]), locals: locals(['i32', 1 + ROW_STREAMS], ['v128', ROW_STREAMS]), body: code(GROUPS.flatMap(group)) };
}

/** The kernels in one module over an imported (shared) memory. */
export function rowKernelsModule(memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([dotsFunction(), axpysFunction(), sumRowsFunction(false), sumRowsFunction(true), scatterFactoredRowsFunction(), ...rowUpdateFunctions(), gemmFunction(false), readRowsFunction()], memory);
}
