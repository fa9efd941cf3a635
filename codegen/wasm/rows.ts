// Kernels over the rows of one expert table as WebAssembly SIMD128, run in the table's own
// memory (runtime/wasm-tables.ts): the table and a scratch area share one wasm32 memory, so a
// kernel reads the selected rows where they live, with no gather copy.
// Rows are named by byte offsets (validated by the caller), four rows at a time where a token
// has four slots left: four independent row streams keep more memory reads in flight.
//   dots:  out[i] = U[row i] . x[token of i]               (expert activations, before the gate)
//   axpys: out[t] += sum over t's slots i of h[i] U[row i]  (expert outputs)
// Row sizes are multiples of 4 floats (one f32x4); other sizes stay host tasks.
import { buildModule, I, type FunctionDef, type ValType } from './module.js';

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

/** The kernels in one module over an imported (shared) memory. */
export function rowKernelsModule(memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([dotsFunction(), axpysFunction()], memory);
}
