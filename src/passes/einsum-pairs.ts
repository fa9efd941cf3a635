// Multi-operand einsums as chains of two-operand ones: every backend's contraction kernels,
// the fusion rules and the exports then see one canonical form, whatever way a user grouped
// the operands (`einsum("thk,thkm,thkmd->td", g, a, gather(V, idx))` becomes the two-step
// spelling that the expert-output fusion matches).
import { ref } from '../ir/graph.js';
import { parseEinsum } from '../ir/ops/einsum.js';
import type { RewriteRule } from './rebuild.js';

export const einsumPairs: RewriteRule = {
  name: 'einsum-pairs',
  doc: 'einsum of three or more operands -> two-operand einsums left to right; each intermediate keeps only the letters that later operands or the output still need (summed letters are summed as early as possible)',
  apply(node, inputs, g) {
    if (node.op !== 'einsum' || inputs.length < 3) return undefined;
    const spec = parseEinsum(node.attrs.spec as string, inputs.length);
    let acc = inputs[0]!, accSub = spec.inputs[0]!;
    for (let i = 1; i < inputs.length; i++) {
      const sub = spec.inputs[i]!;
      const needed = new Set([...spec.output, ...spec.inputs.slice(i + 1).join('')]);
      const out = i === inputs.length - 1 ? spec.output : [...new Set([...accSub, ...sub])].filter((c) => needed.has(c)).join('');
      acc = ref(g.add('einsum', [acc, inputs[i]!], { spec: `${accSub},${sub}->${out}` }, node.span), 0);
      accSub = out;
    }
    return [acc];
  },
};
