// The bench chart: milliseconds per forward, fused beside naive, one group per backend, on a
// log axis (the lowerings differ by 10-100x). Plain SVG like the training plots.
import type { BenchRow } from './protocol.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function benchChart(rows: readonly BenchRow[], tokens: number): string {
  const ran = rows.filter((r) => r.fusedMs !== undefined && r.naiveMs !== undefined);
  const W = 640, L = 120, R = 70, rowH = 34, T = 40, B = 36;
  const H = T + B + Math.max(1, ran.length) * rowH;
  const all = ran.flatMap((r) => [r.fusedMs!, r.naiveMs!]).filter((v) => v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all, 1)))), hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all, 10))));
  const x = (ms: number) => L + ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (W - L - R);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Forward of ${tokens} tokens: median ms (log scale)</text>`];
  for (let d = lo; d <= hi; d *= 10) parts.push(`<line x1="${x(d)}" x2="${x(d)}" y1="${T - 6}" y2="${H - B}" stroke="#ddd"/><text x="${x(d)}" y="${H - B + 16}" text-anchor="middle">${d >= 1 ? d : d.toPrecision(1)}</text>`);
  ran.forEach((r, i) => {
    const y = T + i * rowH;
    parts.push(`<text x="${L - 8}" y="${y + 18}" text-anchor="end">${esc(r.backend)}</text>`);
    parts.push(`<rect x="${L}" y="${y + 2}" width="${x(r.fusedMs!) - L}" height="12" fill="#1f77b4"><title>fused ${r.fusedMs!.toFixed(2)} ms</title></rect><text x="${x(r.fusedMs!) + 4}" y="${y + 12}">${r.fusedMs!.toFixed(2)}</text>`);
    parts.push(`<rect x="${L}" y="${y + 16}" width="${x(r.naiveMs!) - L}" height="12" fill="#ff7f0e"><title>naive ${r.naiveMs!.toFixed(2)} ms</title></rect><text x="${x(r.naiveMs!) + 4}" y="${y + 26}">${r.naiveMs!.toFixed(2)}</text>`);
  });
  parts.push(`<rect x="${L}" y="${H - 14}" width="10" height="10" fill="#1f77b4"/><text x="${L + 14}" y="${H - 5}">fused</text><rect x="${L + 70}" y="${H - 14}" width="10" height="10" fill="#ff7f0e"/><text x="${L + 84}" y="${H - 5}">naive</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}
