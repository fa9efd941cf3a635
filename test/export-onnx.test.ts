// `peerc export --onnx` in ONNX Runtime (CPU) against the float64 interpreter: every example,
// float32 tolerance. Needs python3 with onnxruntime and safetensors (`pip install onnxruntime
// safetensors numpy`); skipped, with that message, where they are missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { seededWeights, toWrite } from '../src/io/tensors.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { writeSafetensorsFile } from '../src/io/safetensors-file.js';
import { optimize } from '../src/passes/pipeline.js';
import { toFloat32 } from '../runtime/executor.js';
import { emitOnnx } from '../codegen/onnx/export.js';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { compileOk, EXAMPLE_FILES, pythonProbe, sampleInputs, scaledError, smallExample } from './helpers.js';

const root = join(import.meta.dirname, '..');
const ortVersion = pythonProbe('import onnxruntime, safetensors, numpy; print(onnxruntime.__version__)', 'ONNX export tests', 'python3 with onnxruntime and safetensors not found (pip install onnxruntime safetensors numpy)');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-onnx-'));
const examples = EXAMPLE_FILES;

describe.skipIf(!ortVersion)(`ONNX export (onnxruntime ${ortVersion}) agrees with the float64 interpreter`, () => {
  for (const file of examples)
    it(file, () => {
      const m = compileOk(smallExample(file), file);
      const weights = seededWeights(m, 2);
      const inputs = sampleInputs(m, 1);
      const ref = interpret(m, inputs, weights).outputs;
      const base = join(tmp, file.replace('.peer', ''));
      const f32 = new Map([...weights].map(([n, t]) => [n, toFloat32(t)]));
      const out = emitOnnx(optimize(m, { lowering: 'fused' }), { get: (n) => f32.get(n)! }, `${base}.onnx`, 'peerc test');
      writeFileSync(`${base}.onnx`, out.model);
      // Examples with more than 32 MiB of weights (pk_arity3) carry them as external data.
      if (out.external) writeFileSync(`${base}.onnx.data`, Buffer.concat(out.external.chunks));
      writeSafetensorsFile(`${base}-in.safetensors`, [...inputs].map(([n, t]) => toWrite(n, t, 'F64')), {});
      const r = spawnSync('python3', [join(root, 'test', 'python', 'run_onnx.py'), `${base}.onnx`, `${base}-in.safetensors`, `${base}-out.safetensors`], { encoding: 'utf8', timeout: 300_000 });
      expect(r.status, r.stderr).toBe(0);
      const { tensors } = readSafetensors(readFileSync(`${base}-out.safetensors`), 'out');
      ref.forEach((t, i) => {
        const got = tensors.get(`output_${i}`)!;
        expect(got.shape).toEqual(t.shape);
        if (t.dtype === 'index') expect(Array.from(got.data)).toEqual(Array.from(t.data));
        else expect(scaledError(t.data, got.data), `output ${i}`).toBeLessThan(2e-5);
      });
    }, 300_000);
});

describe.skipIf(!ortVersion)('ONNX export with external data, from the CLI', () => {
  it('large weights go to MODEL.onnx.data, which ONNX Runtime reads beside the model', () => {
    const m = compileOk(smallExample('peer_paper.peer'));
    const weights = seededWeights(m, 4);
    const inputs = sampleInputs(m, 2);
    const ref = interpret(m, inputs, weights).outputs[0]!;
    const f32 = new Map([...weights].map(([n, t]) => [n, toFloat32(t)]));
    const path = join(tmp, 'ext.onnx');
    const out = emitOnnx(optimize(m, { lowering: 'fused' }), { get: (n) => f32.get(n)! }, path, 'peerc test', { inlineLimit: 0 });
    expect(out.external?.chunks.length).toBe(m.params.length);
    writeFileSync(path, out.model);
    writeFileSync(join(tmp, 'ext.onnx.data'), Buffer.concat(out.external!.chunks));
    writeSafetensorsFile(join(tmp, 'ext-in.safetensors'), [...inputs].map(([n, t]) => toWrite(n, t, 'F64')), {});
    const r = spawnSync('python3', [join(root, 'test', 'python', 'run_onnx.py'), path, join(tmp, 'ext-in.safetensors'), join(tmp, 'ext-out.safetensors')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const got = readSafetensors(readFileSync(join(tmp, 'ext-out.safetensors')), 'out').tensors.get('output_0')!;
    expect(scaledError(ref.data, got.data)).toBeLessThan(2e-5);
  }, 300_000);
  it('peerc export --onnx writes a model ONNX Runtime runs; without weights it is a usage error', () => {
    const cli = join(root, 'dist', 'peerc.js');
    const src = join(tmp, 'pkm.peer');
    writeFileSync(src, smallExample('pkm.peer'));
    const model = join(tmp, 'cli', 'pkm.onnx');
    const r = spawnSync(process.execPath, [cli, 'export', src, '--onnx', '--seed', '1', '-o', model], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*pkm\.onnx: ONNX opset 17, @\w+/);
    const check = spawnSync('python3', ['-c', `import onnx; m = onnx.load(${JSON.stringify(model)}); onnx.checker.check_model(m); print(m.opset_import[0].version)`], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout.trim()).toBe('17');
    const bad = spawnSync(process.execPath, [cli, 'export', src, '--onnx', '-o', model], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/needs the weights/);
  }, 300_000);
});

describe('ONNX export of large weights', () => {
  it('beyond 32 MiB of weights, tensors of 1 MiB or more go to external data (the model stays small)', () => {
    const m = compileOk('param E: [40000, 256] = normal(0, 1)\nparam b: [256] = zeros()\nmodel f(t: index[T]) -> [T, 256] {\n  return embedding(E, t) + b\n}\n');
    const out = emitOnnx(optimize(m, { lowering: 'fused' }), { get: (n) => new Float32Array(m.params.find((p) => p.name === n)!.shape.reduce((a, b) => a * b, 1)) }, 'big.onnx', 'test');
    expect(out.external?.name).toBe('big.onnx.data');
    expect(out.external!.chunks.map((c) => c.length)).toEqual([40000 * 256 * 4]);
    expect(out.model.length).toBeLessThan(1 << 16);
  });
});

describe('ONNX export errors', () => {
  it('an op without an ONNX form is PEER0900', () => {
    const m = compileOk(smallExample('peer_paper.peer'));
    const training = compileTraining(m, { gradients: true }).module;
    expect(() => emitOnnx(training, { get: () => new Float32Array(0) }, 'x.onnx', 'test')).toThrow(/PEER0900: op '\w+' has no ONNX form/);
  });
});
