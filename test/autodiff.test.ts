// Gradients against central finite differences on the float64 reference interpreter: every
// differentiable op, BatchNorm in training mode, and the whole PEER and PKM layers.
import { describe, expect, it } from 'vitest';
import { compileTraining, type TrainingProgram } from '../src/autodiff/differentiate.js';
import { interpret } from '../src/interp/interpreter.js';
import { normalAt, uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { compileOk } from './helpers.js';
import { batch, checkGradients, denseGradients, weights } from './gradient-check.js';

const head = (body: string, params = '') => `
const d = 4
const C = 3
param W: [d, C] = normal(0, 1)
${params}
model f(x: [T, d]) -> [T, C] {
${body}
}
`;

describe('gradients match finite differences (float64 interpreter)', () => {
  const unary = ['relu', 'gelu', 'gelu_tanh', 'silu', 'sigmoid', 'tanh', 'exp', 'abs'];
  for (const op of unary)
    it(`${op}`, () => checkGradients(head(`  return ${op}(matmul(x, W))`)));
  it('log and sqrt (positive arguments)', () => checkGradients(head(`  y = exp(matmul(x, W))\n  return log(y + 1.0) + sqrt(y)`)));
  it('add, sub, mul, div, pow with broadcasting', () =>
    checkGradients(head(`  y = matmul(x, W)\n  return (y * b - y / (exp(b) + 1.0)) + exp(y) ^ b - b`, 'param b: [C] = normal(0, 1)')));
  it('maximum and minimum', () => checkGradients(head(`  y = matmul(x, W)\n  return maximum(y, b) + minimum(y * 2.0, b)`, 'param b: [C] = normal(0, 1)')));
  it('sum and mean over axes, softmax, log_softmax', () =>
    checkGradients(head(`  y = matmul(x, W)\n  return softmax(y) * sum(y, axis=-1)[:, None] + log_softmax(y * 0.5) + mean(y, axis=0)[None, :]`)));
  it('max over an axis (no ties: the gradient goes to the maximum)', () =>
    checkGradients(head(`  y = matmul(x, W)\n  return y * max(y, axis=-1)[:, None] + max(y, axis=0)[None, :]`)));
  it('max with ties splits the gradient evenly among the maxima (as PyTorch amax)', () => {
    const m = compileOk('param W: [4] = ones()\nmodel f(x: [T, 4]) -> [] {\n  return sum(max(x * W, axis=-1), axis=0)\n}\n');
    const prog = compileTraining(m, { gradients: true });
    const x = new Tensor('f32', [1, 4], Float64Array.of(1, 3, 3, -2));
    const w = new Map([['W', new Tensor('f32', [4], Float64Array.of(1, 1, 1, 1))]]);
    const inputs = new Map([['x', x]]);
    const outs = interpret(prog.module, inputs, w, { training: true }).outputs;
    const g = denseGradients(m, prog, outs).get('W')!;
    // d loss/d W_j = x_j * (share of the max at j): x_1 and x_2 tie at 3, half each.
    expect([...g]).toEqual([0, 1.5, 1.5, 0]);
  });
  it('slices, reshape, new axes, transpose', () =>
    checkGradients(head(`  y = matmul(x, W)\n  z = reshape(y, [T*C])\n  return reshape(z, [T, C]) + transpose(y[:, 1:3][:, None, :] * y[:, 0:2][:, :, None])[:, :, 0] [..., 0:1]`)));
  it('einsum with a letter summed from one operand', () =>
    checkGradients(head(`  return einsum("td,dc->tc", x, W) + einsum("dc->c", W)[None, :]`)));
  it('layernorm and rmsnorm', () =>
    checkGradients(head(`  return layernorm(matmul(x, W), g, b) + rmsnorm(matmul(x, W) * 2.0, g)`, 'param g: [C] = normal(1, 0.3)\nparam b: [C] = normal(0, 0.3)')));
  it('batchnorm in training mode (batch statistics)', () =>
    checkGradients(head(`  return batchnorm(matmul(x, W), g, b, rm, rv)`, 'param g: [C] = normal(1, 0.3)\nparam b: [C] = normal(0, 0.3)\nbuffer rm: [C] = zeros()\nbuffer rv: [C] = ones()')));
  it('topk, take_along and gather (through the selected values)', () =>
    checkGradients(head(`  y = matmul(x, W)\n  (v, i) = topk(y, 2)\n  return embedding(E, i[:, 0]) + take_along(y, i) [:, 0:1] + v[:, 1:2]`, 'param E: [C, C] = normal(0, 1)')));
  it('a scalar loss written in the language', () =>
    checkGradients(`param W: [4, 3] = normal(0, 1)\nmodel f(x: [T, 4]) -> [] {\n  y = tanh(matmul(x, W))\n  return mean(sum(y * y, axis=-1), axis=0)\n}\n`));
});

describe('whole layers', () => {
  const peer = (sparse: string) => `
const d = 8
const N = 16^2
const h = 2
const k = 3
const dk = 6
param Wq: [h, dk, d] = normal(0, 1/sqrt(d))
param bn_g: [h*dk] = normal(1, 0.2)
param bn_b: [h*dk] = normal(0, 0.2)
buffer bn_mean: [h*dk] = zeros()
buffer bn_var: [h*dk] = ones()
param C1: [sqrt(N), dk/2] = normal(0, 1)
param C2: [sqrt(N), dk/2] = normal(0, 1)
param U: [N, d] = normal(0, 1/sqrt(d)) ${sparse}
param V: [N, d] = normal(0, 1) ${sparse}
param Wout: [d, 5] = normal(0, 1)
model f(x: [T, d]) -> [T, 5] {
  return matmul(x + peer(x, Wq, bn_g, bn_b, bn_mean, bn_var, C1, C2, U, V, k), Wout)
}
`;
  it('PEER layer (query BatchNorm, product keys, softmax router, GELU experts), dense tables', () => checkGradients(peer(''), { coords: 6 }));
  it('PEER layer with @sparse expert tables (row-id / row gradients)', () => checkGradients(peer('@sparse'), { coords: 6 }));
  it('the fused retrieval backward equals the decomposed one, and the fusion fires', () => {
    const m = compileOk(peer('@sparse'));
    const fused = compileTraining(m, { gradients: true });
    const plain = compileTraining(m, { gradients: true, fuseRetrieval: false });
    const ops = (p: TrainingProgram) => [...p.module.functions.values()][0]!.graph.nodes.map((n) => n.op);
    expect(ops(fused)).toContain('product_retrieve');
    expect(ops(plain)).not.toContain('product_retrieve');
    const w = weights(m, 4);
    const inputs = batch(m, fused, 4);
    const a = interpret(fused.module, inputs, w, { training: true }).outputs;
    const b = interpret(plain.module, inputs, w, { training: true }).outputs;
    const ga = denseGradients(m, fused, a), gb = denseGradients(m, plain, b);
    expect([...ga.keys()].sort()).toEqual([...gb.keys()].sort());
    for (const [name, x] of ga) x.forEach((v, j) => expect(Math.abs(v - gb.get(name)![j]!), name).toBeLessThan(1e-12));
    // The key tables' gradients come as rows (k per lane), never as dense [T, h, n] scores.
    expect(fused.layout.sparse.map((s) => s.param).sort()).toEqual(['C1', 'C2', 'U', 'V']);
  });
  // PEER-pytorch's settings: a sub-key top-k (product_key_topk = 4) other than the final k = 3,
  // and a gate that is no softmax (sigmoid here): the fused op reads raw scores, the gate stays.
  const pytorchStyle = `
const d = 6
const n = 5
param Wq: [2, 4, d] = normal(0, 1/sqrt(d))
param C1: [n, 2] = normal(0, 1)
param C2: [n, 2] = normal(0, 1)
param U: [n*n, d] = normal(0, 1/sqrt(d)) @sparse
param V: [n*n, d] = normal(0, 1) @sparse
param Wout: [d, 5] = normal(0, 1)
model f(x: [T, d]) -> [T, 5] {
  q = einsum("td,hcd->thc", x, Wq)
  (v1, a) = topk(einsum("thc,nc->thn", q[..., 0:2], C1), 4)
  (v2, b) = topk(einsum("thc,nc->thn", q[..., 2:4], C2), 4)
  (s, which) = topk(reshape(v1[..., None] + v2[..., None, :], [T, 2, 16]), 3)
  idx = take_along(reshape(a[..., None] * n + b[..., None, :], [T, 2, 16]), which)
  h = sigmoid(s) * gelu(einsum("thkd,td->thk", gather(U, idx), x))
  return matmul(x + einsum("thk,thkd->td", h, gather(V, idx)), Wout)
}
`;
  it('sub-key top-k other than k, sigmoid gate: finite differences', () => checkGradients(pytorchStyle, { coords: 6 }));
  it('sub-key top-k other than k, sigmoid gate: the fused backward equals the decomposed one', () => {
    const m = compileOk(pytorchStyle);
    const fused = compileTraining(m, { gradients: true });
    const plain = compileTraining(m, { gradients: true, fuseRetrieval: false });
    expect([...fused.module.functions.values()][0]!.graph.nodes.filter((x) => x.op === 'product_retrieve').map((x) => [x.attrs.k, x.attrs.subk, x.attrs.gate])).toEqual([[3, 4, 'sigmoid']]);
    const w = weights(m, 6);
    const inputs = batch(m, fused, 6);
    const ga = denseGradients(m, fused, interpret(fused.module, inputs, w, { training: true }).outputs);
    const gb = denseGradients(m, plain, interpret(plain.module, inputs, w, { training: true }).outputs);
    expect([...ga.keys()].sort()).toEqual([...gb.keys()].sort());
    for (const [name, x] of ga) x.forEach((v, j) => expect(Math.abs(v - gb.get(name)![j]!), name).toBeLessThan(1e-12));
  });
  const stacked = `
const d = 6
const n = 4
param Wq: [2, 2, 4, d] = normal(0, 1/sqrt(d))
param C1: [2, n, 2] = normal(0, 1)
param C2: [2, n, 2] = normal(0, 1)
param bn_g: [2, 8] = ones()
param bn_b: [2, 8] = zeros()
buffer bn_mean: [2, 8] = zeros()
buffer bn_var: [2, 8] = ones()
param U: [2, n*n, d] = normal(0, 1/sqrt(d)) @sparse
param V: [2, n*n, d] = normal(0, 1) @sparse
param Wout: [d, 5] = normal(0, 1)
layer block(x: [T, d], i: int) -> [T, d] {
  return x + peer(x, Wq[i], bn_g[i], bn_b[i], bn_mean[i], bn_var[i], C1[i], C2[i], U[i], V[i], 3)
}
model f(x: [T, d]) -> [T, 5] {
  return matmul(block(block(x, 0), 1), Wout)
}
`;
  it('stacked tables U: [L, N, d] used as U[i]: sparse row gradients, finite differences', () => {
    const prog = compileTraining(compileOk(stacked), { gradients: true });
    expect(prog.layout.sparse.map((s) => s.param).sort()).toEqual(['U', 'U', 'V', 'V']);
    expect(prog.layout.dense.map((s) => s.param)).not.toContain('U');
    expect(prog.layout.buffers.map((s) => s.name).sort()).toEqual(['bn_mean', 'bn_var']);
    checkGradients(stacked, { coords: 6 });
  });
  it('elementwise fusion of the backward fires and changes no value', () => {
    const m = compileOk(peer('@sparse'));
    const fused = compileTraining(m, { gradients: true });
    const plain = compileTraining(m, { gradients: true, fuseElementwise: false });
    const count = (p: TrainingProgram, op: string) => [...p.module.functions.values()][0]!.graph.nodes.filter((n) => n.op === op).length;
    expect(count(fused, 'elementwise_fused')).toBeGreaterThan(3);
    expect(count(plain, 'elementwise_fused')).toBe(0);
    expect(count(fused, 'mul') + count(fused, 'sub')).toBeLessThan(count(plain, 'mul') + count(plain, 'sub'));
    const w = weights(m, 5);
    const inputs = batch(m, fused, 5);
    const a = interpret(fused.module, inputs, w, { training: true }).outputs;
    const b = interpret(plain.module, inputs, w, { training: true }).outputs;
    expect(a.length).toBe(b.length);
    a.forEach((t, i) => t.data.forEach((v, j) => expect(Math.abs(v - b[i]!.data[j]!)).toBeLessThan(1e-12)));
  });
  it('PKM memory with per-head keys', () =>
    checkGradients(`
const d = 6
const N = 8^2
const h = 2
const k = 3
const dk = 4
param Wq: [h, dk, d] = normal(0, 1/sqrt(d))
param C1: [h, sqrt(N), dk/2] = normal(0, 1)
param C2: [h, sqrt(N), dk/2] = normal(0, 1)
param Vals: [N, d] = normal(0, 1) @sparse @lr(10)
param Wout: [d, 4] = normal(0, 1)
model f(x: [T, d]) -> [T, 4] {
  return matmul(x + pkm(x, Wq, C1, C2, Vals, k), Wout)
}
`, { coords: 6 }));
});
