// Every IR op on every target: a lowering, or a declaration of why there is none (the op's
// `stage`: a leaf has no kernel; a backward-only op has no form in the forward-only exports,
// which then stop with PEER0900 naming it before writing anything). A gap fails here, naming the
// op and the target, instead of reaching a user as a crash.
import { describe, expect, it } from 'vitest';
import { OPS } from '../src/ir/ops/registry.js';
import { NAIVE_RENDERERS } from '../codegen/naive.js';
import { FUSED_RENDERERS } from '../codegen/fused.js';
import { TORCH_OPS, emitTorch } from '../codegen/torch.js';
import { ONNX_OPS, emitOnnx } from '../codegen/onnx/export.js';
import { HOST_NOISE_OPS, VIEW_OPS } from '../runtime/executor.js';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { CompileError } from '../src/diagnostics/diagnostic.js';
import { compileOk } from './helpers.js';

const TARGETS: Record<string, { has: (op: string) => boolean; forwardOnly: boolean }> = {
  'gpu.js kernels (cpu, webasm, webgl2, webgpu, headlessgl; wasm-simd for all but contractions)': {
    has: (op) => op in NAIVE_RENDERERS || op in FUSED_RENDERERS || VIEW_OPS.has(op) || HOST_NOISE_OPS.has(op),
    forwardOnly: false,
  },
  'PyTorch export': { has: (op) => op in TORCH_OPS, forwardOnly: true },
  'ONNX export': { has: (op) => op in ONNX_OPS, forwardOnly: true },
};

describe('every op has a lowering on every target, or says why not', () => {
  for (const [target, t] of Object.entries(TARGETS))
    it(target, () => {
      const missing = [...OPS.values()]
        .filter((op) => op.stage !== 'leaf' && !(t.forwardOnly && op.stage === 'backward'))
        .filter((op) => !t.has(op.name))
        .map((op) => `${op.name} has no ${target} lowering`);
      expect(missing).toEqual([]);
    });
});

describe('the exports refuse a backward-only op with a coded error', () => {
  const training = compileTraining(compileOk('param W: [4, 3] = normal(0, 1)\nmodel f(x: [T, 4]) -> [T, 2] {\n  return gelu(matmul(x, W))[:, 0:2]\n}\n'), { gradients: true }).module;
  const backward = [...training.functions.values()][0]!.graph.nodes.filter((n) => OPS.get(n.op)?.stage === 'backward').map((n) => n.op);
  it('the training program holds backward-only ops', () => expect(backward.length).toBeGreaterThan(0));
  const coded = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e instanceof CompileError ? e.diagnostic.code : String(e);
    }
    return 'no error';
  };
  it('ONNX: PEER0900', () => expect(coded(() => emitOnnx(training, { get: () => new Float32Array(0) }, 'x.onnx', 'test'))).toBe('PEER0900'));
  it('PyTorch: PEER0900', () => expect(coded(() => emitTorch(training, 'x.peer', 'test'))).toBe('PEER0900'));
});
