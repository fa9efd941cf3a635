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
for (const n of [64, 256, 1024]) {
  const file = join(dir, `peer_h4_N${n}.peer`);
  writeFileSync(file, base.replace(/^const N = .*$/m, `const N = ${n}^2`));
  const out = execFileSync(process.execPath, [join(root, 'dist', 'peerc.js'), 'bench', file, '--tokens', '256', '--runs', '5', '--skip-reference', '--json'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const r = JSON.parse(out);
  rows.push({ n, r });
  console.log(`N = ${n}^2: fused ${r.fused.medianMs.toFixed(0)} ms, naive ${r.naive.medianMs.toFixed(0)} ms`);
}
const fmt = (x) => x.toFixed(1);
const lines = [
  '# Benchmarks',
  '',
  `Measured by \`node bench/run.mjs\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, gpu.js 2.24.1.`,
  'Forward pass of the PEER layer, B = 256 tokens, d = 256, dk = 128, h = 4, k = 16, backend as reported',
  '(every kernel checked to run on it), median of 5 runs after a warm-up, fused and naive measured side by side in one process.',
  '',
  '| N | backend | fused ms | naive ms | fused tokens/s | naive tokens/s | fused / naive | peak RSS MB |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(({ n, r }) => `| ${n}^2 | ${r.backend} | ${fmt(r.fused.medianMs)} | ${fmt(r.naive.medianMs)} | ${r.tokens_per_s.fused.toFixed(0)} | ${r.tokens_per_s.naive.toFixed(0)} | ${r.speedup_fused_vs_naive.toFixed(2)}x | ${r.peak_rss_mb.toFixed(0)} |`),
  '',
  'Fused kernels at the largest N (median ms per forward):',
  '',
  '| kernel | ms |',
  '| --- | --- |',
  ...rows.at(-1).r.fused.kernels.map((k) => `| ${k.label} | ${k.medianMs.toFixed(2)} |`),
  '',
  'Not measured yet: TensorFlow.js, a hand-written plain-loop forward, the dense-router baseline, and training steps.',
  '',
];
writeFileSync(join(root, 'BENCHMARKS.md'), lines.join('\n'));
console.log('wrote BENCHMARKS.md');
