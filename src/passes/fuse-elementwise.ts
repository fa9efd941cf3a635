// fuse-elementwise: a tree of elementwise ops whose inner results have no other use becomes one
// `elementwise_fused` op (one kernel, one pass over memory). Backward passes are full of such
// chains (mul, sub, broadcast_to, step, gelu_grad ...), each otherwise a kernel of its own.
import { ref, type Node, type ValueRef } from '../ir/graph.js';
import { ELEMENTWISE_OPS, type ElementwiseExpr } from '../ir/ops/elementwise-fused.js';
import type { RewriteContext, RewriteRule } from './rebuild.js';

const isElementwise = (n: Node) => ELEMENTWISE_OPS.has(n.op) && n.types.length === 1 && n.types[0]!.dtype === 'f32';

/** Computed only for one elementwise user (used once) and not returned: safe to recompute inside it. */
function absorbable(ctx: RewriteContext, n: Node, outputs: ReadonlySet<number>): boolean {
  if (!isElementwise(n) || outputs.has(n.id)) return false;
  const users = ctx.users(n.id);
  return users.length === 1 && isElementwise(users[0]!);
}

export const fuseElementwise: RewriteRule = {
  name: 'fuse-elementwise',
  doc: 'a tree of two or more elementwise f32 ops (binary arithmetic, activations, their derivatives, broadcast_to), whose inner results each feed only the next op once and are not outputs -> elementwise_fused; inputs are read with broadcasting against the root\'s shape.',
  apply(node, _inputs, g, module, ctx) {
    const fn = [...module.functions.values()].find((f) => f.graph === ctx.src);
    const outputs = new Set((fn?.outputs ?? []).map((o) => o.node));
    if (!isElementwise(node) || absorbable(ctx, node, outputs)) return undefined;
    const leaves: ValueRef[] = [];
    let ops = 0;
    const build = (n: Node): ElementwiseExpr => {
      ops++;
      return {
        op: n.op,
        args: n.inputs.map((r) => {
          const p = ctx.src.node(r.node);
          if (p.op === 'const' && p.types[0]!.dtype === 'f32') return { value: p.attrs.value as number };
          if (absorbable(ctx, p, outputs)) return build(p);
          let i = leaves.findIndex((l) => l.node === r.node && l.result === r.result);
          if (i < 0) i = leaves.push(r) - 1;
          return { input: i };
        }),
      };
    };
    const expr = build(node);
    if (ops < 2) return undefined;
    const id = g.add('elementwise_fused', leaves.map((l) => ctx.map(l)), { expr: JSON.stringify(expr), shape: node.types[0]!.shape }, node.span);
    return [ref(id)];
  },
};
