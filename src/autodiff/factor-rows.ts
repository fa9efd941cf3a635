// A sparse table's gradient rows are often outer products: row s of dV is h[s] * dy[token of s]
// (an expert output table), row s of dU is g[s] * x[token of s] (an activation table). Built as
// a tensor they are [slots, d] (16 MB per table per step at 256 tokens x 64 slots x 256), written
// once and read once by the row sums. Where the backend sums factored rows itself, the program
// returns the two factors instead (a [slots] coefficient and a [T, d] vector per token, or per
// token and head), and the backend multiplies them as it sums (the same float32 products, added
// in the same order).
import { parseEinsum } from '../ir/ops/einsum.js';
import type { IRFunction, ValueRef } from '../ir/graph.js';
import { entryFunction } from '../interp/interpreter.js';
import { rebuildModule } from '../passes/rebuild.js';
import type { TrainingProgram } from './differentiate.js';

/**
 * The factors of an outer-product einsum "t…,td->t…d" (or "th…,thc->th…c": a vector per token and
 * head, as a sub-key table's gradient has): the per-slot operand and the per-vector one, whose
 * leading letters are the slot operand's first ones, so each vector's slots are consecutive.
 */
function outerFactors(fn: IRFunction, r: ValueRef): { coef: ValueRef; vec: ValueRef } | undefined {
  let n = fn.graph.node(r.node);
  if (n.op === 'reshape') n = fn.graph.node(n.inputs[0]!.node);
  if (n.op !== 'einsum' || n.inputs.length !== 2) return undefined;
  const spec = parseEinsum(n.attrs.spec as string, 2);
  for (const [vi, ci] of [[0, 1], [1, 0]] as const) {
    const vs = spec.inputs[vi]!, cs = spec.inputs[ci]!;
    const last = vs.at(-1)!;
    if (vs.length >= 2 && cs.length >= vs.length && cs.startsWith(vs.slice(0, -1)) && !cs.includes(last) && spec.output === cs + last) return { coef: n.inputs[ci]!, vec: n.inputs[vi]! };
  }
  return undefined;
}

/**
 * The program with each sparse gradient that is an outer product returned as its factors
 * (layout.sparse[i].factors: the outputs of the [slots] coefficients and the [T, d] vectors;
 * `rows` then names the coefficients too, and no [slots, d] tensor is built).
 */
export function factorRowGradients(p: TrainingProgram): TrainingProgram {
  const fn = entryFunction(p.module);
  const outputs = [...fn.outputs];
  const sparse = p.layout.sparse.map((s) => {
    const f = outerFactors(fn, outputs[s.rows]!);
    if (!f) return s;
    const coef = outputs.push(f.coef) - 1, vec = outputs.push(f.vec) - 1;
    outputs[s.rows] = f.coef;
    return { ...s, rows: coef, factors: { coef, vec } };
  });
  if (sparse.every((s, i) => s === p.layout.sparse[i])) return p;
  const functions = new Map([...p.module.functions].map(([k, f]) => [k, f === fn ? { ...f, outputs } : f]));
  // Rebuilt with no rules: the [slots, d] products nothing returns any more are dropped.
  const module = rebuildModule({ ...p.module, functions }, []);
  return { ...p, module, layout: { ...p.layout, sparse } };
}
