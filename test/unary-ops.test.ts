// The unary op table (src/ir/ops/unary.ts), entry by entry, on every target: the
// float64 meaning is the definition; its IR gradient matches finite differences; the JavaScript
// spelling (gpu.js kernels, host tasks) and its derivative's match it; the PyTorch and ONNX
// spellings match it where Python has torch / onnxruntime (skipped, with the reason, elsewhere).
// The fused expert kernels on every backend are covered by codegen.test.ts, which walks
// EXPERT_ACTIVATIONS, derived from the same table.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GATES, UNARY_OPS, derivativeOpName, type UnaryDef, type JsSpelling } from '../src/ir/ops/unary.js';
import { OPS } from '../src/ir/ops/registry.js';
import { BUILTINS } from '../src/check/builtins.js';
import { ELEMENTWISE_OPS } from '../src/ir/ops/elementwise-fused.js';
import { EXPERT_ACTIVATIONS } from '../src/ir/ops/fused.js';
import { ACTIVATIONS as JS } from '../codegen/naive.js';
import { TORCH_OPS } from '../codegen/torch.js';
import { ONNX_OPS, emitOnnx } from '../codegen/onnx/export.js';
import { Tensor } from '../src/interp/tensor.js';
import { writeSafetensorsFile } from '../src/io/safetensors-file.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { toWrite } from '../src/io/tensors.js';
import { optimize } from '../src/passes/pipeline.js';
import { checkGradients } from './gradient-check.js';
import { compileOk, pythonProbe, sampleInputs } from './helpers.js';
import { interpret } from '../src/interp/interpreter.js';
import { seededWeights } from '../src/io/tensors.js';
import { Executor } from '../runtime/executor.js';
import { unavailableReason, type BackendName } from '../runtime/backends/info.js';

const root = join(import.meta.dirname, '..');
const GRID = Array.from({ length: 121 }, (_, i) => -30 + i * 0.5).concat([-1e-3, 1e-3, 0.1234, -2.5e-8]);
const runJs = (s: JsSpelling, x: number) => new Function('x', `return ${s('x')};`)(x) as number;
const close = (got: number, want: number, tol: number) => Math.abs(got - want) <= tol * Math.max(1, Math.abs(want));
/** Where an op is defined: log, sqrt and log1p tested on positive numbers. */
const POSITIVE = new Set(['log', 'sqrt', 'log1p']);
const argOf = (u: UnaryDef, x: number) => (POSITIVE.has(u.name) ? Math.abs(x) + 0.001 : x);
/** The op applied to `v` in the language: its builtin, or the operator for neg; step has no spelling (backward-only). */
const written = (u: UnaryDef, v: string): string | undefined => {
  const arg = POSITIVE.has(u.name) ? `(abs(${v}) + 0.001)` : v;
  return u.name === 'neg' ? `-${arg}` : u.name === 'step' ? undefined : `${u.name}(${arg})`;
};
const ACTIVATIONS = UNARY_OPS;

describe.each(UNARY_OPS.map((a) => [a.name, a] as const))('unary op %s', (name, a) => {
  it('is an IR op, a builtin (if it has a doc), an elementwise-fusable op, an expert activation (if an activation); every target spells it', () => {
    expect(OPS.has(name)).toBe(true);
    if (a.doc) expect(BUILTINS[name]).toBeDefined();
    expect(ELEMENTWISE_OPS.has(name)).toBe(true);
    expect(EXPERT_ACTIVATIONS.includes(name)).toBe(a.activation);
    expect(JS[name], 'JavaScript (gpu.js, host)').toBeDefined();
    expect(TORCH_OPS[name], 'PyTorch export').toBeDefined();
    expect(ONNX_OPS[name], 'ONNX export').toBeDefined();
    const d = derivativeOpName(a);
    if (d) {
      expect(OPS.has(d)).toBe(true);
      expect(JS[d], `JavaScript of ${d}`).toBeDefined();
    }
  });
  it('its JavaScript spelling agrees with the float64 definition', () => {
    for (const x of GRID.map((v) => argOf(a, v))) expect(close(runJs(a.js, x), a.f64(x), 1e-6), `${name}(${x}): js ${runJs(a.js, x)} f64 ${a.f64(x)}`).toBe(true);
  });
  it('its derivative agrees with finite differences (the backward-only op and its JavaScript too)', () => {
    const body = written(a, 'matmul(x, W)');
    // stop_gradient passes no gradient by design (test/stop-gradient.test.ts); finite differences see through it.
    if (body && a.derivative !== null) checkGradients(`param W: [4, 3] = normal(0, 1)\nmodel f(x: [T, 4]) -> [T, 3] {\n  return ${body}\n}\n`);
    if (a.derivative && typeof a.derivative !== 'function') {
      const d = a.derivative;
      for (const x of GRID.filter((v) => Math.abs(v) < 20)) {
        const h = 1e-6, numeric = (a.f64(x + h) - a.f64(x - h)) / (2 * h);
        expect(close(d.f64(x), numeric, 1e-6), `${name}'(${x})`).toBe(true);
        expect(close(runJs(d.js, x), d.f64(x), 1e-6), `${name}' js at ${x}`).toBe(true);
      }
    }
  });
});

const torchVersion = pythonProbe('import torch; print(torch.__version__)', 'PyTorch spellings of the activations', 'python3 with torch not found (pip install torch)');
describe.skipIf(!torchVersion)(`the activations' PyTorch spellings (torch ${torchVersion})`, () => {
  it('agree with the float64 definitions', () => {
    const program = [
      'import json, torch', 'import torch.nn.functional as F',
      `v = torch.tensor(${JSON.stringify(GRID)}, dtype=torch.float64)`,
      'p = v.abs() + 0.001',
      `print(json.dumps({${ACTIVATIONS.map((a) => `${JSON.stringify(a.name)}: (${a.torch(POSITIVE.has(a.name) ? 'p' : 'v')}).tolist()`).join(', ')}}))`,
    ].join('\n');
    const r = spawnSync('python3', ['-c', program], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as Record<string, number[]>;
    for (const a of ACTIVATIONS) GRID.forEach((x, i) => expect(close(got[a.name]![i]!, a.f64(argOf(a, x)), 1e-9), `${a.name}(${x}) in torch`).toBe(true));
  });
});

const ortVersion = pythonProbe('import onnxruntime, safetensors, numpy; print(onnxruntime.__version__)', 'ONNX spellings of the activations', 'python3 with onnxruntime and safetensors not found (pip install onnxruntime safetensors numpy)');
describe.skipIf(!ortVersion)(`the activations' ONNX spellings (onnxruntime ${ortVersion})`, () => {
  it('agree with the float64 definitions in float32', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'peerc-activations-'));
    const spelled = UNARY_OPS.filter((u) => written(u, 'x'));
    const m = compileOk(`model f(x: [T]) -> (${spelled.map(() => '[T]').join(', ')}) {\n  return ${spelled.map((u) => written(u, 'x')).join(', ')}\n}\n`);
    const out = emitOnnx(optimize(m, { lowering: 'fused' }), { get: () => new Float32Array(0) }, join(tmp, 'act.onnx'), 'peerc test');
    writeFileSync(join(tmp, 'act.onnx'), out.model);
    const x = new Tensor('f32', [GRID.length], Float64Array.from(GRID, Math.fround));
    writeSafetensorsFile(join(tmp, 'in.safetensors'), [toWrite('x', x, 'F64')], {});
    const r = spawnSync('python3', [join(root, 'test', 'python', 'run_onnx.py'), join(tmp, 'act.onnx'), join(tmp, 'in.safetensors'), join(tmp, 'out.safetensors')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const { tensors } = readSafetensors(readFileSync(join(tmp, 'out.safetensors')), 'out');
    spelled.forEach((a, k) => {
      const got = tensors.get(`output_${k}`)!.data;
      x.data.forEach((v, i) => expect(close(got[i]!, a.f64(argOf(a, v)), 2e-6), `${a.name}(${v}) in ONNX Runtime: ${got[i]} vs ${a.f64(argOf(a, v))}`).toBe(true));
    });
  });
});

describe('every unary op on every backend here, naive and fused, against the float64 interpreter', () => {
  const backends = (['cpu', 'webasm', 'wasm-simd', 'headlessgl'] as BackendName[]).filter((b) => !unavailableReason(b));
  const spelled = UNARY_OPS.filter((u) => written(u, 'x'));
  // A small affine map first, so each op also runs inside a fused elementwise tree.
  const m = compileOk(`param W: [4, 4] = normal(0, 1)\nmodel f(x: [T, 4]) -> (${spelled.map(() => '[T, 4]').join(', ')}) {\n  y = matmul(x, W) * 0.5\n  return ${spelled.map((u) => written(u, 'y')).join(', ')}\n}\n`);
  const weights = seededWeights(m, 2);
  const inputs = sampleInputs(m, 3);
  const ref = interpret(m, inputs, weights).outputs;
  for (const backend of backends)
    for (const lowering of ['naive', 'fused'] as const)
      it(`${backend}, ${lowering}`, async () => {
        const ex = new Executor(optimize(m, { lowering }), weights, backend);
        try {
          const { outputs } = await ex.forward(inputs);
          spelled.forEach((u, k) => ref[k]!.data.forEach((want, i) => expect(close(outputs[k]!.data[i]!, want, 2e-5), `${u.name} on ${backend} ${lowering}: ${outputs[k]!.data[i]} vs ${want}`).toBe(true)));
        } finally {
          ex.destroy();
        }
      }, 120_000);
});

describe('retrieval gates: softmax, none, and every activation of the table', () => {
  const program = (gate: string) => `
const d = 8
const n = 6
param Wq: [2, 4, d] = normal(0, 1)
param C1: [n, 2] = normal(0, 1)
param C2: [n, 2] = normal(0, 1)
param Vals: [n*n, d] = normal(0, 0.5)
param W: [d, 5] = normal(0, 1)
model f(x: [T, d]) -> [T, 5] {
  (s, idx) = product_topk(einsum("td,hcd->thc", x, Wq), C1, C2, 4)
  w = ${gate === 'none' ? 's' : `${gate}(s)`}
  return matmul(x + einsum("thk,thkd->td", w, gather(Vals, idx)), W)
}
`;
  const backends = (['cpu', 'wasm-simd'] as BackendName[]).filter((b) => !unavailableReason(b));
  for (const gate of GATES)
    it(`${gate}: fuses into the retrieval, agrees with the interpreter on ${backends.join(', ')}, and its gradient matches finite differences`, async () => {
      const m = compileOk(program(gate));
      const fused = optimize(m, { lowering: 'fused' });
      const retrievals = [...fused.functions.values()][0]!.graph.nodes.filter((n) => n.op === 'product_retrieve');
      expect(retrievals.map((n) => n.attrs.gate)).toEqual([gate]);
      const weights = seededWeights(m, 5);
      const inputs = sampleInputs(m, 2);
      const ref = interpret(m, inputs, weights).outputs[0]!;
      for (const backend of backends) {
        const ex = new Executor(fused, weights, backend);
        try {
          const got = (await ex.forward(inputs)).outputs[0]!.data;
          ref.data.forEach((want, i) => expect(close(got[i]!, want, 1e-4), `${gate} on ${backend}: ${got[i]} vs ${want}`).toBe(true));
        } finally {
          ex.destroy();
        }
      }
      checkGradients(program(gate), { tol: 1e-5 });
    }, 120_000);
});
