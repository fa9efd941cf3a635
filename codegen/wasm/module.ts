// A small WebAssembly binary builder: just what peerc's generated kernels need (one imported
// memory, functions over i32/f32/v128 locals, structured control flow, loads and stores,
// SIMD128 arithmetic). Written here rather than taken from an assembler package: the kernels
// are generated as instruction lists, not text, so a text assembler (wabt: 1.5 MB of wasm)
// would add a parse step and a large dependency for about 200 lines of encoding.

export type ValType = 'i32' | 'f32' | 'f64' | 'v128';
const VALTYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (i32 constants). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const f32Bytes = (v: number) => [...new Uint8Array(Float32Array.of(v).buffer)];
const f64Bytes = (v: number) => [...new Uint8Array(Float64Array.of(v).buffer)];
const str = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const simd = (op: number) => [0xfd, ...uleb(op)];

/** Instructions, as byte sequences; a kernel is a flat list of these. */
export const I = {
  localGet: (i: number) => [0x20, ...uleb(i)],
  localSet: (i: number) => [0x21, ...uleb(i)],
  localTee: (i: number) => [0x22, ...uleb(i)],
  i32: (v: number) => [0x41, ...sleb(v)],
  f32: (v: number) => [0x43, ...f32Bytes(v)],
  f64: (v: number) => [0x44, ...f64Bytes(v)],
  i32Add: [0x6a], i32Sub: [0x6b], i32Mul: [0x6c], i32DivS: [0x6d], i32DivU: [0x6e], i32Shl: [0x74], i32And: [0x71], i32Or: [0x72],
  i32LtS: [0x48], i32GtS: [0x4a], i32LeS: [0x4c], i32GeS: [0x4e], i32Eq: [0x46], i32Ne: [0x47], i32Eqz: [0x45],
  f32Add: [0x92], f32Sub: [0x93], f32Mul: [0x94], f32Abs: [0x8b], f32Eq: [0x5b], f32Ne: [0x5c], f32Gt: [0x5e], f32Ge: [0x60],
  /** Minimum and maximum, NaN where either operand is NaN. */
  f32Min: [0x96], f32Max: [0x97],
  f64Add: [0xa0], f64Eq: [0x61], f64Ne: [0x62], f64Gt: [0x64],
  f64PromoteF32: [0xbb], f32ConvertI32S: [0xb2], f64ConvertI32S: [0xb7],
  /** c ? a : b, for a, b, c on the stack in that order. */
  select: [0x1b],
  /** Memory access with a constant byte offset (alignment hints are 2^align). */
  f32Load: (offset = 0) => [0x2a, 2, ...uleb(offset)],
  f32Store: (offset = 0) => [0x38, 2, ...uleb(offset)],
  i32Load: (offset = 0) => [0x28, 2, ...uleb(offset)],
  i32Store: (offset = 0) => [0x36, 2, ...uleb(offset)],
  f64Load: (offset = 0) => [0x2b, 3, ...uleb(offset)],
  f64Store: (offset = 0) => [0x39, 3, ...uleb(offset)],
  v128Load: (offset = 0) => [...simd(0x00), 4, ...uleb(offset)],
  v128Store: (offset = 0) => [...simd(0x0b), 4, ...uleb(offset)],
  /** Loads one f32 and splats it to all four lanes. */
  v128Load32Splat: (offset = 0) => [...simd(0x09), 2, ...uleb(offset)],
  f32x4Splat: simd(0x13),
  f32x4ExtractLane: (lane: number) => [...simd(0x1f), lane],
  /** Lane-wise a > b (all ones where true; false wherever a lane is NaN). */
  f32x4Gt: simd(0x44), f32x4Ge: simd(0x46), f32x4Ne: simd(0x42),
  /** Lane-wise maximum, NaN where either lane is NaN. */
  f32x4Max: simd(0xe9),
  /** Lane-wise minimum, NaN where either lane is NaN. */
  f32x4Min: simd(0xe8),
  /** pmax(a, b) = a < b ? b : a: one x86 maxps (f32x4.max needs about eight instructions for its NaN and -0 rules). */
  f32x4PMax: simd(0xeb),
  /** pmin(a, b) = b < a ? b : a. */
  f32x4PMin: simd(0xea),
  i32x4Splat: simd(0x11), i32x4GeS: simd(0x3f),
  /** One bit per lane: its top bit. */
  i32x4Bitmask: simd(0xa4),
  i32Ctz: [0x68], i32ShrU: [0x76],
  v128And: simd(0x4e), v128Or: simd(0x50),
  /** (a & c) | (b & ~c) for a, b, c on the stack in that order. */
  v128Bitselect: simd(0x52),
  /** Bytes of a (0-15) and b (16-31) picked by the 16 literal lane indices. */
  i8x16Shuffle: (lanes: number[]) => [...simd(0x0d), ...lanes],
  v128Const: (bytes: number[]) => [...simd(0x0c), ...bytes],
  /** 1 when any bit of the vector is set. */
  v128AnyTrue: simd(0x53),
  f64x2Splat: simd(0x14),
  f64x2ExtractLane: (lane: number) => [...simd(0x21), lane],
  /** Lanes 0-1 of an f32x4 as f64x2 (exact). */
  f64x2PromoteLowF32x4: simd(0x5f),
  /** f64x2 rounded to f32 in lanes 0-1, lanes 2-3 zero. */
  f32x4DemoteF64x2Zero: simd(0x5e),
  f64x2Add: simd(0xf0), f64x2Sub: simd(0xf1), f64x2Mul: simd(0xf2), f64x2Div: simd(0xf3), f64x2Sqrt: simd(0xef),
  f64x2Abs: simd(0xec), f64x2Neg: simd(0xed),
  /** Lane-wise minimum and maximum: NaN where either lane is NaN, -0 below +0 (as Math.min and Math.max). */
  f64x2Min: simd(0xf4), f64x2Max: simd(0xf5),
  f32x4Add: simd(0xe4), f32x4Sub: simd(0xe5), f32x4Mul: simd(0xe6), f32x4Div: simd(0xe7), f32x4Sqrt: simd(0xe3),
  /** a * b + c in one rounding where the engine fuses it (relaxed SIMD). */
  f32x4RelaxedMadd: simd(0x105),
  v128Const0: [...simd(0x0c), ...new Array(16).fill(0)],
  block: [0x02, 0x40], loop: [0x03, 0x40], end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  ifThen: [0x04, 0x40], else: [0x05],
  drop: [0x1a],
  /** memory.copy(dst, src, bytes) (bulk memory), overlapping ranges allowed. */
  memoryCopy: [0xfc, 0x0a, 0x00, 0x00],
};

/** Lanes 2-3 of an f32x4 moved to lanes 0-1 (for the second promote of a vector). */
export const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
/** Lanes 0-1 of a and of b (two demoted f64x2) as one f32x4. */
export const LOW_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

export interface FunctionDef {
  name: string;
  params: ValType[];
  /** Locals after the params, in order (indices continue from the params). */
  locals: ValType[];
  body: number[][];
}

/**
 * A module importing `env.memory` (shared when `shared`, for worker threads) and exporting the
 * given functions; none returns a value (kernels write to memory).
 */
export function buildModule(functions: readonly FunctionDef[], memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  const types = functions.map((f) => [0x60, ...vec(f.params.map((p) => [VALTYPE[p]])), 0]);
  const limits = memory.shared ? [0x03, ...uleb(memory.minPages), ...uleb(memory.maxPages)] : [0x01, ...uleb(memory.minPages), ...uleb(memory.maxPages)];
  const imports = vec([[...str('env'), ...str('memory'), 0x02, ...limits]]);
  const funcs = vec(functions.map((_, i) => uleb(i)));
  const exports = vec(functions.map((f, i) => [...str(f.name), 0x00, ...uleb(i)]));
  const code = vec(functions.map((f) => {
    // Locals compressed into runs of one type.
    const runs: number[][] = [];
    for (let i = 0; i < f.locals.length; ) {
      let j = i;
      while (j < f.locals.length && f.locals[j] === f.locals[i]) j++;
      runs.push([...uleb(j - i), VALTYPE[f.locals[i]!]]);
      i = j;
    }
    const body = [...vec(runs), ...f.body.flat(), 0x0b];
    return [...uleb(body.length), ...body];
  }));
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...section(1, vec(types)), ...section(2, imports), ...section(3, funcs), ...section(7, exports), ...section(10, code)]);
}

/** What this engine runs: SIMD128 (required by the backend) and relaxed SIMD (used when present). */
export function wasmFeatures(): { simd: boolean; relaxedSimd: boolean } {
  const probe = (extra: number[][]) => {
    try {
      return WebAssembly.validate(buildModule([{ name: 'f', params: [], locals: ['v128'], body: [I.v128Const0, I.v128Const0, ...extra, I.drop] }], { minPages: 1, maxPages: 1 }));
    } catch {
      return false;
    }
  };
  return { simd: probe([I.f32x4Add]), relaxedSimd: probe([I.v128Const0, I.f32x4RelaxedMadd]) };
}
