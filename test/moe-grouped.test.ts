// The expert ops grouped by expert on wasm-simd (TableMemory.groupedDots / groupedAxpys: one
// product per expert of its m rows, read in place, with its slots' vectors): against plain loops
// on 1 and 2 threads (experts with no slot, one slot, more than a tile), and the top-2 MoE
// example at a batch that takes this path, forward and training, against the float64 interpreter.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { interpret } from '../src/interp/interpreter.js';
import { normalAt, uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { optimize } from '../src/passes/pipeline.js';
import { seededWeights } from '../src/io/tensors.js';
import { expert_act } from '../src/ir/ops/fused.js';
import { unavailableReason } from '../runtime/backends/info.js';
import { Executor } from '../runtime/executor.js';
import { workerPool } from '../runtime/pool.js';
import { TableMemory } from '../runtime/backends/wasm-simd/tables.js';
import { Trainer } from '../runtime/train/trainer.js';
import { DEFAULT_OPTIMIZER } from '../runtime/train/optim.js';
import { denseGradients, weights as float64Weights } from './gradient-check.js';
import { compileOk, scaledError } from './helpers.js';

const skip = !!unavailableReason('wasm-simd');
const E = 6, block = 8, d = 16, T = 23, k = 2;
// Expert 4 gets no slot, expert 5 one; the others uneven counts (not multiples of a tile).
const expertOf = (s: number) => (s === 7 ? 5 : [0, 1, 1, 2, 3, 3, 3][s % 7]!);
const idx = Float32Array.from({ length: T * k * block }, (_, i) => expertOf(Math.floor(i / block)) * block + (i % block));

describe.skipIf(skip).each([1, 2])('expert kernels grouped by expert, %i thread(s)', (threads) => {
  const table = new TableMemory(E * block, d, { pool: threads > 1 ? workerPool(threads) : undefined });
  table.weights.set(Float32Array.from({ length: E * block * d }, (_, i) => Math.sin(0.7 * i)));
  const U = table.weights;
  const x = Float32Array.from({ length: T * d }, (_, i) => Math.cos(0.3 * i));
  const w = Float32Array.from({ length: T * k * block }, (_, i) => 0.5 + 0.01 * i);
  const dot = (i: number) => {
    const t = Math.floor(i / (k * block));
    let s = 0;
    for (let j = 0; j < d; j++) s += U[idx[i]! * d + j]! * x[t * d + j]!;
    return s;
  };

  it.each(['none', 'silu'])('groupedDots (act %s) equals the per-slot dot products', async (act) => {
    const out = new Float32Array(new SharedArrayBuffer(T * k * block * 4)).fill(NaN);
    await table.groupedDots(x, idx, w, out, T, block, act);
    for (let i = 0; i < out.length; i++) {
      const v = dot(i);
      expect(out[i], `slot cell ${i}`).toBeCloseTo(w[i]! * (act === 'none' ? v : v / (1 + Math.exp(-v))), 4);
    }
  });

  it('groupedAxpys adds each slot h . rows to its token, onto what is there', async () => {
    const h = Float32Array.from({ length: T * k * block }, (_, i) => Math.sin(0.11 * i));
    const y = new Float32Array(T * d).fill(0.25);
    await table.groupedAxpys(h, idx, y, T, block);
    for (let t = 0; t < T; t++)
      for (let j = 0; j < d; j++) {
        let want = 0.25;
        for (let c = t * k * block; c < (t + 1) * k * block; c++) want += h[c]! * U[idx[c]! * d + j]!;
        expect(y[t * d + j]).toBeCloseTo(want, 4);
      }
  });

  it('a block starting out of range (NaN upstream) is refused before any product', async () => {
    const bad = Float32Array.from(idx);
    bad[3 * block] = NaN;
    await expect(table.groupedDots(x, bad, w, new Float32Array(new SharedArrayBuffer(w.length * 4)), T, block, 'none')).rejects.toThrow(/NonFiniteIndex: expert_act: index NaN is out of range for 48 rows/);
  });
});

describe('the block attribute', () => {
  it('the reference refuses indices that are not runs of the block', () => {
    const x = new Tensor('f32', [1, 2], Float64Array.of(1, 2));
    const U = new Tensor('f32', [4, 2], Float64Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    const w = new Tensor('f32', [1, 2], Float64Array.of(1, 1));
    expect(expert_act.evaluate!([x, U, new Tensor('index', [1, 2], Float64Array.of(2, 3)), w], { act: 'none', block: 2 }, undefined as never)[0]!.data[1]).toBe(7 * 1 + 8 * 2);
    expect(() => expert_act.evaluate!([x, U, new Tensor('index', [1, 2], Float64Array.of(2, 0)), w], { act: 'none', block: 2 }, undefined as never)).toThrow(/not runs of 2 consecutive rows/);
  });
});

const example = readFileSync(join(import.meta.dirname, '..', 'examples', 'moe_top2.peer'), 'utf8');
/** The example with d = 16, m = 8, E = 5: 48 tokens give 96 slots, past 4 per expert. */
const small = (sparse: boolean) =>
  example.replace('const d = 64', 'const d = 16').replace('const m = 256', 'const m = 8').replace('const E = 16', 'const E = 5').replace(/^(param W[123]: .*)$/gm, sparse ? '$1 @sparse' : '$1');
const B = 48;
const x16 = new Tensor('f32', [B, 16], Float64Array.from({ length: B * 16 }, (_, i) => normalAt(23, i)));

describe.skipIf(skip)('the top-2 MoE grouped by expert on wasm-simd', () => {
  it.each([1, 2])('forward on %i thread(s) takes the grouped kernels and matches the reference', async (threads) => {
    const m = compileOk(small(false));
    const weights = seededWeights(m, 3);
    const ref = interpret(m, new Map([['x', x16]]), weights).outputs[0]!;
    const ex = new Executor(optimize(m, { lowering: 'fused' }), weights, 'wasm-simd', { threads });
    try {
      const { outputs, timings } = await ex.forward(new Map([['x', x16]]));
      expect([...timings.keys()]).toEqual(expect.arrayContaining(['expert_act (wasm-simd, by expert)', 'expert_out (wasm-simd, by expert)']));
      expect(scaledError(ref.data, outputs[0]!.data)).toBeLessThan(2e-5);
    } finally {
      ex.destroy();
    }
  });

  for (const sparse of [false, true])
    it(`training gradients equal the interpreter's (expert tables ${sparse ? '@sparse' : 'dense'})`, async () => {
      const m = compileOk(small(sparse));
      const w = float64Weights(m, 6);
      const targets = new Tensor('index', [B], Float64Array.from({ length: B }, (_, i) => Math.floor(uniformAt(29, i, 0) * 16)));
      const prog = compileTraining(m, { gradients: true });
      const want = denseGradients(m, prog, interpret(prog.module, new Map([['x', x16], [prog.targets!.name, targets]]), w, { training: true }).outputs);
      const trainer = new Trainer(m, new Map([...w].map(([n, t]) => [n, Float32Array.from(t.data)])), { backend: 'wasm-simd', optimizer: { ...DEFAULT_OPTIMIZER, kind: 'sgd' } });
      try {
        const f32 = (t: Tensor) => ({ shape: [...t.shape], data: Float32Array.from(t.data) });
        const { grads } = await trainer.gradients({ inputs: new Map([['x', f32(x16)]]), targets: f32(targets), tokens: B });
        for (const [name, g] of want) {
          const got = new Float64Array(g.length);
          const dense = grads.dense.get(name);
          if (dense) got.set(dense);
          const s = grads.sparse.get(name);
          if (s) {
            const rowSize = g.length / m.params.find((p) => p.name === name)!.shape[0]!;
            s.rows.forEach((r, i) => { for (let j = 0; j < rowSize; j++) got[r * rowSize + j] = got[r * rowSize + j]! + s.values![i * rowSize + j]!; });
          }
          expect(scaledError(g, got), `d loss / d ${name}`).toBeLessThan(1e-4);
        }
      } finally {
        trainer.destroy();
      }
    });
});
