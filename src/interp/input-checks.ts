// Checks of what a user hands a compiled program at run time (index inputs, weights, outputs),
// shared by every backend: a GPU kernel that reads an out-of-range row returns garbage or NaN
// instead of failing, so the checks run before any kernel and name the tensor and element.
import { fail } from '../diagnostics/diagnostic.js';
import type { IRFunction, Node } from '../ir/graph.js';
import { opDef } from '../ir/ops/registry.js';
import type { Dim } from '../shapes/dim.js';

/** Ops whose result holds (some of) the same values as one input: index values pass through them. */
const PASSES_VALUES: Readonly<Record<string, number>> = { reshape: 0, expand_dims: 0, slice: 0, broadcast_to: 0, take_along: 0 };

export interface IndexUse {
  /** Exclusive upper bound on the input's values. */
  bound: Dim;
  /** The op that reads the input as an index, and the table it indexes, for messages. */
  node: Node;
  table?: string;
}

/**
 * For each index-typed input of an inlined function: the ops that use its values as indices
 * (through reshapes and slices), with the bound each one requires (declared by the ops).
 */
export function indexInputUses(fn: IRFunction): Map<string, IndexUse[]> {
  const users = new Map<number, { node: Node; input: number }[]>();
  for (const n of fn.graph.nodes)
    n.inputs.forEach((r, i) => {
      if (r.result !== 0) return;
      const list = users.get(r.node) ?? [];
      list.push({ node: n, input: i });
      users.set(r.node, list);
    });
  const out = new Map<string, IndexUse[]>();
  for (const id of fn.inputs) {
    const input = fn.graph.node(id);
    if (input.types[0]!.dtype !== 'index') continue;
    const uses: IndexUse[] = [];
    const seen = new Set<number>();
    const walk = (valueNode: number) => {
      if (seen.has(valueNode)) return;
      seen.add(valueNode);
      for (const u of users.get(valueNode) ?? []) {
        if (PASSES_VALUES[u.node.op] === u.input) walk(u.node.id);
        const def = opDef(u.node.op);
        const bound = def.indexRange?.(u.node.inputs.map((r) => fn.graph.typeOf(r)), u.node.attrs)[u.input];
        if (!bound) continue;
        const src = fn.graph.node(u.node.inputs[0]!.node);
        uses.push({ bound, node: u.node, table: src.op === 'param' ? (src.attrs.name as string) : undefined });
      }
    };
    walk(id);
    if (uses.length) out.set(input.attrs.name as string, uses);
  }
  return out;
}

/**
 * The index operands of `node` whose values nothing bounds statically by what the op reads: an
 * index computed from an input or from an index buffer (`gather(U, ids * 2)`). Index inputs read
 * directly are checked by checkIndexInputs; these are checked where the op runs.
 */
export function unboundedIndexOperands(fn: IRFunction, node: Node, dimValue: (d: Dim) => number): { input: number; size: number; shape: number[] }[] {
  const ranges = opDef(node.op).indexRange?.(node.inputs.map((r) => fn.graph.typeOf(r)), node.attrs) ?? [];
  const out: { input: number; size: number; shape: number[] }[] = [];
  ranges.forEach((range, i) => {
    if (!range) return;
    const size = dimValue(range);
    const bound = fn.graph.typeOf(node.inputs[i]!).bound;
    if (bound && dimValue(bound) <= size) return;
    let src = fn.graph.node(node.inputs[i]!.node);
    while (PASSES_VALUES[src.op] === 0) src = fn.graph.node(src.inputs[0]!.node);
    if (src.op === 'input') return;
    out.push({ input: i, size, shape: fn.graph.typeOf(node.inputs[i]!).shape.map(dimValue) });
  });
  return out;
}

/** PEER0603 at the op for a value of an unbounded index operand outside [0, size). */
export function checkIndexOperand(fn: IRFunction, node: Node, operand: { input: number; size: number; shape: readonly number[] }, data: ArrayLike<number>): void {
  const { input, size, shape } = operand;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v >= 0 && v < size && Number.isInteger(v)) continue;
    const table = fn.graph.node(node.inputs[0]!.node);
    const reads = table.op === 'param' ? `the ${size} rows of ${table.attrs.name as string}` : `${size} entries`;
    let origin = fn.graph.node(node.inputs[input]!.node);
    while (PASSES_VALUES[origin.op] === 0) origin = fn.graph.node(origin.inputs[0]!.node);
    const from = origin.op === 'param' ? `index buffer '${origin.attrs.name as string}'` : 'a computed index';
    fail('PEER0603', node.span ?? null, { what: `${node.op}: ${from} at ${position(i, shape)}`, index: v, size }, [
      `the checker cannot bound this index at compile time, so its values are checked when the op runs; ${node.op} reads ${reads} (valid values 0 to ${size - 1})`,
    ]);
  }
}

/** [i, j, ...] of flat position `flat` in `shape`. */
export function position(flat: number, shape: readonly number[]): string {
  const at: number[] = [];
  for (let a = shape.length - 1; a >= 0; a--) {
    at.unshift(flat % shape[a]!);
    flat = Math.floor(flat / shape[a]!);
  }
  return `[${at.join(', ')}]`;
}

/** Every value of every index input must be within the bound of every op that reads it (PEER0603). */
export function checkIndexInputs(
  uses: ReadonlyMap<string, readonly IndexUse[]>,
  inputs: ReadonlyMap<string, { shape: readonly number[]; data: ArrayLike<number> }>,
  dimValue: (d: Dim) => number,
): void {
  for (const [name, list] of uses) {
    const t = inputs.get(name);
    if (!t) continue;
    const tightest = list.map((u) => ({ u, n: dimValue(u.bound) })).reduce((a, b) => (b.n < a.n ? b : a));
    const { u, n } = tightest;
    const data = t.data;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v >= 0 && v < n) continue;
      const reads = u.table ? `rows of ${u.table}` : 'entries';
      fail('PEER0603', u.node.span ?? null, { what: `input '${name}' at ${position(i, t.shape)}`, index: v, size: n }, [
        `'${name}' indexes the ${n} ${reads} here (${u.node.op}); valid values are 0 to ${n - 1}`,
      ]);
    }
  }
}

/** The first NaN or infinite element of float data, as a message detail, or undefined. */
export function firstNonFinite(data: ArrayLike<number>, shape: readonly number[]): string | undefined {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v)) return `element ${position(i, shape)} is ${v}`;
  }
  return undefined;
}

/**
 * A weight's values as its parameter needs them: finite (PEER0605), and for an index buffer whole
 * numbers from 0 to 2^24 (PEER0602), since kernels hold index values in float32.
 */
export function checkWeightValues(p: { readonly name: string; readonly dtype: string }, data: ArrayLike<number>, shape: readonly number[], file?: string): void {
  if (p.dtype !== 'index') return checkFiniteWeight(p.name, data, shape, file);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (Number.isInteger(v) && v >= 0 && v <= 2 ** 24) continue;
    fail('PEER0602', null, { name: p.name, expected: 'an index buffer of whole numbers from 0 to 2^24 (16777216)', found: `${v} at ${position(i, shape)}${file ? ` in ${file}` : ''}` });
  }
}

/** PEER0605 for a weight tensor with a NaN or infinity (checked where weights are loaded). */
export function checkFiniteWeight(name: string, data: ArrayLike<number>, shape: readonly number[], file?: string): void {
  const bad = firstNonFinite(data, shape);
  if (bad) fail('PEER0605', null, { what: `weight '${name}'${file ? ` in ${file}` : ''}`, detail: bad });
}

/** PEER0605 for a model output: the inputs and weights were finite, so the computation overflowed. */
export function checkFiniteOutputs(outputs: readonly { shape: readonly number[]; data: ArrayLike<number> }[], isFloat: (i: number) => boolean = () => true): void {
  outputs.forEach((o, i) => {
    if (!isFloat(i)) return;
    const bad = firstNonFinite(o.data, o.shape);
    if (!bad) return;
    const name = outputs.length === 1 ? 'output' : `output_${i}`;
    fail('PEER0605', null, { what: `model output '${name}' (result ${i + 1} of ${outputs.length})`, detail: bad }, [
      'the inputs and weights are finite, so a computation overflowed (a very large weight or input, or an exp of a large value)',
    ]);
  });
}
