// Reductions over one axis, softmax, and the normalisations.
import { Tensor } from '../../interp/tensor.js';
import { Dim } from '../../shapes/dim.js';
import { forEachLane } from './lanes.js';
import { normalizeAxis, requireDtype, requireShape } from './shape-rules.js';
import { defineOp, type GradBuilder, type GradRule, type GradValue } from './types.js';
import type { Shape } from '../../shapes/dim.js';

function reduce(name: string, fn: (xs: number[]) => number, grad?: GradRule) {
  return defineOp({
    name,
    inputs: ['x'],
    attrs: { axis: 'int' },
    infer([x], attrs) {
      requireDtype(x!, 'f32', `'${name}'`);
      const axis = normalizeAxis(attrs.axis as number, x!.shape.length);
      return [{ dtype: 'f32', shape: x!.shape.filter((_, i) => i !== axis) }];
    },
    evaluate([x], attrs) {
      const axis = attrs.axis as number;
      const out = Tensor.zeros('f32', x!.shape.filter((_, i) => i !== axis));
      const xd = x!.data;
      forEachLane(x!.shape, axis, (base, stride, n, lane) => {
        const xs = new Array<number>(n);
        for (let i = 0; i < n; i++) xs[i] = xd[base + i * stride]!;
        out.data[lane] = fn(xs);
      });
      return [out];
    },
    grad,
  });
}

const axisOf = (b: GradBuilder, x: GradValue, attrs: { axis?: unknown }) => {
  const rank = b.type(x).shape.length;
  const a = attrs.axis as number;
  return a < 0 ? a + rank : a;
};
/** Mean over an axis, repeated back along it. */
const meanAlong = (b: GradBuilder, v: GradValue, axis: number) => b.expandAlong(b.op('reduce_mean', [v], { axis }), axis, b.type(v).shape);
const sumAlong = (b: GradBuilder, v: GradValue, axis: number) => b.expandAlong(b.op('reduce_sum', [v], { axis }), axis, b.type(v).shape);

export const reduce_sum = reduce('reduce_sum', (xs) => xs.reduce((a, b) => a + b, 0), (b, { inputs: [x], attrs }, [g]) => {
  const axis = axisOf(b, x!, attrs);
  return [g && b.expandAlong(g, axis, b.type(x!).shape)];
});
export const reduce_mean = reduce('reduce_mean', (xs) => xs.reduce((a, b) => a + b, 0) / xs.length, (b, { inputs: [x], attrs }, [g]) => {
  const axis = axisOf(b, x!, attrs);
  const shape = b.type(x!).shape;
  const n = b.op('dim_size', [], { n: [shape[axis]!] });
  return [g && b.op('div', [b.expandAlong(g, axis, shape), n])];
});
// The gradient goes to the extremes, split evenly where several tie (as PyTorch's amax/amin
// and max over a whole tensor do; max(x, dim) there gives it all to the one index it returns).
const toExtremes: GradRule = (b, { inputs: [x], outputs: [y], attrs }, [g]) => {
  if (!g) return [undefined];
  const axis = axisOf(b, x!, attrs);
  const shape = b.type(x!).shape;
  const hit = b.op('equal', [x!, b.expandAlong(y!, axis, shape)]);
  return [b.op('div', [b.op('mul', [hit, b.expandAlong(g, axis, shape)]), sumAlong(b, hit, axis)])];
};
export const reduce_max = reduce('reduce_max', (xs) => Math.max(...xs), toExtremes);
export const reduce_min = reduce('reduce_min', (xs) => Math.min(...xs), toExtremes);

function lanewise(name: string, fn: (xs: Float64Array) => Float64Array, grad: GradRule) {
  return defineOp({
    name,
    inputs: ['x'],
    attrs: { axis: 'int' },
    infer([x], attrs) {
      requireDtype(x!, 'f32', `'${name}'`);
      normalizeAxis(attrs.axis as number, x!.shape.length);
      return [{ dtype: 'f32', shape: x!.shape }];
    },
    evaluate([x], attrs) {
      const out = Tensor.zeros('f32', x!.shape);
      const xd = x!.data;
      forEachLane(x!.shape, attrs.axis as number, (base, stride, n) => {
        const xs = new Float64Array(n);
        for (let i = 0; i < n; i++) xs[i] = xd[base + i * stride]!;
        const ys = fn(xs);
        for (let i = 0; i < n; i++) out.data[base + i * stride] = ys[i]!;
      });
      return [out];
    },
    grad,
  });
}

export const softmax = lanewise('softmax', (xs) => {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}, (b, { inputs: [x], outputs: [y], attrs }, [g]) => {
  if (!g) return [undefined];
  const axis = axisOf(b, x!, attrs);
  return [b.op('mul', [y!, b.op('sub', [g, sumAlong(b, b.op('mul', [g, y!]), axis)])])];
});

export const log_softmax = lanewise('log_softmax', (xs) => {
  const m = Math.max(...xs);
  const logSum = Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
  return xs.map((x) => x - m - logSum);
}, (b, { inputs: [x], outputs: [y], attrs }, [g]) => {
  if (!g) return [undefined];
  const axis = axisOf(b, x!, attrs);
  return [b.op('sub', [g, b.op('mul', [b.op('exp', [y!]), sumAlong(b, g, axis)])])];
});

/** Normalises the last axis of x with per-channel scale (and shift). */
function lastAxisNorm(name: string, params: string[], stats: (xs: Float64Array) => { mean: number; scale: number }, grad: GradRule) {
  return defineOp({
    name,
    inputs: ['x', ...params],
    attrs: { eps: 'float' },
    infer([x, ...ps]) {
      requireDtype(x!, 'f32', `'${name}'`);
      if (x!.shape.length === 0) requireShape(x!, [Dim.sym('C')], `'${name}' input`);
      const c = x!.shape[x!.shape.length - 1]!;
      ps.forEach((p, i) => {
        requireDtype(p, 'f32', `'${name}' ${params[i]}`);
        requireShape(p, [c], `'${name}' ${params[i]} (one per channel of the last axis)`);
      });
      return [{ dtype: 'f32', shape: x!.shape }];
    },
    evaluate([x, gamma, beta], attrs) {
      const eps = attrs.eps as number;
      const out = Tensor.zeros('f32', x!.shape);
      const g = gamma!.data, b = beta?.data;
      forEachLane(x!.shape, x!.shape.length - 1, (base, _s, n) => {
        const xs = x!.data.subarray(base, base + n);
        const { mean, scale } = stats(xs);
        const inv = 1 / Math.sqrt(scale + eps);
        for (let i = 0; i < n; i++) out.data[base + i] = (xs[i]! - mean) * inv * g[i]! + (b ? b[i]! : 0);
      });
      return [out];
    },
    grad,
  });
}

/**
 * Gradient of y = xhat * gamma (+ beta), xhat normalised along `axis` with statistics of x
 * itself (centred or not): dx = inv * (dxhat - E[dxhat] - xhat * E[dxhat * xhat]).
 */
function normGrad(b: GradBuilder, x: GradValue, gamma: GradValue, g: GradValue, axis: number, center: boolean, eps: number, channels: Shape): GradValue[] {
  const xc = center ? b.op('sub', [x, meanAlong(b, x, axis)]) : x;
  const variance = b.op('reduce_mean', [b.op('mul', [xc, xc])], { axis });
  const inv = b.expandAlong(b.op('div', [b.scalar(1), b.op('sqrt', [b.op('add', [variance, b.scalar(eps)])])]), axis, b.type(x).shape);
  const xhat = b.op('mul', [xc, inv]);
  const dxhat = b.op('mul', [g, gamma]);
  let inner = b.op('sub', [dxhat, b.op('mul', [xhat, meanAlong(b, b.op('mul', [dxhat, xhat]), axis)])]);
  if (center) inner = b.op('sub', [inner, meanAlong(b, dxhat, axis)]);
  return [b.op('mul', [inv, inner]), b.unbroadcast(b.op('mul', [g, xhat]), channels), b.unbroadcast(g, channels)];
}

const lastAxisNormGrad = (center: boolean): GradRule => (b, { inputs: [x, gamma], attrs }, [g]) => {
  if (!g) return [undefined, undefined, undefined];
  const shape = b.type(x!).shape;
  const [dx, dgamma, dbeta] = normGrad(b, x!, gamma!, g, shape.length - 1, center, attrs.eps as number, b.type(gamma!).shape);
  return center ? [dx, dgamma, dbeta] : [dx, dgamma];
};

export const layernorm = lastAxisNorm('layernorm', ['gamma', 'beta'], (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, scale: xs.reduce((a, v) => a + (v - mean) ** 2, 0) / xs.length };
}, lastAxisNormGrad(true));
export const rmsnorm = lastAxisNorm('rmsnorm', ['gamma'], (xs) => ({ mean: 0, scale: xs.reduce((a, v) => a + v * v, 0) / xs.length }), lastAxisNormGrad(false));

// BatchNorm over every axis but the last (the channels). Training mode uses the batch's
// statistics (biased variance for normalising, unbiased for the running average, as PyTorch does)
// and reports new running statistics; evaluation mode uses the running statistics.
export const batchnorm = defineOp({
  name: 'batchnorm',
  inputs: ['x', 'gamma', 'beta', 'running_mean', 'running_var'],
  attrs: { eps: 'float', momentum: 'float' },
  infer([x, ...ps]) {
    requireDtype(x!, 'f32', "'batchnorm'");
    if (x!.shape.length < 2) requireShape(x!, [Dim.sym('N'), Dim.sym('C')], "'batchnorm' input (a batch of channel vectors)");
    const c = x!.shape[x!.shape.length - 1]!;
    const names = ['gamma', 'beta', 'running_mean', 'running_var'];
    ps.forEach((p, i) => {
      requireDtype(p, 'f32', `'batchnorm' ${names[i]}`);
      requireShape(p, [c], `'batchnorm' ${names[i]} (one per channel of the last axis)`);
    });
    return [{ dtype: 'f32', shape: x!.shape }];
  },
  evaluate([x, gamma, beta, rmean, rvar], attrs, ctx) {
    const eps = attrs.eps as number;
    const c = x!.shape[x!.shape.length - 1]!;
    const rows = x!.size / c;
    const xd = x!.data;
    let mean = rmean!.data, variance = rvar!.data;
    if (ctx.training) {
      mean = new Float64Array(c);
      variance = new Float64Array(c);
      for (let r = 0; r < rows; r++) for (let j = 0; j < c; j++) mean[j] = mean[j]! + xd[r * c + j]! / rows;
      for (let r = 0; r < rows; r++) for (let j = 0; j < c; j++) variance[j] = variance[j]! + (xd[r * c + j]! - mean[j]!) ** 2 / rows;
      const mom = attrs.momentum as number;
      const [meanName, varName] = [ctx.inputParamNames[3], ctx.inputParamNames[4]];
      const unbiased = rows > 1 ? rows / (rows - 1) : 1;
      if (meanName) ctx.updateBuffer(meanName, new Tensor('f32', [c], rmean!.data.map((m, j) => (1 - mom) * m + mom * mean[j]!)));
      if (varName) ctx.updateBuffer(varName, new Tensor('f32', [c], rvar!.data.map((v, j) => (1 - mom) * v + mom * variance[j]! * unbiased)));
    }
    const out = Tensor.zeros('f32', x!.shape);
    const g = gamma!.data, b = beta!.data;
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < c; j++)
        out.data[r * c + j] = ((xd[r * c + j]! - mean[j]!) / Math.sqrt(variance[j]! + eps)) * g[j]! + b[j]!;
    return [out];
  },
  grad(b, { inputs: [x, gamma, , rmean, rvar], attrs }, [g]) {
    if (!g) return [];
    const shape = b.type(x!).shape;
    const channels = b.type(gamma!).shape;
    const eps = attrs.eps as number;
    if (b.training) {
      // Rows = every axis but the channels, flattened; statistics over rows.
      const rows = shape.slice(0, -1).reduce((acc, d) => acc.mul(d), Dim.of(1));
      const flat = [rows, channels[0]!];
      const [dx, dgamma, dbeta] = normGrad(b, b.op('reshape', [x!], { shape: flat }), gamma!, b.op('reshape', [g], { shape: flat }), 0, true, eps, channels);
      return [b.op('reshape', [dx!], { shape }), dgamma, dbeta];
    }
    const inv = b.op('div', [b.scalar(1), b.op('sqrt', [b.op('add', [rvar!, b.scalar(eps)])])]);
    const xhat = b.op('mul', [b.op('sub', [x!, rmean!]), inv]);
    return [b.op('mul', [g, b.op('mul', [gamma!, inv])]), b.unbroadcast(b.op('mul', [g, xhat]), channels), b.unbroadcast(g, channels)];
  },
});
