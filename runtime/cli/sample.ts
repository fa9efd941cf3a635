// peerc sample: generate bytes from a trained language model's checkpoint (runtime/train/pick.ts).
import { entryFunction } from '../../src/interp/interpreter.js';
import { UsageError } from '../../src/io/tensors.js';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import { optimize } from '../../src/passes/pipeline.js';
import { resolveBackend, type BackendName } from '../backends/info.js';
import { Executor } from '../executor.js';
import { readCheckpoint } from '../train/checkpoint.js';
import { checkpointProgram } from '../train/checkpoint-program.js';
import { ProgramErrors } from './errors.js';
import { generateBytes } from '../train/pick.js';
export { pick } from '../train/pick.js';

export interface SampleOptions {
  prompt: string;
  tokens: number;
  temperature: number;
  seed: number;
  backend: BackendName | 'auto';
}

export async function runSample(path: string, o: SampleOptions, write: (bytes: Uint8Array) => void): Promise<number> {
  const ck = readCheckpoint(path, { finite: true });
  const data = JSON.parse(ck.meta.data) as { task: string; seq: number };
  // The run's --set overrides (recorded in its settings) shape the program as it was trained.
  const r = checkpointProgram(ck.meta);
  if (!r.module) throw new ProgramErrors(r.diagnostics, r.sources);
  const m = r.module;
  if (data.task !== 'text') throw new UsageError(`${path} is a checkpoint of the ${data.task} task; peerc sample generates text from byte-level language models (trained with --data)`);
  const fn = entryFunction(m);
  const input = fn.graph.node(fn.inputs[0]!).attrs.name as string;
  const weights = new Map(m.params.map((p) => {
    const t = ck.tensors.get(`param.${p.name}`);
    if (!t) throw new CompileError(diagnostic('PEER0601', null, { file: path, name: `param.${p.name}`, kind: `the weights of ${p.name}` }));
    if (t.data.length !== p.shape.reduce((a, b) => a * b, 1)) throw new CompileError(diagnostic('PEER0602', null, { name: `param.${p.name}`, expected: `[${p.shape.join(', ')}]`, found: `[${t.shape.join(', ')}]` }));
    return [p.name, t.data] as const;
  }));
  const seq = data.seq;
  const ex = new Executor(optimize(m, { lowering: 'fused' }), weights, resolveBackend(o.backend).name);
  try {
    const prompt = new TextEncoder().encode(o.prompt);
    // The prompt first, so the output reads as the text the model continued.
    write(prompt);
    await generateBytes(ex, input, seq, prompt, o, (b) => write(Uint8Array.of(b)));
    write(new TextEncoder().encode('\n'));
    return 0;
  } finally {
    ex.destroy();
  }
}
