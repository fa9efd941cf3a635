// stop_gradient(x): x in every forward (reference, kernels, exports: test/unary-ops.test.ts runs
// it with every unary op), no gradient backward. Checked here against gradients of the same
// model written without the stopped path, with finite differences where the stopped value is a
// constant in disguise, and for what a parameter reached only through it gets: nothing.
import { describe, expect, it } from 'vitest';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { interpret } from '../src/interp/interpreter.js';
import { Tensor } from '../src/interp/tensor.js';
import { batch, checkGradients, denseGradients, weights } from './gradient-check.js';
import { compileOk, diagnose } from './helpers.js';

/** The analytic gradients of `src` at seeded weights, by parameter. */
function gradientsOf(src: string): Map<string, Float64Array> {
  const m = compileOk(src);
  const prog = compileTraining(m, { gradients: true });
  const outs = interpret(prog.module, batch(m, prog, 1), weights(m, 1), { training: true }).outputs;
  return denseGradients(m, prog, outs);
}

const model = (body: string) => `param W: [4, 3] = normal(0, 1)\nparam V: [4, 3] = normal(0, 1)\nmodel f(x: [T, 4]) -> [T, 3] {\n  a = matmul(x, W)\n  b = matmul(x, V)\n  return ${body}\n}\n`;

describe('stop_gradient', () => {
  it('a + stop_gradient(a): forward 2a, backward through one a only (half the gradient of 2a)', () => {
    const stopped = gradientsOf(model('a + stop_gradient(a) + 0.0 * b')).get('W')!;
    const twice = gradientsOf(model('2.0 * a + 0.0 * b')).get('W')!;
    stopped.forEach((v, i) => expect(v).toBeCloseTo(0.5 * twice[i]!, 12));
  });

  it('is x itself forward', () => {
    const inputs = new Map([['x', new Tensor('f32', [2, 4], Float64Array.from({ length: 8 }, (_, i) => Math.sin(i)))]]);
    const w = weights(compileOk(model('a')), 1);
    const run = (body: string) => interpret(compileOk(model(body)), inputs, w).outputs[0]!.data;
    expect([...run('stop_gradient(a) + b')]).toEqual([...run('a + b')]);
  });

  it('a parameter reached only through stop_gradient gets no gradient at all (not a zero one)', () => {
    const m = compileOk(model('a + stop_gradient(b)'));
    const prog = compileTraining(m, { gradients: true });
    expect(prog.layout.dense.map((d) => d.param)).toEqual(['W']);
    expect(prog.layout.sparse).toEqual([]);
  });

  it('where it is the only path, training says there is nothing to train', () => {
    expect(() => compileTraining(compileOk(model('stop_gradient(a + b)')), { gradients: true })).toThrow(/PEER0702/);
  });

  it('gradients through the rest of a model still match finite differences', () => {
    // Only W is checked (V gets no gradient): perturbing W leaves the stopped b as it is.
    checkGradients(model('a * stop_gradient(b)'));
  });

  it('is a builtin with one argument', () => {
    expect(diagnose('model f(x: [T]) -> [T] {\n  return stop_gradient(x, x)\n}\n')).toMatch(/PEER\d{4}/);
  });
});
