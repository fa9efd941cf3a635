// The reference interpreter against hand-computed values, one op at a time.
import { describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { Tensor } from '../src/interp/tensor.js';
import { erf } from '../src/ir/ops/elementwise.js';
import { compileOk } from './helpers.js';

/** Runs `model m(...)` with the given inputs and no parameters. */
function run(sig: string, body: string, inputs: Record<string, Tensor>, training = false): Tensor[] {
  const m = compileOk(`model m${sig} {\n${body}\n}\n`);
  return interpret(m, new Map(Object.entries(inputs)), new Map(), { training }).outputs;
}
const f32 = (shape: number[], values: number[]) => new Tensor('f32', shape, Float64Array.from(values));
const idx = (shape: number[], values: number[]) => new Tensor('index', shape, Float64Array.from(values));
const vals = (t: Tensor) => [...t.data];

describe('elementwise', () => {
  const x = f32([2, 2], [1, -2, 3, -4]);
  it('broadcasting arithmetic', () => {
    const [y] = run('(x: [A, B], b: [B]) -> [A, B]', 'return x * b + 1 - x / 2', { x, b: f32([2], [10, 100]) });
    expect(vals(y!)).toEqual([1 * 10 + 1 - 0.5, -200 + 1 + 1, 30 + 1 - 1.5, -400 + 1 + 2]);
  });
  it('power and negation', () => {
    expect(vals(run('(x: [A, B]) -> [A, B]', 'return -x ^ 2', { x })[0]!)).toEqual([-1, -4, -9, -16]);
  });
  it('activations', () => {
    const [r, s, g, si, t] = ['relu', 'sigmoid', 'gelu', 'silu', 'tanh'].map((f) => vals(run('(x: [A, B]) -> [A, B]', `return ${f}(x)`, { x })[0]!));
    expect(r).toEqual([1, 0, 3, 0]);
    expect(s![0]).toBeCloseTo(1 / (1 + Math.exp(-1)), 15);
    expect(g![0]).toBeCloseTo(0.8413447460685429, 14); // 1 * Phi(1)
    expect(g![1]).toBeCloseTo(-2 * 0.022750131948179195, 14);
    expect(si![2]).toBeCloseTo(3 / (1 + Math.exp(-3)), 14);
    expect(t![3]).toBeCloseTo(Math.tanh(-4), 15);
  });
  it('erf matches tabulated values', () => {
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 15);
    expect(erf(2)).toBeCloseTo(0.9953222650189527, 15);
    expect(erf(-3)).toBeCloseTo(-0.9999779095030014, 15);
  });
  it('exp, log, sqrt with constants', () => {
    const [y] = run('(x: [A]) -> [A]', 'return log(exp(x)) + sqrt(x * x) / sqrt(4)', { x: f32([2], [2, -3]) });
    expect(vals(y!)).toEqual([2 + 1, -3 + 1.5]);
  });
});

describe('contractions and reductions', () => {
  it('einsum matrix product and transpose', () => {
    const a = f32([2, 3], [1, 2, 3, 4, 5, 6]);
    const b = f32([3, 2], [1, 0, 0, 1, 1, 1]);
    expect(vals(run('(a: [M, K], b: [K, N]) -> [M, N]', 'return einsum("mk,kn->mn", a, b)', { a, b })[0]!)).toEqual([4, 5, 10, 11]);
    expect(vals(run('(a: [M, K], b: [K, N]) -> [M, N]', 'return matmul(a, b)', { a, b })[0]!)).toEqual([4, 5, 10, 11]);
    expect(vals(run('(a: [M, K]) -> [K, M]', 'return transpose(a)', { a })[0]!)).toEqual([1, 4, 2, 5, 3, 6]);
  });
  it('sum, mean, max over an axis', () => {
    const x = f32([2, 3], [1, 5, 3, 4, 2, 6]);
    expect(vals(run('(x: [A, B]) -> [A]', 'return sum(x)', { x })[0]!)).toEqual([9, 12]);
    expect(vals(run('(x: [A, B]) -> [B]', 'return mean(x, axis=0)', { x })[0]!)).toEqual([2.5, 3.5, 4.5]);
    expect(vals(run('(x: [A, B]) -> [A]', 'return max(x, -1)', { x })[0]!)).toEqual([5, 6]);
  });
  it('softmax and log_softmax', () => {
    const [p] = run('(x: [A]) -> [A]', 'return softmax(x)', { x: f32([3], [0, Math.log(2), Math.log(5)]) });
    expect(vals(p!).map((v) => v * 8)).toEqual([1, 2, 5].map((v) => expect.closeTo(v, 14)));
    const [l] = run('(x: [A]) -> [A]', 'return log_softmax(x)', { x: f32([2], [1000, 1000]) });
    expect(vals(l!)).toEqual([-Math.LN2, -Math.LN2]);
  });
});

describe('selection and gathers', () => {
  it('topk: largest first, ties to the lower index', () => {
    const [v, i] = run('(x: [A, B]) -> ([A, 3], index[A, 3])', '(v, i) = topk(x, 3)\nreturn v, i', {
      x: f32([2, 5], [1, 7, 7, 3, 7, 0, 0, 0, 0, 1]),
    });
    expect(vals(v!)).toEqual([7, 7, 7, 1, 0, 0]);
    expect(vals(i!)).toEqual([1, 2, 4, 4, 0, 1]);
  });
  it('gather rows, take_along, index arithmetic', () => {
    const table = f32([3, 2], [10, 11, 20, 21, 30, 31]);
    const [g] = run('(t: [R, C], i: index[A, B]) -> [A, B, C]', 'return gather(t, i)', { t: table, i: idx([2, 2], [2, 0, 1, 1]) });
    expect(vals(g!)).toEqual([30, 31, 10, 11, 20, 21, 20, 21]);
    const [ta] = run('(x: [A, B], i: index[A, C]) -> [A, C]', 'return take_along(x, i)', { x: f32([2, 3], [1, 2, 3, 4, 5, 6]), i: idx([2, 2], [2, 0, 1, 1]) });
    expect(vals(ta!)).toEqual([3, 1, 5, 5]);
    const [p] = run('(a: index[A], b: index[A]) -> index[A]', 'return a * 4 + b - b / 2 + b % 2', { a: idx([3], [1, 2, 3]), b: idx([3], [3, 2, 1]) });
    expect(vals(p!)).toEqual([4 + 3 - 1 + 1, 8 + 2 - 1 + 0, 12 + 1 - 0 + 1]);
  });
  it('gather out of range is a located runtime error', () => {
    expect(() => run('(t: [R, C], i: index[A]) -> [A, C]', 'return gather(t, i)', { t: f32([2, 1], [1, 2]), i: idx([1], [5]) })).toThrow(/index 5 is out of range for 2 rows/);
  });
  it('slices, new axes, reshape, flatten, iota', () => {
    const x = f32([2, 4], [0, 1, 2, 3, 4, 5, 6, 7]);
    expect(vals(run('(x: [A, B]) -> [A, 2]', 'return x[:, 1:3]', { x })[0]!)).toEqual([1, 2, 5, 6]);
    expect(vals(run('(x: [A, 4]) -> [A]', 'return x[:, -1]', { x })[0]!)).toEqual([3, 7]);
    expect(() => run('(x: [A, B]) -> [A]', 'return x[:, -1]', { x })).toThrow(/negative index on symbolic axis B/);
    expect(run('(x: [A, B]) -> [A, 1, B]', 'return x[:, None]', { x })[0]!.shape).toEqual([2, 1, 4]);
    expect(vals(run('(x: [A, B]) -> [B, A]', 'return reshape(x, [B, A])', { x })[0]!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(run('(x: [A, B]) -> [A*B]', 'return flatten(x, 0)', { x })[0]!.shape).toEqual([8]);
    expect(vals(run('(x: [A, B]) -> [B]', 'return float(iota(B)) * 2', { x })[0]!)).toEqual([0, 2, 4, 6]);
  });
  it('causal mask', () => {
    const [m] = run('(x: [S]) -> [S, S]', 'return causal_mask(S)', { x: f32([2], [0, 0]) });
    expect(vals(m!)).toEqual([0, -1e9, 0, 0]);
  });
});

describe('normalisations', () => {
  const x = f32([2, 2], [1, 3, 2, 6]);
  const ones = f32([2], [1, 1]), zeros = f32([2], [0, 0]);
  it('layernorm and rmsnorm over the last axis', () => {
    const [ln] = run('(x: [A, C], g: [C], b: [C]) -> [A, C]', 'return layernorm(x, g, b, eps=0)', { x, g: ones, b: zeros });
    expect(vals(ln!)).toEqual([-1, 1, -1, 1]);
    const [rms] = run('(x: [A, C], g: [C]) -> [A, C]', 'return rmsnorm(x, g, eps=0)', { x, g: f32([2], [1, 2]) });
    expect(vals(rms!)[0]).toBeCloseTo(1 / Math.sqrt(5), 15);
    expect(vals(rms!)[3]).toBeCloseTo((2 * 6) / Math.sqrt(20), 15);
  });
  it('batchnorm: running statistics in eval mode, batch statistics in training', () => {
    const sig = '(x: [A, C], g: [C], b: [C], m: [C], v: [C]) -> [A, C]';
    const body = 'return batchnorm(x, g, b, m, v, eps=0)';
    const inputs = { x, g: ones, b: zeros, m: f32([2], [1, 1]), v: f32([2], [4, 4]) };
    expect(vals(run(sig, body, inputs)[0]!)).toEqual([0, 1, 0.5, 2.5]);
    // batch means [1.5, 4.5], biased variances [0.25, 2.25]
    expect(vals(run(sig, body, inputs, true)[0]!)).toEqual([-1, -1, 1, 1]);
  });
  it('batchnorm in training reports running-statistic updates for buffers', () => {
    const m = compileOk(`const c = 2\nbuffer rm: [c] = zeros()\nbuffer rv: [c] = ones()\nparam g: [c] = ones()\nparam b: [c] = zeros()\nmodel f(x: [A, c]) -> [A, c] { return batchnorm(x, g, b, rm, rv, momentum=0.5) }\n`);
    const w = new Map([['rm', f32([2], [0, 0])], ['rv', f32([2], [1, 1])], ['g', f32([2], [1, 1])], ['b', f32([2], [0, 0])]]);
    const r = interpret(m, new Map([['x', x]]), w, { training: true });
    expect(vals(r.bufferUpdates.get('rm')!)).toEqual([0.75, 2.25]);
    expect(vals(r.bufferUpdates.get('rv')!)).toEqual([0.5 + 0.5 * 0.5, 0.5 + 0.5 * 4.5]); // unbiased: 0.25*2, 2.25*2
  });
});
