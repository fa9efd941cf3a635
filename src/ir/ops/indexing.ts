// Ops that select, reshape or look up: slicing, new axes, reshape, top-k, gathers.
import { fail } from '../../diagnostics/diagnostic.js';
import { CompileError, diagnostic } from '../../diagnostics/diagnostic.js';
import { Tensor } from '../../interp/tensor.js';
import { Dim, shapeToString } from '../../shapes/dim.js';
import { forEachLane } from './lanes.js';
import { normalizeAxis, product, requireDtype } from './shape-rules.js';
import { defineOp } from './types.js';

export const slice = defineOp({
  name: 'slice',
  inputs: ['x'],
  attrs: { axis: 'int', start: 'int', end: 'int' },
  infer([x], attrs) {
    const axis = normalizeAxis(attrs.axis as number, x!.shape.length);
    const start = attrs.start as number, end = attrs.end as number;
    const len = x!.shape[axis]!.value;
    if (start < 0 || end <= start || (len !== undefined && end > len))
      fail('PEER0308', null, { detail: `slice ${start}:${end} is empty or outside axis ${axis} of length ${x!.shape[axis]}` });
    const shape = [...x!.shape];
    shape[axis] = Dim.of(end - start);
    return [{ ...x!, shape }];
  },
  evaluate([x], attrs) {
    const axis = attrs.axis as number, start = attrs.start as number, end = attrs.end as number;
    if (end > x!.shape[axis]!) throw runtimeIndexError(`slice ${start}:${end}`, end - 1, x!.shape[axis]!);
    const shape = [...x!.shape];
    shape[axis] = end - start;
    const out = Tensor.zeros(x!.dtype, shape);
    const inner = x!.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outer = x!.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const n = x!.shape[axis]!;
    for (let o = 0; o < outer; o++)
      for (let i = start; i < end; i++)
        for (let j = 0; j < inner; j++) out.data[(o * (end - start) + i - start) * inner + j] = x!.data[(o * n + i) * inner + j]!;
    return [out];
  },
  grad: (b, { inputs: [x], attrs }, [g]) => {
    const axis = normalizeAxis(attrs.axis as number, b.type(x!).shape.length);
    return [g && b.op('pad', [g], { axis, start: attrs.start as number, size: [b.type(x!).shape[axis]!] })];
  },
});

export const expand_dims = defineOp({
  name: 'expand_dims',
  inputs: ['x'],
  attrs: { axis: 'int' },
  infer([x], attrs) {
    const axis = normalizeAxis(attrs.axis as number, x!.shape.length + 1);
    const shape = [...x!.shape];
    shape.splice(axis, 0, Dim.of(1));
    return [{ ...x!, shape }];
  },
  evaluate([x], attrs) {
    const shape = [...x!.shape];
    shape.splice(attrs.axis as number, 0, 1);
    return [new Tensor(x!.dtype, shape, x!.data)];
  },
  grad: (b, { inputs: [x] }, [g]) => [g && b.op('reshape', [g], { shape: b.type(x!).shape })],
});

export const reshape = defineOp({
  name: 'reshape',
  inputs: ['x'],
  attrs: { shape: 'dims' },
  infer([x], attrs) {
    const shape = attrs.shape as readonly Dim[];
    const from = product(x!.shape), to = product(shape);
    if (!from.equals(to))
      fail('PEER0306', null, { from: shapeToString(x!.shape), to: shapeToString(shape), detail: `${from} elements do not equal ${to}` });
    return [{ ...x!, shape }];
  },
  evaluate([x], attrs, ctx) {
    const shape = (attrs.shape as readonly Dim[]).map((d) => ctx.dimValue(d));
    return [new Tensor(x!.dtype, shape, x!.data)];
  },
  grad: (b, { inputs: [x] }, [g]) => [g && b.op('reshape', [g], { shape: b.type(x!).shape })],
});

// Top-k along the last axis, largest first; ties go to the lower index, everywhere.
export const topk = defineOp({
  name: 'topk',
  inputs: ['x'],
  attrs: { k: 'int' },
  infer([x], attrs) {
    requireDtype(x!, 'f32', "'topk'");
    if (x!.shape.length === 0) fail('PEER0305', null, { axis: -1, rank: 0 });
    const k = attrs.k as number;
    const n = x!.shape[x!.shape.length - 1]!;
    if (k < 1 || (n.value !== undefined && k > n.value)) fail('PEER0402', null, { k: String(k), n: n.toString() });
    const shape = [...x!.shape.slice(0, -1), Dim.of(k)];
    return [{ dtype: 'f32', shape }, { dtype: 'index', shape, bound: n }];
  },
  evaluate([x], attrs) {
    const k = attrs.k as number;
    const n = x!.shape[x!.shape.length - 1]!;
    if (k > n) throw runtimeIndexError('topk', k - 1, n);
    const shape = [...x!.shape.slice(0, -1), k];
    const vals = Tensor.zeros('f32', shape), idx = Tensor.zeros('index', shape);
    const xd = x!.data;
    forEachLane(x!.shape, x!.shape.length - 1, (base, _s, _n, lane) => {
      const order = topkLane(xd.subarray(base, base + n), k);
      for (let j = 0; j < k; j++) {
        vals.data[lane * k + j] = xd[base + order[j]!]!;
        idx.data[lane * k + j] = order[j]!;
      }
    });
    return [vals, idx];
  },
  // The selection itself has no gradient; the selected values pass theirs back to their lanes.
  grad: (b, { inputs: [x], outputs: [, idx] }, [g]) => {
    const shape = b.type(x!).shape;
    return [g && b.op('scatter_along', [g, idx!], { n: [shape[shape.length - 1]!] })];
  },
});

/** Indices of the k largest values, largest first, lower index first among equals. NaN ranks lowest. */
export function topkLane(xs: ArrayLike<number>, k: number): number[] {
  const better = (a: number, b: number) => {
    const va = xs[a]!, vb = xs[b]!;
    if (Number.isNaN(va) !== Number.isNaN(vb)) return Number.isNaN(vb);
    return va > vb || (!(va < vb) && a < b);
  };
  const best: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    if (best.length === k && !better(i, best[k - 1]!)) continue;
    let p = best.length === k ? k - 1 : best.length;
    if (best.length < k) best.push(i);
    while (p > 0 && better(i, best[p - 1]!)) {
      best[p] = best[p - 1]!;
      p--;
    }
    best[p] = i;
  }
  return best;
}

export const gather = defineOp({
  name: 'gather',
  inputs: ['table', 'indices'],
  attrs: {},
  infer([table, idx]) {
    requireDtype(idx!, 'index', "'gather' indices");
    if (table!.shape.length === 0) fail('PEER0305', null, { axis: 0, rank: 0 });
    const rows = table!.shape[0]!;
    const b = idx!.bound;
    if (b?.value !== undefined && rows.value !== undefined && b.value > rows.value)
      fail('PEER0403', null, { table: 'the table', rows: rows.toString(), bound: b.toString() });
    return [{ dtype: table!.dtype, shape: [...idx!.shape, ...table!.shape.slice(1)] }];
  },
  evaluate([table, idx], _attrs, ctx) {
    const rows = table!.shape[0]!;
    const rowSize = table!.shape.slice(1).reduce((a, b) => a * b, 1);
    const out = Tensor.zeros(table!.dtype, [...idx!.shape, ...table!.shape.slice(1)]);
    const id = idx!.data;
    for (let i = 0; i < idx!.size; i++) {
      const r = id[i]!;
      if (!(r >= 0 && r < rows)) throw runtimeIndexError(`gather from ${ctx.inputParamNames[0] ?? 'a table'}`, r, rows);
      for (let j = 0; j < rowSize; j++) out.data[i * rowSize + j] = table!.element(r * rowSize + j);
    }
    return [out];
  },
  grad: (b, { inputs: [table, idx] }, [g]) => [g && b.op('scatter_rows', [g, idx!], { rows: [b.type(table!).shape[0]!] }), undefined],
  indexRange: ([table]) => [undefined, table!.shape[0]],
});

export const take_along = defineOp({
  name: 'take_along',
  inputs: ['x', 'indices'],
  attrs: {},
  infer([x, idx]) {
    requireDtype(idx!, 'index', "'take_along' indices");
    const lead = x!.shape.slice(0, -1), ilead = idx!.shape.slice(0, -1);
    if (x!.shape.length === 0 || lead.length !== ilead.length || lead.some((d, i) => !d.equals(ilead[i]!)))
      fail('PEER0303', null, {
        what: "'take_along' indices", expected: shapeToString([...lead, Dim.sym('m')]), found: shapeToString(idx!.shape),
        detail: ' (all axes but the last must match the values)',
      });
    const n = x!.shape[x!.shape.length - 1]!;
    const b = idx!.bound;
    if (b?.value !== undefined && n.value !== undefined && b.value > n.value)
      fail('PEER0403', null, { table: 'the last axis', rows: n.toString(), bound: b.toString() });
    const t = { dtype: x!.dtype, shape: idx!.shape, bound: x!.bound };
    if (!t.bound) delete t.bound;
    return [t];
  },
  evaluate([x, idx]) {
    const n = x!.shape[x!.shape.length - 1]!;
    const m = idx!.shape[idx!.shape.length - 1]!;
    const out = Tensor.zeros(x!.dtype, idx!.shape);
    for (let i = 0; i < idx!.size; i++) {
      const lane = Math.floor(i / m);
      const j = idx!.data[i]!;
      if (!(j >= 0 && j < n)) throw runtimeIndexError('take_along', j, n);
      out.data[i] = x!.data[lane * n + j]!;
    }
    return [out];
  },
  grad: (b, { inputs: [x, idx] }, [g]) => {
    const shape = b.type(x!).shape;
    return [g && b.type(x!).dtype === 'f32' ? b.op('scatter_along', [g, idx!], { n: [shape[shape.length - 1]!] }) : undefined, undefined];
  },
  indexRange: ([x]) => [undefined, x!.shape[x!.shape.length - 1]],
});

export function runtimeIndexError(what: string, index: number, size: number): CompileError {
  return new CompileError(diagnostic('PEER0603', null, { what, index, size }));
}
