// What a training checkpoint holds, and its bytes in memory. Without Node built-ins: the
// playground's worker writes the same checkpoints that `peerc train --resume`, `peerc sample`
// and `peerc run` read.
import type { IRModule } from '../../src/ir/graph.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { fail } from '../../src/diagnostics/diagnostic.js';
import type { RunSettings } from './settings.js';

export const CHECKPOINT_FORMAT = 'peerc-checkpoint/1';

export interface CheckpointMeta {
  format: string;
  /** The program's source text and file name, so a checkpoint is self-contained. */
  source: string;
  file: string;
  entry: string;
  /** Steps completed. */
  step: number;
  /** Optimizer settings and its step counter. */
  optimizer: string;
  optimizerStep: number;
  /** Dataset settings; batches are a pure function of (seed, step), so the position is `step`. */
  data: string;
  /** The data sampler's RNG: counter-based, its state is (seed, position). */
  rng: string;
  backend: string;
  /** Training settings of the run (steps, batch, seq, eval cadence). */
  run: string;
  /** Settings changed by each --resume: JSON [{ step, changes: { flag: [was, now] } }]. */
  resumes?: string;
}

export interface RunState {
  source: string;
  file: string;
  entry: string;
  step: number;
  settings: RunSettings;
  optimizerStep: number;
  backend: string;
  resumes?: readonly { step: number; changes: Record<string, [unknown, unknown]> }[];
}

export function runMeta(r: RunState): CheckpointMeta {
  const s = r.settings;
  return {
    format: CHECKPOINT_FORMAT, source: r.source, file: r.file, entry: r.entry, step: r.step,
    optimizer: JSON.stringify(s.optimizer), optimizerStep: r.optimizerStep,
    data: JSON.stringify({ task: s.task, file: s.data, batch: s.batch, seq: s.seq, seed: s.seed }),
    rng: JSON.stringify({ kind: 'counter-based (seed, step)', seed: s.seed, position: r.step }),
    backend: r.backend, run: JSON.stringify(s), resumes: JSON.stringify(r.resumes ?? []),
  };
}

type Named = ReadonlyMap<string, Float32Array>;

/** The tensors of a checkpoint: `param.NAME` for every parameter and buffer, `opt.m.NAME` / `opt.v.NAME` for the optimizer's moments. */
export function checkpointTensors(m: IRModule, weights: Named, optimizer: { m: Named; v: Named }): Map<string, { shape: readonly number[]; data: Float32Array }> {
  const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const p of m.params) tensors.set(`param.${p.name}`, { shape: p.shape, data: weights.get(p.name)! });
  const shapeOf = (n: string) => m.params.find((p) => p.name === n)!.shape;
  for (const [n, a] of optimizer.m) tensors.set(`opt.m.${n}`, { shape: shapeOf(n), data: a });
  for (const [n, a] of optimizer.v) tensors.set(`opt.v.${n}`, { shape: shapeOf(n), data: a });
  return tensors;
}

/** safetensors metadata holds strings only. */
export const checkpointMetadata = (meta: CheckpointMeta): Record<string, string> => Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, String(v)]));

/** A checkpoint's safetensors bytes (for a download; `writeCheckpoint` streams large ones to a file). */
export function encodeCheckpoint(meta: CheckpointMeta, tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>): Uint8Array {
  return encodeSafetensors([...tensors].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, element: (i: number) => t.data[i]!, f32: t.data })), checkpointMetadata(meta));
}

/** The optimizer state a checkpoint restores: the moments (by name, filled in place) and the step count. */
export interface OptimizerState {
  t: number;
  readonly m: ReadonlyMap<string, Float32Array>;
  readonly v: ReadonlyMap<string, Float32Array>;
  readonly config: { readonly kind: string };
}

/** Fills an optimizer's moments and step count from a checkpoint's `opt.m.NAME` / `opt.v.NAME` tensors. */
export function restoreOptimizerState(optimizer: OptimizerState, tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, optimizerStep: number, file: string): void {
  optimizer.t = optimizerStep;
  const state = [...[...optimizer.m].map(([n, a]) => [`opt.m.${n}`, a] as const), ...[...optimizer.v].map(([n, a]) => [`opt.v.${n}`, a] as const)];
  for (const [name, arr] of state) {
    const saved = tensors.get(name);
    if (!saved) fail('PEER0601', null, { file, name, kind: `the ${optimizer.config.kind} optimizer's state` });
    if (saved.data.length !== arr.length) fail('PEER0602', null, { name, expected: `${arr.length} values`, found: `[${saved.shape.join(', ')}]` });
    arr.set(saved.data);
  }
}

/** What a checkpoint written by library code (the emitted Training class) records: no run folder, no dataset. */
export interface LibraryRun {
  /** The program's source, file name and --set overrides, as `peerc compile` embedded them. */
  program: { file: string; text: string; set: string };
  entry: string;
  optimizer: { readonly steps: number };
  optimizerStep: number;
  seed: number;
  backend: string;
}

export function libraryMeta(r: LibraryRun): CheckpointMeta {
  return {
    format: CHECKPOINT_FORMAT, source: r.program.text, file: r.program.file, entry: r.entry, step: r.optimizerStep,
    optimizer: JSON.stringify(r.optimizer), optimizerStep: r.optimizerStep,
    data: JSON.stringify({ task: 'library', note: 'batches came from the caller' }),
    rng: JSON.stringify({ kind: 'counter-based (seed, step)', seed: r.seed, position: r.optimizerStep }),
    backend: r.backend, run: JSON.stringify({ set: r.program.set, seed: r.seed, steps: Math.max(1, r.optimizer.steps, r.optimizerStep), writer: 'the emitted Training class' }), resumes: '[]',
  };
}
