// Runs the standard forward configs (B = 256 tokens, d = 256, dk = 128, h = 4, k = 16;
// N = 64^2, 256^2, 1024^2) through `peerc bench` and writes BENCHMARKS.md with the numbers
// and the machine they were measured on. Usage: npm run build && node bench/run.mjs
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const base = readFileSync(join(root, 'bench', 'peer_h4.peer'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'peerc-bench-'));
const rows = [];
// The standard config (h = 4) at three sizes, then the paper's h = 8 at N = 1024^2.
for (const [n, h] of [[64, 4], [256, 4], [1024, 4], [1024, 8]]) {
  const file = join(dir, `peer_h${h}_N${n}.peer`);
  writeFileSync(file, base.replace(/^const N = .*$/m, `const N = ${n}^2`).replace(/^const h = .*$/m, `const h = ${h}`));
  const out = execFileSync(process.execPath, [join(root, 'dist', 'peerc.js'), 'bench', file, '--tokens', '256', '--runs', '5', '--skip-reference', '--json'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const r = JSON.parse(out);
  // gpu.js's own fastest CPU backend (webasm with threads), fused kernels, in the same run.
  const gpujs = JSON.parse(execFileSync(process.execPath, [join(root, 'dist', 'peerc.js'), 'bench', file, '--tokens', '256', '--runs', '5', '--skip-reference', '--skip-naive', '--backend', 'webasm-threads', '--json'], { encoding: 'utf8', maxBuffer: 1 << 26 }));
  // The same layer in TensorFlow.js, right after, on the same machine (a separate process, so a
  // crash or an out-of-memory there cannot take the peerc numbers with it).
  let tfjs;
  try {
    tfjs = JSON.parse(execFileSync(process.execPath, [join(root, 'bench', 'tfjs-peer.mjs'), String(n), '256', '5', String(h)], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'], timeout: 900_000 }).trim().split('\n').at(-1));
  } catch (e) {
    const why = String(e.stderr ?? e.message).split('\n').find((l) => /Error|memory|heap/i.test(l)) ?? 'failed';
    tfjs = { failed: why.trim().slice(0, 120) };
  }
  const plain = JSON.parse(execFileSync(process.execPath, [join(root, 'bench', 'plain-peer.mjs'), String(n), '256', '5', String(h)], { encoding: 'utf8' }).trim());
  // ONNX Runtime (CPU) on the same layer exported by peerc, seeded weights: what a user deploying it would run.
  let ort;
  try {
    const model = join(dir, `peer_h${h}_N${n}.onnx`);
    execFileSync(process.execPath, [join(root, 'dist', 'peerc.js'), 'export', file, '--onnx', '--seed', '0', '-o', model], { stdio: 'ignore' });
    ort = JSON.parse(execFileSync('python3', [join(root, 'bench', 'ort-peer.py'), model, '256', '5'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 900_000 }).trim().split('\n').at(-1));
  } catch (e) {
    ort = { failed: String(e.stderr ?? e.message).split('\n').find((l) => /Error|No module/i.test(l))?.trim().slice(0, 120) ?? 'failed' };
  }
  // The fastest CPU PyTorch program we could write for the layer (bench/torch-peer.py, 2 threads).
  let torch;
  try {
    torch = JSON.parse(execFileSync('python3', [join(root, 'bench', 'torch-peer.py'), String(n), '256', '5', String(h), '--threads', '2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 900_000 }).trim().split('\n').at(-1));
  } catch (e) {
    torch = { failed: String(e.stderr ?? e.message).split('\n').find((l) => /Error|No module/i.test(l))?.trim().slice(0, 120) ?? 'failed' };
  }
  rows.push({ n, h, r, tfjs, plain, gpujs, ort, torch });
  console.log(`N = ${n}^2, h = ${h}: fused ${r.fused.medianMs.toFixed(0)} ms, naive ${r.naive.medianMs.toFixed(0)} ms, tfjs ${tfjs.median_ms?.toFixed(0) ?? tfjs.failed}`);
}
// The dense router scores all N keys: a [T, h, N] score tensor must stay below 2^24 cells.
const dense = [];
const denseBase = readFileSync(join(root, 'bench', 'dense_router.peer'), 'utf8');
for (const [n, tokens] of [[64, 256], [256, 32], [1024, 2]]) {
  const file = join(dir, `dense_N${n}.peer`);
  writeFileSync(file, denseBase.replace(/^const N = .*$/m, `const N = ${n}^2`));
  const out = execFileSync(process.execPath, [join(root, 'dist', 'peerc.js'), 'bench', file, '--tokens', String(tokens), '--runs', '3', '--skip-reference', '--skip-naive', '--json'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const r = JSON.parse(out);
  dense.push({ n, tokens, r });
  console.log(`dense router N = ${n}^2: ${r.tokens_per_s.fused.toFixed(1)} tokens/s`);
}
const fmt = (x) => x.toFixed(1);
const lines = [
  '# Benchmarks',
  '',
  `Measured by \`node bench/run.mjs\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, gpu.js 2.24.1.`,
  'Forward pass of the PEER layer, B = 256 tokens, d = 256, dk = 128, k = 16, h = 4 (and the paper\'s h = 8), backend as reported',
  '(every kernel checked to run on it), median of 5 runs after a warm-up, fused and naive measured one after the other in one process (each warmed up right before its runs).',
  '',
  '| N | h | backend | fused ms | naive ms | gpu.js webasm-threads fused ms | ONNX Runtime CPU ms | TF.js wasm ms | plain JS ms | fused tokens/s | naive tokens/s | TF.js tokens/s | plain JS tokens/s | fused / naive | fused / gpu.js | fused / ONNX Runtime | fused / TF.js | fused / plain | peerc peak RSS MB | TF.js peak RSS MB |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(({ n, h, r, tfjs, plain, gpujs, ort }) => `| ${n}^2 | ${h} | ${r.backend_detail} | ${fmt(r.fused.medianMs)} | ${fmt(r.naive.medianMs)} | ${fmt(gpujs.fused.medianMs)} | ${ort.median_ms ? fmt(ort.median_ms) : ort.failed} | ${tfjs.median_ms ? fmt(tfjs.median_ms) : tfjs.failed} | ${fmt(plain.median_ms)} | ${r.tokens_per_s.fused.toFixed(0)} | ${r.tokens_per_s.naive.toFixed(0)} | ${tfjs.tokens_per_s ? tfjs.tokens_per_s.toFixed(0) : '-'} | ${plain.tokens_per_s.toFixed(0)} | ${r.speedup_fused_vs_naive.toFixed(2)}x | ${(gpujs.fused.medianMs / r.fused.medianMs).toFixed(2)}x | ${ort.median_ms ? `${(ort.median_ms / r.fused.medianMs).toFixed(2)}x` : '-'} | ${tfjs.median_ms ? `${(tfjs.median_ms / r.fused.medianMs).toFixed(2)}x` : '-'} | ${(plain.median_ms / r.fused.medianMs).toFixed(2)}x | ${r.peak_rss_mb.toFixed(0)} | ${tfjs.peak_rss_mb ? tfjs.peak_rss_mb.toFixed(0) : '-'} |`),
  '',
  'Against the engines a researcher already has, from the same run (peerc fused on its default backend; ONNX Runtime on peerc\'s ONNX export;',
  'bench/torch-peer.py, the fastest CPU PyTorch program we wrote for the layer: embedding_bag for the expert outputs, eager, 2 intra-op threads,',
  'glibc malloc; checked against the float64 interpreter by test/bench-baselines.test.ts). Targets of issue #20: fused <= 1.0x ONNX Runtime, <= 0.8x PyTorch.',
  '',
  '| N | h | peerc fused ms | ONNX Runtime ms | PyTorch ms | fused / ONNX Runtime time | fused / PyTorch time |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(({ n, h, r, ort, torch }) => `| ${n}^2 | ${h} | ${fmt(r.fused.medianMs)} | ${ort.median_ms ? fmt(ort.median_ms) : ort.failed} | ${torch.median_ms ? fmt(torch.median_ms) : torch.failed} | ${ort.median_ms ? `${(r.fused.medianMs / ort.median_ms).toFixed(2)}x` : '-'} | ${torch.median_ms ? `${(r.fused.medianMs / torch.median_ms).toFixed(2)}x` : '-'} |`),
  '',
  'Dense-router baseline (bench/dense_router.peer: every token scores all N keys; fused lowering, fewer tokens where the [T, h, N] scores would pass 2^24 cells):',
  '',
  '| N | tokens | ms | tokens/s | PEER fused tokens/s (above) |',
  '| --- | --- | --- | --- | --- |',
  ...dense.map(({ n, tokens, r }) => `| ${n}^2 | ${tokens} | ${fmt(r.fused.medianMs)} | ${r.tokens_per_s.fused.toFixed(1)} | ${rows.find((x) => x.n === n && x.h === 4).r.tokens_per_s.fused.toFixed(0)} |`),
  '',
  'Contraction kernels against the machine estimate: the backend\'s best 512^3 matmul measured in the same run, on all its threads (peerc\'s SIMD kernel on wasm-simd, gpu.js\'s own on gpu.js backends), N = 1024^2, h = 4:',
  '',
  `- matmul yardstick: ${rows[2].r.matmul_reference_gflops_per_s.toFixed(2)} GFLOP/s${rows[2].r.threads ? ` on ${rows[2].r.threads} threads (${(rows[2].r.matmul_reference_gflops_per_s / rows[2].r.threads).toFixed(2)} per thread)` : ''}`,
  ...Object.entries(rows[2].r.einsum_gflops_per_s).map(([k, g]) => `- ${k}: ${g.toFixed(2)} GFLOP/s (${((100 * g) / rows[2].r.matmul_reference_gflops_per_s).toFixed(0)}%)`),
  '',
  'Fused kernels at N = 1024^2, h = 4 (median ms per forward):',
  '',
  '| kernel | ms |',
  '| --- | --- |',
  ...rows[2].r.fused.kernels.map((k) => `| ${k.label} | ${k.medianMs.toFixed(2)} |`),
  '',
  'TF.js: bench/tfjs-peer.mjs, the layer written the ordinary way (matMul, topk, gather) on @tensorflow/tfjs-backend-wasm 4.22, uniform random expert tables.',
  `ONNX Runtime: the same layer exported with \`peerc export --onnx --seed 0\` (opset 17), timed by bench/ort-peer.py on onnxruntime ${rows.find((x) => x.ort.onnxruntime)?.ort.onnxruntime ?? '(not installed)'} CPU with its default threads.`,
  'Plain JS: bench/plain-peer.mjs, the same layer as straightforward single-threaded loops over Float32Arrays (JIT-compiled by V8).',
  'Training steps: see the section below (bench/train.mjs).',
  '',
];
// Keep the training sections (bench/train.mjs and the full-size run below it) as they are.
const previous = (() => { try { return readFileSync(join(root, 'BENCHMARKS.md'), 'utf8'); } catch { return ''; } })();
const train = /<!-- train -->[\s\S]*$/.exec(previous)?.[0] ?? '';
writeFileSync(join(root, 'BENCHMARKS.md'), lines.join('\n') + (train ? `\n${train}` : ''));
console.log('wrote BENCHMARKS.md');
