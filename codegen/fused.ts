// Kernels for the fused ops. None of them materialises a [T, .., k, k] candidate tensor or a
// [T, .., d] gathered tensor: experts are read row by row from the tables where they are used.
import { ACTIVATIONS, renderBatchnorm, selectionLoop, type RenderInput } from './naive.js';
import { decompose, flatIndex, lit, sizeOf } from './kernel.js';
import { elementwiseGateJs } from '../src/ir/ops/unary.js';
import { attrsOf } from '../src/ir/ops/types.js';
import { expert_act, product_extend, product_retrieve } from '../src/ir/ops/fused.js';
import { batchnorm, layernorm, log_softmax, rmsnorm, softmax } from '../src/ir/ops/reductions.js';

export interface Stage {
  label: string;
  body: string;
  outputLength: number;
  loopMax: number;
  /** Each thread returns 4 values; outputLength counts threads. */
  vec4?: boolean;
  /** 'pairs': a [lanes, k] two-result op stored as (r0, r1, r0, r1) per thread; reordered on read-out. */
  layout?: 'pairs';
  /** Stages read node arguments a0.. plus earlier stages' outputs, named st0, st1, ... */
}

export type FusedRenderer = (r: RenderInput) => Stage[];

const X = 'this.thread.x';

// Product-key retrieval in four kernels, none holding more than a few scalars per thread
// (gpu.js threads cannot keep k values in a local array on webasm):
//  1. threshold: per (token, head, side) the k-th best sub-key score and its index (k passes);
//  2. survivors: per (token, head, side, m) the m-th sub-key at or above the threshold, in
//     index order (one pass);
//  3. sort: per (token, head, side, slot) the survivor with exactly `slot` better ones (k^2);
//  4. pair rank: the rank of each candidate pair (a, b) with (a+1)(b+1) <= k among such pairs
//     (any other pair has k better ones, ties included, since both lists are sorted);
//  5. combine: per (token, head, slot) the pair of that rank, the gate over the k selected
//     scores, and the product index a * n + b.
// Work per (token, head): about 3kn for the sub-keys and (k ln k)^2 for the pairs, instead
// of k^2 n / 2 and k^3 for slot-by-slot selection.
function productRetrieve(r: RenderInput): Stage[] {
  const sh = r.inShapes[0]!;
  const n = sh[sh.length - 1]!;
  // k: experts selected; sk: sub-keys kept per side (PEER-pytorch's product_key_topk), sk^2 >= k.
  const { k, subk: sk, gate } = attrsOf(product_retrieve, r.node);
  const lanes = sizeOf(sh) / n;
  const score = (side: string, c: string) => `(${side} < 0.5 ? ${r.acc.read(0, `o0 * ${n} + ${c}`)} : ${r.acc.read(1, `o0 * ${n} + ${c}`)})`;
  const sides = lanes * 2;
  const threshold: Stage = {
    label: 'product_retrieve:threshold',
    outputLength: 2 * sides,
    loopMax: Math.max(n, sk),
    body: [
      `let cell = ${X}; let second = 0.0;`,
      `if (cell >= ${sides}) { cell = cell - ${sides}; second = 1.0; }`,
      decompose('cell', [lanes, 2], 'o'),
      selectionLoop((c) => score('o1', c), n, sk, `${sk - 1}`, 'v', 'vi'),
      `return second > 0.5 ? vi : v;`,
    ].join('\n'),
  };
  const better = (cv: string, c: string, ov: string, oc: string) => `(${cv} > ${ov} || (${cv} == ${ov} && ${c} < ${oc}))`;
  const half = sides * sk;
  // The sk sub-keys at or above the threshold, in index order (exactly sk: the threshold is the sk-th).
  const survivors: Stage = {
    label: 'product_retrieve:survivors',
    outputLength: 2 * half,
    loopMax: n,
    body: [
      `let cell = ${X}; let second = 0.0;`,
      `if (cell >= ${half}) { cell = cell - ${half}; second = 1.0; }`,
      decompose('cell', [lanes, 2, sk], 'o'),
      `let tv = st0[o0 * 2 + o1]; let ti = st0[${sides} + o0 * 2 + o1];`,
      `let seen = 0.0; let found = 0.0;`,
      `for (let c = 0; c < ${n}; c++) {`,
      `  let cv = ${score('o1', 'c')};`,
      `  if (${better('cv', 'c', 'tv', 'ti')} || (cv == tv && c == ti)) { if (seen == o2) { found = c; } seen += 1.0; }`,
      `}`,
      `if (second > 0.5) { return found; }`,
      `return ${score('o1', 'found')};`,
    ].join('\n'),
  };
  // The survivors in score order: slot j takes the survivor with exactly j better ones.
  const sorted: Stage = {
    label: 'product_retrieve:sort',
    outputLength: 2 * half,
    loopMax: sk,
    body: [
      `let cell = ${X}; let second = 0.0;`,
      `if (cell >= ${half}) { cell = cell - ${half}; second = 1.0; }`,
      decompose('cell', [lanes, 2, sk], 'o'),
      `let base = (o0 * 2 + o1) * ${sk};`,
      `let rv = 0.0; let ri = 0.0;`,
      `for (let m = 0; m < ${sk}; m++) {`,
      `  let mv = st1[base + m]; let mi = st1[${half} + base + m];`,
      `  let rk = 0.0;`,
      `  for (let q = 0; q < ${sk}; q++) { let qv = st1[base + q]; let qi = st1[${half} + base + q]; if (${better('qv', 'qi', 'mv', 'mi')}) { rk += 1.0; } }`,
      `  if (rk == o2) { rv = mv; ri = mi; }`,
      `}`,
      `return second > 0.5 ? ri : rv;`,
    ].join('\n'),
  };
  const total = lanes * k;
  const registerSubkeys = sk <= REGISTER_TOPK_MAX;
  const subPaired = registerSubkeys && sk % 2 === 0;
  // Sorted sub-keys: [lanes, 2, sk] values then indices, or (subPaired) [lanes, 2, sk/2] x (v, i, v, i).
  const pairAt = (side: number, i: string, part: number) =>
    `st2[((o0 * 2 + ${side}) * ${sk / 2} + Math.floor((${i}) / 2.0)) * 4 + ((${i}) - Math.floor((${i}) / 2.0) * 2.0) * 2 + ${part}]`;
  const val = (side: number, i: string) => (subPaired ? pairAt(side, i, 0) : `st2[(o0 * 2 + ${side}) * ${sk} + ${i}]`);
  const idx = (side: number, i: string) => (subPaired ? pairAt(side, i, 1) : `st2[${half} + (o0 * 2 + ${side}) * ${sk} + ${i}]`);
  const pairs = sk * sk;
  // Rank of each candidate pair among the pairs that can make the top k, -1 for the others:
  // a pair (a, b) of sorted positions has (a+1)(b+1)-1 pairs at least as good and earlier.
  const pairRank: Stage = {
    label: 'product_retrieve:pair_rank',
    outputLength: lanes * pairs,
    loopMax: sk,
    body: [
      decompose(X, [lanes, sk, sk], 'o'),
      `if ((o1 + 1) * (o2 + 1) > ${k}) { return -1.0; }`,
      `let mc = o1 * ${sk} + o2;`,
      `let mv = ${val(0, 'o1')} + ${val(1, 'o2')};`,
      `let rk = 0.0;`,
      `for (let ia = 0; ia < ${sk}; ia++) {`,
      `  for (let ib = 0; ib < ${sk}; ib++) {`,
      `    if ((ia + 1) * (ib + 1) > ${k}) { break; }`,
      `    let cv = ${val(0, 'ia')} + ${val(1, 'ib')};`,
      `    if (${better('cv', `(ia * ${sk} + ib)`, 'mv', 'mc')}) { rk += 1.0; }`,
      `  }`,
      `}`,
      `return rk;`,
    ].join('\n'),
  };
  const weight = gate === 'softmax' ? 'Math.exp(sv - top) / z' : elementwiseGateJs(gate, 'sv');
  const rankOf = (ia: string, ib: string) => `st3[o0 * ${pairs} + ${ia} * ${sk} + ${ib}]`;
  const combine: Stage = {
    label: 'product_retrieve:combine',
    outputLength: 2 * total,
    loopMax: sk,
    body: [
      `let cell = ${X}; let second = 0.0;`,
      `if (cell >= ${total}) { cell = cell - ${total}; second = 1.0; }`,
      decompose('cell', [lanes, k], 'o'),
      `let top = 0.0; let sv = 0.0; let sa = 0.0; let sb = 0.0;`,
      `for (let ia = 0; ia < ${sk}; ia++) {`,
      `  for (let ib = 0; ib < ${sk}; ib++) {`,
      `    if ((ia + 1) * (ib + 1) > ${k}) { break; }`,
      `    let rk = ${rankOf('ia', 'ib')};`,
      `    if (rk == 0.0) { top = ${val(0, 'ia')} + ${val(1, 'ib')}; }`,
      `    if (rk == o1) { sv = ${val(0, 'ia')} + ${val(1, 'ib')}; sa = ia; sb = ib; }`,
      `  }`,
      `}`,
      `let z = 0.0;`,
      `for (let ia = 0; ia < ${sk}; ia++) {`,
      `  for (let ib = 0; ib < ${sk}; ib++) {`,
      `    if ((ia + 1) * (ib + 1) > ${k}) { break; }`,
      `    let rk = ${rankOf('ia', 'ib')};`,
      `    if (rk >= 0.0 && rk < ${lit(k)}) { z += Math.exp(${val(0, 'ia')} + ${val(1, 'ib')} - top); }`,
      `  }`,
      `}`,
      `if (second > 0.5) { return ${idx(0, 'sa')} * ${lit(n)} + ${idx(1, 'sb')}; }`,
      `return ${weight};`,
    ].join('\n'),
  };
  const subkeys = registerSubkeys ? [registerTopk(r, lanes, n, sk, score)] : [threshold, survivors, sorted];
  if (subPaired && k % 2 === 0 && k <= REGISTER_TOPK_MAX) return [subkeys[0]!, renumber(registerCombine(lanes, n, k, sk, gate, val, idx), 2)];
  return [...subkeys, ...[pairRank, combine].map((s) => renumber(s, subkeys.length === 1 ? 2 : 0))];
}

/**
 * A further product-key factor in two kernels: the new side's top-subk (value, index) per lane,
 * then per (token, head, slot) the slot-th best of the k1*subk candidate sums v[i] + s3[c_j]
 * (k selection passes, each excluding the ones before it: ties to the lower candidate), the
 * gate over the k selected, the expert id ids[i] * n + c_j and the candidate position.
 */
function productExtend(r: RenderInput): Stage[] {
  const vShape = r.inShapes[0]!, sh = r.inShapes[2]!;
  const k1 = vShape[vShape.length - 1]!, n = sh[sh.length - 1]!;
  const { k, subk: sk, gate } = attrsOf(product_extend, r.node);
  const lanes = sizeOf(sh) / n;
  const half = lanes * sk, total = lanes * k, cands = k1 * sk;
  const subkeys: Stage = {
    label: 'product_extend:subkey_topk',
    outputLength: 2 * half,
    loopMax: Math.max(n, sk),
    body: [
      `let cell = ${X}; let second = 0.0;`,
      `if (cell >= ${half}) { cell = cell - ${half}; second = 1.0; }`,
      decompose('cell', [lanes, sk], 'o'),
      selectionLoop((c) => r.acc.read(2, `o0 * ${n} + ${c}`), n, sk, 'o1', 'v', 'vi'),
      `return second > 0.5 ? vi : v;`,
    ].join('\n'),
  };
  const weight = gate === 'softmax' ? 'Math.exp(sv - top) / z' : elementwiseGateJs(gate, 'sv');
  const combine: Stage = {
    label: 'product_extend:combine',
    outputLength: 3 * total,
    loopMax: Math.max(cands, k),
    body: [
      `let cell = ${X}; let part = 0.0;`,
      `if (cell >= ${2 * total}) { cell = cell - ${2 * total}; part = 2.0; } else { if (cell >= ${total}) { cell = cell - ${total}; part = 1.0; } }`,
      decompose('cell', [lanes, k], 'o'),
      `let top = 0.0; let z = 0.0; let sv = 0.0; let si = 0.0; let pv = 3.4e38; let pi = -1.0;`,
      `for (let p = 0; p < ${k}; p++) {`,
      `  let bv = -3.4e38; let bi = -1.0;`,
      `  for (let c = 0; c < ${cands}; c++) {`,
      `    let ia = Math.floor(c / ${lit(sk)});`,
      `    let cv = ${r.acc.read(0, `o0 * ${k1} + ia`)} + st0[o0 * ${sk} + c - ia * ${lit(sk)}];`,
      `    if ((cv < pv || (cv == pv && c > pi)) && (bi < 0.0 || cv > bv || (cv == bv && c < bi))) { bv = cv; bi = c; }`,
      `  }`,
      `  pv = bv; pi = bi;`,
      `  if (p == 0) { top = bv; }`,
      `  z += Math.exp(bv - top);`,
      `  if (p == o1) { sv = bv; si = bi; }`,
      `}`,
      `if (part > 1.5) { return si; }`,
      `let sa = Math.floor(si / ${lit(sk)});`,
      `if (part > 0.5) { return ${r.acc.read(1, `o0 * ${k1} + sa`)} * ${lit(n)} + st0[${half} + o0 * ${sk} + si - sa * ${lit(sk)}]; }`,
      `return ${weight};`,
    ].join('\n'),
  };
  return [subkeys, combine];
}

/** Up to this k, the sub-key top-k keeps its k best in scalar registers (one pass over n). */
export const REGISTER_TOPK_MAX = 32;

/**
 * Source lines keeping the k best (value, index) pairs of a scan over 0..n-1 sorted in scalar
 * registers v0..v{k-1}, i0..i{k-1}: one compare per element, one bubble pass per insertion.
 * Elements arrive in index order, so an equal value never displaces an earlier one.
 */
function registerScan(n: number, k: number, score: string): string[] {
  const better = (a: number, b: number) => `(v${a} > v${b} || (v${a} == v${b} && i${a} < i${b}))`;
  return [
    Array.from({ length: k }, (_, i) => `let v${i} = -3.4e38; let i${i} = ${lit(n + i)};`).join(' '),
    `let tv = 0.0; let ti = 0.0;`,
    `for (let c = 0; c < ${n}; c++) {`,
    `  let cv = ${score};`,
    `  if (cv > v${k - 1}) {`,
    `    v${k - 1} = cv; i${k - 1} = c;`,
    ...Array.from({ length: k - 1 }, (_, j) => {
      const a = k - 1 - j, b = a - 1;
      return `    if (${better(a, b)}) { tv = v${b}; ti = i${b}; v${b} = v${a}; i${b} = i${a}; v${a} = tv; i${a} = ti; }`;
    }),
    `  }`,
    `}`,
  ];
}

/**
 * Sub-key top-k in one pass: every thread of a (token, head, side) keeps the k best (value,
 * index) pairs seen so far in scalar variables, sorted, inserting by one bubble pass, and
 * returns its own slot. Elements arrive in index order, so an equal value never displaces an
 * earlier one: ties go to the lower index. Threads of one row read the same scores, so the
 * SIMD lanes of webasm share every load.
 */
function registerTopk(r: RenderInput, lanes: number, n: number, k: number, score: (side: string, c: string) => string): Stage {
  if (k % 2 === 0) return registerTopkPairs(lanes, n, k, score);
  const half = lanes * 2 * k;
  const lines = [
    `let cell = ${X}; let second = 0.0;`,
    `if (cell >= ${half}) { cell = cell - ${half}; second = 1.0; }`,
    decompose('cell', [lanes, 2, k], 'o'),
    ...registerScan(n, k, score('o1', 'c')),
    `let rv = v0; let ri = i0;`,
    ...Array.from({ length: k - 1 }, (_, j) => `if (o2 == ${j + 1}) { rv = v${j + 1}; ri = i${j + 1}; }`),
    `return second > 0.5 ? ri : rv;`,
  ];
  return { label: 'product_retrieve:subkey_topk', outputLength: 2 * half, loopMax: n, body: lines.join('\n') };
}

/**
 * The final top-k over the candidate pairs (a, b) with (a+1)(b+1) <= k, kept sorted in scalar
 * registers (pairs arrive in index order a*k+b, so ties keep the lower index), then the gate
 * over all k scores; each thread returns two slots as (weight, expert, weight, expert).
 */
function registerCombine(lanes: number, n: number, k: number, sk: number, gate: string, val: (side: number, i: string) => string, idx: (side: number, i: string) => string): Stage {
  const better = (a: number, b: number) => `(v${a} > v${b} || (v${a} == v${b} && c${a} < c${b}))`;
  const weight = (v: string) => (gate === 'softmax' ? `Math.exp(${v} - v0) / z` : elementwiseGateJs(gate, v));
  const expert = (c: string) => `(${idx(0, `Math.floor(${c} / ${lit(sk)})`)} * ${lit(n)} + ${idx(1, `(${c} - Math.floor(${c} / ${lit(sk)}) * ${lit(sk)})`)})`;
  const lines = [
    decompose(X, [lanes, k / 2], 'o'),
    Array.from({ length: k }, (_, i) => `let v${i} = -3.4e38; let c${i} = ${lit(sk * sk + i)};`).join(' '),
    `let tv = 0.0; let tc = 0.0;`,
    `for (let ia = 0; ia < ${sk}; ia++) {`,
    `  for (let ib = 0; ib < ${sk}; ib++) {`,
    `    if ((ia + 1) * (ib + 1) > ${k}) { break; }`,
    `    let cv = ${val(0, 'ia')} + ${val(1, 'ib')};`,
    `    if (cv > v${k - 1}) {`,
    `      v${k - 1} = cv; c${k - 1} = ia * ${sk} + ib;`,
    ...Array.from({ length: k - 1 }, (_, j) => {
      const a = k - 1 - j, b = a - 1;
      return `      if (${better(a, b)}) { tv = v${b}; tc = c${b}; v${b} = v${a}; c${b} = c${a}; v${a} = tv; c${a} = tc; }`;
    }),
    `    }`,
    `  }`,
    `}`,
    `let z = 0.0;`,
    ...Array.from({ length: k }, (_, i) => `z += Math.exp(v${i} - v0);`),
    `let av = v0; let ac = c0; let bv = v1; let bc = c1;`,
    ...Array.from({ length: k / 2 - 1 }, (_, q) => `if (o1 == ${q + 1}) { av = v${2 * q + 2}; ac = c${2 * q + 2}; bv = v${2 * q + 3}; bc = c${2 * q + 3}; }`),
    `return [${weight('av')}, ${expert('ac')}, ${weight('bv')}, ${expert('bc')}];`,
  ];
  return { label: 'product_retrieve:combine', outputLength: lanes * (k / 2), loopMax: sk, body: lines.join('\n'), vec4: true, layout: 'pairs' };
}

// The same with each thread returning two slots as (value, index, value, index): k/2 threads
// per row instead of 2k, each making the one pass.
function registerTopkPairs(lanes: number, n: number, k: number, score: (side: string, c: string) => string): Stage {
  const lines = [
    decompose(X, [lanes, 2, k / 2], 'o'),
    ...registerScan(n, k, score('o1', 'c')),
    `let av = v0; let ai = i0; let bv = v1; let bi = i1;`,
    ...Array.from({ length: k / 2 - 1 }, (_, q) => `if (o2 == ${q + 1}) { av = v${2 * q + 2}; ai = i${2 * q + 2}; bv = v${2 * q + 3}; bi = i${2 * q + 3}; }`),
    `return [av, ai, bv, bi];`,
  ];
  return { label: 'product_retrieve:subkey_topk', outputLength: lanes * k, loopMax: n, body: lines.join('\n'), vec4: true };
}

/** Stages after a replaced prefix read earlier outputs under new names (st2 -> st0, ...). */
function renumber(s: Stage, shift: number): Stage {
  if (shift === 0) return s;
  return { ...s, body: s.body.replace(/\bst(\d+)\b/g, (_, d: string) => `st${Number(d) - shift}`) };
}

function expertAct(r: RenderInput): Stage[] {
  const [xs, us, is] = r.inShapes as [number[], number[], number[]];
  const d = xs[1]!;
  const count = sizeOf(is);
  const perToken = count / xs[0]!;
  const declared = attrsOf(expert_act, r.node).act;
  const act = ACTIVATIONS[declared === 'none' ? 'identity' : declared]!;
  return [{
    label: 'expert_act',
    outputLength: count,
    loopMax: d,
    body: [
      decompose(X, [xs[0]!, perToken], 'o'),
      `let e = ${r.acc.read(2, X)};`,
      `let dot = 0.0;`,
      `for (let j = 0; j < ${d}; j++) { dot += ${r.acc.readRow(1, 'e', 'j', us[1]!)} * ${r.acc.read(0, `o0 * ${d} + j`)}; }`,
      `return ${r.acc.read(3, X)} * ${act('dot')};`,
    ].join('\n'),
  }];
}

function expertOut(r: RenderInput): Stage[] {
  const [hs, vs] = r.inShapes as [number[], number[]];
  const T = hs[0]!, d = vs[1]!;
  const perToken = sizeOf(hs) / T;
  const residual = r.inShapes.length > 3 ? r.acc.read(3, X) : '0.0';
  return [{
    label: 'expert_out',
    outputLength: T * d,
    loopMax: perToken,
    body: [
      decompose(X, [T, d], 'o'),
      `let acc = ${residual};`,
      `for (let s = 0; s < ${perToken}; s++) {`,
      `  let slot = o0 * ${perToken} + s;`,
      `  acc += ${r.acc.read(0, 'slot')} * ${r.acc.readRow(1, r.acc.read(2, 'slot'), 'o1', d)};`,
      `}`,
      `return acc;`,
    ].join('\n'),
  }];
}

/**
 * softmax and log_softmax in two kernels: the log-sum-exp of each lane once, then every cell
 * from it, instead of every cell re-reducing its lane (n^2 work per lane for n classes).
 */
function lanewiseStaged(kind: 'softmax' | 'log_softmax'): FusedRenderer {
  return (r) => {
    const sh = r.inShapes[0]!;
    const axis = (kind === 'softmax' ? attrsOf(softmax, r.node) : attrsOf(log_softmax, r.node)).axis;
    const n = sh[axis]!;
    const lanesShape = sh.filter((_, j) => j !== axis);
    const lanes = sizeOf(lanesShape);
    const laneNames = sh.map((_, j) => `o${j}`).filter((_, j) => j !== axis);
    const at = (j: string) => r.acc.read(0, flatIndex(sh.map((_, i) => (i === axis ? j : laneNames[i < axis ? i : i - 1]!)), sh));
    const lse: Stage = {
      label: `${kind}:logsumexp`,
      outputLength: lanes,
      loopMax: n,
      body: [
        decompose(X, lanesShape, 'o'),
        `let m = -3.4e38;`,
        `for (let j = 0; j < ${n}; j++) { m = Math.max(m, ${at('j')}); }`,
        `let s = 0.0;`,
        `for (let j = 0; j < ${n}; j++) { s += Math.exp(${at('j')} - m); }`,
        `return m + Math.log(s);`,
      ].join('\n'),
    };
    const cellNames = sh.map((_, j) => `o${j}`);
    const lane = flatIndex(cellNames.filter((_, j) => j !== axis), lanesShape);
    const value = `${r.acc.read(0, X)} - st0[${lane}]`;
    const cells: Stage = {
      label: kind,
      outputLength: sizeOf(sh),
      loopMax: 1,
      body: `${decompose(X, sh, 'o')}\nreturn ${kind === 'softmax' ? `Math.exp(${value})` : value};`,
    };
    return [lse, cells];
  };
}

/**
 * Normalisations in two kernels: statistics once per lane (mean and 1/sqrt(var + eps), stored
 * as 2 x lanes), then every cell from them. `rowsAxis`: BatchNorm's lanes are channels and its
 * statistics run over rows; layernorm and rmsnorm normalise each row over its channels.
 */
function normStaged(kind: 'layernorm' | 'rmsnorm' | 'batchnorm'): FusedRenderer {
  return (r) => {
    const sh = r.inShapes[0]!;
    const c = sh[sh.length - 1]!;
    const rows = sizeOf(sh) / c;
    const eps = lit((kind === 'layernorm' ? attrsOf(layernorm, r.node) : kind === 'rmsnorm' ? attrsOf(rmsnorm, r.node) : attrsOf(batchnorm, r.node)).eps);
    if (kind === 'batchnorm' && !r.training) {
      const single = renderBatchnorm(r, false);
      return [{ label: 'batchnorm', body: single.body, outputLength: sizeOf(sh), loopMax: 1 }];
    }
    const perChannel = kind === 'batchnorm';
    const lanes = perChannel ? c : rows, n = perChannel ? rows : c;
    const at = (j: string) => r.acc.read(0, perChannel ? `${j} * ${c} + lane` : `lane * ${c} + ${j}`);
    const center = kind !== 'rmsnorm';
    const stats: Stage = {
      label: `${kind}:statistics`,
      outputLength: 2 * lanes,
      loopMax: n,
      body: [
        `let lane = ${X}; let second = 0.0;`,
        `if (lane >= ${lanes}) { lane = lane - ${lanes}; second = 1.0; }`,
        `let mean = 0.0;`,
        center ? `for (let j = 0; j < ${n}; j++) { mean += ${at('j')}; }\nmean = mean / ${lit(n)};` : '',
        `let sq = 0.0;`,
        `for (let j = 0; j < ${n}; j++) { let dv = ${at('j')} - mean; sq += dv * dv; }`,
        `return second > 0.5 ? 1.0 / Math.sqrt(sq / ${lit(n)} + ${eps}) : mean;`,
      ].join('\n'),
    };
    const lane = perChannel ? 'o1' : 'o0';
    const shift = kind === 'rmsnorm' ? '' : ` + ${r.acc.read(2, 'o1')}`;
    const cells: Stage = {
      label: kind,
      outputLength: sizeOf(sh),
      loopMax: 1,
      body: `${decompose(X, [rows, c], 'o')}\nreturn (${r.acc.read(0, X)} - st0[${lane}]) * st0[${lanes} + ${lane}] * ${r.acc.read(1, 'o1')}${shift};`,
    };
    return [stats, cells];
  };
}

export const FUSED_RENDERERS: Record<string, FusedRenderer> = {
  layernorm: normStaged('layernorm'),
  rmsnorm: normStaged('rmsnorm'),
  batchnorm: normStaged('batchnorm'),
  softmax: lanewiseStaged('softmax'),
  log_softmax: lanewiseStaged('log_softmax'),
  product_retrieve: productRetrieve,
  product_extend: productExtend,
  expert_act: expertAct,
  expert_out: expertOut,
};
