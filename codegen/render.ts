// IR node -> kernel plans: one for a primitive op, one or more stages for a fused op.
import type { Node } from '../src/ir/graph.js';
import type { Dim } from '../src/shapes/dim.js';
import { ArgAccess, sizeOf, type KernelArg, type KernelPlan } from './kernel.js';
import { NAIVE_RENDERERS, type Rendered, type RenderInput } from './naive.js';
import { FUSED_RENDERERS } from './fused.js';
import { attrsOf } from '../src/ir/ops/types.js';
import { einsum } from '../src/ir/ops/einsum.js';

export function renderKernels(node: Node, args: KernelArg[], outShapes: number[][], dimValue: (d: Dim) => number, training: boolean): KernelPlan[] {
  const r: RenderInput = { node, inShapes: args.map((a) => a.shape), outShapes, acc: new ArgAccess(args), dimValue, training };
  const results = outShapes.map(sizeOf);
  const fused = FUSED_RENDERERS[node.op];
  if (fused) {
    const stages = fused(r);
    return stages.map((s, i) => ({
      label: s.label, args, source: s.body, outputLength: s.outputLength, loopMax: s.loopMax, earlierStages: i, vec4: s.vec4, layout: s.layout,
      results: i === stages.length - 1 ? results : [s.outputLength],
    }));
  }
  let out: Rendered;
  {
    const renderer = NAIVE_RENDERERS[node.op];
    if (!renderer) throw new Error(`no gpu.js renderer for op '${node.op}'`);
    out = renderer(r);
  }
  const laidOut = args.map((a, i) => {
    const perm = out.layouts?.get(i);
    return perm ? { ...a, perm, shape: perm.map((j) => a.shape[j]!) } : a;
  });
  const label = node.op === 'einsum' ? `einsum ${attrsOf(einsum, node).spec}` : node.op;
  return [{ label, args: laidOut, source: out.body, outputLength: results.reduce((a, b) => a + b, 0), results, loopMax: out.loopMax, earlierStages: 0, grid: out.grid, views: out.views }];
}
