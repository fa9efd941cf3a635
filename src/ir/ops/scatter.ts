// Ops that gradients need: the adjoints of slicing, broadcasting and lookups. Scatters are
// declared as sums (duplicates add up); the kernels compute them gather-style, per output cell.
import { fail } from '../../diagnostics/diagnostic.js';
import { Tensor } from '../../interp/tensor.js';
import { Dim, shapeToString } from '../../shapes/dim.js';
import { broadcastIndex } from './elementwise.js';
import { normalizeAxis, requireDtype } from './shape-rules.js';
import { defineOp, type TensorType } from './types.js';

const dims = (v: unknown) => v as readonly Dim[];

/** x placed at [start, start + len) of a zero axis of length size[0] (the adjoint of slice). */
export const pad = defineOp({
  name: 'pad',
  stage: 'backward',
  inputs: ['x'],
  attrs: { axis: 'int', start: 'int', size: 'dims' },
  infer([x], attrs) {
    const axis = normalizeAxis(attrs.axis as number, x!.shape.length);
    const shape = [...x!.shape];
    shape[axis] = dims(attrs.size)[0]!;
    return [{ dtype: x!.dtype, shape }];
  },
  evaluate([x], attrs, ctx) {
    const axis = attrs.axis as number, start = attrs.start as number;
    const size = ctx.dimValue(dims(attrs.size)[0]!);
    const shape = [...x!.shape];
    const len = shape[axis]!;
    shape[axis] = size;
    const out = Tensor.zeros(x!.dtype, shape);
    const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < len; i++)
        for (let j = 0; j < inner; j++) out.data[(o * size + start + i) * inner + j] = x!.data[(o * len + i) * inner + j]!;
    return [out];
  },
  grad: (b, { attrs }, [g]) => [g && b.op('slice', [g], { axis: attrs.axis as number, start: attrs.start as number, end: (attrs.start as number) + (b.type(g).shape[attrs.axis as number]!.value ?? 0) })],
});

export const broadcast_to = defineOp({
  name: 'broadcast_to',
  inputs: ['x'],
  attrs: { shape: 'dims' },
  infer([x], attrs) {
    const shape = dims(attrs.shape);
    const off = shape.length - x!.shape.length;
    if (off < 0 || x!.shape.some((d, i) => !d.equals(shape[i + off]!) && d.value !== 1))
      fail('PEER0301', null, { op: 'broadcast_to', left: shapeToString(x!.shape), right: shapeToString(shape), detail: 'the shape does not broadcast' });
    return [{ dtype: x!.dtype, shape }];
  },
  evaluate([x], attrs, ctx) {
    const shape = dims(attrs.shape).map((d) => ctx.dimValue(d));
    const out = Tensor.zeros(x!.dtype, shape);
    const at = broadcastIndex(x!.shape, shape);
    for (let i = 0; i < out.size; i++) out.data[i] = x!.data[at(i)]!;
    return [out];
  },
  grad: (b, { inputs: [x] }, [g]) => [g && b.unbroadcast(g, b.type(x!).shape)],
});

/** out[..., j] = sum of g[..., m] over the m with idx[..., m] = j (the adjoint of take_along). */
export const scatter_along = defineOp({
  name: 'scatter_along',
  stage: 'backward',
  inputs: ['g', 'indices'],
  attrs: { n: 'dims' },
  infer([g, idx], attrs) {
    requireDtype(g!, 'f32', "'scatter_along' values");
    requireDtype(idx!, 'index', "'scatter_along' indices");
    if (shapeToString(g!.shape) !== shapeToString(idx!.shape))
      fail('PEER0303', null, { what: "'scatter_along' indices", expected: shapeToString(g!.shape), found: shapeToString(idx!.shape), detail: '' });
    return [{ dtype: 'f32', shape: [...g!.shape.slice(0, -1), dims(attrs.n)[0]!] }];
  },
  evaluate([g, idx], attrs, ctx) {
    const n = ctx.dimValue(dims(attrs.n)[0]!);
    const m = g!.shape[g!.shape.length - 1]!;
    const out = Tensor.zeros('f32', [...g!.shape.slice(0, -1), n]);
    for (let i = 0; i < g!.size; i++) {
      const lane = Math.floor(i / m);
      out.data[lane * n + idx!.data[i]!] = out.data[lane * n + idx!.data[i]!]! + g!.data[i]!;
    }
    return [out];
  },
});

/** out[r] = sum of g[i] over the positions i with idx[i] = r (the adjoint of gather). */
export const scatter_rows = defineOp({
  name: 'scatter_rows',
  stage: 'backward',
  inputs: ['g', 'indices'],
  attrs: { rows: 'dims' },
  infer([g, idx], attrs) {
    requireDtype(g!, 'f32', "'scatter_rows' values");
    requireDtype(idx!, 'index', "'scatter_rows' indices");
    const lead = g!.shape.slice(0, idx!.shape.length);
    if (shapeToString(lead) !== shapeToString(idx!.shape))
      fail('PEER0303', null, { what: "'scatter_rows' indices", expected: shapeToString(lead), found: shapeToString(idx!.shape), detail: '' });
    return [{ dtype: 'f32', shape: [dims(attrs.rows)[0]!, ...g!.shape.slice(idx!.shape.length)] }];
  },
  evaluate([g, idx], attrs, ctx) {
    const rows = ctx.dimValue(dims(attrs.rows)[0]!);
    const rowShape = g!.shape.slice(idx!.shape.length);
    const rowSize = rowShape.reduce((a, b) => a * b, 1);
    const out = Tensor.zeros('f32', [rows, ...rowShape]);
    for (let i = 0; i < idx!.size; i++) {
      const r = idx!.data[i]!;
      for (let j = 0; j < rowSize; j++) out.data[r * rowSize + j] = out.data[r * rowSize + j]! + g!.data[i * rowSize + j]!;
    }
    return [out];
  },
});

/** The value of a (possibly symbolic) dim as an f32 scalar, e.g. the count behind a mean. */
export const dim_size = defineOp({
  name: 'dim_size',
  inputs: [],
  attrs: { n: 'dims' },
  infer: () => [{ dtype: 'f32', shape: [] }],
  evaluate: (_i, attrs, ctx) => [Tensor.scalar(ctx.dimValue(dims(attrs.n)[0]!))],
});



/** (idx / n, idx mod n) of an index tensor: the two sub-key indices behind a product index. */
export const unravel = defineOp({
  name: 'unravel',
  stage: 'backward',
  inputs: ['indices'],
  attrs: { n: 'dims' },
  infer([idx], attrs) {
    requireDtype(idx!, 'index', "'unravel'");
    const n = dims(attrs.n)[0]!;
    const b = idx!.bound;
    const q = b === undefined ? undefined : b.equals(n.mul(n)) ? n : b.value !== undefined && n.value !== undefined ? Dim.of(Math.ceil(b.value / n.value)) : b;
    const high: TensorType = { dtype: 'index', shape: idx!.shape };
    if (q) high.bound = q;
    return [high, { dtype: 'index', shape: idx!.shape, bound: n }];
  },
  evaluate([idx], attrs, ctx) {
    const n = ctx.dimValue(dims(attrs.n)[0]!);
    const q = Tensor.zeros('index', idx!.shape), r = Tensor.zeros('index', idx!.shape);
    idx!.data.forEach((v, i) => {
      q.data[i] = Math.floor(v / n);
      r.data[i] = v - q.data[i]! * n;
    });
    return [q, r];
  },
});
