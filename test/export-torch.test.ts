// `peerc export --torch` against the float64 interpreter: every example exported, loaded from
// float64 peerc weights with load_peerc and run in PyTorch (float64), agrees to 1e-10. Needs
// python3 with torch and safetensors (`pip install torch safetensors numpy`); skipped, with
// that message, where they are missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindInputDims, entryFunction, interpret } from '../src/interp/interpreter.js';
import { uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights, toWrite } from '../src/io/tensors.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { writeSafetensorsFile } from '../src/io/safetensors-file.js';
import { compileTraining, targetsShape } from '../src/autodiff/differentiate.js';
import { emitTorch, torchModule } from '../codegen/torch.js';
import { compileOk, EXAMPLE_FILES, pythonProbe, sampleInputs, smallExample } from './helpers.js';

const root = join(import.meta.dirname, '..');
const torchVersion = pythonProbe('import torch, safetensors; print(torch.__version__)', 'PyTorch export tests', 'python3 with torch and safetensors not found (pip install torch safetensors numpy)');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-torch-'));
const examples = EXAMPLE_FILES;

describe.skipIf(!torchVersion)(`PyTorch export (torch ${torchVersion}) agrees with the float64 interpreter`, () => {
  for (const file of examples)
    it(file, () => {
      const m = compileOk(smallExample(file), file);
      const weights = seededWeights(m, 2);
      const inputs = sampleInputs(m, 1);
      const ref = interpret(m, inputs, weights).outputs;
      const base = join(tmp, file.replace('.peer', ''));
      const { fileName, text } = emitTorch(torchModule(m), `examples/${file}`, 'test');
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

describe.skipIf(!torchVersion)('PyTorch export trains like peerc: loss, every gradient and running statistics of a step agree to 1e-8 (float64)', () => {
  // Examples without dropout or Gumbel noise (torch draws its own).
  const noiseless = examples.filter((f) => !/\b(dropout|gumbel)\(/.test(readFileSync(join(root, 'examples', f), 'utf8')));
  for (const file of noiseless)
    it(file, () => {
      const m = compileOk(smallExample(file), file);
      const prog = compileTraining(m, { gradients: true });
      const weights = seededWeights(m, 5);
      const inputs = sampleInputs(m, 2);
      if (prog.targets) {
        const { shape, classes } = targetsShape(prog.targets, bindInputDims(entryFunction(m), inputs));
        inputs.set(prog.targets.name, new Tensor('index', shape, Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.floor(uniformAt(9, i, 0) * classes))));
      }
      const ref = interpret(prog.module, inputs, weights, { training: true }).outputs;
      const base = join(tmp, `grad-${file.replace('.peer', '')}`);
      const { fileName, text } = emitTorch(torchModule(m), `examples/${file}`, 'test');
      writeFileSync(`${base}-${fileName}`, text);
      writeSafetensorsFile(`${base}-w.safetensors`, [...weights].map(([n, t]) => toWrite(n, t, 'F64')), {});
      writeSafetensorsFile(`${base}-in.safetensors`, [...inputs].map(([n, t]) => toWrite(n, t, 'F64')), {});
      const r = spawnSync('python3', [join(root, 'test', 'python', 'grad_export.py'), `${base}-${fileName}`, `${base}-w.safetensors`, `${base}-in.safetensors`, prog.targets?.name ?? '', `${base}-out.safetensors`], { encoding: 'utf8', timeout: 300_000 });
      expect(r.status, r.stderr).toBe(0);
      const { tensors } = readSafetensors(readFileSync(`${base}-out.safetensors`), 'out');
      const close = (want: ArrayLike<number>, got: ArrayLike<number>, what: string) => {
        expect(got.length, what).toBe(want.length);
        let err = 0, scale = 1e-6; // gradients that are zero in exact arithmetic (a bias every score shares) compare absolutely
        for (let i = 0; i < want.length; i++) {
          err = Math.max(err, Math.abs(want[i]! - got[i]!));
          scale = Math.max(scale, Math.abs(want[i]!));
        }
        expect(err / scale, what).toBeLessThan(1e-8);
      };
      close(ref[prog.layout.loss]!.data, tensors.get('loss')!.data, 'loss');
      for (const d of prog.layout.dense) close(ref[d.output]!.data, tensors.get(`grad.${d.param}`)!.data, `grad ${d.param}`);
      for (const name of new Set(prog.layout.sparse.map((s) => s.param))) {
        const info = m.params.find((p) => p.name === name)!;
        const full = new Float64Array(info.shape.reduce((a, b) => a * b, 1));
        for (const s of prog.layout.sparse.filter((x) => x.param === name)) {
          const ids = ref[s.indices]!.data, rows = ref[s.rows]!.data, size = rows.length / ids.length;
          ids.forEach((id, i) => { for (let c = 0; c < size; c++) full[id * size + c] = full[id * size + c]! + rows[i * size + c]!; });
        }
        close(full, tensors.get(`grad.${name}`)!.data, `grad ${name} (sparse rows)`);
      }
      for (const b of prog.layout.buffers) close(ref[b.output]!.data, tensors.get(`buffer.${b.name}`)!.data, `buffer ${b.name}`);
      expect(prog.layout.dense.length + prog.layout.sparse.length).toBeGreaterThan(0);
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
