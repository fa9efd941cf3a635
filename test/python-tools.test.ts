// The Python side of the package from `npm test`: pytest on test/python (train.py's random
// numbers, seeded weights and schedules against peerc's) where pytest and torch are installed,
// and ruff on every Python file where ruff is. Each says it was skipped, and why, elsewhere.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pythonProbe } from './helpers.js';

const root = join(import.meta.dirname, '..');
const pytest = pythonProbe('import pytest, torch, numpy, safetensors; print(pytest.__version__)', 'pytest of train.py', 'python3 with pytest, torch, numpy and safetensors not found (pip install pytest torch numpy safetensors)');
const ruff = spawnSync('ruff', ['--version'], { encoding: 'utf8' });
if (ruff.status !== 0) console.log('ruff check skipped: ruff not found (pip install ruff)');

describe('the Python files', () => {
  it.skipIf(!pytest)(`pass pytest ${pytest ?? ''} (test/python)`, () => {
    const r = spawnSync('python3', ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', join(root, 'test', 'python')], { cwd: root, encoding: 'utf8', timeout: 600_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  }, 600_000);
  it.skipIf(ruff.status !== 0)(`pass ${ruff.stdout?.trim()} (ruff.toml)`, () => {
    const r = spawnSync('ruff', ['check', '--no-cache', '.'], { cwd: root, encoding: 'utf8' });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  });
});
