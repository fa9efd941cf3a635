// Training-time noise: dropout and Gumbel noise. Each draw is a pure function of (the run's
// seed, the op's salt, the element, the training step), so a resumed run draws exactly what
// an uninterrupted one would, every backend draws the same (the executor computes the same
// function on the host), and the backward pass recomputes the forward mask instead of
// storing it. In evaluation both ops are the identity.
import { Tensor } from '../../interp/tensor.js';
import { uniformAt } from '../../interp/rng.js';
import { fail } from '../../diagnostics/diagnostic.js';
import { dtypeName } from './shape-rules.js';
import { defineOp, type EvalContext, type TensorType } from './types.js';

/** The counter-based key of one noise op in one run. */
export function noiseKey(seed: number, salt: number): number {
  return ((seed >>> 0) * 2654435761 + salt * 40503) >>> 0;
}

/** x * mask / (1 - p), the mask 0 with probability p; the identity in evaluation. */
export function dropoutValues(x: ArrayLike<number>, out: { [i: number]: number }, p: number, key: number, step: number): void {
  const keep = 1 / (1 - p);
  for (let i = 0; i < x.length; i++) out[i] = uniformAt(key, i, step) >= p ? x[i]! * keep : 0;
}

/** x + scale * g with g standard Gumbel noise, -log(-log(u)). */
export function gumbelValues(x: ArrayLike<number>, out: { [i: number]: number }, scale: number, key: number, step: number): void {
  for (let i = 0; i < x.length; i++) out[i] = x[i]! + scale * -Math.log(-Math.log(uniformAt(key, i, step)));
}

const sameType = (name: string) => ([x]: readonly TensorType[]): TensorType[] => {
  if (x!.dtype !== 'f32') fail('PEER0300', null, { what: `'${name}'`, expected: 'an f32 tensor', found: dtypeName(x!.dtype) });
  return [{ dtype: 'f32', shape: x!.shape }];
};

function noisy(x: Tensor, ctx: EvalContext, apply: (out: Float64Array, key: number, step: number) => void, salt: number): Tensor {
  if (!ctx.training) return x;
  const out = new Float64Array(x.size);
  apply(out, noiseKey(ctx.noise?.seed ?? 0, salt), ctx.noise?.step ?? 0);
  return new Tensor('f32', x.shape, out);
}

export const dropout = defineOp({
  name: 'dropout',
  inputs: ['x'],
  attrs: { p: 'float', salt: 'int' },
  infer: sameType('dropout'),
  evaluate: ([x], attrs, ctx) => [noisy(x!, ctx, (out, key, step) => dropoutValues(x!.data, out, attrs.p as number, key, step), attrs.salt as number)],
  // The same mask (a function of seed, salt, element and step) scales the gradient.
  grad: (b, { attrs }, [g]) => [g && b.op('dropout', [g], attrs)],
});

export const gumbel = defineOp({
  name: 'gumbel',
  inputs: ['x'],
  attrs: { scale: 'float', salt: 'int' },
  infer: sameType('gumbel'),
  evaluate: ([x], attrs, ctx) => [noisy(x!, ctx, (out, key, step) => gumbelValues(x!.data, out, attrs.scale as number, key, step), attrs.salt as number)],
  grad: (_b, _n, [g]) => [g],
});
