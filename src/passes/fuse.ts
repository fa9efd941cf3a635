// Fusion rules: primitive-op patterns -> fused ops (src/ir/ops/fused.ts). The patterns are
// the primitive ops themselves, so a variant written without the prelude fuses too. A rule
// never fires when an intermediate it would absorb has another user: fusing would then
// compute that work twice.
import { ref, type Graph, type Node, type ValueRef } from '../ir/graph.js';
import { parseEinsum } from '../ir/ops/einsum.js';
import { EXPERT_ACTIVATIONS, type Gate } from '../ir/ops/fused.js';
import { gateActivation } from '../ir/ops/unary.js';
import type { RewriteContext, RewriteRule } from './rebuild.js';

const same = (a: ValueRef, b: ValueRef) => a.node === b.node && a.result === b.result;
const nodeOf = (ctx: RewriteContext, r: ValueRef) => ctx.src.node(r.node);
const rank = (ctx: RewriteContext, r: ValueRef) => ctx.src.typeOf(r).shape.length;

/** Only the given nodes use `id` (so absorbing it into a fusion duplicates no work). */
function onlyUsedBy(ctx: RewriteContext, id: number, allowed: readonly number[]): boolean {
  return ctx.users(id).every((u) => allowed.includes(u.id));
}

/** expand_dims(x) adding an axis at `fromEnd` positions before the end (1 = last). */
function expandOf(ctx: RewriteContext, r: ValueRef, fromEnd: number): ValueRef | undefined {
  const n = nodeOf(ctx, r);
  if (n.op !== 'expand_dims') return undefined;
  return (n.attrs.axis as number) === rank(ctx, r) - fromEnd ? n.inputs[0] : undefined;
}

/** Through scalings by constants (x * c, c * x, x / c, -x) to a value. */
function unscaled(ctx: RewriteContext, r: ValueRef): ValueRef {
  for (let n = nodeOf(ctx, r); ; n = nodeOf(ctx, r)) {
    if (n.op === 'neg') r = n.inputs[0]!;
    else if ((n.op === 'mul' || n.op === 'div' || n.op === 'add' || n.op === 'sub') && n.inputs.some((i) => nodeOf(ctx, i).op === 'const')) r = n.inputs.find((i) => nodeOf(ctx, i).op !== 'const') ?? r;
    else return r;
    if (nodeOf(ctx, r) === n) return r;
  }
}

/** A top-k's selected scores, expanded at `fromEnd`, possibly scaled before or after the expand. */
function selectedScores(ctx: RewriteContext, r: ValueRef, fromEnd: number): ValueRef | undefined {
  const e = expandOf(ctx, unscaled(ctx, r), fromEnd);
  const v = e && unscaled(ctx, e);
  return v && v.result === 0 && nodeOf(ctx, v).op === 'topk' ? v : undefined;
}

interface Candidates {
  s1: ValueRef;
  s2: ValueRef;
  k: number;
  top1: Node;
  top2: Node;
  chain: number[];
}

/** reshape(expand(v1, last) + expand(v2, second last)) with (v1, a) = topk(s1, k), (v2, b) = topk(s2, k). */
function matchCandidates(ctx: RewriteContext, r: ValueRef): Candidates | undefined {
  const reshape = nodeOf(ctx, r);
  if (reshape.op !== 'reshape') return undefined;
  const add = nodeOf(ctx, reshape.inputs[0]!);
  if (add.op !== 'add') return undefined;
  const v1 = expandOf(ctx, add.inputs[0]!, 1), v2 = expandOf(ctx, add.inputs[1]!, 2);
  if (!v1 || !v2 || v1.result !== 0 || v2.result !== 0) return undefined;
  const top1 = nodeOf(ctx, v1), top2 = nodeOf(ctx, v2);
  if (top1.op !== 'topk' || top2.op !== 'topk' || top1.attrs.k !== top2.attrs.k) return undefined;
  if (ctx.src.typeOf(top1.inputs[0]!).shape.map(String).join() !== ctx.src.typeOf(top2.inputs[0]!).shape.map(String).join()) return undefined;
  return { s1: top1.inputs[0]!, s2: top2.inputs[0]!, k: top1.attrs.k as number, top1, top2, chain: [reshape.id, add.id, add.inputs[0]!.node, add.inputs[1]!.node] };
}

/** reshape(expand(a, last) * n + expand(b, second last)): the product index of the pairs. */
function matchExperts(ctx: RewriteContext, r: ValueRef, c: Candidates): number[] | undefined {
  const reshape = nodeOf(ctx, r);
  if (reshape.op !== 'reshape') return undefined;
  const add = nodeOf(ctx, reshape.inputs[0]!);
  if (add.op !== 'add') return undefined;
  const mul = nodeOf(ctx, add.inputs[0]!);
  if (mul.op !== 'mul') return undefined;
  const n = ctx.src.typeOf(c.s1).shape.at(-1)!.value;
  const isN = (x: ValueRef) => nodeOf(ctx, x).op === 'const' && nodeOf(ctx, x).attrs.value === n;
  const scaled = isN(mul.inputs[1]!) ? mul.inputs[0]! : isN(mul.inputs[0]!) ? mul.inputs[1]! : undefined;
  if (!scaled) return undefined;
  const a = expandOf(ctx, scaled, 1), b = expandOf(ctx, add.inputs[1]!, 2);
  if (!a || !b || !same(a, ref(c.top1.id, 1)) || !same(b, ref(c.top2.id, 1))) return undefined;
  return [reshape.id, add.id, mul.id, scaled.node, add.inputs[1]!.node];
}

/** The gate applied to the selected scores when it is their only use. */
function gateOf(ctx: RewriteContext, top: Node): { gate: Gate; node?: Node } {
  const users = ctx.users(top.id).filter((u) => u.inputs.some((i) => i.node === top.id && i.result === 0));
  const u = users.length === 1 ? users[0]! : undefined;
  if (u && gateActivation(u.op)) return { gate: u.op, node: u };
  if (u?.op === 'softmax' && (u.attrs.axis as number) === rank(ctx, u.inputs[0]!) - 1) return { gate: 'softmax', node: u };
  return { gate: 'none' };
}

/**
 * The whole product-key pattern around the final top-k node, if its pieces have no other users.
 * The selected scores may have any users: a softmax or an activation that is their only use becomes
 * the fused op's epilogue; any other gate (a temperature, raw scores, ...) reads the fused
 * op's raw scores [.., k] and stays elementwise, so the candidates are never built either way.
 * `why` collects the reason when the pattern is recognised but cannot fuse.
 */
function matchRetrieval(ctx: RewriteContext, top: Node, why?: string[]): { c: Candidates; k: number; gate: Gate; take: Node } | undefined {
  if (top.op !== 'topk') return undefined;
  const c = matchCandidates(ctx, top.inputs[0]!);
  if (!c) return undefined;
  const no = (reason: string) => (why?.push(reason), undefined);
  const takes = ctx.users(top.id).filter((u) => u.op === 'take_along');
  if (takes.length !== 1 || !same(takes[0]!.inputs[1]!, ref(top.id, 1))) return no('the selected candidates are not mapped to expert ids by exactly one take_along');
  const experts = matchExperts(ctx, takes[0]!.inputs[0]!, c);
  if (!experts) return no('the expert ids are not the product index a * n + b of the two sub-key selections');
  const inside = [top.id, ...c.chain, ...experts, takes[0]!.id];
  const gate = gateOf(ctx, top);
  const outside = (id: number) => ctx.users(id).filter((u) => !inside.includes(u.id));
  for (const [what, id] of [['the first sub-key top-k', c.top1.id], ['the second sub-key top-k', c.top2.id], ...[...c.chain, ...experts].map((id) => [`the intermediate ${ctx.src.node(id).op} %${id}`, id] as const)] as const) {
    const others = outside(id);
    if (others.length) return no(`${what} has another user (${others.map((u) => `${u.op} %${u.id}`).join(', ')}); fusing would compute it twice`);
  }
  const localIdx = ctx.users(top.id).filter((u) => !inside.includes(u.id) && u.inputs.some((i) => i.node === top.id && i.result === 1));
  if (localIdx.length) return no(`the final top-k's local candidate indices are used by ${localIdx.map((u) => `${u.op} %${u.id}`).join(', ')}`);
  return { c, k: top.attrs.k as number, gate: gate.gate, take: takes[0]! };
}

/** Why the retrieval pattern ending at this final top-k did not fuse, or undefined if it is not one. */
export function retrievalMiss(ctx: RewriteContext, top: Node): string | undefined {
  if (top.op !== 'topk') return undefined;
  // The extension rule fuses any pair whose second side is a sub-key top-k (a first pair that
  // fuse-retrieval leaves, a third factor): then nothing is left unfused.
  const extension: string[] = [];
  if (matchExtension(ctx, top, extension)) return undefined;
  if (!matchCandidates(ctx, top.inputs[0]!)) {
    if (extension.length) return `${extension[0]} (one more sub-key factor on selected scores, fuse-retrieval-extend)`;
    // Candidate sums of some other pair of score lists (a third product-key factor, say).
    const reshape = nodeOf(ctx, top.inputs[0]!);
    const add = reshape.op === 'reshape' ? nodeOf(ctx, reshape.inputs[0]!) : undefined;
    const v1 = add?.op === 'add' ? expandOf(ctx, add.inputs[0]!, 1) : undefined, v2 = add?.op === 'add' ? expandOf(ctx, add.inputs[1]!, 2) : undefined;
    // Sub-key scores scaled or shifted on their way into the sum (v1 + 0.5 * v2): the fused kernel sums them plainly.
    const a = add?.op === 'add' ? selectedScores(ctx, add.inputs[0]!, 1) : undefined, b = add?.op === 'add' ? selectedScores(ctx, add.inputs[1]!, 2) : undefined;
    const direct = v1 && v2 && nodeOf(ctx, v1).op === 'topk' && nodeOf(ctx, v2).op === 'topk';
    if (a && b && !direct) return 'its candidates are not the plain sum of the two sub-key top-k scores (arithmetic sits between the top-k and the candidate sum, e.g. v1 + 0.5 * v2); the fused retrieval sums s1[a] + s2[b], so scale a sub-key\'s scores before its top-k instead (it selects the same experts when the scale is positive)';
    if (!v1 || !v2) return undefined;
    const ops = [nodeOf(ctx, v1).op, nodeOf(ctx, v2).op];
    return `its candidate sums combine ${ops.join(' and ')} results, not two sub-key top-k selections of one k (product_retrieve fuses two factors; a third factor's candidates are built, k*k per lane)`;
  }
  const why: string[] = [];
  if (matchRetrieval(ctx, top, why)) return undefined;
  // Ids that are not a * n + b of two sub-key selections: a further factor on a retrieval's ids (arity 3), whose reason is the extension's.
  const extended = extension.length > 0 && why[0]?.startsWith('the expert ids are not the product index');
  return extended ? `${extension[0]} (one more sub-key factor on selected scores, fuse-retrieval-extend)` : why[0];
}

function emitRetrieval(g: Graph, ctx: RewriteContext, m: { c: Candidates; k: number; gate: Gate }, span: Node['span']): number {
  return g.add('product_retrieve', [ctx.map(m.c.s1), ctx.map(m.c.s2)], { k: m.k, subk: m.c.k, gate: m.gate }, span);
}

export const fuseRetrieval: RewriteRule = {
  name: 'fuse-retrieval',
  doc: 'topk/topk (subk each)/candidate sums/topk (k, any k <= subk^2, top-1 included)/take_along of two sub-key score rows -> product_retrieve; the [.., subk, subk] candidate tensors are never made. Any gate: a softmax or any activation of the unary table (relu, sigmoid, softplus, ...) that is the scores\' only use is the epilogue, any other expression (a temperature, raw scores) reads the raw selected scores. Does not fire if an intermediate has another user, and never absorbs the scoring einsum (recomputing it per slot would multiply work).',
  apply(node, _inputs, g, _m, ctx) {
    if (node.op === 'take_along') {
      const top = nodeOf(ctx, node.inputs[1]!);
      const m = matchRetrieval(ctx, top);
      return m ? [ref(emitRetrieval(g, ctx, m, node.span), 1)] : undefined;
    }
    if (node.op === 'softmax' || gateActivation(node.op)) {
      const top = nodeOf(ctx, node.inputs[0]!);
      const m = node.inputs[0]!.result === 0 ? matchRetrieval(ctx, top) : undefined;
      return m && m.gate !== 'none' ? [ref(emitRetrieval(g, ctx, m, node.span), 0)] : undefined;
    }
    if (node.op === 'topk') {
      const m = matchRetrieval(ctx, node);
      if (!m || m.gate !== 'none') return undefined;
      const id = emitRetrieval(g, ctx, m, node.span);
      // The local candidate indices (#1) only feed the take_along, which becomes product_retrieve#1.
      return [ref(id, 0), ref(id, 1)];
    }
    return undefined;
  },
};

interface Extension {
  /** Selected scores [.., k1] and their expert ids [.., k1] (a first retrieval's results). */
  v: ValueRef;
  ids: ValueRef;
  /** The new factor's sub-key scores [.., n], its top-subk node, and the final top-k. */
  s3: ValueRef;
  top3: Node;
  top: Node;
  take: Node;
  gate: Gate;
}

/**
 * topk(reshape(expand(v, last) + expand(v3, second last)), k) with (v3, c) = topk(s3, subk), and
 * take_along(reshape(expand(ids, last) * n + expand(c, second last)), its #1): one more
 * product-key factor on selected scores v with expert ids `ids` (arity-3 keys: v, ids are the
 * first pair's retrieval). `why` collects the reason when the pattern is recognised but cannot fuse.
 */
function matchExtension(ctx: RewriteContext, top: Node, why?: string[]): Extension | undefined {
  if (top.op !== 'topk') return undefined;
  const reshape = nodeOf(ctx, top.inputs[0]!);
  const add = reshape.op === 'reshape' ? nodeOf(ctx, reshape.inputs[0]!) : undefined;
  if (add?.op !== 'add') return undefined;
  const v = expandOf(ctx, add.inputs[0]!, 1), v3 = expandOf(ctx, add.inputs[1]!, 2);
  if (!v || !v3 || v3.result !== 0 || nodeOf(ctx, v3).op !== 'topk' || ctx.src.typeOf(v).dtype !== 'f32' || ctx.src.typeOf(v).shape.at(-1)?.value === undefined) return undefined;
  const top3 = nodeOf(ctx, v3);
  const s3 = top3.inputs[0]!;
  const n = ctx.src.typeOf(s3).shape.at(-1)!.value;
  const no = (reason: string) => (why?.push(reason), undefined);
  const takes = ctx.users(top.id).filter((u) => u.op === 'take_along');
  if (takes.length !== 1 || !same(takes[0]!.inputs[1]!, ref(top.id, 1))) return no('the selected candidates are not mapped to expert ids by exactly one take_along');
  const er = nodeOf(ctx, takes[0]!.inputs[0]!);
  const eadd = er.op === 'reshape' ? nodeOf(ctx, er.inputs[0]!) : undefined;
  const mul = eadd?.op === 'add' ? nodeOf(ctx, eadd.inputs[0]!) : undefined;
  const isN = (x: ValueRef) => nodeOf(ctx, x).op === 'const' && nodeOf(ctx, x).attrs.value === n;
  const scaled = mul?.op !== 'mul' ? undefined : isN(mul.inputs[1]!) ? mul.inputs[0]! : isN(mul.inputs[0]!) ? mul.inputs[1]! : undefined;
  const ids = scaled && expandOf(ctx, scaled, 1), c = eadd && expandOf(ctx, eadd.inputs[1]!, 2);
  if (!ids || !c || !same(c, ref(top3.id, 1)) || ctx.src.typeOf(ids).shape.map(String).join() !== ctx.src.typeOf(v).shape.map(String).join())
    return no('the expert ids are not ids * n + c of the selected candidates and the new sub-key selection');
  const inside = [top.id, reshape.id, add.id, add.inputs[0]!.node, add.inputs[1]!.node, er.id, eadd!.id, mul!.id, scaled!.node, eadd!.inputs[1]!.node, takes[0]!.id];
  const outside = (id: number) => ctx.users(id).filter((u) => !inside.includes(u.id));
  for (const [what, id] of [['the new sub-key top-k', top3.id], ...inside.slice(1, -1).map((id) => [`the intermediate ${ctx.src.node(id).op} %${id}`, id] as const)] as const) {
    const others = outside(id);
    if (others.length) return no(`${what} has another user (${others.map((u) => `${u.op} %${u.id}`).join(', ')}); fusing would compute it twice`);
  }
  return { v, ids, s3, top3, top, take: takes[0]!, gate: gateOf(ctx, top).gate };
}

function emitExtension(g: Graph, ctx: RewriteContext, e: Extension, span: Node['span']): number {
  return g.add('product_extend', [ctx.map(e.v), ctx.map(e.ids), ctx.map(e.s3)], { k: e.top.attrs.k as number, subk: e.top3.attrs.k as number, gate: e.gate }, span);
}

export const fuseRetrievalExtend: RewriteRule = {
  name: 'fuse-retrieval-extend',
  doc: 'one more product-key factor on selected scores and ids (arity-3 keys: after the first pair\'s product_retrieve): topk(s3, subk), the k1*subk candidate sums, their top-k and the ids * n + c -> product_extend, with the same gates as fuse-retrieval; the [.., k1, subk] candidates are never made',
  apply(node, _inputs, g, _m, ctx) {
    if (node.op === 'take_along') {
      const e = matchExtension(ctx, nodeOf(ctx, node.inputs[1]!));
      return e && same(node.inputs[1]!, ref(e.top.id, 1)) && e.take.id === node.id ? [ref(emitExtension(g, ctx, e, node.span), 1)] : undefined;
    }
    if (node.op === 'softmax' || gateActivation(node.op)) {
      const e = node.inputs[0]!.result === 0 ? matchExtension(ctx, nodeOf(ctx, node.inputs[0]!)) : undefined;
      return e && e.gate !== 'none' ? [ref(emitExtension(g, ctx, e, node.span), 0)] : undefined;
    }
    if (node.op === 'topk') {
      const e = matchExtension(ctx, node);
      if (!e || e.gate !== 'none') return undefined;
      // The final top-k's local indices are the candidate positions, product_extend#2.
      const id = emitExtension(g, ctx, e, node.span);
      return [ref(id, 0), ref(id, 2)];
    }
    return undefined;
  },
};

/** gather(table, idx) used only by `user`, with a table of rows [N, d] or of m rows per expert [N, m, d]. */
function soleGather(ctx: RewriteContext, r: ValueRef, user: Node): Node | undefined {
  const g = nodeOf(ctx, r);
  if (g.op !== 'gather' || ![2, 3].includes(rank(ctx, g.inputs[0]!)) || !onlyUsedBy(ctx, g.id, [user.id])) return undefined;
  return g;
}

/** einsum(gather(U, idx), x) contracting each row with x [T, d]: letters "ABCD,AD->ABC" (or "ABCMD,AD->ABCM" for U [N, m, d]). */
function matchExpertDot(ctx: RewriteContext, r: ValueRef): { U: ValueRef; idx: ValueRef; x: ValueRef; node: Node } | undefined {
  const e = nodeOf(ctx, r);
  if (e.op !== 'einsum' || e.inputs.length !== 2) return undefined;
  const spec = parseEinsum(e.attrs.spec as string, 2);
  // Either operand order: einsum("thkd,td->thk", rows, x) or einsum("td,thkd->thk", x, rows).
  for (const [gi, xi] of [[0, 1], [1, 0]] as const) {
    const gs = spec.inputs[gi]!, xs = spec.inputs[xi]!;
    const g = soleGather(ctx, e.inputs[gi]!, e);
    if (!g || xs.length !== 2 || xs !== gs[0]! + gs.at(-1)! || spec.output !== gs.slice(0, -1)) continue;
    return { U: g.inputs[0]!, idx: g.inputs[1]!, x: e.inputs[xi]!, node: e };
  }
  return undefined;
}

/**
 * The table and indices the fused expert kernels read: a table of m rows per expert [N, m, d]
 * is read as N*m rows [N*m, d] (a view), at indices idx * m + (0..m-1) [.., m] (a small index
 * tensor), so experts of any width use the same kernels.
 */
function expertRows(g: Graph, ctx: RewriteContext, table: ValueRef, idx: ValueRef, span: Node['span']): { table: ValueRef; idx: ValueRef; m: number } {
  const shape = ctx.src.typeOf(table).shape;
  if (shape.length === 2) return { table: ctx.map(table), idx: ctx.map(idx), m: 1 };
  const m = shape[1]!;
  const flat = ref(g.add('reshape', [ctx.map(table)], { shape: [shape[0]!.mul(m), shape[2]!] }, span));
  const r = g.typeOf(ctx.map(idx)).shape.length;
  const scaled = ref(g.add('mul', [ref(g.add('expand_dims', [ctx.map(idx)], { axis: r }, span)), g.constant(m.value!, 'index', span)], {}, span));
  const lanes = ref(g.add('iota', [], { n: [m] }, span));
  return { table: flat, idx: ref(g.add('add', [scaled, lanes], {}, span)), m: m.value! };
}

/** `w` broadcast to the shape of the (expanded) indices, when it is not that shape already. */
function weightsFor(g: Graph, w: ValueRef, idx: ValueRef, span: Node['span']): ValueRef {
  const want = g.typeOf(idx).shape;
  if (g.typeOf(w).shape.map(String).join() === want.map(String).join()) return w;
  return ref(g.add('broadcast_to', [w], { shape: want }, span));
}

export const fuseExpertActivation: RewriteRule = {
  name: 'fuse-expert-activation',
  doc: 'w * act(einsum(gather(U, idx), x)) with act any of EXPERT_ACTIVATIONS (the activations of the unary table, src/ir/ops/unary.ts) or none -> expert_act(x, U, idx, w): one dot product per (token, slot) straight from U\'s rows, no [T, .., d] gathered tensor; U may hold m rows per expert ([N, m, d], read as N*m rows). Does not fire if the gather or the dot products have other users.',
  apply(node, _inputs, g, _m, ctx) {
    if (node.op !== 'mul') return undefined;
    for (const [wi, ai] of [[0, 1], [1, 0]] as const) {
      let inner = node.inputs[ai]!;
      let act = 'none';
      const a = nodeOf(ctx, inner);
      if (a.op !== 'none' && EXPERT_ACTIVATIONS.includes(a.op) && onlyUsedBy(ctx, a.id, [node.id])) {
        act = a.op;
        inner = a.inputs[0]!;
      }
      const dot = matchExpertDot(ctx, inner);
      if (!dot || !onlyUsedBy(ctx, dot.node.id, [act === 'none' ? node.id : a.id])) continue;
      const w = node.inputs[wi]!;
      const dotShape = ctx.src.typeOf(inner).shape;
      // The weight must broadcast to the dot products without widening them.
      if (g.typeOf(ctx.map(w)).dtype !== 'f32' || ctx.src.typeOf(w).shape.length > dotShape.length || node.types[0]!.shape.map(String).join() !== dotShape.map(String).join()) continue;
      const rows = expertRows(g, ctx, dot.U, dot.idx, node.span);
      return [ref(g.add('expert_act', [ctx.map(dot.x), rows.table, rows.idx, weightsFor(g, ctx.map(w), rows.idx, node.span)], { act, block: rows.m }, node.span))];
    }
    return undefined;
  },
};

export const fuseExpertDot: RewriteRule = {
  name: 'fuse-expert-dot',
  doc: 'einsum(gather(U, idx), x) on its own (a GLU\'s second table, a biased or otherwise combined pre-activation) -> expert_act(x, U, idx, 1): the dot products straight from U\'s rows, whatever elementwise expression uses them. Does not fire if the gather has another user.',
  apply(node, _inputs, g, _m, ctx) {
    const dot = matchExpertDot(ctx, ref(node.id));
    if (!dot) return undefined;
    const rows = expertRows(g, ctx, dot.U, dot.idx, node.span);
    const ones = ref(g.add('broadcast_to', [g.constant(1, 'f32', node.span)], { shape: g.typeOf(rows.idx).shape }, node.span));
    return [ref(g.add('expert_act', [ctx.map(dot.x), rows.table, rows.idx, ones], { act: 'none', block: rows.m }, node.span))];
  },
};

export const fuseExpertOutput: RewriteRule = {
  name: 'fuse-expert-output',
  doc: 'einsum(h, gather(V, idx)) summing the slots: "ABC,ABCD->AD" (or "ABCM,ABCMD->AD" for V [N, m, d]) -> expert_out(h, V, idx): each output cell reads its column of the chosen rows, no [T, .., d] gathered tensor. Does not fire if the gather has another user.',
  apply(node, _inputs, g, _m, ctx) {
    if (node.op !== 'einsum' || node.inputs.length !== 2) return undefined;
    const spec = parseEinsum(node.attrs.spec as string, 2);
    for (const [hi, gi] of [[0, 1], [1, 0]] as const) {
      const hs = spec.inputs[hi]!, gs = spec.inputs[gi]!;
      const gather = soleGather(ctx, node.inputs[gi]!, node);
      if (!gather || gs !== hs + gs.at(-1)! || spec.output !== hs[0]! + gs.at(-1)!) continue;
      const rows = expertRows(g, ctx, gather.inputs[0]!, gather.inputs[1]!, node.span);
      if (g.typeOf(ctx.map(node.inputs[hi]!)).shape.map(String).join() !== g.typeOf(rows.idx).shape.map(String).join()) continue;
      return [ref(g.add('expert_out', [ctx.map(node.inputs[hi]!), rows.table, rows.idx], { block: rows.m }, node.span))];
    }
    return undefined;
  },
};

/**
 * How einsum `e` reads the gathered rows of its operand `gi`: dot products of each row with
 * x [T, d] ("ABCD,AD->ABC"), or the slot-weighted sum of the rows ("ABC,ABCD->AD").
 */
function expertRead(ctx: RewriteContext, e: Node, gi: 0 | 1): { kind: 'dot'; x: ValueRef } | { kind: 'out' | 'heads'; h: ValueRef } | undefined {
  if (e.op !== 'einsum' || e.inputs.length !== 2) return undefined;
  const g = nodeOf(ctx, e.inputs[gi]!);
  if (g.op !== 'gather' || ![2, 3].includes(rank(ctx, g.inputs[0]!))) return undefined;
  const spec = parseEinsum(e.attrs.spec as string, 2);
  const gs = spec.inputs[gi]!, os = spec.inputs[1 - gi]!;
  if (os.length === 2 && os === gs[0]! + gs.at(-1)! && spec.output === gs.slice(0, -1)) return { kind: 'dot', x: e.inputs[1 - gi]! };
  if (gs === os + gs.at(-1)! && spec.output === os[0]! + gs.at(-1)!) return { kind: 'out', h: e.inputs[1 - gi]! };
  // Sums over the last slot letter only, the others kept (the sub-key tables' backward: per token and head).
  if (os.length >= 3 && gs === os + gs.at(-1)! && spec.output === os.slice(0, -1) + gs.at(-1)!) return { kind: 'heads', h: e.inputs[1 - gi]! };
  return undefined;
}

export const fuseExpertReads: RewriteRule = {
  name: 'fuse-expert-reads',
  doc: 'In a training program: every einsum reading gathered expert rows, where all the gather\'s users are such reads (the forward\'s dot products and slot sums, the backward\'s dot products with the output gradient, and the sub-key tables\' backward, sums per token and head) -> expert_act(x, U, idx, 1) or expert_out(h, V, idx) (reshaped to [tokens x heads, slots] for sums per head): each reads the table\'s rows itself, so the [T, .., d] gathered tensor is never built. Only for backends that read parameter tables in place during training (BackendInfo.tablesInPlace): elsewhere a fused op would copy the whole table per call.',
  apply(node, _inputs, g, _m, ctx) {
    for (const gi of [0, 1] as const) {
      const read = expertRead(ctx, node, gi);
      if (!read) continue;
      const gather = nodeOf(ctx, node.inputs[gi]!);
      const allReads = ctx.users(gather.id).every((u) => ([0, 1] as const).some((j) => u.inputs[j]?.node === gather.id && expertRead(ctx, u, j) !== undefined));
      if (!allReads) continue;
      const rows = expertRows(g, ctx, gather.inputs[0]!, gather.inputs[1]!, node.span);
      if (read.kind === 'dot') {
        const ones = ref(g.add('broadcast_to', [g.constant(1, 'f32', node.span)], { shape: g.typeOf(rows.idx).shape }, node.span));
        return [ref(g.add('expert_act', [ctx.map(read.x), rows.table, rows.idx, ones], { act: 'none', block: rows.m }, node.span))];
      }
      const hShape = g.typeOf(ctx.map(read.h)).shape;
      if (hShape.map(String).join() !== g.typeOf(rows.idx).shape.map(String).join()) continue;
      if (read.kind === 'out') return [ref(g.add('expert_out', [ctx.map(read.h), rows.table, rows.idx], { block: rows.m }, node.span))];
      // The kept letters become expert_out's token axis: [.., K] -> [P, K], summed to [P, c], then back.
      const kept = hShape.slice(0, -1).reduce((a, b) => a.mul(b));
      const flat = (r: ValueRef) => ref(g.add('reshape', [r], { shape: [kept, hShape.at(-1)!] }, node.span));
      const out = ref(g.add('expert_out', [flat(ctx.map(read.h)), rows.table, flat(rows.idx)], { block: rows.m }, node.span));
      return [ref(g.add('reshape', [out], { shape: node.types[0]!.shape }, node.span))];
    }
    return undefined;
  },
};

export const fuseResidual: RewriteRule = {
  name: 'fuse-residual',
  doc: 'x + expert_out(h, V, idx) -> expert_out(h, V, idx, x): the residual add as the output kernel\'s epilogue. Fires only when the expert output has no other user.',
  apply(node, inputs, g, _m, ctx) {
    if (node.op !== 'add') return undefined;
    for (const [ri, ei] of [[0, 1], [1, 0]] as const) {
      const e = g.node(inputs[ei]!.node);
      if (e.op !== 'expert_out' || e.inputs.length !== 3 || !onlyUsedBy(ctx, node.inputs[ei]!.node, [node.id])) continue;
      if (g.typeOf(inputs[ri]!).shape.map(String).join() !== e.types[0]!.shape.map(String).join()) continue;
      return [ref(g.add('expert_out', [...e.inputs, inputs[ri]!], { block: e.attrs.block as number }, node.span))];
    }
    return undefined;
  },
};

export const fuseProjectionBatchnorm: RewriteRule = {
  name: 'fuse-projection-batchnorm',
  evaluationOnly: true,
  doc: 'batchnorm(reshape?(einsum(a, b))) in evaluation mode -> einsum_bn: the normalisation as the projection kernel\'s epilogue. Only in the inference pipeline (training needs batch statistics); does not fire if the einsum has another user.',
  apply(node, _inputs, g, _m, ctx) {
    if (node.op !== 'batchnorm') return undefined;
    let src = node.inputs[0]!;
    const skip: number[] = [];
    if (nodeOf(ctx, src).op === 'reshape') {
      skip.push(src.node);
      src = nodeOf(ctx, src).inputs[0]!;
    }
    const e = nodeOf(ctx, src);
    if (e.op !== 'einsum' || e.inputs.length !== 2) return undefined;
    if (!onlyUsedBy(ctx, e.id, skip.length ? skip : [node.id]) || (skip.length && !onlyUsedBy(ctx, skip[0]!, [node.id]))) return undefined;
    const shape = node.types[0]!.shape;
    return [ref(g.add('einsum_bn', [...e.inputs, ...node.inputs.slice(1)].map(ctx.map), { spec: e.attrs.spec as string, eps: node.attrs.eps as number, shape }, node.span))];
  },
};

export const FUSION_RULES: RewriteRule[] = [fuseRetrieval, fuseRetrievalExtend, fuseExpertActivation, fuseExpertDot, fuseExpertOutput, fuseResidual, fuseProjectionBatchnorm];
