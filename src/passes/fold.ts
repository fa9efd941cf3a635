// Constant folding and algebraic identities, as small named rules.
import type { Graph, Node, ValueRef } from '../ir/graph.js';
import { opDef } from '../ir/ops/registry.js';
import { Tensor } from '../interp/tensor.js';
import type { RewriteRule } from './rebuild.js';

const constOf = (g: Graph, r: ValueRef): number | undefined => {
  const n = g.node(r.node);
  return n.op === 'const' ? (n.attrs.value as number) : undefined;
};

const FOLDABLE = new Set(['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'floordiv', 'mod', 'neg', 'sqrt', 'exp', 'log', 'relu', 'sigmoid', 'tanh']);

export const foldScalarConstants: RewriteRule = {
  name: 'fold-scalar-constants',
  doc: 'an elementwise op whose inputs are all scalar constants -> one constant (evaluated by the reference semantics)',
  apply(node, inputs, g) {
    if (!FOLDABLE.has(node.op) || inputs.length === 0) return undefined;
    const values = inputs.map((r) => constOf(g, r));
    if (values.some((v) => v === undefined)) return undefined;
    const dtype = node.types[0]!.dtype;
    const ins = values.map((v) => Tensor.scalar(v!, dtype));
    const [out] = opDef(node.op).evaluate!(ins, node.attrs, { training: false, dimValue: () => 0, updateBuffer: () => {}, inputParamNames: [] });
    const v = out!.data[0]!;
    if (!Number.isFinite(v)) return undefined;
    return [g.constant(v, dtype, node.span)];
  },
};

/** x op c == x when c is the identity and the result keeps x's shape (no broadcast widening). */
function identity(op: string, side: 'right' | 'both', unit: number, name: string): RewriteRule {
  return {
    name,
    doc: `${op}(x, ${unit}) -> x${side === 'both' ? ` (and ${op}(${unit}, x))` : ''} when the result has x's shape`,
    apply(node: Node, inputs, g) {
      if (node.op !== op) return undefined;
      const [a, b] = inputs as [ValueRef, ValueRef];
      const same = (x: ValueRef) => g.typeOf(x).shape.length === node.types[0]!.shape.length;
      if (constOf(g, b) === unit && same(a)) return [a];
      if (side === 'both' && constOf(g, a) === unit && same(b)) return [b];
      return undefined;
    },
  };
}

export const addZero = identity('add', 'both', 0, 'add-zero');
export const subZero = identity('sub', 'right', 0, 'sub-zero');
export const mulOne = identity('mul', 'both', 1, 'mul-one');
export const divOne = identity('div', 'right', 1, 'div-one');

export const doubleNegation: RewriteRule = {
  name: 'double-negation',
  doc: 'neg(neg(x)) -> x',
  apply(node, inputs, g) {
    if (node.op !== 'neg') return undefined;
    const inner = g.node(inputs[0]!.node);
    return inner.op === 'neg' ? [inner.inputs[0]!] : undefined;
  },
};

/**
 * The gradient of slices that split an axis into two parts (the query's halves in product-key
 * retrieval) arrives as two zero-padded parts added together: three passes over the full tensor,
 * where one concatenation writes each value once.
 */
export const padsToConcat: RewriteRule = {
  name: 'pads-to-concat',
  doc: 'add(pad(a, axis, 0, n), pad(b, axis, len(a), n)) with len(a) + len(b) = n -> concat(a, b, axis) (either order of the add)',
  apply(node, inputs, g) {
    if (node.op !== 'add' || inputs.length !== 2) return undefined;
    const [p, q] = inputs.map((r) => g.node(r.node)) as [Node, Node];
    if (p.op !== 'pad' || q.op !== 'pad' || p.attrs.axis !== q.attrs.axis) return undefined;
    const [first, second] = (p.attrs.start as number) === 0 ? [p, q] : [q, p];
    const rank = node.types[0]!.shape.length;
    const axis = ((first.attrs.axis as number) + rank) % rank;
    const size = node.types[0]!.shape[axis]!.value;
    const la = g.typeOf(first.inputs[0]!).shape[axis]!.value, lb = g.typeOf(second.inputs[0]!).shape[axis]!.value;
    if (size === undefined || la === undefined || lb === undefined) return undefined;
    if (first.attrs.start !== 0 || second.attrs.start !== la || la + lb !== size) return undefined;
    return [{ node: g.add('concat', [first.inputs[0]!, second.inputs[0]!], { axis }, node.span), result: 0 }];
  },
};

export const FOLD_RULES: RewriteRule[] = [foldScalarConstants, addZero, subZero, mulOne, divOne, doubleNegation, padsToConcat];
