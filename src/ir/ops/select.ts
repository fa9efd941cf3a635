// Ops for routing rules people write around the selected experts: comparisons giving 0/1
// masks, `select` (where), running sums along an axis (top-p needs them), and concatenation.
import { fail } from '../../diagnostics/diagnostic.js';
import { Tensor } from '../../interp/tensor.js';
import { Dim, shapeToString } from '../../shapes/dim.js';
import { broadcastIndex } from './elementwise.js';
import { broadcastShapes, dtypeName, MIXED_DTYPE_NOTE, normalizeAxis } from './shape-rules.js';
import { defineOp, type OpDef } from './types.js';

function concreteBroadcast(shapes: readonly (readonly number[])[]): number[] {
  const n = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: n }, (_, i) => Math.max(...shapes.map((s) => s[s.length - n + i] ?? 1)));
}

/** A comparison: 1.0 where it holds, 0.0 elsewhere (f32, whatever the operands' dtype). */
function comparison(name: string, fn: (x: number, y: number) => boolean): OpDef {
  return defineOp({
    name,
    inputs: ['lhs', 'rhs'],
    attrs: {},
    infer([a, b]) {
      if (a!.dtype !== b!.dtype) fail('PEER0300', null, { what: `'${name}'`, expected: 'operands of one dtype', found: `${dtypeName(a!.dtype)} and ${dtypeName(b!.dtype)}` }, [MIXED_DTYPE_NOTE]);
      return [{ dtype: 'f32', shape: broadcastShapes(a!.shape, b!.shape, name) }];
    },
    evaluate([a, b]) {
      const shape = concreteBroadcast([a!.shape, b!.shape]);
      const out = Tensor.zeros('f32', shape);
      const ia = broadcastIndex(a!.shape, shape), ib = broadcastIndex(b!.shape, shape);
      for (let i = 0; i < out.size; i++) out.data[i] = fn(a!.data[ia(i)]!, b!.data[ib(i)]!) ? 1 : 0;
      return [out];
    },
    // Piecewise constant: no gradient flows through a mask (declared, so a loss may depend on one).
    grad: () => [undefined, undefined],
  });
}

export const greater = comparison('greater', (x, y) => x > y);
export const greater_equal = comparison('greater_equal', (x, y) => x >= y);
export const less = comparison('less', (x, y) => x < y);
export const less_equal = comparison('less_equal', (x, y) => x <= y);
export const equal = comparison('equal', (x, y) => x === y);

/** select(cond, a, b): a where cond is non-zero, b elsewhere (all three broadcast). */
export const select = defineOp({
  name: 'select',
  inputs: ['cond', 'a', 'b'],
  attrs: {},
  infer([c, a, b]) {
    if (c!.dtype !== 'f32') fail('PEER0300', null, { what: "'where' condition", expected: 'an f32 mask (a comparison gives one)', found: dtypeName(c!.dtype) });
    if (a!.dtype !== b!.dtype) fail('PEER0300', null, { what: "'where'", expected: 'both branches of one dtype', found: `${dtypeName(a!.dtype)} and ${dtypeName(b!.dtype)}` }, [MIXED_DTYPE_NOTE]);
    const shape = broadcastShapes(broadcastShapes(c!.shape, a!.shape, 'where'), b!.shape, 'where');
    const t = { dtype: a!.dtype, shape, bound: a!.bound && b!.bound ? (a!.bound.value !== undefined && b!.bound.value !== undefined ? Dim.of(Math.max(a!.bound.value, b!.bound.value)) : undefined) : undefined };
    if (!t.bound) delete t.bound;
    return [t];
  },
  evaluate([c, a, b]) {
    const shape = concreteBroadcast([c!.shape, a!.shape, b!.shape]);
    const out = Tensor.zeros(a!.dtype, shape);
    const ic = broadcastIndex(c!.shape, shape), ia = broadcastIndex(a!.shape, shape), ib = broadcastIndex(b!.shape, shape);
    for (let i = 0; i < out.size; i++) out.data[i] = c!.data[ic(i)]! !== 0 ? a!.data[ia(i)]! : b!.data[ib(i)]!;
    return [out];
  },
  grad(b, { inputs: [c, x, y] }, [g]) {
    if (!g || b.type(x!).dtype !== 'f32') return [undefined, undefined, undefined];
    const zero = b.scalar(0);
    return [undefined, b.unbroadcast(b.op('select', [c!, g, zero]), b.type(x!).shape), b.unbroadcast(b.op('select', [c!, zero, g]), b.type(y!).shape)];
  },
});

/** Running sum along an axis: out[.., i, ..] = sum of x[.., j, ..] for j <= i (j >= i when reverse). */
export const cumsum = defineOp({
  name: 'cumsum',
  inputs: ['x'],
  attrs: { axis: 'int', reverse: 'bool' },
  infer([x], attrs) {
    if (x!.dtype !== 'f32') fail('PEER0300', null, { what: "'cumsum'", expected: 'an f32 tensor', found: dtypeName(x!.dtype) });
    normalizeAxis(attrs.axis as number, x!.shape.length);
    return [{ dtype: 'f32', shape: x!.shape }];
  },
  evaluate([x], attrs) {
    const axis = attrs.axis as number, reverse = attrs.reverse as boolean;
    const n = x!.shape[axis]!;
    const inner = x!.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outer = x!.size / (n * inner);
    const out = Tensor.zeros('f32', x!.shape);
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < inner; j++) {
        let acc = 0;
        for (let s = 0; s < n; s++) {
          const i = reverse ? n - 1 - s : s;
          const at = (o * n + i) * inner + j;
          acc += x!.data[at]!;
          out.data[at] = acc;
        }
      }
    return [out];
  },
  grad: (b, { attrs }, [g]) => [g && b.op('cumsum', [g], { axis: attrs.axis as number, reverse: !(attrs.reverse as boolean) })],
});

/** concat(a, b) along an axis whose lengths are known (every other axis equal). */
export const concat = defineOp({
  name: 'concat',
  inputs: ['a', 'b'],
  attrs: { axis: 'int' },
  infer([a, b], attrs) {
    if (a!.dtype !== b!.dtype) fail('PEER0300', null, { what: "'concat'", expected: 'operands of one dtype', found: `${dtypeName(a!.dtype)} and ${dtypeName(b!.dtype)}` }, [MIXED_DTYPE_NOTE]);
    const axis = normalizeAxis(attrs.axis as number, a!.shape.length);
    const same = a!.shape.length === b!.shape.length && a!.shape.every((d, i) => i === axis || d.equals(b!.shape[i]!));
    if (!same) fail('PEER0303', null, { what: "'concat'", expected: `shapes equal but on axis ${axis}`, found: `${shapeToString(a!.shape)} and ${shapeToString(b!.shape)}`, detail: '' });
    const la = a!.shape[axis]!, lb = b!.shape[axis]!;
    if (la.value === undefined || lb.value === undefined) fail('PEER0308', null, { detail: `concat needs the lengths of axis ${axis} to be known numbers, not ${la} and ${lb}` });
    const shape = [...a!.shape];
    shape[axis] = Dim.of(la.value + lb.value);
    return [{ dtype: a!.dtype, shape }];
  },
  evaluate([a, b], attrs) {
    const axis = attrs.axis as number;
    const la = a!.shape[axis]!, lb = b!.shape[axis]!;
    const inner = a!.shape.slice(axis + 1).reduce((x, y) => x * y, 1);
    const outer = a!.size / (la * inner);
    const shape = [...a!.shape];
    shape[axis] = la + lb;
    const out = Tensor.zeros(a!.dtype, shape);
    for (let o = 0; o < outer; o++) {
      out.data.set(a!.data.subarray(o * la * inner, (o + 1) * la * inner), o * (la + lb) * inner);
      out.data.set(b!.data.subarray(o * lb * inner, (o + 1) * lb * inner), (o * (la + lb) + la) * inner);
    }
    return [out];
  },
  grad(b, { inputs: [x, y], attrs }, [g]) {
    if (!g) return [undefined, undefined];
    const axis = attrs.axis as number;
    const la = b.type(x!).shape[axis]!.value!, lb = b.type(y!).shape[axis]!.value!;
    return [b.op('slice', [g], { axis, start: 0, end: la }), b.op('slice', [g], { axis, start: la, end: la + lb })];
  },
});
