// What a training checkpoint holds, and its bytes in memory. Without Node built-ins: the
// playground's worker writes the same checkpoints that `peerc train --resume`, `peerc sample`
// and `peerc run` read.
import type { IRModule } from '../../src/ir/graph.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { compileSource, type CompileResult } from '../../src/frontend.js';
import { recordedOverrides } from './settings.js';
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

/** The program a checkpoint embeds, compiled as it was trained (with the run's recorded --set); `file` names it in diagnostics. */
export function checkpointProgram(meta: CheckpointMeta): CompileResult & { file: string } {
  const file = meta.file || 'checkpoint.peer';
  const set = recordedOverrides((JSON.parse(meta.run) as { set?: string }).set);
  return { ...compileSource(meta.source, file, { entry: meta.entry || undefined, set }), file };
}
