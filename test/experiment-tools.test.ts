// The tools for experiments: `--set NAME=VALUE` on every command (checked like the source, the
// flag named in errors, recorded by runs) and the per-token cost computed from the IR.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokenCost } from '../src/passes/cost.js';
import { sweepPoints } from '../runtime/cli/sweep.js';
import { basename } from 'node:path';
import { readCheckpoint } from '../runtime/train/checkpoint.js';
import { compileOk, smallExample } from './helpers.js';
import { readFileSync } from 'node:fs';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'peerc.js');
const peerc = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', timeout: 300_000 });
const tmp = mkdtempSync(join(tmpdir(), 'peerc-tools-'));
const file = join(tmp, 'layer.peer');
writeFileSync(file, 'const d = 16\nconst N = 8^2\nparam C: [sqrt(N), d] = normal(0, 1)\nmodel m(x: [T, d]) -> [T, sqrt(N)] {\n  return einsum("td,nd->tn", x, C)\n}\n');

describe('--set NAME=VALUE', () => {
  it('changes a const for check, info and ir alike', () => {
    expect(peerc('info', file, '--set', 'N=10^2', '--set', 'd=4').stdout).toMatch(/C\s+f32\[10, 4\]/);
    expect(peerc('check', file, '--set', 'N=16').stdout).toMatch(/ok/);
    expect(peerc('ir', file, '--set', 'N=3^2').stdout).toMatch(/f32\[T, 3\]/);
  });
  it('is checked like the source: an inexact sqrt is the same error, with the flag named', () => {
    const r = peerc('check', file, '--set', 'N=10');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/layer\.peer:3:11: error PEER0401: sqrt\(N\) needs a perfect square, but N = 10/);
    expect(r.stderr).toMatch(/note: checked with --set N=10/);
  });
  it('refuses a name the program does not declare, and a value that does not parse', () => {
    const unknown = peerc('check', file, '--set', 'Q=3');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/--set Q=3:1:7: error PEER0200: unknown name 'Q' \(--set names a const of the program: d, N\)/);
    expect(peerc('check', file, '--set', 'N=(3').stderr).toMatch(/--set N=\(3:1:\d+: error PEER0101/);
    const form = peerc('check', file, '--set', 'N');
    expect(form.status).toBe(2);
    expect(form.stderr).toMatch(/--set takes NAME=VALUE/);
  });
  it('is recorded by peerc train, and a resume with other values is refused (PEER0706)', () => {
    const recall = join(tmp, 'recall.peer');
    writeFileSync(recall, smallExample('recall.peer').replace('const K = 4096', 'const K = 64'));
    const out = join(tmp, 'run');
    const r = peerc('train', recall, '--set', 'N=16^2', '--steps', '4', '--backend', 'cpu', '--out', out, '--eval-every', '2', '--stop-at', '2');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/--set N=16\^2/);
    const ck = readCheckpoint(join(out, 'checkpoint.safetensors'));
    expect(JSON.parse(ck.meta.run)).toMatchObject({ set: 'N=16^2' });
    expect(ck.tensors.get('param.Vals')!.shape[0]).toBe(256);
    const other = peerc('train', recall, '--resume', '--out', out, '--backend', 'cpu');
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/PEER0706.*set/);
    const same = peerc('train', recall, '--resume', '--set', 'N=16^2', '--out', out, '--backend', 'cpu');
    expect(same.status, same.stderr).toBe(0);
  }, 300_000);
  it('peerc train --profile prints each part of the step, longest first (SGD on the table memories\' kernel)', () => {
    const recall = join(tmp, 'recall-profile.peer');
    writeFileSync(recall, smallExample('recall.peer').replace('const K = 4096', 'const K = 64'));
    const r = peerc('train', recall, '--set', 'N=16^2', '--steps', '4', '--optimizer', 'sgd', '--backend', 'wasm-simd', '--out', join(tmp, 'profiled'), '--eval-every', '4', '--profile');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/profile: median step [\d.]+ ms over steps 2-4 \(3\); median ms per step of each part:/);
    const parts = [...r.stdout.matchAll(/^ +([\d.]+) ms +\d+% {2}(.+)$/gm)].map((m) => ({ ms: Number(m[1]), label: m[2]! }));
    expect(parts.map((p) => p.label)).toContain('optimizer');
    expect(parts.map((p) => p.label).some((l) => l.startsWith('row sums'))).toBe(true);
    const timed = parts.filter((p) => !p.label.startsWith('the rest'));
    expect(timed.map((p) => p.ms)).toEqual([...timed.map((p) => p.ms)].sort((a, b) => b - a));
    expect(r.stdout).not.toMatch(/host loop/);
  }, 300_000);
});

describe('per-token cost from the IR', () => {
  it("the paper's layer: dense weights, keys and the gathered expert rows; einsum FLOPs", () => {
    const m = compileOk(readFileSync(join(root, 'examples', 'peer_paper.peer'), 'utf8'));
    const c = tokenCost(m);
    // Wq 8*128*256, BatchNorm gamma and beta 2*1024, keys 2*1024*64, h*k = 128 rows of U and of V.
    expect(c.activeParams).toBe(262144 + 2048 + 131072 + 2 * 128 * 256);
    // query 2*256*1024, scoring 2 sides * 2*8*1024*64, experts 2 * 2*128*256.
    expect(c.flops).toBe(524288 + 2 * 1048576 + 2 * 65536);
    expect(c.params).toBe(537266176);
  });
  it('a dense layer reads all its weights', () => {
    const c = tokenCost(compileOk(readFileSync(join(root, 'examples', 'dense_ffw.peer'), 'utf8')));
    expect(c.activeParams).toBe(c.params);
  });
  it('peerc info reports it, in text and JSON', () => {
    expect(peerc('info', join(root, 'examples', 'peer_paper.peer')).stdout).toMatch(/per token: 460,800 active parameters \(of 537,266,176\), 2,752,512 forward einsum FLOPs/);
    expect(JSON.parse(peerc('info', join(root, 'examples', 'peer_paper.peer'), '--json').stdout).cost).toEqual({ active_parameters: 460800, forward_flops: 2752512, open_dim: 64 });
  });
});

describe('peerc compare', () => {
  it('one row per configuration, seeds as mean ± std, cost per token, and overlaid plots', () => {
    const recall = join(tmp, 'recall-compare.peer');
    writeFileSync(recall, smallExample('recall.peer').replace('const K = 4096', 'const K = 64').replace('const N = 32^2', 'const N = 16^2'));
    const runs = [['s1', '1', []], ['s2', '2', []], ['small', '1', ['--set', 'N=8^2']]] as const;
    for (const [name, seed, extra] of runs) {
      const r = peerc('train', recall, ...extra, '--steps', '4', '--eval-every', '2', '--backend', 'cpu', '--seed', seed, '--out', join(tmp, 'cmp', name));
      expect(r.status, r.stderr).toBe(0);
    }
    const plots = join(tmp, 'cmp-plots');
    const c = peerc('compare', ...runs.map(([n]) => join(tmp, 'cmp', n)), '--plots', plots);
    expect(c.status, c.stderr).toBe(0);
    const rows = c.stdout.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| ---'));
    expect(rows[0]).toMatch(/^\| runs \| seeds \| steps \| final val loss \| best val loss \| bits\/byte \| tokens\/s \| Vals used \| Vals KL \| train s \| params \| active params\/token \| FLOPs\/token \|$/);
    expect(rows).toHaveLength(3);
    expect(rows[1]).toMatch(/^\| s1, s2 \| 1, 2 \| 4 ± 0 \| [\d.]+ ± [\d.e-]+ \|/);
    expect(rows[2]).toMatch(/^\| small \| 1 \| 4 \| [\d.]+ \|/);
    // The --set N=8^2 run has the smaller table: fewer parameters.
    const params = (row: string) => Number(row.split('|').at(-4)!.trim().replace(/,/g, ''));
    expect(params(rows[2]!)).toBeLessThan(params(rows[1]!));
    for (const f of ['compare-loss-step.svg', 'compare-loss-time.svg']) {
      const svg = readFileSync(join(plots, f), 'utf8');
      expect(svg.match(/<polyline/g)).toHaveLength(2);
      expect(svg).toContain('s1 (2 seeds)');
    }
  }, 300_000);
  it('a folder that is not a run is a usage error', () => {
    const r = peerc('compare', tmp);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/is not a peerc train run folder/);
  });
});

describe('peerc sweep', () => {
  it('runs the grid, resumes a stopped run, skips finished ones on a second start, and compares', () => {
    const dir = join(tmp, 'sweep');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'recall.peer'), smallExample('recall.peer').replace('const K = 4096', 'const K = 64'));
    const spec = { out: 'runs', programs: ['recall.peer'], set: { N: ['8^2', '16^2'] }, seeds: [1, 2], train: ['--steps', '4', '--eval-every', '2', '--backend', 'cpu'] };
    writeFileSync(join(dir, 'grid.json'), JSON.stringify(spec));
    // One point stopped half-way, as a crash or Ctrl-C would leave it.
    const stopped = join(dir, 'runs', 'recall-N=8_2-seed2');
    expect(peerc('train', join(dir, 'recall.peer'), '--set', 'N=8^2', '--seed', '2', '--steps', '4', '--eval-every', '2', '--backend', 'cpu', '--out', stopped, '--stop-at', '2').status).toBe(0);
    const first = peerc('sweep', join(dir, 'grid.json'));
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/\[1\/4\] recall-N=8_2-seed1: training/);
    expect(first.stdout).toMatch(/\[2\/4\] recall-N=8_2-seed2: resuming/);
    expect(first.stdout).toMatch(/\[4\/4\] recall-N=16_2-seed2: training/);
    expect(readCheckpoint(join(stopped, 'checkpoint.safetensors'), { tensors: false }).meta.step).toBe(4);
    const second = peerc('sweep', join(dir, 'grid.json'));
    expect(second.status).toBe(0);
    expect(second.stdout.match(/done, skipped/g)).toHaveLength(4);
    const table = readFileSync(join(dir, 'runs', 'compare.md'), 'utf8').split('\n').filter((l) => l.startsWith('| recall'));
    expect(table).toHaveLength(2);
    expect(table[0]).toMatch(/^\| recall-N=8_2-seed1, recall-N=8_2-seed2 \| 1, 2 \|/);
  }, 600_000);
  it('takes explicit points instead of a grid', () => {
    const pts = sweepPoints({ out: 'o', programs: ['x.peer'], points: [{ h: 1, k: 32 }, { h: 2, k: 16 }], seeds: [0, 1] }, '/base');
    expect(pts.map((p) => basename(p.dir))).toEqual(['x-h=1-k=32-seed0', 'x-h=1-k=32-seed1', 'x-h=2-k=16-seed0', 'x-h=2-k=16-seed1']);
    expect(pts[2]!.set).toEqual([['h', '2'], ['k', '16']]);
  });
  it('refuses flags the sweep sets per run', () => {
    const f = join(tmp, 'bad.json');
    writeFileSync(f, JSON.stringify({ out: 'x', programs: ['a.peer'], train: ['--seed', '3'] }));
    const r = peerc('sweep', f);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error PEER0802: .*bad\.json: "train" may not contain --seed/);
  });
});
