// What one token costs, computed from the IR (not written by hand), so runs can be compared at
// equal active parameters or equal FLOPs: parameters a token reads (a table read only through
// gathers counts the rows gathered per token, capped at its size) and the forward's einsum
// FLOPs (2 multiply-adds per term). Open dimensions are evaluated at OPEN_DIM, so attention's
// quadratic term counts at that sequence length; a token is one position of the entry's first
// input (the product of its open dimensions).
import type { IRModule } from '../ir/graph.js';
import { entryFunction } from '../interp/interpreter.js';
import { parseEinsum } from '../ir/ops/einsum.js';
import { optimize } from './pipeline.js';

export const OPEN_DIM = 64;

export interface TokenCost {
  /** Trainable values in the program. */
  params: number;
  /** Trainable values one token reads. */
  activeParams: number;
  /** Einsum FLOPs of the forward per token. */
  flops: number;
  /** The value every open dimension was given. */
  openDim: number;
}

const VIEWS = new Set(['reshape', 'expand_dims']);

export function tokenCost(m: IRModule): TokenCost {
  const inlined = optimize(m);
  const fn = entryFunction(inlined);
  const at = (d: { evaluate(v: (s: string) => number | undefined): number | undefined }) => d.evaluate(() => OPEN_DIM)!;
  const first = fn.inputs[0] === undefined ? undefined : fn.graph.node(fn.inputs[0]);
  const tokens = first ? first.types[0]!.shape.filter((d) => !d.isConst).reduce((a, d) => a * at(d), 1) : 1;
  const size = (shape: readonly { evaluate(v: (s: string) => number | undefined): number | undefined }[]) => shape.reduce((a, d) => a * at(d), 1);

  // Who reads each parameter (through views): gathers (as the table) or anything else.
  const sourceParam = new Map<number, string>();
  for (const n of fn.graph.nodes) {
    if (n.op === 'param') sourceParam.set(n.id, n.attrs.name as string);
    else if (VIEWS.has(n.op) && sourceParam.has(n.inputs[0]!.node)) sourceParam.set(n.id, sourceParam.get(n.inputs[0]!.node)!);
  }
  const gathered = new Map<string, number>();
  const dense = new Set<string>();
  let flops = 0;
  for (const n of fn.graph.nodes) {
    if (n.op === 'param' || VIEWS.has(n.op)) continue;
    n.inputs.forEach((r, i) => {
      const p = sourceParam.get(r.node);
      if (p === undefined) return;
      if (n.op === 'gather' && i === 0) {
        const rowSize = size(fn.graph.typeOf(r).shape.slice(1));
        gathered.set(p, (gathered.get(p) ?? 0) + (size(fn.graph.typeOf(n.inputs[1]!).shape) / tokens) * rowSize);
      } else dense.add(p);
    });
    if (n.op === 'einsum') {
      const spec = parseEinsum(n.attrs.spec as string, n.inputs.length);
      const letters = new Map<string, number>();
      spec.inputs.forEach((s, i) => [...s].forEach((c, j) => letters.set(c, at(fn.graph.typeOf(n.inputs[i]!).shape[j]!))));
      flops += 2 * [...letters.values()].reduce((a, b) => a * b, 1);
    }
  }
  let params = 0, active = 0;
  for (const p of m.params) {
    if (p.role !== 'param') continue;
    const count = p.shape.reduce((a, b) => a * b, 1);
    params += count;
    if (dense.has(p.name)) active += count;
    else if (gathered.has(p.name)) active += Math.min(count, gathered.get(p.name)!);
  }
  return { params, activeParams: Math.round(active), flops: flops / tokens, openDim: OPEN_DIM };
}
