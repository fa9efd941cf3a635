// Structured pieces of wasm function bodies shared by the kernel builders: nested instruction
// lists (flattened once by `code`), loops, and the few local-variable idioms every kernel uses.
import { I, type ValType } from './module.js';

export type Code = number | Code[];
export const get = I.localGet, set = I.localSet;
/** One flat instruction list of nested pieces (helpers return lists of instructions). */
export const code = (...parts: Code[]): number[][] => [(parts as unknown[]).flat(Infinity as 1) as number[]];
export const locals = (...runs: [ValType, number][]): ValType[] => runs.flatMap(([t, n]) => Array<ValType>(n).fill(t));
/** while (cond) { body }: cond leaves an i32 on the stack, nonzero to go on. */
export const whileLoop = (cond: Code[], body: Code[]): Code[] => [I.block, I.loop, ...cond, I.i32Eqz, I.brIf(1), ...body, I.br(0), I.end, I.end];
export const ifThen = (cond: Code[], body: Code[]): Code[] => [...cond, I.ifThen, ...body, I.end];
export const addConst = (local: number, n: number) => [get(local), I.i32(n), I.i32Add, set(local)];
export const addLocal = (local: number, other: number) => [get(local), get(other), I.i32Add, set(local)];
/** The v128 at byte pointer local `ptr` plus local `j`. */
export const v128At = (ptr: number, j: number) => [get(ptr), get(j), I.i32Add, I.v128Load(0)];
export const zero = (v: number) => [I.v128Const0, set(v)];
/** ((l0 + l1) + l2) + l3 of a v128 local, as one f32. */
export const horizontalSum = (v: number) => [get(v), I.f32x4ExtractLane(0), get(v), I.f32x4ExtractLane(1), I.f32Add, get(v), I.f32x4ExtractLane(2), I.f32Add, get(v), I.f32x4ExtractLane(3), I.f32Add];
