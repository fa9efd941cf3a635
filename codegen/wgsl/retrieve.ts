// product_retrieve as one WGSL kernel: a workgroup per (token, head) lane, the selection in
// workgroup memory. Per side, each thread keeps the best subk of its strided share of the n
// scores in registers (visited in index order, so ties stay with the lower index), and a merge
// tree in workgroup memory halves the lists each level to the side's best subk: log2(threads)
// barriers instead of a sort's log^2 n. The candidate sums a_i + b_j of row i are already in
// order (b is sorted and float addition is monotone), so the rows are lists to merge the same
// way, ties to the lower candidate position as the op's meaning has it; the first k get the
// gate and the ids a * n + b. Nothing of [lanes, subk^2] leaves the workgroup.
import { elementwiseGateJs } from '../../src/ir/ops/unary.js';
import { f32, wgslOfExpression } from './translate.js';

/** Workgroup memory every WebGPU adapter offers (maxComputeWorkgroupStorageSize's default). */
export const WORKGROUP_BYTES = 16384;

const pow2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

/** Threads per lane: lists of subk from each fit in 8 KiB (at most 64). */
export function retrieveThreads(subk: number): number {
  return Math.max(1, Math.min(64, 2 ** Math.floor(Math.log2(1024 / subk))));
}

function layout(k: number, subk: number) {
  const T = retrieveThreads(subk);
  const rows = Math.min(subk, k);
  const listSlots = Math.max(T * subk, pow2(rows) * k);
  return { T, rows, listSlots, reg: Math.max(subk, k) };
}

/** Bytes of workgroup memory the kernel needs. */
export function retrieveWorkgroupBytes(k: number, subk: number): number {
  const l = layout(k, subk);
  return 8 * l.listSlots + 16 * subk;
}

/** The gate's weight of score `v` (softmax: from the first score `top` and the sum `z`), as WGSL. */
export function retrieveGateWgsl(gate: string): string {
  return gate === 'softmax' ? 'exp(v - top) / z' : wgslOfExpression(elementwiseGateJs(gate, 'sv'), `product_retrieve gate ${gate}`).replace(/\bv_sv\b/g, 'v');
}

/** topk's order as a WGSL function, shared by both retrieval kernels. */
export const BETTER_WGSL = `// topk's order: the higher score first, ties to the lower index.
fn better(v1: f32, i1: u32, v2: f32, i2: u32) -> bool {
  return v1 > v2 || (v1 == v2 && i1 < i2);
}`;

/** The lane a workgroup serves, and where its scores start (extra workgroups read the last lane's and write nothing). */
export const laneWgsl = (lanes: number, n: number) => `  // Uniform per workgroup, so every thread reaches every barrier (extra workgroups write nothing).
  let lane = wg.y * nwg.x + wg.x;
  let live = lane < ${lanes}u;
  let base = min(lane, ${lanes - 1}u) * ${n}u;`;

/** Each thread's best subk of its strided share of a side's scores, into lv/lx in order (ties stay with the lower index). */
export function threadBestWgsl(input: string, n: number, subk: number, threads: number): string {
  const NEG = f32(-Infinity);
  return `
  for (var q = 0u; q < ${subk}u; q++) { lv[q] = ${NEG}; lx[q] = 0xffffffffu; }
  for (var c = li; c < ${n}u; c += ${threads}u) {
    let v = ${input}[base + c];
    if (better(v, c, lv[${subk - 1}u], lx[${subk - 1}u])) {
      var p = ${subk - 1}u;
      while (p > 0u && better(v, c, lv[p - 1u], lx[p - 1u])) { lv[p] = lv[p - 1u]; lx[p] = lx[p - 1u]; p--; }
      lv[p] = v;
      lx[p] = c;
    }
  }`;
}

/** Bindings: 0 out ([lanes, k] weights then [lanes, k] ids, as f32), 1 s1, 2 s2 ([lanes, n] each). */
export function retrieveWgsl(lanes: number, n: number, k: number, subk: number, gate: string): string {
  const { T, rows, listSlots, reg } = layout(k, subk);
  const RP = pow2(rows);
  const NEG = f32(-Infinity);
  const weight = retrieveGateWgsl(gate);
  // Merge tree over `lists` sorted lists of `len` in mv/mi (list t at t * len): list 0 ends as the best `len`.
  const mergeTree = (lists: number, len: number) => `
  for (var step = 1u; step < ${lists}u; step = step << 1u) {
    for (var t = li * 2u * step; t + step < ${lists}u; t += ${T}u * 2u * step) {
      let A = t * ${len}u;
      let B = (t + step) * ${len}u;
      var x = 0u;
      var y = 0u;
      for (var q = 0u; q < ${len}u; q++) {
        if (better(mv[A + x], mi[A + x], mv[B + y], mi[B + y])) { lv[q] = mv[A + x]; lx[q] = mi[A + x]; x++; } else { lv[q] = mv[B + y]; lx[q] = mi[B + y]; y++; }
      }
      for (var q = 0u; q < ${len}u; q++) { mv[A + q] = lv[q]; mi[A + q] = lx[q]; }
    }
    workgroupBarrier();
  }`;
  const side = (input: string, keepV: string, keepI: string) => `${threadBestWgsl(input, n, subk, T)}
  for (var q = 0u; q < ${subk}u; q++) { mv[li * ${subk}u + q] = lv[q]; mi[li * ${subk}u + q] = lx[q]; }
  workgroupBarrier();${mergeTree(T, subk)}
  if (li < ${subk}u) { ${keepV}[li] = mv[li]; ${keepI}[li] = mi[li]; }
  workgroupBarrier();`;
  return `// product_retrieve: ${lanes} lanes, n = ${n}, subk = ${subk}, k = ${k}, gate ${gate}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> s1: array<f32>;
@group(0) @binding(2) var<storage, read> s2: array<f32>;
var<workgroup> mv: array<f32, ${listSlots}>;
var<workgroup> mi: array<u32, ${listSlots}>;
var<workgroup> av: array<f32, ${subk}>;
var<workgroup> ai: array<u32, ${subk}>;
var<workgroup> bv: array<f32, ${subk}>;
var<workgroup> bi: array<u32, ${subk}>;

${BETTER_WGSL}

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${laneWgsl(lanes, n)}
  var lv: array<f32, ${reg}>;
  var lx: array<u32, ${reg}>;
${side('s1', 'av', 'ai')}
${side('s2', 'bv', 'bi')}
  // Row i of the candidates: a_i + b_j for j in order, padded to k; rows from ${rows} on cannot reach the top k.
  for (var r = li; r < ${RP}u; r += ${T}u) {
    for (var j = 0u; j < ${k}u; j++) {
      var v = ${NEG};
      var c = 0xffffffffu;
      if (r < ${rows}u && j < ${subk}u) { v = av[r] + bv[j]; c = r * ${subk}u + j; }
      mv[r * ${k}u + j] = v;
      mi[r * ${k}u + j] = c;
    }
  }
  workgroupBarrier();${mergeTree(RP, k)}
  if (live && li < ${k}u) {
    let top = mv[0];
    var z = 0.0;
    for (var j = 0u; j < ${k}u; j++) { z += exp(mv[j] - top); }
    let v = mv[li];
    let c = mi[li];
    out[lane * ${k}u + li] = ${weight};
    out[${lanes * k}u + lane * ${k}u + li] = f32(ai[c / ${subk}u] * ${n}u + bi[c % ${subk}u]);
  }
}
`;
}
