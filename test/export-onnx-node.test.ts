// `peerc export --onnx` in onnxruntime-node (the native CPU build that ships in the npm package;
// an opt-in extra: npm run extras -- ort): every example agrees with the float64
// interpreter within float32 tolerance, with identical expert indices. Skipped where the
// package cannot load.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { loadOrt, ortFeeds, type Ort } from '../runtime/cli/bench-ort.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize } from '../src/passes/pipeline.js';
import { toFloat32 } from '../runtime/executor.js';
import { emitOnnx } from '../codegen/onnx/export.js';
import { compileOk, EXAMPLE_FILES, sampleInputs, scaledError, smallExample } from './helpers.js';

const loaded = await loadOrt();
if (typeof loaded === 'string') console.log(`onnxruntime-node tests skipped: the package does not load here (${loaded}); npm run extras -- ort installs it`);
const ort: Ort | undefined = typeof loaded === 'string' ? undefined : loaded;
const root = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-ort-node-'));
const examples = EXAMPLE_FILES;

describe.skipIf(!ort)(`ONNX export in onnxruntime-node ${ort?.env.versions.node ?? ''} (CPU)`, () => {
  for (const file of examples)
    it(`${file} agrees with the float64 interpreter`, async () => {
      const m = compileOk(smallExample(file), file);
      const weights = seededWeights(m, 2);
      const inputs = sampleInputs(m, 1);
      const ref = interpret(m, inputs, weights).outputs;
      const path = join(tmp, file.replace('.peer', '.onnx'));
      const f32 = new Map([...weights].map(([n, t]) => [n, toFloat32(t)]));
      const out = emitOnnx(optimize(m, { lowering: 'fused' }), { get: (n) => f32.get(n)! }, path, 'peerc test');
      writeFileSync(path, out.model);
      if (out.external) writeFileSync(`${path}.data`, Buffer.concat(out.external.chunks));
      // From a path, so ONNX Runtime finds external data beside the model.
      const session = await ort!.InferenceSession.create(path, { executionProviders: ['cpu'] });
      const feeds = ortFeeds(ort!, m, inputs);
      const results = await session.run(feeds);
      ref.forEach((want, i) => {
        const got = results[session.outputNames[i]!]!;
        expect([...got.dims]).toEqual(want.shape);
        const data = Array.from(got.data as ArrayLike<number | bigint>, Number);
        if (want.dtype === 'index') expect(data).toEqual(Array.from(want.data));
        else expect(scaledError(want.data, data), `output ${i}`).toBeLessThan(2e-5);
      });
      await session.release();
    }, 300_000);
});

describe.skipIf(!ort)('peerc bench with the ONNX Runtime baseline', () => {
  it('runs the exported model beside the fused kernels, and they agree', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [join(root, 'dist', 'peerc.js'), 'bench', 'examples/pkm.peer', '--tokens', '16', '--runs', '2', '--json', '--skip-naive', '--skip-reference'], { encoding: 'utf8', timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { onnxruntime: { available: boolean; medianMs: number; maxDiffVsFused: number; version: string } };
    expect(report.onnxruntime.available).toBe(true);
    expect(report.onnxruntime.medianMs).toBeGreaterThan(0);
    expect(report.onnxruntime.maxDiffVsFused).toBeLessThan(1e-4);
    const skipped = spawnSync(process.execPath, [join(root, 'dist', 'peerc.js'), 'bench', 'examples/pkm.peer', '--tokens', '8', '--runs', '1', '--skip-naive', '--skip-reference', '--skip-ort'], { encoding: 'utf8', timeout: 300_000 });
    expect(skipped.status, skipped.stderr).toBe(0);
    expect(skipped.stdout).not.toMatch(/onnxruntime|ONNX Runtime/);
  }, 300_000);
});
