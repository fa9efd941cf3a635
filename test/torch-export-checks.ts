// The checks every PyTorch export (eager ops or Triton kernels) must pass against the float64
// interpreter: an example's forward, and one training step's loss, every gradient and the
// running statistics. Shared by export-torch.test.ts and export-triton.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { bindInputDims, entryFunction, interpret } from '../src/interp/interpreter.js';
import { uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights, toWrite } from '../src/io/tensors.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { writeSafetensorsFile } from '../src/io/safetensors-file.js';
import { compileTraining, targetsShape } from '../src/autodiff/differentiate.js';
import { emitTorch, torchModule, type TorchKernels } from '../codegen/torch.js';
import { compileOk, EXAMPLE_FILES, sampleInputs, smallExample } from './helpers.js';

const root = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-torch-'));

/** Examples without dropout or Gumbel noise (torch draws its own): their training steps compare exactly. */
export const NOISELESS_EXAMPLES = EXAMPLE_FILES.filter((f) => !/\b(dropout|gumbel)\(/.test(readFileSync(join(root, 'examples', f), 'utf8')));

export interface ExportRun {
  kernels: TorchKernels;
  /** Extra environment for python3 (TRITON_INTERPRET=1 runs Triton kernels on the CPU). */
  env?: Record<string, string>;
  /** Largest relative error allowed (float64 end to end). */
  tolerance: number;
}

function python(script: string, args: string[], run: ExportRun): string {
  const r = spawnSync('python3', ['-W', 'error::UserWarning:peerc', join(root, 'test', 'python', script), ...args], { encoding: 'utf8', timeout: 600_000, env: { ...process.env, ...run.env } });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr, 'no fallback warnings').not.toMatch(/runs as eager PyTorch ops/);
  return r.stdout;
}

function exportTo(base: string, file: string, m: ReturnType<typeof compileOk>, run: ExportRun): string {
  const { fileName, text } = emitTorch(torchModule(m), `examples/${file}`, 'test', { kernels: run.kernels });
  const path = `${base}-${fileName}`;
  writeFileSync(path, text);
  return path;
}

/** The example's forward in PyTorch (float64 weights and inputs) against the interpreter. */
export function forwardAgrees(file: string, run: ExportRun, source = smallExample(file)): void {
  const m = compileOk(source, file);
  const weights = seededWeights(m, 2);
  const inputs = sampleInputs(m);
  const ref = interpret(m, inputs, weights).outputs;
  const base = join(tmp, `${run.kernels}-${file.replace('.peer', '')}`);
  const module = exportTo(base, file, m, run);
  writeSafetensorsFile(`${base}-w.safetensors`, [...weights].map(([n, t]) => toWrite(n, t, 'F64')), {});
  writeSafetensorsFile(`${base}-in.safetensors`, [...inputs].map(([n, t]) => toWrite(n, t, 'F64')), {});
  const out = python('run_export.py', [module, `${base}-w.safetensors`, `${base}-in.safetensors`, `${base}-out.safetensors`], run);
  expect(out).toContain('torch.float64');
  const { tensors } = readSafetensors(readFileSync(`${base}-out.safetensors`), 'out');
  ref.forEach((t, i) => {
    const got = tensors.get(`output_${i}`)!;
    expect(got.shape).toEqual(t.shape);
    let err = 0, scale = 1;
    t.data.forEach((v, j) => {
      err = Math.max(err, Math.abs(v - got.data[j]!));
      scale = Math.max(scale, Math.abs(v));
    });
    expect(err / scale, `output ${i}`).toBeLessThan(run.tolerance);
  });
}

/** One training step in PyTorch (float64): loss, every gradient, every buffer against the interpreter. */
export function trainStepAgrees(file: string, run: ExportRun, source = smallExample(file)): void {
  const m = compileOk(source, file);
  const prog = compileTraining(m, { gradients: true });
  const weights = seededWeights(m, 5);
  const inputs = sampleInputs(m, 2);
  if (prog.targets) {
    const { shape, classes } = targetsShape(prog.targets, bindInputDims(entryFunction(m), inputs));
    inputs.set(prog.targets.name, new Tensor('index', shape, Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.floor(uniformAt(9, i, 0) * classes))));
  }
  const ref = interpret(prog.module, inputs, weights, { training: true }).outputs;
  const base = join(tmp, `${run.kernels}-grad-${file.replace('.peer', '')}`);
  const module = exportTo(base, file, m, run);
  writeSafetensorsFile(`${base}-w.safetensors`, [...weights].map(([n, t]) => toWrite(n, t, 'F64')), {});
  writeSafetensorsFile(`${base}-in.safetensors`, [...inputs].map(([n, t]) => toWrite(n, t, 'F64')), {});
  python('grad_export.py', [module, `${base}-w.safetensors`, `${base}-in.safetensors`, prog.targets?.name ?? '', `${base}-out.safetensors`], run);
  const { tensors } = readSafetensors(readFileSync(`${base}-out.safetensors`), 'out');
  const close = (want: ArrayLike<number>, got: ArrayLike<number>, what: string) => {
    expect(got.length, what).toBe(want.length);
    let err = 0, scale = 1e-6; // gradients that are zero in exact arithmetic (a bias every score shares) compare absolutely
    for (let i = 0; i < want.length; i++) {
      err = Math.max(err, Math.abs(want[i]! - got[i]!));
      scale = Math.max(scale, Math.abs(want[i]!));
    }
    expect(err / scale, what).toBeLessThan(run.tolerance * 100);
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
}
