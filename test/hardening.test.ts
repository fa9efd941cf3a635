// Bad inputs, bad paths and misuse, as a user meets them: every one ends in a coded error that
// names what is wrong (exit 1 or 2), never NaN written silently, a lost run, a hang or an
// internal error (runPeerc fails the test on "internal error" and on stack traces).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runPeerc, diagnose } from './helpers.js';
import { readCheckpoint } from '../runtime/train/checkpoint.js';
import { writeSafetensorsFile } from '../src/io/safetensors-file.js';
import { readSafetensors } from '../src/io/safetensors.js';

const root = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-hard-'));
const peerc = (...args: string[]) => runPeerc(args, 300_000);
const at = (name: string) => join(tmp, name);

/** The recall example, small: 256 keys, 32^2 memory slots. */
const recall = at('recall.peer');
writeFileSync(recall, readFileSync(join(root, 'examples', 'recall.peer'), 'utf8').replace('const K = 4096', 'const K = 256').replace('const N = 128^2', 'const N = 32^2'));

function keys(name: string, values: number[]): string {
  const p = at(name);
  writeSafetensorsFile(p, [{ name: 'keys', dtype: 'I64', shape: [values.length], element: (i) => values[i]! }]);
  return p;
}

describe('run checks inputs and weights on every backend', () => {
  const good = keys('good.safetensors', [0, 1, 2, 255]);
  for (const backend of ['reference', 'cpu', 'auto']) {
    it(`${backend}: an out-of-range or negative index is PEER0603, naming the input, element and table`, () => {
      for (const [bad, where] of [[256, 2], [-1, 1]] as const) {
        const values = [3, 4, 5];
        values[where] = bad;
        const r = peerc('run', recall, '--seed', '1', '--inputs', keys(`bad-${backend}.safetensors`, values), '--out', at('o.safetensors'), '--backend', backend);
        expect(r.status, r.stderr).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`error PEER0603: .*index ${bad} is out of range for 256 rows`));
        if (backend !== 'reference') expect(r.stderr).toContain(`input 'keys' at [${where}]`);
        expect(r.stderr).toMatch(/recall\.peer:\d+:\d+/); // points at the gather in the program
      }
      expect(peerc('run', recall, '--seed', '1', '--inputs', good, '--out', at(`ok-${backend}.safetensors`), '--backend', backend).status).toBe(0);
    });
  }

  it('NaN in a weights file is PEER0605 naming the weight and element, on the reference and on gpu.js', () => {
    const w = at('w.safetensors');
    expect(peerc('init', recall, '--seed', '1', '--out', w).status).toBe(0);
    const { tensors } = readSafetensors(readFileSync(w), w);
    const list = [...tensors].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, element: (i: number) => (name === 'Wout' && i === 7 ? NaN : t.data[i]!) }));
    const bad = at('wnan.safetensors');
    writeSafetensorsFile(bad, list);
    for (const backend of ['reference', 'auto']) {
      const r = peerc('run', recall, '--weights', bad, '--inputs', good, '--out', at('o.safetensors'), '--backend', backend);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/error PEER0605: weight 'Wout' in .*wnan\.safetensors contains NaN or infinity \(element \[0, 7\] is NaN\)/);
    }
  });

  it('init --inputs writes inputs that run accepts (index inputs within their tables)', () => {
    const inputs = at('made/inputs.safetensors');
    const r = peerc('init', recall, '--inputs', '--tokens', '64', '--seed', '5', '--out', inputs);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('keys index[64]');
    const keysIn = readSafetensors(readFileSync(inputs), inputs).tensors.get('keys')!;
    expect(keysIn.data.every((v) => v >= 0 && v < 256 && Number.isInteger(v))).toBe(true);
    expect(new Set(keysIn.data).size).toBeGreaterThan(20);
    expect(peerc('run', recall, '--seed', '1', '--inputs', inputs, '--out', at('made/out.safetensors'), '--backend', 'cpu').status).toBe(0);
    expect(peerc('init', recall, '--inputs', '--dim', 'Q=3', '--seed', '5', '--out', inputs).stderr).toMatch(/no open dimension 'Q' \(its dimensions: B\)/);
  });
});

describe('paths are the user\'s errors (PEER0800, exit 1), never a hang', () => {
  const inputs = keys('paths-in.safetensors', [1, 2]);
  const file = at('a-file');
  writeFileSync(file, 'x');
  const run = (out: string) => peerc('run', recall, '--seed', '1', '--inputs', inputs, '--out', out);

  it('run creates missing folders; refuses a folder or a file on the way', () => {
    expect(run(at('deep/er/o.safetensors')).status).toBe(0);
    expect(existsSync(at('deep/er/o.safetensors'))).toBe(true);
    const dir = run(tmp);
    expect(dir.status).toBe(1);
    expect(dir.stderr).toMatch(/error PEER0800: cannot write .*: it is a folder/);
    const through = run(join(file, 'o.safetensors'));
    expect(through.status).toBe(1);
    expect(through.stderr).toMatch(/error PEER0800: cannot create the folder .*a-file.*is a file, not a folder/);
  });

  it('compile -o and train --out on a file or under /proc fail at once', () => {
    for (const args of [['compile', recall, '-o', file], ['train', recall, '--out', file], ['compile', recall, '-o', '/proc/peerc-x'], ['train', recall, '--out', '/proc/peerc-x']]) {
      const t0 = performance.now();
      const r = runPeerc(args, 60_000);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/error PEER0800: cannot create the folder/);
      expect(performance.now() - t0).toBeLessThan(60_000);
    }
  });

  it('a read-only folder is PEER0800 (skipped as root, who may write anywhere)', () => {
    if (process.getuid?.() === 0) return;
    const ro = at('ro');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    const r = run(join(ro, 'o.safetensors'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/PEER0800: cannot write .*permission denied/);
  });
});

describe('train never loses or silently reinterprets a run', () => {
  const common = ['--backend', 'cpu', '--eval-batches', '1'];

  it('validation that blows up is PEER0703, not an internal error', () => {
    const r = peerc('train', recall, '--steps', '8', '--lr', '1e20', '--eval-every', '1', '--out', at('blowup'), ...common);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error PEER0703: .* became NaN or infinite at step \d+; training stopped/);
  });

  it('an --out holding a run is refused (PEER0705) unless --resume or --force', () => {
    const out = at('taken');
    expect(peerc('train', recall, '--steps', '2', '--out', out, ...common).status).toBe(0);
    const before = readFileSync(join(out, 'checkpoint.safetensors'));
    const again = peerc('train', recall, '--steps', '2', '--out', out, ...common);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/error PEER0705: .*taken already holds a run \(checkpoint\.safetensors\); continue it with --resume, or pass --force/);
    expect(readFileSync(join(out, 'checkpoint.safetensors')).equals(before)).toBe(true);
    expect(peerc('train', recall, '--steps', '3', '--out', out, '--force', ...common).status).toBe(0);
    expect(readCheckpoint(join(out, 'checkpoint.safetensors')).meta.step).toBe(3);
  });

  it('--resume honours and records --steps and --lr, refuses --batch and --data, and stops at a finished run', () => {
    const out = at('resumed');
    expect(peerc('train', recall, '--steps', '3', '--lr', '0.003', '--out', out, ...common).status).toBe(0);
    const done = peerc('train', recall, '--resume', '--out', out, ...common);
    expect(done.status).toBe(1);
    expect(done.stderr).toMatch(/error PEER0707: the run is complete \(step 3 of 3\); to train further, pass --steps greater than 3/);
    const below = peerc('train', recall, '--resume', '--out', out, '--steps', '2', ...common);
    expect(below.stderr).toMatch(/error PEER0707: --steps 2 is not beyond the checkpoint's step 3/);
    const batch = peerc('train', recall, '--resume', '--out', out, '--steps', '5', '--batch', '8', ...common);
    expect(batch.status).toBe(1);
    expect(batch.stderr).toMatch(/error PEER0706: --batch cannot change when resuming \(the checkpoint was trained with 64, not 8\)/);
    const data = peerc('train', recall, '--resume', '--out', out, '--steps', '5', '--data', recall, ...common);
    expect(data.stderr).toMatch(/error PEER0706: --data cannot change/);
    const more = peerc('train', recall, '--resume', '--out', out, '--steps', '5', '--lr', '0.001', ...common);
    expect(more.status, more.stderr).toBe(0);
    expect(more.stdout).toMatch(/resuming at step 3 of 5 from .* with --steps 3 -> 5, --lr 0.003 -> 0.001/);
    const ck = readCheckpoint(join(out, 'checkpoint.safetensors'));
    expect(ck.meta.step).toBe(5);
    expect(JSON.parse(ck.meta.run)).toMatchObject({ steps: 5, optimizer: { lr: 0.001 } });
    expect(JSON.parse(ck.meta.resumes!)).toEqual([{ step: 3, changes: { steps: [3, 5], lr: [0.003, 0.001] } }]);
    const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { split: string; step: number });
    expect(rows.filter((r) => r.split === 'resume')).toEqual([{ step: 3, split: 'resume', changes: { steps: [3, 5], lr: [0.003, 0.001] } }]);
    expect(rows.filter((r) => r.split === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4, 5]);
  });

  it('a weights file given as a checkpoint is PEER0708', () => {
    const w = at('weights-not-ckpt.safetensors');
    expect(peerc('init', recall, '--seed', '1', '--out', w).status).toBe(0);
    const r = peerc('sample', w, '--prompt', 'a');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error PEER0708: .* is a safetensors file but not a peerc training checkpoint \(it was written by peerc init\)/);
  });
});

describe('flags and help', () => {
  it('whole-number flags refuse fractions and counts refuse 0 (exit 2)', () => {
    for (const args of [['sample', 'x.safetensors', '--tokens', '0'], ['sample', 'x.safetensors', '--seed', '1.5'], ['train', recall, '--steps', '2.5'], ['bench', recall, '--runs', '0'], ['init', recall, '--seed', '0.5', '--out', at('x')]]) {
      const r = peerc(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/--(tokens|seed|steps|runs) needs a whole number/);
    }
  });

  it('peerc help COMMAND and COMMAND --help print that command\'s options', () => {
    for (const args of [['help', 'train'], ['train', '--help'], ['run', '-h']]) {
      const r = peerc(...args);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^usage: peerc (train|run) FILE/);
      expect(r.stdout).toMatch(/--(resume|inputs)/);
    }
    expect(peerc('help', 'nope').status).toBe(2);
    expect(peerc('--help').stdout).toMatch(/3 a bug in peerc/);
  });
});

describe('messages that used to mislead', () => {
  it('a prelude layer\'s dims are its own: a user constant h = 4 neither binds nor names them', () => {
    const src = `const d = 64\nconst N = 32^2\nconst h = 4\nconst k = 4\nconst dk = 32\nparam Wq: [h, dk, d] = normal(0, 1)\nparam C1: [sqrt(N), dk/2] = normal(0, 1)\nparam C2: [sqrt(N), dk/2] = normal(0, 1)\n` +
      `model m(x: [B, d]) -> [B, 2, k] {\n  q = einsum("hcd,td->thc", Wq, x)\n  (s, i) = product_topk(q[:, 0:2], C1, C2, k)\n  (s2, i2) = product_topk(q[:, 0:2, 0:16], C1, C2, k)\n  return s\n}\n`;
    const out = diagnose(src);
    expect(out).not.toMatch(/:11:/); // the first call is fine: h = 2 inside product_topk
    expect(out).toMatch(/argument 'C1' of 'product_topk': expected \[n, dk\/2\] = \[32, 8\] but found \[32, 16\]/);
    expect(out).toMatch(/note: in 'product_topk', dk = 16 \(from 'q'\), n = 32 \(from 'C1'\)/);
  });

  it('a user layer\'s shape message says what its constants are', () => {
    const out = diagnose('const N = 128^2\nconst d = 64\nparam E: [4096, d] = normal(0, 1)\nlayer lookup(U: [N, d], i: index[T]) -> [T, d] {\n  return gather(U, i)\n}\nmodel m(i: index[T]) -> [T, d] {\n  return lookup(E, i)\n}\n');
    expect(out).toMatch(/expected \[N, d\] but found \[4096, d\]\n[\s\S]*note: where N = 16384, d = 64/);
  });

  it('topk with k = 0 says k must be at least 1', () => {
    expect(diagnose('model m(x: [T, 8]) -> [T, 0] {\n  (v, i) = topk(x, 0)\n  return v\n}\n')).toMatch(/topk asks for k = 0; k must be at least 1/);
  });
});
