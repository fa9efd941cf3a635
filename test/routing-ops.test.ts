// The ops routing rules are written with: comparisons, where, minimum/maximum/clamp with
// constants, cumsum, concat, sort. Float64 meaning by hand, gradients by finite differences
// (test/autodiff.test.ts's method), kernels against the reference on every backend, and the
// routing rules they exist for: top-p over the selected experts, a different k per head,
// capped gates, all on a PEER layer whose retrieval still fuses.
import { afterAll, describe, expect, it } from 'vitest';
import { compileTraining, targetsShape } from '../src/autodiff/differentiate.js';
import { bindInputDims, entryFunction, interpret } from '../src/interp/interpreter.js';
import { uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize } from '../src/passes/pipeline.js';
import { unfusedPatterns } from '../src/passes/fusion-notes.js';
import { unavailableReason, type BackendName } from '../runtime/backends/info.js';
import { Executor } from '../runtime/executor.js';
import { compileOk, diagnose, sampleInputs } from './helpers.js';

const f32 = (shape: number[], values: number[]) => new Tensor('f32', shape, Float64Array.from(values));
const run = (sig: string, body: string, inputs: Record<string, Tensor>) =>
  interpret(compileOk(`model m${sig} {\n${body}\n}\n`), new Map(Object.entries(inputs)), new Map()).outputs.map((t) => [...t.data]);

describe('meaning (float64, by hand)', () => {
  const x = f32([2, 3], [1, 5, 3, 4, 2, 6]);
  it('comparisons give 0/1 masks, with constants on either side', () => {
    expect(run('(x: [A, B]) -> [A, B]', 'return greater(x, 3.0) + 10.0 * less_equal(2.0, x) + 100.0 * equal(x, x[:, 0:1])', { x })[0]).toEqual([100, 11, 10, 111, 10, 11]);
  });
  it('where picks per element, broadcasting the mask', () => {
    expect(run('(x: [A, B]) -> [A, B]', 'return where(greater(x, 3.0), x, -1.0)', { x })[0]).toEqual([-1, 5, -1, 4, -1, 6]);
  });
  it('minimum, maximum and clamp with constants', () => {
    expect(run('(x: [A, B]) -> [A, B]', 'return clamp(x, 2.0, 4.5) + minimum(x, 1.5) * 0.0 + maximum(0.0, x) * 0.0', { x })[0]).toEqual([2, 4.5, 3, 4, 2, 4.5]);
  });
  it('cumsum forwards and in reverse, on any axis', () => {
    const [a, b, c] = run('(x: [A, B]) -> ([A, B], [A, B], [A, B])', 'return cumsum(x), cumsum(x, reverse=1), cumsum(x, axis=0)', { x });
    expect(a).toEqual([1, 6, 9, 4, 6, 12]);
    expect(b).toEqual([9, 8, 3, 12, 8, 6]);
    expect(c).toEqual([1, 5, 3, 5, 7, 9]);
  });
  it('concat along the last and the first axis', () => {
    const [a, b] = run('(x: [2, 3]) -> ([2, 4], [4, 3])', 'return concat(x, x[:, 0:1]), concat(x, x, axis=0)', { x });
    expect(a).toEqual([1, 5, 3, 1, 4, 2, 6, 4]);
    expect(b).toEqual([1, 5, 3, 4, 2, 6, 1, 5, 3, 4, 2, 6]);
  });
  it('sort: descending values and their indices, ties to the lower index', () => {
    const [v, i] = run('(x: [A, 4]) -> ([A, 4], index[A, 4])', 'return sort(x)', { x: f32([1, 4], [2, 7, 2, 9]) });
    expect(v).toEqual([9, 7, 2, 2]);
    expect(i).toEqual([3, 1, 0, 2]);
  });
  it('mistakes are located errors', () => {
    expect(diagnose('model m(x: [A, B]) -> [A, B] {\n  return where(x > 1, x, x)\n}\n')).toMatch(/error PEER01/); // no comparison operators: use greater()
    expect(diagnose('model m(x: [A, B]) -> [A, B] {\n  return concat(x, x)\n}\n')).toMatch(/concat needs the lengths of axis 1 to be known numbers, not B and B/);
    expect(diagnose('model m(x: [A, B]) -> ([A, B], index[A, B]) {\n  return sort(x)\n}\n')).toMatch(/sort needs the last axis to have a known length, not B/);
    expect(diagnose('model m(x: index[A]) -> index[A] {\n  return where(x, x, x)\n}\n')).toMatch(/'where' condition expects an f32 mask/);
    expect(diagnose('model m(x: [A]) -> [A] {\n  return where(x, 1.0, 0.0)\n}\n')).toMatch(/the arguments of where must be at least one tensor/);
  });
});

/** Finite differences of a tiny classifier's loss through the given body (y = matmul(x, W)). */
function checkGradients(body: string): void {
  const m = compileOk(`const d = 4\nconst C = 3\nparam W: [d, C] = normal(0, 1)\nparam b: [C] = normal(0, 1)\nmodel f(x: [T, d]) -> [T, C] {\n  y = matmul(x, W)\n${body}\n}\n`);
  const prog = compileTraining(m, { gradients: true });
  const inputs = sampleInputs(m, 1);
  const { shape, classes } = targetsShape(prog.targets!, bindInputDims(entryFunction(m), inputs));
  inputs.set(prog.targets!.name, new Tensor('index', shape, Float64Array.from({ length: shape[0]! }, (_, i) => Math.floor(uniformAt(3, i, 1) * classes))));
  const w = new Map([...seededWeights(m, 2)].map(([k, t]) => [k, new Tensor('f32', t.shape, Float64Array.from(t.data))]));
  const outs = interpret(prog.module, inputs, w, { training: true }).outputs;
  const loss = (ws: Map<string, Tensor>) => interpret(prog.module, inputs, ws, { training: true }).outputs[prog.layout.loss]!.data[0]!;
  for (const dense of prog.layout.dense) {
    const base = w.get(dense.param)!;
    const grad = outs[dense.output]!.data;
    for (let c = 0; c < base.size; c++) {
      const at = (delta: number) => {
        const data = Float64Array.from(base.data);
        data[c] = data[c]! + delta;
        return loss(new Map(w).set(dense.param, new Tensor('f32', base.shape, data)));
      };
      const numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
      expect(Math.abs(grad[c]! - numeric), `d loss / d ${dense.param}[${c}]`).toBeLessThan(1e-6 * Math.max(1, Math.abs(numeric)));
    }
  }
}

describe('gradients match finite differences', () => {
  it('where (the gradient goes to the branch taken; none through the mask)', () => checkGradients('  return where(greater(y, b), y * 2.0, exp(y))'));
  it('clamp and minimum/maximum with constants', () => checkGradients('  return clamp(y, -0.5, 0.7) + minimum(y * b, 0.3) + maximum(0.1, y)'));
  it('cumsum forwards and in reverse', () => checkGradients('  return cumsum(y * b) + cumsum(exp(y), reverse=1) * 0.5'));
  it('concat', () => checkGradients('  z = concat(y, y * b)\n  return z[:, 0:3] * z[:, 3:6] + concat(y[:, 0:1], y[:, 1:3])'));
  it('sort (the gradient follows the values to their places)', () => checkGradients('  (v, i) = sort(y * b)\n  return v * float(iota(3))[None, :] + take_along(y, i)'));
});

/** A PEER layer with a routing rule on the selected scores `s` [T, h, k]. */
const peer = (gate: string) => `
const d = 8
const n = 6
const h = 3
const k = 4
param Wq: [h, 4, d] = normal(0, 1)
param C1: [n, 2] = normal(0, 1)
param C2: [n, 2] = normal(0, 1)
param U: [n*n, d] = normal(0, 1)
param V: [n*n, d] = normal(0, 1)
model f(x: [T, d]) -> [T, d] {
  (s, idx) = product_topk(einsum("td,hcd->thc", x, Wq), C1, C2, k)
  g = ${gate}
  return experts_gelu(x, U, V, idx, g)
}
`;
const ROUTING: [string, string][] = [
  ['top-p 0.7 over the selected experts (renormalised)', 'where(less(cumsum(softmax(s)) - softmax(s), 0.7), softmax(s), 0.0) / sum(where(less(cumsum(softmax(s)) - softmax(s), 0.7), softmax(s), 0.0))[..., None]'],
  ['a different k per head (k_j = 2 + j)', 'softmax(where(less(iota(k)[None, None, :], iota(h)[None, :, None] + 2), s, -1e9))'],
  ['capped sigmoid gates', 'minimum(sigmoid(s), 0.6)'],
];

describe('routing rules on a PEER layer: retrieval still fuses; kernels agree with the reference', () => {
  const backends = (['cpu', 'webasm', 'webasm-threads', 'headlessgl'] as BackendName[]).filter((b) => !unavailableReason(b));
  const executors: Executor[] = [];
  afterAll(() => executors.forEach((e) => e.destroy()));
  for (const [what, gate] of ROUTING)
    it(what, async () => {
      const m = compileOk(peer(gate));
      const fused = optimize(m, { lowering: 'fused' });
      const ops = [...fused.functions.values()][0]!.graph.nodes.map((x) => x.op);
      expect(ops).toEqual(expect.arrayContaining(['product_retrieve', 'expert_act', 'expert_out']));
      expect(unfusedPatterns(fused)).toEqual([]);
      const w = seededWeights(m, 3), inputs = sampleInputs(m, 4);
      const ref = interpret(m, inputs, w).outputs[0]!;
      for (const backend of backends)
        for (const lowering of ['naive', 'fused'] as const) {
          const ex = new Executor(optimize(m, { lowering }), w, backend);
          executors.push(ex);
          const out = (await ex.forward(inputs)).outputs[0]!.data;
          let err = 0, scale = 1;
          ref.data.forEach((v, i) => { err = Math.max(err, Math.abs(v - out[i]!)); scale = Math.max(scale, Math.abs(v)); });
          expect(err / scale, `${backend} ${lowering}`).toBeLessThan(2e-5);
        }
      // And it trains: the training program differentiates the routing rule.
      expect(compileTraining(m, { gradients: true }).layout.dense.length).toBeGreaterThan(0);
    });
});
