// Kernels over the rows of one expert table as WebAssembly SIMD128, run in the table's own
// memory (runtime/wasm-tables.ts): the table and a scratch area share one wasm32 memory, so a
// kernel reads the selected rows where they live, with no gather copy.
// Rows are named by byte offsets (validated by the caller), four rows at a time where a token
// has four slots left: four independent row streams keep more memory reads in flight.
//   dots:  out[i] = U[row i] . x[token of i]               (expert activations, before the gate)
//   axpys: out[t] += sum over t's slots i of h[i] U[row i]  (expert outputs)
//   gemm:  the contraction micro-kernel (gemm.ts) on this memory, for the expert ops grouped by
//          expert: one product per expert of its m rows with its tokens' vectors
// Row sizes are multiples of 4 floats (one f32x4); other sizes stay host tasks.
import { buildModule, HIGH_HALF, I, LOW_HALVES, type FunctionDef, type ValType } from './module.js';
import { gemmFunction } from './gemm.js';

const get = I.localGet, set = I.localSet;
/** while (cond) { body }: cond leaves an i32 on the stack, nonzero to go on. */
const whileLoop = (cond: Code[], body: Code[]): Code[] => [I.block, I.loop, ...cond, I.i32Eqz, I.brIf(1), ...body, I.br(0), I.end, I.end];
const addConst = (local: number, n: number) => [get(local), I.i32(n), I.i32Add, set(local)];
const addLocal = (local: number, other: number) => [get(local), get(other), I.i32Add, set(local)];
/** ((l0 + l1) + l2) + l3 of a v128 local, as one f32. */
const horizontalSum = (v: number) => [get(v), I.f32x4ExtractLane(0), get(v), I.f32x4ExtractLane(1), I.f32Add, get(v), I.f32x4ExtractLane(2), I.f32Add, get(v), I.f32x4ExtractLane(3), I.f32Add];
const v128At = (ptr: number, j: number) => [get(ptr), get(j), I.i32Add, I.v128Load(0)];
const zero = (v: number) => [I.v128Const0, set(v)];
type Code = number | Code[];
/** One flat instruction list of nested pieces (helpers return lists of instructions). */
const code = (...parts: Code[]): number[][] => [(parts as unknown[]).flat(Infinity as 1) as number[]];
const locals = (...runs: [ValType, number][]): ValType[] => runs.flatMap(([t, n]) => Array<ValType>(n).fill(t));

/** dots(x, off, out, tokens, perToken, dBytes): pointers in bytes; `off` holds one row offset per slot. */
function dotsFunction(): FunctionDef {
  const [x, off, out, tokens, perToken, dBytes, s, j] = [0, 1, 2, 3, 4, 5, 6, 7];
  const p = [8, 9, 10, 11], acc = [12, 13, 14, 15], xv = 16;
  const body = whileLoop([get(tokens)], [
    get(perToken), set(s),
    ...whileLoop([get(s), I.i32(4), I.i32GeS], [
      ...p.map((pr, r) => [get(off), I.i32Load(4 * r), set(pr)].flat()),
      ...acc.map(zero),
      I.i32(0), set(j),
      ...whileLoop([get(j), get(dBytes), I.i32LtS], [
        ...v128At(x, j), set(xv),
        ...p.flatMap((pr, r) => [get(acc[r]!), ...v128At(pr, j), get(xv), I.f32x4Mul, I.f32x4Add, set(acc[r]!)]),
        addConst(j, 16),
      ]),
      ...acc.flatMap((a, r) => [get(out), ...horizontalSum(a), I.f32Store(4 * r)]),
      addConst(off, 16), addConst(out, 16), addConst(s, -4),
    ]),
    ...whileLoop([get(s)], [
      get(off), I.i32Load(0), set(p[0]!), ...zero(acc[0]!), I.i32(0), set(j),
      ...whileLoop([get(j), get(dBytes), I.i32LtS], [
        get(acc[0]!), ...v128At(p[0]!, j), ...v128At(x, j), I.f32x4Mul, I.f32x4Add, set(acc[0]!),
        addConst(j, 16),
      ]),
      get(out), ...horizontalSum(acc[0]!), I.f32Store(0),
      addConst(off, 4), addConst(out, 4), addConst(s, -1),
    ]),
    addLocal(x, dBytes), addConst(tokens, -1),
  ]);
  return { name: 'dots', params: locals(['i32', 6]), locals: locals(['i32', 6], ['v128', 5]), body: code(body) };
}

/** axpys(h, off, out, tokens, perToken, dBytes): out rows (one per token) are added to, not cleared. */
function axpysFunction(): FunctionDef {
  const [h, off, out, tokens, perToken, dBytes, s, j] = [0, 1, 2, 3, 4, 5, 6, 7];
  const p = [8, 9, 10, 11], hv = [12, 13, 14, 15];
  const body = whileLoop([get(tokens)], [
    get(perToken), set(s),
    ...whileLoop([get(s), I.i32(4), I.i32GeS], [
      ...p.map((pr, r) => [get(off), I.i32Load(4 * r), set(pr)].flat()),
      ...hv.map((v, r) => [get(h), I.v128Load32Splat(4 * r), set(v)].flat()),
      I.i32(0), set(j),
      ...whileLoop([get(j), get(dBytes), I.i32LtS], [
        get(out), get(j), I.i32Add,
        ...v128At(out, j),
        ...p.flatMap((pr, r) => [...v128At(pr, j), get(hv[r]!), I.f32x4Mul, I.f32x4Add]),
        I.v128Store(0),
        addConst(j, 16),
      ]),
      addConst(off, 16), addConst(h, 16), addConst(s, -4),
    ]),
    ...whileLoop([get(s)], [
      get(off), I.i32Load(0), set(p[0]!), get(h), I.v128Load32Splat(0), set(hv[0]!), I.i32(0), set(j),
      ...whileLoop([get(j), get(dBytes), I.i32LtS], [
        get(out), get(j), I.i32Add,
        ...v128At(out, j), ...v128At(p[0]!, j), get(hv[0]!), I.f32x4Mul, I.f32x4Add,
        I.v128Store(0),
        addConst(j, 16),
      ]),
      addConst(off, 4), addConst(h, 4), addConst(s, -1),
    ]),
    addLocal(out, dBytes), addConst(tokens, -1),
  ]);
  return { name: 'axpys', params: locals(['i32', 6]), locals: locals(['i32', 6], ['v128', 4]), body: code(body) };
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
 * adamRows(mOff, vOff, g, ids, rows, dBytes, flag, scale, b1, c1, b2, c2, stepSize, epsHat, keep):
 * lazy Adam on the touched rows: row ids[r] of the weights (at byte 0), of m (at mOff) and of v
 * (at vOff), with gradient row r of g. Float64 arithmetic in the order the host loop uses
 * (runtime/train/optim.ts: d = g * scale; m = b1 m + c1 d; v = b2 v + (c2 d) d;
 * w = w keep - (stepSize m) / (sqrt(v) + epsHat), c1 = 1 - b1, c2 = 1 - b2), each stored value
 * rounded once to float32: bit-identical to it. Writes 1 at flag when an updated weight is not finite.
 */
function adamRowsFunction(): FunctionDef {
  const [mOff, vOff, g, ids, rows, dBytes, flag] = [0, 1, 2, 3, 4, 5, 6];
  const [scale, b1, c1, b2, c2, stepSize, epsHat, keep] = [7, 8, 9, 10, 11, 12, 13, 14];
  const [base, j, a] = [15, 16, 17];
  const [sv, b1v, c1v, b2v, c2v, stepv, epsv, keepv, check, g4, m4, v4, w4, d, mi, vi] = Array.from({ length: 16 }, (_, i) => 18 + i) as [number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number];
  const wiLo = 34, wiHi = 35, miLo = 36, viLo = 37;
  /** One half (lanes 0-1 or 2-3, `hi`) of the four values: leaves mi, vi, and the new weight in `wOut`. */
  const half = (hi: boolean, wOut: number) => {
    const lanes = (v: number) => (hi ? [get(v), get(v), I.i8x16Shuffle(HIGH_HALF), I.f64x2PromoteLowF32x4] : [get(v), I.f64x2PromoteLowF32x4]);
    return [
      ...lanes(g4), get(sv), I.f64x2Mul, set(d),
      get(b1v), ...lanes(m4), I.f64x2Mul, get(c1v), get(d), I.f64x2Mul, I.f64x2Add, set(mi),
      get(b2v), ...lanes(v4), I.f64x2Mul, get(c2v), get(d), I.f64x2Mul, get(d), I.f64x2Mul, I.f64x2Add, set(vi),
      ...lanes(w4), get(keepv), I.f64x2Mul, get(stepv), get(mi), I.f64x2Mul, get(vi), I.f64x2Sqrt, get(epsv), I.f64x2Add, I.f64x2Div, I.f64x2Sub, set(wOut),
      get(check), get(wOut), I.v128Const0, I.f64x2Mul, I.f64x2Add, set(check),
    ];
  };
  const demote2 = (lo: number, hi: number) => [get(lo), I.f32x4DemoteF64x2Zero, get(hi), I.f32x4DemoteF64x2Zero, I.i8x16Shuffle(LOW_HALVES)];
  const body = [
    ...[[sv, scale], [b1v, b1], [c1v, c1], [b2v, b2], [c2v, c2], [stepv, stepSize], [epsv, epsHat], [keepv, keep]].flatMap(([v, p]) => [get(p!), I.f64x2Splat, set(v!)]),
    ...zero(check),
    ...whileLoop([get(rows)], [
      get(ids), I.i32Load(0), get(dBytes), I.i32Mul, set(base),
      I.i32(0), set(j),
      ...whileLoop([get(j), get(dBytes), I.i32LtS], [
        get(base), get(j), I.i32Add, set(a),
        ...v128At(g, j), set(g4),
        get(a), get(mOff), I.i32Add, I.v128Load(0), set(m4),
        get(a), get(vOff), I.i32Add, I.v128Load(0), set(v4),
        get(a), I.v128Load(0), set(w4),
        ...half(false, wiLo), get(mi), set(miLo), get(vi), set(viLo),
        ...half(true, wiHi),
        get(a), get(mOff), I.i32Add, ...demote2(miLo, mi), I.v128Store(0),
        get(a), get(vOff), I.i32Add, ...demote2(viLo, vi), I.v128Store(0),
        get(a), ...demote2(wiLo, wiHi), I.v128Store(0),
        addConst(j, 16),
      ]),
      addConst(ids, 4), addLocal(g, dBytes), addConst(rows, -1),
    ]),
    // check is 0 while every weight is finite, NaN otherwise (w * 0).
    ...[0, 1].flatMap((lane) => [get(check), I.f64x2ExtractLane(lane), get(check), I.f64x2ExtractLane(lane), I.f64Eq, I.i32Eqz, I.ifThen, get(flag), I.i32(1), I.i32Store(0), I.end]),
  ];
  return { name: 'adamRows', params: [...locals(['i32', 7]), ...locals(['f64', 8])], locals: locals(['i32', 3], ['v128', 20]), body: code(body) };
}

/**
 * readRows(off, out, rows, dBytes): out[r] = the sum of the floats of the row at byte offset
 * off[r]: nothing but the reads of random rows (the sums keep them live), four rows at a time as
 * the per-slot expert kernels read them, the yardstick their GB/s are compared with.
 */
function readRowsFunction(): FunctionDef {
  const [off, out, rows, dBytes, j] = [0, 1, 2, 3, 4];
  const p = [5, 6, 7, 8], acc = [9, 10, 11, 12];
  const group = (n: number) => [
    ...p.slice(0, n).flatMap((pr, r) => [get(off), I.i32Load(4 * r), set(pr)]),
    ...acc.slice(0, n).flatMap(zero), I.i32(0), set(j),
    ...whileLoop([get(j), get(dBytes), I.i32LtS], [...p.slice(0, n).flatMap((pr, r) => [get(acc[r]!), ...v128At(pr, j), I.f32x4Add, set(acc[r]!)]), addConst(j, 16)]),
    ...acc.slice(0, n).flatMap((a, r) => [get(out), ...horizontalSum(a), I.f32Store(4 * r)]),
    addConst(off, 4 * n), addConst(out, 4 * n), addConst(rows, -n),
  ];
  const body = [...whileLoop([get(rows), I.i32(4), I.i32GeS], group(4)), ...whileLoop([get(rows)], group(1))];
  return { name: 'readRows', params: locals(['i32', 4]), locals: locals(['i32', 5], ['v128', 4]), body: code(body) };
}

/** The kernels in one module over an imported (shared) memory. */
export function rowKernelsModule(memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([dotsFunction(), axpysFunction(), sumRowsFunction(false), sumRowsFunction(true), adamRowsFunction(), gemmFunction(false), readRowsFunction()], memory);
}
