// The arithmetic elementwise_fused kernel (codegen/wasm/elementwise.ts) against the same
// expression computed in JavaScript numbers and rounded once, as the generated JavaScript tasks
// do: bit for bit, for every operand kind, NaN, infinities and signed zeros included; and in a
// training step, where the BatchNorm backward's expressions run on it.
import { describe, expect, it } from 'vitest';
import { batchnormTrainingFunction, COLUMN_BLOCK, columnSumsFunction, elementwiseFunction, operandKind, wasmElementwiseFits, type OperandKind } from '../codegen/wasm/elementwise.js';
import { buildModule } from '../codegen/wasm/module.js';
import type { ElementwiseExpr } from '../src/ir/ops/elementwise-fused.js';
import { compileTraining, targetsShape } from '../src/autodiff/differentiate.js';
import { bindInputDims, entryFunction, interpret } from '../src/interp/interpreter.js';
import { normalAt, uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights } from '../src/io/tensors.js';
import { Executor } from '../runtime/executor.js';
import { unavailableReason } from '../runtime/backends/info.js';
import { compileOk } from './helpers.js';
import { batchnormTrainingTask } from '../codegen/host/columns.js';

const js = (e: ElementwiseExpr, at: (i: number) => number): number => {
  if ('value' in e) return e.value;
  if ('input' in e) return at(e.input);
  const a = e.args.map((x) => js(x, at));
  switch (e.op) {
    case 'add': return a[0]! + a[1]!;
    case 'sub': return a[0]! - a[1]!;
    case 'mul': return a[0]! * a[1]!;
    case 'div': return a[0]! / a[1]!;
    case 'maximum': return Math.max(a[0]!, a[1]!);
    case 'minimum': return Math.min(a[0]!, a[1]!);
    case 'neg': return -a[0]!;
    case 'abs': return Math.abs(a[0]!);
    case 'sqrt': return Math.sqrt(a[0]!);
    case 'relu': return Math.max(a[0]!, 0);
    case 'broadcast_to': return a[0]!;
  }
  throw new Error(e.op);
};

const I = (input: number): ElementwiseExpr => ({ input });
const op = (name: string, ...args: ElementwiseExpr[]): ElementwiseExpr => ({ op: name, args });

describe('arithmetic elementwise kernel', () => {
  const rows = 7, cols = 12;
  const special = [NaN, Infinity, -Infinity, 0, -0, 1e-40, 3.4e38, -2.5];
  const cases: { name: string; expr: ElementwiseExpr; kinds: OperandKind[] }[] = [
    // BatchNorm's backward: dy * g * (x - mean) * inv, the shapes it has
    { name: 'batchnorm backward', expr: op('mul', I(0), op('mul', op('sub', I(1), op('broadcast_to', I(2))), op('broadcast_to', I(3)))), kinds: ['full', 'full', 'row', 'row'] },
    { name: 'variance', expr: op('mul', op('sub', I(0), I(1)), op('sub', I(0), I(1))), kinds: ['full', 'row'] },
    { name: 'per-row scale and constants', expr: op('div', op('add', I(0), { value: 1e-5 }), op('sqrt', op('abs', I(1)))), kinds: ['full', 'col'] },
    { name: 'min, max, relu, neg with a scalar', expr: op('maximum', op('relu', op('neg', I(0))), op('minimum', I(1), I(2))), kinds: ['full', 'scalar', 'row'] },
  ];
  for (const c of cases)
    it(`${c.name}: bit for bit with JavaScript numbers rounded once`, () => {
      expect(wasmElementwiseFits(c.expr)).toBe(true);
      const sizes = c.kinds.map((k) => (k === 'full' ? rows * cols : k === 'row' ? cols : k === 'col' ? rows : 1));
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
      const f32 = new Float32Array(memory.buffer);
      let at = 64;
      const ptrs = sizes.map((n, i) => {
        const p = at;
        for (let q = 0; q < n; q++) f32[p / 4 + q] = q % 5 === 4 ? special[(q + i) % special.length]! : Math.sin(q * 1.7 + i) * 3;
        at += 4 * n + 16;
        return p;
      });
      const out = at;
      const fn = new WebAssembly.Instance(new WebAssembly.Module(buildModule([elementwiseFunction(c.expr, c.kinds, cols)], { minPages: 1, maxPages: 2 })), { env: { memory } }).exports.elementwise as (...a: number[]) => void;
      fn(out, ...ptrs, 0, 3);
      fn(out, ...ptrs, 3, rows);
      for (let r = 0; r < rows; r++)
        for (let j = 0; j < cols; j++) {
          const read = (i: number) => {
            const k = c.kinds[i]!, idx = k === 'full' ? r * cols + j : k === 'row' ? j : k === 'col' ? r : 0;
            return f32[ptrs[i]! / 4 + idx]!;
          };
          const want = Math.fround(js(c.expr, read)), got = f32[out / 4 + r * cols + j]!;
          if (Number.isNaN(want)) expect(got).toBeNaN();
          else expect(Object.is(got, want), `[${r}, ${j}]: ${got} vs ${want}`).toBe(true);
        }
    });
  for (const mean of [false, true])
    it(`column ${mean ? 'means' : 'sums'}: float64 in row order, rounded once, as the column tasks compute them`, () => {
      const rows = 37, cols = 3 * COLUMN_BLOCK;
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
      const f32 = new Float32Array(memory.buffer);
      const x = 64, out = x + 4 * rows * cols;
      for (let i = 0; i < rows * cols; i++) f32[x / 4 + i] = i % 97 === 5 ? 1e30 : Math.sin(i * 0.61) * 1e3;
      const fn = new WebAssembly.Instance(new WebAssembly.Module(buildModule([columnSumsFunction(mean)], { minPages: 1, maxPages: 2 })), { env: { memory } }).exports.columnSums as (...a: number[]) => void;
      fn(x, out, rows, cols, 0, 1);
      fn(x, out, rows, cols, 1, 3);
      for (let j = 0; j < cols; j++) {
        let acc = 0;
        for (let r = 0; r < rows; r++) acc = acc + f32[x / 4 + r * cols + j]!;
        expect(f32[out / 4 + j], `column ${j}`).toBe(Math.fround(mean ? acc / rows : acc));
      }
    });
  it('training BatchNorm: the same bits as the column task', () => {
    const rows = 29, cols = 2 * COLUMN_BLOCK, eps = 1e-5;
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
    const f32 = new Float32Array(memory.buffer);
    const x = 64, g = x + 4 * rows * cols, b = g + 4 * cols, out = b + 4 * cols;
    for (let i = 0; i < rows * cols; i++) f32[x / 4 + i] = Math.sin(i * 0.37) * 5 + (i % cols) * 0.5;
    for (let j = 0; j < cols; j++) {
      f32[g / 4 + j] = 1 + Math.cos(j);
      f32[b / 4 + j] = Math.sin(j * 3);
    }
    const fn = new WebAssembly.Instance(new WebAssembly.Module(buildModule([batchnormTrainingFunction()], { minPages: 1, maxPages: 2 })), { env: { memory } }).exports.batchnormTraining as (...a: number[]) => void;
    fn(x, g, b, out, rows, cols, 0, 1, eps);
    fn(x, g, b, out, rows, cols, 1, 2, eps);
    const want = new Float32Array(rows * cols);
    const task = new Function(`return (${batchnormTrainingTask(rows, cols, '0.00001').source})`)() as (args: unknown[], from: number, to: number) => void;
    task([f32.slice(x / 4, x / 4 + rows * cols), f32.slice(g / 4, g / 4 + cols), f32.slice(b / 4, b / 4 + cols), want], 0, cols);
    expect(Array.from(f32.slice(out / 4, out / 4 + rows * cols))).toEqual(Array.from(want));
  });
  it('refuses what wasm has no instruction for, and reads broadcasts from the right', () => {
    expect(wasmElementwiseFits(op('mul', I(0), op('exp', I(1))))).toBe(false);
    expect(wasmElementwiseFits(op('gelu_grad', I(0)))).toBe(false);
    expect(operandKind([256, 512], [256, 512])).toBe('full');
    expect(operandKind([512], [256, 512])).toBe('row');
    expect(operandKind([1, 512], [256, 512])).toBe('row');
    expect(operandKind([256, 1], [256, 512])).toBe('col');
    expect(operandKind([], [256, 512])).toBe('scalar');
    expect(operandKind([256], [256, 512])).toBeUndefined();
    expect(operandKind([4, 1, 512], [4, 3, 512])).toBeUndefined();
  });
});

describe.skipIf(!!unavailableReason('wasm-simd'))('in a training step on wasm-simd', () => {
  it("BatchNorm's backward runs on the kernel and the step matches the float64 interpreter", async () => {
    const m = compileOk(`
param W: [32, 64] = normal(0, 0.2)
param g: [64] = ones()
param b: [64] = zeros()
buffer rm: [64] = zeros()
buffer rv: [64] = ones()
param Wo: [64, 4] = normal(0, 0.2)
model f(x: [T, 32]) -> [T, 4] {
  return matmul(relu(batchnorm(matmul(x, W), g, b, rm, rv)), Wo)
}
`);
    const prog = compileTraining(m, { gradients: true });
    const T = 256;
    const inputs = new Map<string, Tensor>([['x', new Tensor('f32', [T, 32], Float64Array.from({ length: T * 32 }, (_, i) => normalAt(3, i)))]]);
    if (prog.targets) {
      const { shape, classes } = targetsShape(prog.targets, bindInputDims(entryFunction(m), inputs));
      inputs.set(prog.targets.name, new Tensor('index', shape, Float64Array.from({ length: shape.reduce((a, c) => a * c, 1) }, (_, i) => Math.floor(uniformAt(4, i, 0) * classes))));
    }
    const w = seededWeights(m, 2);
    const ref = interpret(prog.module, inputs, w, { training: true }).outputs;
    const ex = new Executor(prog.module, w, 'wasm-simd', { training: true, paramsAsArguments: true });
    try {
      const { outputs: got, timings } = await ex.forward(inputs);
      expect([...timings.keys()]).toEqual(expect.arrayContaining(['elementwise_fused (wasm-simd)', 'reduce_mean (wasm-simd)', 'batchnorm (wasm-simd)']));
      expect(Math.abs(got[0]!.data[0]! - ref[0]!.data[0]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref[0]!.data[0]!)));
      for (const d of [...prog.layout.dense, ...prog.layout.buffers]) {
        const a = got[d.output]!.data, r = ref[d.output]!.data;
        let num = 0, den = 0;
        for (let i = 0; i < a.length; i++) {
          num = Math.max(num, Math.abs(a[i]! - r[i]!));
          den = Math.max(den, Math.abs(r[i]!));
        }
        expect(num / Math.max(den, 1e-6), 'param' in d ? d.param : d.name).toBeLessThan(2e-3);
      }
    } finally {
      ex.destroy();
    }
  });
});
