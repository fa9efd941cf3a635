// Elementwise ops: broadcasting binary arithmetic and unary activations.
import { Dim } from '../../shapes/dim.js';
import { fail } from '../../diagnostics/diagnostic.js';
import { Tensor, strides, type DType } from '../../interp/tensor.js';
import { broadcastShapes, dtypeName, requireDtype } from './shape-rules.js';
import { defineOp, type GradBuilder, type GradRule, type GradValue, type OpDef, type TensorType } from './types.js';

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
        fail('PEER0300', null, { what, expected: `operands of one dtype`, found: `${dtypeName(a!.dtype)} and ${dtypeName(b!.dtype)}` });
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

// erf to float64 accuracy: erf(x) = 2/sqrt(pi) e^{-x^2} sum 2^n x^{2n+1} / (2n+1)!!, a series of
// positive terms (no cancellation); beyond |x| = 6 erf is 1 to double precision.
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 200; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

const sigmoidFn = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

/** d out / d x as nodes, from the input and the output. */
type UnaryDerivative = (b: GradBuilder, x: GradValue, y: GradValue) => GradValue;

/** The scalar function of every unary elementwise op, for fused ops that apply one per element. */
export const UNARY_FUNCTIONS = new Map<string, (x: number) => number>();

function unary(name: string, fn: (x: number) => number, derivative?: UnaryDerivative, dtypes: DType[] = ['f32']): OpDef {
  UNARY_FUNCTIONS.set(name, fn);
  const grad: GradRule | undefined = derivative && ((b, node, [g]) => {
    const x = node.inputs[0]!;
    if (!g || b.type(x).dtype !== 'f32') return [undefined];
    return [b.op('mul', [g, derivative(b, x, node.outputs[0]!)])];
  });
  return defineOp({
    name,
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

const normalPdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const tanhGeluInner = (x: number) => Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);

export const neg = unary('neg', (x) => -x, (b) => b.scalar(-1), ['f32', 'index']);
export const relu = unary('relu', (x) => (x > 0 ? x : 0), (b, x) => b.op('step', [x]));
export const gelu = unary('gelu', (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), (b, x) => b.op('gelu_grad', [x]));
export const gelu_tanh = unary('gelu_tanh', (x) => 0.5 * x * (1 + Math.tanh(tanhGeluInner(x))), (b, x) => b.op('gelu_tanh_grad', [x]));
export const silu = unary('silu', (x) => x * sigmoidFn(x), (b, x) => {
  const s = b.op('sigmoid', [x]);
  return b.op('mul', [s, b.op('add', [b.scalar(1), b.op('mul', [x, b.op('sub', [b.scalar(1), s])])])]);
});
export const sigmoid = unary('sigmoid', sigmoidFn, (b, _x, y) => b.op('mul', [y, b.op('sub', [b.scalar(1), y])]));
export const tanh = unary('tanh', Math.tanh, (b, _x, y) => b.op('sub', [b.scalar(1), b.op('mul', [y, y])]));
export const exp = unary('exp', Math.exp, (_b, _x, y) => y);
export const log = unary('log', Math.log, (b, x) => b.op('div', [b.scalar(1), x]));
export const sqrt = unary('sqrt', Math.sqrt, (b, _x, y) => b.op('div', [b.scalar(0.5), y]));
export const abs = unary('abs', Math.abs, (b, x) => b.op('sub', [b.op('step', [x]), b.op('step', [b.op('neg', [x])])]));

// Derivatives that have no closed form in the ops above; used only by gradients.
/** 1 where x > 0, else 0 (the derivative of relu; 0 at 0, as PyTorch). */
export const step = unary('step', (x) => (x > 0 ? 1 : 0), (b) => b.scalar(0));
export const gelu_grad = unary('gelu_grad', (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + x * normalPdf(x));
export const gelu_tanh_grad = unary('gelu_tanh_grad', (x) => {
  const t = Math.tanh(tanhGeluInner(x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * Math.sqrt(2 / Math.PI) * (1 + 3 * 0.044715 * x * x);
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
});
