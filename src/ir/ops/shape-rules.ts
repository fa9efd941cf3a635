// Shared shape rules used by several op declarations.
import { Dim, shapeToString, type Shape } from '../../shapes/dim.js';
import { fail } from '../../diagnostics/diagnostic.js';
import type { TensorType } from './types.js';
import type { DType } from '../../interp/tensor.js';

export function broadcastShapes(a: Shape, b: Shape, op: string): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? Dim.of(1);
    const db = b[b.length - n + i] ?? Dim.of(1);
    if (da.equals(db) || db.value === 1) out.push(da);
    else if (da.value === 1) out.push(db);
    else
      fail('PEER0301', null, {
        op, left: shapeToString(a), right: shapeToString(b),
        detail: `dimension ${da} does not match ${db} (axis ${i - n} counting from the end)`,
      });
  }
  return out;
}

export function requireDtype(t: TensorType, dtype: DType, what: string): void {
  if (t.dtype !== dtype) fail('PEER0300', null, { what, expected: dtypeName(dtype), found: `${dtypeName(t.dtype)} ${shapeToString(t.shape)}` });
}

/** The note for an index tensor met in f32 arithmetic: there is no implicit conversion. */
export const MIXED_DTYPE_NOTE = 'index tensors are integers and never convert silently: write float(i) to use one in f32 arithmetic';

export function dtypeName(d: DType): string {
  return d === 'f32' ? 'an f32 tensor' : 'an index tensor';
}

export function normalizeAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail('PEER0305', null, { axis, rank });
  return a;
}

export function requireShape(t: TensorType, expected: Shape, what: string): void {
  if (t.shape.length !== expected.length || t.shape.some((d, i) => !d.equals(expected[i]!)))
    fail('PEER0303', null, { what, expected: shapeToString(expected), found: shapeToString(t.shape), detail: '' });
}

export function product(shape: Shape): Dim {
  return shape.reduce((acc, d) => acc.mul(d), Dim.of(1));
}
