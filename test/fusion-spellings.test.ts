// Equivalent spellings of one computation fuse alike: operands of an einsum or a product in
// either order, the weights applied before or after the activation's product, the residual on
// either side, one three-operand einsum or two pairs. Each spelling is checked to fuse into the
// same ops and to agree with the float64 interpreter.
import { describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize } from '../src/passes/pipeline.js';
import { unfusedPatterns } from '../src/passes/fusion-notes.js';
import { compileOk, sampleInputs } from './helpers.js';

const header = `
const d = 8
const n = 6
param Wq: [2, 4, d] = normal(0, 1)
param C1: [n, 2] = normal(0, 1)
param C2: [n, 2] = normal(0, 1)
param U: [n*n, d] = normal(0, 0.5)
param V: [n*n, d] = normal(0, 0.5)
`;
const layer = (retrieve: string, hidden: string, output: string) => `${header}
model f(x: [T, d]) -> [T, d] {
  ${retrieve}
  g = softmax(s)
  h = ${hidden}
  return ${output}
}
`;
const RETRIEVE = [
  '(s, idx) = product_topk(einsum("td,hcd->thc", x, Wq), C1, C2, 4)',
  '(s, idx) = product_topk(einsum("hcd,td->thc", Wq, x), C1, C2, 4)',
];
const HIDDEN = [
  'g * relu(einsum("thkd,td->thk", gather(U, idx), x))',
  'relu(einsum("td,thkd->thk", x, gather(U, idx))) * g',
];
const OUTPUT = [
  'x + einsum("thk,thkd->td", h, gather(V, idx))',
  'einsum("thkd,thk->td", gather(V, idx), h) + x',
];

describe('every spelling of the PEER layer fuses into product_retrieve, expert_act and expert_out', () => {
  for (const r of RETRIEVE)
    for (const h of HIDDEN)
      for (const o of OUTPUT)
        it(`${r.slice(15, 45)} | ${h.slice(0, 20)} | ${o.slice(0, 24)}`, () => {
          const m = compileOk(layer(r, h, o));
          const fused = optimize(m, { lowering: 'fused' });
          const ops = [...fused.functions.values()][0]!.graph.nodes.map((nd) => nd.op);
          expect(ops).toEqual(expect.arrayContaining(['product_retrieve', 'expert_act', 'expert_out']));
          expect(ops).not.toContain('gather');
          expect(unfusedPatterns(fused)).toEqual([]);
          const weights = seededWeights(m, 3), inputs = sampleInputs(m, 2);
          const want = interpret(m, inputs, weights).outputs[0]!.data, got = interpret(fused, inputs, weights).outputs[0]!.data;
          want.forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThan(1e-9 * (1 + Math.abs(v))));
        });
  it('the weights folded into one three-operand einsum with the rows fuse the same way', () => {
    const m = compileOk(layer(RETRIEVE[0]!, 'relu(einsum("thkd,td->thk", gather(U, idx), x))', 'x + einsum("thk,thk,thkd->td", g, h, gather(V, idx))'));
    const ops = [...optimize(m, { lowering: 'fused' }).functions.values()][0]!.graph.nodes.map((nd) => nd.op);
    expect(ops).toEqual(expect.arrayContaining(['product_retrieve', 'expert_act', 'expert_out']));
    expect(ops).not.toContain('gather');
  });
});
