// peerc train: trains a model on a text file or the built-in recall task, with progress,
// periodic validation, JSON-lines metrics, SVG plots, atomic checkpoints, bit-identical
// --resume, a clean stop on SIGINT, and a clear stop when the loss or gradients blow up.
import { sharedFloat32, tableFloat32 } from '../pool.js';
import { createHash } from 'node:crypto';
import { existsSync, rmdirSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureDir, onFile } from '../../src/io/files.js';
import { LineLog, removeStaleTemps, writeFileDurably } from '../../src/io/durable.js';
import { cutTornTail, readMetricsFile } from '../train/metrics-file.js';
import type { MetricsLine } from '../train/metrics.js';
import { lockRunFolder, type RunLock } from '../train/run-lock.js';
import { programDifference } from '../train/resume-check.js';
import { print, keepRunningWithoutStdout } from './output.js';
import { median } from '../stats.js';
import { StopSignals } from './signals.js';
import { unfusedPatterns } from '../../src/passes/fusion-notes.js';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import type { IRModule } from '../../src/ir/graph.js';
import { readFileChecked, UsageError } from '../../src/io/tensors.js';
import { seededWeights } from '../api.js';
import { BACKENDS, isBackendName, resolveBackend, type BackendName } from '../backends/info.js';
import { readCheckpoint, writeCheckpoint } from '../train/checkpoint.js';
import { checkpointTensors, restoreOptimizerState, runMeta, type CheckpointMeta } from '../train/checkpoint-format.js';
import { checkpointProgram } from '../train/checkpoint-program.js';
import { RecallDataset, TextDataset, type Dataset } from '../train/data.js';
import { settingsOf, setOf, type RunSettings } from '../train/settings.js';
export type { RunSettings } from '../train/settings.js';
import { expertsChart, lossChart, usageHistory, type MetricsRow } from '../train/plots.js';
import { Diverged, Trainer, type EvalResult } from '../train/trainer.js';
import { ProgramErrors } from './errors.js';

export interface TrainFlags {
  file: string;
  source: string;
  module: IRModule;
  sources: Map<string, string>;
  flags: Map<string, string | number | boolean>;
}

/** Settings of a run: defaults < the program's `train { }` block < command-line flags. */
/** Range checks of the numeric flags, the same whether a run starts or resumes. */
function checkFlagValues(flags: Map<string, string | number | boolean>): void {
  const n = (f: string) => flags.get(f) as number;
  for (const f of ['steps', 'batch', 'seq', 'eval-every', 'eval-batches', 'checkpoint-every', 'stop-at'])
    if (flags.has(f) && !(Number.isInteger(n(f)) && n(f) >= 1)) throw new UsageError(`--${f} needs a whole number >= 1, not ${n(f)}`);
  for (const f of ['seed', 'warmup'])
    if (flags.has(f) && !(Number.isInteger(n(f)) && n(f) >= 0)) throw new UsageError(`--${f} needs a whole number >= 0, not ${n(f)}`);
  if (flags.has('lr') && !(n('lr') > 0)) throw new UsageError('--lr needs a number > 0');
  if (flags.has('clip') && !(n('clip') >= 0)) throw new UsageError('--clip needs a number >= 0 (0 turns clipping off)');
  if (flags.has('weight-decay') && !(n('weight-decay') >= 0)) throw new UsageError('--weight-decay needs a number >= 0');
  for (const f of ['beta1', 'beta2']) if (flags.has(f) && !(n(f) >= 0 && n(f) < 1)) throw new UsageError(`--${f} needs a number in [0, 1)`);
}

/** Settings a resumed run cannot change: they shape the data stream or the optimizer's state. */
const FIXED_ON_RESUME: Readonly<Record<string, (s: RunSettings) => string | number | undefined>> = {
  task: (s) => s.task,
  batch: (s) => s.batch,
  seq: (s) => s.seq,
  seed: (s) => s.seed,
  optimizer: (s) => s.optimizer.kind,
};

/** Settings a resumed run takes from the command line (recorded in the checkpoint and the metrics). */
const CHANGEABLE_ON_RESUME: Readonly<Record<string, (s: RunSettings, v: number | string) => RunSettings>> = {
  steps: (s, v) => ({ ...s, steps: v as number, optimizer: { ...s.optimizer, steps: v as number } }),
  lr: (s, v) => ({ ...s, optimizer: { ...s.optimizer, lr: v as number } }),
  clip: (s, v) => ({ ...s, optimizer: { ...s.optimizer, clip: v as number } }),
  warmup: (s, v) => ({ ...s, optimizer: { ...s.optimizer, warmup: v as number } }),
  schedule: (s, v) => ({ ...s, optimizer: { ...s.optimizer, schedule: v as 'cosine' | 'constant' } }),
  'weight-decay': (s, v) => ({ ...s, optimizer: { ...s.optimizer, weightDecay: v as number } }),
  beta1: (s, v) => ({ ...s, optimizer: { ...s.optimizer, beta1: v as number } }),
  beta2: (s, v) => ({ ...s, optimizer: { ...s.optimizer, beta2: v as number } }),
  'eval-every': (s, v) => ({ ...s, evalEvery: v as number }),
  'eval-batches': (s, v) => ({ ...s, evalBatches: v as number }),
  'checkpoint-every': (s, v) => ({ ...s, checkpointEvery: v as number }),
};

/** The saved settings with the command line's changes applied; refuses changes that cannot be honoured. */
function resumedSettings(saved: RunSettings, flags: Map<string, string | number | boolean>, start: number): { settings: RunSettings; changes: Record<string, [unknown, unknown]> } {
  for (const [flag, get] of Object.entries(FIXED_ON_RESUME)) {
    if (!flags.has(flag)) continue;
    const now = flags.get(flag);
    const was = get(saved);
    if (now !== was) throw new CompileError(diagnostic('PEER0706', null, { flag, was: was === undefined ? 'none' : String(was), now: String(now) }));
  }
  let settings = saved;
  const changes: Record<string, [unknown, unknown]> = {};
  for (const [flag, apply] of Object.entries(CHANGEABLE_ON_RESUME)) {
    if (!flags.has(flag)) continue;
    const next = apply(settings, flags.get(flag) as number | string);
    const before = JSON.stringify(settings), after = JSON.stringify(next);
    if (before !== after) changes[flag] = [valueOf(settings, flag), flags.get(flag)];
    settings = next;
  }
  if (settings.steps <= start) throw new CompileError(diagnostic('PEER0707', null, { steps: settings.steps, step: start, given: flags.has('steps') }));
  return { settings, changes };
}

function valueOf(s: RunSettings, flag: string): unknown {
  const o = s.optimizer;
  return ({ steps: s.steps, lr: o.lr, clip: o.clip, warmup: o.warmup, schedule: o.schedule, 'weight-decay': o.weightDecay, beta1: o.beta1, beta2: o.beta2, 'eval-every': s.evalEvery, 'eval-batches': s.evalBatches, 'checkpoint-every': s.checkpointEvery } as Record<string, unknown>)[flag];
}

/** A path as the shell needs it. */
const shellWord = (w: string) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

function datasetOf(s: RunSettings, m: IRModule): Dataset {
  if (s.task === 'recall') return new RecallDataset(m, s.batch, s.seed);
  return new TextDataset(readFileChecked(s.data!), s.data!, m, s.batch, s.seq, s.seed);
}

const fmtTime = (sec: number) => {
  if (!Number.isFinite(sec)) return '--:--';
  const s = Math.round(sec);
  return s >= 3600 ? `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}` : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

/** The SHA-256 of a data file: a resumed run recognises its text by content, wherever it moved. */
function dataHash(path: string): string {
  return createHash('sha256').update(readFileChecked(path)).digest('hex');
}

/**
 * The data a resumed text run reads: the --data given (or the path the run recorded), accepted
 * when its content is the text the run was trained on (by hash), wherever it now lies.
 */
function resumedData(saved: RunSettings, flags: Map<string, string | number | boolean>, notes: string[]): RunSettings {
  const given = flags.get('data') as string | undefined;
  if (saved.task !== 'text') {
    if (given !== undefined) throw new CompileError(diagnostic('PEER0706', null, { flag: 'data', was: `the ${saved.task} task (no data file)`, now: given }));
    return saved;
  }
  const path = given ?? saved.data!;
  if (!existsSync(path)) throw new CompileError(diagnostic('PEER0711', null, { file: path, detail: `does not exist${given ? '' : ' (the run recorded this path; pass --data with the text if it moved)'}` }));
  const hash = dataHash(path);
  if (saved.dataSha256 === undefined) {
    // Checkpoints written before data hashes were recorded: the path must not change.
    if (given !== undefined && resolve(given) !== resolve(saved.data!)) throw new CompileError(diagnostic('PEER0706', null, { flag: 'data', was: resolve(saved.data!), now: resolve(given) }));
    return { ...saved, dataSha256: hash };
  }
  if (hash !== saved.dataSha256) throw new CompileError(diagnostic('PEER0711', null, { file: path, detail: `is not the text this run was trained on (its SHA-256 differs from the one recorded${given ? '' : ` for ${saved.data}`})` }));
  if (resolve(path) !== resolve(saved.data!)) notes.push(`data: ${path} has the content of ${saved.data} (moved or copied): continuing with it`);
  return { ...saved, data: path };
}

export async function runTrain(t: TrainFlags): Promise<number> {
  const { flags, module: m } = t;
  const backendName = (flags.get('backend') as string | undefined) ?? 'auto';
  if (!isBackendName(backendName)) throw new UsageError(`unknown backend '${backendName}'; backends are: auto, ${Object.keys(BACKENDS).join(', ')}`);
  const backend = resolveBackend(backendName as BackendName | 'auto');
  const out = (flags.get('out') as string | undefined) ?? join('runs', m.entry);
  const ckptPath = join(out, 'checkpoint.safetensors');
  const resume = flags.get('resume') === true;
  const force = flags.get('force') === true;
  if (resume && force) throw new UsageError('--resume continues the run in --out and --force replaces it: pass one of them');
  checkFlagValues(flags);
  if (resume && !existsSync(ckptPath)) throw new UsageError(`--resume: no checkpoint at ${ckptPath} (pass the --out RUN_DIR of the run to continue; a run stopped before its first checkpoint starts again without --resume)`);

  // From here a signal stops the run cleanly; a closed stdout stops only the output.
  const stop = new StopSignals();
  keepRunningWithoutStdout();
  const created = !existsSync(out);
  let lock: RunLock | undefined;
  try {
    ensureDir(out); // a bad --out fails now, before any work
    lock = lockRunFolder(out, ['peerc', 'train', ...process.argv.slice(3)].join(' '));
    return await trainLocked(t, { backend, out, ckptPath, resume, force, stop, lockNote: lock.note });
  } catch (e) {
    lock?.release(); // before the folder can go (release is idempotent)
    // A start that failed before writing anything leaves no folder behind.
    if (created) try { rmdirSync(out); } catch { /* it holds files: keep them */ }
    throw e;
  } finally {
    lock?.release();
    stop.dispose();
  }
}

interface RunPlace {
  backend: ReturnType<typeof resolveBackend>;
  out: string;
  ckptPath: string;
  resume: boolean;
  force: boolean;
  stop: StopSignals;
  lockNote?: string;
}

async function trainLocked(t: TrainFlags, place: RunPlace): Promise<number> {
  const { flags, module: m } = t;
  const { backend, out, ckptPath, resume, force, stop } = place;
  const metricsPath = join(out, 'metrics.jsonl');
  const notes: string[] = [];
  if (place.lockNote) notes.push(place.lockNote);
  const stale = removeStaleTemps(out);
  if (stale.length) notes.push(`removed ${stale.length} temporary file${stale.length === 1 ? '' : 's'} left by a stopped run (${stale.join(', ')})`);
  // Only a checkpoint is a run to protect: a folder whose run never saved one is started over.
  if (!resume && !force && existsSync(ckptPath)) throw new CompileError(diagnostic('PEER0705', null, { dir: out, step: ' (checkpoint.safetensors)' }));
  if (!resume && !force && existsSync(metricsPath)) notes.push(`${metricsPath} of a run that never saved a checkpoint is replaced`);

  let settings: RunSettings;
  let weights: Map<string, Float32Array>;
  let start = 0;
  let restored: ReturnType<typeof readCheckpoint> | undefined;
  let changes: Record<string, [unknown, unknown]> = {};
  let resumes: { step: number; changes: Record<string, [unknown, unknown]> }[] = [];
  if (resume) {
    // Expert tables are read where the kernels train them in place (no second copy of a big table).
    const tables = new Set(m.params.filter((p) => p.sparse).map((p) => `param.${p.name}`));
    restored = readCheckpoint(ckptPath, { finite: true, alloc: (name, length) => (tables.has(name) ? tableFloat32(length) : sharedFloat32(length)) });
    start = restored.meta.step;
    const saved = JSON.parse(restored.meta.run) as RunSettings;
    // The program's constants shape every tensor: a resumed run is checked with the same --set.
    if (setOf(flags) !== (saved.set ?? '')) throw new CompileError(diagnostic('PEER0706', null, { flag: 'set', was: saved.set || 'none', now: setOf(flags) || 'none' }));
    const then = checkpointProgram(restored.meta).module;
    const difference = then ? programDifference(then, m) : 'the program embedded in the checkpoint does not compile any more';
    if (difference) throw new CompileError(diagnostic('PEER0710', null, { file: t.file, detail: difference }));
    if (restored.meta.source !== t.source) notes.push(`${t.file} differs from the checkpoint's copy in its text only (comments, layout, names): it computes the same, so the run continues`);
    ({ settings, changes } = resumedSettings(resumedData(saved, flags, notes), flags, start));
    resumes = [...(JSON.parse(restored.meta.resumes ?? '[]') as typeof resumes), ...(Object.keys(changes).length ? [{ step: start, changes }] : [])];
    weights = new Map();
    for (const p of m.params) {
      const w = restored.tensors.get(`param.${p.name}`);
      if (!w) throw new CompileError(diagnostic('PEER0601', null, { file: ckptPath, name: `param.${p.name}`, kind: `${p.role} f32[${p.shape.join(', ')}]` }));
      if (w.data.length !== p.shape.reduce((a, b) => a * b, 1)) throw new CompileError(diagnostic('PEER0602', null, { name: `param.${p.name}`, expected: `[${p.shape.join(', ')}]`, found: `[${w.shape.join(', ')}]` }));
      weights.set(p.name, w.data);
    }
  } else {
    settings = settingsOf(m, flags);
    if (settings.task === 'text') settings = { ...settings, dataSha256: dataHash(settings.data!) };
    weights = seededWeights(m.params, settings.seed);
  }
  const stopAt = Math.min(settings.steps, (flags.get('stop-at') as number | undefined) ?? settings.steps);
  let trainer: Trainer;
  try {
    trainer = new Trainer(m, weights, { backend: backend.name, optimizer: settings.optimizer, seed: settings.seed });
  } catch (e) {
    if (e instanceof CompileError) throw new ProgramErrors([e.diagnostic], t.sources);
    throw e;
  }
  let metrics: LineLog | undefined;
  let lastCounts = new Map<string, Float64Array>();
  try {
    const dataset = datasetOf(settings, m);
    if (restored) {
      restoreOptimizerState(trainer.optimizer, restored.tensors, restored.meta.optimizerStep, ckptPath);
      restored = undefined; // let the checkpoint's copies go
    }
    if (stop.stopped) throw new StoppedBeforeStart(stop.exitCode);

    // The metrics file is only ever appended to; a resumed run says where it went on from.
    if (resume) {
      const torn = cutTornTail(metricsPath);
      if (torn) notes.push(torn);
    } else {
      if (force && existsSync(ckptPath)) onFile('replace', ckptPath, () => unlinkSync(ckptPath));
      writeFileDurably(metricsPath, '');
    }
    metrics = new LineLog(metricsPath);
    return await trainLoop({ t, place, settings, trainer, dataset, weights, metrics, start, stopAt, changes, resumes, notes, setCounts: (c) => (lastCounts = c) });
  } finally {
    metrics?.close();
    if (metrics) {
      try {
        writePlots(out, metricsPath, lastCounts);
      } catch (e) {
        // The plots are redrawn from the metrics at every run: a failure here loses nothing.
        if (!(e instanceof CompileError)) throw e;
        process.stderr.write(`peerc: warning: ${e.diagnostic.message} (the plots are redrawn from metrics.jsonl by the next run)\n`);
      }
    }
    trainer.destroy();
  }
}

/** A signal arrived while the run was being set up: nothing was trained or written. */
export class StoppedBeforeStart extends Error {
  constructor(readonly exitCode: number) {
    super('stopped before training started');
  }
}

interface LoopState {
  t: TrainFlags;
  place: RunPlace;
  settings: RunSettings;
  trainer: Trainer;
  dataset: Dataset;
  weights: Map<string, Float32Array>;
  metrics: LineLog;
  start: number;
  stopAt: number;
  changes: Record<string, [unknown, unknown]>;
  resumes: { step: number; changes: Record<string, [unknown, unknown]> }[];
  notes: string[];
  setCounts: (c: Map<string, Float64Array>) => void;
}

async function trainLoop(s: LoopState): Promise<number> {
  const { t, settings, trainer, dataset, weights, metrics, start, stopAt, changes, resumes } = s;
  const { flags, module: m } = t;
  const { backend, out, ckptPath, resume, stop } = s.place;
  const metricsPath = metrics.path;
  const log = (o: object) => metrics.append(JSON.stringify(o));
  if (resume) log({ step: start, split: 'resume', changes });
  const tty = process.stdout.isTTY === true;
  const say = (line: string) => print((tty ? '\r\x1b[K' : '') + line + '\n');
  const params = m.params.filter((p) => p.role === 'param').reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  say(`peerc train ${t.file} (@${m.entry}): ${params.toLocaleString('en-US')} parameters, ${settings.optimizer.kind}, lr ${settings.optimizer.lr}, backend ${trainer.describe()}${settings.set ? `, --set ${settings.set}` : ''}`);
  say(`data: ${dataset.describe()}`);
  for (const n of s.notes) say(`note: ${n}`);
  for (const n of unfusedPatterns(trainer.train.module, { retrievalOnly: true })) say(`note: ${n.message}`);
  const changed = Object.entries(changes).map(([f, [a, b]]) => `--${f} ${a} -> ${b}`).join(', ');
  say(resume ? `resuming at step ${start} of ${settings.steps} from ${ckptPath}${changed ? ` with ${changed}` : ''}` : `steps: ${settings.steps}; validation every ${settings.evalEvery} steps; run folder ${out}`);

  const meta = (step: number): CheckpointMeta => runMeta({ source: t.source, file: t.file, entry: m.entry!, step, settings, optimizerStep: trainer.optimizer.t, backend: backend.name, resumes });
  let lastSaved = resume ? start : -1;
  const save = async (step: number) => {
    metrics.sync(); // the checkpoint refers to the metrics up to its step
    await trainer.syncWeights(); // tables a GPU updated in place come back first
    writeCheckpoint(ckptPath, meta(step), checkpointTensors(m, weights, trainer.optimizer));
    lastSaved = step;
  };
  const diverged = (e: Diverged, step: number) => {
    const where = lastSaved >= 0 ? `The last good checkpoint (step ${lastSaved}) is kept at ${ckptPath}.` : 'No checkpoint was written yet.';
    return new ProgramErrors([diagnostic('PEER0703', null, { what: e.what, step, checkpoint: `${where} Try a lower --lr (now ${settings.optimizer.lr}) or gradient clipping (--clip).` })], t.sources);
  };
  let hasUsage = false;
  const evaluate = async (step: number): Promise<EvalResult> => {
    const batches = Array.from({ length: settings.evalBatches }, (_, i) => dataset.batch('validation', i));
    let ev: EvalResult;
    try {
      ev = await trainer.evaluate(batches);
    } catch (e) {
      if (e instanceof Diverged) throw diverged(e, step);
      throw e;
    }
    log({ step, split: 'validation', loss: ev.loss, accuracy: ev.accuracy, experts: ev.experts.map((e) => ({ param: e.param, usage: e.usage, unevenness: e.unevenness, cap: e.cap })) });
    s.setCounts(new Map(ev.experts.map((e) => [e.param, e.counts])));
    hasUsage = ev.experts.length > 0;
    const capped = ev.experts.filter((e) => e.cap < 1);
    const capNote = capped.length ? ` (the evaluation's selections cap the used fraction at ${[...new Set(capped.map((e) => `${(100 * e.cap).toFixed(1)}%`))].join(', ')})` : '';
    const experts = ev.experts.map((e) => `${e.param} used ${(100 * e.usage).toFixed(1)}% KL ${e.unevenness.toFixed(3)}`).join(', ') + capNote;
    say(`step ${step}: validation loss ${ev.loss.toFixed(4)}${Number.isNaN(ev.accuracy) ? '' : `, accuracy ${(100 * ev.accuracy).toFixed(1)}%`}${experts ? `; experts: ${experts}` : ''}`);
    return ev;
  };

  const t0 = performance.now();
  let tokens = 0, firstLoss = NaN, lastLoss = NaN, recentMs: number[] = [];
  const logEvery = Math.max(1, Math.round(settings.steps / 20));
  const backendNotes = new Set<string>();
  // --profile: each part's time per step, from the second step of this process on (the first compiles).
  const profile = flags.get('profile') === true ? { steps: [] as number[], ms: [] as number[], parts: new Map<string, number[]>() } : undefined;
  if (start === 0) await evaluate(0);
  for (let step = start; step < stopAt; step++) {
    let r;
    try {
      r = await trainer.step(dataset.batch('train', step));
    } catch (e) {
      if (e instanceof Diverged) throw diverged(e, step + 1);
      throw e;
    }
    tokens += r.tokens;
    if (profile && step > start) {
      profile.steps.push(step + 1);
      profile.ms.push(r.ms);
      for (const [part, ms] of r.timings) {
        const kept = profile.parts.get(part);
        if (kept) kept.push(ms);
        else profile.parts.set(part, [ms]);
      }
    }
    if (Number.isNaN(firstLoss)) firstLoss = r.loss;
    lastLoss = r.loss;
    recentMs = [...recentMs.slice(-19), r.ms];
    const done = step + 1;
    const msPerStep = recentMs.reduce((a, b) => a + b, 0) / recentMs.length;
    const tokPerS = (r.tokens / r.ms) * 1000;
    log({ step: done, split: 'train', loss: r.loss, ...(r.aux === undefined ? {} : { aux_loss: r.aux }), ...r.metrics, lr: r.lr, grad_norm: r.gradNorm, clipped: r.clipped, ms: r.ms, tokens_per_s: tokPerS });
    const eta = fmtTime(((settings.steps - done) * msPerStep) / 1000);
    if (tty) {
      const width = 24, filled = Math.round((width * done) / settings.steps);
      print(`\r\x1b[Kstep ${done}/${settings.steps} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] loss ${r.loss.toFixed(4)} | ${Math.round(tokPerS).toLocaleString('en-US')} tok/s | ETA ${eta}`);
    } else if (done % logEvery === 0 || done === stopAt) say(`step ${done}/${settings.steps}: loss ${r.loss.toFixed(4)}${r.aux === undefined ? '' : ` (aux ${r.aux.toFixed(4)})`}${Object.entries(r.metrics ?? {}).map(([k, v]) => `, ${k} ${v.toPrecision(4)}`).join('')}, lr ${r.lr.toExponential(2)}, ${Math.round(tokPerS).toLocaleString('en-US')} tok/s, ETA ${eta}`);
    if (done % settings.evalEvery === 0 || done === settings.steps) await evaluate(done);
    // Steps are planned on their first call: what runs slower than it could is known now.
    for (const n of trainer.notes()) if (!backendNotes.has(n)) {
      backendNotes.add(n);
      if (tty) print('\n');
      say(`note: ${n}`);
    }
    // Let signals be delivered: on CPU backends a step never returns to the event loop by itself.
    await new Promise((resolve) => setImmediate(resolve));
    if (done % settings.checkpointEvery === 0 || done === stopAt || stop.stopped) await save(done);
    if (stop.stopped) {
      if (profile) for (const line of profileLines(profile)) say(line);
      const entryFlag = flags.has('entry') ? ` --entry ${shellWord(flags.get('entry') as string)}` : '';
      say(`interrupted: checkpoint of step ${done} saved to ${ckptPath} (stopped by ${stop.signal}); continue with:\n  peerc train ${shellWord(t.file)}${entryFlag} --resume --out ${shellWord(out)}`);
      return stop.exitCode;
    }
  }
  if (profile) for (const line of profileLines(profile)) say(line);
  const secs = (performance.now() - t0) / 1000;
  say(`done: ${stopAt - start} steps in ${secs.toFixed(1)} s (${Math.round(tokens / secs).toLocaleString('en-US')} tokens/s); train loss ${firstLoss.toFixed(4)} -> ${lastLoss.toFixed(4)}`);
  say(`wrote ${ckptPath}, ${metricsPath}, ${join(out, 'loss.svg')}${hasUsage ? `, ${join(out, 'experts.svg')}` : ''}`);
  if (!hasUsage) say('note: no experts.svg: the model has no @sparse expert table, so there is no expert usage to plot');
  return 0;
}

/** --profile's report: the median step and the median time of each part that took 0.05 ms or more, longest first. */
function profileLines(p: { steps: number[]; ms: number[]; parts: Map<string, number[]> }): string[] {
  if (p.steps.length === 0) return ['profile: no step after the first ran in this process (the first compiles the kernels); run more steps'];
  const step = median(p.ms);
  // A part missing from some steps (an evaluation's step, say) counts 0 there.
  const parts = [...p.parts].map(([label, ms]) => ({ label, ms: median([...ms, ...Array<number>(p.steps.length - ms.length).fill(0)]) })).filter((x) => x.ms >= 0.05).sort((a, b) => b.ms - a.ms);
  const listed = parts.reduce((a, x) => a + x.ms, 0);
  return [
    `profile: median step ${step.toFixed(1)} ms over steps ${p.steps[0]}-${p.steps.at(-1)} (${p.steps.length}); median ms per step of each part:`,
    ...parts.map((x) => `  ${x.ms.toFixed(2).padStart(8)} ms ${((100 * x.ms) / step).toFixed(0).padStart(3)}%  ${x.label}`),
    `  ${Math.max(0, step - listed).toFixed(2).padStart(8)} ms ${((100 * Math.max(0, step - listed)) / step).toFixed(0).padStart(3)}%  the rest (host glue between the parts, and medians that do not add up)`,
  ];
}

/** Redraws the plots from the metrics file (so a resumed run's plots show the whole run). */
export function writePlots(out: string, metricsPath: string, lastCounts: ReadonlyMap<string, Float64Array>): void {
  const rows = readMetricsFile<MetricsRow & MetricsLine>(metricsPath).rows;
  writeFileDurably(join(out, 'loss.svg'), lossChart(rows));
  const usage = usageHistory(rows);
  // A model without expert tables has no usage to draw: no empty chart.
  if (usage.length || lastCounts.size) writeFileDurably(join(out, 'experts.svg'), expertsChart(usage, lastCounts));
  else if (existsSync(join(out, 'experts.svg'))) onFile('replace', join(out, 'experts.svg'), () => unlinkSync(join(out, 'experts.svg')));
}
