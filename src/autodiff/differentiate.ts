// Reverse-mode automatic differentiation on the IR. From an inlined module it builds the
// training program: one function computing the loss, the gradient of every trainable
// parameter, new running statistics for buffers, and router statistics. Gradients come from
// the rules declared beside each op (src/ir/ops/*: `grad`); this file only walks the graph.
import { CompileError, diagnostic, fail } from '../diagnostics/diagnostic.js';
import { Graph, liveNodes, ref, stackSlice, type IRFunction, type IRModule, type Node, type ValueRef } from '../ir/graph.js';
import { opDef } from '../ir/ops/registry.js';
import type { Attrs, GradBuilder, TensorType } from '../ir/ops/types.js';
import { Dim, shapeToString, type Shape } from '../shapes/dim.js';
import { entryFunction } from '../interp/interpreter.js';
import { copyNode } from '../passes/rebuild.js';
import { optimize, runPasses, TRAINING_BACKWARD, TRAINING_FORWARD } from '../passes/pipeline.js';
import { gateActivation } from '../ir/ops/unary.js';

/** Where each result of the training function is, by output position. */
export interface TrainLayout {
  loss: number;
  /** Model output (logits or the scalar loss), for evaluation metrics. */
  logits: number;
  /** Dense gradients: the whole parameter. */
  dense: { param: string; output: number }[];
  /** Sparse gradients of tables read only by gathers: flat row ids [M] and their rows [M, rowSize]. */
  sparse: {
    param: string;
    indices: number;
    rows: number;
    /**
     * Where the rows are an outer product returned as its factors (factorRowGradients): row s is
     * coef[s] * vec[s / (slots / T)], coef [slots] and vec [T, rowSize]; `rows` is then the coef output.
     */
    factors?: { coef: number; vec: number };
  }[];
  /** New running statistics of buffers (BatchNorm), training mode only. */
  buffers: { name: string; output: number }[];
  /**
   * The weighted sum of the program's aux_loss terms (a scalar output), where it has any: `loss`
   * (the objective the gradients are of) includes it; `loss` minus it is the task's own loss.
   */
  aux?: number;
  /** The program's metric(x, value, name) values (scalar outputs), by name; calls sharing a name are averaged. */
  metrics?: { name: string; outputs: number[] }[];
  /**
   * Expert choices per sparse table: flat ids [M] into its `rows` rows and router weights [M]
   * (or none: counts); a stacked table [L, N, ...] read as L*N rows has `slices` = L.
   */
  router: { param: string; indices: number; weights?: number; rows: number; slices: number; site?: string }[];
}

export interface TrainingProgram {
  module: IRModule;
  layout: TrainLayout;
  /** The targets input added for cross-entropy, if the model returns logits. */
  targets?: { name: string; shape: Shape; classes: Dim };
}

export interface DifferentiateOptions {
  /** false: the evaluation program (loss and metrics, no gradients, running statistics). */
  gradients: boolean;
}

/** The concrete shape and class count of the targets, from the model's bound dims (bindInputDims). */
export function targetsShape(t: NonNullable<TrainingProgram['targets']>, dims: ReadonlyMap<string, number>): { shape: number[]; classes: number } {
  const at = (d: Dim) => d.evaluate((s) => dims.get(s))!;
  return { shape: t.shape.map(at), classes: at(t.classes) };
}

/** Builds the training (or evaluation) program of an inlined module. */
export function buildTrainingProgram(m: IRModule, options: DifferentiateOptions): TrainingProgram {
  const fn = entryFunction(m);
  if (fn.graph.nodes.some((n) => n.op === 'call')) throw new Error('buildTrainingProgram needs an inlined module');
  const g = new Graph();
  const map = new Map<number, ValueRef[]>();
  const live = liveNodes(fn);
  for (const node of fn.graph.nodes) {
    if (!live.has(node.id) && node.op !== 'input') continue;
    map.set(node.id, copyNode(node, node.inputs.map((r) => map.get(r.node)![r.result]!), g));
  }
  const mapped = (r: ValueRef) => map.get(r.node)![r.result]!;
  const modelOut = mapped(fn.outputs[0]!);
  const b = builder(g, options.gradients);
  const outType = g.typeOf(modelOut);
  const inputs = fn.inputs.map((id) => map.get(id)![0]!.node);

  let loss: ValueRef;
  let targets: TrainingProgram['targets'];
  if (outType.dtype === 'f32' && outType.shape.length === 0) loss = modelOut;
  else if (outType.dtype === 'f32') {
    const lead = outType.shape.slice(0, -1);
    const classes = outType.shape[outType.shape.length - 1]!;
    const names = new Set(inputs.map((id) => g.node(id).attrs.name as string));
    let name = 'targets';
    while (names.has(name)) name += '_';
    const t = g.add('input', [], { name, dtype: 'index', shape: lead }, undefined, [{ dtype: 'index', shape: lead, bound: classes }]);
    inputs.push(t);
    targets = { name, shape: lead, classes };
    const rank = outType.shape.length;
    const logp = b.op('log_softmax', [modelOut], { axis: rank - 1 });
    const picked = b.op('take_along', [logp, b.op('expand_dims', [ref(t)], { axis: rank - 1 })]);
    const count = lead.reduce((acc, d) => acc.mul(d), Dim.of(1));
    loss = b.op('neg', [b.op('reduce_mean', [b.op('reshape', [picked], { shape: [count] })], { axis: 0 })]);
  } else fail('PEER0701', null, { found: `an index tensor ${shapeToString(outType.shape)}` });

  // aux_loss(x, l, w) anywhere in the model: the objective is the task's loss plus every w * l.
  const auxTerms = g.nodes.filter((n) => n.op === 'aux_loss').map((n) => b.op('mul', [b.scalar(n.attrs.weight as number), n.inputs[1]!]));
  const aux = auxTerms.length ? auxTerms.reduce((acc, t) => b.op('add', [acc, t])) : undefined;
  if (aux) loss = b.op('add', [loss, aux]);
  const outputs: ValueRef[] = [loss, modelOut];
  const layout: TrainLayout = { loss: 0, logits: 1, dense: [], sparse: [], buffers: [], router: [] };
  const output = (v: ValueRef) => outputs.push(v) - 1;
  if (aux) layout.aux = output(aux);
  const metricNodes = g.nodes.filter((n) => n.op === 'metric');
  if (metricNodes.length) {
    const byName = new Map<string, number[]>();
    for (const n of metricNodes) byName.set(n.attrs.name as string, [...(byName.get(n.attrs.name as string) ?? []), output(n.inputs[1]!)]);
    layout.metrics = [...byName].map(([name, outs]) => ({ name, outputs: outs }));
  }
  const params = new Map(m.params.map((p) => [p.name, p]));
  const forward = [...g.nodes];

  // Tables read only as gather tables get sparse gradients: (row id, row) pairs, never [N, d].
  const users = new Map<number, Node[]>();
  for (const n of forward) for (const r of n.inputs) users.set(r.node, [...(users.get(r.node) ?? []), n]);
  // A stacked table [L, N, ...] is read as L*N rows through one reshape (see src/passes/stacked.ts).
  const sparseTables = new Set<number>();
  const tableOf = new Map<number, Node>();
  const readOnlyByGathers = (id: number) => (users.get(id) ?? []).every((u) => u.op === 'gather' && u.inputs[0]!.node === id && u.inputs[1]!.node !== id);
  for (const n of forward) {
    if (n.op !== 'param' || !params.get(n.attrs.name as string)?.sparse) continue;
    const ps = n.types[0]!.shape;
    const rowView = (u: Node) => u.op === 'reshape' && u.types[0]!.shape.length === ps.length - 1 && u.types[0]!.shape.slice(1).every((d, j) => d.equals(ps[j + 2]!)) && readOnlyByGathers(u.id);
    const us = users.get(n.id) ?? [];
    if (readOnlyByGathers(n.id)) sparseTables.add(n.id);
    else if (ps.length >= 3 && us.every(rowView)) {
      sparseTables.add(n.id);
      for (const u of us) tableOf.set(u.id, n);
    }
  }
  /** The sparse parameter a gather reads (directly or as stacked rows), if any. */
  const sparseParamOf = (gather: Node): Node | undefined => {
    if (gather.op !== 'gather') return undefined;
    const t = gather.inputs[0]!.node;
    return sparseTables.has(t) ? g.node(t) : tableOf.get(t);
  };

  // Router statistics: for each gather from a sparse table, its ids and the softmax of the same shape before it.
  const flatOf = (v: ValueRef) => {
    const t = g.typeOf(v);
    const count = t.shape.reduce((acc, d) => acc.mul(d), Dim.of(1));
    return b.op('reshape', [v], { shape: [count] });
  };
  /**
   * The router weights of a gather's ids: where the retrieval is fused, the fused op records its
   * gate and its result 0 is the gated weights (softmax or any activation); unfused, the gate
   * applied to the selected scores (a softmax of the ids' shape, or an activation of a top-k's
   * values). Raw scores (no gate) are no weights: usage is then counted.
   */
  const throughViews = (v: ValueRef): ValueRef => {
    const p = g.node(v.node);
    return ['reshape', 'slice', 'expand_dims'].includes(p.op) ? throughViews(p.inputs[0]!) : v;
  };
  const routerWeights = (idx: ValueRef, before: number, shape: string): ValueRef | undefined => {
    const src = g.node(throughViews(idx).node);
    if ((src.op === 'product_retrieve' || src.op === 'product_extend') && throughViews(idx).result === 1) return src.attrs.gate !== 'none' ? ref(src.id, 0) : undefined;
    const gate = [...forward].reverse().find((s) => s.id < before && shapeToString(s.types[0]!.shape) === shape &&
      (s.op === 'softmax' || (gateActivation(s.op) && g.node(s.inputs[0]!.node).op === 'topk' && s.inputs[0]!.result === 0)));
    return gate ? ref(gate.id) : undefined;
  };
  const sparseUses = forward.filter((n) => sparseParamOf(n));
  for (const n of sparseUses) {
    const idx = n.inputs[1]!;
    const shape = shapeToString(g.typeOf(idx).shape);
    const gate = routerWeights(idx, n.id, shape);
    const table = sparseParamOf(n)!;
    const stacked = table.id !== n.inputs[0]!.node;
    layout.router.push({
      param: table.attrs.name as string, indices: output(flatOf(idx)), weights: gate ? output(flatOf(gate)) : undefined,
      rows: g.typeOf(n.inputs[0]!).shape[0]!.value!, slices: stacked ? table.types[0]!.shape[0]!.value! : 1,
      ...(n.site ? { site: `line ${n.site.line}` } : {}),
    });
  }

  if (options.gradients) {
    const trainable = (n: Node) => n.op === 'param' && params.get(n.attrs.name as string)?.role === 'param';
    const needs = new Set<number>();
    // stop_gradient cuts the graph: nothing before it needs a gradient on its account.
    for (const n of forward) if (trainable(n) || (!opDef(n.op).stopsGradient && n.inputs.some((r) => needs.has(r.node)))) needs.add(n.id);
    if (!needs.has(loss.node)) fail('PEER0702', null, { detail: 'the loss does not depend on any parameter (declare weights with `param`)' });

    const grads = new Map<string, ValueRef>();
    const key = (r: ValueRef) => `${r.node}#${r.result}`;
    const accumulate = (r: ValueRef, d: ValueRef) => {
      const prev = grads.get(key(r));
      grads.set(key(r), prev ? b.op('add', [prev, d]) : d);
    };
    accumulate(loss, b.scalar(1));
    for (let i = forward.length - 1; i >= 0; i--) {
      const n = forward[i]!;
      if (!needs.has(n.id) || n.op === 'param') continue;
      const dys = n.types.map((_, r) => grads.get(key(ref(n.id, r))));
      if (dys.every((d) => d === undefined)) continue;
      if (sparseParamOf(n)) {
        const rowShape = g.typeOf(ref(n.id)).shape.slice(g.typeOf(n.inputs[1]!).shape.length);
        const idxFlat = flatOf(n.inputs[1]!);
        const m = g.typeOf(idxFlat).shape[0]!;
        const rows = b.op('reshape', [dys[0]!], { shape: [m, rowShape.reduce((acc, d) => acc.mul(d), Dim.of(1))] });
        layout.sparse.push({ param: sparseParamOf(n)!.attrs.name as string, indices: output(idxFlat), rows: output(rows) });
        continue;
      }
      const rule = opDef(n.op).grad;
      if (!rule) throw new CompileError(diagnostic('PEER0700', n.span ?? null, { op: n.op }));
      const outs = n.types.map((_, r) => ref(n.id, r));
      const dxs = rule(b, { inputs: n.inputs, outputs: outs, attrs: n.attrs }, dys);
      n.inputs.forEach((r, j) => {
        const d = dxs[j];
        if (d && needs.has(r.node) && g.typeOf(r).dtype === 'f32') accumulate(r, d as ValueRef);
      });
    }
    for (const n of forward) {
      if (!trainable(n) || sparseTables.has(n.id)) continue;
      const d = grads.get(key(ref(n.id)));
      if (!d) continue;
      // A gradient made only of row scatters is returned as rows: [N, ...] is never materialised.
      const scatters = scatterTerms(g, d);
      if (scatters) {
        for (const s of scatters) {
          const rowsIn = g.typeOf(s.inputs[0]!), idxIn = g.typeOf(s.inputs[1]!);
          const m = idxIn.shape.reduce((acc, x) => acc.mul(x), Dim.of(1));
          const rowSize = rowsIn.shape.slice(idxIn.shape.length).reduce((acc, x) => acc.mul(x), Dim.of(1));
          layout.sparse.push({ param: n.attrs.name as string, indices: output(flatOf(s.inputs[1]!)), rows: output(b.op('reshape', [s.inputs[0]!], { shape: [m, rowSize] })) });
        }
      } else layout.dense.push({ param: n.attrs.name as string, output: output(d) });
    }
    if (layout.dense.length + layout.sparse.length === 0) fail('PEER0702', null, { detail: 'no parameter reaches the loss' });
    runningStatistics(b, forward.filter((n) => n.op === 'batchnorm'), params, (name, v) => layout.buffers.push({ name, output: output(v) }));
  }

  const trainFn: IRFunction = { name: fn.name, graph: g.freeze(), inputs, outputs, symbols: fn.symbols };
  const module: IRModule = { ...m, functions: new Map([[fn.name, trainFn]]) };
  return { module, layout, targets };
}

/** The scatter_rows nodes whose sum is `d`, or undefined if d is anything else. */
function scatterTerms(g: Graph, d: ValueRef): Node[] | undefined {
  const n = g.node(d.node);
  if (n.op === 'scatter_rows') return [n];
  if (n.op !== 'add') return undefined;
  const [l, r] = n.inputs.map((x) => scatterTerms(g, x));
  return l && r && g.typeOf(n.inputs[0]!).shape.length === g.typeOf(n.inputs[1]!).shape.length ? [...l, ...r] : undefined;
}

/** New running mean and (unbiased) variance of a training-mode BatchNorm, as nodes. */
/** The buffer behind a batchnorm statistic: the buffer itself, or slice i of a stacked one (buf[i]). */
function bufferOf(g: Graph, v: ValueRef, params: Map<string, { role: string }>): { node: Node; slice?: number } | undefined {
  const n = g.node(v.node);
  const isBuffer = (p: Node) => p.op === 'param' && params.get(p.attrs.name as string)?.role === 'buffer';
  if (isBuffer(n)) return { node: n };
  const at = stackSlice(g, v);
  if (at && isBuffer(g.node(at.stack.node))) return { node: g.node(at.stack.node), slice: at.index };
  return undefined;
}

/**
 * New running statistics of every batchnorm, per buffer: a whole buffer's new value, or for a
 * stacked buffer (bn_mean[i] in layer i) the whole buffer rebuilt from its updated slices.
 */
function runningStatistics(b: GradBuilder & { g: Graph }, norms: Node[], params: Map<string, { role: string }>, emit: (name: string, v: ValueRef) => void): void {
  const slices = new Map<string, { buffer: Node; updated: Map<number, ValueRef> }>();
  for (const n of norms) {
    const [x, , , rmean, rvar] = n.inputs as ValueRef[];
    const mom = n.attrs.momentum as number;
    const shape = b.type(x!).shape;
    const rows = shape.slice(0, -1).reduce((acc, d) => acc.mul(d), Dim.of(1));
    const flat = b.op('reshape', [x!], { shape: [rows, shape[shape.length - 1]!] });
    const mean = b.op('reduce_mean', [flat], { axis: 0 });
    // The biased variance in the form BatchNorm's gradient builds it (normGrad), so that CSE
    // leaves one pass over the centred squares for both, then scaled to the unbiased one.
    const centred = b.op('sub', [flat, b.expandAlong(mean, 0, b.type(flat).shape)]);
    const count = b.op('dim_size', [], { n: [rows] });
    const biased = b.op('reduce_mean', [b.op('mul', [centred, centred])], { axis: 0 });
    const variance = b.op('mul', [biased, b.op('div', [count, b.op('sub', [count, b.scalar(1)])])]);
    const blend = (old: ValueRef, v: ValueRef) => b.op('add', [b.op('mul', [old, b.scalar(1 - mom)]), b.op('mul', [v, b.scalar(mom)])]);
    for (const [src, stat] of [[rmean!, mean], [rvar!, variance]] as const) {
      const buf = bufferOf(b.g, src, params);
      if (!buf) continue;
      const name = buf.node.attrs.name as string;
      if (buf.slice === undefined) {
        emit(name, blend(src, stat as ValueRef));
        continue;
      }
      const entry = slices.get(name) ?? { buffer: buf.node, updated: new Map() };
      entry.updated.set(buf.slice, blend(src, stat as ValueRef));
      slices.set(name, entry);
    }
  }
  for (const [name, { buffer, updated }] of slices) {
    const shape = buffer.types[0]!.shape;
    const rowShape = shape.slice(1);
    const whole = ref(buffer.id);
    const parts = Array.from({ length: shape[0]!.value! }, (_, i) =>
      b.op('expand_dims', [updated.get(i) ?? b.op('reshape', [b.op('slice', [whole], { axis: 0, start: i, end: i + 1 })], { shape: rowShape })], { axis: 0 }));
    emit(name, parts.slice(1).reduce((acc, p) => b.op('concat', [acc, p], { axis: 0 }), parts[0]!));
  }
}

function builder(g: Graph, training: boolean): GradBuilder & { g: Graph; op(name: string, inputs: readonly ValueRef[], attrs?: object): ValueRef } {
  const b = {
    g,
    training,
    op: (name: string, inputs: readonly ValueRef[], attrs = {}) => ref(g.add(name, inputs, attrs)),
    ops: (name: string, inputs: readonly ValueRef[], attrs = {}) => {
      const id = g.add(name, inputs, attrs);
      return g.node(id).types.map((_, r) => ref(id, r));
    },
    type: (v: ValueRef): TensorType => g.typeOf(v),
    scalar: (v: number) => g.constant(v, 'f32'),
    indexConst: (v: number) => g.constant(v, 'index'),
    opTyped: (name: string, inputs: readonly ValueRef[], attrs: object, type: TensorType) => ref(g.add(name, inputs, attrs as Attrs, undefined, [type])),
    producer: (v: ValueRef) => g.node(v.node),
    unbroadcast(d: ValueRef, shape: Shape): ValueRef {
      let cur = d;
      while (g.typeOf(cur).shape.length > shape.length) cur = b.op('reduce_sum', [cur], { axis: 0 });
      shape.forEach((dim, i) => {
        if (dim.value === 1 && g.typeOf(cur).shape[i]!.value !== 1) cur = b.op('expand_dims', [b.op('reduce_sum', [cur], { axis: i })], { axis: i });
      });
      return cur;
    },
    expandAlong: (d: ValueRef, axis: number, shape: Shape) => b.op('broadcast_to', [b.op('expand_dims', [d], { axis })], { shape }),
  };
  return b;
}

/**
 * The training (or evaluation) program of a checked module: inline and simplify, fuse product-key
 * retrieval (its gradient is declared on the fused op, so the [.., k, k] candidates are never
 * made in either direction), differentiate, simplify again.
 */
/**
 * `fuseExpertReads`: the expert tables' rows are read by fused ops in training too (backends
 * that read parameter tables in place: BackendInfo.tablesInPlace); off by default, since elsewhere
 * a fused op would copy the whole table per call.
 */
export function compileTraining(m: IRModule, options: DifferentiateOptions & { fuseRetrieval?: boolean; fuseElementwise?: boolean; fuseExpertReads?: boolean }): TrainingProgram {
  // The passes are listed in src/passes/pipeline.ts; the options leave fusions out for tests.
  const forward = runPasses(optimize(m), TRAINING_FORWARD.filter((pass) => options.fuseRetrieval !== false || !pass.name.startsWith('fuse-retrieval')));
  const p = buildTrainingProgram(forward, options);
  const module = runPasses(p.module, TRAINING_BACKWARD.filter((pass) => (options.fuseElementwise !== false || !pass.name.startsWith('fuse-elementwise')) && (options.fuseExpertReads === true || !pass.name.startsWith('fuse-expert-reads'))));
  return { ...p, module };
}
