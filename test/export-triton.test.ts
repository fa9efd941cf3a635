// `peerc export --torch --kernels triton` against the float64 interpreter, on this CPU machine:
// Triton's interpreter (TRITON_INTERPRET=1) runs the generated kernels on CPU tensors in float64,
// so the forward of every example and one training step (loss, every gradient, buffers) are held
// to the same bounds as the eager export. Needs python3 with torch, safetensors and triton
// (`pip install triton`); skipped, with that message, where they are missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { emitTorch, torchModule } from '../codegen/torch.js';
import { gpuDevice } from '../runtime/backends/webgpu/device.js';
import { ACTIVATIONS, GATES } from '../src/ir/ops/unary.js';
import { compileOk, EXAMPLE_FILES, pythonProbe, smallExample } from './helpers.js';
import { forwardAgrees, NOISELESS_EXAMPLES, trainStepAgrees } from './torch-export-checks.js';

const tritonVersion = pythonProbe('import torch, safetensors, triton; print(triton.__version__)', 'Triton export tests', 'python3 with torch, safetensors and triton not found (pip install torch safetensors numpy triton)');
const interpreted = { kernels: 'triton' as const, env: { TRITON_INTERPRET: '1' }, tolerance: 1e-10 };

describe.skipIf(!tritonVersion)(`Triton kernels (triton ${tritonVersion}, interpreted) agree with the float64 interpreter`, () => {
  for (const file of EXAMPLE_FILES) it(`forward: ${file}`, () => forwardAgrees(file, interpreted), 600_000);
  for (const file of NOISELESS_EXAMPLES) it(`training step: ${file}`, () => trainStepAgrees(file, interpreted), 600_000);
});

// Every gate and every expert activation of the op table becomes its own kernel: each is run.
const variant = (gate: string, act: string) => `
const d = 8
const n = 6
param Wq: [2, 4, d] = normal(0, 1)
param C1: [n, 2] = normal(0, 1)
param C2: [n, 2] = normal(0, 1)
param U: [n*n, d] = normal(0, 0.5) @sparse
param V: [n*n, d] = normal(0, 0.5) @sparse
param W: [d, 5] = normal(0, 1)
model f(x: [T, d]) -> [T, 5] {
  (s, idx) = product_topk(einsum("td,hcd->thc", x, Wq), C1, C2, 4)
  w = ${gate === 'none' ? 's' : `${gate}(s)`}
  a = ${act}(einsum("td,thkd->thk", x, gather(U, idx)))
  return matmul(x + einsum("thk,thkd->td", w * a, gather(V, idx)), W)
}
`;
describe.skipIf(!tritonVersion)('every gate and every expert activation as a Triton kernel (interpreted), forward and training step', () => {
  const acts = ACTIVATIONS.map((a) => a.name);
  GATES.forEach((gate, i) => {
    const act = acts[i % acts.length]!;
    it(`gate ${gate}, activation ${act}`, () => {
      const src = variant(gate, act);
      const { notes } = emitTorch(torchModule(compileOk(src)), 'v.peer', 'test', { kernels: 'triton' });
      expect(notes[0]).toContain(`(gate ${gate}) (activation ${act})`);
      forwardAgrees(`gate-${gate}.peer`, interpreted, src);
      trainStepAgrees(`gate-${gate}.peer`, interpreted, src);
    }, 600_000);
  });
});

describe.skipIf(!tritonVersion)('torch.compile takes the Triton export whole', () => {
  it('fullgraph=True traces the custom ops (fake implementations), and the compiled step equals the eager one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerc-compile-'));
    const { fileName, text } = emitTorch(torchModule(compileOk(smallExample('peer_paper.peer'))), 'peer_paper.peer', 'test', { kernels: 'triton' });
    writeFileSync(join(dir, fileName), text);
    const r = spawnSync('python3', [join(import.meta.dirname, 'python', 'compile_export.py'), join(dir, fileName)], { encoding: 'utf8', timeout: 600_000, env: { ...process.env, TRITON_INTERPRET: '1' } });
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toMatch(/compiled \(fullgraph\) = eager: largest difference .* over the output and 7 gradients/);
  }, 600_000);
});

describe('the Triton export says what it lowered', () => {
  it('names the fused ops with kernels, their gate and activation, and what stays eager', () => {
    const m = compileOk(smallExample('peer_paper.peer'));
    const { text, notes } = emitTorch(torchModule(m), 'peer_paper.peer', 'test', { kernels: 'triton' });
    expect(notes[0]).toMatch(/^Triton kernels for product_retrieve, expert_act, expert_out \(gate softmax\) \(activation \w+\)/);
    expect(text).toContain('KERNELS = "triton"');
    expect(text).toMatch(/def _retrieve_fwd_softmax\(/);
    expect(text).not.toMatch(/def _retrieve_fwd_sigmoid\(/);
  });
  it('a program without fused ops says --kernels triton changes nothing', () => {
    const { notes, text } = emitTorch(torchModule(compileOk(smallExample('dense_ffw.peer'))), 'dense_ffw.peer', 'test', { kernels: 'triton' });
    expect(notes).toEqual(['no fused retrieval or expert op in this program: --kernels triton changes nothing, every op is eager PyTorch']);
    expect(text).not.toContain('_retrieve_fwd_');
  });
});

describe.skipIf(!tritonVersion)('bench/gpu: pack.sh and run.sh --dry-run on this CPU', () => {
  it('packs the exported layers, peerc with Node and Dawn, and the scripts, and run.sh --dry-run prints one table and writes the JSON', async () => {
    const root = join(import.meta.dirname, '..');
    const out = mkdtempSync(join(tmpdir(), 'peerc-gpu-pack-'));
    const pack = spawnSync('bash', [join(root, 'bench', 'gpu', 'pack.sh'), out, '--dry-run'], { encoding: 'utf8', timeout: 600_000 });
    expect(pack.status, pack.stderr).toBe(0);
    expect(pack.stdout).toMatch(/packed .* \((\d+) MiB\): copy it to the GPU machine/);
    expect(Number(/\((\d+) MiB\)/.exec(pack.stdout)![1])).toBeLessThanOrEqual(60);
    const run = spawnSync('bash', [join(out, 'run.sh'), '--dry-run'], { encoding: 'utf8', timeout: 900_000, env: { ...process.env, PEERC_GPU_WORK: join(out, 'work') } });
    expect(run.status, run.stderr.slice(-3000)).toBe(0);
    // peerc's side, from the pack's own Node and Dawn: it runs where Dawn finds a Vulkan driver, else says why.
    const dawn = await gpuDevice().then(() => true, () => false);
    if (dawn) expect(run.stdout).toMatch(/h4 B=8 +peerc webgpu fused +[\d.]+ +[\d.]+ /);
    else expect(run.stdout).toMatch(/h4 B=8 +peerc webgpu fused .*not available/);
    expect(run.stdout).toMatch(/gpu\.js webgpu .*not run: gpu\.js's webgpu mode runs only in a browser/);
    const both = JSON.parse(readFileSync(join(out, 'results', 'gpu.json'), 'utf8')) as { rows: { engine: string }[] };
    expect(both.rows.map((r) => r.engine)).toEqual(expect.arrayContaining(['peerc webgpu fused', 'torch eager', 'torch triton']));
    for (const v of ['eager', 'triton', 'gathered']) expect(run.stdout).toMatch(new RegExp(`h4 B=8 +${v} +forward +[\\d.]+ ms`));
    expect(run.stdout).toMatch(/triton kernel expert_out \(gather_axpy\)/);
    const json = JSON.parse(readFileSync(join(out, 'results', 'torch-gpu.json'), 'utf8')) as { configs: Record<string, Record<string, { max_rel_diff_vs_eager: number }>> };
    // The Triton kernels and the materialising baseline compute the eager export's layer (float32).
    for (const [name, r] of Object.entries(json.configs['h4 B=8']!)) expect(r.max_rel_diff_vs_eager, name).toBeLessThan(1e-4);
    // The generated module passes the repository's Python lint (undefined names, unused code).
    const lint = spawnSync('ruff', ['check', '--no-cache', '--config', join(root, 'ruff.toml'), join(out, 'modules', 'h4-triton')], { encoding: 'utf8' });
    if (lint.error) console.log('ruff not found: the generated module is not linted (pip install ruff)');
    else expect(lint.status, lint.stdout).toBe(0);
  }, 900_000);
});
