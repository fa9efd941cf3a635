// SVG plots written to the run folder: the loss curve (train and validation) and expert usage
// (fraction of experts used and unevenness over training, and the load of every expert at the
// last evaluation, sorted). Plain SVG: opens in any browser, diffable, no dependencies.

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  /** Draw markers (validation points are few). */
  dots?: boolean;
  /** A reference line (a bound), drawn dashed. */
  dashed?: boolean;
}

const W = 640, H = 360, L = 64, R = 16, T = 52, B = 44;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const fmt = (v: number) => (Math.abs(v) >= 1e6 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : Number(v.toPrecision(3)).toLocaleString('en-US'));

function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (hi - lo) / s <= n) ?? step * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / nice) * nice; v <= hi + nice * 1e-9; v += nice) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A line chart of several series; `logY` plots log10 of positive values. */
export function lineChart(title: string, xLabel: string, yLabel: string, series: readonly Series[], options: { logY?: boolean; x0?: number; y0?: number } = {}): string {
  const tf = (y: number) => (options.logY ? Math.log10(Math.max(y, 1e-12)) : y);
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => tf(p[1]));
  let [x0, x1] = [Math.min(options.x0 ?? Infinity, ...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(options.y0 ?? Infinity, ...ys), Math.max(...ys)];
  if (!pts.length) [x0, x1, y0, y1] = [0, 1, 0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) y1 = y0 + 1;
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => H - B - ((tf(y) - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(14 ${(H - B + T) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}${options.logY ? ' (log scale)' : ''}</text>`,
    `<path d="M${L} ${T}V${H - B}H${W - R}" fill="none" stroke="#444"/>`,
  ];
  for (const t of ticks(x0, x1)) parts.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${H - B}" y2="${H - B + 4}" stroke="#444"/><text x="${px(t)}" y="${H - B + 16}" text-anchor="middle">${fmt(t)}</text>`);
  for (const t of ticks(y0, y1)) {
    const y = H - B - ((t - y0) / (y1 - y0)) * (H - T - B);
    parts.push(`<line x1="${L - 4}" x2="${W - R}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${L - 6}" y="${y + 4}" text-anchor="end">${fmt(options.logY ? Math.pow(10, t) : t)}</text>`);
  }
  // The legend is a row between the title and the plot, so it never covers a curve.
  let legendX = L;
  series.forEach((s) => {
    const ok = s.points.filter(([, y]) => Number.isFinite(y));
    if (ok.length) parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${ok.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    if (s.dots) for (const [x, y] of ok) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    parts.push(`<rect x="${legendX}" y="${T - 20}" width="10" height="${s.dashed ? 3 : 10}" fill="${s.color}"/><text x="${legendX + 14}" y="${T - 11}">${esc(s.name)}</text>`);
    legendX += 30 + 6.5 * s.name.length;
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export interface UsagePoint {
  step: number;
  param: string;
  usage: number;
  unevenness: number;
  /** The most `usage` can be: the evaluation's selections over the table's rows (at most 1). */
  cap?: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

/**
 * Tables whose history and last load are identical (U and V of PEER, gathered with the same
 * ids: one pool of experts) as one group, so one curve stands for them and its name says so.
 */
export function poolGroups(history: readonly UsagePoint[], lastCounts: ReadonlyMap<string, Float64Array>): { params: string[]; name: string }[] {
  const params = [...new Set([...history.map((h) => h.param), ...lastCounts.keys()])];
  const key = (p: string) => JSON.stringify([history.filter((h) => h.param === p).map((h) => [h.step, h.usage, h.unevenness]), Array.from(lastCounts.get(p) ?? [])]);
  const groups = new Map<string, string[]>();
  for (const p of params) groups.set(key(p), [...(groups.get(key(p)) ?? []), p]);
  return [...groups.values()].map((ps) => ({ params: ps, name: ps.length > 1 ? `${ps.join(' = ')} (one pool)` : ps[0]! }));
}

/**
 * Expert usage over training, in three panels with their own units: the fraction of each table's
 * experts selected at each evaluation (with the most the evaluation's sample can select, dashed),
 * the unevenness of their load (KL divergence from uniform, nats), and the sorted load of every
 * expert at the last evaluation. Tables with identical curves (one pool) are drawn once.
 */
export function expertsChart(history: readonly UsagePoint[], lastCounts: ReadonlyMap<string, Float64Array>): string {
  const groups = poolGroups(history, lastCounts);
  const of = (p: string) => history.filter((h) => h.param === p);
  const shared = groups.filter((g) => g.params.length > 1);
  const sharedNote = shared.length ? ` (${shared.map((g) => g.params.join(' and ')).join('; ')}: the same experts, drawn once)` : '';
  const used = lineChart(`Experts used at each evaluation${sharedNote}`, 'step', 'fraction of the table used', groups.flatMap((g, i) => {
    const points = of(g.params[0]!);
    const series: Series[] = [{ name: g.name, color: COLORS[i % COLORS.length]!, points: points.map((h) => [h.step, h.usage] as [number, number]), dots: true }];
    const caps = points.filter((h) => h.cap !== undefined && h.cap < 1);
    if (caps.length) series.push({ name: `${g.name}: at most (evaluation selections / experts)`, color: COLORS[i % COLORS.length]!, points: caps.map((h) => [h.step, h.cap!] as [number, number]), dashed: true });
    return series;
  }), { y0: 0 });
  const kl = lineChart('Unevenness of the load (KL divergence from uniform)', 'step', 'KL (nats)', groups.map((g, i) => ({
    name: g.name, color: COLORS[i % COLORS.length]!, points: of(g.params[0]!).map((h) => [h.step, h.unevenness] as [number, number]), dots: true,
  })), { y0: 0 });
  const load = lineChart('Selections per expert at the last evaluation (sorted)', 'expert rank', 'selections + 1', groups.filter((g) => lastCounts.has(g.params[0]!)).map((g, i) => {
    const sorted = Float64Array.from(lastCounts.get(g.params[0]!)!).sort().reverse();
    const stride = Math.max(1, Math.floor(sorted.length / 500));
    const points: [number, number][] = [];
    for (let r = 0; r < sorted.length; r += stride) points.push([r, sorted[r]! + 1]);
    points.push([sorted.length - 1, sorted[sorted.length - 1]! + 1]);
    return { name: g.name, color: COLORS[i % COLORS.length]!, points };
  }), { logY: true, x0: 0 });
  const inner = (svg: string, dy: number) => svg.replace(/^<svg[^>]*>/, `<g transform="translate(0 ${dy})">`).replace(/<\/svg>\n$/, '</g>');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${3 * H}" viewBox="0 0 ${W} ${3 * H}" font-family="sans-serif" font-size="12">\n${inner(used, 0)}\n${inner(kl, H)}\n${inner(load, 2 * H)}\n</svg>\n`;
}

/** A metrics row as peerc train logs it (the playground's points have the same fields). */
export interface MetricsRow {
  step: number;
  split: string;
  loss: number;
  experts?: { param: string; usage: number; unevenness: number; cap?: number }[];
}

/** The loss plot of a run: training steps as a line, validations as dots. */
export function lossChart(rows: readonly MetricsRow[]): string {
  const of = (split: string) => rows.filter((r) => r.split === split).map((r) => [r.step, r.loss] as [number, number]);
  return lineChart('Loss (cross-entropy, nats)', 'step', 'loss', [
    { name: 'train', color: '#1f77b4', points: of('train') },
    { name: 'validation', color: '#d62728', points: of('validation'), dots: true },
  ]);
}

/** The expert-usage history of a run's validations, for expertsChart. */
export function usageHistory(rows: readonly MetricsRow[]): UsagePoint[] {
  return rows.filter((r) => r.split === 'validation').flatMap((r) => (r.experts ?? []).map((e) => ({ step: r.step, ...e })));
}
