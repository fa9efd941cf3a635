// `peerc train` and `peerc sample` as users run them: the loss falls, runs write their metrics,
// plots and checkpoints, --resume continues bit-identically, NaN stops cleanly, SIGINT saves.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileOk, diagnose, runPeerc } from './helpers.js';
import { readCheckpoint } from '../runtime/train/checkpoint.js';
import { learningRate, lrMultiplierAt, Optimizer, DEFAULT_OPTIMIZER } from '../runtime/train/optim.js';
import { pick } from '../runtime/cli/sample.js';
import type { ParamInfo } from '../src/ir/graph.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'peerc.js');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-train-'));
const shakespeare = join(root, '..', 'shared', 'data', 'tinyshakespeare.txt');

const peerc = (...args: string[]) => runPeerc(args, 300_000);

function write(name: string, content: string): string {
  const p = join(tmp, name);
  writeFileSync(p, content);
  return p;
}

/** The recall example, small: 256 keys, 32^2 memory slots. */
const recall = write('recall.peer', readFileSync(join(root, 'examples', 'recall.peer'), 'utf8').replace('const K = 4096', 'const K = 256').replace('const N = 128^2', 'const N = 32^2'));
const metrics = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown> & { step: number; split: string; loss: number });

describe('peerc train on the built-in recall task', () => {
  it('the loss falls and accuracy rises; metrics, plots and a checkpoint are written', () => {
    const out = join(tmp, 'recall-run');
    const r = peerc('train', recall, '--steps', '80', '--lr', '0.01', '--backend', 'cpu', '--out', out, '--eval-every', '40');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/data: recall: 256 random key -> value pairs/);
    expect(r.stdout).toMatch(/step 80\/80: loss/);
    const rows = metrics(out);
    const train = rows.filter((x) => x.split === 'train');
    expect(train.length).toBe(80);
    const early = train.slice(0, 10).reduce((a, x) => a + x.loss, 0) / 10, late = train.slice(-10).reduce((a, x) => a + x.loss, 0) / 10;
    expect(late).toBeLessThan(early * 0.7);
    const val = rows.filter((x) => x.split === 'validation');
    expect(val.map((x) => x.step)).toEqual([0, 40, 80]);
    expect(val[2]!.accuracy as number).toBeGreaterThan(val[0]!.accuracy as number);
    const experts = val[2]!.experts as { param: string; usage: number; unevenness: number }[];
    expect(experts[0]!.param).toBe('Vals');
    expect(experts[0]!.usage).toBeGreaterThan(0);
    expect(experts[0]!.unevenness).toBeGreaterThanOrEqual(0);
    for (const svg of ['loss.svg', 'experts.svg']) expect(readFileSync(join(out, svg), 'utf8')).toMatch(/^<svg[^>]*>[\s\S]*<polyline[\s\S]*<\/svg>\n$/);
    const ck = readCheckpoint(join(out, 'checkpoint.safetensors'));
    expect(ck.meta.step).toBe(80);
    expect(ck.tensors.has('param.Vals') && ck.tensors.has('opt.m.Vals') && ck.tensors.has('opt.v.Vals')).toBe(true);
    expect(JSON.parse(ck.meta.rng)).toMatchObject({ position: 80 });
  }, 300_000);

  it('--resume continues bit-identically to an uninterrupted run', () => {
    const whole = join(tmp, 'whole'), parts = join(tmp, 'parts');
    const common = ['--steps', '12', '--backend', 'cpu', '--seed', '3', '--eval-every', '6'];
    expect(peerc('train', recall, ...common, '--out', whole).status).toBe(0);
    const first = peerc('train', recall, ...common, '--out', parts, '--stop-at', '5');
    expect(first.status, first.stderr).toBe(0);
    expect(readCheckpoint(join(parts, 'checkpoint.safetensors')).meta.step).toBe(5);
    const second = peerc('train', recall, '--resume', '--out', parts, '--backend', 'cpu');
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/resuming at step 5 of 12/);
    const a = readCheckpoint(join(whole, 'checkpoint.safetensors')), b = readCheckpoint(join(parts, 'checkpoint.safetensors'));
    expect(b.meta.step).toBe(12);
    expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort());
    for (const [name, t] of a.tensors) expect(Buffer.from(b.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    const la = metrics(whole).filter((x) => x.split === 'train').map((x) => x.loss);
    const lb = metrics(parts).filter((x) => x.split === 'train').map((x) => x.loss);
    expect(lb).toEqual(la);
  }, 300_000);

  it('a blown-up loss stops training with PEER0703 and keeps the last good checkpoint', () => {
    const out = join(tmp, 'nan');
    const r = peerc('train', recall, '--steps', '40', '--backend', 'cpu', '--out', out, '--optimizer', 'sgd', '--lr', '1e30', '--clip', '0', '--checkpoint-every', '1');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error PEER0703: (the loss|the gradient|the weights|a value in the forward pass|the validation loss|a value in the validation forward pass) became NaN or infinite at step \d+; training stopped\. The last good checkpoint \(step \d+\) is kept at/);
    const step = Number(/at step (\d+)/.exec(r.stderr)![1]);
    const ck = readCheckpoint(join(out, 'checkpoint.safetensors'));
    expect(ck.meta.step).toBe(step - 1);
    for (const t of ck.tensors.values()) expect(t.data.every(Number.isFinite)).toBe(true);
  }, 300_000);

  it('SIGINT saves a checkpoint and exits cleanly', async () => {
    const out = join(tmp, 'sigint');
    const child = spawn(process.execPath, [cli, 'train', recall, '--steps', '100000', '--backend', 'cpu', '--out', out, '--checkpoint-every', '100000', '--eval-every', '100000'], { cwd: root });
    let stdout = '';
    let sent = false;
    child.stdout.on('data', (d) => {
      stdout += String(d);
      // After the first evaluation, a few steps in.
      if (/step 0: validation loss/.test(stdout) && !sent) {
        sent = true;
        setTimeout(() => child.kill('SIGINT'), 1500);
      }
    });
    const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(kill);
    expect(code).toBe(130);
    expect(stdout).toMatch(/interrupted: checkpoint of step (\d+) saved/);
    // The whole command to continue, runnable as printed.
    expect(stdout).toContain(`continue with:\n  peerc train ${recall} --resume --out ${out}`);
    const step = Number(/checkpoint of step (\d+)/.exec(stdout)![1]);
    expect(readCheckpoint(join(out, 'checkpoint.safetensors')).meta.step).toBe(step);
  }, 300_000);
});

describe('peerc train: mistakes are explained', () => {
  it.each([
    [['--data', 'examples/recall.peer'], /PEER0704: the text task feeds byte sequences \[batch, seq\], but input 'keys' has rank 1/],
    [['--task', 'text'], /the text task needs --data TEXT_FILE/],
    [['--optimizer', 'rmsprop'], /--optimizer is sgd, adam or adamw/],
    [['--steps', '0'], /--steps needs a whole number >= 1/],
    [['--resume', '--out', join(tmp, 'nowhere')], /--resume: no checkpoint at/],
  ])('%s', (flags, message) => {
    const r = peerc('train', recall, ...flags);
    expect(r.status).toBeGreaterThan(0);
    expect(r.stderr).toMatch(message);
  });
  it('max and float(indices) in the loss train (max passes its gradient to the maxima; indices pass none)', () => {
    const f = write('maxgrad.peer', 'param W: [4, 3] = normal(0, 1)\nparam E: [8, 4] = normal(0, 1)\nmodel f(x: index[B]) -> [B, 3] {\n  y = matmul(embedding(E, x), W)\n  (v, i) = topk(y, 3)\n  return y - max(y, axis=-1)[:, None] + 0.0 * float(i)\n}\n');
    const r = peerc('train', f, '--steps', '1', '--backend', 'cpu', '--out', join(tmp, 'maxgrad'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
  it('PEER0701: an index output cannot be trained', () => {
    const f = write('idx.peer', 'param E: [8, 4] = normal(0, 1)\nmodel f(x: index[B]) -> index[B, 2] {\n  (v, i) = topk(embedding(E, x), 2)\n  return i\n}\n');
    const r = peerc('train', f, '--steps', '1', '--backend', 'cpu', '--out', join(tmp, 'idx'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error PEER0701: to train, the model's first output must be logits/);
  });
  it('PEER0702: nothing to train', () => {
    const f = write('noparam.peer', 'const E = 8\nmodel f(x: index[B]) -> [B, 8] {\n  return float(x)[:, None] * float(iota(E))[None, :]\n}\n');
    const r = peerc('train', f, '--steps', '1', '--backend', 'cpu', '--out', join(tmp, 'noparam'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error PEER0702:/);
  });
});

describe.skipIf(!existsSync(shakespeare))('a byte-level language model on tinyshakespeare', () => {
  it('trains, then samples text from its checkpoint', () => {
    const lm = write('tiny_lm.peer', readFileSync(join(root, 'examples', 'byte_lm.peer'), 'utf8')
      .replace('const d = 128', 'const d = 32').replace('const N = 128^2', 'const N = 16^2').replace('const dk = 64', 'const dk = 16'));
    const out = join(tmp, 'lm');
    const r = peerc('train', lm, '--data', shakespeare, '--steps', '30', '--batch', '8', '--seq', '32', '--lr', '0.01', '--backend', 'cpu', '--out', out, '--eval-every', '30', '--eval-batches', '2');
    expect(r.status, r.stderr).toBe(0);
    const rows = metrics(out).filter((x) => x.split === 'validation');
    expect(rows.at(-1)!.loss).toBeLessThan(rows[0]!.loss - 1);
    const s = peerc('sample', join(out, 'checkpoint.safetensors'), '--prompt', 'ROMEO:', '--tokens', '20', '--backend', 'cpu', '--temperature', '0');
    expect(s.status, s.stderr).toBe(0);
    // Greedy decoding from a briefly trained model: common ASCII bytes (spaces, letters).
    expect(s.stdout).toMatch(/^ROMEO:[\x20-\x7e\n]{20}\n$/); // the prompt, then its continuation
    const warm = peerc('sample', join(out, 'checkpoint.safetensors'), '--prompt', 'ROMEO:', '--tokens', '20', '--backend', 'cpu', '--seed', '1');
    const again = peerc('sample', join(out, 'checkpoint.safetensors'), '--prompt', 'ROMEO:', '--tokens', '20', '--backend', 'cpu', '--seed', '1');
    expect(again.stdout).toBe(warm.stdout);
  }, 300_000);
});

describe('stacked tables (U: [L, N, d] used as U[i])', () => {
  it('keep sparse rows and lazy Adam, and report usage per slice in metrics and plots', () => {
    const src = write('stacked.peer', readFileSync(join(root, 'examples', 'stacked_lm.peer'), 'utf8').replace('const d = 64', 'const d = 16').replace('const N = 64^2', 'const N = 8^2'));
    const text = write('stacked.txt', 'the quick brown fox jumps over the lazy dog. '.repeat(200));
    const out = join(tmp, 'stacked-run');
    const r = peerc('train', src, '--data', text, '--steps', '4', '--batch', '4', '--seq', '16', '--eval-every', '2', '--eval-batches', '1', '--backend', 'cpu', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/experts: U\[0\] used [\d.]+% KL [\d.]+, U\[1\] used .*, Vx\[0\] used .*, Vx\[1\] used/);
    const last = metrics(out).filter((x) => x.split === 'validation').pop()!;
    expect((last.experts as { param: string; usage: number }[]).map((e) => e.param).sort()).toEqual(['U[0]', 'U[1]', 'Vx[0]', 'Vx[1]']);
    for (const e of last.experts as { usage: number }[]) expect(e.usage).toBeGreaterThan(0);
    // Each layer's U and Vx share one pool (the same ids): drawn once, named so.
    expect(readFileSync(join(out, 'experts.svg'), 'utf8')).toContain('U[1] = Vx[1] (one pool)');
    const ck = readCheckpoint(join(out, 'checkpoint.safetensors'));
    expect(ck.tensors.get('param.U')!.shape).toEqual([2, 64, 16]);
  });
});

describe('peerc bench --train', () => {
  it('times a step per kernel and sets each part against the machine: contractions against the matmul, lazy Adam against random row reads', async () => {
    const r = await peerc('bench', 'examples/peer_paper.peer', '--train', '--set', 'N=32^2', '--tokens', '16', '--runs', '2', '--json');
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(j.tokens_per_s).toBeGreaterThan(0);
    expect(j.kernels.map((k: { label: string }) => k.label)).toContain('optimizer');
    expect(j.einsum_gflop).toBeGreaterThan(0);
    expect(Object.keys(j.einsum_gflops_per_s).length).toBeGreaterThan(0);
    expect(j.matmul_reference_gflops_per_s).toBeGreaterThan(0);
    // Two @sparse tables of rows of d = 256: each touched row read 4 times and written 3 times.
    expect(j.lazy_adam_bytes).toBeGreaterThan(0);
    expect(j.lazy_adam_bytes % (256 * 4 * 7)).toBe(0);
    expect(j.optimizer_gb_per_s).toBeGreaterThan(0);
    const text = await peerc('bench', 'examples/peer_paper.peer', '--train', '--set', 'N=32^2', '--tokens', '16', '--runs', '2');
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/einsum work: [\d.]+ GFLOP per step; best 512\^3 matmul/);
    expect(text.stdout).toMatch(/optimizer: [\d.]+ MB of touched rows .* GB\/s/);
  });
  it('--optimizer sgd: the step with SGD (momentum: weights and velocity read and written, the gradient read)', async () => {
    const r = await peerc('bench', 'examples/peer_paper.peer', '--train', '--set', 'N=32^2', '--tokens', '16', '--runs', '2', '--optimizer', 'sgd', '--json');
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(j.optimizer).toBe('sgd');
    expect(j.lazy_adam_bytes).toBeUndefined();
    expect(j.optimizer_row_bytes).toBeGreaterThan(0);
    expect(j.optimizer_row_bytes % (256 * 4 * 5)).toBe(0);
    const bad = await peerc('bench', 'examples/peer_paper.peer', '--optimizer', 'sgd');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--optimizer is for bench --train/);
  });
});

describe('peerc ir --train', () => {
  it('prints the training program: loss, fused retrieval, gradients as IR', () => {
    const r = peerc('ir', 'examples/recall.peer', '--train');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/func @recall<B>\(%0: index\[B\], %\d+: index<256>\[B\]\)/);
    expect(r.stdout).toContain('product_retrieve');
    expect(r.stdout).toMatch(/scatter_along|scatter_rows/);
    expect(r.stdout).toContain('log_softmax');
  });
});

describe('optimizers and schedules', () => {
  const info = (name: string, shape: number[], o: Partial<ParamInfo> = {}): ParamInfo => ({ name, role: 'param', dtype: 'f32', shape, init: { kind: 'constant', value: 0 }, lrMultiplier: 1, sparse: false, weightDecay: false, ...o });
  it('warmup then cosine decay to lr * minLrRatio', () => {
    const c = { ...DEFAULT_OPTIMIZER, lr: 1, warmup: 10, steps: 110, minLrRatio: 0.1 };
    expect(learningRate(c, 0)).toBeCloseTo(0.1);
    expect(learningRate(c, 9)).toBeCloseTo(1);
    expect(learningRate(c, 60)).toBeCloseTo(0.55);
    expect(learningRate(c, 110)).toBeCloseTo(0.1);
  });
  it('AdamW: the first step moves each weight by lr (sign of the gradient) plus decoupled decay', () => {
    const o = new Optimizer({ ...DEFAULT_OPTIMIZER, kind: 'adamw', lr: 0.1, warmup: 0, schedule: 'constant', clip: 0, weightDecay: 0.5 }, [info('w', [2], { weightDecay: true })]);
    const w = Float32Array.of(1, 2);
    o.step(new Map([['w', w]]), { dense: new Map([['w', Float32Array.of(3, -0.01)]]), sparse: new Map() });
    expect(w[0]).toBeCloseTo(1 - 0.1 * (1 + 0.5 * 1), 5);
    expect(w[1]).toBeCloseTo(2 - 0.1 * (-1 + 0.5 * 2), 5);
  });
  it('@lr(m, to=t, over=S): the multiplier decays linearly from m to t over S steps, then stays', () => {
    const m = compileOk('param V: [4, 2] = zeros() @sparse @lr(10, to=1, over=100)\nparam W: [2] = zeros() @lr(3)\n');
    const [v, w] = m.params;
    expect(v!.lrDecay).toEqual({ to: 1, over: 100 });
    expect([0, 50, 100, 500].map((t) => lrMultiplierAt(v!, t))).toEqual([10, 5.5, 1, 1]);
    expect(lrMultiplierAt(w!, 1000)).toBe(3);
    // The first Adam step moves a weight by lr * multiplier (the update is the sign of the gradient).
    const o = new Optimizer({ ...DEFAULT_OPTIMIZER, kind: 'adam', lr: 0.01, schedule: 'constant', clip: 0 }, [v!]);
    const t = new Float32Array(8);
    o.step(new Map([['V', t]]), { dense: new Map(), sparse: new Map([['V', { rows: Int32Array.of(0), rowSize: 2, values: Float32Array.of(1, 1) }]]) });
    expect(t[0]).toBeCloseTo(-0.1, 5);
    expect(diagnose('param V: [4] = zeros() @lr(10, to=1)\n')).toMatch(/error PEER0202: '@lr' takes both to= and over= for a decaying multiplier/);
    expect(diagnose('param V: [4] = zeros() @lr(10, until=1, over=5)\n')).toMatch(/error PEER0203: '@lr' has no argument named 'until'/);
  });

  it('lazy Adam touches only the rows a step used; @lr multiplies the rate; clipping scales gradients', () => {
    const o = new Optimizer({ ...DEFAULT_OPTIMIZER, kind: 'adam', lr: 0.1, schedule: 'constant', clip: 1 }, [info('T', [4, 2], { sparse: true, lrMultiplier: 10 })]);
    const t = new Float32Array(8);
    const rep = o.step(new Map([['T', t]]), { dense: new Map(), sparse: new Map([['T', { rows: Int32Array.of(2), rowSize: 2, values: Float32Array.of(30, -40) }]]) });
    expect(rep.gradNorm).toBeCloseTo(50);
    expect(rep.clipped).toBe(true);
    expect(Array.from(t)).toEqual([0, 0, 0, 0, expect.closeTo(-1, 5), expect.closeTo(1, 5), 0, 0]);
    expect(Array.from(o.m.get('T')!.subarray(4, 6))).toEqual([expect.closeTo(0.1 * 0.6, 5), expect.closeTo(-0.1 * 0.8, 5)]);
    expect(o.m.get('T')![0]).toBe(0);
  });
  it('sampling: temperature 0 is the arg-max; draws follow the softmax', () => {
    expect(pick([0, 3, 1], 0, 0.99)).toBe(1);
    expect(pick([0, 0], 1, 0.49)).toBe(0);
    expect(pick([0, 0], 1, 0.51)).toBe(1);
  });
});
