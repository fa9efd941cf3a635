// The unary elementwise ops, each declared once: its float64 meaning (the definition every
// backend is tested against), its derivative, and how each target spells it. Everything else
// derives from this table: the IR ops and their gradients (elementwise.ts), the language's
// builtins, the ops a fused elementwise tree may hold, the activations an expert kernel or a
// retrieval gate may apply, the gpu.js and host-JS kernels (codegen/naive.ts), the PyTorch and
// ONNX exports. Adding one is an entry here plus its line in docs/language.md.
import type { DType } from '../../interp/tensor.js';
import type { GradBuilder, GradValue } from './types.js';

/** d out / d x as IR nodes, from the input x and the output y. */
export type ActivationDerivative = (b: GradBuilder, x: GradValue, y: GradValue) => GradValue;

/** The part of the ONNX exporter's graph builder an activation's spelling uses. */
export interface OnnxSpeller {
  one(op: string, inputs: string[], attrs?: Record<string, unknown>): string;
  scalarF32(v: number): string;
}

/** A scalar function written as a JavaScript expression over `v` (gpu.js kernels and host tasks). */
export type JsSpelling = (v: string) => string;

export interface UnaryDef {
  name: string;
  /** The builtin's one-line description (hover, docs); no builtin where absent (neg is the operator -x, step is backward-only). */
  doc?: string;
  /** An activation: the expert kernels (expert_act) and product-key retrieval may apply it per element. */
  activation: boolean;
  /** The dtypes it accepts (default f32). */
  dtypes?: DType[];
  f64: (x: number) => number;
  /**
   * The derivative: as IR over the ops (x, y), or, where it has no short form in them, as a
   * scalar function of its own (it becomes the backward-only op `NAME_grad`); null where no
   * gradient passes at all (stop_gradient: not a zero gradient, none).
   */
  derivative: ActivationDerivative | { f64: (x: number) => number; js: JsSpelling } | null;
  js: JsSpelling;
  /** A PyTorch expression over the tensor `a` (torch and torch.nn.functional as F). */
  torch: (a: string) => string;
  onnx: (g: OnnxSpeller, a: string) => string;
  /**
   * Activations only: the function and its derivative as Triton expressions over the value `v`
   * (triton.language as tl; `_tanh` is a helper of the generated kernels), for the fused
   * retrieval and expert kernels of `peerc export --torch --kernels triton`.
   */
  triton?: { f: (v: string) => string; df: (v: string) => string };
}

/** erf to float64 accuracy: 2/sqrt(pi) e^{-x^2} sum 2^n x^{2n+1} / (2n+1)!!, terms all positive (no cancellation); 1 beyond |x| = 6. */
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

// erf with |error| < 1.5e-7 (Abramowitz and Stegun 7.1.26): below float32 resolution near 1.
export const ERF_SOURCE: JsSpelling = (v) =>
  `((${v}) >= 0.0 ? 1.0 : -1.0) * (1.0 - (((((1.061405429 * (1.0 / (1.0 + 0.3275911 * Math.abs(${v}))) - 1.453152027) * (1.0 / (1.0 + 0.3275911 * Math.abs(${v}))) + 1.421413741) * (1.0 / (1.0 + 0.3275911 * Math.abs(${v}))) - 0.284496736) * (1.0 / (1.0 + 0.3275911 * Math.abs(${v}))) + 0.254829592) * (1.0 / (1.0 + 0.3275911 * Math.abs(${v})))) * Math.exp(-(${v}) * (${v})))`;

export const sigmoidFn = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
const normalPdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const tanhGeluInner = (x: number) => Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);
const tanhGeluJs: JsSpelling = (v) => `Math.tanh(0.7978845608028654 * ((${v}) + 0.044715 * (${v}) * (${v}) * (${v})))`;

export const UNARY_OPS: readonly UnaryDef[] = [
  {
    name: 'relu', doc: 'max(x, 0)', activation: true,
    // NaN stays NaN, as Math.max, the SIMD max and torch.relu have it.
    f64: (x) => (x > 0 || x !== x ? x : 0),
    derivative: (b, x) => b.op('step', [x]),
    js: (v) => `Math.max(${v}, 0.0)`,
    torch: (a) => `torch.relu(${a})`,
    onnx: (g, a) => g.one('Relu', [a]),
    triton: { f: (v) => `tl.maximum(${v}, 0.0)`, df: (v) => `tl.where(${v} > 0, 1.0, 0.0)` },
  },
  {
    name: 'gelu', doc: 'x * Phi(x) (exact, with erf)', activation: true,
    f64: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
    derivative: {
      f64: (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + x * normalPdf(x),
      js: (v) => `(0.5 * (1.0 + ${ERF_SOURCE(`(${v}) * 0.7071067811865476`)}) + (${v}) * Math.exp(-0.5 * (${v}) * (${v})) * 0.3989422804014327)`,
    },
    js: (v) => `0.5 * (${v}) * (1.0 + ${ERF_SOURCE(`(${v}) * 0.7071067811865476`)})`,
    torch: (a) => `F.gelu(${a})`,
    onnx: (g, a) => g.one('Mul', [g.one('Mul', [a, g.scalarF32(0.5)]), g.one('Add', [g.scalarF32(1), g.one('Erf', [g.one('Mul', [a, g.scalarF32(Math.SQRT1_2)])])])]),
    triton: { f: (v) => `0.5 * ${v} * (1.0 + tl.erf(${v} * 0.7071067811865476))`, df: (v) => `(0.5 * (1.0 + tl.erf(${v} * 0.7071067811865476)) + ${v} * tl.exp(-0.5 * ${v} * ${v}) * 0.3989422804014327)` },
  },
  {
    name: 'gelu_tanh', doc: 'the tanh approximation of gelu', activation: true,
    f64: (x) => 0.5 * x * (1 + Math.tanh(tanhGeluInner(x))),
    derivative: {
      f64: (x) => {
        const t = Math.tanh(tanhGeluInner(x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * Math.sqrt(2 / Math.PI) * (1 + 3 * 0.044715 * x * x);
      },
      js: (v) => `(0.5 * (1.0 + ${tanhGeluJs(v)}) + 0.5 * (${v}) * (1.0 - ${tanhGeluJs(v)} * ${tanhGeluJs(v)}) * 0.7978845608028654 * (1.0 + 0.134145 * (${v}) * (${v})))`,
    },
    js: (v) => `0.5 * (${v}) * (1.0 + ${tanhGeluJs(v)})`,
    torch: (a) => `F.gelu(${a}, approximate="tanh")`,
    onnx: (g, a) => {
      const cube = g.one('Mul', [g.one('Mul', [a, a]), a]);
      const inner = g.one('Mul', [g.scalarF32(0.7978845608028654), g.one('Add', [a, g.one('Mul', [g.scalarF32(0.044715), cube])])]);
      return g.one('Mul', [g.one('Mul', [a, g.scalarF32(0.5)]), g.one('Add', [g.scalarF32(1), g.one('Tanh', [inner])])]);
    },
    triton: {
      f: (v) => `0.5 * ${v} * (1.0 + _tanh(0.7978845608028654 * (${v} + 0.044715 * ${v} * ${v} * ${v})))`,
      df: (v) => `(0.5 * (1.0 + _tanh(0.7978845608028654 * (${v} + 0.044715 * ${v} * ${v} * ${v}))) + 0.5 * ${v} * (1.0 - _tanh(0.7978845608028654 * (${v} + 0.044715 * ${v} * ${v} * ${v})) * _tanh(0.7978845608028654 * (${v} + 0.044715 * ${v} * ${v} * ${v}))) * 0.7978845608028654 * (1.0 + 0.134145 * ${v} * ${v}))`,
    },
  },
  {
    name: 'silu', doc: 'x * sigmoid(x)', activation: true,
    f64: (x) => x * sigmoidFn(x),
    derivative: (b, x) => {
      const s = b.op('sigmoid', [x]);
      return b.op('mul', [s, b.op('add', [b.scalar(1), b.op('mul', [x, b.op('sub', [b.scalar(1), s])])])]);
    },
    js: (v) => `(${v}) / (1.0 + Math.exp(-(${v})))`,
    torch: (a) => `F.silu(${a})`,
    onnx: (g, a) => g.one('Mul', [a, g.one('Sigmoid', [a])]),
    triton: { f: (v) => `${v} * tl.sigmoid(${v})`, df: (v) => `(tl.sigmoid(${v}) * (1.0 + ${v} * (1.0 - tl.sigmoid(${v}))))` },
  },
  {
    name: 'sigmoid', doc: '1 / (1 + exp(-x))', activation: true,
    f64: sigmoidFn,
    derivative: (b, _x, y) => b.op('mul', [y, b.op('sub', [b.scalar(1), y])]),
    js: (v) => `1.0 / (1.0 + Math.exp(-(${v})))`,
    torch: (a) => `torch.sigmoid(${a})`,
    onnx: (g, a) => g.one('Sigmoid', [a]),
    triton: { f: (v) => `tl.sigmoid(${v})`, df: (v) => `(tl.sigmoid(${v}) * (1.0 - tl.sigmoid(${v})))` },
  },
  {
    name: 'tanh', doc: 'hyperbolic tangent', activation: true,
    f64: Math.tanh,
    derivative: (b, _x, y) => b.op('sub', [b.scalar(1), b.op('mul', [y, y])]),
    js: (v) => `Math.tanh(${v})`,
    torch: (a) => `torch.tanh(${a})`,
    onnx: (g, a) => g.one('Tanh', [a]),
    triton: { f: (v) => `_tanh(${v})`, df: (v) => `(1.0 - _tanh(${v}) * _tanh(${v}))` },
  },
  {
    name: 'abs', doc: '|x|', activation: true,
    f64: Math.abs,
    derivative: (b, x) => b.op('sub', [b.op('step', [x]), b.op('step', [b.op('neg', [x])])]),
    js: (v) => `Math.abs(${v})`,
    torch: (a) => `torch.abs(${a})`,
    onnx: (g, a) => g.one('Abs', [a]),
    triton: { f: (v) => `tl.abs(${v})`, df: (v) => `(tl.where(${v} > 0, 1.0, 0.0) - tl.where(${v} < 0, 1.0, 0.0))` },
  },
  {
    // log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|), as PyTorch computes it.
    name: 'softplus', doc: 'log(1 + exp(x)), a smooth relu', activation: true,
    f64: (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))),
    derivative: (b, x) => b.op('sigmoid', [x]),
    js: (v) => `(Math.max(${v}, 0.0) + Math.log(1.0 + Math.exp(-Math.abs(${v}))))`,
    torch: (a) => `F.softplus(${a})`,
    onnx: (g, a) => g.one('Softplus', [a]),
    triton: { f: (v) => `(tl.maximum(${v}, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(${v}))))`, df: (v) => `tl.sigmoid(${v})` },
  },
  {
    name: 'neg', activation: false, dtypes: ['f32', 'index'],
    f64: (x) => -x,
    derivative: (b) => b.scalar(-1),
    js: (v) => `-(${v})`,
    torch: (a) => `(-${a})`,
    onnx: (g, a) => g.one('Neg', [a]),
  },
  {
    name: 'exp', doc: 'e^x', activation: false,
    f64: Math.exp,
    derivative: (_b, _x, y) => y,
    js: (v) => `Math.exp(${v})`,
    torch: (a) => `torch.exp(${a})`,
    onnx: (g, a) => g.one('Exp', [a]),
  },
  {
    name: 'log', doc: 'natural logarithm', activation: false,
    f64: Math.log,
    derivative: (b, x) => b.op('div', [b.scalar(1), x]),
    js: (v) => `Math.log(${v})`,
    torch: (a) => `torch.log(${a})`,
    onnx: (g, a) => g.one('Log', [a]),
  },
  {
    // Kahan's form for kernels: with u = 1 + x rounded, log(u) * x / (u - 1) keeps the digits of a small x.
    name: 'log1p', doc: 'log(1 + x), accurate where x is small', activation: false,
    f64: Math.log1p,
    derivative: (b, x) => b.op('div', [b.scalar(1), b.op('add', [b.scalar(1), x])]),
    js: (v) => `((1.0 + (${v})) == 1.0 ? (${v}) : Math.log(1.0 + (${v})) * (${v}) / ((1.0 + (${v})) - 1.0))`,
    torch: (a) => `torch.log1p(${a})`,
    onnx: (g, a) => g.one('Log', [g.one('Add', [g.scalarF32(1), a])]),
  },
  {
    // The builtin sqrt is declared in builtins.ts: a constant's square root is exact at compile time.
    name: 'sqrt', activation: false,
    f64: Math.sqrt,
    derivative: (b, _x, y) => b.op('div', [b.scalar(0.5), y]),
    js: (v) => `Math.sqrt(${v})`,
    torch: (a) => `torch.sqrt(${a})`,
    onnx: (g, a) => g.one('Sqrt', [a]),
  },
  {
    // Frozen keys, straight-through estimators, targets and auxiliary losses that must not train
    // what they read. Like PyTorch's detach: a parameter reached only through it gets no gradient
    // (and no optimizer update, weight decay included), not a zero one.
    name: 'stop_gradient', doc: 'x itself, through which no gradient flows (detach)', activation: false,
    f64: (x) => x,
    derivative: null,
    js: (v) => `(${v})`,
    torch: (a) => `${a}.detach()`,
    onnx: (g, a) => g.one('Identity', [a]),
  },
  {
    // 1 where x > 0, else 0: the derivative of relu (0 at 0, as PyTorch).
    name: 'step', activation: false,
    f64: (x) => (x > 0 ? 1 : 0),
    derivative: (b) => b.scalar(0),
    js: (v) => `((${v}) > 0.0 ? 1.0 : 0.0)`,
    torch: (a) => `(${a} > 0).to(${a}.dtype)`,
    onnx: (g, a) => g.one('Cast', [g.one('Greater', [a, g.scalarF32(0)])], { to: { i: 1 /* TensorProto.FLOAT */ } }),
  },
];

/** The backward-only op that holds an activation's derivative, where it has one. */
export const derivativeOpName = (a: UnaryDef): string | undefined => (a.derivative === null || typeof a.derivative === 'function' ? undefined : `${a.name}_grad`);

/** The activations: what an expert kernel (expert_act) or a retrieval gate may apply per element. */
export const ACTIVATIONS: readonly UnaryDef[] = UNARY_OPS.filter((u) => u.activation);

/** The activations an expert kernel may apply, 'none' first. */
export const EXPERT_ACTIVATIONS: readonly string[] = ['none', ...ACTIVATIONS.map((a) => a.name)];

/** Every scalar function of the table as JavaScript, derivatives included, by op name. */
export const UNARY_JS: Readonly<Record<string, JsSpelling>> = Object.fromEntries(
  UNARY_OPS.flatMap((a) => {
    const d = derivativeOpName(a);
    return [[a.name, a.js], ...(d ? [[d, (a.derivative as { js: JsSpelling }).js]] : [])];
  }),
);

/**
 * A product-key retrieval's gate over its k selected scores: 'softmax' (normalised over the k),
 * 'none' (the raw scores), or any activation of the table applied to each score, so a new
 * activation is a new gate too, on every target.
 */
export type Gate = string;
export const GATES: readonly Gate[] = ['none', 'softmax', ...ACTIVATIONS.map((a) => a.name)];

/** The activation an elementwise gate applies (undefined for 'none' and 'softmax'). */
export const gateActivation = (gate: Gate): UnaryDef | undefined => ACTIVATIONS.find((a) => a.name === gate);

/** An elementwise gate's JavaScript over the score `v` ('none': v itself); softmax is each target's own (it needs the sum). */
export function elementwiseGateJs(gate: Gate, v: string): string {
  return gate === 'none' ? v : gateActivation(gate)!.js(v);
}
