// Layout kernels: moving values without arithmetic (a slice's runs, a transpose), in the
// contraction kernel's memory so the steps around them read and write there in place.
import { buildModule, I, type FunctionDef, type ValType } from './module.js';

/**
 * `copyBlocks(src, dst, blockFrom, blockTo, srcStride, blockBytes)`: block b of `blockBytes`
 * at src + b * srcStride copied to dst + b * blockBytes (a slice of an axis: the blocks are
 * its runs). Byte pointers and sizes.
 */
export function copyBlocksFunction(): FunctionDef {
  const get = I.localGet, set = I.localSet;
  const [src, dst, from, to, stride, bytes, b] = [0, 1, 2, 3, 4, 5, 6];
  const body: number[][] = [
    get(from), set(b),
    I.block, I.loop,
    get(b), get(to), I.i32GeS, I.brIf(1),
    get(dst), get(b), get(bytes), I.i32Mul, I.i32Add,
    get(src), get(b), get(stride), I.i32Mul, I.i32Add,
    get(bytes), I.memoryCopy,
    get(b), I.i32(1), I.i32Add, set(b),
    I.br(0), I.end, I.end,
  ];
  return { name: 'copyBlocks', params: Array<ValType>(6).fill('i32'), locals: ['i32'], body };
}

/** Lanes [a0 b0 a1 b1] of a and b (i32x4 lanes of two vectors), and [a2 b2 a3 b3]. */
const ZIP_LOW = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23];
const ZIP_HIGH = [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31];
/** The 64-bit halves: [a.lo b.lo] and [a.hi b.hi]. */
const LOW_64 = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
const HIGH_64 = [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31];

/**
 * `transpose(src, dst, rows, cols, blockFrom, blockTo)`: dst [cols, rows] = src [rows, cols]
 * transposed, for the source rows of blocks [blockFrom, blockTo) of 4; rows and cols multiples
 * of 4. Tiles of 4 x 4 in registers (two rounds of shuffles): the source is read along its rows
 * and each destination line is filled by consecutive blocks, where a column walk of the source
 * would touch a new line for every value.
 */
export function transposeFunction(): FunctionDef {
  const get = I.localGet, set = I.localSet;
  const [src, dst, rows, cols, from, to] = [0, 1, 2, 3, 4, 5];
  const [blk, j, p, q, rowBytes, colBytes] = [6, 7, 8, 9, 10, 11];
  const r = [12, 13, 14, 15], t = [16, 17, 18, 19];
  const body: number[][] = [
    get(cols), I.i32(4), I.i32Mul, set(rowBytes),
    get(rows), I.i32(4), I.i32Mul, set(colBytes),
    get(from), set(blk),
    I.block, I.loop,
    get(blk), get(to), I.i32GeS, I.brIf(1),
    // p: source row 4 blk, column 0; q: destination row 0, column 4 blk.
    get(src), get(blk), get(rowBytes), I.i32Mul, I.i32(4), I.i32Mul, I.i32Add, set(p),
    get(dst), get(blk), I.i32(16), I.i32Mul, I.i32Add, set(q),
    I.i32(0), set(j),
    I.block, I.loop,
    get(j), get(cols), I.i32GeS, I.brIf(1),
    ...r.flatMap((x, k) => [get(p), ...(k ? [get(rowBytes), I.i32(k), I.i32Mul, I.i32Add] : []), I.v128Load(0), set(x)]),
    get(r[0]!), get(r[1]!), I.i8x16Shuffle(ZIP_LOW), set(t[0]!),
    get(r[0]!), get(r[1]!), I.i8x16Shuffle(ZIP_HIGH), set(t[1]!),
    get(r[2]!), get(r[3]!), I.i8x16Shuffle(ZIP_LOW), set(t[2]!),
    get(r[2]!), get(r[3]!), I.i8x16Shuffle(ZIP_HIGH), set(t[3]!),
    // Column k of the tile: [r0[k] r1[k] r2[k] r3[k]].
    ...([[0, 2, LOW_64], [0, 2, HIGH_64], [1, 3, LOW_64], [1, 3, HIGH_64]] as const).flatMap(([a, b, lanes], k) => [
      get(q), ...(k ? [get(colBytes), I.i32(k), I.i32Mul, I.i32Add] : []),
      get(t[a]!), get(t[b]!), I.i8x16Shuffle([...lanes]), I.v128Store(0),
    ]),
    get(p), I.i32(16), I.i32Add, set(p),
    get(q), get(colBytes), I.i32(4), I.i32Mul, I.i32Add, set(q),
    get(j), I.i32(4), I.i32Add, set(j),
    I.br(0), I.end, I.end,
    get(blk), I.i32(1), I.i32Add, set(blk),
    I.br(0), I.end, I.end,
  ];
  return { name: 'transpose', params: Array<ValType>(6).fill('i32'), locals: [...Array<ValType>(6).fill('i32'), ...Array<ValType>(8).fill('v128')], body };
}

export function layoutModule(memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([copyBlocksFunction(), transposeFunction()], memory);
}
