// A training run's settings: the command line's flags over the program's `train {}` block over
// peerc's defaults. Without Node built-ins: the playground's worker starts runs the same way.
import type { IRModule } from '../../src/ir/graph.js';
import { UsageError } from '../../src/io/usage-error.js';
import { DEFAULT_OPTIMIZER, type OptimizerConfig, type OptimizerKind } from './optim.js';

export interface RunSettings {
  task: 'text' | 'recall';
  data?: string;
  /** SHA-256 of the data file: a resumed run recognises its text by content, not by path. */
  dataSha256?: string;
  steps: number;
  batch: number;
  seq: number;
  seed: number;
  evalEvery: number;
  evalBatches: number;
  checkpointEvery: number;
  optimizer: OptimizerConfig;
  /** The program's `--set` overrides, as `NAME=VALUE` separated by spaces ('' for none). */
  set?: string;
}

/** The overrides of the command line as recorded in a run. */
export const setOf = (flags: Map<string, string | number | boolean>) => setOverrides(flags).map(([n, v]) => `${n}=${v}`).join(' ');

export function settingsOf(m: IRModule, flags: Map<string, string | number | boolean>): RunSettings {
  const t = m.train;
  const pick = <T extends string | number>(flag: string, setting: string, fallback: T): T => (flags.get(flag) as T | undefined) ?? (t.get(setting) as T | undefined) ?? fallback;
  const data = flags.get('data') as string | undefined;
  const task = (flags.get('task') as string | undefined) ?? (data ? 'text' : (t.get('task') as string | undefined) ?? 'recall');
  if (task !== 'text' && task !== 'recall') throw new UsageError(`--task is text or recall, not '${task}'`);
  if (task === 'recall' && data) throw new UsageError('--data is for the text task; the recall task needs no file');
  if (task === 'text' && !data) throw new UsageError(`the text task needs --data TEXT_FILE (any text file, e.g. docs/language.md in the peerc package), or train the built-in task with --task recall`);
  const steps = pick('steps', 'steps', 200);
  const kind = pick<string>('optimizer', 'optimizer', 'adamw');
  if (!['sgd', 'adam', 'adamw'].includes(kind)) throw new UsageError(`--optimizer is sgd, adam or adamw, not '${kind}'`);
  const schedule = pick<string>('schedule', 'schedule', 'cosine');
  if (schedule !== 'cosine' && schedule !== 'constant') throw new UsageError(`--schedule is cosine or constant, not '${schedule}'`);
  const evalEvery = pick('eval-every', 'eval_every', Math.max(1, Math.round(steps / 10)));
  return {
    task, data, steps, set: setOf(flags),
    batch: pick('batch', 'batch', task === 'text' ? 16 : 64),
    seq: pick('seq', 'seq', 64),
    seed: pick('seed', 'seed', 0),
    evalEvery,
    evalBatches: pick('eval-batches', 'eval_batches', 4),
    checkpointEvery: pick('checkpoint-every', 'checkpoint_every', evalEvery),
    optimizer: {
      ...DEFAULT_OPTIMIZER,
      kind: kind as OptimizerKind,
      lr: pick('lr', 'lr', 1e-3),
      warmup: pick('warmup', 'warmup', 0),
      weightDecay: pick('weight-decay', 'weight_decay', kind === 'adamw' ? 0.01 : 0),
      clip: pick('clip', 'clip', 1),
      beta1: pick('beta1', 'beta1', 0.9),
      beta2: pick('beta2', 'beta2', 0.999),
      schedule,
      steps,
    },
  };
}

/** `--set NAME=VALUE` flags (repeatable) as pairs. */
export function setOverrides(flags: ReadonlyMap<string, unknown>): [string, string][] {
  const raw = flags.get('set') as string | undefined;
  if (raw === undefined) return [];
  return raw.split('\n').map((item) => {
    const m = /^\s*([A-Za-z_]\w*)\s*=\s*(\S.*?)\s*$/.exec(item);
    if (!m) throw new UsageError(`--set takes NAME=VALUE (a const of the program and a constant expression), not '${item}'`);
    return [m[1]!, m[2]!];
  });
}

/** The overrides a run recorded (`NAME=VALUE` separated by spaces, as train writes them) as pairs. */
export function recordedOverrides(recorded: string | undefined): [string, string][] {
  return (recorded ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]);
}
