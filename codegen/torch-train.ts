// `peerc export --torch` also writes train.py (codegen/python/train.py, a Python file of the
// package, copied as it is) and train.json (this model's facts): the `peerc train` loop for PyTorch under torchrun
// with FSDP2. Replicated parameters are FSDP2-sharded (fully_shard); @sparse expert tables are
// sharded by rows outside FSDP (Memory-Layers style), because FSDP2 flat-shards parameters and
// cannot take the sparse row gradients that make million-expert tables trainable: each rank
// owns a contiguous block of rows, retrieval ids and the inputs they weigh are all-gathered,
// every rank reads its own rows for all tokens, and the partial results are summed back
// (differentiable collectives), so gradients stay sparse and never leave the owning rank.
// The optimizer is peerc's (Adam/AdamW/SGD, lazy on touched rows of @sparse tables, @lr
// multipliers and their decay, warmup + cosine, global-norm clipping), seeded weights and
// batches are peerc's counter-based draws, and checkpoints are peerc checkpoints.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IRModule } from '../src/ir/graph.js';
import { liveNodes } from '../src/ir/graph.js';
import { entryFunction } from '../src/interp/interpreter.js';
import { attrsOf } from '../src/ir/ops/types.js';
import { param } from '../src/ir/ops/leaves.js';

/** The run as `peerc train` would start it (its RunSettings), and the data task's facts. */
export interface TorchTrainSpec {
  /** The .peer source text (checkpoints embed it, so `peerc train --resume` accepts them). */
  source: string;
  file: string;
  moduleName: string;
  className: string;
  settings: {
    task: 'text' | 'recall'; data?: string; steps: number; batch: number; seq: number; seed: number;
    evalEvery: number; evalBatches: number; checkpointEvery: number; set?: string;
    optimizer: Record<string, number | string>;
  };
  /** The index input the data feeds, the recall task's key count and classes. */
  input: string;
  recall?: { keys: number; classes: number };
  version: string;
}

/** @sparse 2-D tables read only through gathers and the fused expert ops: these shard by rows. */
export function rowShardedTables(m: IRModule): string[] {
  const fn = entryFunction(m);
  const live = liveNodes(fn);
  const ok = new Map<string, boolean>();
  const paramNode = new Map<number, string>();
  for (const n of fn.graph.nodes) if (live.has(n.id) && n.op === 'param') paramNode.set(n.id, attrsOf(param, n).name);
  for (const n of fn.graph.nodes) {
    if (!live.has(n.id)) continue;
    n.inputs.forEach((r, i) => {
      const name = paramNode.get(r.node);
      if (name === undefined) return;
      const asTable = (n.op === 'gather' && i === 0) || ((n.op === 'expert_act' || n.op === 'expert_out') && i === 1);
      ok.set(name, (ok.get(name) ?? true) && asTable);
    });
  }
  return m.params.filter((p) => p.role === 'param' && p.sparse && p.shape.length === 2 && ok.get(p.name) === true).map((p) => p.name);
}

/** Where train.py lives: codegen/python/ beside this file, or beside the bundled CLI (dist/ -> ../codegen/python). */
export function trainScriptPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.endsWith('dist') ? resolve(here, '..', 'codegen', 'python', 'train.py') : resolve(here, 'python', 'train.py');
}

/**
 * train.py (the training loop, a Python file of the package, copied as it is) and train.json,
 * the facts of this model it reads: parameters, settings, loss, the program's source; and the
 * tables it shards by rows.
 */
export function emitTorchTrain(m: IRModule, spec: TorchTrainSpec): { script: string; config: string; rowSharded: string[] } {
  const fn = entryFunction(m);
  const rowSharded = rowShardedTables(m);
  const out = fn.graph.typeOf(fn.outputs[0]!);
  const loss = out.dtype === 'f32' && out.shape.length === 0 ? 'scalar' : 'logits';
  const params = m.params.map((p) => ({ name: p.name, role: p.role, shape: p.shape, init: p.init, lr: p.lrMultiplier, lrDecay: p.lrDecay ?? null, sparse: p.sparse, decay: p.weightDecay, optim: p.optim ?? null }));
  const config = {
    generated_by: `peerc ${spec.version} from ${spec.file} (entry @${m.entry}); re-export with: peerc export ${spec.file} --torch -o DIR`,
    version: spec.version, module: spec.moduleName, class: spec.className, file: spec.file, entry: m.entry,
    settings: spec.settings, params, row_sharded: rowSharded, loss, input: spec.input, recall: spec.recall ?? null, source: spec.source,
  };
  return { script: readFileSync(trainScriptPath(), 'utf8'), config: JSON.stringify(config, null, 2) + '\n', rowSharded };
}
