// The contraction micro-kernel as WebAssembly SIMD128: C[M, N] = A[M, K] B[K, N] (row-major
// f32), register-blocked 4 rows x 8 columns: eight f32x4 accumulators stay in registers for
// the whole K loop, each step loading two vectors of B and splatting one A value per row. Full
// tiles run in wasm; the ragged edge (M mod 4 rows, N mod 8 columns) is left to the caller.
// With relaxed SIMD the multiply-add is one instruction.
// Taller tiles (5 or 6 rows: 10-12 accumulators) measured half the speed under V8 (its register
// allocator spills them), so the tile stays 4 x 8.
// `gemmPacked` reads B as panels of 8 columns, [N / 8][K][8]: row-major B's rows are N * 4 bytes
// apart, and at N = 1024 every one of the K rows a tile reads falls in the same L1 set (4 KiB
// apart), so the scoring products (K = 64) ran at half the rate of a 512^3 one. packPanels
// lays B out so.
import { buildModule, I, type FunctionDef } from './module.js';

export const MR = 4;
export const NR = 8;

/** Locals of `gemm(a, b, c, M, N, K)`: pointers in bytes, sizes in elements. */
const P = { a: 0, b: 1, c: 2, M: 3, N: 4, K: 5 };
const L = { i: 6, j: 7, k: 8, pa: 9, pb: 10, rowBytes: 11, nBytes: 12, pc: 13, acc: 14 /* 8 v128 */, b0: 22, b1: 23, av: 24, rb2: 25, rb3: 26 };

/** `packed`: B as panels (see packPanels), exported as gemmPacked; else row-major, exported as gemm. */
export function gemmFunction(relaxed: boolean, packed = false): FunctionDef {
  const get = I.localGet, set = I.localSet;
  const madd = (acc: number, b: number) =>
    relaxed
      ? [get(L.av), get(b), get(acc), I.f32x4RelaxedMadd, set(acc)]
      : [get(acc), get(L.av), get(b), I.f32x4Mul, I.f32x4Add, set(acc)];
  const accs = Array.from({ length: 8 }, (_, x) => L.acc + x);
  const body: number[][] = [
    // rowBytes = K * 4 (one row of A), nBytes = N * 4 (one row of B and C)
    get(P.K), I.i32(2), I.i32Shl, set(L.rowBytes),
    get(P.N), I.i32(2), I.i32Shl, set(L.nBytes),
    get(L.rowBytes), I.i32(1), I.i32Shl, set(L.rb2),
    get(L.rb2), get(L.rowBytes), I.i32Add, set(L.rb3),
    I.i32(0), set(L.i),
    I.block, I.loop,
    // while (i + 4 <= M)
    get(L.i), I.i32(MR), I.i32Add, get(P.M), I.i32GtS, I.brIf(1),
    I.i32(0), set(L.j),
    I.block, I.loop,
    get(L.j), I.i32(NR), I.i32Add, get(P.N), I.i32GtS, I.brIf(1),
    ...accs.map((x) => [...I.v128Const0, ...I.localSet(x)]),
    // pa = a + i * rowBytes; pb = b + j * 4 (row-major) or b + j * K * 4 (the panel of columns j..j+7)
    get(P.a), get(L.i), get(L.rowBytes), I.i32Mul, I.i32Add, set(L.pa),
    get(P.b), get(L.j), ...(packed ? [get(L.rowBytes), I.i32Mul] : [I.i32(2), I.i32Shl]), I.i32Add, set(L.pb),
    get(P.K), set(L.k),
    I.block, I.loop,
    get(L.k), I.i32Eqz, I.brIf(1),
    get(L.pb), I.v128Load(0), set(L.b0),
    get(L.pb), I.v128Load(16), set(L.b1),
    ...Array.from({ length: MR }, (_, r) => [
      // av = splat(A[i + r, k]): the row r pointer is pa + r * rowBytes
      get(L.pa), ...(r === 0 ? [] : [get(r === 1 ? L.rowBytes : r === 2 ? L.rb2 : L.rb3), I.i32Add]), I.v128Load32Splat(0), set(L.av),
      ...madd(L.acc + 2 * r, L.b0), ...madd(L.acc + 2 * r + 1, L.b1),
    ].flat()),
    get(L.pa), I.i32(4), I.i32Add, set(L.pa),
    get(L.pb), ...(packed ? [I.i32(4 * NR)] : [get(L.nBytes)]), I.i32Add, set(L.pb),
    get(L.k), I.i32(1), I.i32Sub, set(L.k),
    I.br(0), I.end, I.end,
    // store: pc = c + (i * N + j) * 4, row r at pc + r * nBytes
    get(P.c), get(L.i), get(L.nBytes), I.i32Mul, I.i32Add, get(L.j), I.i32(2), I.i32Shl, I.i32Add, set(L.pc),
    ...Array.from({ length: MR }, (_, r) => [
      get(L.pc), ...(r === 0 ? [] : [get(L.nBytes), I.i32(r), I.i32Mul, I.i32Add]), get(L.acc + 2 * r), I.v128Store(0),
      get(L.pc), ...(r === 0 ? [] : [get(L.nBytes), I.i32(r), I.i32Mul, I.i32Add]), get(L.acc + 2 * r + 1), I.v128Store(16),
    ].flat()),
    get(L.j), I.i32(NR), I.i32Add, set(L.j),
    I.br(0), I.end, I.end,
    get(L.i), I.i32(MR), I.i32Add, set(L.i),
    I.br(0), I.end, I.end,
  ];
  const locals: FunctionDef['locals'] = [...Array<'i32'>(8).fill('i32'), ...Array<'v128'>(8).fill('v128'), 'v128', 'v128', 'v128', 'i32', 'i32'];
  return { name: packed ? 'gemmPacked' : 'gemm', params: ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], locals, body };
}

/**
 * Writes B [k, n] (row-major, from `src` at float offset `from`) into `dst` at float offset `at`
 * as gemmPacked reads it: the full panels of 8 columns, each [k][8] in turn (the columns past
 * the last full panel are not written; the caller computes them from `src`). `transposed`: src
 * holds B's transpose [n, k] (a key table read as [c, n]), packed without permuting it first.
 */
export function packPanels(src: Float32Array, from: number, dst: Float32Array, at: number, k: number, n: number, transposed = false): void {
  const panels = Math.floor(n / NR);
  if (transposed) {
    for (let p = 0; p < panels; p++)
      for (let x = 0; x < NR; x++) {
        const s = from + (p * NR + x) * k, o = at + p * k * NR + x;
        for (let q = 0; q < k; q++) dst[o + q * NR] = src[s + q]!;
      }
    return;
  }
  for (let p = 0; p < panels; p++) {
    let o = at + p * k * NR, s = from + p * NR;
    for (let q = 0; q < k; q++, o += NR, s += n) {
      dst[o] = src[s]!; dst[o + 1] = src[s + 1]!; dst[o + 2] = src[s + 2]!; dst[o + 3] = src[s + 3]!;
      dst[o + 4] = src[s + 4]!; dst[o + 5] = src[s + 5]!; dst[o + 6] = src[s + 6]!; dst[o + 7] = src[s + 7]!;
    }
  }
}

/** The module of gemm (row-major B) and gemmPacked (B in panels). */
export function gemmModule(relaxed: boolean, memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([gemmFunction(relaxed), gemmFunction(relaxed, true)], memory);
}
