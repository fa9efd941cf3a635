// Generated gpu.js kernels against the float64 reference interpreter: every example, each
// backend available here, naive and fused lowerings; identical expert indices, ties included.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { IRModule } from '../src/ir/graph.js';
import { interpret } from '../src/interp/interpreter.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize, type Lowering } from '../src/passes/pipeline.js';
import { unavailableReason, type BackendName } from '../runtime/backends/info.js';
import { Executor } from '../runtime/executor.js';
import { compileOk, sampleInputs, scaledError, smallExample } from './helpers.js';
import { unfusedPatterns } from '../src/passes/fusion-notes.js';
import { EXPERT_ACTIVATIONS } from '../src/ir/ops/fused.js';
import { ACTIVATIONS } from '../codegen/naive.js';

const BACKENDS = (['cpu', 'webasm', 'webasm-threads', 'wasm-simd', 'headlessgl', 'plain-js'] as BackendName[]).filter((b) => !unavailableReason(b));
const LOWERINGS: Lowering[] = ['naive', 'fused'];
const executors: Executor[] = [];
afterAll(() => executors.forEach((e) => e.destroy()));

const maxError = (ref: Tensor, out: Float32Array) => scaledError(ref.data, out);

async function runAll(m: IRModule, weights: Map<string, Tensor | Float32Array>, inputs: Map<string, Tensor>, refModule = m) {
  const ref = interpret(refModule, inputs, weights as Map<string, Tensor>).outputs;
  const results: { backend: string; lowering: string; outputs: Float32Array[] }[] = [];
  for (const backend of BACKENDS)
    for (const lowering of LOWERINGS) {
      const ex = new Executor(optimize(m, { lowering }), weights, backend);
      executors.push(ex);
      const r = await ex.forward(inputs);
      results.push({ backend, lowering, outputs: r.outputs.map((o) => o.data) });
    }
  return { ref, results };
}

describe('backends here', () => {
  it('include cpu and webasm', () => expect(BACKENDS).toEqual(expect.arrayContaining(['cpu', 'webasm'])));
});

describe.each(readdirSync(join(import.meta.dirname, '..', 'examples')).filter((f) => f.endsWith('.peer')))('%s', (file) => {
  it('naive == fused == reference on every backend', async () => {
    const m = compileOk(smallExample(file), file);
    const { ref, results } = await runAll(m, seededWeights(m, 2), sampleInputs(m, 1));
    for (const r of results) expect(maxError(ref[0]!, r.outputs[0]!), `${r.backend} ${r.lowering}`).toBeLessThan(2e-5);
  });
});

const retrieval = (keys: string, n: number, k: number) => `
const d = 8
const h = 3
const dk = 4
param Wq: [h, dk, d] = normal(0, 1)
param C1: ${keys === 'shared' ? `[${n}, dk/2]` : `[h, ${n}, dk/2]`} = normal(0, 1)
param C2: ${keys === 'shared' ? `[${n}, dk/2]` : `[h, ${n}, dk/2]`} = normal(0, 1)
model pick(x: [T, d]) -> ([T, h, ${k}], index[T, h, ${k}]) {
  (s, idx) = ${keys === 'shared' ? 'product_topk' : 'product_topk_heads'}(einsum("td,hcd->thc", x, Wq), C1, C2, ${k})
  return softmax(s), idx
}
`;

describe('retrieval picks identical experts everywhere', () => {
  for (const keys of ['shared', 'per-head'])
    it(`${keys} keys, random scores`, async () => {
      const m = compileOk(retrieval(keys, 12, 5));
      const { ref, results } = await runAll(m, seededWeights(m, 7), sampleInputs(m, 3));
      for (const r of results) {
        expect([...r.outputs[1]!], `${r.backend} ${r.lowering}`).toEqual([...ref[1]!.data]);
        expect(maxError(ref[0]!, r.outputs[0]!)).toBeLessThan(1e-5);
      }
    });

  it('ties break to the lower index in every path', async () => {
    const m = compileOk(retrieval('shared', 6, 4));
    // Integer weights and inputs: many sub-key and candidate scores are exactly equal.
    const w = seededWeights(m, 1);
    const ints = (name: string, mod: number) => {
      const t = w.get(name)!;
      w.set(name, new Tensor('f32', t.shape, Float64Array.from({ length: t.size }, (_, i) => ((i * 7) % mod) - 1)));
    };
    ints('Wq', 3);
    ints('C1', 2);
    ints('C2', 2);
    const x = new Tensor('f32', [4, 8], Float64Array.from({ length: 32 }, (_, i) => i % 2));
    const { ref, results } = await runAll(m, w, new Map([['x', x]]));
    const scores = ref[0]!.data;
    expect(new Set(scores).size).toBeLessThan(scores.length / 2); // the case really has ties
    for (const r of results) expect([...r.outputs[1]!], `${r.backend} ${r.lowering}`).toEqual([...ref[1]!.data]);
  });
});

/** Retrieval written out with a sub-key top-k `sk`, a final top-k `k` and a gate expression. */
const variant = (n: number, sk: number, k: number, gate: string) => `
const d = 8
const h = 3
param Wq: [h, 4, d] = normal(0, 1)
param C1: [${n}, 2] = normal(0, 1)
param C2: [${n}, 2] = normal(0, 1)
model pick(x: [T, d]) -> ([T, h, ${k}], index[T, h, ${k}]) {
  q = einsum("td,hcd->thc", x, Wq)
  (v1, a) = topk(einsum("thc,nc->thn", q[..., 0:2], C1), ${sk})
  (v2, b) = topk(einsum("thc,nc->thn", q[..., 2:4], C2), ${sk})
  (s, which) = topk(reshape(v1[..., None] + v2[..., None, :], [T, h, ${sk * sk}]), ${k})
  return ${gate}, take_along(reshape(a[..., None] * ${n} + b[..., None, :], [T, h, ${sk * sk}]), which)
}
`;

describe('retrieval fuses for any gate, any sub-key top-k and a final top-1', () => {
  const cases: [string, number, number, number, string][] = [
    ['sigmoid gate', 12, 4, 4, 'sigmoid(s)'],
    ['softmax with a temperature, plus raw scores', 12, 4, 4, 'softmax(s / 2.0) + s'],
    ['non-competing relu scores normalised', 12, 4, 4, 'relu(s) / (sum(relu(s), 2)[..., None] + 1.0)'],
    ['sub-key top-5, final top-3 (odd, odd)', 12, 5, 3, 'softmax(s)'],
    ['sub-key top-4, final top-3 (paired sub-keys, odd k)', 12, 4, 3, 'softmax(s)'],
    ['sub-key top-4, final top-2 (register combine)', 12, 4, 2, 'relu(s)'],
    ['sub-key top-3, final top-6 (k > sub-key k)', 12, 3, 6, 'softmax(s)'],
    ['final top-1 (PEER-pytorch non-competing)', 12, 4, 1, 'relu(s)'],
    ['sub-key top-34 of 40 (selection path), final top-4', 40, 34, 4, 'softmax(s)'],
  ];
  for (const [what, n, sk, k, gate] of cases)
    it(what, async () => {
      const m = compileOk(variant(n, sk, k, gate));
      const fused = optimize(m, { lowering: 'fused' });
      const ops = [...fused.functions.values()][0]!.graph.nodes.map((x) => x.op);
      expect(ops).toContain('product_retrieve');
      expect(ops.filter((o) => o === 'topk')).toEqual([]); // no candidates left: every top-k is inside the fused op
      expect(unfusedPatterns(fused)).toEqual([]);
      const { ref, results } = await runAll(m, seededWeights(m, 5), sampleInputs(m, 2));
      for (const r of results) {
        expect([...r.outputs[1]!], `${r.backend} ${r.lowering}`).toEqual([...ref[1]!.data]);
        expect(maxError(ref[0]!, r.outputs[0]!), `${r.backend} ${r.lowering}`).toBeLessThan(1e-5);
      }
    });

  it('arity-3 product keys: the first pair is product_retrieve, the third factor product_extend, nothing left unfused (test/arity3.test.ts checks them)', () => {
    const fused = optimize(compileOk(smallExample('pk_arity3.peer')), { lowering: 'fused' });
    const ops = [...fused.functions.values()][0]!.graph.nodes.map((x) => x.op);
    expect(ops.filter((op) => op === 'product_retrieve')).toHaveLength(1);
    expect(ops.filter((op) => op === 'product_extend')).toHaveLength(1);
    expect(ops).not.toContain('topk');
    expect(unfusedPatterns(fused)).toEqual([]);
  });

  it('arity-3: the third factor does not fuse, and says why, when its selection has another use', () => {
    const src = smallExample('pk_arity3.peer').replace('return experts_gelu(x, U, V, idx, softmax(s))', 'return experts_gelu(x, U, V, idx, softmax(s)) + sum(sum(v3))[..., None]');
    const fused = optimize(compileOk(src), { lowering: 'fused' });
    expect(unfusedPatterns(fused).map((x) => x.message)).toEqual([expect.stringMatching(/candidates are built: the new sub-key top-k has another user \(reduce_sum %\d+\); fusing would compute it twice \(one more sub-key factor on selected scores, fuse-retrieval-extend\)/)]);
  });

  it('when the first sub-key selection has another use, keeps that top-k and fuses the rest as product_extend (no candidates built)', () => {
    const src = variant(12, 4, 4, 'softmax(s)').replace('return softmax(s),', 'return softmax(s) + sum(v1, 2)[..., None],');
    const m = compileOk(src);
    const fused = optimize(m, { lowering: 'fused' });
    const ops = [...fused.functions.values()][0]!.graph.nodes.map((x) => x.op);
    expect(ops).not.toContain('product_retrieve');
    expect(ops.filter((op) => op === 'product_extend')).toHaveLength(1);
    expect(ops.filter((op) => op === 'topk')).toHaveLength(1);
    expect(unfusedPatterns(fused)).toEqual([]);
    const x = sampleInputs(m);
    const w = seededWeights(m, 1);
    const [a, b] = [interpret(m, x, w).outputs, interpret(fused, x, w).outputs];
    a.forEach((t, i) => t.data.forEach((v, j) => expect(Math.abs(v - b[i]!.data[j]!)).toBeLessThan(1e-12)));
  });

  it('does not fire, and says why, when the candidates have another use', () => {
    const src = variant(12, 4, 4, 'softmax(s)').replace('return softmax(s),', 'return softmax(s) + sum(v1[..., None] + v2[..., None, :], 3),');
    const fused = optimize(compileOk(src), { lowering: 'fused' });
    expect([...fused.functions.values()][0]!.graph.nodes.map((x) => x.op)).not.toContain('product_retrieve');
    const notes = unfusedPatterns(fused);
    expect(notes).toHaveLength(1);
    expect(notes[0]!.message).toMatch(/product-key retrieval is not fused, so its \[\.\., k, k\] candidates are built: .*has another user/);
    expect(notes[0]!.span?.line).toBe(11);
  });
});

/** A PEER layer whose experts are written in the body `experts` (s, idx: scores and ids [B, h, k]). */
const expertsVariant = (tables: string, experts: string) => `
const d = 8
const n = 6
param Wq: [3, 4, d] = normal(0, 1)
param C1: [n, 2] = normal(0, 1)
param C2: [n, 2] = normal(0, 1)
${tables}
model f(x: [B, d]) -> [B, d] {
  (s, idx) = product_topk(einsum("bd,hcd->bhc", x, Wq), C1, C2, 4)
  g = softmax(s)
${experts}
}
`;

describe('expert fusions follow the expert\'s shape', () => {
  const cases: [string, string, string][] = [
    ['m = 3 hidden units per expert (U, V: [N, m, d])', 'param U: [n*n, 3, d] = normal(0, 1)\nparam V: [n*n, 3, d] = normal(0, 1)',
      '  hid = gelu(einsum("bhkmd,bd->bhkm", gather(U, idx), x)) * g[..., None]\n  return einsum("bhkm,bhkmd->bd", hid, gather(V, idx))'],
    ['GLU experts: silu(gate) * up (two down tables, one up table)', 'param Ug: [n*n, d] = normal(0, 1)\nparam Uu: [n*n, d] = normal(0, 1)\nparam V: [n*n, d] = normal(0, 1)',
      '  hid = silu(einsum("bhkd,bd->bhk", gather(Ug, idx), x)) * einsum("bhkd,bd->bhk", gather(Uu, idx), x)\n  return einsum("bhk,bhkd->bd", hid * g, gather(V, idx))'],
    ['a per-expert bias and tanh-GELU', 'param U: [n*n, d] = normal(0, 1)\nparam bias: [n*n] = normal(0, 1)\nparam V: [n*n, d] = normal(0, 1)',
      '  hid = gelu_tanh(einsum("bhkd,bd->bhk", gather(U, idx), x) + gather(bias, idx))\n  return x + einsum("bhk,bhkd->bd", hid * g, gather(V, idx))'],
    ['GLU experts with m = 2 hidden units', 'param Ug: [n*n, 2, d] = normal(0, 1)\nparam Uu: [n*n, 2, d] = normal(0, 1)\nparam V: [n*n, 2, d] = normal(0, 1)',
      '  hid = g[..., None] * silu(einsum("bhkmd,bd->bhkm", gather(Ug, idx), x)) * einsum("bhkmd,bd->bhkm", gather(Uu, idx), x)\n  return einsum("bhkm,bhkmd->bd", hid, gather(V, idx))'],
    ['m-wide experts with the gate, activations and rows in one three-operand einsum', 'param U: [n*n, 3, d] = normal(0, 1)\nparam V: [n*n, 3, d] = normal(0, 1)',
      '  a = gelu(einsum("bhkmd,bd->bhkm", gather(U, idx), x))\n  return einsum("bhk,bhkm,bhkmd->bd", g, a, gather(V, idx))'],
  ];
  for (const [what, tables, experts] of cases)
    it(`${what}: no gathered rows remain, and it agrees everywhere`, async () => {
      const m = compileOk(expertsVariant(tables, experts));
      const fused = optimize(m, { lowering: 'fused' });
      const nodes = [...fused.functions.values()][0]!.graph.nodes;
      // Only small gathers (a bias [B, h, k]) may stay: no [B, h, k, (m,) d] tensor of rows.
      expect(nodes.filter((x) => x.op === 'gather' && x.types[0]!.shape.length > 3).map((x) => x.types[0]!.shape.join('x'))).toEqual([]);
      expect(nodes.map((x) => x.op)).toEqual(expect.arrayContaining(['product_retrieve', 'expert_act', 'expert_out']));
      expect(unfusedPatterns(fused)).toEqual([]);
      const { ref, results } = await runAll(m, seededWeights(m, 6), sampleInputs(m, 3));
      for (const r of results) expect(maxError(ref[0]!, r.outputs[0]!), `${r.backend} ${r.lowering}`).toBeLessThan(2e-5);
    });
});

describe('einsums of three or more operands', () => {
  it('become two-operand chains that every backend runs, agreeing with the interpreter', async () => {
    const m = compileOk('const d = 5\nparam A: [d, 4] = normal(0, 1)\nparam B: [4, 3] = normal(0, 1)\nparam C: [3, 6] = normal(0, 1)\nmodel f(x: [T, d]) -> [T, 6] {\n  return einsum("td,de,ef,fg->tg", x, A, B, C) + einsum("td,td,d->t", x, x, A[:, 0])[:, None]\n}\n');
    const opt = optimize(m, { lowering: 'fused' });
    const specs = [...opt.functions.values()][0]!.graph.nodes.filter((x) => x.op === 'einsum').map((x) => x.attrs.spec);
    expect(specs).toEqual(expect.arrayContaining(['td,de->te', 'te,ef->tf', 'tf,fg->tg', 'td,td->td', 'td,d->t']));
    const { ref, results } = await runAll(m, seededWeights(m, 2), sampleInputs(m, 1));
    expect(results.length).toBeGreaterThan(0);
    for (const r of results) expect(maxError(ref[0]!, r.outputs[0]!), `${r.backend} ${r.lowering}`).toBeLessThan(2e-5);
  });
});

describe('fusion rules match primitive ops, not the prelude', () => {
  const handWritten = (extraUse: boolean) => `
const d = 8
const N = 8^2
param Wq: [2, 6, d] = normal(0, 1)
param K1: [8, 3] = normal(0, 1)
param K2: [8, 3] = normal(0, 1)
param Up: [N, d] = normal(0, 1)
param Down: [N, d] = normal(0, 1)
model mine(x: [B, d]) -> [B, d] {
  q = einsum("bd,gqd->bgq", x, Wq)
  (va, ia) = topk(einsum("bgq,mq->bgm", q[..., 0:3], K1), 3)
  (vb, ib) = topk(einsum("bgq,mq->bgm", q[..., 3:6], K2), 3)
  (best, which) = topk(reshape(va[..., None] + vb[..., None, :], [B, 2, 9]), 3)
  ids = take_along(reshape(ia[..., None] * 8 + ib[..., None, :], [B, 2, 9]), which)
  rows = gather(Up, ids)
  act = relu(einsum("bgkd,bd->bgk", rows, x))
  y = einsum("bgk,bgkd->bd", act * softmax(best), gather(Down, ids))
  return x + y${extraUse ? ' + sum(rows, 2)[:, 0, :]' : ''}
}
`;
  it('a variant written without the prelude fuses, and agrees', async () => {
    const m = compileOk(handWritten(false));
    const ops = [...optimize(m, { lowering: 'fused' }).functions.values()][0]!.graph.nodes.map((n) => n.op);
    expect(ops).toEqual(expect.arrayContaining(['product_retrieve', 'expert_act', 'expert_out']));
    expect(ops).not.toContain('gather');
    const { ref, results } = await runAll(m, seededWeights(m, 4), sampleInputs(m, 2));
    for (const r of results) expect(maxError(ref[0]!, r.outputs[0]!)).toBeLessThan(1e-5);
  });
  for (const act of EXPERT_ACTIVATIONS.filter((a) => a !== 'none'))
    it(`experts with ${act} fuse into expert_act, and agree everywhere`, async () => {
      expect(ACTIVATIONS[act], 'a kernel for the activation').toBeDefined();
      const m = compileOk(handWritten(false).replace('act = relu(', `act = ${act}(`));
      const fused = optimize(m, { lowering: 'fused' });
      const acts = [...fused.functions.values()][0]!.graph.nodes.filter((n) => n.op === 'expert_act').map((n) => n.attrs.act);
      expect(acts).toEqual([act]);
      expect(unfusedPatterns(fused)).toEqual([]);
      const { ref, results } = await runAll(m, seededWeights(m, 4), sampleInputs(m, 2));
      for (const r of results) expect(maxError(ref[0]!, r.outputs[0]!), `${r.backend} ${r.lowering}`).toBeLessThan(1e-5);
    });
  it('the expert rule does not fire when the gathered rows have another use, and says so', () => {
    const fused = optimize(compileOk(handWritten(true)), { lowering: 'fused' });
    const ops = [...fused.functions.values()][0]!.graph.nodes.map((n) => n.op);
    expect(ops).not.toContain('expert_act');
    expect(ops).toContain('product_retrieve');
    const notes = unfusedPatterns(fused).map((n) => n.message);
    expect(notes).toEqual([expect.stringMatching(/^the gather of expert rows from Up is not fused, so a \[B, 2, 3, 8\] tensor of rows is built \(used by einsum %\d+, reduce_sum %\d+\)/)]);
  });
});

describe('gpu.js traps', () => {
  it('a reduction longer than 1000 (loopMaxIterations)', async () => {
    const m = compileOk('param W: [2500, 3] = normal(0, 1)\nmodel long(x: [T, 2500]) -> [T] { return sum(matmul(x, W)) + mean(x) }');
    const { ref, results } = await runAll(m, seededWeights(m, 1), sampleInputs(m, 1));
    for (const r of results) expect(maxError(ref[0]!, r.outputs[0]!), `${r.backend} ${r.lowering}`).toBeLessThan(1e-5);
  });

  it('a contraction with a parameter beyond 2^24 cells reads it by row (dense router keys)', async () => {
    const m = compileOk('param K: [131072, 128] = uniform(-1, 1)\nmodel scores(q: [T, 128]) -> [T, 8] {\n  (v, i) = topk(einsum("tc,nc->tn", q, K), 8)\n  return v\n}');
    const K = new Float32Array(131072 * 128);
    for (let i = 0; i < K.length; i++) K[i] = Math.sin(i * 0.37);
    const w = new Map<string, Tensor | Float32Array>([['K', K]]);
    const inputs = sampleInputs(m, 2);
    const ref = interpret(m, inputs, new Map([['K', new Tensor('f32', [131072, 128], (i) => K[i]!)]])).outputs[0]!;
    for (const backend of ['cpu', 'webasm'] as BackendName[]) {
      const ex = new Executor(optimize(m), w, backend);
      executors.push(ex);
      expect(maxError(ref, (await ex.forward(inputs)).outputs[0]!.data), backend).toBeLessThan(1e-5);
    }
  });

  it('N = 1024^2 experts on a few tokens: tables beyond 2^24 cells read through row views', async () => {
    const src = readFileSync(join(import.meta.dirname, '..', 'examples', 'peer_paper.peer'), 'utf8');
    const m = compileOk(src);
    const w: Map<string, Tensor | Float32Array> = new Map(seededWeights(m, 3));
    // Cheap closed-form expert tables (seeded normals for 2 x 268M values take minutes).
    for (const name of ['U', 'V']) {
      const table = new Float32Array(1024 * 1024 * 256);
      const phase = name === 'U' ? 0.37 : 1.91;
      for (let i = 0; i < table.length; i++) table[i] = Math.sin(i * 0.0007 + phase) * 0.06;
      w.set(name, table);
    }
    const refWeights = new Map([...w].map(([k, v]) => [k, v instanceof Float32Array ? new Tensor('f32', [1024 * 1024, 256], (i) => v[i]!) : v]));
    const inputs = sampleInputs(m, 5);
    const ref = interpret(optimize(m), inputs, refWeights).outputs[0]!;
    for (const backend of ['cpu', 'webasm'] as BackendName[]) {
      const ex = new Executor(optimize(m, { lowering: 'fused' }), w, backend);
      executors.push(ex);
      const out = (await ex.forward(inputs)).outputs[0]!;
      expect(maxError(ref, out.data), backend).toBeLessThan(2e-5);
      ex.destroy();
    }
  }, 300_000);
});
