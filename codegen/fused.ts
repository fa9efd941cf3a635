// Kernels for the fused ops. None of them materialises a [T, .., k, k] candidate tensor or a
// [T, .., d] gathered tensor: experts are read row by row from the tables where they are used.
import { ACTIVATIONS, selectionLoop, type RenderInput } from './naive.js';
import { decompose, lit, sizeOf } from './kernel.js';

export interface Stage {
  label: string;
  body: string;
  outputLength: number;
  loopMax: number;
  /** Stages read node arguments a0.. plus earlier stages' outputs, named st0, st1, ... */
}

export type FusedRenderer = (r: RenderInput) => Stage[];

const X = 'this.thread.x';

// Sub-key top-k of both score rows (stage 1), then the k*k combine, final top-k, gate and
// product index (stage 2). gpu.js threads cannot keep k values in a local array on webasm,
// so stage 1 writes the 2k sub-key winners per (token, head) and stage 2 reads them.
function productRetrieve(r: RenderInput): Stage[] {
  const sh = r.inShapes[0]!;
  const n = sh[sh.length - 1]!;
  const k = r.node.attrs.k as number;
  const gate = r.node.attrs.gate as string;
  const lanes = sizeOf(sh) / n;
  const half = lanes * 2 * k; // values, then indices
  const subkeys: Stage = {
    label: 'product_retrieve:subkey_topk',
    outputLength: 2 * half,
    loopMax: Math.max(n, k),
    body: [
      `let cell = ${X}; let second = 0.0;`,
      `if (cell >= ${half}) { cell = cell - ${half}; second = 1.0; }`,
      decompose('cell', [lanes, 2, k], 'o'),
      selectionLoop((c) => `(o1 < 0.5 ? ${r.acc.read(0, `o0 * ${n} + ${c}`)} : ${r.acc.read(1, `o0 * ${n} + ${c}`)})`, n, k, 'o2', 'v', 'vi'),
      `return second > 0.5 ? vi : v;`,
    ].join('\n'),
  };
  const total = lanes * k;
  const val = (side: number, i: string) => `st0[(o0 * 2 + ${side}) * ${k} + ${i}]`;
  const idx = (side: number, i: string) => `st0[${half} + (o0 * 2 + ${side}) * ${k} + ${i}]`;
  const weight =
    gate === 'softmax' ? 'Math.exp(sv - top) / z' : gate === 'relu' ? 'Math.max(sv, 0.0)' : 'sv';
  const combine: Stage = {
    label: 'product_retrieve:combine',
    outputLength: 2 * total,
    loopMax: k,
    body: [
      `let cell = ${X}; let second = 0.0;`,
      `if (cell >= ${total}) { cell = cell - ${total}; second = 1.0; }`,
      decompose('cell', [lanes, k], 'o'),
      `let pv = 3.4e38; let pc = -1.0; let top = 0.0; let z = 0.0; let sv = 0.0; let sa = 0.0; let sb = 0.0;`,
      `for (let p = 0; p < ${k}; p++) {`,
      `  let bv = -3.4e38; let bc = -1.0; let ba = 0.0; let bb = 0.0;`,
      `  for (let ia = 0; ia < ${k}; ia++) {`,
      `    for (let ib = 0; ib < ${k}; ib++) {`,
      `      let c = ia * ${k} + ib;`,
      `      let cv = ${val(0, 'ia')} + ${val(1, 'ib')};`,
      `      if ((cv < pv || (cv == pv && c > pc)) && (bc < 0.0 || cv > bv || (cv == bv && c < bc))) { bv = cv; bc = c; ba = ia; bb = ib; }`,
      `    }`,
      `  }`,
      `  if (p == 0) { top = bv; }`,
      `  z += Math.exp(bv - top);`,
      `  if (p == o1) { sv = bv; sa = ba; sb = bb; }`,
      `  pv = bv; pc = bc;`,
      `}`,
      `if (second > 0.5) { return ${idx(0, 'sa')} * ${lit(n)} + ${idx(1, 'sb')}; }`,
      `return ${weight};`,
    ].join('\n'),
  };
  return [subkeys, combine];
}

function expertAct(r: RenderInput): Stage[] {
  const [xs, us, is] = r.inShapes as [number[], number[], number[]];
  const d = xs[1]!;
  const count = sizeOf(is);
  const perToken = count / xs[0]!;
  const act = ACTIVATIONS[r.node.attrs.act === 'none' ? 'identity' : (r.node.attrs.act as string)]!;
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

export const FUSED_RENDERERS: Record<string, FusedRenderer> = {
  product_retrieve: productRetrieve,
  expert_act: expertAct,
  expert_out: expertOut,
};
