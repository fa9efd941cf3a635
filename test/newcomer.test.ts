// What a new user hits in the first hour (issue "What a new user hits"): each case failed
// before its fix.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileOk, diagnose, runPeerc, smallExample } from './helpers.js';
import { Executor } from '../runtime/executor.js';
import { CompileError } from '../src/diagnostics/diagnostic.js';
import { moduleInfo } from '../runtime/cli/info.js';
import { readFileSync } from 'node:fs';
import { safetensorsWeights, seededWeights as apiSeededWeights } from '../runtime/api.js';
import { klFromUniform, Trainer } from '../runtime/train/trainer.js';
import { DEFAULT_OPTIMIZER } from '../runtime/train/optim.js';
import { RecallDataset } from '../runtime/train/data.js';
import { interpret } from '../src/interp/interpreter.js';
import { Tensor } from '../src/interp/tensor.js';
import { optimize } from '../src/passes/pipeline.js';
import { unfusedPatterns } from '../src/passes/fusion-notes.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { seededInputs } from '../src/io/seeded.js';
import { HELP } from '../runtime/cli/help.js';
import { expertsChart, poolGroups } from '../runtime/train/plots.js';

describe('gpu.js flat-index limit', () => {
  const m = optimize(compileOk('model f(x: [T, D]) -> [T, D] {\n  return x * 2.0\n}\n'), { lowering: 'naive' });
  const run = async (t: number) => {
    const ex = new Executor(m, new Map(), 'cpu');
    try {
      return await ex.forward(new Map([['x', { shape: [t, 4096], data: new Float32Array(t * 4096) }]]));
    } finally {
      ex.destroy();
    }
  };
  it('a tensor of exactly 2^24 cells runs; one row more is PEER0606', async () => {
    const r = await run(4096);
    expect(r.outputs[0]!.data.length).toBe(2 ** 24);
    await expect(run(4097)).rejects.toThrow(CompileError);
    await expect(run(4097)).rejects.toThrow(/beyond the 2\^24 cells/);
  }, 120_000);
});

describe('command-line checks', () => {
  it('peerc help train (and every command that reads a program) documents --set', () => {
    for (const cmd of ['train', 'run', 'bench', 'info', 'ir']) expect(runPeerc(['help', cmd]).stdout, cmd).toMatch(/--set NAME=VALUE/);
  });
  it("the README's --set example gives the error it says", () => {
    const r = runPeerc(['check', 'examples/peer_paper.peer', '--set', 'N=1000']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/sqrt\(N\) needs a perfect square[\s\S]*note: checked with --set N=1000/);
  });

  it('--threads beyond the cores is a usage error naming the core count', () => {
    const r = runPeerc(['bench', 'examples/dense_ffw.peer', '--threads', '64', '--backend', 'wasm-simd']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--threads 64: this machine has \d+ cores?; pass --threads \d+ or fewer/);
  });
});

describe('peerc train without expert tables', () => {
  it('writes no empty experts.svg and says why', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerc-newcomer-'));
    const file = join(dir, 'dense.peer');
    writeFileSync(file, 'const K = 64\nconst d = 8\nparam E: [K, d] = normal(0, 1)\nparam W: [d, 256] = normal(0, 0.1)\nmodel f(keys: index[B]) -> [B, 256] {\n  return einsum("bd,dv->bv", embedding(E, keys), W)\n}\n');
    const r = runPeerc(['train', file, '--task', 'recall', '--steps', '2', '--eval-batches', '1', '--backend', 'cpu', '--out', join(dir, 'run')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: no experts\.svg: the model has no @sparse expert table/);
    expect(r.stdout).not.toMatch(/experts\.svg,|experts\.svg$/m);
    expect(existsSync(join(dir, 'run', 'loss.svg'))).toBe(true);
    expect(existsSync(join(dir, 'run', 'experts.svg'))).toBe(false);
  });
});

describe('a misspelt keyword', () => {
  it.each([
    ['paramm W: [4] = zeros()\n', /found 'paramm' \(did you mean the keyword 'param'\?\)/],
    ['layr f(x: [T, 4]) -> [T, 4] {\n  return x\n}\n', /found 'layr' \(did you mean the keyword 'layer'\?\)/],
    ['model f(x: [T, 4]) -> [T, 4] {\n  retrn x\n}\n', /found 'x' after 'retrn' \(did you mean the keyword 'return'\?\)/],
    ['cnst a = 3\n', /expected a declaration \(const, param, buffer, layer, model, train\) or the end of the file but found 'cnst' \(did you mean the keyword 'const'\?\)/],
  ])('%j is named', (src, message) => {
    expect(diagnose(src)).toMatch(message);
  });
  it('a name far from every keyword gets no keyword hint', () => {
    expect(diagnose('frobnicate W\n')).not.toMatch(/did you mean the keyword/);
  });
});

describe('messages name what the user wrote', () => {
  it("'/' on indices is the operator '/', not the IR op floordiv", () => {
    const out = diagnose('model f(x: [T, 4]) -> [T, 4] {\n  return x * (iota(4) / x)\n}\n');
    expect(out).toMatch(/the operator '\/' expects operands of one dtype/);
    expect(out).not.toMatch(/floordiv/);
  });
});

describe('peerc info', () => {
  it('shows an @lr decay schedule, not only the starting multiplier', () => {
    const m = compileOk('param V: [16, 4] = normal(0, 1) @sparse @lr(10, to=1, over=2000)\nparam W: [4, 4] = normal(0, 1) @lr(3)\nmodel f(x: index[B]) -> [B, 4] {\n  return einsum("bd,de->be", embedding(V, x), W)\n}\n');
    const info = moduleInfo(m);
    expect(info.text).toMatch(/V .*\(sparse, lr x10 -> x1 over 2,000 steps\)/);
    expect(info.text).toMatch(/W .*\(lr x3\)/);
  });
});

describe('from a training run to the emitted module', () => {
  it("the module's weights loader reads a peerc train checkpoint (param.NAME), and peerc info reads one", () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerc-newcomer-'));
    const file = join(dir, 'recall.peer');
    writeFileSync(file, readFileSync('examples/recall.peer', 'utf8').replace('const K = 4096', 'const K = 256').replace('const N = 128^2', 'const N = 32^2'));
    expect(runPeerc(['train', file, '--steps', '2', '--eval-batches', '1', '--backend', 'cpu', '--out', join(dir, 'run')]).status).toBe(0);
    const ckpt = join(dir, 'run', 'checkpoint.safetensors');
    const m = compileOk(readFileSync(file, 'utf8'));
    const w = safetensorsWeights(m.params, readFileSync(ckpt), ckpt);
    expect([...w.keys()].sort()).toEqual(m.params.map((p) => p.name).sort());
    const info = runPeerc(['info', ckpt]);
    expect(info.status, info.stderr).toBe(0);
    expect(info.stdout).toMatch(/^checkpoint of .*recall\.peer: step 2 of 2, recall task, adamw? lr [\d.]+ \(trained on cpu\)/);
    expect(info.stdout).toMatch(/Vals +f32\[1024, 64\]/);
    expect(JSON.parse(runPeerc(['info', ckpt, '--json']).stdout).checkpoint.step).toBe(2);
  });
});

describe('fusion notes', () => {
  const retrieval = (candidates: string) => `
const d = 8
param Wq: [2, 6, d] = normal(0, 1)
param K1: [8, 3] = normal(0, 1)
param K2: [8, 3] = normal(0, 1)
model mine(x: [B, d]) -> ([B, 2, 3], index[B, 2, 3]) {
  q = einsum("bd,gqd->bgq", x, Wq)
  (va, ia) = topk(einsum("bgq,mq->bgm", q[..., 0:3], K1), 3)
  (vb, ib) = topk(einsum("bgq,mq->bgm", q[..., 3:6], K2), 3)
  (best, which) = topk(reshape(${candidates}, [B, 2, 9]), 3)
  return softmax(best), take_along(reshape(ia[..., None] * 8 + ib[..., None, :], [B, 2, 9]), which)
}
`;
  it('a retrieval whose candidates are not a plain sum gets one "not fused" note saying why', () => {
    for (const c of ['va[..., None] + 0.5 * vb[..., None, :]', 'va[..., None] + (vb * 0.5)[..., None, :]', '2.0 * va[..., None] + vb[..., None, :]']) {
      const notes = unfusedPatterns(optimize(compileOk(retrieval(c)), { lowering: 'fused' }));
      expect(notes.map((n) => n.message), c).toEqual([expect.stringMatching(/product-key retrieval is not fused.*not the plain sum of the two sub-key top-k scores/)]);
    }
    expect(unfusedPatterns(optimize(compileOk(retrieval('va[..., None] + vb[..., None, :]')), { lowering: 'fused' }))).toEqual([]);
  });
});

describe('expert usage and unevenness in the default (fused) training pipeline', () => {
  const program = (gate: string) => `
const K = 64
const d = 8
const n = 6
param E: [K, d] = normal(0, 1)
param Wq: [3, 4, d] = normal(0, 1)
param C1: [n, 2] = normal(0, 1)
param C2: [n, 2] = normal(0, 1)
param Vals: [n*n, d] = normal(0, 0.02) @sparse
param Wout: [d, 256] = normal(0, 0.1)
layer route(x: [B, d]) -> ([B, 3, 4], index[B, 3, 4]) {
  (s, idx) = product_topk(einsum("bd,hcd->bhc", x, Wq), C1, C2, 4)
  return ${gate}(s), idx
}
model recall(keys: index[B]) -> [B, 256] {
  x = embedding(E, keys)
  (w, idx) = route(x)
  return matmul(x + einsum("bhk,bhkd->bd", w, gather(Vals, idx)), Wout)
}
layer probe(keys: index[B]) -> ([B, 3, 4], index[B, 3, 4]) {
  return route(embedding(E, keys))
}
`;
  for (const gate of ['softmax', 'relu', 'sigmoid'])
    it(`${gate} gate: usage and KL of the accumulated router weights match a hand count`, async () => {
      const m = compileOk(program(gate));
      const weights = apiSeededWeights(m.params, 3);
      const trainer = new Trainer(m, weights, { backend: 'cpu', optimizer: DEFAULT_OPTIMIZER, seed: 3 });
      try {
        const batches = [0, 1].map((i) => new RecallDataset(m, 16, 3).batch('validation', i));
        const ev = await trainer.evaluate(batches);
        // By hand: the float64 interpreter's gate weights and ids for the same keys, summed per expert.
        const probe = compileOk(program(gate), 'test.peer', 'probe');
        const w64 = new Map([...weights].map(([name, a]) => [name, new Tensor('f32', probe.params.find((p) => p.name === name)!.shape as number[], Float64Array.from(a))]));
        const counts = new Float64Array(36), sums = new Float64Array(36);
        for (const b of batches) {
          const keys = b.inputs.get('keys')!;
          const [g, ids] = interpret(probe, new Map([['keys', new Tensor('index', keys.shape, Float64Array.from(keys.data))]]), w64).outputs;
          ids!.data.forEach((id, i) => ((counts[id] = counts[id]! + 1), (sums[id] = sums[id]! + g!.data[i]!)));
        }
        const [vals] = ev.experts;
        expect(ev.experts.map((e) => e.param)).toEqual(['Vals']);
        expect(vals!.usage).toBe(counts.filter((c) => c > 0).length / 36);
        expect(vals!.cap).toBe(Math.min(1, counts.reduce((a, c) => a + c, 0) / 36));
        expect(Math.abs(vals!.unevenness - klFromUniform(sums))).toBeLessThan(1e-4);
        // The weights, not the counts: the two differ for every gate here.
        expect(Math.abs(klFromUniform(counts) - klFromUniform(sums))).toBeGreaterThan(1e-3);
      } finally {
        trainer.destroy();
      }
    });
});

describe('peerc bench figures follow from the IR', () => {
  it('a program with two open dims counts its work once (B = 1, S = tokens), and no kernel shows 0 GFLOP/s', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerc-newcomer-'));
    const file = join(dir, 'bs.peer');
    writeFileSync(file, 'param W: [8, 4] = normal(0, 1)\nmodel f(x: [B, S, 8]) -> [B, S, 4] {\n  return relu(einsum("bsd,de->bse", x, W))\n}\n');
    const r = runPeerc(['bench', file, '--tokens', '32', '--runs', '1', '--json', '--skip-naive', '--skip-reference', '--skip-ort', '--backend', 'cpu']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { einsum_gflop: number; einsum_gflops_per_s: Record<string, number>; tokens: number };
    expect(j.einsum_gflop).toBeCloseTo((2 * 32 * 8 * 4) / 1e9, 15);
    for (const g of Object.values(j.einsum_gflops_per_s)) expect(g).toBeGreaterThan(0);
  });
  it('the expert kernels report GB/s of the rows they read: tokens x h x k rows of d floats each', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerc-newcomer-'));
    const file = join(dir, 'peer.peer');
    writeFileSync(file, smallExample('peer_paper.peer').replace('const d = 256', 'const d = 32'));
    const r = runPeerc(['bench', file, '--tokens', '16', '--runs', '1', '--json', '--skip-naive', '--skip-reference', '--skip-ort']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { expert_row_bytes: Record<string, number>; expert_rows_gb_per_s: Record<string, number> };
    // h = 8 heads, k = 16 experts each, rows of d = 32 floats.
    expect(j.expert_row_bytes).toEqual({ expert_act: 16 * 8 * 16 * 32 * 4, expert_out: 16 * 8 * 16 * 32 * 4 });
    expect(Object.keys(j.expert_rows_gb_per_s).length).toBe(2);
    for (const g of Object.values(j.expert_rows_gb_per_s)) expect(g).toBeGreaterThan(0);
  });
});

describe('one meaning of "tokens"', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peerc-tokens-'));
  const file = join(dir, 'bs.peer');
  writeFileSync(file, 'param W: [8, 4] = normal(0, 1)\nmodel f(x: [B, S, 8]) -> [B, S, 4] {\n  return relu(einsum("bsd,de->bse", x, W))\n}\n');
  it('init --inputs --tokens T binds the last open dim to T and the others to 1, as bench and the playground do', () => {
    const out = join(dir, 'in.safetensors');
    const r = runPeerc(['init', file, '--inputs', '--tokens', '8', '--seed', '1', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const shapeOf = () => [...readSafetensors(readFileSync(out), out).tensors.get('x')!.shape];
    expect(shapeOf()).toEqual([1, 8, 8]);
    expect(seededInputs(compileOk(readFileSync(file, 'utf8')), 8, 1).get('x')!.shape).toEqual([1, 8, 8]);
    const sized = runPeerc(['init', file, '--inputs', '--tokens', '8', '--dim', 'B=3', '--seed', '1', '--out', out]);
    expect(sized.status, sized.stderr).toBe(0);
    expect(shapeOf()).toEqual([3, 8, 8]);
  });
  it('every --tokens in the help says what a token is', () => {
    for (const cmd of ['bench', 'init', 'demo', 'sample']) expect(HELP[cmd]).toMatch(/--tokens \w+ +tokens/);
  });
});

describe('the experts plot', () => {
  const history = [0, 10, 20].flatMap((step) => ['U', 'V', 'W'].map((param) => ({ step, param, usage: param === 'W' ? 0.5 : 0.1 + step / 100, unevenness: param === 'W' ? 2 : 1 - step / 40, cap: 0.4 })));
  const counts = new Map([['U', Float64Array.from([3, 0, 1, 0])], ['V', Float64Array.from([3, 0, 1, 0])], ['W', Float64Array.from([1, 1, 1, 1])]]);
  const svg = expertsChart(history, counts);
  it('draws tables that share one pool (identical curves) once, and says so', () => {
    expect(poolGroups(history, counts).map((g) => g.name)).toEqual(['U = V (one pool)', 'W']);
    expect(svg).toContain('U and V: the same experts, drawn once');
    // Per panel: one used curve + its cap, one KL curve, one load curve for the pool; the same for W (its cap too).
    expect(svg.match(/<polyline/g)!.length).toBe(2 * 4);
  });
  it('puts the used fraction and the KL in separate panels with units, and labels the cap of the evaluation sample', () => {
    expect(svg).toContain('fraction of the table used');
    expect(svg).toContain('KL (nats)');
    expect(svg).toContain('at most (evaluation selections / experts)');
    expect(svg).toContain('stroke-dasharray');
  });
});
