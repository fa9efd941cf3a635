// Dropout and Gumbel noise: seeded draws that are a pure function of (seed, call site, element,
// step), so evaluation is noise-free, every backend draws exactly what the interpreter does,
// gradients use the forward's mask, and --resume stays bit-identical.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTraining, targetsShape } from '../src/autodiff/differentiate.js';
import { bindInputDims, entryFunction, interpret } from '../src/interp/interpreter.js';
import { uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights } from '../src/io/tensors.js';
import { unavailableReason, type BackendName } from '../runtime/backends/info.js';
import { Executor } from '../runtime/executor.js';
import { readCheckpoint } from '../runtime/train/checkpoint.js';
import { compileOk, diagnose, runPeerc, sampleInputs } from './helpers.js';

const ones = (n: number) => new Tensor('f32', [1, n], new Float64Array(n).fill(1));
const run = (body: string, x: Tensor, training: boolean, noise?: { seed: number; step: number }) =>
  [...interpret(compileOk(`model m(x: [A, B]) -> [A, B] {\n${body}\n}\n`), new Map([['x', x]]), new Map(), { training, noise }).outputs[0]!.data];

describe('meaning', () => {
  it('dropout zeroes about p of the elements and scales the rest by 1/(1-p), only while training', () => {
    const y = run('  return dropout(x, 0.25)', ones(4000), true);
    const zeros = y.filter((v) => v === 0).length;
    expect(zeros / 4000).toBeGreaterThan(0.22);
    expect(zeros / 4000).toBeLessThan(0.28);
    expect(new Set(y.filter((v) => v !== 0))).toEqual(new Set([1 / 0.75]));
    expect(run('  return dropout(x, 0.25)', ones(100), false)).toEqual(Array(100).fill(1));
  });
  it('draws are a function of seed, step and call site', () => {
    const x = ones(64);
    const a = run('  return dropout(x, 0.5)', x, true, { seed: 1, step: 3 });
    expect(run('  return dropout(x, 0.5)', x, true, { seed: 1, step: 3 })).toEqual(a);
    expect(run('  return dropout(x, 0.5)', x, true, { seed: 1, step: 4 })).not.toEqual(a);
    expect(run('  return dropout(x, 0.5)', x, true, { seed: 2, step: 3 })).not.toEqual(a);
    const two = run('  return dropout(x, 0.5) - dropout(x, 0.5)', x, true, { seed: 1, step: 3 });
    expect(two.some((v) => v !== 0)).toBe(true); // two call sites, two masks
  });
  it('gumbel adds Gumbel(0, scale) noise while training', () => {
    const g = run('  return gumbel(x, 2.0) - x', ones(20000), true);
    const mean = g.reduce((a, b) => a + b, 0) / g.length;
    expect(mean).toBeGreaterThan(2 * 0.5772 - 0.06); // E = scale * Euler-Mascheroni
    expect(mean).toBeLessThan(2 * 0.5772 + 0.06);
    expect(run('  return gumbel(x, 2.0)', ones(10), false)).toEqual(Array(10).fill(1));
  });
  it('a probability outside [0, 1) is a located error', () => {
    expect(diagnose('model m(x: [A, B]) -> [A, B] {\n  return dropout(x, 1.5)\n}\n')).toMatch(/2:\d+: error PEER0407: dropout probability must be in \[0, 1\), not 1.5/);
  });
});

const model = `
const d = 8
const n = 6
param Wq: [2, 4, d] = normal(0, 1)
param C1: [n, 2] = normal(0, 1)
param C2: [n, 2] = normal(0, 1)
param U: [n*n, d] = normal(0, 1) @sparse
param V: [n*n, d] = normal(0, 1) @sparse
param Wout: [d, 5] = normal(0, 1)
model f(x: [T, d]) -> [T, 5] {
  q = dropout(einsum("td,hcd->thc", x, Wq), 0.2)
  (s, idx) = product_topk(q, C1, C2, 3)
  y = x + experts_gelu(x, U, dropout(V, 0.1), idx, softmax(gumbel(s, 0.5)))
  return matmul(y, Wout)
}
`;

describe('training with noise', () => {
  it('finite differences through the fixed masks of one step', () => {
    const m = compileOk(model.replace('dropout(V, 0.1)', 'V'));
    const prog = compileTraining(m, { gradients: true });
    const inputs = sampleInputs(m, 1);
    const { shape, classes } = targetsShape(prog.targets!, bindInputDims(entryFunction(m), inputs));
    inputs.set(prog.targets!.name, new Tensor('index', shape, Float64Array.from({ length: shape[0]! }, (_, i) => Math.floor(uniformAt(3, i, 1) * classes))));
    const w = new Map([...seededWeights(m, 2)].map(([k, t]) => [k, new Tensor('f32', t.shape, Float64Array.from(t.data))]));
    const noise = { seed: 7, step: 11 };
    const outs = interpret(prog.module, inputs, w, { training: true, noise }).outputs;
    const loss = (ws: Map<string, Tensor>) => interpret(prog.module, inputs, ws, { training: true, noise }).outputs[prog.layout.loss]!.data[0]!;
    for (const dense of prog.layout.dense.filter((x) => x.param === 'Wq' || x.param === 'Wout')) {
      const base = w.get(dense.param)!, grad = outs[dense.output]!.data;
      for (const c of [0, 3, 7, 12]) {
        const at = (delta: number) => {
          const data = Float64Array.from(base.data);
          data[c] = data[c]! + delta;
          return loss(new Map(w).set(dense.param, new Tensor('f32', base.shape, data)));
        };
        const numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
        expect(Math.abs(grad[c]! - numeric), `${dense.param}[${c}]`).toBeLessThan(1e-6 * Math.max(1, Math.abs(numeric)));
      }
    }
  });

  it('every backend draws exactly the interpreter\'s noise (loss and gradients agree)', async () => {
    const m = compileOk(model);
    const prog = compileTraining(m, { gradients: true });
    const inputs = sampleInputs(m, 2);
    const { shape, classes } = targetsShape(prog.targets!, bindInputDims(entryFunction(m), inputs));
    inputs.set(prog.targets!.name, new Tensor('index', shape, Float64Array.from({ length: shape[0]! }, (_, i) => Math.floor(uniformAt(4, i, 1) * classes))));
    const w = seededWeights(m, 3);
    const noise = { seed: 5, step: 2 };
    const ref = interpret(prog.module, inputs, w, { training: true, noise }).outputs;
    for (const backend of (['cpu', 'webasm', 'webasm-threads', 'headlessgl'] as BackendName[]).filter((b) => !unavailableReason(b))) {
      const ex = new Executor(prog.module, w, backend, { training: true, paramsAsArguments: true });
      ex.noise = noise;
      try {
        const got = (await ex.forward(inputs)).outputs;
        expect(Math.abs(got[0]!.data[0]! - ref[0]!.data[0]!), backend).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref[0]!.data[0]!)));
        for (const d of prog.layout.dense) {
          const a = got[d.output]!.data, b = ref[d.output]!.data;
          let err = 0, scale = 1e-6;
          for (let i = 0; i < a.length; i++) { err = Math.max(err, Math.abs(a[i]! - b[i]!)); scale = Math.max(scale, Math.abs(b[i]!)); }
          expect(err / scale, `${backend} ${d.param}`).toBeLessThan(2e-3);
        }
      } finally {
        ex.destroy();
      }
    }
  });

  it('peerc train with dropout and Gumbel noise resumes bit-identically', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'peerc-noise-'));
    const src = join(tmp, 'recall.peer');
    writeFileSync(src, readFileSync(join(import.meta.dirname, '..', 'examples', 'recall.peer'), 'utf8')
      .replace('const K = 4096', 'const K = 256').replace('const N = 128^2', 'const N = 32^2')
      .replace('x = embedding(E, keys)', 'x = dropout(embedding(E, keys), 0.1)'));
    const common = ['--steps', '6', '--backend', 'cpu', '--seed', '3', '--eval-every', '3', '--eval-batches', '1'];
    const whole = join(tmp, 'whole'), parts = join(tmp, 'parts');
    expect(runPeerc(['train', src, ...common, '--out', whole]).status).toBe(0);
    expect(runPeerc(['train', src, ...common, '--out', parts, '--stop-at', '2']).status).toBe(0);
    expect(runPeerc(['train', src, '--resume', '--out', parts, '--backend', 'cpu']).status).toBe(0);
    const a = readCheckpoint(join(whole, 'checkpoint.safetensors')), b = readCheckpoint(join(parts, 'checkpoint.safetensors'));
    for (const [name, t] of a.tensors) expect(Buffer.from(b.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
  });
});
