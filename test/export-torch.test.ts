// `peerc export --torch` against the float64 interpreter: every example exported, loaded from
// float64 peerc weights with load_peerc and run in PyTorch (float64), agrees to 1e-10. Needs
// python3 with torch and safetensors (`pip install torch safetensors numpy`); skipped, with
// that message, where they are missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { seededWeights, toWrite } from '../src/io/tensors.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { writeSafetensorsFile } from '../src/io/safetensors-file.js';
import { optimize } from '../src/passes/pipeline.js';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { emitTorch } from '../codegen/torch.js';
import { compileOk, sampleInputs, smallExample } from './helpers.js';

const root = join(import.meta.dirname, '..');
const probe = spawnSync('python3', ['-c', 'import torch, safetensors; print(torch.__version__)'], { encoding: 'utf8' });
const torchVersion = probe.status === 0 ? probe.stdout.trim() : undefined;
if (!torchVersion) console.log('PyTorch export tests skipped: python3 with torch and safetensors not found (pip install torch safetensors numpy)');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-torch-'));
const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.peer'));

describe.skipIf(!torchVersion)(`PyTorch export (torch ${torchVersion}) agrees with the float64 interpreter`, () => {
  for (const file of examples)
    it(file, () => {
      const m = compileOk(smallExample(file), file);
      const weights = seededWeights(m, 2);
      const inputs = sampleInputs(m, 1);
      const ref = interpret(m, inputs, weights).outputs;
      const base = join(tmp, file.replace('.peer', ''));
      const { fileName, text } = emitTorch(optimize(m, { lowering: 'fused' }), `examples/${file}`, 'test');
      writeFileSync(`${base}-${fileName}`, text);
      writeSafetensorsFile(`${base}-w.safetensors`, [...weights].map(([n, t]) => toWrite(n, t, 'F64')), {});
      writeSafetensorsFile(`${base}-in.safetensors`, [...inputs].map(([n, t]) => toWrite(n, t, 'F64')), {});
      const r = spawnSync('python3', [join(root, 'test', 'python', 'run_export.py'), `${base}-${fileName}`, `${base}-w.safetensors`, `${base}-in.safetensors`, `${base}-out.safetensors`], { encoding: 'utf8', timeout: 300_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain('torch.float64');
      const { tensors } = readSafetensors(readFileSync(`${base}-out.safetensors`), 'out');
      ref.forEach((t, i) => {
        const got = tensors.get(`output_${i}`)!;
        expect(got.shape).toEqual(t.shape);
        let err = 0, scale = 1;
        t.data.forEach((v, j) => {
          err = Math.max(err, Math.abs(v - got.data[j]!));
          scale = Math.max(scale, Math.abs(v));
        });
        expect(err / scale, `output ${i}`).toBeLessThan(1e-10);
      });
    }, 300_000);
});

describe('export errors', () => {
  it('an op without a PyTorch form is PEER0900 at its source line', () => {
    const m = compileOk(smallExample('peer_paper.peer'));
    const training = compileTraining(m, { gradients: true }).module;
    expect(() => emitTorch(training, 'x.peer', 'test')).toThrow(/PEER0900: op '\w+' has no PyTorch form/);
  });
});

describe.skipIf(!torchVersion)('peerc export --torch as a user runs it', () => {
  it('exports, and the module loads a peerc train checkpoint and runs', () => {
    const cli = join(root, 'dist', 'peerc.js');
    const peerc = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', timeout: 300_000 });
    const src = join(tmp, 'recall.peer');
    writeFileSync(src, smallExample('recall.peer').replace('const K = 4096', 'const K = 64'));
    const run = join(tmp, 'recall-run');
    expect(peerc('train', src, '--steps', '2', '--backend', 'cpu', '--out', run, '--eval-every', '2').status).toBe(0);
    const out = join(tmp, 'exported');
    const r = peerc('export', src, '--torch', '-o', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*recall\.py: class Recall and load_peerc/);
    const py = `import sys, torch; sys.path.insert(0, ${JSON.stringify(out)}); from recall import load_peerc, INPUTS, PARAMS
m = load_peerc(${JSON.stringify(join(run, 'checkpoint.safetensors'))})
assert sorted(n for n, _ in m.named_parameters()) == sorted(n for n, r, _ in PARAMS if r == "param")
args = {name: torch.randint(0, 64, [5] + [int(s) for s in shape[1:]]) if dtype == "index" else torch.randn([5] + [int(s) for s in shape[1:]]) for name, dtype, shape in INPUTS}
y = m(**args)
print(m.training, y.dtype, list(y.shape), bool(torch.isfinite(y).all()))`;
    const p = spawnSync('python3', ['-c', py], { encoding: 'utf8' });
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout.trim()).toMatch(/^False torch\.float32 \[5, \d+\] True$/);
  }, 300_000);
});
