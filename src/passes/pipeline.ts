// The pass pipeline, in order. Each line says what the pass assumes and what it guarantees.
// The verifier runs after every pass in tests; `peerc ir --dump-after NAME` prints the IR.
import type { IRModule } from '../ir/graph.js';
import { FOLD_RULES } from './fold.js';
import { FUSION_RULES } from './fuse.js';
import { inlineModule } from './inline.js';
import { rebuildModule } from './rebuild.js';
import { unstackGather } from './stacked.js';
import { einsumPairs } from './einsum-pairs.js';

export interface Pass {
  name: string;
  assumes: string;
  guarantees: string;
  run(m: IRModule): IRModule;
}

export const PIPELINE: readonly Pass[] = [
  { name: 'inline', assumes: 'a verified module with an entry', guarantees: 'one function, the entry, with no calls', run: inlineModule },
  { name: 'unstack', assumes: 'an inlined module', guarantees: 'no gather reads a slice U[i] of a stacked parameter; it reads U as L*N rows at idx + i*N', run: (m) => rebuildModule(m, [unstackGather]) },
  { name: 'einsum-pairs', assumes: 'an inlined module', guarantees: 'every einsum has one or two operands (longer ones are chains, left to right, summing letters as early as possible)', run: (m) => rebuildModule(m, [einsumPairs]) },
  { name: 'fold-constants', assumes: 'any verified module', guarantees: 'no elementwise op on scalar constants; x+0, x*1, x/1, -(-x) removed', run: (m) => rebuildModule(m, FOLD_RULES) },
  { name: 'cse', assumes: 'any verified module', guarantees: 'no two nodes with the same op, inputs and attributes (the graph is rebuilt through hash-consing)', run: (m) => rebuildModule(m, []) },
  { name: 'dce', assumes: 'any verified module', guarantees: 'every node is used by an output (inputs stay)', run: (m) => rebuildModule(m, []) },
];

/** The fused lowering's extra passes, after PIPELINE (see src/passes/fuse.ts for each rule). */
export const FUSION_PIPELINE: readonly Pass[] = [
  { name: 'fuse', assumes: 'an inlined, CSE\'d module', guarantees: 'product-key retrieval, expert activations and expert outputs are single fused ops; no [T, .., k, k] or [T, .., d] gathered tensor remains where a rule fired', run: (m) => rebuildModule(m, FUSION_RULES) },
  { name: 'fuse-dce', assumes: 'a fused module', guarantees: 'the primitive ops the fusions replaced are gone', run: (m) => rebuildModule(m, []) },
];

export type Lowering = 'naive' | 'fused';

export function passNames(): string[] {
  return [...PIPELINE, ...FUSION_PIPELINE].map((p) => p.name);
}

/** Runs the pipeline, optionally stopping after the named pass; `after` is called after each pass. */
export function optimize(m: IRModule, options: { stopAfter?: string; after?: (pass: Pass, m: IRModule) => void; lowering?: Lowering } = {}): IRModule {
  let cur = m;
  const fused = options.lowering === 'fused' || (options.stopAfter !== undefined && FUSION_PIPELINE.some((p) => p.name === options.stopAfter));
  for (const pass of fused ? [...PIPELINE, ...FUSION_PIPELINE] : PIPELINE) {
    cur = pass.run(cur);
    options.after?.(pass, cur);
    if (pass.name === options.stopAfter) break;
  }
  return cur;
}
