// Per-parameter optimization, @optim(kind, lr=, wd=, clip=, schedule=): the checker's reading and
// errors, each kind's update against a float64 rendition of its formula, per-table clipping and
// fixed-rate schedules, peerc train with a table on Adagrad resumed exactly, and train.py (the
// PyTorch export) following peerc train step for step with the same settings.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIMIZER, Optimizer, paramLearningRate } from '../runtime/train/optim.js';
import { compileOk, diagnose, pythonProbe, runPeerc } from './helpers.js';

const root = join(import.meta.dirname, '..');

describe('@optim in the language', () => {
  it('reads the kind (a name or a string) and every setting', () => {
    const m = compileOk('param A: [4, 2] = zeros() @sparse @optim(adagrad, lr=0.05, clip=1)\nparam B: [2] = zeros() @optim("sgd", wd=0.1, schedule="constant")\nparam C: [2] = zeros()\n');
    expect(m.params.map((p) => p.optim)).toEqual([{ kind: 'adagrad', lr: 0.05, clip: 1 }, { kind: 'sgd', weightDecay: 0.1, schedule: 'constant' }, undefined]);
  });
  it('refuses what it cannot mean, with codes', () => {
    expect(diagnose('param A: [2] = zeros() @optim(lamb)\n')).toMatch(/error PEER0203: '@optim' has no argument named 'lamb'.*sgd, adam, adamw, adagrad/);
    expect(diagnose('param A: [2] = zeros() @optim(adam, lr=0)\n')).toMatch(/error PEER0407: @optim lr= must be positive, not 0/);
    expect(diagnose('param A: [2] = zeros() @optim(adam, beta=0.5)\n')).toMatch(/error PEER0203: '@optim' has no argument named 'beta'/);
    expect(diagnose('param A: [2] = zeros() @optim(adam, schedule="linear")\n')).toMatch(/error PEER0407: @optim schedule= is "cosine" or "constant"/);
    expect(diagnose('param A: [2] = zeros() @optim()\n')).toMatch(/error PEER0202: '@optim'/);
    expect(diagnose('param A: [2] = zeros() @lr(10) @optim(lr=1e-3)\n')).toMatch(/error PEER0407: 'A' has an absolute learning rate in @optim\(lr=\.\.\.\); a multiplier @lr on top of it would be a second rate/);
  });
});

describe('the optimizer with per-parameter settings', () => {
  const run = { ...DEFAULT_OPTIMIZER, kind: 'adamw' as const, lr: 0.01, warmup: 0, schedule: 'constant' as const, clip: 0, weightDecay: 0.1, momentum: 0.9 };
  const program = compileOk('param A: [3] = zeros() @optim(adagrad, lr=0.5)\nparam S: [2] = zeros() @optim(sgd, lr=0.2, wd=0.5)\nparam W: [2] = zeros()\n');

  it('adagrad, SGD with momentum and the run\'s AdamW, each by its own formula (two steps)', () => {
    const o = new Optimizer(run, program.params);
    const a = Float64Array.of(1, -2, 0.5), s = Float64Array.of(1, 2), w = Float64Array.of(3, -1);
    const params = new Map([['A', Float32Array.from(a)], ['S', Float32Array.from(s)], ['W', Float32Array.from(w)]]);
    const grads = [[Float64Array.of(0.3, -1, 2), Float64Array.of(1, -2), Float64Array.of(0.5, 4)], [Float64Array.of(-0.2, 0.5, 1), Float64Array.of(0.5, 1), Float64Array.of(-1, 2)]];
    const acc = new Float64Array(3), vel = new Float64Array(2), m1 = new Float64Array(2), m2 = new Float64Array(2);
    grads.forEach(([ga, gs, gw], step) => {
      o.step(params, { dense: new Map([['A', Float32Array.from(ga!)], ['S', Float32Array.from(gs!)], ['W', Float32Array.from(gw!)]]), sparse: new Map() });
      for (let i = 0; i < 3; i++) {
        acc[i] = acc[i]! + ga![i]! ** 2;
        a[i] = a[i]! - (0.5 * ga![i]!) / (Math.sqrt(acc[i]!) + 1e-10);
      }
      for (let i = 0; i < 2; i++) {
        vel[i] = 0.9 * vel[i]! + gs![i]!;
        s[i] = s[i]! - 0.2 * (vel[i]! + 0.5 * s[i]!);
      }
      const t = step + 1, bc1 = 1 - 0.9 ** t, bc2 = 1 - 0.999 ** t;
      for (let i = 0; i < 2; i++) {
        m1[i] = 0.9 * m1[i]! + 0.1 * gw![i]!;
        m2[i] = 0.999 * m2[i]! + 0.001 * gw![i]! ** 2;
        // A vector: no weight decay (the run's decay is for matrices), as without @optim.
        w[i] = w[i]! - (0.01 * (m1[i]! / bc1)) / (Math.sqrt(m2[i]! / bc2) + 1e-8);
      }
    });
    const close = (got: Float32Array | undefined, want: Float64Array) => Array.from(got!).forEach((g, i) => expect(g).toBeCloseTo(want[i]!, 5));
    close(params.get('A')!, a);
    close(params.get('S')!, s);
    close(params.get('W')!, w);
    // Adagrad keeps its accumulator in v (what checkpoints save as opt.v.A); it has no first moment.
    expect(o.m.has('A')).toBe(false);
    expect(Array.from(o.v.get('A')!)).toEqual(Array.from(acc).map((x) => expect.closeTo(x, 5)));
  });

  it("clip= clips the table's own gradient norm; a sparse table on Adagrad updates only its touched rows", () => {
    const m = compileOk('param T: [4, 2] = zeros() @sparse @optim(adagrad, lr=1, clip=1)\n');
    const o = new Optimizer(run, m.params);
    const t = new Float32Array(8);
    o.step(new Map([['T', t]]), { dense: new Map(), sparse: new Map([['T', { rows: Int32Array.of(1), rowSize: 2, values: Float32Array.of(30, -40) }]]) });
    // Clipped to norm 1: (0.6, -0.8); Adagrad's first step is lr * g / |g| per element.
    expect(Array.from(t)).toEqual([0, 0, expect.closeTo(-1, 5), expect.closeTo(1, 5), 0, 0, 0, 0]);
    expect(Array.from(o.v.get('T')!.subarray(2, 4))).toEqual([expect.closeTo(0.36, 5), expect.closeTo(0.64, 5)]);
  });

  it('lr= is absolute, under the run\'s warmup and schedule unless schedule="constant"', () => {
    const m = compileOk('param A: [2] = zeros() @optim(lr=1)\nparam B: [2] = zeros() @optim(lr=1, schedule="constant")\nparam C: [2] = zeros() @lr(10)\n');
    const c = { ...DEFAULT_OPTIMIZER, lr: 0.1, warmup: 10, steps: 110, minLrRatio: 0.1, schedule: 'cosine' as const };
    const [a, b, p] = m.params;
    expect(paramLearningRate(a!, c, 0)).toBeCloseTo(0.1);
    expect(paramLearningRate(a!, c, 110)).toBeCloseTo(0.1);
    expect(paramLearningRate(b!, c, 60)).toBeCloseTo(1);
    expect(paramLearningRate(p!, c, 60)).toBeCloseTo(0.55);
  });
});

const recallWith = (attrs: string) => readFileSync(join(root, 'examples', 'recall.peer'), 'utf8')
  .replace('const K = 4096', 'const K = 256').replace('const N = 128^2', 'const N = 16^2')
  .replace('param Vals: [N, d] = normal(0, 0.02) @sparse @lr(10)', `param Vals: [N, d] = normal(0, 0.02) @sparse ${attrs}`)
  // A constant schedule: a run stopped at step 4 and resumed to 8 has the same rates as one run to 8.
  .replace('optimizer = "adam" }', 'optimizer = "adam"; schedule = "constant" }');
const losses = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { step: number; split: string; loss: number }).filter((r) => r.split === 'train');

describe('training with a table on its own optimizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peerc-optim-'));
  const file = join(dir, 'recall.peer');
  writeFileSync(file, recallWith('@optim(adagrad, lr=0.05, clip=0.5)'));

  it('peerc train learns, and a resumed run goes on exactly as an uninterrupted one (Adagrad state in the checkpoint)', () => {
    const straight = runPeerc(['train', file, '--steps', '8', '--eval-every', '100', '--out', join(dir, 'straight')]);
    expect(straight.status, straight.stderr).toBe(0);
    const first = runPeerc(['train', file, '--steps', '4', '--eval-every', '100', '--out', join(dir, 'parts')]);
    expect(first.status, first.stderr).toBe(0);
    const rest = runPeerc(['train', file, '--resume', '--steps', '8', '--out', join(dir, 'parts')]);
    expect(rest.status, rest.stderr).toBe(0);
    const a = losses(join(dir, 'straight')), b = losses(join(dir, 'parts'));
    expect(b.map((r) => r.step)).toEqual(a.map((r) => r.step));
    b.forEach((r, i) => expect(r.loss).toBeCloseTo(a[i]!.loss, 5));
  }, 300_000);

  const torch = pythonProbe('import torch, safetensors, numpy; print(torch.__version__)', 'train.py with @optim', 'python3 with torch, safetensors and numpy not found');
  it.skipIf(!torch)('train.py applies the same per-table settings: it follows peerc train step for step', () => {
    const out = join(dir, 'torch');
    const exp = runPeerc(['export', file, '--torch', '--kernels', 'eager', '-o', out]);
    expect(exp.status, exp.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'train.json'), 'utf8')).params.find((p: { name: string }) => p.name === 'Vals').optim).toEqual({ kind: 'adagrad', lr: 0.05, clip: 0.5 });
    const r = spawnSync('python3', [join(out, 'train.py'), '--out', join(out, 'run'), '--steps', '8', '--eval-every', '100'], { encoding: 'utf8', cwd: out, timeout: 300_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    const t = losses(join(out, 'run')), p = losses(join(dir, 'straight'));
    expect(t.map((x) => x.step)).toEqual(p.map((x) => x.step));
    const diff = Math.max(...t.map((x, i) => Math.abs(x.loss - p[i]!.loss)));
    console.log(`train.py vs peerc train with Vals on @optim(adagrad, lr=0.05, clip=0.5): largest loss difference over 8 steps ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-3);
  }, 300_000);
});
