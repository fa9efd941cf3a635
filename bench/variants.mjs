// PEER variants beside the paper's layer at N = 256^2 (d = 256, dk = 128, h = 4, k = 16,
// B = 256 tokens): the forward pass fused vs naive, the training step, and peak memory, all
// through `peerc bench` in one run on one machine; writes the "Variants" section of
// BENCHMARKS.md. Usage: npm run build && node bench/variants.mjs
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'peerc-variants-'));
const header = `const d = 256
const N = 256^2
const n = 256
const h = 4
const k = 16
const dk = 128
param Wq: [h, dk, d] = normal(0, 1/sqrt(d))
param bn_g: [h*dk] = ones()
param bn_b: [h*dk] = zeros()
buffer bn_mean: [h*dk] = zeros()
buffer bn_var: [h*dk] = ones()
param C1: [n, dk/2] = normal(0, 1/sqrt(dk/2))
param C2: [n, dk/2] = normal(0, 1/sqrt(dk/2))
`;
const query = '  (s, idx) = product_topk(query_bn(x, Wq, bn_g, bn_b, bn_mean, bn_var), C1, C2, k)';
const single = 'param U: [N, d] = normal(0, 1/sqrt(d)) @sparse\nparam V: [N, d] = normal(0, 1/sqrt(h*k)) @sparse\n';

const VARIANTS = [
  ['the paper\'s layer (softmax, GELU)', single, `${query}\n  return experts_gelu(x, U, V, idx, softmax(s))`],
  ['sigmoid gates', single, `${query}\n  return experts_gelu(x, U, V, idx, sigmoid(s))`],
  ['top-p 0.9 over the selected experts', single,
    `${query}\n  p = softmax(s)\n  keep = where(less(cumsum(p) - p, 0.9), p, 0.0)\n  return experts_gelu(x, U, V, idx, keep / sum(keep)[..., None])`],
  ['sub-key top-8, final top-16 (PEER-pytorch product_key_topk)', single,
    `  q = query_bn(x, Wq, bn_g, bn_b, bn_mean, bn_var)\n  (v1, a) = topk(einsum("thc,nc->thn", q[..., 0:dk/2], C1), 8)\n  (v2, b) = topk(einsum("thc,nc->thn", q[..., dk/2:dk], C2), 8)\n  (s, best) = topk(reshape(v1[..., None] + v2[..., None, :], [T, h, 64]), k)\n  idx = take_along(reshape(a[..., None] * n + b[..., None, :], [T, h, 64]), best)\n  return experts_gelu(x, U, V, idx, softmax(s))`],
  ['m = 2 hidden units per expert', 'param U: [N, 2, d] = normal(0, 1/sqrt(d)) @sparse\nparam V: [N, 2, d] = normal(0, 1/sqrt(2*h*k)) @sparse\n',
    `${query}\n  hid = gelu(einsum("thkmd,td->thkm", gather(U, idx), x)) * softmax(s)[..., None]\n  return einsum("thkm,thkmd->td", hid, gather(V, idx))`],
  ['GLU experts (SiLU gate table, up table)', 'param Ug: [N, d] = normal(0, 1/sqrt(d)) @sparse\nparam Uu: [N, d] = normal(0, 1/sqrt(d)) @sparse\nparam V: [N, d] = normal(0, 1/sqrt(h*k)) @sparse\n',
    `${query}\n  hid = silu(einsum("thkd,td->thk", gather(Ug, idx), x)) * einsum("thkd,td->thk", gather(Uu, idx), x)\n  return einsum("thk,thkd->td", hid * softmax(s), gather(V, idx))`],
  ['two PEER layers, tables stacked [2, N, d]', 'param U: [2, N, d] = normal(0, 1/sqrt(d)) @sparse\nparam V: [2, N, d] = normal(0, 1/sqrt(h*k)) @sparse\n',
    `  y = x + peer(x, Wq, bn_g, bn_b, bn_mean, bn_var, C1, C2, U[0], V[0], k)\n  return y + peer(y, Wq, bn_g, bn_b, bn_mean, bn_var, C1, C2, U[1], V[1], k)`],
];

const peerc = (args) => JSON.parse(execFileSync(process.execPath, [join(root, 'dist', 'peerc.js'), ...args], { encoding: 'utf8', maxBuffer: 1 << 26 }));
const rows = [];
VARIANTS.forEach(([name, tables, body], i) => {
  const file = join(dir, `variant${i}.peer`);
  writeFileSync(file, `${header}${tables}model variant(x: [T, d]) -> [T, d] {\n${body}\n}\n`);
  const fwd = peerc(['bench', file, '--tokens', '256', '--runs', '5', '--skip-reference', '--json']);
  const train = peerc(['bench', file, '--train', '--tokens', '256', '--runs', '3', '--json']);
  rows.push({ name, fwd, train });
  console.log(`${name}: fused ${fwd.fused.medianMs.toFixed(1)} ms, naive ${fwd.naive.medianMs.toFixed(1)} ms, train ${train.median_ms.toFixed(0)} ms`);
});

const base = rows[0];
const f1 = (x) => x.toFixed(1);
const table = [
  '<!-- variants -->',
  '## Variants',
  '',
  `\`node bench/variants.mjs\` on ${new Date().toISOString().slice(0, 10)}, ${cpus().length} x ${cpus()[0].model.trim()}, Node ${process.version}, backend ${base.fwd.backend}:`,
  'each variant of the layer at N = 256^2 experts (d = 256, dk = 128, h = 4, k = 16, query BatchNorm), 256 tokens; forward medians of 5',
  'runs, training-step medians of 3 (loss, backward, sparse row sums, Adam), all in one run. "vs paper" is the fused forward time over',
  'the paper layer\'s. Every variant fuses (no note from `peerc check`); the naive lowering builds the [T, h, k, k] candidates and the',
  '[T, h, k, (m,) d] gathered rows.',
  '',
  '| variant | fused ms | naive ms | fused vs naive | vs paper | train step ms | train peak RSS |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.name} | ${f1(r.fwd.fused.medianMs)} | ${f1(r.fwd.naive.medianMs)} | ${(r.fwd.naive.medianMs / r.fwd.fused.medianMs).toFixed(2)}x | ${(r.fwd.fused.medianMs / base.fwd.fused.medianMs).toFixed(2)}x | ${r.train.median_ms.toFixed(0)} | ${(r.train.peak_rss_bytes / 2 ** 30).toFixed(2)} GiB |`),
  '',
  'Fusion notes, if any: ' + (rows.flatMap((r) => r.fwd.fusion_notes.map((n) => `${r.name}: ${n}`)).join('; ') || 'none.'),
  '<!-- /variants -->',
].join('\n');

const path = join(root, 'BENCHMARKS.md');
const md = readFileSync(path, 'utf8');
const section = /<!-- variants -->[\s\S]*<!-- \/variants -->/;
writeFileSync(path, section.test(md) ? md.replace(section, table) : `${md.trimEnd()}\n\n${table}\n`);
console.log(`wrote the Variants section of ${path}`);
