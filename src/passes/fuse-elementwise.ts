// fuse-elementwise: a tree of elementwise ops whose inner results have no other use becomes one
// `elementwise_fused` op (one kernel, one pass over memory). Backward passes are full of such
// chains (mul, sub, broadcast_to, step, gelu_grad ...), each otherwise a kernel of its own.
import { ref, type Node, type ValueRef } from '../ir/graph.js';
import { ELEMENTWISE_OPS, type ElementwiseExpr } from '../ir/ops/elementwise-fused.js';
import type { RewriteContext, RewriteRule } from './rebuild.js';

const isElementwise = (n: Node) => ELEMENTWISE_OPS.has(n.op) && n.types.length === 1 && n.types[0]!.dtype === 'f32';

/** At most this many ops are recomputed in each user when a value with several users is not stored. */
const RECOMPUTED_OPS = 2;
const RECOMPUTED_USERS = 4;
/**
 * Ops an instruction or two computes. Any other (exp, erf, tanh, log, gelu ...) is a library call
 * per cell: a value that has one is stored once, not recomputed in each user, and the users
 * then can be arithmetic only (which the SIMD elementwise kernels run).
 */
const CHEAP_OPS = new Set(['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'neg', 'abs', 'sqrt', 'relu', 'step', 'broadcast_to']);

/**
 * Computed only inside its elementwise users and not returned: safe to recompute inside each.
 * One user: always. Several (all elementwise): only when it is cheap (a broadcast, or at most
 * RECOMPUTED_OPS ops counting what it absorbs itself), since each user then recomputes it; a
 * host pass over a [T, C] tensor costs more than a few extra operations per cell (the BatchNorm
 * backward's normalised input and inverse deviation were each written, then read by two or three ops).
 */
function absorbable(ctx: RewriteContext, n: Node, outputs: ReadonlySet<number>, memo: Map<number, number | false>): boolean {
  return absorbedCost(ctx, n, outputs, memo) !== false;
}

/** Ops recomputed where `n` is absorbed (false: `n` stays a value of its own). */
function absorbedCost(ctx: RewriteContext, n: Node, outputs: ReadonlySet<number>, memo: Map<number, number | false>): number | false {
  const known = memo.get(n.id);
  if (known !== undefined) return known;
  let cost: number | false = false;
  const users = ctx.users(n.id);
  if (isElementwise(n) && !outputs.has(n.id) && users.length >= 1 && users.every(isElementwise)) {
    let own = n.op === 'broadcast_to' ? 0 : CHEAP_OPS.has(n.op) ? 1 : RECOMPUTED_OPS + 1;
    for (const r of n.inputs) {
      const c = absorbedCost(ctx, ctx.src.node(r.node), outputs, memo);
      if (c !== false) own += c;
    }
    if (users.length === 1 || (users.length <= RECOMPUTED_USERS && own <= RECOMPUTED_OPS)) cost = own;
  }
  memo.set(n.id, cost);
  return cost;
}

const memos = new WeakMap<object, Map<number, number | false>>();
/** One memo per source graph (a rebuild visits every node of one graph). */
function costMemo(ctx: RewriteContext): Map<number, number | false> {
  let m = memos.get(ctx.src);
  if (!m) memos.set(ctx.src, (m = new Map()));
  return m;
}

export const fuseElementwise: RewriteRule = {
  name: 'fuse-elementwise',
  doc: 'a tree of two or more elementwise f32 ops (binary arithmetic, activations, their derivatives, broadcast_to), whose inner results feed only elementwise ops and are not outputs (one user, or up to 4 users when it costs at most 2 arithmetic ops to recompute in each; a transcendental op counts as 3) -> elementwise_fused; inputs are read with broadcasting against the root\'s shape.',
  apply(node, _inputs, g, module, ctx) {
    const fn = [...module.functions.values()].find((f) => f.graph === ctx.src);
    const outputs = new Set((fn?.outputs ?? []).map((o) => o.node));
    const memo = costMemo(ctx);
    if (!isElementwise(node) || absorbable(ctx, node, outputs, memo)) return undefined;
    const leaves: ValueRef[] = [];
    let ops = 0;
    const build = (n: Node): ElementwiseExpr => {
      ops++;
      return {
        op: n.op,
        args: n.inputs.map((r) => {
          const p = ctx.src.node(r.node);
          if (p.op === 'const' && p.types[0]!.dtype === 'f32') return { value: p.attrs.value as number };
          if (absorbable(ctx, p, outputs, memo)) return build(p);
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
