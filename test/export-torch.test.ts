// `peerc export --torch` against the float64 interpreter: every example exported, loaded from
// float64 peerc weights with load_peerc and run in PyTorch (float64), agrees to 1e-10. Needs
// python3 with torch and safetensors (`pip install torch safetensors numpy`); skipped, with
// that message, where they are missing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { emitTorch, torchModule } from '../codegen/torch.js';
import { compileOk, EXAMPLE_FILES, pythonProbe, smallExample } from './helpers.js';
import { forwardAgrees, NOISELESS_EXAMPLES, trainStepAgrees } from './torch-export-checks.js';

const root = join(import.meta.dirname, '..');
const torchVersion = pythonProbe('import torch, safetensors; print(torch.__version__)', 'PyTorch export tests', 'python3 with torch and safetensors not found (pip install torch safetensors numpy)');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-torch-'));
const examples = EXAMPLE_FILES;

describe.skipIf(!torchVersion)(`PyTorch export (torch ${torchVersion}) agrees with the float64 interpreter`, () => {
  for (const file of examples) it(file, () => forwardAgrees(file, { kernels: 'eager', tolerance: 1e-10 }), 300_000);
});

describe.skipIf(!torchVersion)('PyTorch export trains like peerc: loss, every gradient and running statistics of a step agree to 1e-8 (float64)', () => {
  for (const file of NOISELESS_EXAMPLES) it(file, () => trainStepAgrees(file, { kernels: 'eager', tolerance: 1e-10 }), 300_000);
});

describe('export errors', () => {
  it('an op without a PyTorch form is PEER0900 at its source line', () => {
    const m = compileOk(smallExample('peer_paper.peer'));
    const training = compileTraining(m, { gradients: true }).module;
    expect(() => emitTorch(training, 'x.peer', 'test')).toThrow(/PEER0900: op '\w+' has no PyTorch form/);
  });
});

describe.skipIf(!torchVersion)('peerc export --torch as a user runs it', () => {
  it('exports, and the module loads a peerc train checkpoint and runs', () => {
    const cli = join(root, 'dist', 'peerc.js');
    const peerc = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', timeout: 300_000 });
    const src = join(tmp, 'recall.peer');
    writeFileSync(src, smallExample('recall.peer').replace('const K = 4096', 'const K = 64'));
    const run = join(tmp, 'recall-run');
    expect(peerc('train', src, '--steps', '2', '--backend', 'cpu', '--out', run, '--eval-every', '2').status).toBe(0);
    const out = join(tmp, 'exported');
    const r = peerc('export', src, '--torch', '-o', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*recall\.py: class Recall and load_peerc/);
    const py = `import sys, torch; sys.path.insert(0, ${JSON.stringify(out)}); from recall import load_peerc, INPUTS, PARAMS
m = load_peerc(${JSON.stringify(join(run, 'checkpoint.safetensors'))})
assert sorted(n for n, _ in m.named_parameters()) == sorted(n for n, r, _ in PARAMS if r == "param")
args = {name: torch.randint(0, 64, [5] + [int(s) for s in shape[1:]]) if dtype == "index" else torch.randn([5] + [int(s) for s in shape[1:]]) for name, dtype, shape in INPUTS}
y = m(**args)
print(m.training, y.dtype, list(y.shape), bool(torch.isfinite(y).all()))`;
    const p = spawnSync('python3', ['-c', py], { encoding: 'utf8' });
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout.trim()).toMatch(/^False torch\.float32 \[5, \d+\] True$/);
  }, 300_000);
});
