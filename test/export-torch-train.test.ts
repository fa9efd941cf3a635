// The emitted train.py: two torchrun ranks (gloo, CPU) with FSDP2 and the expert table sharded
// by rows train the recall example for 20 steps, step for step as peerc train does on one
// process (same seeded weights, same batches, peerc's optimizer), and the checkpoint goes back
// into peerc (train --resume, run --weights); a byte-level model trained on text the same way
// samples with peerc sample, its BatchNorm synchronised across ranks so the steps match peerc's.
// Needs python3 with torch and safetensors; skipped without them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../runtime/train/checkpoint.js';
import { pythonProbe, runPeerc } from './helpers.js';

const torchVersion = pythonProbe('import torch, safetensors, numpy; import torch.distributed.fsdp as f; f.fully_shard; print(torch.__version__)', 'train.py tests', 'python3 with torch (FSDP2), safetensors and numpy not found (pip install torch safetensors numpy)');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-torch-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const peerc = (...args: string[]) => runPeerc(args);
const torchrun = (dir: string, ranks: number, ...args: string[]) =>
  spawnSync('python3', ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', String(ranks), join(dir, 'train.py'), ...args], { encoding: 'utf8', timeout: 600_000, cwd: dir, env: { ...process.env, OMP_NUM_THREADS: '1' } });
const metrics = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { step: number; split: string; loss: number });

describe.skipIf(!torchVersion)(`train.py under torchrun (torch ${torchVersion}, gloo)`, () => {
  const small = ['--set', 'N=32^2', '--set', 'K=512'];

  it('2 ranks with FSDP2 and row-sharded experts follow peerc train step for step, and the checkpoint goes back into peerc', () => {
    const dir = join(tmp, 'recall');
    const exp = peerc('export', 'examples/recall.peer', '--torch', '-o', dir, ...small);
    expect(exp.status, exp.stderr).toBe(0);
    expect(exp.stdout).toMatch(/train\.py and .*train\.json \(its settings\): torchrun .*Vals sharded by rows; recall task/);
    const run = torchrun(dir, 2, '--out', join(dir, 'run'), '--steps', '20', '--eval-every', '10');
    expect(run.status, run.stderr.slice(-3000)).toBe(0);
    expect(run.stdout).toMatch(/rank 0: Vals rows 0\.\.511 of 1024 \(row-sharded/);
    expect(run.stdout).toMatch(/rank 1: Vals rows 512\.\.1023 of 1024/);
    expect(run.stdout).toMatch(/2 ranks \(FSDP2\)/);

    const ref = peerc('train', 'examples/recall.peer', ...small, '--steps', '20', '--eval-every', '10', '--out', join(tmp, 'peerc-run'));
    expect(ref.status, ref.stderr).toBe(0);
    const torchM = metrics(join(dir, 'run', 'metrics.jsonl')), peercM = metrics(join(tmp, 'peerc-run', 'metrics.jsonl'));
    expect(torchM.map((r) => `${r.split}@${r.step}`)).toEqual(peercM.map((r) => `${r.split}@${r.step}`));
    const diffs = torchM.map((r, i) => Math.abs(r.loss - peercM[i]!.loss));
    console.log(`train.py (2 ranks) vs peerc train: largest loss difference over 20 steps ${Math.max(...diffs).toExponential(2)}; validation ${torchM.filter((r) => r.split === 'validation').map((r) => r.loss.toFixed(4)).join(' -> ')}`);
    expect(diffs[0]!).toBeLessThan(1e-5); // same seeded weights, same validation batches
    expect(diffs[1]!).toBeLessThan(1e-5); // the first step: same batch, same loss
    expect(Math.max(...diffs)).toBeLessThan(1e-2); // float32 drift over 20 steps
    const val = torchM.filter((r) => r.split === 'validation');
    expect(val.at(-1)!.loss).toBeLessThan(val[0]!.loss - 0.3);

    const ckpt = join(dir, 'run', 'checkpoint.safetensors');
    const ck = readCheckpoint(ckpt);
    expect(ck.meta.step).toBe(20);
    expect(ck.meta.backend).toMatch(/2 ranks, FSDP2/);
    expect(ck.tensors.get('param.Vals')!.shape).toEqual([1024, 64]); // the row shards gathered back
    expect(ck.tensors.get('opt.v.E')!.shape).toEqual([512, 64]); // FSDP2 shards gathered back
    const resumed = peerc('train', 'examples/recall.peer', ...small, '--resume', '--out', join(dir, 'run'), '--steps', '24');
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/resuming at step 20 of 24/);
    const inputs = join(tmp, 'in.safetensors');
    expect(peerc('init', 'examples/recall.peer', ...small, '--inputs', '--tokens', '4', '--seed', '1', '--out', inputs).status).toBe(0);
    const ran = peerc('run', 'examples/recall.peer', ...small, '--weights', ckpt, '--inputs', inputs, '--out', join(tmp, 'out.safetensors'));
    expect(ran.status, ran.stderr).toBe(0);
  });

  it('continues a peerc train run from its checkpoint on 2 ranks, step for step as peerc train --resume', () => {
    const dir = join(tmp, 'recall');
    const laptop = join(tmp, 'laptop');
    expect(peerc('train', 'examples/recall.peer', ...small, '--steps', '10', '--eval-every', '5', '--out', laptop).status).toBe(0);
    const ckpt = join(tmp, 'laptop-step10.safetensors');
    writeFileSync(ckpt, readFileSync(join(laptop, 'checkpoint.safetensors')));
    const run = torchrun(dir, 2, '--resume', ckpt, '--steps', '20', '--out', join(dir, 'resumed'));
    expect(run.status, run.stderr.slice(-3000)).toBe(0);
    expect(run.stdout).toMatch(/resuming at step 10 of 20/);
    expect(torchrun(dir, 2, '--resume', ckpt, '--batch', '32', '--steps', '20', '--out', join(dir, 'bad')).stderr).toMatch(/--batch is 64 in this run and cannot change/);
    const cont = peerc('train', 'examples/recall.peer', ...small, '--resume', '--out', laptop, '--steps', '20');
    expect(cont.status, cont.stderr).toBe(0);
    const want = metrics(join(laptop, 'metrics.jsonl')).filter((r) => r.split === 'train' && r.step > 10);
    const got = metrics(join(dir, 'resumed', 'metrics.jsonl')).filter((r) => r.split === 'train');
    expect(got.map((r) => r.step)).toEqual(want.map((r) => r.step));
    const diff = Math.max(...got.map((r, i) => Math.abs(r.loss - want[i]!.loss)));
    console.log(`train.py --resume (2 ranks) vs peerc train --resume, steps 11-20: largest loss difference ${diff.toExponential(2)}`);
    expect(Math.abs(got[0]!.loss - want[0]!.loss)).toBeLessThan(1e-4);
    expect(diff).toBeLessThan(1e-2);
  });

  it('trains a byte-level model on text across 2 ranks, and peerc sample reads its checkpoint', () => {
    const dir = join(tmp, 'byte');
    expect(peerc('export', 'examples/byte_lm.peer', '--torch', '-o', dir, '--set', 'N=16^2').status).toBe(0);
    const text = join(tmp, 'text.txt');
    writeFileSync(text, 'To be, or not to be, that is the question: whether tis nobler in the mind to suffer.\n'.repeat(400));
    const run = torchrun(dir, 2, '--out', join(dir, 'run'), '--steps', '6', '--eval-every', '3', '--batch', '4', '--seq', '16', '--data', text);
    expect(run.status, run.stderr.slice(-3000)).toBe(0);
    expect(run.stdout).toMatch(/rank 1: U rows 128\.\.255 of 256/);
    const torchM = metrics(join(dir, 'run', 'metrics.jsonl'));
    const val = torchM.filter((r) => r.split === 'validation');
    expect(val.at(-1)!.loss).toBeLessThan(val[0]!.loss);
    // Query BatchNorm is synchronised over ranks, so 2 ranks take peerc's step on the whole batch.
    const ref = peerc('train', 'examples/byte_lm.peer', '--set', 'N=16^2', '--steps', '6', '--eval-every', '3', '--batch', '4', '--seq', '16', '--data', text, '--out', join(tmp, 'peerc-byte'));
    expect(ref.status, ref.stderr).toBe(0);
    const peercM = metrics(join(tmp, 'peerc-byte', 'metrics.jsonl')).filter((r) => r.split === 'train' || r.split === 'validation');
    expect(torchM.map((r) => `${r.split}@${r.step}`)).toEqual(peercM.map((r) => `${r.split}@${r.step}`));
    const diff = Math.max(...torchM.map((r, i) => Math.abs(r.loss - peercM[i]!.loss)));
    console.log(`train.py (2 ranks, synchronised BatchNorm) vs peerc train on byte_lm: largest loss difference ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-2);
    const sampled = peerc('sample', join(dir, 'run', 'checkpoint.safetensors'), '--prompt', 'To be', '--tokens', '12');
    expect(sampled.status, sampled.stderr).toBe(0);
    expect(Buffer.byteLength(sampled.stdout)).toBeGreaterThanOrEqual(12);
  });

  it('runs as one process without torchrun, and says where the text task needs data', () => {
    const dir = join(tmp, 'recall');
    const one = spawnSync('python3', [join(dir, 'train.py'), '--out', join(dir, 'one'), '--steps', '2'], { encoding: 'utf8', timeout: 300_000, cwd: dir });
    expect(one.status, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/1 rank \(one process\)/);
    const noData = spawnSync('python3', [join(tmp, 'byte', 'train.py'), '--steps', '1'], { encoding: 'utf8', timeout: 300_000, cwd: join(tmp, 'byte') });
    expect(noData.status).not.toBe(0);
    expect(noData.stderr).toMatch(/the text task needs --data TEXT_FILE/);
  });
});

const tritonVersion = torchVersion && pythonProbe('import triton; print(triton.__version__)', 'train.py with Triton kernels', 'python3 has no triton (pip install triton)');

describe.skipIf(!tritonVersion)(`train.py with the Triton kernels (triton ${tritonVersion}, interpreted on the CPU)`, () => {
  it('follows peerc train step for step: fused retrieval, expert output and lazy Adam as Triton kernels', () => {
    const small = ['--set', 'N=16^2', '--set', 'K=256'];
    const dir = join(tmp, 'recall-triton');
    const exp = peerc('export', 'examples/recall.peer', '--torch', '--kernels', 'triton', '-o', dir, ...small);
    expect(exp.status, exp.stderr).toBe(0);
    expect(exp.stdout).toMatch(/note: Triton kernels for product_retrieve, expert_out \(gate softmax\)/);
    const steps = ['--steps', '6', '--eval-every', '3', '--batch', '16'];
    const run = spawnSync('python3', [join(dir, 'train.py'), '--out', join(dir, 'run'), ...steps], { encoding: 'utf8', timeout: 600_000, cwd: dir, env: { ...process.env, TRITON_INTERPRET: '1', OMP_NUM_THREADS: '1' } });
    expect(run.status, run.stderr.slice(-3000)).toBe(0);
    expect(run.stdout).toMatch(/kernels: Triton \(fused retrieval and expert ops, lazy Adam on sparse rows\)/);
    expect(run.stderr).not.toMatch(/runs as eager PyTorch ops/);
    const ref = peerc('train', 'examples/recall.peer', ...small, ...steps, '--out', join(tmp, 'peerc-run-triton'));
    expect(ref.status, ref.stderr).toBe(0);
    const torchM = metrics(join(dir, 'run', 'metrics.jsonl')), peercM = metrics(join(tmp, 'peerc-run-triton', 'metrics.jsonl'));
    expect(torchM.map((r) => `${r.split}@${r.step}`)).toEqual(peercM.map((r) => `${r.split}@${r.step}`));
    const diffs = torchM.map((r, i) => Math.abs(r.loss - peercM[i]!.loss));
    console.log(`train.py (Triton kernels, interpreted) vs peerc train: largest loss difference over 6 steps ${Math.max(...diffs).toExponential(2)}`);
    expect(diffs[1]!).toBeLessThan(1e-5);
    expect(Math.max(...diffs)).toBeLessThan(1e-3);
    // Without TRITON_INTERPRET the CPU tensors cannot run Triton: said once per op, then the eager ops.
    const eager = spawnSync('python3', [join(dir, 'train.py'), '--out', join(dir, 'eager'), '--steps', '1', '--batch', '16'], { encoding: 'utf8', timeout: 600_000, cwd: dir });
    expect(eager.status, eager.stderr.slice(-3000)).toBe(0);
    expect(eager.stdout).toMatch(/kernels: eager PyTorch ops, not Triton: the tensors are on cpu/);
    expect(eager.stderr).toMatch(/peerc: product_retrieve runs as eager PyTorch ops, not as its Triton kernel/);
  }, 900_000);
});

describe('peerc export --torch without a data task', () => {
  it('writes the module and says why there is no train.py', () => {
    const r = peerc('export', 'examples/peer_paper.peer', '--torch', '-o', join(tmp, 'layer'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: train\.py not written: .*no single index input/);
  });
  it('says which @sparse tables stay under FSDP2 with dense gradients', () => {
    const r = peerc('export', 'examples/stacked_lm.peer', '--torch', '-o', join(tmp, 'stacked'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: train\.py keeps @sparse U, Vx under FSDP2 with dense gradients/);
  });
});
