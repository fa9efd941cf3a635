// Ops without inputs (entry inputs, parameters, scalar constants) and calls of functions.
import { fail } from '../../diagnostics/diagnostic.js';
import { Tensor, type DType } from '../../interp/tensor.js';
import { Dim } from '../../shapes/dim.js';
import { defineOp } from './types.js';

const leafType = (attrs: Record<string, unknown>) => ({ dtype: attrs.dtype as DType, shape: attrs.shape as readonly Dim[] });

/** An argument of the function; evaluated by binding, not by the op. */
export const input = defineOp({ name: 'input', stage: 'leaf', inputs: [], attrs: { name: 'string', dtype: 'string', shape: 'dims' }, infer: (_i, a) => [leafType(a)] });

/** A parameter or buffer of the program, looked up by name in the weights. */
export const param = defineOp({ name: 'param', stage: 'leaf', inputs: [], attrs: { name: 'string', dtype: 'string', shape: 'dims' }, infer: (_i, a) => [leafType(a)] });

export const constant = defineOp({
  name: 'const',
  stage: 'leaf',
  inputs: [],
  attrs: { value: 'float', dtype: 'string' },
  infer(_i, attrs) {
    const dtype = attrs.dtype as DType;
    const v = attrs.value as number;
    return [dtype === 'index' ? { dtype, shape: [], bound: Dim.of(v + 1) } : { dtype, shape: [] }];
  },
  evaluate: (_i, attrs) => [Tensor.scalar(attrs.value as number, attrs.dtype as DType)],
});

/** 0, 1, ..., n-1 as an index tensor. */
export const iota = defineOp({
  name: 'iota',
  inputs: [],
  attrs: { n: 'dims' },
  infer: (_i, attrs) => {
    const n = (attrs.n as readonly Dim[])[0]!;
    return [{ dtype: 'index', shape: [n], bound: n }];
  },
  evaluate: (_i, attrs, ctx) => {
    const n = ctx.dimValue((attrs.n as readonly Dim[])[0]!);
    return [new Tensor('index', [n], Float64Array.from({ length: n }, (_, i) => i))];
  },
});

/** [n, n] additive mask: 0 where column <= row, a large negative number above the diagonal. */
export const MASKED = -1e9;
export const causal_mask = defineOp({
  name: 'causal_mask',
  inputs: [],
  attrs: { n: 'dims' },
  infer: (_i, attrs) => {
    const n = (attrs.n as readonly Dim[])[0]!;
    return [{ dtype: 'f32', shape: [n, n] }];
  },
  evaluate: (_i, attrs, ctx) => {
    const n = ctx.dimValue((attrs.n as readonly Dim[])[0]!);
    return [new Tensor('f32', [n, n], Float64Array.from({ length: n * n }, (_, i) => (i % n <= Math.floor(i / n) ? 0 : MASKED)))];
  },
});

/** A call of another function of the module; result types come from the callee's signature. */
export const call = defineOp({
  name: 'call',
  stage: 'leaf',
  inputs: ['args...'],
  attrs: { callee: 'string' },
  infer: () => fail('PEER0407', null, { detail: 'internal: call types come from the callee' }),
});
