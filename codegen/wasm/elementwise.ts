// A fused elementwise expression (elementwise_fused) as WebAssembly SIMD over rows: the
// arithmetic ones only (+ - * /, min, max, neg, abs, sqrt, relu), which wasm has as
// instructions. Each value is read as float32, computed in float64 (f64x2, two lanes at a
// time) and rounded to float32 once when stored, which is what the generated JavaScript does
// with its numbers, so the two agree bit for bit. Expressions with exp, tanh, erf and the like
// stay JavaScript tasks: wasm has no such instructions, and an approximation would not agree.
import type { ElementwiseExpr } from '../../src/ir/ops/elementwise-fused.js';
import { buildModule, HIGH_HALF, I, LOW_HALVES, type FunctionDef, type ValType } from './module.js';

/**
 * How an operand of an output [rows, cols] is read: `full` (one value per output cell), `row`
 * (one per column, the same for every row), `col` (one per row), `scalar`.
 */
export type OperandKind = 'full' | 'row' | 'col' | 'scalar';

const BINARY: Record<string, number[]> = { add: I.f64x2Add, sub: I.f64x2Sub, mul: I.f64x2Mul, div: I.f64x2Div, maximum: I.f64x2Max, minimum: I.f64x2Min };
const UNARY: Record<string, number[]> = { neg: I.f64x2Neg, abs: I.f64x2Abs, sqrt: I.f64x2Sqrt };

/** Whether every op of `e` has a wasm instruction here (relu is max(x, 0)). */
export function wasmElementwiseFits(e: ElementwiseExpr): boolean {
  if ('input' in e || 'value' in e) return true;
  if (!(e.op in BINARY || e.op in UNARY || e.op === 'relu' || e.op === 'broadcast_to')) return false;
  return e.args.every(wasmElementwiseFits);
}

/**
 * Where a [rows, cols] output's operand of shape `shape` reads (broadcast from the right, as
 * elementwise_fused does), or undefined when it is none of the four kinds.
 */
export function operandKind(shape: readonly number[], out: readonly number[]): OperandKind | undefined {
  const padded = [...Array<number>(Math.max(0, out.length - shape.length)).fill(1), ...shape];
  if (padded.length !== out.length) return undefined;
  const n = out.length;
  if (padded.every((d) => d === 1)) return 'scalar';
  if (padded.every((d, i) => d === out[i])) return 'full';
  if (padded[n - 1] === out[n - 1] && padded.slice(0, -1).every((d) => d === 1)) return 'row';
  if (padded[n - 1] === 1 && padded.slice(0, -1).every((d, i) => d === out[i])) return 'col';
  return undefined;
}


/**
 * `elementwise(out, p0, ..., p(n-1), rowFrom, rowTo)`: byte pointers; rows of `cols` floats,
 * `cols` a multiple of 4. Writes out[r, c] for rows [rowFrom, rowTo).
 */
export function elementwiseFunction(expr: ElementwiseExpr, kinds: readonly OperandKind[], cols: number): FunctionDef {
  if (cols % 4 !== 0) throw new RangeError(`elementwise rows of ${cols} values are not whole f32x4 vectors`);
  const get = I.localGet, set = I.localSet;
  const n = kinds.length;
  const out = 0, from = n + 1, to = n + 2;
  const locals: ValType[] = [];
  let next = n + 3;
  const local = (t: ValType) => (locals.push(t), next++);
  const r = local('i32'), j = local('i32'), rowBase = local('i32'), at = local('i32');
  const v = local('v128'), lo = local('v128'), hi = local('v128');
  // Per operand: its two halves for this step (full, row) or its splat (col: per row; scalar: once).
  const halves = kinds.map((k) => (k === 'full' || k === 'row' ? [local('v128'), local('v128')] : [local('v128')]));
  const rowBytes = cols * 4;
  const splatF32At = (ptr: number[][]): number[][] => [...ptr, I.f32Load(0), I.f64PromoteF32, I.f64x2Splat];
  const used = new Set<number>();
  const visit = (e: ElementwiseExpr): void => {
    if ('input' in e) used.add(e.input);
    else if ('op' in e) e.args.forEach(visit);
  };
  visit(expr);
  const emit = (e: ElementwiseExpr, half: 0 | 1): number[][] => {
    if ('value' in e) return [I.f64(e.value), I.f64x2Splat];
    if ('input' in e) {
      const h = halves[e.input]!;
      return [get(h[Math.min(half, h.length - 1)]!)];
    }
    if (e.op === 'broadcast_to') return emit(e.args[0]!, half);
    if (e.op === 'relu') return [...emit(e.args[0]!, half), I.f64(0), I.f64x2Splat, I.f64x2Max];
    if (e.op in UNARY) return [...emit(e.args[0]!, half), UNARY[e.op]!];
    return [...emit(e.args[0]!, half), ...emit(e.args[1]!, half), BINARY[e.op]!];
  };
  const loads = [...used].flatMap((i): number[][] => {
    const k = kinds[i]!, h = halves[i]!;
    if (k !== 'full' && k !== 'row') return [];
    return [
      get(1 + i), ...(k === 'full' ? [get(rowBase), I.i32Add] : []), get(j), I.i32Add, I.v128Load(0), set(v),
      get(v), I.f64x2PromoteLowF32x4, set(h[0]!),
      get(v), get(v), I.i8x16Shuffle(HIGH_HALF), I.f64x2PromoteLowF32x4, set(h[1]!),
    ];
  });
  const body: number[][] = [
    ...[...used].flatMap((i): number[][] => (kinds[i] === 'scalar' ? [...splatF32At([get(1 + i)]), set(halves[i]![0]!)] : [])),
    get(from), set(r),
    I.block, I.loop,
    get(r), get(to), I.i32GeS, I.brIf(1),
    get(r), I.i32(rowBytes), I.i32Mul, set(rowBase),
    ...[...used].flatMap((i): number[][] => (kinds[i] === 'col' ? [...splatF32At([get(1 + i), get(r), I.i32(4), I.i32Mul, I.i32Add]), set(halves[i]![0]!)] : [])),
    I.i32(0), set(j),
    I.block, I.loop,
    get(j), I.i32(rowBytes), I.i32GeS, I.brIf(1),
    ...loads,
    ...emit(expr, 0), set(lo),
    ...emit(expr, 1), set(hi),
    get(out), get(rowBase), I.i32Add, get(j), I.i32Add, set(at),
    get(at), get(lo), I.f32x4DemoteF64x2Zero, get(hi), I.f32x4DemoteF64x2Zero, I.i8x16Shuffle(LOW_HALVES), I.v128Store(0),
    get(j), I.i32(16), I.i32Add, set(j),
    I.br(0), I.end, I.end,
    get(r), I.i32(1), I.i32Add, set(r),
    I.br(0), I.end, I.end,
  ];
  return { name: 'elementwise', params: Array<ValType>(n + 3).fill('i32'), locals, body };
}

export function elementwiseModule(expr: ElementwiseExpr, kinds: readonly OperandKind[], cols: number, memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([elementwiseFunction(expr, kinds, cols)], memory);
}

/** Columns a column-sum call takes at a time: four f32x4 per row, one 64-byte line. */
export const COLUMN_BLOCK = 16;

/**
 * `columnSums(x, out, rows, cols, blockFrom, blockTo)`: out[j] = the sum over rows of x[r, j]
 * (divided by rows when `mean`), for the columns of blocks [blockFrom, blockTo) of
 * COLUMN_BLOCK. Float64 sums in row order, rounded once: the column tasks' arithmetic
 * (codegen/host/columns.ts), so the same bits.
 */
export function columnSumsFunction(mean: boolean): FunctionDef {
  const get = I.localGet, set = I.localSet;
  const [x, out, rows, cols, from, to] = [0, 1, 2, 3, 4, 5];
  const [b, r, p, rowBytes] = [6, 7, 8, 9];
  const v = 10, acc = Array.from({ length: 8 }, (_, i) => 11 + i), count = 19;
  const body: number[][] = [
    get(cols), I.i32(4), I.i32Mul, set(rowBytes),
    get(rows), I.f64ConvertI32S, I.f64x2Splat, set(count),
    get(from), set(b),
    I.block, I.loop,
    get(b), get(to), I.i32GeS, I.brIf(1),
    ...acc.map((a) => [...I.v128Const0, ...set(a)]),
    get(x), get(b), I.i32(4 * COLUMN_BLOCK), I.i32Mul, I.i32Add, set(p),
    I.i32(0), set(r),
    I.block, I.loop,
    get(r), get(rows), I.i32GeS, I.brIf(1),
    ...[0, 1, 2, 3].flatMap((q) => [
      get(p), I.v128Load(16 * q), set(v),
      get(acc[2 * q]!), get(v), I.f64x2PromoteLowF32x4, I.f64x2Add, set(acc[2 * q]!),
      get(acc[2 * q + 1]!), get(v), get(v), I.i8x16Shuffle(HIGH_HALF), I.f64x2PromoteLowF32x4, I.f64x2Add, set(acc[2 * q + 1]!),
    ]),
    get(p), get(rowBytes), I.i32Add, set(p),
    get(r), I.i32(1), I.i32Add, set(r),
    I.br(0), I.end, I.end,
    ...[0, 1, 2, 3].flatMap((q) => [
      get(out), get(b), I.i32(4 * COLUMN_BLOCK), I.i32Mul, I.i32Add,
      get(acc[2 * q]!), ...(mean ? [get(count), I.f64x2Div] : []), I.f32x4DemoteF64x2Zero,
      get(acc[2 * q + 1]!), ...(mean ? [get(count), I.f64x2Div] : []), I.f32x4DemoteF64x2Zero,
      I.i8x16Shuffle(LOW_HALVES), I.v128Store(16 * q),
    ]),
    get(b), I.i32(1), I.i32Add, set(b),
    I.br(0), I.end, I.end,
  ];
  return { name: 'columnSums', params: Array<ValType>(6).fill('i32'), locals: [...Array<ValType>(4).fill('i32'), ...Array<ValType>(10).fill('v128')], body };
}

export function columnSumsModule(mean: boolean, memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([columnSumsFunction(mean)], memory);
}

/**
 * `batchnormTraining(x, g, b, out, rows, cols, blockFrom, blockTo, eps)`: BatchNorm with the
 * batch's statistics over x [rows, cols] for the columns of blocks [blockFrom, blockTo) of
 * COLUMN_BLOCK: the column task's arithmetic (codegen/host/columns.ts) in float64 lanes (the
 * mean, the variance about the float64 mean, both kept as float32 where it keeps them, the
 * formula ((x - mean) inv) g + b rounded once), so the same bits.
 */
export function batchnormTrainingFunction(): FunctionDef {
  const get = I.localGet, set = I.localSet;
  const [x, g, b, out, rows, cols, from, to, eps] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [blk, r, p, q, rowBytes, col] = [9, 10, 11, 12, 13, 14];
  const v = 15, count = 16, epsv = 17;
  // Per pair of lanes (8 per block): the float64 mean, then the float32-rounded mean and inverse deviation, gamma and beta.
  const mean = Array.from({ length: 8 }, (_, i) => 18 + i), acc = Array.from({ length: 8 }, (_, i) => 26 + i);
  const m32 = Array.from({ length: 8 }, (_, i) => 34 + i), inv = Array.from({ length: 8 }, (_, i) => 42 + i);
  const gv = Array.from({ length: 8 }, (_, i) => 50 + i), bv = Array.from({ length: 8 }, (_, i) => 58 + i);
  const halves = (ptr: number[][], off: number, lo: number, hi: number) => [
    ...ptr, I.v128Load(off), set(v),
    get(v), I.f64x2PromoteLowF32x4, set(lo),
    get(v), get(v), I.i8x16Shuffle(HIGH_HALF), I.f64x2PromoteLowF32x4, set(hi),
  ];
  /** Rounds a float64 pair to float32 and back (what storing into a Float32Array and reading it does). */
  const round32 = (l: number) => [get(l), I.f32x4DemoteF64x2Zero, I.f64x2PromoteLowF32x4, set(l)];
  const overRows = (step: number[][]) => [
    get(x), get(col), I.i32(4), I.i32Mul, I.i32Add, set(p),
    I.i32(0), set(r),
    I.block, I.loop,
    get(r), get(rows), I.i32GeS, I.brIf(1),
    ...step,
    get(p), get(rowBytes), I.i32Add, set(p),
    get(r), I.i32(1), I.i32Add, set(r),
    I.br(0), I.end, I.end,
  ];
  const t = [66, 67];
  const body: number[][] = [
    get(cols), I.i32(4), I.i32Mul, set(rowBytes),
    get(rows), I.f64ConvertI32S, I.f64x2Splat, set(count),
    get(eps), I.f64x2Splat, set(epsv),
    get(from), set(blk),
    I.block, I.loop,
    get(blk), get(to), I.i32GeS, I.brIf(1),
    get(blk), I.i32(COLUMN_BLOCK), I.i32Mul, set(col),
    // The mean: float64 sums in row order over rows.
    ...mean.map((a) => [...I.v128Const0, ...set(a)]),
    ...overRows([0, 1, 2, 3].flatMap((k) => [...halves([get(p)], 16 * k, t[0]!, t[1]!), get(mean[2 * k]!), get(t[0]!), I.f64x2Add, set(mean[2 * k]!), get(mean[2 * k + 1]!), get(t[1]!), I.f64x2Add, set(mean[2 * k + 1]!)])),
    ...mean.flatMap((a, i) => [get(a), get(count), I.f64x2Div, set(a), get(a), set(m32[i]!), ...round32(m32[i]!)]),
    // The variance about the float64 mean.
    ...acc.map((a) => [...I.v128Const0, ...set(a)]),
    ...overRows([0, 1, 2, 3].flatMap((k) => [
      ...halves([get(p)], 16 * k, t[0]!, t[1]!),
      ...[0, 1].flatMap((h) => [get(t[h]!), get(mean[2 * k + h]!), I.f64x2Sub, set(t[h]!), get(acc[2 * k + h]!), get(t[h]!), get(t[h]!), I.f64x2Mul, I.f64x2Add, set(acc[2 * k + h]!)]),
    ])),
    ...acc.flatMap((a, i) => [I.f64(1), I.f64x2Splat, get(a), get(count), I.f64x2Div, get(epsv), I.f64x2Add, I.f64x2Sqrt, I.f64x2Div, set(inv[i]!), ...round32(inv[i]!)]),
    ...[0, 1, 2, 3].flatMap((k) => [
      ...halves([get(g), get(col), I.i32(4), I.i32Mul, I.i32Add], 16 * k, gv[2 * k]!, gv[2 * k + 1]!),
      ...halves([get(b), get(col), I.i32(4), I.i32Mul, I.i32Add], 16 * k, bv[2 * k]!, bv[2 * k + 1]!),
    ]),
    // out = ((x - mean32) inv32) g + b, rounded once.
    get(out), get(x), I.i32Sub, set(q),
    ...overRows([0, 1, 2, 3].flatMap((k) => [
      ...halves([get(p)], 16 * k, t[0]!, t[1]!),
      ...[0, 1].flatMap((h) => [get(t[h]!), get(m32[2 * k + h]!), I.f64x2Sub, get(inv[2 * k + h]!), I.f64x2Mul, get(gv[2 * k + h]!), I.f64x2Mul, get(bv[2 * k + h]!), I.f64x2Add, set(t[h]!)]),
      get(p), get(q), I.i32Add, get(t[0]!), I.f32x4DemoteF64x2Zero, get(t[1]!), I.f32x4DemoteF64x2Zero, I.i8x16Shuffle(LOW_HALVES), I.v128Store(16 * k),
    ])),
    get(blk), I.i32(1), I.i32Add, set(blk),
    I.br(0), I.end, I.end,
  ];
  return { name: 'batchnormTraining', params: [...Array<ValType>(8).fill('i32'), 'f64'], locals: [...Array<ValType>(6).fill('i32'), ...Array<ValType>(53).fill('v128')], body };
}

export function batchnormTrainingModule(memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([batchnormTrainingFunction()], memory);
}
