// The program a checkpoint embeds, compiled again: its own file so that the runtime bundle,
// which writes and reads checkpoints (checkpoint-format.ts), does not carry the compiler.
import { compileSource, type CompileResult } from '../../src/frontend.js';
import type { CheckpointMeta } from './checkpoint-format.js';
import { recordedOverrides } from './settings.js';

/** The program a checkpoint embeds, compiled as it was trained (with the run's recorded --set); `file` names it in diagnostics. */
export function checkpointProgram(meta: CheckpointMeta): CompileResult & { file: string } {
  const file = meta.file || 'checkpoint.peer';
  const set = recordedOverrides((JSON.parse(meta.run) as { set?: string }).set);
  return { ...compileSource(meta.source, file, { entry: meta.entry || undefined, set }), file };
}
