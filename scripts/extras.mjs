#!/usr/bin/env node
// `npm run extras [-- NAME...]`: the opt-in packages that only some users want, kept out of the
// default install (they are ~700 MB of the ~950 MB a full install was). Pinned here, installed
// with --no-save so package.json and the lockfile stay the lean default; `npm ci` removes them.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const EXTRAS = {
  ort: { packages: ['onnxruntime-node@1.30.0'], for: 'the ONNX Runtime CPU baseline of peerc bench and test/export-onnx-node.test.ts' },
  'ort-web': { packages: ['onnxruntime-web@1.30.0'], for: 'test/browser-onnx.test.ts (the ONNX export in Chromium)' },
  tfjs: { packages: ['@tensorflow/tfjs@4.22.0', '@tensorflow/tfjs-backend-wasm@4.22.0'], for: 'the TF.js baselines of bench/run.mjs and bench/train.mjs' },
  webgpu: { packages: ['webgpu@0.6.2'], for: "peerc's webgpu backend in Node (Dawn's addon, 132 MB for every platform; it needs a Vulkan driver) and bench/gpu/pack.sh" },
  gl: { packages: [], build: 'gl', for: "the headlessgl backend: builds gpu.js's optional gl from source (X/GL headers, minutes; run it under xvfb-run)" },
};
const DEFAULT = ['ort', 'ort-web', 'tfjs', 'webgpu'];

const asked = process.argv.slice(2);
if (asked.includes('--help') || asked.some((a) => !(a in EXTRAS))) {
  const bad = asked.filter((a) => a !== '--help' && !(a in EXTRAS));
  if (bad.length) console.error(`unknown extra${bad.length > 1 ? 's' : ''}: ${bad.join(', ')}`);
  console.error(`usage: npm run extras [-- NAME...]   (default: ${DEFAULT.join(' ')})`);
  for (const [name, e] of Object.entries(EXTRAS)) console.error(`  ${name.padEnd(8)} ${e.packages.join(' ') || e.build}: ${e.for}`);
  process.exit(bad.length ? 2 : 0);
}
const names = asked.length ? asked : DEFAULT;
const packages = names.flatMap((n) => EXTRAS[n].packages);
if (packages.length) {
  console.log(`installing ${packages.join(' ')}`);
  // ONNXRUNTIME_NODE_INSTALL=skip: its CPU build ships in the package; the install script would
  // otherwise try to download CUDA files (and fail offline) under npm versions that run it.
  const r = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', ...packages], { stdio: 'inherit', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
for (const n of names.filter((x) => EXTRAS[x].build)) {
  // package.json's allowScripts keeps npm from running this build on every install; here it is asked for.
  const dir = join(import.meta.dirname, '..', 'node_modules', EXTRAS[n].build);
  if (!existsSync(dir)) {
    console.error(`${EXTRAS[n].build} is not installed (npm ci installs it unless optional dependencies are omitted)`);
    process.exit(1);
  }
  console.log(`building ${EXTRAS[n].build} from source`);
  const r = spawnSync('npm', ['run', 'install'], { cwd: dir, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
