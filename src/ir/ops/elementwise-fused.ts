// A tree of elementwise ops as one op: what the `fuse-elementwise` rule makes of the chains of
// small ops a backward pass is full of. Its meaning is the composition of the ops it holds
// (each evaluated by its own declaration, broadcasting as it does), so nothing is redefined.
import { Tensor } from '../../interp/tensor.js';
import { shapeToString, type Dim } from '../../shapes/dim.js';
import { fail } from '../../diagnostics/diagnostic.js';
import { broadcastShapes } from './shape-rules.js';
import { defineOp, type EvalContext, type OpDef } from './types.js';
import { UNARY_OPS, derivativeOpName } from './unary.js';

/** An expression node: an op over sub-expressions, an operand of the fused op, or a constant. */
export type ElementwiseExpr = { op: string; args: ElementwiseExpr[] } | { input: number } | { value: number };

export const ELEMENTWISE_OPS = new Set([
  'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum',
  ...UNARY_OPS.flatMap((a) => [a.name, derivativeOpName(a) ?? []].flat()),
  'broadcast_to',
]);

/** Set by the registry (which imports this file) so evaluation can use each op's own semantics. */
let lookup: (name: string) => OpDef = () => {
  throw new Error('op registry not initialised');
};
export function setElementwiseLookup(f: (name: string) => OpDef): void {
  lookup = f;
}

export const elementwise_fused = defineOp({
  name: 'elementwise_fused',
  stage: 'backward',
  inputs: ['operands...'],
  attrs: { expr: 'string', shape: 'dims' },
  infer(ins, attrs) {
    const shape = attrs.shape as readonly Dim[];
    for (const t of ins) {
      if (t.dtype !== 'f32') fail('PEER0300', null, { what: "'elementwise_fused'", expected: 'f32 operands', found: shapeToString(t.shape) });
      broadcastShapes(t.shape, shape, 'elementwise_fused');
    }
    return [{ dtype: 'f32', shape }];
  },
  evaluate(ins, attrs, ctx: EvalContext) {
    // broadcast_to is kept implicit: broadcasting composes, and the result is broadcast to `shape` at the end.
    const run = (e: ElementwiseExpr): Tensor => {
      if ('input' in e) return ins[e.input]!;
      if ('value' in e) return Tensor.scalar(e.value);
      if (e.op === 'broadcast_to') return run(e.args[0]!);
      return lookup(e.op).evaluate!(e.args.map(run), {}, ctx)[0]!;
    };
    const out = run(JSON.parse(attrs.expr as string) as ElementwiseExpr);
    const shape = (attrs.shape as readonly Dim[]).map((d) => ctx.dimValue(d));
    if (out.shape.join() === shape.join()) return [out];
    return lookup('broadcast_to').evaluate!([out], { shape: attrs.shape as readonly Dim[] }, ctx);
  },
});
