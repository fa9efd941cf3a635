// The baselines bench/ compares peerc against compute the same layer: the PyTorch program
// written for speed (bench/torch-peer.py) against peerc's float64 interpreter, from the same
// float64 weights and inputs (a small N; the code does not depend on N). Needs python3 with
// torch and safetensors; skipped, with that message, where they are missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/io/safetensors.js';
import { pythonProbe, runPeerc } from './helpers.js';

const root = join(import.meta.dirname, '..');
const torchVersion = pythonProbe('import torch, safetensors; print(torch.__version__)', 'PyTorch baseline parity', 'python3 with torch and safetensors not found (pip install torch safetensors numpy)');

describe.skipIf(!torchVersion)(`bench/torch-peer.py (torch ${torchVersion}) is the layer peerc benchmarks`, () => {
  for (const h of [4, 8])
    it(`h = ${h}: its float64 forward agrees with the interpreter to 1e-10`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'peerc-torch-baseline-'));
      const sets = ['--set', 'N=32^2', '--set', `h=${h}`];
      const file = join(root, 'bench', 'peer_h4.peer');
      expect(runPeerc(['init', file, ...sets, '--seed', '3', '--f64', '--out', join(dir, 'w.safetensors')]).status).toBe(0);
      expect(runPeerc(['init', file, ...sets, '--inputs', '--tokens', '12', '--seed', '4', '--out', join(dir, 'in.safetensors')]).status).toBe(0);
      const ref = runPeerc(['run', file, ...sets, '--backend', 'reference', '--weights', join(dir, 'w.safetensors'), '--inputs', join(dir, 'in.safetensors'), '--out', join(dir, 'ref.safetensors')]);
      expect(ref.status, ref.stderr).toBe(0);
      const r = spawnSync('python3', [join(root, 'bench', 'torch-peer.py'), '--check', join(dir, 'w.safetensors'), join(dir, 'in.safetensors'), join(dir, 'torch.safetensors')], { encoding: 'utf8', timeout: 300_000 });
      expect(r.status, r.stderr).toBe(0);
      const want = readSafetensors(readFileSync(join(dir, 'ref.safetensors')), 'ref').tensors;
      const got = readSafetensors(readFileSync(join(dir, 'torch.safetensors')), 'torch').tensors.get('output_0')!;
      const w = [...want.values()][0]!;
      expect(got.shape).toEqual(w.shape);
      let err = 0, scale = 1;
      w.data.forEach((v, i) => {
        err = Math.max(err, Math.abs(v - got.data[i]!));
        scale = Math.max(scale, Math.abs(v));
      });
      expect(err / scale).toBeLessThan(1e-10);
    }, 300_000);
});
