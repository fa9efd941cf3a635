// Fused ops: what the fusion rules (src/passes/fuse.ts) produce. Each is declared like any
// other op, with float64 semantics equal to the primitive ops it replaces, so the reference
// interpreter checks every fusion, and the decomposition stays available as the oracle.
import { fail } from '../../diagnostics/diagnostic.js';
import { Tensor } from '../../interp/tensor.js';
import { Dim, shapeToString } from '../../shapes/dim.js';
import { UNARY_FUNCTIONS } from './elementwise.js';
import { runtimeIndexError, topkLane } from './indexing.js';
import { requireDtype } from './shape-rules.js';
import { defineOp, type GradBuilder, type GradValue } from './types.js';
import { einsum } from './einsum.js';
import { gateActivation, type Gate } from './unary.js';

export type { Gate } from './unary.js';

function gateValues(scores: number[], gate: Gate): number[] {
  if (gate === 'none') return scores;
  if (gate !== 'softmax') return scores.map(gateActivation(gate)!.f64);
  const m = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/**
 * The gradient of the selected raw scores from that of the gated weights w: through a softmax over
 * the selection's axis, or an activation's derivative at the raw scores (`raw` builds them, only
 * where the derivative reads them).
 */
function gateGradient(b: GradBuilder, gate: Gate, dw: GradValue, w: GradValue, axis: number, raw: () => GradValue): GradValue {
  if (gate === 'none') return dw;
  const act = gateActivation(gate);
  if (act) return b.op('mul', [dw, typeof act.derivative === 'function' ? act.derivative(b, raw(), w) : b.op(`${act.name}_grad`, [raw()])]);
  return b.op('mul', [w, b.op('sub', [dw, b.expandAlong(b.op('reduce_sum', [b.op('mul', [dw, w])], { axis }), axis, b.type(w).shape)])]);
}

/**
 * Product-key retrieval from two sub-key score rows s1, s2 [..., n]: top-subk of each, the
 * subk*subk candidate sums, their top-k, the gate over the k selected scores, and the expert
 * index a * n + b. Ties go to the lower index at every step, as topk does. subk = k is the
 * paper's layer; PEER-pytorch's product_key_topk is a subk other than k.
 */
export const product_retrieve = defineOp({
  name: 'product_retrieve',
  inputs: ['s1', 's2'],
  attrs: { k: 'int', subk: 'int', gate: 'string' },
  infer([s1, s2], attrs) {
    requireDtype(s1!, 'f32', "'product_retrieve'");
    const k = attrs.k as number, subk = attrs.subk as number;
    if (!(k >= 1 && subk >= 1 && k <= subk * subk)) fail('PEER0402', null, { k: String(k), n: `${subk * subk} candidates` });
    if (shapeToString(s1!.shape) !== shapeToString(s2!.shape)) fail('PEER0303', null, { what: 'product_retrieve', expected: shapeToString(s1!.shape), found: shapeToString(s2!.shape), detail: '' });
    const n = s1!.shape[s1!.shape.length - 1]!;
    const shape = [...s1!.shape.slice(0, -1), Dim.of(attrs.k as number)];
    return [{ dtype: 'f32', shape }, { dtype: 'index', shape, bound: n.mul(n) }];
  },
  evaluate([s1, s2], attrs) {
    const k = attrs.k as number, sk = attrs.subk as number;
    const n = s1!.shape[s1!.shape.length - 1]!;
    const lanes = s1!.size / n;
    const shape = [...s1!.shape.slice(0, -1), k];
    const w = Tensor.zeros('f32', shape), idx = Tensor.zeros('index', shape);
    for (let l = 0; l < lanes; l++) {
      const r1 = s1!.data.subarray(l * n, l * n + n), r2 = s2!.data.subarray(l * n, l * n + n);
      const a = topkLane(r1, sk), b = topkLane(r2, sk);
      const cand = new Float64Array(sk * sk);
      for (let i = 0; i < sk; i++) for (let j = 0; j < sk; j++) cand[i * sk + j] = r1[a[i]!]! + r2[b[j]!]!;
      const best = topkLane(cand, k);
      const g = gateValues(best.map((c) => cand[c]!), attrs.gate as Gate);
      best.forEach((c, j) => {
        w.data[l * k + j] = g[j]!;
        idx.data[l * k + j] = a[Math.floor(c / sk)]! * n + b[c % sk]!;
      });
    }
    return [w, idx];
  },
  // The selection has no gradient; each selected score s1[a] + s2[b] passes its gradient (through
  // the gate) to s1[a] and s2[b], with a = idx / n and b = idx mod n.
  grad(b, { inputs: [s1, s2], outputs: [w, idx], attrs }, [dw]) {
    if (!dw) return [undefined, undefined];
    const shape = b.type(s1!).shape;
    const n = shape[shape.length - 1]!;
    const gate = attrs.gate as Gate;
    const axis = shape.length - 1;
    const [rowOf, colOf] = b.ops('unravel', [idx!], { n: [n] }) as [GradValue, GradValue];
    // An activation's derivative reads the selected raw scores s1[a] + s2[b].
    const dscore = gateGradient(b, gate, dw, w!, axis, () => b.op('add', [b.op('take_along', [s1!, rowOf]), b.op('take_along', [s2!, colOf])]));
    return [b.op('scatter_along', [dscore, rowOf], { n: [n] }), b.op('scatter_along', [dscore, colOf], { n: [n] })];
  },
});

/**
 * One more product-key factor (arity-3 keys and beyond): given k1 selected scores v [..., k1]
 * with their expert ids [..., k1] (a product_retrieve's, say) and a third sub-key score row
 * s3 [..., n], the top-subk of s3, the k1*subk candidate sums v[i] + s3[c_j], their top-k, the
 * gate, the expert ids ids[i] * n + c_j, and (result 2) each selection's candidate position
 * i * subk + j. Ties go to the lower index at every step, as topk does: exactly the primitive
 * ops it replaces (src/passes/fuse.ts fuseRetrievalExtend), without their [.., k1, subk] tensors.
 */
export const product_extend = defineOp({
  name: 'product_extend',
  inputs: ['v', 'ids', 's3'],
  attrs: { k: 'int', subk: 'int', gate: 'string' },
  infer([v, ids, s3], attrs) {
    requireDtype(v!, 'f32', "'product_extend' scores");
    requireDtype(ids!, 'index', "'product_extend' ids");
    requireDtype(s3!, 'f32', "'product_extend' sub-key scores");
    if (shapeToString(v!.shape) !== shapeToString(ids!.shape) || shapeToString(v!.shape.slice(0, -1)) !== shapeToString(s3!.shape.slice(0, -1)))
      fail('PEER0303', null, { what: 'product_extend', expected: 'scores and ids [.., k1], sub-key scores [.., n]', found: `${shapeToString(v!.shape)}, ${shapeToString(ids!.shape)}, ${shapeToString(s3!.shape)}`, detail: '' });
    const k = attrs.k as number, subk = attrs.subk as number;
    const k1 = v!.shape[v!.shape.length - 1]!.value!;
    if (!(k >= 1 && subk >= 1 && k <= k1 * subk)) fail('PEER0402', null, { k: String(k), n: `${k1 * subk} candidates` });
    const n = s3!.shape[s3!.shape.length - 1]!;
    const shape = [...v!.shape.slice(0, -1), Dim.of(k)];
    const bound = ids!.bound?.mul(n);
    return [{ dtype: 'f32', shape }, { dtype: 'index', shape, ...(bound ? { bound } : {}) }, { dtype: 'index', shape, bound: Dim.of(k1 * subk) }];
  },
  evaluate([v, ids, s3], attrs) {
    const k = attrs.k as number, sk = attrs.subk as number;
    const k1 = v!.shape[v!.shape.length - 1]!, n = s3!.shape[s3!.shape.length - 1]!;
    const lanes = s3!.size / n;
    const shape = [...s3!.shape.slice(0, -1), k];
    const w = Tensor.zeros('f32', shape), out = Tensor.zeros('index', shape), which = Tensor.zeros('index', shape);
    for (let l = 0; l < lanes; l++) {
      const r = s3!.data.subarray(l * n, l * n + n);
      const c = topkLane(r, sk);
      const cand = new Float64Array(k1 * sk);
      for (let i = 0; i < k1; i++) for (let j = 0; j < sk; j++) cand[i * sk + j] = v!.data[l * k1 + i]! + r[c[j]!]!;
      const best = topkLane(cand, k);
      const g = gateValues(best.map((p) => cand[p]!), attrs.gate as Gate);
      best.forEach((p, j) => {
        w.data[l * k + j] = g[j]!;
        out.data[l * k + j] = ids!.data[l * k1 + Math.floor(p / sk)]! * n + c[p % sk]!;
        which.data[l * k + j] = p;
      });
    }
    return [w, out, which];
  },
  // Each selected score v[i] + s3[c] passes its gradient (through the gate) to v[i], i = which / subk,
  // and to s3[c], c = id mod n.
  grad(b, { inputs: [v, , s3], outputs: [w, ids, which], attrs }, [dw]) {
    if (!dw) return [undefined, undefined, undefined];
    const k1 = b.type(v!).shape.at(-1)!, n = b.type(s3!).shape.at(-1)!;
    const gate = attrs.gate as Gate;
    const axis = b.type(v!).shape.length - 1;
    const pos = (b.ops('unravel', [which!], { n: [Dim.of(attrs.subk as number)] }) as [GradValue, GradValue])[0];
    const col = (b.ops('unravel', [ids!], { n: [n] }) as [GradValue, GradValue])[1];
    const dscore = gateGradient(b, gate, dw, w!, axis, () => b.op('add', [b.op('take_along', [v!, pos]), b.op('take_along', [s3!, col])]));
    return [b.op('scatter_along', [dscore, pos], { n: [k1] }), undefined, b.op('scatter_along', [dscore, col], { n: [n] })];
  },
});

/** Activations the expert fusion applies per (token, slot); each is the unary op of that name. */
export { EXPERT_ACTIVATIONS } from './unary.js';

const activation = (name: string): ((x: number) => number) => (name === 'none' ? (x) => x : UNARY_FUNCTIONS.get(name)!);

/**
 * The `block` attribute of the expert ops: 1, or m when the indices come in runs of m
 * consecutive rows along their last axis (idx[.., j] = idx[.., 0] + j: a table of m rows per
 * expert read as N*m rows). It says nothing new about the values; it lets a backend group the
 * slots by expert and run one matrix product per expert (each expert's m rows read once per
 * call instead of once per slot). The reference checks the claim.
 */
function checkBlock(op: string, idx: { shape: readonly Dim[] }, block: number): void {
  if (!Number.isInteger(block) || block < 1) throw new Error(`${op}: block must be a positive integer, not ${block}`);
  const last = idx.shape.at(-1);
  if (block > 1 && !(last?.value === block)) fail('PEER0303', null, { what: `${op} indices`, expected: `a last axis of ${block} (the block)`, found: shapeToString(idx.shape), detail: '' });
}

function checkRuns(op: string, idx: Tensor, block: number): void {
  if (block === 1) return;
  for (let i = 0; i < idx.size; i++)
    if (i % block !== 0 && idx.data[i] !== idx.data[i - 1]! + 1) throw new Error(`${op}: indices are not runs of ${block} consecutive rows (the block attribute is wrong)`);
}

/** h_i = w_i * act(U[idx_i] . x_t) for every (token, slot): no [T, ..., d] gather is made. */
export const expert_act = defineOp({
  name: 'expert_act',
  inputs: ['x', 'U', 'indices', 'weights'],
  attrs: { act: 'string', block: 'int' },
  infer([x, u, idx, w], attrs) {
    requireDtype(idx!, 'index', "'expert_act' indices");
    checkBlock('expert_act', idx!, attrs.block as number);
    if (shapeToString(idx!.shape) !== shapeToString(w!.shape)) fail('PEER0303', null, { what: 'expert_act weights', expected: shapeToString(idx!.shape), found: shapeToString(w!.shape), detail: '' });
    if (!x!.shape[1]!.equals(u!.shape[1]!) || !x!.shape[0]!.equals(idx!.shape[0]!)) fail('PEER0303', null, { what: 'expert_act', expected: 'x [T, d], U [N, d], indices [T, ...]', found: `${shapeToString(x!.shape)}, ${shapeToString(u!.shape)}, ${shapeToString(idx!.shape)}`, detail: '' });
    return [{ dtype: 'f32', shape: w!.shape }];
  },
  evaluate([x, u, idx, w], attrs) {
    checkRuns('expert_act', idx!, attrs.block as number);
    const d = x!.shape[1]!, rows = u!.shape[0]!;
    const perToken = idx!.size / x!.shape[0]!;
    const act = activation(attrs.act as string);
    const out = Tensor.zeros('f32', w!.shape);
    for (let i = 0; i < idx!.size; i++) {
      const e = idx!.data[i]!, t = Math.floor(i / perToken);
      if (!(e >= 0 && e < rows)) throw runtimeIndexError('expert_act', e, rows);
      let dot = 0;
      for (let j = 0; j < d; j++) dot += u!.element(e * d + j) * x!.data[t * d + j]!;
      out.data[i] = w!.data[i]! * act(dot);
    }
    return [out];
  },
  indexRange: ([, u]) => [undefined, undefined, u!.shape[0]],
});

/** y_t = sum over slots of h_i * V[idx_i] (plus an optional residual): no [T, ..., d] gather. */
export const expert_out = defineOp({
  name: 'expert_out',
  inputs: ['h', 'V', 'indices', 'residual...'],
  attrs: { block: 'int' },
  infer([h, v, idx, residual], attrs) {
    requireDtype(idx!, 'index', "'expert_out' indices");
    checkBlock('expert_out', idx!, attrs.block as number);
    const shape = [h!.shape[0]!, v!.shape[1]!];
    if (residual && shapeToString(residual.shape) !== shapeToString(shape)) fail('PEER0303', null, { what: 'expert_out residual', expected: shapeToString(shape), found: shapeToString(residual.shape), detail: '' });
    return [{ dtype: 'f32', shape }];
  },
  evaluate([h, v, idx, residual], attrs) {
    checkRuns('expert_out', idx!, attrs.block as number);
    const T = h!.shape[0]!, d = v!.shape[1]!, rows = v!.shape[0]!;
    const perToken = idx!.size / T;
    const out = residual ? new Tensor('f32', [T, d], Float64Array.from(residual.data)) : Tensor.zeros('f32', [T, d]);
    for (let i = 0; i < idx!.size; i++) {
      const e = idx!.data[i]!, t = Math.floor(i / perToken);
      if (!(e >= 0 && e < rows)) throw runtimeIndexError('expert_out', e, rows);
      for (let j = 0; j < d; j++) out.data[t * d + j] = out.data[t * d + j]! + h!.data[i]! * v!.element(e * d + j);
    }
    return [out];
  },
  indexRange: ([, v]) => [undefined, undefined, v!.shape[0]],
});

/**
 * einsum followed by evaluation-mode BatchNorm over the last `channels` cells of each row of
 * its output: (e - mean) / sqrt(var + eps) * gamma + beta, reshaped to `shape`.
 */
export const einsum_bn = defineOp({
  name: 'einsum_bn',
  inputs: ['a', 'b', 'gamma', 'beta', 'running_mean', 'running_var'],
  attrs: { spec: 'string', eps: 'float', shape: 'dims' },
  infer([a, b, ...ps], attrs) {
    const [e] = einsum.infer([a!, b!], { spec: attrs.spec as string });
    const shape = attrs.shape as readonly Dim[];
    const c = shape[shape.length - 1]!;
    for (const p of ps) if (!p.shape[0]!.equals(c)) fail('PEER0303', null, { what: 'einsum_bn channels', expected: c.toString(), found: shapeToString(p.shape), detail: '' });
    if (!e!.shape.reduce((x, y) => x.mul(y), Dim.of(1)).equals(shape.reduce((x, y) => x.mul(y), Dim.of(1)))) fail('PEER0306', null, { from: shapeToString(e!.shape), to: shapeToString(shape), detail: 'sizes differ' });
    return [{ dtype: 'f32', shape }];
  },
  evaluate([a, b, g, beta, mean, variance], attrs, ctx) {
    const [e] = einsum.evaluate!([a!, b!], { spec: attrs.spec as string }, ctx);
    const shape = (attrs.shape as readonly Dim[]).map((d) => ctx.dimValue(d));
    const c = shape[shape.length - 1]!;
    const eps = attrs.eps as number;
    const out = new Tensor('f32', shape, new Float64Array(e!.size));
    for (let i = 0; i < e!.size; i++) {
      const j = i % c;
      out.data[i] = ((e!.data[i]! - mean!.data[j]!) / Math.sqrt(variance!.data[j]! + eps)) * g!.data[j]! + beta!.data[j]!;
    }
    return [out];
  },
});
