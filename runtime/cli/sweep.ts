// `peerc sweep FILE.json`: a grid of programs x --set values x seeds, one `peerc train` per
// point in a folder of its own, then `compare` over the grid. Finished runs are skipped, runs
// with a checkpoint short of their steps are resumed, so a sweep stopped by a crash or Ctrl-C
// continues where it was when started again. Each run is a child process: one failing run is
// reported and the others go on.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from '../../src/io/tensors.js';
import { ensureDir, onFile } from '../../src/io/files.js';
import { readCheckpoint } from '../train/checkpoint.js';
import { compareRuns } from './compare.js';

export interface SweepSpec {
  /** Folder of the runs (relative to the sweep file). */
  out: string;
  /** .peer files (relative to the sweep file). */
  programs: string[];
  /** Every combination of these values is one grid point: { "N": ["16^2", "32^2"] }. */
  set?: Record<string, (string | number)[]>;
  /** Or the points themselves, each a set of overrides: [{ "h": 1, "k": 32 }, { "h": 2, "k": 16 }]. */
  points?: Record<string, string | number>[];
  seeds?: number[];
  /** Further `peerc train` flags, the same for every run (e.g. --data, --steps, --backend). */
  train?: string[];
}

const FORBIDDEN = ['--out', '--seed', '--set', '--resume', '--force'];

export function readSweep(path: string): SweepSpec {
  let spec: SweepSpec;
  try {
    spec = JSON.parse(readFileSync(path, 'utf8')) as SweepSpec;
  } catch (e) {
    throw new UsageError(`${path}: not a sweep file (${(e as Error).message})`);
  }
  const bad = (what: string) => {
    throw new UsageError(`${path}: ${what} (a sweep is { "out": DIR, "programs": [FILE.peer, ...], "set": { NAME: [VALUE, ...] } or "points": [{ NAME: VALUE, ... }, ...], "seeds": [0, 1, 2], "train": [FLAGS] })`);
  };
  if (typeof spec.out !== 'string' || !spec.out) bad('"out" must name a folder');
  if (!Array.isArray(spec.programs) || !spec.programs.length || !spec.programs.every((p) => typeof p === 'string')) bad('"programs" must list .peer files');
  if (spec.set !== undefined && (typeof spec.set !== 'object' || !Object.values(spec.set).every((v) => Array.isArray(v) && v.length))) bad('"set" maps const names to non-empty lists of values');
  if (spec.points !== undefined && !(Array.isArray(spec.points) && spec.points.length && spec.points.every((p) => typeof p === 'object' && p !== null && !Array.isArray(p)))) bad('"points" must list objects of const values');
  if (spec.points !== undefined && spec.set !== undefined) bad('give "set" (a grid) or "points", not both');
  if (spec.seeds !== undefined && !(Array.isArray(spec.seeds) && spec.seeds.every((s) => Number.isInteger(s) && s >= 0))) bad('"seeds" must be whole numbers >= 0');
  if (spec.train !== undefined && !(Array.isArray(spec.train) && spec.train.every((s) => typeof s === 'string'))) bad('"train" must be a list of flags (strings)');
  const forbidden = (spec.train ?? []).find((f) => FORBIDDEN.includes(f.split('=')[0]!));
  if (forbidden) bad(`"train" may not contain ${forbidden} (the sweep sets it per run)`);
  return spec;
}

interface Point {
  program: string;
  set: [string, string][];
  seed: number;
  dir: string;
}

export function sweepPoints(spec: SweepSpec, base: string): Point[] {
  let combos: [string, string][][] = [[]];
  for (const [name, values] of Object.entries(spec.set ?? {})) combos = combos.flatMap((c) => values.map((v) => [...c, [name, String(v)] as [string, string]]));
  if (spec.points) combos = spec.points.map((p) => Object.entries(p).map(([n, v]) => [n, String(v)] as [string, string]));
  const out = resolve(base, spec.out);
  return spec.programs.flatMap((program) =>
    combos.flatMap((set) =>
      (spec.seeds ?? [0]).map((seed) => ({
        program: resolve(base, program),
        set,
        seed,
        dir: join(out, [basename(program, '.peer'), ...set.map(([n, v]) => `${n}=${v.replace(/[^\w.+-]/g, '_')}`), `seed${seed}`].join('-')),
      })),
    ),
  );
}

/** Where a run folder stands: finished, resumable (a checkpoint short of its steps), or to start. */
function stateOf(dir: string): 'done' | 'resume' | 'start' {
  const ck = join(dir, 'checkpoint.safetensors');
  if (!existsSync(ck)) return 'start';
  const { meta } = readCheckpoint(ck, { tensors: false });
  const steps = (JSON.parse(meta.run) as { steps?: number }).steps ?? Infinity;
  return meta.step >= steps ? 'done' : 'resume';
}

export function runSweep(path: string, cli: string, say: (line: string) => void): number {
  const spec = readSweep(path);
  const points = sweepPoints(spec, dirname(resolve(path)));
  ensureDir(resolve(dirname(resolve(path)), spec.out));
  const failed: string[] = [];
  // Ctrl-C is for the run in progress (it saves a checkpoint); the sweep reports and stops after it.
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  try {
    return sweepRuns(points, spec, path, cli, say, failed);
  } finally {
    process.off('SIGINT', ignore);
  }
}

function sweepRuns(points: Point[], spec: SweepSpec, path: string, cli: string, say: (line: string) => void, failed: string[]): number {
  for (const [i, p] of points.entries()) {
    const state = stateOf(p.dir);
    const label = `[${i + 1}/${points.length}] ${basename(p.dir)}`;
    if (state === 'done') {
      say(`${label}: done, skipped`);
      continue;
    }
    const flags = [...p.set.flatMap(([n, v]) => ['--set', `${n}=${v}`]), '--out', p.dir];
    const args = state === 'resume' ? [cli, 'train', p.program, '--resume', ...flags] : [cli, 'train', p.program, ...(spec.train ?? []), '--seed', String(p.seed), ...flags, '--force'];
    say(`${label}: ${state === 'resume' ? 'resuming' : 'training'}`);
    const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    // Ctrl-C reaches the run too; it saves a checkpoint, and the sweep stops so it can be resumed.
    if (r.signal === 'SIGINT' || r.status === 130) {
      say(`stopped; run the same command again to continue: peerc sweep ${path}`);
      return 130;
    }
    if (r.status !== 0) failed.push(`${basename(p.dir)} (exit ${r.status ?? r.signal})`);
  }
  const finished = points.filter((p) => existsSync(join(p.dir, 'checkpoint.safetensors')) && existsSync(join(p.dir, 'metrics.jsonl')));
  if (finished.length) {
    const out = resolve(dirname(resolve(path)), spec.out);
    const table = compareRuns(finished.map((p) => p.dir), out);
    const md = join(out, 'compare.md');
    onFile('write', md, () => writeFileSync(md, table));
    say(table.trimEnd());
    say(`wrote ${md}, ${join(out, 'compare-loss-step.svg')}, ${join(out, 'compare-loss-time.svg')}`);
  }
  if (failed.length) {
    say(`failed: ${failed.join(', ')}`);
    return 1;
  }
  return 0;
}
