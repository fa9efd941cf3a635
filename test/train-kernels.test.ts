// The training program on gpu.js backends against the float64 interpreter: loss, every dense
// gradient, sparse (row id, row) gradients and running statistics, for whole models.
import { describe, expect, it } from 'vitest';
import { compileTraining, targetsShape } from '../src/autodiff/differentiate.js';
import { bindInputDims, entryFunction, interpret } from '../src/interp/interpreter.js';
import { uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights } from '../src/io/tensors.js';
import { Executor } from '../runtime/executor.js';
import { unavailableReason, type BackendName } from '../runtime/backends/info.js';
import { bucketByRow, sumFactoredRowsOnHost, sumRowsOnHost } from '../runtime/backends/row-sums.js';
import { outerRows } from '../runtime/backends/backend.js';
import { KernelRowSummer } from '../runtime/backends/gpujs/row-sums.js';
import { BACKENDS } from '../runtime/backends/info.js';
import { gpuDevice } from '../runtime/backends/webgpu/device.js';
import { compileOk, sampleInputs, smallExample } from './helpers.js';

const BACKENDS_UNDER_TEST: BackendName[] = ['cpu', 'webasm', 'webasm-threads', 'wasm-simd', 'headlessgl', 'webgpu'];
// peerc's webgpu needs an adapter, which only asking for a device tells (Dawn on a Vulkan driver in Node).
const webgpuMissing = await gpuDevice().then(() => null, (e: Error) => e.message);
const missing = (b: BackendName) => (b === 'webgpu' ? webgpuMissing : unavailableReason(b));

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / Math.max(den, 1e-6);
}

const MODELS: [string, string][] = [
  ['peer_paper.peer (PEER, BatchNorm queries)', smallExample('peer_paper.peer')],
  ['recall.peer (PKM, per-head keys, @sparse @lr)', smallExample('recall.peer').replace('const K = 4096', 'const K = 64')],
  ['a PEER-pytorch-style variant (sub-key top-4, final top-3, sigmoid gate)', `
const d = 8
param Wq: [2, 4, d] = normal(0, 1/sqrt(d))
param C1: [6, 2] = normal(0, 1)
param C2: [6, 2] = normal(0, 1)
param U: [36, d] = normal(0, 1/sqrt(d)) @sparse
param V: [36, d] = normal(0, 1) @sparse
param Wout: [d, 5] = normal(0, 1)
model f(x: [T, d]) -> [T, 5] {
  q = einsum("td,hcd->thc", x, Wq)
  (v1, a) = topk(einsum("thc,nc->thn", q[..., 0:2], C1), 4)
  (v2, b) = topk(einsum("thc,nc->thn", q[..., 2:4], C2), 4)
  (s, which) = topk(reshape(v1[..., None] + v2[..., None, :], [T, 2, 16]), 3)
  idx = take_along(reshape(a[..., None] * 6 + b[..., None, :], [T, 2, 16]), which)
  h = sigmoid(s) * gelu(einsum("thkd,td->thk", gather(U, idx), x))
  return matmul(x + einsum("thk,thkd->td", h, gather(V, idx)), Wout)
}
`],
  ['stacked_lm.peer (two PEER blocks, tables stacked [L, N, d] and used as U[i])', smallExample('stacked_lm.peer').replace('const d = 64', 'const d = 16').replace('const N = 32^2', 'const N = 8^2')],
  ['memory_layers.peer (one value table shared by two memory layers, biased queries, SwiLU output)', smallExample('memory_layers.peer').replace('const d = 128', 'const d = 16').replace('const dk = 64', 'const dk = 8').replace('const k = 16', 'const k = 4')],
  ['byte_lm.peer (attention, rmsnorm, dense and PEER feed-forward)', smallExample('byte_lm.peer').replace('const d = 128', 'const d = 32').replace('const N = 32^2', 'const N = 16^2')],
];

describe.each(BACKENDS_UNDER_TEST)('training program on %s matches the float64 interpreter', (backend) => {
  const skip = missing(backend);
  for (const [name, src] of MODELS)
    it.skipIf(!!skip)(name, async () => {
      const m = compileOk(src);
      const prog = compileTraining(m, { gradients: true });
      const inputs = sampleInputs(m, 3);
      if (prog.targets) {
        const { shape, classes } = targetsShape(prog.targets, bindInputDims(entryFunction(m), inputs));
        inputs.set(prog.targets.name, new Tensor('index', shape, Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.floor(uniformAt(4, i, 0) * classes))));
      }
      const w = seededWeights(m, 2);
      const ref = interpret(prog.module, inputs, w, { training: true }).outputs;
      const ex = new Executor(prog.module, w, backend, { training: true, paramsAsArguments: true });
      try {
        const got = (await ex.forward(inputs)).outputs;
        expect(Math.abs(got[0]!.data[0]! - ref[0]!.data[0]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref[0]!.data[0]!)));
        for (const d of [...prog.layout.dense, ...prog.layout.buffers])
          expect(relErr(got[d.output]!.data, ref[d.output]!.data), `${'param' in d ? d.param : d.name}`).toBeLessThan(2e-3);
        for (const s of prog.layout.sparse) {
          expect(Array.from(got[s.indices]!.data)).toEqual(Array.from(ref[s.indices]!.data));
          expect(relErr(got[s.rows]!.data, ref[s.rows]!.data), s.param).toBeLessThan(2e-3);
        }
        expect(prog.layout.dense.length).toBeGreaterThan(0);
      } finally {
        ex.destroy();
      }
    });
});

describe('sparse gradient rows are summed per touched row without atomics', () => {
  it('buckets ids into a CSR (sorted rows, slots in order)', () => {
    const b = bucketByRow([5, 2, 5, 9, 2, 5]);
    expect(Array.from(b.rows)).toEqual([2, 5, 9]);
    expect(Array.from(b.length.subarray(0, 3))).toEqual([2, 3, 1]);
    expect(Array.from(b.order)).toEqual([1, 4, 0, 2, 5, 3]);
    expect(b.longest).toBe(3);
  });
  it('orders slots by (row, slot) as a comparison sort would, for ids needing one to three radix passes', () => {
    for (const [range, count] of [[7, 50], [2000, 3000], [2 ** 20, 16384], [2 ** 30, 5000]] as const) {
      const ids = Array.from({ length: count }, (_, i) => Math.floor(uniformAt(8, i, range) ** 2 * range));
      const b = bucketByRow(ids);
      const want = Array.from({ length: count }, (_, i) => i).sort((x, y) => ids[x]! - ids[y]! || x - y);
      expect(Array.from(b.order), `ids below ${range}`).toEqual(want);
      expect(Array.from(b.rows)).toEqual([...new Set(want.map((i) => ids[i]!))]);
      const lengths = Array.from(b.length.subarray(0, b.rows.length));
      expect(lengths.reduce((a, x) => a + x, 0)).toBe(count);
      expect(Array.from(b.start.subarray(0, b.rows.length))).toEqual(lengths.map((_, r) => lengths.slice(0, r).reduce((a, x) => a + x, 0)));
      expect(b.longest).toBe(Math.max(...lengths));
    }
  });
  it('buckets the same ids again from its memo, and an array changed in place anew', () => {
    const ids = Int32Array.from([7, 3, 7, 1, 3]);
    const first = bucketByRow(ids);
    const again = bucketByRow(Float32Array.from(ids));
    expect(Array.from(again.rows)).toEqual([1, 3, 7]);
    expect(Array.from(again.order)).toEqual(Array.from(first.order));
    again.rows[0] = 99; // callers own rows: the memo's copy stays right
    expect(Array.from(bucketByRow(ids).rows)).toEqual([1, 3, 7]);
    ids[3] = 9; // the same array, other values
    const changed = bucketByRow(ids);
    expect(Array.from(changed.rows)).toEqual([3, 7, 9]);
    expect(Array.from(changed.order)).toEqual([1, 4, 0, 2, 3]);
    expect(Array.from(bucketByRow([NaN, 2]).order)).toEqual(Array.from(bucketByRow([NaN, 2]).order));
  });
  it('sums factored rows (coef x a token\'s vector) bit for bit as building them and summing would', () => {
    const T = 40, perToken = 12, rowSize = 9, slots = T * perToken;
    const ids = Float32Array.from({ length: slots }, (_, i) => Math.floor(uniformAt(5, i, 0) ** 2 * 200));
    const f = { coef: Float32Array.from({ length: slots }, (_, i) => uniformAt(6, i, 0) - 0.5), vec: Float32Array.from({ length: T * rowSize }, (_, i) => uniformAt(7, i, 0) - 0.5) };
    const got = sumFactoredRowsOnHost(ids, f, rowSize);
    const want = sumRowsOnHost(ids, outerRows(f, rowSize), rowSize);
    expect(Array.from(got.rows)).toEqual(Array.from(want.rows));
    expect(Array.from(got.values!)).toEqual(Array.from(want.values!));
  });
  for (const backend of ['cpu', 'webasm', 'headlessgl'] as BackendName[])
    it.skipIf(!!unavailableReason(backend))(`the row-sum kernel on ${backend} equals host sums`, async () => {
      const m = 300, rowSize = 7;
      const ids = Float32Array.from({ length: m }, (_, i) => Math.floor(uniformAt(1, i, 0) ** 3 * 1000));
      const grads = Float32Array.from({ length: m * rowSize }, (_, i) => uniformAt(2, i, 0) - 0.5);
      const summer = new KernelRowSummer(BACKENDS[backend]);
      try {
        const got = await summer.sum(ids, grads, rowSize);
        const want = sumRowsOnHost(ids, grads, rowSize);
        expect(Array.from(got.rows)).toEqual(Array.from(want.rows));
        expect(relErr(got.values!, want.values!)).toBeLessThan(1e-6);
        expect(new Set(Array.from(ids)).size).toBe(got.rows.length);
      } finally {
        summer.destroy();
      }
    });
  it.skipIf(!!unavailableReason('wasm-simd'))('every backend sums rows as the host does; wasm-simd on 2 threads also returns their sum of squares (the gradient norm)', async () => {
    const m = 3000, rowSize = 8;
    const ids = Float32Array.from({ length: m }, (_, i) => Math.floor(uniformAt(3, i, 0) ** 2 * 500));
    const grads = Float32Array.from({ length: m * rowSize }, (_, i) => uniformAt(4, i, 0) - 0.5);
    const want = sumRowsOnHost(ids, grads, rowSize);
    let squares = 0;
    for (const v of want.values!) squares += v * v;
    const tiny = compileOk('param W: [8, 8] = normal(0, 1)\nmodel f(x: [T, 8]) -> [T, 8] {\n  return matmul(x, W)\n}\n');
    for (const [backend, threads] of [['wasm-simd', 2], ['wasm-simd', 1], ['cpu', 1], ['plain-js', 1]] as const) {
      const ex = new Executor(tiny, seededWeights(tiny, 1), backend, { threads });
      try {
        const got = await ex.sumRows(ids, grads, rowSize, 'T');
        expect(Array.from(got.rows), backend).toEqual(Array.from(want.rows));
        expect(relErr(got.values!, want.values!), backend).toBeLessThan(1e-6);
        if (backend === 'wasm-simd' && threads === 2) expect(Math.abs(got.sumSquares! - squares) / squares).toBeLessThan(1e-12);
      } finally {
        ex.destroy();
      }
    }
  });
});

describe.each(['cpu', 'wasm-simd', 'plain-js'] as BackendName[])('finite differences of the float32 training program on %s (looser)', (backend) => {
  // A model without top-k, so a perturbation cannot change a selection (the retrieval is covered
  // by float64 finite differences and by float32-vs-float64 gradients above).
  const SMOOTH = `
const V = 16
const d = 8
param E: [V, d] = normal(0, 1)
param g: [d] = normal(1, 0.2)
param b: [d] = normal(0, 0.2)
param W1: [d, 32] = normal(0, 0.3)
param W2: [32, d] = normal(0, 0.3)
param bg: [d] = ones()
param bb: [d] = zeros()
buffer bm: [d] = zeros()
buffer bv: [d] = ones()
model smooth(tokens: index[T]) -> [T, V] {
  x = layernorm(embedding(E, tokens), g, b)
  y = batchnorm(x + dense_ffw(x, W1, W2), bg, bb, bm, bv)
  return einsum("td,vd->tv", y, E)
}
`;
  it.skipIf(!!unavailableReason(backend))('the largest gradient of every parameter', async () => {
    const m = compileOk(SMOOTH);
    const prog = compileTraining(m, { gradients: true });
    const inputs = sampleInputs(m, 5);
    const fn = [...prog.module.functions.values()][0]!;
    const tshape = fn.graph.node(fn.inputs[fn.inputs.length - 1]!).types[0]!.shape.map((d) => d.evaluate(() => inputs.values().next().value!.shape[0])!);
    inputs.set(prog.targets!.name, new Tensor('index', tshape, Float64Array.from({ length: tshape.reduce((a, b) => a * b, 1) }, (_, i) => i % prog.targets!.classes.value!)));
    const w = new Map([...seededWeights(m, 6)].map(([k, t]) => [k, Float32Array.from(t.data)]));
    const grads = prog.layout.dense.length + prog.layout.sparse.length;
    expect(grads).toBe(7);
    const ex = new Executor(prog.module, w, backend, { training: true, paramsAsArguments: true });
    try {
      const outs = (await ex.forward(inputs)).outputs;
      const loss = async () => (await ex.forward(inputs)).outputs[0]!.data[0]!;
      let checked = 0;
      for (const d of prog.layout.dense) {
        const grad = outs[d.output]!.data;
        const arr = w.get(d.param)!;
        const c = [...grad.keys()].sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!))[0]!;
        const eps = 1e-3, orig = arr[c]!;
        arr[c] = orig + eps;
        const up = await loss();
        arr[c] = orig - eps;
        const down = await loss();
        arr[c] = orig;
        const numeric = (up - down) / (2 * eps);
        expect(Math.abs(numeric - grad[c]!), `${d.param}[${c}]: analytic ${grad[c]} numeric ${numeric}`).toBeLessThan(0.05 * Math.abs(grad[c]!) + 1e-3);
        checked++;
      }
      expect(checked).toBeGreaterThanOrEqual(6);
    } finally {
      ex.destroy();
    }
  });
});
