// The pass pipeline, in order. Each line says what the pass assumes and what it guarantees.
// The verifier runs after every pass in tests; `peerc ir --dump-after NAME` prints the IR.
import type { IRModule } from '../ir/graph.js';
import { FOLD_RULES } from './fold.js';
import { FUSION_RULES, fuseExpertReads, fuseRetrieval, fuseRetrievalExtend } from './fuse.js';
import { fuseElementwise } from './fuse-elementwise.js';
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
  { name: 'fold-constants', assumes: 'any verified module', guarantees: 'no elementwise op on scalar constants; x+0, x*1, x/1, -(-x) removed; two complementary zero-pads added -> one concat', run: (m) => rebuildModule(m, FOLD_RULES) },
  { name: 'cse', assumes: 'any verified module', guarantees: 'no two nodes with the same op, inputs and attributes (the graph is rebuilt through hash-consing)', run: (m) => rebuildModule(m, []) },
  { name: 'dce', assumes: 'any verified module', guarantees: 'every node is used by an output (inputs stay)', run: (m) => rebuildModule(m, []) },
];

/** The fused lowering's extra passes, after PIPELINE (see src/passes/fuse.ts for each rule). */
export const FUSION_PIPELINE: readonly Pass[] = [
  { name: 'fuse', assumes: 'an inlined, CSE\'d module', guarantees: 'product-key retrieval, expert activations and expert outputs are single fused ops; no [T, .., k, k] or [T, .., d] gathered tensor remains where a rule fired', run: (m) => rebuildModule(m, FUSION_RULES) },
  { name: 'fuse-dce', assumes: 'a fused module', guarantees: 'the primitive ops the fusions replaced are gone', run: (m) => rebuildModule(m, []) },
];

const dce = (name: string): Pass => ({ name, assumes: 'any verified module', guarantees: 'every node is used by an output', run: (m) => rebuildModule(m, []) });

/**
 * Training (src/autodiff/differentiate.ts compileTraining): PIPELINE, then TRAINING_FORWARD, then
 * the differentiation (loss and gradients appended as IR), then TRAINING_BACKWARD.
 */
export const TRAINING_FORWARD: readonly Pass[] = [
  { name: 'fuse-retrieval', assumes: 'PIPELINE has run', guarantees: 'product-key retrieval is product_retrieve{gate} (and each further sub-key factor product_extend{gate}), whose gradient is declared on it: the [.., k, k] candidates are made in neither direction; the gate and the router weights (result 0) are on the op for the metrics', run: (m) => rebuildModule(m, [fuseRetrieval, fuseRetrievalExtend]) },
  dce('fuse-retrieval-dce'),
];
export const TRAINING_BACKWARD: readonly Pass[] = [
  { name: 'fold-constants', assumes: 'a differentiated module', guarantees: 'the gradient\'s constant arithmetic folded; the gradients of two slices that split an axis, padded and added, are one concat', run: (m) => rebuildModule(m, FOLD_RULES) },
  dce('training-dce'),
  { name: 'fuse-elementwise', assumes: 'a folded module', guarantees: 'chains of elementwise ops (a backward pass is full of them) are single elementwise_fused ops', run: (m) => rebuildModule(m, [fuseElementwise]) },
  dce('fuse-elementwise-dce'),
  { name: 'fuse-expert-reads', assumes: 'a differentiated module; the backend reads parameter tables in place (compileTraining leaves this pass out otherwise)', guarantees: 'no [T, .., d] gathered expert rows where every reader of the gather is a dot product or a slot sum: expert_act / expert_out read the rows themselves, forward and backward', run: (m) => rebuildModule(m, [fuseExpertReads]) },
  dce('fuse-expert-reads-dce'),
];

/** The PyTorch export: PIPELINE and the fusions valid in training too (the module trains with batch statistics). */
export const TORCH_EXPORT: readonly Pass[] = [
  ...PIPELINE,
  { name: 'fuse-trainable', assumes: 'PIPELINE has run', guarantees: 'as fuse, without the evaluation-only rules (BatchNorm epilogues)', run: (m) => rebuildModule(m, FUSION_RULES.filter((r) => !r.evaluationOnly)) },
  dce('fuse-dce'),
];

/** The ONNX export (evaluation mode): the fused lowering. */
export const ONNX_EXPORT: readonly Pass[] = [...PIPELINE, ...FUSION_PIPELINE];

/** Runs passes in order. */
export function runPasses(m: IRModule, passes: readonly Pass[]): IRModule {
  return passes.reduce((cur, p) => p.run(cur), m);
}

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
