// The PEER layer as the language defines it (prelude + interpreter) against a separate,
// straightforward TypeScript PEER forward that scores all N experts by brute force.
import { describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { normalAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { erf } from '../src/ir/ops/elementwise.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize } from '../src/passes/pipeline.js';
import { compileOk } from './helpers.js';

const cfg = { T: 7, d: 6, n: 5, h: 3, k: 2, dk: 4 };
const N = cfg.n * cfg.n;

const program = `
const d = ${cfg.d}
const N = ${N}
const h = ${cfg.h}
const k = ${cfg.k}
const dk = ${cfg.dk}
param Wq: [h, dk, d] = normal(0, 1)
param bn_g: [h*dk] = normal(1, 0.2)
param bn_b: [h*dk] = normal(0, 0.2)
buffer bn_mean: [h*dk] = normal(0, 0.5)
buffer bn_var: [h*dk] = uniform(0.5, 2)
param C1: [sqrt(N), dk/2] = normal(0, 1)
param C2: [sqrt(N), dk/2] = normal(0, 1)
param U: [N, d] = normal(0, 1)
param V: [N, d] = normal(0, 1)
model peer_model(x: [T, d]) -> [T, d] {
  return peer(x, Wq, bn_g, bn_b, bn_mean, bn_var, C1, C2, U, V, k)
}
`;

type W = Record<string, Float64Array>;

/** PEER written out plainly: per token and head, score every expert, keep the top k. */
function handWrittenPeer(x: Float64Array, w: W, training: boolean): Float64Array {
  const { T, d, h, k, dk, n } = cfg;
  const half = dk / 2;
  const q = new Float64Array(T * h * dk);
  for (let t = 0; t < T; t++)
    for (let j = 0; j < h; j++)
      for (let c = 0; c < dk; c++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += w.Wq![(j * dk + c) * d + i]! * x[t * d + i]!;
        q[(t * h + j) * dk + c] = s;
      }
  const C = h * dk;
  for (let ch = 0; ch < C; ch++) {
    let mean = w.bn_mean![ch]!, variance = w.bn_var![ch]!;
    if (training) {
      mean = 0;
      for (let t = 0; t < T; t++) mean += q[t * C + ch]! / T;
      variance = 0;
      for (let t = 0; t < T; t++) variance += (q[t * C + ch]! - mean) ** 2 / T;
    }
    for (let t = 0; t < T; t++) q[t * C + ch] = ((q[t * C + ch]! - mean) / Math.sqrt(variance + 1e-5)) * w.bn_g![ch]! + w.bn_b![ch]!;
  }
  const out = new Float64Array(T * d);
  for (let t = 0; t < T; t++)
    for (let j = 0; j < h; j++) {
      const qv = q.subarray((t * h + j) * dk, (t * h + j + 1) * dk);
      const score = (e: number) => {
        const a = Math.floor(e / n), b = e % n;
        let s = 0;
        for (let c = 0; c < half; c++) s += w.C1![a * half + c]! * qv[c]! + w.C2![b * half + c]! * qv[half + c]!;
        return s;
      };
      const all = Array.from({ length: n * n }, (_, e) => ({ e, s: score(e) }));
      all.sort((p, r) => r.s - p.s || p.e - r.e);
      const top = all.slice(0, k);
      const mx = Math.max(...top.map((p) => p.s));
      const z = top.reduce((acc, p) => acc + Math.exp(p.s - mx), 0);
      for (const p of top) {
        const g = Math.exp(p.s - mx) / z;
        let u = 0;
        for (let i = 0; i < d; i++) u += w.U![p.e * d + i]! * x[t * d + i]!;
        const act = 0.5 * u * (1 + erf(u / Math.SQRT2));
        for (let i = 0; i < d; i++) out[t * d + i] = out[t * d + i]! + g * act * w.V![p.e * d + i]!;
      }
    }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('PEER layer against a hand-written forward', () => {
  const m = compileOk(program);
  for (const seed of [1, 2, 3])
    for (const training of [false, true])
      it(`seed ${seed}, ${training ? 'training (batch BN statistics)' : 'evaluation (running BN statistics)'}`, () => {
        const weights = seededWeights(m, seed);
        const w: W = Object.fromEntries([...weights].map(([k, t]) => [k, t.data]));
        const x = Float64Array.from({ length: cfg.T * cfg.d }, (_, i) => normalAt(seed * 7919, i));
        const ours = interpret(m, new Map([['x', new Tensor('f32', [cfg.T, cfg.d], x)]]), weights, { training }).outputs[0]!;
        const theirs = handWrittenPeer(x, w, training);
        expect(maxAbsDiff(ours.data, theirs)).toBeLessThan(1e-12);
        const optimized = interpret(optimize(m), new Map([['x', new Tensor('f32', [cfg.T, cfg.d], x)]]), weights, { training }).outputs[0]!;
        expect(maxAbsDiff(optimized.data, theirs)).toBeLessThan(1e-12);
      });
});

describe('k = 1 with N = h experts is a dense MLP with h hidden units', () => {
  const d = 5, h = 4;
  const m = compileOk(`
const d = ${d}
const h = ${h}
param Wq: [h, 2, d] = zeros()
param C1: [2, 1] = zeros()
param C2: [2, 1] = zeros()
param U: [h, d] = normal(0, 1)
param V: [h, d] = normal(0, 1)
model m(x: [T, d]) -> [T, d] {
  (s, idx) = product_topk(einsum("td,hcd->thc", x, Wq), C1, C2, 1)
  return experts_relu(x, U, V, idx, softmax(s))
}
`);
  it('head j retrieves expert j, and the sum over heads is relu(x U^T) V', () => {
    const weights = seededWeights(m, 5);
    // Sub-keys +1/-1; head j's query signs select (a, b) = (j / 2, j % 2), so expert j = 2a + b.
    weights.set('C1', new Tensor('f32', [2, 1], Float64Array.of(1, -1)));
    weights.set('C2', new Tensor('f32', [2, 1], Float64Array.of(1, -1)));
    const wq = new Float64Array(h * 2 * d);
    for (let j = 0; j < h; j++) {
      wq[(j * 2 + 0) * d] = j >> 1 ? -10 : 10;
      wq[(j * 2 + 1) * d] = j & 1 ? -10 : 10;
    }
    weights.set('Wq', new Tensor('f32', [h, 2, d], wq));
    const T = 6;
    const x = Float64Array.from({ length: T * d }, (_, i) => (i % d === 0 ? 1 : normalAt(99, i)));
    const y = interpret(m, new Map([['x', new Tensor('f32', [T, d], x)]]), weights).outputs[0]!;
    const U = weights.get('U')!.data, V = weights.get('V')!.data;
    const dense = new Float64Array(T * d);
    for (let t = 0; t < T; t++)
      for (let j = 0; j < h; j++) {
        let a = 0;
        for (let i = 0; i < d; i++) a += U[j * d + i]! * x[t * d + i]!;
        for (let i = 0; i < d; i++) dense[t * d + i] = dense[t * d + i]! + Math.max(a, 0) * V[j * d + i]!;
      }
    expect(maxAbsDiff(y.data, dense)).toBeLessThan(1e-12);
  });
});
