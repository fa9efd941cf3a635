// Tables stacked along a leading axis (`param U: [L, N, d]`, used as `U[i]`): a gather from one
// slice becomes a gather from the whole table seen as L*N rows, at idx + i*N. The table then
// stays a parameter read only through gathers, so it keeps the sparse gradient path (row ids
// and rows, lazy Adam), the host gathers and the expert fusions; nothing copies the slice.
import { ref, stackSlice } from '../ir/graph.js';
import type { RewriteRule } from './rebuild.js';

export const unstackGather: RewriteRule = {
  name: 'unstack-gather',
  doc: 'gather(reshape(slice(P, axis 0, i, i+1), [N, ...]), idx) with P a parameter [L, N, ...] and idx known to be below N -> gather(reshape(P, [L*N, ...]), idx + i*N): the slice is never copied and P keeps its sparse gradient.',
  apply(node, _inputs, g, _m, ctx) {
    if (node.op !== 'gather') return undefined;
    const at = stackSlice(ctx.src, node.inputs[0]!);
    if (!at || ctx.src.node(at.stack.node).op !== 'param') return undefined;
    const ps = ctx.src.typeOf(at.stack).shape;
    const view = ctx.src.node(node.inputs[0]!.node);
    const n = ps[1]!.value, start = at.index;
    // Only indices known to stay inside the slice (a retrieval's, say): an unchecked one could
    // otherwise reach a neighbouring slice instead of failing as out of range.
    const bound = ctx.src.typeOf(node.inputs[1]!).bound?.value;
    if (n === undefined || bound === undefined || bound > n) return undefined;
    const whole = ref(g.add('reshape', [ctx.map(at.stack)], { shape: [ps[0]!.mul(ps[1]!), ...ps.slice(2)] }, view.span));
    const idx = ctx.map(node.inputs[1]!);
    const shifted = start === 0 ? idx : ref(g.add('add', [idx, g.constant(start * n, 'index', node.span)], {}, node.span));
    return [ref(g.add('gather', [whole, shifted], {}, node.span))];
  },
};
