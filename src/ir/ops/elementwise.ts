// Elementwise ops: broadcasting binary arithmetic and unary activations.
import { Dim } from '../../shapes/dim.js';
import { fail } from '../../diagnostics/diagnostic.js';
import { Tensor, strides, type DType } from '../../interp/tensor.js';
import { broadcastShapes, dtypeName, MIXED_DTYPE_NOTE, requireDtype } from './shape-rules.js';
import { defineOp, type GradBuilder, type GradRule, type GradValue, type OpDef, type TensorType } from './types.js';
import { UNARY_OPS, derivativeOpName, type ActivationDerivative } from './unary.js';

function broadcastConcrete(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`runtime broadcast of [${a}] and [${b}]`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Maps each flat index of `out` to the flat index of a (broadcast) input. */
export function broadcastIndex(inShape: readonly number[], outShape: readonly number[]): (flat: number) => number {
  const n = outShape.length;
  const inStrides = strides(inShape);
  const eff = outShape.map((d, i) => {
    const j = i - (n - inShape.length);
    return j < 0 || inShape[j] === 1 ? 0 : inStrides[j]!;
  });
  const outStrides = strides(outShape);
  return (flat) => {
    let r = 0;
    for (let i = 0; i < n; i++) {
      const c = Math.floor(flat / outStrides[i]!) % outShape[i]!;
      r += c * eff[i]!;
    }
    return r;
  };
}

function binaryEval(fn: (x: number, y: number) => number) {
  return ([a, b]: readonly Tensor[]): Tensor[] => {
    const shape = broadcastConcrete(a!.shape, b!.shape);
    const out = Tensor.zeros(a!.dtype, shape);
    const ia = broadcastIndex(a!.shape, shape);
    const ib = broadcastIndex(b!.shape, shape);
    const ad = a!.data, bd = b!.data, od = out.data;
    for (let i = 0; i < out.size; i++) od[i] = fn(ad[ia(i)]!, bd[ib(i)]!);
    return [out];
  };
}

type BoundRule = (a: Dim | undefined, b: Dim | undefined) => Dim | undefined;
const one = Dim.of(1);

/** How a user writes a binary op: messages name the operator, never the IR op (`floordiv` is `/` on indices). */
const WRITTEN: Readonly<Record<string, string>> = { add: '+', sub: '-', mul: '*', div: '/', floordiv: '/', mod: '%', pow: '^' };

function binary(name: string, dtypes: DType[], fn: (x: number, y: number) => number, bound?: BoundRule, grad?: BinaryGrad): OpDef {
  const what = WRITTEN[name] ? `the operator '${WRITTEN[name]}'` : `'${name}'`;
  return defineOp({
    name,
    inputs: ['lhs', 'rhs'],
    attrs: {},
    infer([a, b]) {
      if (a!.dtype !== b!.dtype)
        fail('PEER0300', null, { what, expected: `operands of one dtype`, found: `${dtypeName(a!.dtype)} and ${dtypeName(b!.dtype)}` }, [MIXED_DTYPE_NOTE]);
      if (!dtypes.includes(a!.dtype))
        fail('PEER0300', null, { what, expected: dtypes.map(dtypeName).join(' or '), found: dtypeName(a!.dtype) });
      const shape = broadcastShapes(a!.shape, b!.shape, name);
      const t: TensorType = { dtype: a!.dtype, shape };
      if (a!.dtype === 'index' && bound) {
        const bd = bound(a!.bound, b!.bound);
        if (bd) t.bound = bd;
      }
      return [t];
    },
    evaluate: binaryEval(fn),
    grad: grad && ((b, node, [g]) => {
      const [x, y] = node.inputs as [GradValue, GradValue];
      if (!g || b.type(x).dtype !== 'f32') return [undefined, undefined];
      const [gx, gy] = grad(b, x, y, node.outputs[0]!, g);
      return [gx && b.unbroadcast(gx, b.type(x).shape), gy && b.unbroadcast(gy, b.type(y).shape)];
    }),
  });
}

/** Gradients of a binary op before un-broadcasting: (builder, x, y, out, dout) -> (dx, dy). */
type BinaryGrad = (b: GradBuilder, x: GradValue, y: GradValue, out: GradValue, g: GradValue) => [GradValue | undefined, GradValue | undefined];

const both = (f: (a: Dim, b: Dim) => Dim): BoundRule => (a, b) => (a && b ? f(a, b) : undefined);

export const add = binary('add', ['f32', 'index'], (x, y) => x + y, both((a, b) => a.add(b).sub(one)), (_b, _x, _y, _o, g) => [g, g]);
export const sub = binary('sub', ['f32', 'index'], (x, y) => x - y, undefined, (b, _x, _y, _o, g) => [g, b.op('neg', [g])]);
export const mul = binary('mul', ['f32', 'index'], (x, y) => x * y, both((a, b) => a.sub(one).mul(b.sub(one)).add(one)), (b, x, y, _o, g) => [b.op('mul', [g, y]), b.op('mul', [g, x])]);
export const div = binary('div', ['f32'], (x, y) => x / y, undefined, (b, _x, y, o, g) => [b.op('div', [g, y]), b.op('neg', [b.op('div', [b.op('mul', [g, o]), y])])]);
export const pow = binary('pow', ['f32'], (x, y) => Math.pow(x, y), undefined, (b, x, y, o, g) => [
  b.op('mul', [b.op('mul', [g, y]), b.op('pow', [x, b.op('sub', [y, b.scalar(1)])])]),
  b.op('mul', [b.op('mul', [g, o]), b.op('log', [x])]),
]);
// The gradient goes to the larger (smaller) operand; at a tie, to the second.
const pick = (b: GradBuilder, first: GradValue, second: GradValue, g: GradValue): [GradValue, GradValue] => {
  const s = b.op('step', [b.op('sub', [first, second])]);
  return [b.op('mul', [g, s]), b.op('mul', [g, b.op('sub', [b.scalar(1), s])])];
};
export const maximum = binary('maximum', ['f32'], (x, y) => Math.max(x, y), undefined, (b, x, y, _o, g) => pick(b, x, y, g));
export const minimum = binary('minimum', ['f32'], (x, y) => Math.min(x, y), undefined, (b, x, y, _o, g) => pick(b, y, x, g));
// Index values are non-negative; dividing by a positive divisor never raises the bound.
export const floordiv = binary('floordiv', ['index'], (x, y) => Math.floor(x / y), (a) => a);
export const mod = binary('mod', ['index'], (x, y) => ((x % y) + y) % y, (_a, b) => b?.sub(one));

export { erf } from './unary.js';

/** d out / d x as nodes, from the input and the output. */
type UnaryDerivative = ActivationDerivative;

/** The scalar function of every unary elementwise op, for fused ops that apply one per element. */
export const UNARY_FUNCTIONS = new Map<string, (x: number) => number>();

function unary(name: string, fn: (x: number) => number, derivative?: UnaryDerivative | null, dtypes: DType[] = ['f32'], stage?: 'backward'): OpDef {
  UNARY_FUNCTIONS.set(name, fn);
  const grad: GradRule | undefined = derivative === null ? () => [undefined] : derivative && ((b, node, [g]) => {
    const x = node.inputs[0]!;
    if (!g || b.type(x).dtype !== 'f32') return [undefined];
    return [b.op('mul', [g, derivative(b, x, node.outputs[0]!)])];
  });
  return defineOp({
    name,
    ...(stage ? { stage } : {}),
    ...(derivative === null ? { stopsGradient: true } : {}),
    inputs: ['x'],
    attrs: {},
    infer([x]) {
      if (!dtypes.includes(x!.dtype)) requireDtype(x!, dtypes[0]!, `'${name}'`);
      return [{ dtype: x!.dtype, shape: x!.shape }];
    },
    evaluate([x]) {
      const out = Tensor.zeros(x!.dtype, x!.shape);
      const xd = x!.data, od = out.data;
      for (let i = 0; i < out.size; i++) od[i] = fn(xd[i]!);
      return [out];
    },
    grad,
  });
}

/** The unary table's ops (unary.ts), with the backward-only ops of derivatives that need one. */
export const UNARY_OP_DEFS: readonly OpDef[] = UNARY_OPS.flatMap((a) => {
  const d = derivativeOpName(a);
  if (a.derivative === null || typeof a.derivative === 'function') return [unary(a.name, a.f64, a.derivative, a.dtypes)];
  return [unary(a.name, a.f64, (b, x) => b.op(d!, [x]), a.dtypes), unary(d!, a.derivative.f64, undefined, ['f32'], 'backward')];
});

export const to_f32 = defineOp({
  name: 'to_f32',
  inputs: ['x'],
  attrs: {},
  infer([x]) {
    requireDtype(x!, 'index', "'to_f32'");
    return [{ dtype: 'f32', shape: x!.shape }];
  },
  evaluate([x]) {
    return [new Tensor('f32', x!.shape, Float64Array.from(x!.data))];
  },
  // Index values are piecewise constant in the parameters: no gradient, declared (a loss may use float(i)).
  grad: () => [undefined],
});
