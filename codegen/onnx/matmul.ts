// Two-operand einsums as Transpose/Reshape/MatMul, the form every ONNX Runtime provider runs
// well (onnxruntime-web's WebGPU Einsum gave errors of 0.27 where MatMul was exact). Letters
// shared by both operands and the output are batch axes, those of one operand and the output
// are the matrix rows or columns, those of both operands only are contracted; all sizes come
// from the operands' Shape at run time, so symbolic dims stay symbolic.
import type { AttrValue } from './proto.js';

export interface OnnxGraph {
  one(op: string, inputs: string[], attrs?: Record<string, AttrValue>): string;
  int64s(values: number[]): string;
}

/** The einsum `spec` of a and b as MatMul, or undefined for a form MatMul does not cover (one operand, a letter summed within one operand, a scalar result). */
export function einsumAsMatMul(g: OnnxGraph, spec: string, a: string, b: string): string | undefined {
  const [ins, out] = spec.replace(/\s+/g, '').split('->') as [string, string];
  const [sa, sb] = ins.split(',');
  if (sa === undefined || sb === undefined || out.length === 0) return undefined;
  const inA = new Set(sa), inB = new Set(sb), inO = new Set(out);
  if ([...sa].some((c) => !inB.has(c) && !inO.has(c)) || [...sb].some((c) => !inA.has(c) && !inO.has(c))) return undefined;
  const batch = [...out].filter((c) => inA.has(c) && inB.has(c));
  const rows = [...out].filter((c) => inA.has(c) && !inB.has(c));
  const cols = [...out].filter((c) => inB.has(c) && !inA.has(c));
  const inner = [...sa].filter((c) => inB.has(c) && !inO.has(c));
  const transpose = (x: string, sub: string, order: string[]) => {
    const perm = order.map((c) => sub.indexOf(c));
    return perm.every((p, i) => p === i) ? x : g.one('Transpose', [x], { perm: { ints: perm } });
  };
  const at = transpose(a, sa, [...batch, ...rows, ...inner]);
  const bt = transpose(b, sb, [...batch, ...inner, ...cols]);
  const nb = batch.length;
  const shapeA = g.one('Shape', [at]), shapeB = g.one('Shape', [bt]);
  const dims = (shape: string, from: number, to: number) => g.one('Slice', [shape, g.int64s([from]), g.int64s([to])]);
  const size = (shape: string, from: number, to: number) =>
    to === from ? g.int64s([1]) : to - from === 1 ? dims(shape, from, to) : g.one('ReduceProd', [dims(shape, from, to)], { keepdims: { i: 1 } });
  const concat = (parts: string[]) => (parts.length === 1 ? parts[0]! : g.one('Concat', parts, { axis: { i: 0 } }));
  const lead = nb ? [dims(shapeA, 0, nb)] : [];
  const a3 = g.one('Reshape', [at, concat([...lead, size(shapeA, nb, nb + rows.length), size(shapeA, nb + rows.length, nb + rows.length + inner.length)])]);
  const b3 = g.one('Reshape', [bt, concat([...lead, size(shapeB, nb, nb + inner.length), size(shapeB, nb + inner.length, nb + inner.length + cols.length)])]);
  const product = g.one('MatMul', [a3, b3]);
  const shaped = g.one('Reshape', [product, concat([...lead, ...(rows.length ? [dims(shapeA, nb, nb + rows.length)] : []), ...(cols.length ? [dims(shapeB, nb + inner.length, nb + inner.length + cols.length)] : [])])]);
  return transpose(shaped, [...batch, ...rows, ...cols].join(''), [...out]);
}
