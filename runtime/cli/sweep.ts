// `peerc sweep FILE.json`: a grid of programs x --set values x seeds, one `peerc train` per
// point in a folder of its own, then `compare` over the grid. Finished runs are skipped, runs
// with a checkpoint short of their steps are resumed, so a sweep stopped by a crash or Ctrl-C
// continues where it was when started again. Each run is a child process: one failing run is
// reported and the others go on.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ensureDir, onFile } from '../../src/io/files.js';
import { writeFileDurably } from '../../src/io/durable.js';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import { closestName } from '../../src/check/scope.js';
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
const KEYS = ['out', 'programs', 'set', 'points', 'seeds', 'train'];
const SHAPE = '(a sweep is { "out": DIR, "programs": [FILE.peer, ...], "set": { NAME: [VALUE, ...] } or "points": [{ NAME: VALUE, ... }, ...], "seeds": [0, 1, 2], "train": [FLAGS] })';

const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? (v.length ? 'a list' : 'an empty list') : typeof v === 'object' ? 'an object' : JSON.stringify(v));
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isValue = (v: unknown) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

/** Reads and checks a sweep file the way the language checks a program: every key and type, each a coded error naming the key. */
export function readSweep(path: string): SweepSpec {
  let raw: unknown;
  const text = onFile('read', path, () => readFileSync(path, 'utf8'));
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CompileError(diagnostic('PEER0802', null, { file: path, key: 'the file', detail: `is not valid JSON (${(e as Error).message}) ${SHAPE}` }));
  }
  const bad = (key: string, detail: string): never => {
    throw new CompileError(diagnostic('PEER0802', null, { file: path, key, detail }));
  };
  if (!isObject(raw)) bad('the file', `must hold a JSON object, not ${describe(raw)} ${SHAPE}`);
  const spec = raw as Record<string, unknown>;
  for (const key of Object.keys(spec)) {
    if (KEYS.includes(key)) continue;
    const near = closestName(key, KEYS);
    bad(`"${key}"`, `is not a sweep setting${near ? `; did you mean "${near}"?` : ''} (the settings are ${KEYS.map((k) => `"${k}"`).join(', ')})`);
  }
  const { out, programs, set, points, seeds, train } = spec;
  if (typeof out !== 'string' || !out) bad('"out"', `must name a folder, not ${describe(out)}`);
  if (!Array.isArray(programs) || !programs.length) bad('"programs"', `must list one or more .peer files, not ${describe(programs)}`);
  (programs as unknown[]).forEach((p, i) => typeof p === 'string' && p ? undefined : bad(`"programs"[${i}]`, `must be a .peer file name, not ${describe(p)}`));
  if (set !== undefined && points !== undefined) bad('"set" and "points"', 'cannot both be given: "set" is a grid, "points" lists the points themselves');
  if (set !== undefined) {
    if (!isObject(set)) bad('"set"', `must map const names to lists of values, not ${describe(set)}`);
    for (const [name, values] of Object.entries(set as Record<string, unknown>)) {
      if (!Array.isArray(values) || !values.length) bad(`"set"."${name}"`, `must be a non-empty list of values, not ${describe(values)}`);
      (values as unknown[]).forEach((v, i) => isValue(v) ? undefined : bad(`"set"."${name}"[${i}]`, `must be a number or a string, not ${describe(v)}`));
    }
  }
  if (points !== undefined) {
    if (!Array.isArray(points) || !points.length) bad('"points"', `must be a non-empty list of objects of const values, not ${describe(points)}`);
    (points as unknown[]).forEach((p, i) => {
      if (!isObject(p)) bad(`"points"[${i}]`, `must be an object of const values, not ${describe(p)}`);
      for (const [name, v] of Object.entries(p as Record<string, unknown>)) if (!isValue(v)) bad(`"points"[${i}]."${name}"`, `must be a number or a string, not ${describe(v)}`);
    });
  }
  if (seeds !== undefined) {
    if (!Array.isArray(seeds) || !seeds.length) bad('"seeds"', `must be a non-empty list of whole numbers >= 0 (leave it out for seed 0), not ${describe(seeds)}`);
    (seeds as unknown[]).forEach((v, i) => Number.isSafeInteger(v) && (v as number) >= 0 ? undefined : bad(`"seeds"[${i}]`, `must be a whole number >= 0, not ${describe(v)}`));
  }
  if (train !== undefined) {
    if (!Array.isArray(train)) bad('"train"', `must be a list of peerc train flags (strings), not ${describe(train)}`);
    (train as unknown[]).forEach((v, i) => typeof v === 'string' ? undefined : bad(`"train"[${i}]`, `must be a string (a flag or its value), not ${describe(v)}`));
    const forbidden = (train as string[]).find((f) => FORBIDDEN.includes(f.split('=')[0]!));
    if (forbidden) bad('"train"', `may not contain ${forbidden} (the sweep sets it per run)`);
  }
  return spec as unknown as SweepSpec;
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
function stateOf(dir: string): 'done' | 'resume' | 'start' | { damaged: string } {
  const ck = join(dir, 'checkpoint.safetensors');
  if (!existsSync(ck)) return 'start';
  let meta;
  try {
    ({ meta } = readCheckpoint(ck, { tensors: false }));
  } catch (e) {
    // One damaged run is reported like a failed one; the others go on.
    if (e instanceof CompileError) return { damaged: `${e.diagnostic.code}: ${e.diagnostic.message}` };
    throw e;
  }
  const steps = (JSON.parse(meta.run) as { steps?: number }).steps ?? Infinity;
  return meta.step >= steps ? 'done' : 'resume';
}

export function runSweep(path: string, cli: string, say: (line: string) => void): number {
  const spec = readSweep(path);
  const points = sweepPoints(spec, dirname(resolve(path)));
  ensureDir(resolve(dirname(resolve(path)), spec.out));
  const failed: string[] = [];
  // Ctrl-C is for the run in progress (it saves a checkpoint); the sweep reports and stops after it.
  // SIGTERM and SIGHUP likewise: the run saves and exits with 143 or 129, and the sweep stops after it.
  const ignore = () => undefined;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, ignore);
  try {
    return sweepRuns(points, spec, path, cli, say, failed);
  } finally {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, ignore);
  }
}

function sweepRuns(points: Point[], spec: SweepSpec, path: string, cli: string, say: (line: string) => void, failed: string[]): number {
  const damaged = new Set<string>();
  for (const [i, p] of points.entries()) {
    const state = stateOf(p.dir);
    const label = `[${i + 1}/${points.length}] ${basename(p.dir)}`;
    if (typeof state === 'object') {
      say(`${label}: not run: ${state.damaged}`);
      failed.push(`${basename(p.dir)} (damaged checkpoint)`);
      damaged.add(p.dir);
      continue;
    }
    if (state === 'done') {
      say(`${label}: done, skipped`);
      continue;
    }
    const flags = [...p.set.flatMap(([n, v]) => ['--set', `${n}=${v}`]), '--out', p.dir];
    const args = state === 'resume' ? [cli, 'train', p.program, '--resume', ...flags] : [cli, 'train', p.program, ...(spec.train ?? []), '--seed', String(p.seed), ...flags, '--force'];
    say(`${label}: ${state === 'resume' ? 'resuming' : 'training'}`);
    const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    // Ctrl-C reaches the run too; it saves a checkpoint, and the sweep stops so it can be resumed.
    if (r.signal === 'SIGINT' || r.signal === 'SIGTERM' || r.signal === 'SIGHUP' || [130, 143, 129].includes(r.status ?? 0)) {
      say(`stopped; run the same command again to continue: peerc sweep ${path}`);
      return r.status ?? 130;
    }
    if (r.status !== 0) failed.push(`${basename(p.dir)} (exit ${r.status ?? r.signal})`);
  }
  const finished = points.filter((p) => !damaged.has(p.dir) && existsSync(join(p.dir, 'checkpoint.safetensors')) && existsSync(join(p.dir, 'metrics.jsonl')));
  if (finished.length) {
    const out = resolve(dirname(resolve(path)), spec.out);
    const table = compareRuns(finished.map((p) => p.dir), out);
    const md = join(out, 'compare.md');
    writeFileDurably(md, table);
    say(table.trimEnd());
    say(`wrote ${md}, ${join(out, 'compare-loss-step.svg')}, ${join(out, 'compare-loss-time.svg')}`);
  }
  if (failed.length) {
    say(`failed: ${failed.join(', ')}`);
    return 1;
  }
  return 0;
}
