// Product keys of arity 3 fused end to end: the first pair is product_retrieve, the third factor
// product_extend (fuse-retrieval-extend), so no [.., k, k] candidate tensor is built for either
// combination. Checked against the unfused ops in float64 (values, ids, ties), on every backend
// (identical expert ids), and in training (gradients equal to the unfused program's, and to
// finite differences).
import { describe, expect, it } from 'vitest';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { interpret } from '../src/interp/interpreter.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize } from '../src/passes/pipeline.js';
import { unfusedPatterns } from '../src/passes/fusion-notes.js';
import { printModule } from '../src/ir/print.js';
import { unavailableReason, type BackendName } from '../runtime/backends/info.js';
import { Executor } from '../runtime/executor.js';
import { batch, checkGradients, denseGradients, weights } from './gradient-check.js';
import { compileOk } from './helpers.js';

/** pk_arity3.peer's retrieval with a chosen gate, returning the ids beside the weights. */
const program = (gate: string, n = 8, k = 4) => `const d = 12
const n = ${n}
const h = 2
const k = ${k}
const dk = 6
param Wq: [h, dk, d] = normal(0, 1/sqrt(d))
param C1: [n, dk/3] = normal(0, 1)
param C2: [n, dk/3] = normal(0, 1)
param C3: [n, dk/3] = normal(0, 1)
param U: [n^3, d] = normal(0, 1/sqrt(d)) @sparse
param V: [n^3, d] = normal(0, 1/sqrt(h*k)) @sparse
model pk3(x: [T, d]) -> ([T, d], index[T, h, k]) {
  q = einsum("td,hcd->thc", x, Wq)
  (v1, a) = topk(einsum("thc,nc->thn", q[..., 0:dk/3], C1), k)
  (v2, b) = topk(einsum("thc,nc->thn", q[..., dk/3:2*dk/3], C2), k)
  (v3, c) = topk(einsum("thc,nc->thn", q[..., 2*dk/3:dk], C3), k)
  (v12, w12) = topk(reshape(v1[..., None] + v2[..., None, :], [T, h, k*k]), k)
  i12 = take_along(reshape(a[..., None] * n + b[..., None, :], [T, h, k*k]), w12)
  (s, w) = topk(reshape(v12[..., None] + v3[..., None, :], [T, h, k*k]), k)
  idx = take_along(reshape(i12[..., None] * n + c[..., None, :], [T, h, k*k]), w)
  return experts_gelu(x, U, V, idx, ${gate}), idx
}
`;
const GATES = ['softmax(s)', 'sigmoid(s)', 'relu(s)', 's'];
const BACKENDS = (['cpu', 'webasm', 'wasm-simd', 'plain-js', 'headlessgl'] as BackendName[]).filter((b) => !unavailableReason(b));
const xOf = (tokens: number, f: (i: number) => number) => new Map([['x', new Tensor('f32', [tokens, 12], Float64Array.from({ length: tokens * 12 }, (_, i) => f(i)))]]);

describe('arity-3 product keys, fused', () => {
  it('fuse to product_retrieve then product_extend, with no unfused retrieval left (the example too)', () => {
    for (const gate of GATES) {
      const text = printModule(optimize(compileOk(program(gate)), { lowering: 'fused' }));
      expect(text).toMatch(/product_retrieve\(.*gate="none"/);
      expect(text).toMatch(new RegExp(`product_extend\\(.*gate="${gate === 's' ? 'none' : gate.replace('(s)', '')}"`));
      expect(text).not.toMatch(/= topk\(/);
    }
    const example = optimize(compileOk(program('softmax(s)')), { lowering: 'fused' });
    expect(unfusedPatterns(example)).toEqual([]);
  });

  it.each(GATES)('mean the same as the primitive ops in float64 (%s), ties included', (gate) => {
    const m = compileOk(program(gate));
    const w = seededWeights(m, 3);
    // Whole-number queries and keys make many exact ties among the candidate sums.
    const tied = new Map([...w].map(([k, t]) => [k, k.startsWith('C') || k === 'Wq' ? new Tensor('f32', t.shape, Float64Array.from(t.data, (v) => Math.round(v * 2))) : t]));
    for (const [weights, inputs] of [[w, xOf(5, (i) => Math.sin(i * 1.7))], [tied, xOf(4, (i) => (i % 3) - 1)]] as const) {
      const a = interpret(m, inputs, weights).outputs, b = interpret(optimize(m, { lowering: 'fused' }), inputs, weights).outputs;
      expect([...b[1]!.data]).toEqual([...a[1]!.data]);
      b[0]!.data.forEach((v, i) => expect(Math.abs(v - a[0]!.data[i]!)).toBeLessThan(1e-12));
    }
  });

  it.each(BACKENDS)('%s selects the same experts as the reference and agrees on the output', async (backend) => {
    const m = compileOk(program('softmax(s)'));
    const w = seededWeights(m, 5);
    const inputs = xOf(6, (i) => Math.cos(i * 0.37) * 2);
    const ref = interpret(m, inputs, w).outputs;
    const ex = new Executor(optimize(m, { lowering: 'fused' }), w, backend);
    try {
      const got = (await ex.forward(inputs)).outputs;
      expect([...got[1]!.data]).toEqual([...ref[1]!.data]);
      got[0]!.data.forEach((v, i) => expect(Math.abs(v - ref[0]!.data[i]!), `output ${i}`).toBeLessThan(1e-4));
      expect(ex.kernelSources().join('\n')).not.toMatch(/^\/\/ topk/m);
    } finally {
      ex.destroy();
    }
  });

  it.each(GATES)('train with the gradients of the unfused program (%s)', (gate) => {
    const m = compileOk(program(gate).replace('([T, d], index[T, h, k])', '[T, d]').replace(', idx\n}', '\n}'));
    const fused = compileTraining(m, { gradients: true });
    const plain = compileTraining(m, { gradients: true, fuseRetrieval: false });
    expect(printModule(fused.module)).toMatch(/product_extend/);
    expect(printModule(plain.module)).not.toMatch(/product_extend/);
    const w = weights(m, 2), inputs = batch(m, fused, 2);
    const a = denseGradients(m, fused, interpret(fused.module, inputs, w, { training: true }).outputs);
    const b = denseGradients(m, plain, interpret(plain.module, inputs, w, { training: true }).outputs);
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [name, g] of a) g.forEach((v, i) => expect(Math.abs(v - b.get(name)![i]!), `${name}[${i}]`).toBeLessThan(1e-12 * Math.max(1, Math.abs(v))));
  });

  it('gradients match finite differences through both combinations', () => {
    checkGradients(program('softmax(s)').replace('([T, d], index[T, h, k])', '[T, d]').replace(', idx\n}', '\n}'), { tol: 1e-5 });
  });
});
