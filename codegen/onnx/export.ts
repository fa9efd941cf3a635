// `peerc export --onnx`: the entry's forward (evaluation mode) as an ONNX graph, opset 17,
// built from the fused IR with one lowering per op (ONNX_OPS, the table beside the torch one).
// Open dimensions stay symbolic (the inputs' dim_params); reshapes that need them compute their
// target shape from the inputs' Shape. Weights are initializers inside the model, or in an
// external data file next to it for large models (protobuf stops at 2 GB).
import type { IRModule, Node, ValueRef } from '../../src/ir/graph.js';
import { liveNodes } from '../../src/ir/graph.js';
import { entryFunction } from '../../src/interp/interpreter.js';
import type { Dim } from '../../src/shapes/dim.js';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import { DTYPE, model, node, tensor, valueInfo, type AttrValue, type TensorData } from './proto.js';
import { einsumAsMatMul } from './matmul.js';
import { UNARY_OPS } from '../../src/ir/ops/unary.js';

export const ONNX_OPSET = 17;

/** Emits nodes; returns fresh value names. */
class GraphBuilder {
  readonly nodes: number[][] = [];
  readonly initializers: TensorData[] = [];
  private count = 0;
  fresh(hint: string): string {
    return `${hint}_${this.count++}`;
  }
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs = 1): string[] {
    const outs = Array.from({ length: outputs }, () => this.fresh(op.toLowerCase()));
    this.nodes.push(node(op, inputs, outs, this.fresh(`n_${op}`), attrs));
    return outs;
  }
  one(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.op(op, inputs, attrs)[0]!;
  }
  private readonly consts = new Map<string, string>();
  /** A constant initializer, made once per value and shape. */
  private constant(dims: number[], dataType: number, raw: Uint8Array, hint: string): string {
    const k = `${dataType}:${dims.join('x')}:${Array.from(raw).join(',')}`;
    let name = this.consts.get(k);
    if (!name) {
      name = this.fresh(hint);
      this.initializers.push({ name, dims, dataType, raw });
      this.consts.set(k, name);
    }
    return name;
  }
  int64s(values: number[]): string {
    return this.constant([values.length], DTYPE.int64, new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer), 'const_i64');
  }
  scalarF32(v: number): string {
    return this.constant([], DTYPE.float, new Uint8Array(Float32Array.of(v).buffer), 'const_f32');
  }
  scalarI64(v: number): string {
    return this.constant([], DTYPE.int64, new Uint8Array(BigInt64Array.of(BigInt(v)).buffer), 'const_i64s');
  }
}

interface Ctx {
  g: GraphBuilder;
  /** A 1-D int64 tensor holding the value of each dim (for Reshape and Expand targets). */
  shape(ds: readonly Dim[]): string;
  dim(d: Dim): string;
  rank(r: ValueRef): number;
  /** The constant last dimension of a value (x's width d in the expert ops). */
  width(r: ValueRef): number;
}

type OnnxOp = (x: string[], n: Node, c: Ctx) => string[];

const unaryOps: Record<string, (g: GraphBuilder, a: string) => string> = {
  ...Object.fromEntries(UNARY_OPS.map((u) => [u.name, u.onnx])),
  none: (_g, a) => a,
};

const COMPARE: Record<string, string> = { greater: 'Greater', greater_equal: 'GreaterOrEqual', less: 'Less', less_equal: 'LessOrEqual', equal: 'Equal' };

/** `x` minus mean, over sqrt(var + eps), times gamma plus beta, channels last (evaluation BatchNorm). */
function bnEval(g: GraphBuilder, x: string, gamma: string, beta: string, mean: string, variance: string, eps: number): string {
  const inv = g.one('Sqrt', [g.one('Add', [variance, g.scalarF32(eps)])]);
  return g.one('Add', [g.one('Mul', [g.one('Div', [g.one('Sub', [x, mean]), inv]), gamma]), beta]);
}

/** Einsum letters for the slot axes of an expert gather after the token axis t (t and d are taken). */
const slotLetters = (indexRank: number) => 'abcefgijlmnopqrsuvwxyz'.slice(0, indexRank - 1);

/** An einsum as MatMul where it can be (every provider runs that well), else as Einsum. */
function contraction(g: GraphBuilder, spec: string, x: string[]): string {
  return (x.length === 2 ? einsumAsMatMul(g, spec, x[0]!, x[1]!) : undefined) ?? g.one('Einsum', x, { equation: { s: spec } });
}

export const ONNX_OPS: Record<string, OnnxOp> = {
  einsum: (x, n, { g }) => [contraction(g, n.attrs.spec as string, x)],
  add: ([a, b], _n, { g }) => [g.one('Add', [a!, b!])],
  sub: ([a, b], _n, { g }) => [g.one('Sub', [a!, b!])],
  mul: ([a, b], _n, { g }) => [g.one('Mul', [a!, b!])],
  div: ([a, b], _n, { g }) => [g.one('Div', [a!, b!])],
  pow: ([a, b], _n, { g }) => [g.one('Pow', [a!, b!])],
  maximum: ([a, b], _n, { g }) => [g.one('Max', [a!, b!])],
  minimum: ([a, b], _n, { g }) => [g.one('Min', [a!, b!])],
  // Index values are never negative, so integer division is floor division.
  floordiv: ([a, b], _n, { g }) => [g.one('Div', [a!, b!])],
  mod: ([a, b], _n, { g }) => [g.one('Mod', [a!, b!], { fmod: { i: 0 } })],
  ...Object.fromEntries(Object.entries(unaryOps).filter(([k]) => k !== 'none').map(([k, f]) => [k, ([a]: string[], _n: Node, { g }: Ctx) => [f(g, a!)]])),
  ...Object.fromEntries(Object.entries(COMPARE).map(([k, op]) => [k, ([a, b]: string[], _n: Node, { g }: Ctx) => [g.one('Cast', [g.one(op, [a!, b!])], { to: { i: DTYPE.float } })]])),
  to_f32: ([a], _n, { g }) => [g.one('Cast', [a!], { to: { i: DTYPE.float } })],
  select: ([c, a, b], _n, { g }) => [g.one('Where', [g.one('Cast', [c!], { to: { i: DTYPE.bool } }), a!, b!])],
  reduce_sum: ([a], n, { g }) => [g.one('ReduceSum', [a!, g.int64s([n.attrs.axis as number])], { keepdims: { i: 0 } })],
  reduce_mean: ([a], n, { g }) => [g.one('ReduceMean', [a!], { axes: { ints: [n.attrs.axis as number] }, keepdims: { i: 0 } })],
  reduce_max: ([a], n, { g }) => [g.one('ReduceMax', [a!], { axes: { ints: [n.attrs.axis as number] }, keepdims: { i: 0 } })],
  reduce_min: ([a], n, { g }) => [g.one('ReduceMin', [a!], { axes: { ints: [n.attrs.axis as number] }, keepdims: { i: 0 } })],
  softmax: ([a], n, { g }) => [g.one('Softmax', [a!], { axis: { i: n.attrs.axis as number } })],
  log_softmax: ([a], n, { g }) => [g.one('LogSoftmax', [a!], { axis: { i: n.attrs.axis as number } })],
  layernorm: ([a, gm, b], n, { g }) => [g.one('LayerNormalization', [a!, gm!, b!], { axis: { i: -1 }, epsilon: { f: n.attrs.eps as number } })],
  rmsnorm: ([a, gm], n, { g }) => {
    const ms = g.one('ReduceMean', [g.one('Mul', [a!, a!])], { axes: { ints: [-1] }, keepdims: { i: 1 } });
    return [g.one('Mul', [g.one('Div', [a!, g.one('Sqrt', [g.one('Add', [ms, g.scalarF32(n.attrs.eps as number)])])]), gm!])];
  },
  batchnorm: ([a, gm, b, m, v], n, { g }) => [bnEval(g, a!, gm!, b!, m!, v!, n.attrs.eps as number)],
  gather: ([t, i], _n, { g }) => [g.one('Gather', [t!, i!], { axis: { i: 0 } })],
  take_along: ([a, i], _n, { g }) => [g.one('GatherElements', [a!, i!], { axis: { i: -1 } })],
  topk: ([a], n, { g }) => g.op('TopK', [a!, g.int64s([n.attrs.k as number])], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 1 } }, 2),
  reshape: ([a], n, c) => [c.g.one('Reshape', [a!, c.shape(n.attrs.shape as Dim[])])],
  expand_dims: ([a], n, { g }) => [g.one('Unsqueeze', [a!, g.int64s([n.attrs.axis as number])])],
  slice: ([a], n, { g }) => [g.one('Slice', [a!, g.int64s([n.attrs.start as number]), g.int64s([n.attrs.end as number]), g.int64s([n.attrs.axis as number])])],
  broadcast_to: ([a], n, c) => [c.g.one('Expand', [a!, c.shape(n.attrs.shape as Dim[])])],
  concat: (x, n, { g }) => [g.one('Concat', x, { axis: { i: n.attrs.axis as number } })],
  cumsum: ([a], n, { g }) => [g.one('CumSum', [a!, g.scalarI64(n.attrs.axis as number)], { reverse: { i: n.attrs.reverse ? 1 : 0 } })],
  iota: (_x, n, c) => [c.g.one('Range', [c.g.scalarI64(0), c.g.one('Squeeze', [c.dim((n.attrs.n as Dim[])[0]!), c.g.int64s([0])]), c.g.scalarI64(1)])],
  causal_mask: (_x, n, c) => {
    const { g } = c;
    const len = g.one('Squeeze', [c.dim((n.attrs.n as Dim[])[0]!), g.int64s([0])]);
    const r = g.one('Range', [g.scalarI64(0), len, g.scalarI64(1)]);
    const above = g.one('Greater', [g.one('Unsqueeze', [r, g.int64s([0])]), g.one('Unsqueeze', [r, g.int64s([1])])]);
    return [g.one('Where', [above, g.scalarF32(-1e9), g.scalarF32(0)])];
  },
  dim_size: (_x, n, c) => [c.g.one('Squeeze', [c.g.one('Cast', [c.dim((n.attrs.n as Dim[])[0]!)], { to: { i: DTYPE.float } }), c.g.int64s([0])])],
  dropout: ([a], _n, { g }) => [g.one('Identity', [a!])],
  // An evaluation-mode graph: the auxiliary loss is training's only.
  aux_loss: ([a], _n, { g }) => [g.one('Identity', [a!])],
  metric: ([a], _n, { g }) => [g.one('Identity', [a!])],
  gumbel: ([a], _n, { g }) => [g.one('Identity', [a!])],
  product_retrieve: ([s1, s2], n, c) => {
    const { g } = c;
    const k = n.attrs.k as number, subk = n.attrs.subk as number, gate = n.attrs.gate as string;
    const rank = c.rank(n.inputs[0]!);
    const [v1, a] = g.op('TopK', [s1!, g.int64s([subk])], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 1 } }, 2);
    const [v2, b] = g.op('TopK', [s2!, g.int64s([subk])], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 1 } }, 2);
    const sums = g.one('Add', [g.one('Unsqueeze', [v1!, g.int64s([-1])]), g.one('Unsqueeze', [v2!, g.int64s([-2])])]);
    // Flatten the last two axes: 0 copies a dimension, -1 takes the rest.
    const cand = g.one('Reshape', [sums, g.int64s([...Array<number>(rank - 1).fill(0), -1])]);
    const [best, which] = g.op('TopK', [cand, g.int64s([k])], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 1 } }, 2);
    const subkT = g.scalarI64(subk);
    const ia = g.one('GatherElements', [a!, g.one('Div', [which!, subkT])], { axis: { i: -1 } });
    const ib = g.one('GatherElements', [b!, g.one('Mod', [which!, subkT], { fmod: { i: 0 } })], { axis: { i: -1 } });
    const nSub = c.g.one('Squeeze', [c.g.one('Slice', [c.g.one('Shape', [s1!]), c.g.int64s([-1]), c.g.int64s([rank])]), c.g.int64s([0])]);
    const ids = g.one('Add', [g.one('Mul', [ia, nSub]), ib]);
    const w = gate === 'softmax' ? g.one('Softmax', [best!], { axis: { i: -1 } }) : unaryOps[gate]!(g, best!);
    return [w, ids];
  },
  product_extend: ([v, ids, s3], n, c) => {
    const { g } = c;
    const k = n.attrs.k as number, subk = n.attrs.subk as number, gate = n.attrs.gate as string;
    const rank = c.rank(n.inputs[2]!);
    const [v3, cs] = g.op('TopK', [s3!, g.int64s([subk])], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 1 } }, 2);
    const sums = g.one('Add', [g.one('Unsqueeze', [v!, g.int64s([-1])]), g.one('Unsqueeze', [v3!, g.int64s([-2])])]);
    const cand = g.one('Reshape', [sums, g.int64s([...Array<number>(rank - 1).fill(0), -1])]);
    const [best, which] = g.op('TopK', [cand, g.int64s([k])], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 1 } }, 2);
    const subkT = g.scalarI64(subk);
    const iv = g.one('GatherElements', [ids!, g.one('Div', [which!, subkT])], { axis: { i: -1 } });
    const ic = g.one('GatherElements', [cs!, g.one('Mod', [which!, subkT], { fmod: { i: 0 } })], { axis: { i: -1 } });
    const nSub = g.one('Squeeze', [g.one('Slice', [g.one('Shape', [s3!]), g.int64s([-1]), g.int64s([rank])]), g.int64s([0])]);
    const out = g.one('Add', [g.one('Mul', [iv, nSub]), ic]);
    const w = gate === 'softmax' ? g.one('Softmax', [best!], { axis: { i: -1 } }) : unaryOps[gate]!(g, best!);
    return [w, out, which!];
  },
  expert_act: ([x, u, i, w], n, c) => {
    const { g } = c;
    const rank = c.rank(n.inputs[2]!);
    const rows = g.one('Gather', [g.one('Reshape', [u!, g.int64s([-1, c.width(n.inputs[0]!)])]), i!], { axis: { i: 0 } });
    const l = slotLetters(rank);
    const dots = contraction(g, `t${l}d,td->t${l}`, [rows, x!]);
    return [g.one('Mul', [w!, unaryOps[n.attrs.act as string]!(g, dots)])];
  },
  expert_out: ([h, v, i, r], n, c) => {
    const { g } = c;
    const rank = c.rank(n.inputs[2]!);
    const l = slotLetters(rank);
    const y = contraction(g, `t${l},t${l}d->td`, [h!, g.one('Gather', [v!, i!], { axis: { i: 0 } })]);
    return [r ? g.one('Add', [y, r]) : y];
  },
  einsum_bn: ([a, b, gm, beta, m, v], n, c) => {
    const e = contraction(c.g, n.attrs.spec as string, [a!, b!]);
    return [bnEval(c.g, c.g.one('Reshape', [e, c.shape(n.attrs.shape as Dim[])]), gm!, beta!, m!, v!, n.attrs.eps as number)];
  },
};

export interface OnnxWeights {
  get(name: string): Float32Array;
}

export interface OnnxExport {
  model: Uint8Array;
  /** External data (large weights), to be written as `${file}.data` beside the model. */
  external?: { name: string; chunks: Uint8Array[] };
  opset: number;
}

/** Tensors of at least this many bytes go to the external data file when the model would pass INLINE_LIMIT. */
const EXTERNAL_MIN = 1 << 20;
// The model itself is built as a JS array of bytes, which V8 caps near 2^27 elements: keep it small.
const INLINE_LIMIT = 32 * (1 << 20);

/** `inlineLimit`: above this many bytes of weights, tensors of 1 MiB or more go to the external data file. */
export function emitOnnx(m: IRModule, weights: OnnxWeights, fileName: string, producer: string, options: { inlineLimit?: number } = {}): OnnxExport {
  const fn = entryFunction(m);
  const live = liveNodes(fn);
  const g = new GraphBuilder();
  const names = new Map<string, string>();
  const ref = (r: ValueRef) => names.get(`${r.node}:${r.result}`)!;
  const inputs = fn.inputs.map((id) => fn.graph.node(id));
  // Symbols bound from the inputs' shapes, as 1-element int64 tensors.
  const symbols = new Map<string, string>();
  const symName = (s: string) => `dim_${s}`;
  for (const n of inputs) {
    const name = n.attrs.name as string;
    (n.attrs.shape as Dim[]).forEach((d, axis) => {
      const t = d.terms_;
      if (t.length === 1 && t[0]![1] === 1 && t[0]![0] && !t[0]![0].includes('*') && !symbols.has(t[0]![0])) {
        symbols.set(t[0]![0], g.one('Slice', [g.one('Shape', [name]), g.int64s([axis]), g.int64s([axis + 1])]));
      }
    });
  }
  const dimCache = new Map<string, string>();
  const dim = (d: Dim): string => {
    const key = d.toString();
    let out = dimCache.get(key);
    if (out) return out;
    if (d.isConst) out = g.int64s([d.value!]);
    else {
      const terms = d.terms_.map(([mono, coef]) => {
        let v = coef === 1 ? undefined : g.int64s([coef]);
        for (const s of mono ? mono.split('*') : []) {
          const sv = symbols.get(s);
          if (!sv) throw new CompileError(diagnostic('PEER0900', null, { op: `a shape with ${symName(s)} (not an input's dimension)`, target: 'ONNX' }));
          v = v ? g.one('Mul', [v, sv]) : sv;
        }
        return v ?? g.int64s([coef]);
      });
      out = terms.reduce((a, b) => g.one('Add', [a, b]));
    }
    dimCache.set(key, out);
    return out;
  };
  const ctx: Ctx = {
    g,
    dim,
    shape: (ds) => (ds.every((d) => d.isConst) ? g.int64s(ds.map((d) => d.value!)) : g.one('Concat', ds.map(dim), { axis: { i: 0 } })),
    rank: (r) => fn.graph.typeOf(r).shape.length,
    width: (r) => {
      const s = fn.graph.typeOf(r).shape;
      return s[s.length - 1]!.value!;
    },
  };
  for (const n of inputs) names.set(`${n.id}:0`, n.attrs.name as string);
  const initializers: TensorData[] = [];
  let paramBytes = 0;
  for (const p of m.params) paramBytes += (p.dtype === 'index' ? 8 : 4) * p.shape.reduce((a, b) => a * b, 1);
  const external = paramBytes > (options.inlineLimit ?? INLINE_LIMIT) ? { name: `${fileName}.data`, chunks: [] as Uint8Array[], offset: 0 } : undefined;
  for (const node of fn.graph.nodes) {
    if (!live.has(node.id) || node.op === 'input') continue;
    if (node.op === 'param') {
      const name = node.attrs.name as string;
      if (!initializers.some((t) => t.name === name)) {
        const f32 = weights.get(name);
        // Index buffers are int64 initializers, as index inputs are int64.
        const data = node.attrs.dtype === 'index' ? BigInt64Array.from(f32, (v) => BigInt(v)) : f32;
        const dataType = node.attrs.dtype === 'index' ? DTYPE.int64 : DTYPE.float;
        const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        const dims = (node.attrs.shape as Dim[]).map((d) => d.value!);
        if (external && raw.length >= Math.min(EXTERNAL_MIN, options.inlineLimit ?? EXTERNAL_MIN)) {
          external.chunks.push(raw);
          initializers.push({ name, dims, dataType, external: { location: external.name.split('/').pop()!, offset: external.offset, length: raw.length } });
          external.offset += raw.length;
        } else initializers.push({ name, dims, dataType, raw: raw.slice() });
      }
      names.set(`${node.id}:0`, name);
      continue;
    }
    if (node.op === 'const') {
      const v = node.attrs.value as number;
      names.set(`${node.id}:0`, node.attrs.dtype === 'index' ? g.scalarI64(v) : g.scalarF32(v));
      continue;
    }
    const op = ONNX_OPS[node.op];
    if (!op) throw new CompileError(diagnostic('PEER0900', node.span ?? null, { op: node.op, target: 'ONNX' }));
    const outs = op(node.inputs.map(ref), node, ctx);
    outs.forEach((o, i) => names.set(`${node.id}:${i}`, o));
  }
  const dimSpec = (d: Dim) => (d.isConst ? d.value! : d.toString().replace(/\s+/g, ''));
  const graphInputs = inputs.map((n) => valueInfo(n.attrs.name as string, n.attrs.dtype === 'index' ? DTYPE.int64 : DTYPE.float, (n.attrs.shape as Dim[]).map(dimSpec)));
  const outNames: string[] = [];
  const graphOutputs = fn.outputs.map((o, i) => {
    const name = fn.outputs.length === 1 ? 'output' : `output_${i}`;
    g.nodes.push(node('Identity', [ref(o)], [name], g.fresh('n_out')));
    outNames.push(name);
    const t = fn.graph.typeOf(o);
    return valueInfo(name, t.dtype === 'index' ? DTYPE.int64 : DTYPE.float, t.shape.map(dimSpec));
  });
  const bytes = model({ nodes: g.nodes, name: m.entry ?? fn.name, initializers: [...initializers, ...g.initializers].map(tensor), inputs: graphInputs, outputs: graphOutputs }, ONNX_OPSET, producer);
  return { model: bytes, opset: ONNX_OPSET, ...(external ? { external: { name: external.name, chunks: external.chunks } } : {}) };
}
