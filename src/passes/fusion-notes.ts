// What the fused lowering did and did not do, for users: a retrieval or expert pattern that
// is recognised but not fused is silent degradation (the [T, .., k, k] candidates or the
// [T, .., d] gathered experts get built), so it is reported with the reason, in `check`,
// `ir --explain-fusion`, `bench` and `train`.
import { liveNodes, type IRFunction, type IRModule, type Node } from '../ir/graph.js';
import { rewriteContext, type RewriteContext } from './rebuild.js';
import { retrievalMiss } from './fuse.js';
import type { Span } from '../../grammar/ast.js';

export interface FusionNote {
  span?: Span;
  message: string;
}

const FUSED_OPS: Readonly<Record<string, string>> = {
  product_retrieve: 'product-key retrieval (fuse-retrieval)',
  product_extend: 'a further product-key factor (fuse-retrieval-extend)',
  expert_act: 'expert activations (fuse-expert-activation)',
  expert_out: 'expert outputs (fuse-expert-output, fuse-residual)',
  einsum_bn: 'projection + BatchNorm (fuse-projection-batchnorm)',
  elementwise_fused: 'elementwise trees (fuse-elementwise)',
};

/** Indices that come out of a selection (retrieval), not from the model's inputs (an embedding lookup). */
function selected(ctx: RewriteContext, id: number): boolean {
  const n = ctx.src.node(id);
  if (n.op === 'product_retrieve' || n.op === 'product_extend' || n.op === 'topk' || n.op === 'take_along') return true;
  return (n.op === 'reshape' || n.op === 'slice' || n.op === 'expand_dims') && selected(ctx, n.inputs[0]!.node);
}

/** Patterns left unfused in a module after the fused lowering, each with its reason. */
export function unfusedPatterns(m: IRModule, options: { retrievalOnly?: boolean } = {}): FusionNote[] {
  const notes: FusionNote[] = [];
  for (const f of m.functions.values()) {
    const live = liveNodes(f);
    const ctx = rewriteContext(m, f, (r) => r, live);
    for (const n of f.graph.nodes) {
      if (!live.has(n.id)) continue;
      if (n.op === 'topk') {
        const why = retrievalMiss(ctx, n);
        if (why) notes.push({ span: n.span, message: `product-key retrieval is not fused, so its [.., k, k] candidates are built: ${why}` });
      }
      if (!options.retrievalOnly && n.op === 'gather' && ctx.src.node(n.inputs[0]!.node).op === 'param' && [2, 3].includes(ctx.src.typeOf(n.inputs[0]!).shape.length) && n.types[0]!.shape.length >= 3 && selected(ctx, n.inputs[1]!.node)) {
        const table = ctx.src.node(n.inputs[0]!.node).attrs.name as string;
        const users = ctx.users(n.id).map((u) => `${u.op} %${u.id}`).join(', ');
        notes.push({
          span: n.span,
          message: `the gather of expert rows from ${table} is not fused, so a [${n.types[0]!.shape.join(', ')}] tensor of rows is built (used by ${users}); the expert fusions need it to be read only by einsum(gather(U, idx), x) under an elementwise activation (relu, gelu, gelu_tanh, silu, sigmoid, tanh, abs) or none, times a weight, or by einsum(h, gather(V, idx)) summing the slots`,
        });
      }
    }
  }
  // One note per place and reason, however many nodes of the pattern point there.
  return notes.filter((n, i) => notes.findIndex((o) => o.message === n.message && o.span?.offset === n.span?.offset && o.span?.file === n.span?.file) === i);
}

/** One line per fused op kind with its count, for `ir --explain-fusion`. */
export function fusedSummary(m: IRModule): string[] {
  const counts = new Map<string, number>();
  for (const f of m.functions.values()) {
    const live = liveNodes(f);
    for (const n of f.graph.nodes) if (live.has(n.id) && FUSED_OPS[n.op]) counts.set(n.op, (counts.get(n.op) ?? 0) + 1);
  }
  return [...counts].map(([op, c]) => `fused: ${c} x ${op}: ${FUSED_OPS[op]}`);
}
