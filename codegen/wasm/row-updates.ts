// The optimizers' updates of a table's touched rows as WebAssembly SIMD128, in the table's own
// memory (runtime/backends/wasm-simd/tables.ts): row ids[r] of the weights (at byte 0) and of
// each state array (at its byte offset) with summed gradient row r of g. Every rule computes in
// float64 lanes in the order the host loop uses (runtime/train/optim.ts Optimizer.update), each
// stored value rounded once to float32, so the rows are bit-identical to the host's.
//   adamRows(mOff, vOff, g, ids, rows, dBytes, flag, scale, b1, c1, b2, c2, stepSize, epsHat, keep)
//     d = g scale; m = b1 m + c1 d; v = b2 v + (c2 d) d; w = w keep - (stepSize m) / (sqrt(v) + epsHat)
//   sgdRows(g, ids, rows, dBytes, flag, scale, lr, decay)
//     d = g scale; w = w - lr (d + decay w)
//   sgdMomentumRows(mOff, g, ids, rows, dBytes, flag, scale, momentum, lr, decay)
//     d = momentum m + g scale, stored as m; w = w - lr (d + decay w)
//   adagradRows(vOff, g, ids, rows, dBytes, flag, scale, lr, keep, eps)
//     d = g scale; v = v + d d; w = w keep - (lr d) / (sqrt(v) + eps)
// Each writes 1 at flag when an updated weight is not finite.
import { HIGH_HALF, I, LOW_HALVES, type FunctionDef } from './module.js';
import { addConst, addLocal, code, get, locals, set, v128At, whileLoop, zero, type Code } from './structured.js';

/** Locals one half (lanes 0-1 or 2-3) of four values is computed from and into, all f64x2 but the loads. */
interface Half {
  /** The half of a loaded f32x4 local as f64x2. */
  lanes: (v: number) => Code[];
  /** The step's settings, splatted. */
  hyper: number[];
  g4: number;
  /** Loaded state rows (f32x4), in the rule's order. */
  state4: number[];
  w4: number;
  /** Scratch f64x2. */
  d: number;
  /** Where the new state values go (f64x2, unrounded: later terms use them so, as the host does). */
  stateNew: number[];
  /** Where the new weight goes (f64x2). */
  wOut: number;
}

interface RowRule {
  name: string;
  states: number;
  hyper: number;
  half: (h: Half) => Code[];
}

const RULES: RowRule[] = [
  {
    name: 'adamRows', states: 2, hyper: 8,
    half: ({ lanes, hyper: [s, b1, c1, b2, c2, step, eps, keep], g4, state4: [m4, v4], w4, d, stateNew: [mi, vi], wOut }) => [
      ...lanes(g4), get(s!), I.f64x2Mul, set(d),
      get(b1!), ...lanes(m4!), I.f64x2Mul, get(c1!), get(d), I.f64x2Mul, I.f64x2Add, set(mi!),
      get(b2!), ...lanes(v4!), I.f64x2Mul, get(c2!), get(d), I.f64x2Mul, get(d), I.f64x2Mul, I.f64x2Add, set(vi!),
      ...lanes(w4), get(keep!), I.f64x2Mul, get(step!), get(mi!), I.f64x2Mul, get(vi!), I.f64x2Sqrt, get(eps!), I.f64x2Add, I.f64x2Div, I.f64x2Sub, set(wOut),
    ],
  },
  {
    name: 'sgdRows', states: 0, hyper: 3,
    half: ({ lanes, hyper: [s, lr, decay], g4, w4, d, wOut }) => [
      ...lanes(g4), get(s!), I.f64x2Mul, set(d),
      ...sgdWeight(lanes, w4, d, lr!, decay!, wOut),
    ],
  },
  {
    name: 'sgdMomentumRows', states: 1, hyper: 4,
    half: ({ lanes, hyper: [s, momentum, lr, decay], g4, state4: [m4], w4, d, stateNew: [mi], wOut }) => [
      get(momentum!), ...lanes(m4!), I.f64x2Mul, ...lanes(g4), get(s!), I.f64x2Mul, I.f64x2Add, set(mi!),
      ...sgdWeight(lanes, w4, mi!, lr!, decay!, wOut),
    ],
  },
  {
    name: 'adagradRows', states: 1, hyper: 4,
    half: ({ lanes, hyper: [s, lr, keep, eps], g4, state4: [v4], w4, d, stateNew: [vi], wOut }) => [
      ...lanes(g4), get(s!), I.f64x2Mul, set(d),
      ...lanes(v4!), get(d), get(d), I.f64x2Mul, I.f64x2Add, set(vi!),
      ...lanes(w4), get(keep!), I.f64x2Mul, get(lr!), get(d), I.f64x2Mul, get(vi!), I.f64x2Sqrt, get(eps!), I.f64x2Add, I.f64x2Div, I.f64x2Sub, set(wOut),
    ],
  },
];

/** w - lr (d + decay w), SGD's weight (decay w first, as the host adds it). */
const sgdWeight = (lanes: Half['lanes'], w4: number, d: number, lr: number, decay: number, wOut: number): Code[] => [
  ...lanes(w4), get(lr), get(d), get(decay), ...lanes(w4), I.f64x2Mul, I.f64x2Add, I.f64x2Mul, I.f64x2Sub, set(wOut),
];

/**
 * Rows updated together: their cells one after the other with the same locals, so no more
 * registers, but the out-of-order core has every row's random reads in flight (each row's
 * weights and states are separate streams). Measured on lazy Adam, 32k random rows of a
 * [1M, 256] table, one thread: 34-43 ms one row at a time, 26-33 ms for 2, 4, 8 or 16.
 * The touched rows are distinct (their gradients were summed per row), so the interleaved
 * loads and stores of different rows never alias.
 */
const ROWS_TOGETHER = 4;

function rowUpdateFunction(rule: RowRule): FunctionDef {
  let next = 0;
  const one = () => next++;
  const run = (n: number) => Array.from({ length: n }, one);
  const stateOff = run(rule.states);
  const g = one(), ids = one(), rows = one(), dBytes = one(), flag = one();
  const hyperArgs = run(rule.hyper);
  const base = one(), j = one(), a = one();
  const bases = [base, ...run(ROWS_TOGETHER - 1)], gs = [g, ...run(ROWS_TOGETHER - 1)];
  const firstV128 = next;
  const hyper = run(rule.hyper), check = one(), g4 = one(), w4 = one(), d = one(), wLo = one(), wHi = one();
  const state4 = run(rule.states), stateNew = run(rule.states), stateLo = run(rule.states);
  const v128s = next - firstV128;
  const lanesOf = (hi: boolean) => (v: number) => (hi ? [get(v), get(v), I.i8x16Shuffle(HIGH_HALF), I.f64x2PromoteLowF32x4] : [get(v), I.f64x2PromoteLowF32x4]);
  const half = (hi: boolean, wOut: number) => [
    ...rule.half({ lanes: lanesOf(hi), hyper, g4, state4, w4, d, stateNew, wOut }),
    // check stays 0 while every weight is finite, NaN otherwise (w * 0).
    get(check), get(wOut), I.v128Const0, I.f64x2Mul, I.f64x2Add, set(check),
  ];
  const demote2 = (lo: number, hi: number) => [get(lo), I.f32x4DemoteF64x2Zero, get(hi), I.f32x4DemoteF64x2Zero, I.i8x16Shuffle(LOW_HALVES)];
  const stateAt = (s: number) => [get(a), get(stateOff[s]!), I.i32Add];
  /** The 16 bytes at j of the row at byte `rowBase` (weights and states), its gradient at `gRow`. */
  const cells = (rowBase: number, gRow: number) => [
    get(rowBase), get(j), I.i32Add, set(a),
    ...v128At(gRow, j), set(g4),
    ...state4.flatMap((v, s) => [...stateAt(s), I.v128Load(0), set(v)]),
    get(a), I.v128Load(0), set(w4),
    ...half(false, wLo), ...stateNew.flatMap((v, s) => [get(v), set(stateLo[s]!)]),
    ...half(true, wHi),
    ...stateNew.flatMap((v, s) => [...stateAt(s), ...demote2(stateLo[s]!, v), I.v128Store(0)]),
    get(a), ...demote2(wLo, wHi), I.v128Store(0),
  ];
  const body = [
    ...hyper.flatMap((v, i) => [get(hyperArgs[i]!), I.f64x2Splat, set(v)]),
    ...zero(check),
    ...whileLoop([get(rows), I.i32(ROWS_TOGETHER), I.i32GeS], [
      ...bases.flatMap((b, r) => [get(ids), I.i32Load(4 * r), get(dBytes), I.i32Mul, set(b)]),
      ...gs.slice(1).flatMap((gr, r) => [get(gs[r]!), get(dBytes), I.i32Add, set(gr)]),
      I.i32(0), set(j),
      ...whileLoop([get(j), get(dBytes), I.i32LtS], [...bases.flatMap((b, r) => cells(b, gs[r]!)), addConst(j, 16)]),
      addConst(ids, 4 * ROWS_TOGETHER), get(gs[ROWS_TOGETHER - 1]!), get(dBytes), I.i32Add, set(g), addConst(rows, -ROWS_TOGETHER),
    ]),
    ...whileLoop([get(rows)], [
      get(ids), I.i32Load(0), get(dBytes), I.i32Mul, set(base),
      I.i32(0), set(j),
      ...whileLoop([get(j), get(dBytes), I.i32LtS], [...cells(base, g), addConst(j, 16)]),
      addConst(ids, 4), addLocal(g, dBytes), addConst(rows, -1),
    ]),
    ...[0, 1].flatMap((lane) => [get(check), I.f64x2ExtractLane(lane), get(check), I.f64x2ExtractLane(lane), I.f64Eq, I.i32Eqz, I.ifThen, get(flag), I.i32(1), I.i32Store(0), I.end]),
  ];
  return { name: rule.name, params: locals(['i32', rule.states + 5], ['f64', rule.hyper]), locals: locals(['i32', 3 + 2 * (ROWS_TOGETHER - 1)], ['v128', v128s]), body: code(body) };
}

export function rowUpdateFunctions(): FunctionDef[] {
  return RULES.map(rowUpdateFunction);
}

/** Each update's name, the state arrays it reads (in order) and its settings' count. */
export const ROW_UPDATES = Object.fromEntries(RULES.map((r) => [r.name, { states: r.states, hyper: r.hyper }])) as Record<'adamRows' | 'sgdRows' | 'sgdMomentumRows' | 'adagradRows', { states: number; hyper: number }>;
