// Builtin functions of the language: each names its arguments (with defaults) and lowers to
// primitive IR ops. Everything else (peer, pkm, product_topk, ...) is written in the prelude.
import type { Span } from '../../grammar/ast.js';
import { fail } from '../diagnostics/diagnostic.js';
import type { Attrs } from '../ir/ops/types.js';
import { Dim } from '../shapes/dim.js';
import { constSqrt } from './consts.js';
import { asDim, asInt, asNumber, asString, asTensor, type Value } from './values.js';
import { UNARY_OPS } from '../ir/ops/unary.js';

export type TensorValue = Extract<Value, { kind: 'tensor' }>;

export interface Lowering {
  /** Emits a primitive op; shape errors are located at `span`. */
  op(name: string, inputs: TensorValue[], attrs: Attrs, span: Span): TensorValue[];
  /** A tensor, or a constant number made a scalar tensor of `dtype` (as in `x * 2.0`). */
  operand(v: Value, dtype: 'f32' | 'index', span: Span): TensorValue;
  /** A number unique to this call site and layer instance (noise ops draw independently). */
  salt(): number;
}

export class Args {
  constructor(
    readonly callee: string,
    readonly values: (Value | undefined)[],
    readonly spans: Span[],
    readonly texts: string[],
    readonly span: Span,
    readonly names: string[],
  ) {}
  private at(i: number): Value {
    return this.values[i]!;
  }
  /** Arguments i..: tensors or constant numbers, constants taking the dtype of the first tensor. */
  operands(l: Lowering, ...is: number[]): TensorValue[] {
    const first = is.map((i) => this.at(i)).find((v): v is TensorValue => v.kind === 'tensor');
    if (!first) return fail('PEER0204', this.spans[is[0]!]!, { what: `the arguments of ${this.callee}`, expected: 'at least one tensor', found: 'only constants' });
    return is.map((i) => l.operand(this.at(i), first.type.dtype, this.spans[i]!));
  }
  tensor(i: number): TensorValue {
    return asTensor(this.at(i), `argument '${this.names[i]}' of ${this.callee}`, this.spans[i]!);
  }
  int(i: number): number {
    return asInt(this.at(i), `argument '${this.names[i]}' of ${this.callee}`, this.spans[i]!, this.texts[i]!);
  }
  dim(i: number): Dim {
    const d = asDim(this.at(i), `argument '${this.names[i]}' of ${this.callee}`, this.spans[i]!, this.texts[i]!);
    if (d.value !== undefined && d.value < 1) fail('PEER0404', this.spans[i]!, { expr: this.texts[i]!, value: d.value });
    return d;
  }
  num(i: number): number {
    return asNumber(this.at(i), `argument '${this.names[i]}' of ${this.callee}`, this.spans[i]!);
  }
  str(i: number): string {
    return asString(this.at(i), `argument '${this.names[i]}' of ${this.callee}`, this.spans[i]!);
  }
  dims(i: number): Dim[] {
    const v = this.at(i);
    if (v.kind !== 'list') return fail('PEER0204', this.spans[i]!, { what: `argument '${this.names[i]}' of ${this.callee}`, expected: 'a list of dimensions like [T, h*k]', found: v.kind });
    return v.items.map((it) => asDim(it, `a dimension of ${this.callee}`, this.spans[i]!, this.texts[i]!));
  }
  rest(from: number): TensorValue[] {
    return this.values.slice(from).map((_, j) => this.tensor(from + j));
  }
}

export interface Builtin {
  /** Argument names; `name=default` for optional ones; a final '...' makes it variadic. */
  params: string[];
  defaults?: Record<string, Value>;
  doc: string;
  lower(a: Args, l: Lowering): Value[];
}

const num = (value: number): Value => ({ kind: 'float', value });
const integer = (n: number): Value => ({ kind: 'int', dim: Dim.of(n) });

function unaryOp(op: string, doc: string): Builtin {
  return { params: ['x'], doc, lower: (a, l) => l.op(op, [a.tensor(0)], {}, a.span) };
}

function comparison(op: string, what: string): Builtin {
  return { params: ['a', 'b'], doc: `${op}(a, b): 1.0 where ${what}, else 0.0 (a mask; either may be a constant)`, lower: (a, l) => l.op(op, a.operands(l, 0, 1), {}, a.span) };
}

function reduction(op: string, doc: string): Builtin {
  return { params: ['x', 'axis'], defaults: { axis: integer(-1) }, doc, lower: (a, l) => l.op(op, [a.tensor(0)], { axis: axisOf(a, 1, a.tensor(0).type.shape.length) }, a.span) };
}

function axisOf(a: Args, i: number, rank: number): number {
  const axis = a.int(i);
  const n = axis < 0 ? axis + rank : axis;
  if (n < 0 || n >= rank) fail('PEER0305', a.spans[i]!, { axis, rank });
  return n;
}

const letters = 'abcdefghijklmnopqrstuvwxyz';

/** The names peerc train's log lines already use: a program's metric cannot take them. */
const RESERVED_METRICS = new Set(['step', 'split', 'loss', 'aux_loss', 'lr', 'grad_norm', 'clipped', 'ms', 'tokens_per_s', 'bits_per_byte', 'accuracy', 'time']);

export const BUILTINS: Record<string, Builtin> = {
  iota: {
    params: ['n'],
    doc: 'iota(n): the index tensor [0, 1, ..., n-1]',
    lower: (a, l) => l.op('iota', [], { n: [a.dim(0)] }, a.span),
  },
  causal_mask: {
    params: ['n'],
    doc: 'causal_mask(S) [S, S]: 0 on and below the diagonal, -1e9 above; add it to attention scores',
    lower: (a, l) => l.op('causal_mask', [], { n: [a.dim(0)] }, a.span),
  },
  einsum: {
    params: ['spec', 'operands...'],
    doc: 'einsum("td,hkd->thk", x, W): sums over letters missing from the output',
    lower: (a, l) => l.op('einsum', a.rest(1), { spec: a.str(0) }, a.span),
  },
  matmul: {
    params: ['a', 'b'],
    doc: 'matmul(a [..., m, n], b [n, p]) -> [..., m, p]',
    lower(a, l) {
      const x = a.tensor(0), w = a.tensor(1);
      const r = x.type.shape.length;
      if (r < 1 || w.type.shape.length !== 2)
        fail('PEER0303', a.span, { what: 'matmul', expected: 'a [..., n] and b [n, p]', found: `ranks ${r} and ${w.type.shape.length}`, detail: '' });
      const lead = letters.slice(0, r - 1);
      return l.op('einsum', [x, w], { spec: `${lead}y,yz->${lead}z` }, a.span);
    },
  },
  transpose: {
    params: ['x'],
    doc: 'transpose(x): swaps the last two axes',
    lower(a, l) {
      const x = a.tensor(0);
      const r = x.type.shape.length;
      if (r < 2) fail('PEER0305', a.span, { axis: -2, rank: r });
      const s = letters.slice(0, r);
      return l.op('einsum', [x], { spec: `${s}->${s.slice(0, r - 2)}${s[r - 1]}${s[r - 2]}` }, a.span);
    },
  },
  ...Object.fromEntries(UNARY_OPS.filter((u) => u.doc).map((u) => [u.name, unaryOp(u.name, u.doc!)])),
  float: unaryOp('to_f32', 'float(idx): index tensor to f32'),
  sqrt: {
    params: ['x'],
    doc: 'square root of a tensor, or of a constant (exact for perfect squares)',
    lower(a, l) {
      const v = a.values[0]!;
      if (v.kind === 'int' || v.kind === 'float') return [constSqrt(v, a.texts[0]!, a.span)];
      return l.op('sqrt', [a.tensor(0)], {}, a.span);
    },
  },
  maximum: { params: ['a', 'b'], doc: 'elementwise maximum; either may be a constant', lower: (a, l) => l.op('maximum', a.operands(l, 0, 1), {}, a.span) },
  minimum: { params: ['a', 'b'], doc: 'elementwise minimum; either may be a constant', lower: (a, l) => l.op('minimum', a.operands(l, 0, 1), {}, a.span) },
  clamp: {
    params: ['x', 'low', 'high'],
    doc: 'clamp(x, low, high) = minimum(maximum(x, low), high); the bounds may be constants',
    lower(a, l) {
      const [x, lo, hi] = a.operands(l, 0, 1, 2) as [TensorValue, TensorValue, TensorValue];
      return l.op('minimum', [l.op('maximum', [x, lo], {}, a.span)[0]!, hi], {}, a.span);
    },
  },
  greater: comparison('greater', 'a > b'),
  greater_equal: comparison('greater_equal', 'a >= b'),
  less: comparison('less', 'a < b'),
  less_equal: comparison('less_equal', 'a <= b'),
  equal: comparison('equal', 'a == b'),
  where: {
    params: ['cond', 'a', 'b'],
    doc: 'where(cond, a, b): a where the mask cond is non-zero, else b (broadcast; a or b may be a constant); the gradient flows to the branch taken',
    lower(a, l) {
      const [x, y] = a.operands(l, 1, 2) as [TensorValue, TensorValue];
      return l.op('select', [a.tensor(0), x, y], {}, a.span);
    },
  },
  cumsum: {
    params: ['x', 'axis', 'reverse'], defaults: { axis: integer(-1), reverse: integer(0) },
    doc: 'cumsum(x, axis=-1, reverse=0): running sums along an axis (from the end when reverse is 1)',
    lower: (a, l) => l.op('cumsum', [a.tensor(0)], { axis: axisOf(a, 1, a.tensor(0).type.shape.length), reverse: a.int(2) !== 0 }, a.span),
  },
  concat: {
    params: ['a', 'b', 'axis'], defaults: { axis: integer(-1) },
    doc: 'concat(a, b, axis=-1): a then b along an axis of known length',
    lower: (a, l) => l.op('concat', [a.tensor(0), a.tensor(1)], { axis: axisOf(a, 2, a.tensor(0).type.shape.length) }, a.span),
  },
  dropout: {
    params: ['x', 'p'],
    doc: 'dropout(x, p): while training, zeroes each element with probability p and scales the rest by 1/(1-p); the identity in evaluation. Seeded: a function of the run seed, the step and the element, so --resume is bit-identical',
    lower(a, l) {
      const p = a.num(1);
      if (!(p >= 0 && p < 1)) fail('PEER0407', a.spans[1]!, { detail: `dropout probability must be in [0, 1), not ${p}` });
      return l.op('dropout', [a.tensor(0)], { p, salt: l.salt() }, a.span);
    },
  },
  aux_loss: {
    params: ['x', 'loss', 'weight'], defaults: { weight: num(1) },
    doc: 'aux_loss(x, loss, weight=1): x itself; in training, weight * loss (a scalar) is added to the objective (a load-balancing loss, say). Evaluation and inference ignore it',
    lower(a, l) {
      const weight = a.num(2);
      if (!(weight >= 0 && Number.isFinite(weight))) fail('PEER0407', a.spans[2]!, { detail: `aux_loss weight must be a finite number >= 0, not ${weight}` });
      return l.op('aux_loss', [a.tensor(0), a.tensor(1)], { weight }, a.span);
    },
  },
  metric: {
    params: ['x', 'value', 'name'],
    doc: 'metric(x, value, "name"): x itself; in training, the scalar value is logged under name with every step (peerc train, metrics.jsonl); calls that share a name are averaged. Not part of the objective',
    lower(a, l) {
      const name = a.str(2);
      if (!/^[a-z][a-z0-9_]*$/.test(name) || RESERVED_METRICS.has(name))
        fail('PEER0407', a.spans[2]!, { detail: `a metric's name is lower-case letters, digits and _ (starting with a letter), and none of ${[...RESERVED_METRICS].join(', ')}; not ${JSON.stringify(name)}` });
      return l.op('metric', [a.tensor(0), a.tensor(1)], { name }, a.span);
    },
  },
  gumbel: {
    params: ['x', 'scale'], defaults: { scale: num(1) },
    doc: 'gumbel(x, scale=1): while training, adds scale * Gumbel(0, 1) noise (exploration on router scores); the identity in evaluation. Seeded like dropout',
    lower: (a, l) => l.op('gumbel', [a.tensor(0)], { scale: a.num(1), salt: l.salt() }, a.span),
  },
  sort: {
    params: ['x'],
    doc: '(values, indices) = sort(x): the last axis in descending order (ties: lower index first), i.e. topk over the whole axis',
    lower(a, l) {
      const x = a.tensor(0);
      const n = x.type.shape[x.type.shape.length - 1];
      if (n?.value === undefined) fail('PEER0308', a.span, { detail: `sort needs the last axis to have a known length, not ${n ?? 'none (a scalar)'}` });
      return l.op('topk', [x], { k: n.value }, a.span);
    },
  },
  sum: reduction('reduce_sum', 'sum(x, axis=-1)'),
  mean: reduction('reduce_mean', 'mean(x, axis=-1)'),
  max: reduction('reduce_max', 'max(x, axis=-1)'),
  min: reduction('reduce_min', 'min(x, axis=-1)'),
  softmax: {
    params: ['x', 'axis'], defaults: { axis: integer(-1) }, doc: 'softmax(x, axis=-1)',
    lower: (a, l) => l.op('softmax', [a.tensor(0)], { axis: axisOf(a, 1, a.tensor(0).type.shape.length) }, a.span),
  },
  log_softmax: {
    params: ['x', 'axis'], defaults: { axis: integer(-1) }, doc: 'log_softmax(x, axis=-1)',
    lower: (a, l) => l.op('log_softmax', [a.tensor(0)], { axis: axisOf(a, 1, a.tensor(0).type.shape.length) }, a.span),
  },
  topk: {
    params: ['x', 'k'],
    doc: '(values, indices) = topk(x, k): the k largest along the last axis, largest first, lower index first on ties',
    lower: (a, l) => l.op('topk', [a.tensor(0)], { k: a.int(1) }, a.span),
  },
  gather: {
    params: ['table', 'indices'],
    doc: 'gather(table [R, ...], idx [...I]) -> [...I, ...]: rows of a table',
    lower: (a, l) => l.op('gather', [a.tensor(0), a.tensor(1)], {}, a.span),
  },
  embedding: {
    params: ['table', 'tokens'],
    doc: 'embedding(E [V, d], tokens [B, S]) -> [B, S, d]',
    lower: (a, l) => l.op('gather', [a.tensor(0), a.tensor(1)], {}, a.span),
  },
  take_along: {
    params: ['x', 'indices'],
    doc: 'take_along(x [..., n], idx [..., m]) -> [..., m]: picks along the last axis',
    lower: (a, l) => l.op('take_along', [a.tensor(0), a.tensor(1)], {}, a.span),
  },
  reshape: {
    params: ['x', 'shape'],
    doc: 'reshape(x, [T, h*k])',
    lower: (a, l) => l.op('reshape', [a.tensor(0)], { shape: a.dims(1) }, a.span),
  },
  flatten: {
    params: ['x', 'start'], defaults: { start: integer(-2) },
    doc: 'flatten(x, start=-2): merges the axes from start to the last',
    lower(a, l) {
      const x = a.tensor(0);
      const s = x.type.shape;
      const from = axisOf(a, 1, s.length);
      const merged = s.slice(from).reduce((acc, d) => acc.mul(d), Dim.of(1));
      return l.op('reshape', [x], { shape: [...s.slice(0, from), merged] }, a.span);
    },
  },
  layernorm: {
    params: ['x', 'gamma', 'beta', 'eps'], defaults: { eps: num(1e-5) }, doc: 'layernorm over the last axis',
    lower: (a, l) => l.op('layernorm', [a.tensor(0), a.tensor(1), a.tensor(2)], { eps: a.num(3) }, a.span),
  },
  rmsnorm: {
    params: ['x', 'gamma', 'eps'], defaults: { eps: num(1e-6) }, doc: 'rmsnorm over the last axis',
    lower: (a, l) => l.op('rmsnorm', [a.tensor(0), a.tensor(1)], { eps: a.num(2) }, a.span),
  },
  batchnorm: {
    params: ['x', 'gamma', 'beta', 'running_mean', 'running_var', 'eps', 'momentum'],
    defaults: { eps: num(1e-5), momentum: num(0.1) },
    doc: 'batchnorm over all axes but the last; batch statistics when training, running ones otherwise',
    lower: (a, l) =>
      l.op('batchnorm', [a.tensor(0), a.tensor(1), a.tensor(2), a.tensor(3), a.tensor(4)], { eps: a.num(5), momentum: a.num(6) }, a.span),
  },
};

/** Initializers, allowed only after `=` in a param or buffer declaration. */
export const INITIALIZERS: Record<string, { params: string[]; defaults: Record<string, number> }> = {
  normal: { params: ['mean', 'std'], defaults: { mean: 0, std: 1 } },
  uniform: { params: ['low', 'high'], defaults: { low: -1, high: 1 } },
  randint: { params: ['low', 'high'], defaults: {} },
  zeros: { params: [], defaults: {} },
  ones: { params: [], defaults: {} },
  constant: { params: ['value'], defaults: {} },
};
