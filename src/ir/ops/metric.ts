// Figures a program reports while training (the share of slots an expert capacity drops, a
// router's entropy): metric(x, value){name} is x itself wherever the program runs; in training,
// the scalar value is an output of the step (TrainLayout.metrics) that peerc train logs under
// its name. It is not part of the objective and takes no gradient. Kernels never see it: the
// executor reads it as a view of x.
import { fail } from '../../diagnostics/diagnostic.js';
import { shapeToString } from '../../shapes/dim.js';
import { requireDtype } from './shape-rules.js';
import { defineOp } from './types.js';

export const metric = defineOp({
  name: 'metric',
  inputs: ['x', 'value'],
  attrs: { name: 'string' },
  infer([x, v]) {
    requireDtype(v!, 'f32', "'metric' value");
    if (v!.shape.length !== 0) fail('PEER0303', null, { what: "metric's value", expected: 'a scalar []', found: shapeToString(v!.shape), detail: ' (reduce it, e.g. with mean)' });
    return [x!];
  },
  evaluate: ([x]) => [x!],
  grad: (_b, _n, [dy]) => [dy, undefined],
});
