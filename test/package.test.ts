// peerc as an outsider gets it: `npm pack`, install the tarball into an empty folder (optional
// dependencies omitted, as the README says, so gpu.js's native `gl` is not built), compile an
// example with the installed CLI, import the emitted bundle from a TypeScript file checked with
// tsc --strict (no skipLibCheck), and run a forward pass and a training step.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const MAIN = `import { Recall, RecallTraining, PARAMS } from './out/recall.mjs';
import { PeercError, BACKENDS } from 'peerc/runtime';

const keys = { shape: [4] as const, data: [1, 2, 3, 255] };
const model = Recall.fromSeed(1, { backend: 'cpu' });
const { output } = await model.forward({ keys });
const rows: number = output.shape[0];
const report: Record<string, unknown> = { shape: output.shape, rows, finite: output.data.every(Number.isFinite), backends: Object.keys(BACKENDS).length };
try {
  await model.forward({ keys: { shape: [1], data: [9999] } });
} catch (e) {
  report.badKey = e instanceof PeercError ? e.code : 'not a PeercError';
}
try {
  await model.forward({ keys: { shape: [2], data: [1] } });
} catch (e) {
  report.badShape = e instanceof PeercError ? e.code : 'not a PeercError';
}
const training = RecallTraining.fromSeed(1, { backend: 'cpu', optimizer: { kind: 'adam', lr: 1e-2 } });
const first = await training.step({ keys }, { shape: [4], data: [5, 6, 7, 8] });
const second = await training.step({ keys }, { shape: [4], data: [5, 6, 7, 8] });
report.losses = [first.loss, second.loss];
report.vals = PARAMS.Vals.shape;
try {
  RecallTraining.fromSeed(1, { optimizer: { kind: 'adamx' as 'adam', lr: -1 } });
} catch (e) {
  report.badOptimizer = e instanceof PeercError ? e.code : 'not a PeercError';
}
model.destroy();
await training.destroy();
console.log(JSON.stringify(report));
`;

it('npm pack, install in an empty folder, compile, tsc --strict, forward and a training step', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peerc-outsider-'));
  execFileSync(npm, ['pack', '--pack-destination', dir], { cwd: root, stdio: 'pipe' });
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
  const app = join(dir, 'app');
  execFileSync('mkdir', [app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'outsider', private: true, type: 'module' }));
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--omit=optional', '--prefer-offline', join(dir, tarball)], { cwd: app, stdio: 'pipe' });

  const src = readFileSync(join(root, 'examples', 'recall.peer'), 'utf8').replace('const K = 4096', 'const K = 256').replace('const N = 128^2', 'const N = 32^2');
  writeFileSync(join(app, 'recall.peer'), src);
  const peerc = join(app, 'node_modules', '.bin', 'peerc');
  const compiled = spawnSync(peerc, ['compile', 'recall.peer', '-o', 'out'], { cwd: app, encoding: 'utf8' });
  expect(compiled.status, compiled.stderr).toBe(0);
  expect(compiled.stdout).toContain('out/recall.d.mts');
  // train.py is a file of the package, copied beside the exported module: it must be in the tarball
  const exported = spawnSync(peerc, ['export', 'recall.peer', '--torch', '-o', 'torch'], { cwd: app, encoding: 'utf8' });
  expect(exported.status, exported.stderr).toBe(0);
  expect(readFileSync(join(app, 'torch', 'train.py'), 'utf8')).toBe(readFileSync(join(root, 'codegen', 'python', 'train.py'), 'utf8'));
  expect(JSON.parse(readFileSync(join(app, 'torch', 'train.json'), 'utf8'))).toHaveProperty('params');

  writeFileSync(join(app, 'main.mts'), MAIN);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', types: [] }, files: ['main.mts'] }));
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: app, encoding: 'utf8' });
  expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);

  const ran = spawnSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8' });
  expect(ran.status, ran.stderr).toBe(0);
  const report = JSON.parse(ran.stdout.trim().split('\n').pop()!) as Record<string, unknown> & { losses: number[] };
  expect(report).toMatchObject({ shape: [4, 256], rows: 4, finite: true, badKey: 'PEER0603', badShape: 'PEER0602', vals: [1024, 64], badOptimizer: 'PEER0501' });
  expect(report.losses.every(Number.isFinite)).toBe(true);
  expect(report.losses[1]).toBeLessThan(report.losses[0]!);
});

describe('the default install is lean and quiet', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string>; allowScripts: Record<string, boolean> };
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };
  it('the heavy extras (ONNX Runtime, TF.js) are opt-in, not in the lockfile', () => {
    for (const heavy of ['onnxruntime-node', 'onnxruntime-web', '@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm']) {
      expect(pkg.dependencies[heavy]).toBeUndefined();
      expect(pkg.devDependencies[heavy]).toBeUndefined();
      expect(lock.packages[`node_modules/${heavy}`]).toBeUndefined();
    }
  });
  it('every locked package with an install script has a decision in allowScripts (npm warns about none), and no .npmrc key npm does not know', () => {
    const withScripts = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript).map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 13));
    expect(withScripts.filter((name) => !(name in pkg.allowScripts))).toEqual([]);
    expect(existsSync(join(root, '.npmrc'))).toBe(false);
  });
});
