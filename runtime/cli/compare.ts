// `peerc compare RUN_DIR...`: runs side by side. One table (final and best validation loss,
// bits per byte for text, tokens/s, expert usage and unevenness per table, wall time, parameters
// and active parameters and FLOPs per token from the program), runs that differ only by seed
// grouped into mean ± standard deviation, and overlaid SVG plots of validation loss against
// step and against training time.
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { tokenCost } from '../../src/passes/cost.js';
import { UsageError } from '../../src/io/tensors.js';
import { ensureDir } from '../../src/io/files.js';
import { writeFileDurably } from '../../src/io/durable.js';
import { readMetricsFile } from '../train/metrics-file.js';
import type { MetricsLine } from '../train/metrics.js';
import { readCheckpoint } from '../train/checkpoint.js';
import { checkpointProgram } from '../train/checkpoint-program.js';
import { lineChart } from '../train/plots.js';
import { median } from '../stats.js';

interface Row {
  step: number;
  split: 'train' | 'validation' | 'resume';
  loss: number;
  ms?: number;
  tokens_per_s?: number;
  experts?: { param: string; usage: number; unevenness: number }[];
}

export interface RunSummary {
  dir: string;
  /** Runs with the same key differ only by seed. */
  group: string;
  seed: number;
  task: string;
  steps: number;
  finalLoss: number;
  bestLoss: number;
  /** Validation loss in bits per byte (text task: the loss is nats per byte). */
  bitsPerByte?: number;
  tokensPerS: number;
  /** Sum of the training steps' times (seconds). */
  trainSeconds: number;
  experts: { param: string; usage: number; unevenness: number }[];
  params: number;
  activeParams: number;
  flops: number;
  /** Validation loss by step and by training seconds, for the plots. */
  curve: { step: number; seconds: number; loss: number }[];
}


export function summarizeRun(dir: string): RunSummary {
  const metricsPath = join(dir, 'metrics.jsonl'), ckptPath = join(dir, 'checkpoint.safetensors');
  if (!existsSync(metricsPath) || !existsSync(ckptPath)) throw new UsageError(`${dir} is not a peerc train run folder (it needs metrics.jsonl and checkpoint.safetensors)`);
  const { meta } = readCheckpoint(ckptPath, { tensors: false });
  const run = JSON.parse(meta.run) as { seed?: number; task?: string; set?: string };
  const { rows, warnings } = readMetricsFile<Row & MetricsLine>(metricsPath);
  for (const w of warnings) process.stderr.write(`peerc: warning: ${w}\n`);
  const train = rows.filter((r) => r.split === 'train'), val = rows.filter((r) => r.split === 'validation');
  if (!val.length) throw new UsageError(`${dir} has no validation rows in metrics.jsonl yet`);
  // Training time up to each step, for the loss-vs-time plot.
  const elapsed = new Map<number, number>();
  let t = 0;
  for (const r of [...train].sort((a, b) => a.step - b.step)) elapsed.set(r.step, (t += (r.ms ?? 0) / 1000));
  const secondsAt = (step: number) => [...elapsed].filter(([s]) => s <= step).reduce((a, [, v]) => Math.max(a, v), 0);
  const compiled = checkpointProgram(meta);
  if (!compiled.module) throw new UsageError(`${dir}: the program in its checkpoint does not compile any more`);
  const cost = tokenCost(compiled.module);
  const last = val[val.length - 1]!;
  const { seed: _seed, ...rest } = run as Record<string, unknown>;
  return {
    dir,
    group: JSON.stringify([meta.source, meta.entry, rest]),
    seed: run.seed ?? 0,
    task: run.task ?? '',
    steps: meta.step,
    finalLoss: last.loss,
    bestLoss: Math.min(...val.map((r) => r.loss)),
    bitsPerByte: run.task === 'text' ? last.loss / Math.LN2 : undefined,
    tokensPerS: median(train.map((r) => r.tokens_per_s ?? NaN).filter(Number.isFinite)),
    trainSeconds: t,
    experts: last.experts ?? [],
    params: cost.params,
    activeParams: cost.activeParams,
    flops: cost.flops,
    curve: val.map((r) => ({ step: r.step, seconds: secondsAt(r.step), loss: r.loss })),
  };
}

function meanStd(xs: number[]): string {
  const ok = xs.filter(Number.isFinite);
  if (!ok.length) return '-';
  const m = ok.reduce((a, b) => a + b, 0) / ok.length;
  if (ok.length === 1) return fmtNum(m);
  const sd = Math.sqrt(ok.reduce((a, b) => a + (b - m) ** 2, 0) / (ok.length - 1));
  return `${fmtNum(m)} ± ${fmtNum(sd)}`;
}

function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return Number(v.toPrecision(4)).toString();
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f'];

/** The table (markdown) and, with `plotsDir`, the two SVG plots; returns the table. */
export function compareRuns(dirs: string[], plotsDir?: string): string {
  if (!dirs.length) throw new UsageError("'peerc compare' takes one or more run folders");
  const runs = dirs.map(summarizeRun);
  const groups = new Map<string, RunSummary[]>();
  for (const r of runs) groups.set(r.group, [...(groups.get(r.group) ?? []), r]);
  const tables = [...new Set(runs.flatMap((r) => r.experts.map((e) => e.param)))];
  const head = ['runs', 'seeds', 'steps', 'final val loss', 'best val loss', 'bits/byte', 'tokens/s', ...tables.flatMap((p) => [`${p} used`, `${p} KL`]), 'train s', 'params', 'active params/token', 'FLOPs/token'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const g of groups.values()) {
    const col = (f: (r: RunSummary) => number | undefined) => meanStd(g.map((r) => f(r) ?? NaN));
    const cells = [
      g.map((r) => basename(r.dir)).join(', '),
      g.map((r) => r.seed).join(', '),
      col((r) => r.steps),
      col((r) => r.finalLoss),
      col((r) => r.bestLoss),
      col((r) => r.bitsPerByte),
      col((r) => r.tokensPerS),
      ...tables.flatMap((p) => [col((r) => r.experts.find((e) => e.param === p)?.usage), col((r) => r.experts.find((e) => e.param === p)?.unevenness)]),
      col((r) => r.trainSeconds),
      fmtNum(g[0]!.params),
      fmtNum(g[0]!.activeParams),
      fmtNum(g[0]!.flops),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  if (plotsDir) {
    ensureDir(plotsDir);
    const series = (x: 'step' | 'seconds') => [...groups.values()].map((g, i) => {
      // A group's curve: the mean validation loss at each step its runs share.
      const steps = g[0]!.curve.map((p) => p.step).filter((s) => g.every((r) => r.curve.some((p) => p.step === s)));
      const points = steps.map((s) => {
        const at = g.map((r) => r.curve.find((p) => p.step === s)!);
        return [at.reduce((a, p) => a + p[x], 0) / at.length, at.reduce((a, p) => a + p.loss, 0) / at.length] as [number, number];
      });
      return { name: g.length > 1 ? `${basename(g[0]!.dir)} (${g.length} seeds)` : basename(g[0]!.dir), color: COLORS[i % COLORS.length]!, points, dots: true };
    });
    const write = (name: string, svg: string) => {
      const path = join(plotsDir, name);
      writeFileDurably(path, svg);
    };
    write('compare-loss-step.svg', lineChart('Validation loss', 'step', 'loss', series('step')));
    write('compare-loss-time.svg', lineChart('Validation loss against training time', 'training seconds', 'loss', series('seconds')));
  }
  return lines.join('\n') + '\n';
}
