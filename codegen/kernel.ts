// What a generated kernel is: gpu.js source for one output element per thread, plus how its
// arguments are bound. Renderers build these from IR nodes with concrete shapes.
import type { ValueRef } from '../src/ir/graph.js';

/** Flat indices at or above this read wrong values on every gpu.js backend but cpu. */
export const FLAT_INDEX_LIMIT = 2 ** 24;

export type KernelArg =
  /** A computed value; `perm`: passed with its axes permuted (shape is then the permuted one). */
  | { kind: 'value'; ref: ValueRef; shape: number[]; perm?: number[] }
  /**
   * A parameter, uploaded once as a kernel constant; tables >= 2^24 cells as a [rows][cols] view.
   * `perm` asks for the constant stored with its axes permuted (shape is then the permuted one).
   */
  | { kind: 'param'; name: string; shape: number[]; perm?: number[] };

export interface KernelPlan {
  /** The IR op (or fused op) this kernel computes, for per-kernel timing. */
  label: string;
  args: KernelArg[];
  /** gpu.js kernel source: `function(a0, a1, ...) { ... return v; }` with one thread per output cell. */
  source: string;
  outputLength: number;
  /** Results packed one after another in the output (multi-result ops), as lengths. */
  results: number[];
  /** The longest loop the source contains (gpu.js needs loopMaxIterations >= it). */
  loopMax: number;
  /** Stage i of a fused op also reads the outputs of stages 0..i-1, as arguments st0, st1, ... */
  earlierStages: number;
  /** Each thread returns 4 values (gpu.js Array(4)); outputLength counts threads, the data is 4x. */
  vec4?: boolean;
  /** 'pairs': two results stored per thread as (r0, r1, r0, r1); de-interleaved on read-out. */
  layout?: 'pairs';
  /** A 2-D launch [x, y] (row-major result of y rows of x) instead of the flat one. */
  grid?: [number, number];
  /** Arguments read as 2-D [x, y] views (a[y][x]) instead of flat. */
  views?: Map<number, [number, number]>;
}

/** Reads of kernel arguments: flat values, or [row][col] for parameters too large to index flat. */
export class ArgAccess {
  constructor(private readonly args: KernelArg[]) {}

  name(i: number): string {
    const a = this.args[i]!;
    return a.kind === 'param' ? `this.constants.p${i}` : `a${i}`;
  }
  isParam(i: number): boolean {
    return this.args[i]!.kind === 'param';
  }
  isRowView(i: number): boolean {
    const a = this.args[i]!;
    return a.kind === 'param' && a.shape.reduce((x, y) => x * y, 1) >= FLAT_INDEX_LIMIT;
  }
  read(i: number, flat: string): string {
    if (this.isRowView(i)) throw new Error(`a table of ${this.args[i]!.shape.join(' x ')} cells can only be read by row (gather)`);
    return `${this.name(i)}[${flat}]`;
  }
  readRow(i: number, row: string, col: string, rowSize: number): string {
    return this.isRowView(i) ? `${this.name(i)}[${row}][${col}]` : `${this.name(i)}[(${row}) * ${rowSize} + ${col}]`;
  }
}

/**
 * Statements splitting a flat index into coordinates of `shape` (names prefix0, prefix1, ...).
 * Division in f32 can round up just below a multiple, so each quotient is corrected exactly.
 */
export function decompose(flat: string, shape: readonly number[], prefix: string): string {
  const lines: string[] = [`let ${prefix}_rest = ${flat};`];
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i]!;
    if (i === 0) {
      lines.push(`let ${prefix}${i} = ${prefix}_rest;`);
      break;
    }
    lines.push(
      `let ${prefix}_q${i} = Math.floor(${prefix}_rest / ${d});`,
      `let ${prefix}${i} = ${prefix}_rest - ${prefix}_q${i} * ${d};`,
      `if (${prefix}${i} < 0) { ${prefix}_q${i} = ${prefix}_q${i} - 1; ${prefix}${i} = ${prefix}${i} + ${d}; }`,
      `if (${prefix}${i} >= ${d}) { ${prefix}_q${i} = ${prefix}_q${i} + 1; ${prefix}${i} = ${prefix}${i} - ${d}; }`,
      `${prefix}_rest = ${prefix}_q${i};`,
    );
  }
  return lines.join('\n');
}

/** Flat index expression of coordinates in a row-major shape. */
export function flatIndex(coords: readonly string[], shape: readonly number[]): string {
  if (coords.length === 0) return '0';
  let expr = coords[0]!;
  for (let i = 1; i < coords.length; i++) expr = `(${expr}) * ${shape[i]} + ${coords[i]}`;
  return expr;
}

/**
 * A 'pairs' layout's output (threads return (r0, r1, r0', r1') for two cells) as the two
 * results one after the other.
 */
export function unpackPairs(flat: Float32Array): Float32Array {
  const half = flat.length / 2;
  const split = new Float32Array(flat.length);
  for (let t = 0; t < flat.length / 4; t++) {
    split[2 * t] = flat[4 * t]!;
    split[half + 2 * t] = flat[4 * t + 1]!;
    split[2 * t + 1] = flat[4 * t + 2]!;
    split[half + 2 * t + 1] = flat[4 * t + 3]!;
  }
  return split;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Numbers in kernel source: always with a decimal point so gpu.js types them as floats. */
export function lit(v: number): string {
  if (v === Infinity) return '3.4e38';
  if (v === -Infinity) return '-3.4e38';
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}
