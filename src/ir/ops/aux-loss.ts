// Auxiliary losses (a mixture of experts' load-balancing loss, a z-loss): aux_loss(x, l, weight)
// is x itself wherever the program runs; in training, weight * l is added to the objective the
// gradients are taken of (src/autodiff/differentiate.ts). Kernels never see it: the executor
// reads it as a view of x.
import { fail } from '../../diagnostics/diagnostic.js';
import { shapeToString } from '../../shapes/dim.js';
import { requireDtype } from './shape-rules.js';
import { defineOp } from './types.js';

export const aux_loss = defineOp({
  name: 'aux_loss',
  inputs: ['x', 'loss'],
  attrs: { weight: 'float' },
  infer([x, l]) {
    requireDtype(l!, 'f32', "'aux_loss' loss");
    if (l!.shape.length !== 0) fail('PEER0303', null, { what: "aux_loss's loss", expected: 'a scalar []', found: shapeToString(l!.shape), detail: ' (reduce it, e.g. with sum or mean)' });
    return [x!];
  },
  evaluate: ([x]) => [x!],
  // The loss input gets its gradient from the objective, not through x.
  grad: (_b, _n, [dy]) => [dy, undefined],
});
