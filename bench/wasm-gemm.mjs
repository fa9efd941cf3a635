// The generated WebAssembly SIMD128 contraction kernel (one thread) against gpu.js's own
// matmul on webasm and cpu, and a plain JavaScript loop, side by side in one run: 512^3 and the
// PEER scoring shape (T*h = 1024 rows, n = 1024 sub-keys, c = 64). Medians of 5 after a warm-up.
// Usage: npm run build && node --experimental-wasm-relaxed-simd bench/wasm-gemm.mjs
// (without the flag Node 20 has no relaxed SIMD and only the plain path runs).
import { build } from 'esbuild';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import gpujs from 'gpu.js';

const root = join(import.meta.dirname, '..');
const out = join(mkdtempSync(join(tmpdir(), 'peerc-wasm-')), 'wasm-gemm.mjs');
await build({ entryPoints: [join(root, 'runtime', 'backends', 'wasm-simd', 'gemm.ts')], bundle: true, format: 'esm', platform: 'node', outfile: out, logLevel: 'error' });
const { WasmGemm } = await import(out);
const { wasmFeatures } = await import(out);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function time(f, runs = 5) {
  f();
  const ts = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}
const rand = (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 2);

const shapes = [['512^3 matmul', 512, 512, 512], ['scoring thc,nc->thn (1024 x 1024 x 64)', 1024, 1024, 64]];
const rows = [];
for (const [name, m, n, k] of shapes) {
  const a = rand(m * k), b = rand(k * n);
  const gflop = (2 * m * n * k) / 1e9;
  const result = { name };
  for (const relaxed of [false, true]) {
    try {
      const g = new WasmGemm({ relaxed });
      if (relaxed && !g.relaxed) continue;
      result[relaxed ? 'wasm relaxed SIMD' : 'wasm SIMD128'] = gflop / (time(() => g.matmul(a, b, m, n, k)) / 1000);
    } catch (e) {
      result[relaxed ? 'wasm relaxed SIMD' : 'wasm SIMD128'] = String(e.message);
    }
  }
  for (const mode of ['webasm', 'cpu']) {
    const gpu = new gpujs.GPU({ mode });
    const kernel = gpu.createKernel(`function(a, b) { let acc = 0.0; for (let s = 0; s < ${k}; s++) { acc += a[this.thread.y][s] * b[s][this.thread.x]; } return acc; }`, { output: [n, m], tactic: 'precision' });
    const ai = gpujs.input(a, [k, m]), bi = gpujs.input(b, [n, k]);
    result[`gpu.js ${mode}`] = gflop / (time(() => kernel(ai, bi), 3) / 1000);
    gpu.destroy();
  }
  result['plain JS loop'] = gflop / (time(() => {
    const c = new Float32Array(m * n);
    for (let i = 0; i < m; i++) for (let q = 0; q < k; q++) {
      const av = a[i * k + q];
      for (let j = 0; j < n; j++) c[i * n + j] += av * b[q * n + j];
    }
  }, 3) / 1000);
  rows.push(result);
  console.log(JSON.stringify(result));
}
const cols = [...new Set(rows.flatMap((r) => Object.keys(r).filter((k) => k !== 'name')))];
console.log(`\n| shape | ${cols.join(' | ')} |\n| --- | ${cols.map(() => '---').join(' | ')} |`);
for (const r of rows) console.log(`| ${r.name} | ${cols.map((c) => (typeof r[c] === 'number' ? r[c].toFixed(2) : r[c] ?? '-')).join(' | ')} |`);
console.log('\nGFLOP/s, one thread; wasm features:', JSON.stringify(wasmFeatures?.() ?? {}));
