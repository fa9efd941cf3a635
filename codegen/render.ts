// IR node -> kernel plan, with the renderer table for naive ops and fused ops.
import type { Node } from '../src/ir/graph.js';
import type { Dim } from '../src/shapes/dim.js';
import { ArgAccess, sizeOf, type KernelArg, type KernelPlan } from './kernel.js';
import { NAIVE_RENDERERS, renderBatchnorm, type Rendered, type RenderInput } from './naive.js';
import { FUSED_RENDERERS } from './fused.js';

export function renderKernel(node: Node, args: KernelArg[], outShapes: number[][], dimValue: (d: Dim) => number, training: boolean): KernelPlan {
  const r: RenderInput = { node, inShapes: args.map((a) => a.shape), outShapes, acc: new ArgAccess(args), dimValue };
  let out: Rendered;
  if (node.op === 'batchnorm') out = renderBatchnorm(r, training);
  else {
    const renderer = FUSED_RENDERERS[node.op] ?? NAIVE_RENDERERS[node.op];
    if (!renderer) throw new Error(`no gpu.js renderer for op '${node.op}'`);
    out = renderer(r);
  }
  const results = outShapes.map(sizeOf);
  return { label: node.op, args, source: out.body, outputLength: results.reduce((a, b) => a + b, 0), results, loopMax: out.loopMax };
}
