// The run train.py starts: `peerc train`'s settings for the program (its train {} block, the
// --set overrides), and the data task's facts (the index input, the recall task's sizes).
import type { IRModule } from '../../src/ir/graph.js';
import { CompileError } from '../../src/diagnostics/diagnostic.js';
import { entryFunction } from '../../src/interp/interpreter.js';
import { torchClassName } from '../../codegen/torch.js';
import type { TorchTrainSpec } from '../../codegen/torch-train.js';
import { RecallDataset } from '../train/data.js';
import { settingsOf } from '../train/settings.js';
import { PEERC_VERSION } from './version.js';

export function torchTrainSpec(m: IRModule, file: string, source: string, flags: Map<string, string | number | boolean>): TorchTrainSpec | { skipped: string } {
  const fn = entryFunction(m);
  let recall: TorchTrainSpec['recall'];
  let why = '';
  try {
    const r = new RecallDataset(m, 1, 0);
    recall = { keys: r.keys, classes: r.classes };
  } catch (e) {
    if (!(e instanceof CompileError)) throw e;
    why = e.diagnostic.message;
  }
  const declared = m.train.get('task') as string | undefined;
  const task = declared === 'text' || declared === 'recall' ? declared : recall ? 'recall' : 'text';
  const input = fn.inputs.map((id) => fn.graph.node(id)).find((n) => n.types[0]!.dtype === 'index');
  if (!input || fn.inputs.length !== 1) return { skipped: `@${m.entry} takes no single index input for a data task to feed (train it through your own loop; the module works in one)` };
  if (task === 'recall' && !recall) return { skipped: why };
  const out = fn.graph.typeOf(fn.outputs[0]!);
  if (task === 'text' && (input.types[0]!.shape.length !== 2 || (out.shape.at(-1)?.value ?? 0) < 256)) return { skipped: `the text task feeds byte sequences [batch, seq] and predicts 256 classes; @${m.entry} does not fit it` };
  const settings = settingsOf(m, new Map([...flags, ['task', task], ...(task === 'text' ? [['data', '-'] as [string, string]] : [])]));
  return {
    source, file, moduleName: m.entry, className: torchClassName(m.entry), input: input.attrs.name as string, recall, version: PEERC_VERSION,
    settings: { ...settings, data: undefined, optimizer: { ...settings.optimizer } as unknown as Record<string, number | string> },
  };
}
