// aux_loss(x, l, weight): x wherever the program runs; in training the objective is the task's loss
// plus weight * l (a load-balancing loss, say: the prelude's load_balance_loss). Checked: the
// objective's value, its gradients against finite differences, that it trains what only the
// auxiliary term reaches, mistakes, and peerc train's report of it.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { interpret } from '../src/interp/interpreter.js';
import { Tensor } from '../src/interp/tensor.js';
import { optimize } from '../src/passes/pipeline.js';
import { Executor } from '../runtime/executor.js';
import { batch, checkGradients, denseGradients, weights } from './gradient-check.js';
import { compileOk, diagnose, runPeerc } from './helpers.js';

/** A router over E = 4 experts whose top-2 weights scale x, with the load-balancing loss. */
const routed = (weight: string) => `const d = 6
const E = 4
param Wr: [d, E] = normal(0, 1)
param Wo: [d, 5] = normal(0, 1)
model f(x: [T, d]) -> [T, 5] {
  logits = matmul(x, Wr)
  (g, e) = topk(logits, 2)
  y = x * sum(softmax(g) * g, axis=1)[..., None]
  return matmul(aux_loss(y, load_balance_loss(logits, e), ${weight}), Wo)
}
`;

describe('aux_loss', () => {
  it('is its first argument in the forward, on the reference and a backend', async () => {
    const m = compileOk(routed('0.5'));
    const plain = compileOk(routed('0.5').replace(/aux_loss\(y, .*\), Wo\)/, 'y, Wo)'));
    const w = weights(m, 1);
    const x = new Map([['x', new Tensor('f32', [5, 6], Float64Array.from({ length: 30 }, (_, i) => Math.sin(i)))]]);
    const want = interpret(plain, x, w).outputs[0]!.data;
    expect([...interpret(m, x, w).outputs[0]!.data]).toEqual([...want]);
    const ex = new Executor(optimize(m, { lowering: 'fused' }), w, 'plain-js');
    try {
      const got = (await ex.forward(x)).outputs[0]!.data;
      got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-5));
    } finally {
      ex.destroy();
    }
  });

  it('adds weight * loss to the training objective, and reports the term', () => {
    const m = compileOk(routed('0.5')), none = compileOk(routed('0'));
    const prog = compileTraining(m, { gradients: true }), base = compileTraining(none, { gradients: true });
    const w = weights(m, 2), inputs = batch(m, prog, 2);
    const outs = interpret(prog.module, inputs, w, { training: true }).outputs;
    const baseLoss = interpret(base.module, inputs, w, { training: true }).outputs[base.layout.loss]!.data[0]!;
    const aux = outs[prog.layout.aux!]!.data[0]!;
    // The load-balancing loss is E * sum(f * p) >= 0 (f, p distributions over E): the term is 0.5 of it.
    expect(aux).toBeGreaterThan(0);
    expect(outs[prog.layout.loss]!.data[0]!).toBeCloseTo(baseLoss + aux, 12);
    // Without the term the router's gradient is only the task's.
    const g = denseGradients(m, prog, outs).get('Wr')!, g0 = denseGradients(none, base, interpret(base.module, inputs, w, { training: true }).outputs).get('Wr')!;
    expect([...g].some((v, i) => Math.abs(v - g0[i]!) > 1e-9)).toBe(true);
  });

  it('gradients of the objective match finite differences (the load-balancing term included)', () => {
    checkGradients(routed('0.5'), { tol: 1e-5 });
  });

  it('mistakes are located errors', () => {
    const src = (call: string) => `param W: [4, 4]\nmodel f(x: [T, 4]) -> [T, 4] {\n  y = matmul(x, W)\n  return ${call}\n}\n`;
    expect(diagnose(src('aux_loss(y, y)'))).toMatch(/error PEER0303: aux_loss's loss: expected a scalar \[\] but found \[T, 4\] \(reduce it, e.g. with sum or mean\)/);
    expect(diagnose(src('aux_loss(y, sum(sum(y)), -1.0)'))).toMatch(/error PEER0407: aux_loss weight must be a finite number >= 0, not -1/);
  });

  it('peerc train logs the term beside the loss', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'peerc-aux-'));
    const file = join(tmp, 'recall_aux.peer');
    writeFileSync(file, `const K = 64
const d = 16
param E: [K, d] = normal(0, 1)
param Wout: [d, 32] = normal(0, 1/sqrt(d))
model recall(keys: index[B]) -> [B, 32] {
  x = embedding(E, keys)
  return aux_loss(matmul(x, Wout), mean(mean(x * x)), 0.1)
}
train { task = "recall"; steps = 4; batch = 8; lr = 1e-2; optimizer = "adam"; eval_every = 4; eval_batches = 1 }
`);
    const r = runPeerc(['train', file, '--out', join(tmp, 'run')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/loss [\d.]+ \(aux [\d.]+\)/);
    const rows = readFileSync(join(tmp, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const train = rows.filter((x) => x.split === 'train');
    expect(train.length).toBe(4);
    for (const row of train) expect(row.aux_loss).toBeGreaterThan(0);
  });
});

describe('metric', () => {
  const src = (body: string) => `param W: [4, 4] = normal(0, 1)\nmodel f(x: [T, 4]) -> [T, 4] {\n  y = matmul(x, W)\n  return ${body}\n}\n`;

  it('is x itself, takes no gradient, and its value is a training output (same names averaged)', () => {
    const m = compileOk(src('metric(metric(y, mean(mean(y)), "m"), max(max(y)), "m")'));
    const plain = compileOk(src('y'));
    const w = weights(m, 1);
    const x = new Map([['x', new Tensor('f32', [3, 4], Float64Array.from({ length: 12 }, (_, i) => Math.cos(i)))]]);
    expect([...interpret(m, x, w).outputs[0]!.data]).toEqual([...interpret(plain, x, w).outputs[0]!.data]);
    const y = interpret(plain, x, w).outputs[0]!.data;
    const prog = compileTraining(m, { gradients: true });
    expect(prog.layout.metrics?.map((x) => [x.name, x.outputs.length])).toEqual([['m', 2]]);
    const outs = interpret(prog.module, new Map([...x, [prog.targets!.name, new Tensor('index', [3], Float64Array.of(0, 1, 2))]]), w, { training: true }).outputs;
    const values = prog.layout.metrics![0]!.outputs.map((o) => outs[o]!.data[0]!);
    expect(values[0]).toBeCloseTo(y.reduce((a, b) => a + b, 0) / y.length, 12);
    expect(values[1]).toBeCloseTo(Math.max(...y), 12);
    // Not part of the objective: the gradients are those of the plain program.
    const base = compileTraining(plain, { gradients: true });
    const g = denseGradients(m, prog, outs).get('W')!;
    const g0 = denseGradients(plain, base, interpret(base.module, new Map([...x, [base.targets!.name, new Tensor('index', [3], Float64Array.of(0, 1, 2))]]), w, { training: true }).outputs).get('W')!;
    g.forEach((v, i) => expect(v).toBeCloseTo(g0[i]!, 12));
  });

  it('mistakes are located errors', () => {
    expect(diagnose(src('metric(y, y, "m")'))).toMatch(/error PEER0303: metric's value: expected a scalar \[\] but found \[T, 4\]/);
    expect(diagnose(src('metric(y, mean(mean(y)), "Loss")'))).toMatch(/error PEER0407: a metric's name is lower-case letters/);
    expect(diagnose(src('metric(y, mean(mean(y)), "loss")'))).toMatch(/error PEER0407: .*none of step, split, loss/);
  });

  it('peerc train logs it under its name; the torch export collects it', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'peerc-metric-'));
    const file = join(tmp, 'recall_metric.peer');
    writeFileSync(file, `const K = 64
const d = 16
param E: [K, d] = normal(0, 1)
param Wout: [d, 32] = normal(0, 1/sqrt(d))
model recall(keys: index[B]) -> [B, 32] {
  x = embedding(E, keys)
  return metric(matmul(x, Wout), mean(mean(x * x)), "energy")
}
train { task = "recall"; steps = 3; batch = 8; lr = 1e-2; optimizer = "adam"; eval_every = 3; eval_batches = 1 }
`);
    const r = runPeerc(['train', file, '--out', join(tmp, 'run')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/, energy [\d.]+,/);
    const train = readFileSync(join(tmp, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.split === 'train');
    expect(train.length).toBe(3);
    for (const row of train) expect(row.energy).toBeGreaterThan(0);
    const e = runPeerc(['export', file, '--torch', '-o', join(tmp, 'torch'), '--seed', '1']);
    expect(e.status, e.stderr).toBe(0);
    const py = readFileSync(join(tmp, 'torch', 'recall.py'), 'utf8');
    expect(py).toMatch(/self\.metrics = \{\}/);
    expect(py).toMatch(/_metric\(self, .*"energy"\)/);
  });
});
