// Gradients against central finite differences on the float64 reference interpreter, shared by
// the tests of every differentiable op (autodiff.test.ts) and of the activation table.
import { expect } from 'vitest';
import { compileTraining, targetsShape, type TrainingProgram } from '../src/autodiff/differentiate.js';
import { bindInputDims, entryFunction, interpret } from '../src/interp/interpreter.js';
import { uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights } from '../src/io/tensors.js';
import { compileOk, sampleInputs } from './helpers.js';
import type { IRModule } from '../src/ir/graph.js';

/** Inputs plus targets below the class count. */
export function batch(m: IRModule, p: TrainingProgram, seed: number): Map<string, Tensor> {
  const inputs = sampleInputs(m, seed);
  if (p.targets) {
    const { shape, classes } = targetsShape(p.targets, bindInputDims(entryFunction(m), inputs));
    const size = shape.reduce((a, b) => a * b, 1);
    inputs.set(p.targets.name, new Tensor('index', shape, Float64Array.from({ length: size }, (_, i) => Math.floor(uniformAt(seed + 5, i, 1) * classes))));
  }
  return inputs;
}

/** Materialised float64 weights, so finite differences can perturb them. */
export function weights(m: IRModule, seed: number): Map<string, Tensor> {
  return new Map([...seededWeights(m, seed)].map(([k, t]) => [k, new Tensor(t.dtype, t.shape, Float64Array.from(t.data))]));
}

/** Every parameter's gradient as a dense array, sparse (row id, row) pairs summed in. */
export function denseGradients(m: IRModule, prog: TrainingProgram, outs: Tensor[]): Map<string, Float64Array> {
  const analytic = new Map<string, Float64Array>();
  for (const d of prog.layout.dense) analytic.set(d.param, Float64Array.from(outs[d.output]!.data));
  for (const s of prog.layout.sparse) {
    const p = m.params.find((q) => q.name === s.param)!;
    const ids = outs[s.indices]!.data, rows = outs[s.rows]!.data;
    // Row ids index the table as its gathers read it (a stacked [L, N, d] table as L*N rows of d).
    const rowSize = rows.length / ids.length;
    const dense = analytic.get(s.param) ?? new Float64Array(p.shape.reduce((a, b) => a * b, 1));
    ids.forEach((r, i) => { for (let j = 0; j < rowSize; j++) dense[r * rowSize + j] = dense[r * rowSize + j]! + rows[i * rowSize + j]!; });
    analytic.set(s.param, dense);
  }
  return analytic;
}

export function checkGradients(src: string, options: { seed?: number; coords?: number; tol?: number; eps?: number } = {}): void {
  const m = compileOk(src);
  const prog = compileTraining(m, { gradients: true });
  const seed = options.seed ?? 1;
  const w = weights(m, seed);
  const inputs = batch(m, prog, seed);
  const run = (ws: Map<string, Tensor>) => interpret(prog.module, inputs, ws, { training: true }).outputs;
  const outs = run(w);
  const lossAt = (ws: Map<string, Tensor>) => run(ws)[prog.layout.loss]!.data[0]!;
  const analytic = denseGradients(m, prog, outs);
  expect(analytic.size).toBeGreaterThan(0);
  const eps = options.eps ?? 1e-5;
  let checked = 0;
  for (const [name, grad] of analytic) {
    const base = w.get(name)!;
    // Coordinates: the largest-gradient ones plus random ones (sparse tables are mostly zero).
    const byMagnitude = [...grad.keys()].sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!)).slice(0, 3);
    const random = Array.from({ length: options.coords ?? 4 }, (_, i) => Math.floor(uniformAt(seed + 9, i, 2) * grad.length));
    for (const c of new Set([...byMagnitude, ...random])) {
      const at = (delta: number) => {
        const data = Float64Array.from(base.data);
        data[c] = data[c]! + delta;
        return lossAt(new Map(w).set(name, new Tensor('f32', base.shape, data)));
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      const tol = (options.tol ?? 1e-6) * Math.max(1, Math.abs(numeric));
      expect(Math.abs(grad[c]! - numeric), `d loss / d ${name}[${c}]: analytic ${grad[c]} numeric ${numeric}`).toBeLessThan(tol);
      checked++;
    }
  }
  expect(checked).toBeGreaterThan(0);
}

