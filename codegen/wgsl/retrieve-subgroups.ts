// product_retrieve with subgroup operations (where the adapter has them): the merge trees of
// retrieve.ts (log2(threads) barriers each) become rounds of a subgroup-wide argmax. Each thread
// keeps the best subk of its strided share of a side's scores in registers, as there; then each
// subgroup takes its best subk in subk rounds (subgroupMax of the lanes' heads, subgroupMin of
// the tied indices: topk's order, ties to the lower index; the winner's head advances), and the
// first subgroup merges the subgroups' lists the same way. The k x k candidates are rows already
// in order (a_i + b_j for sorted b), so the first subgroup takes the best k of them in k rounds
// over the rows' heads. Four barriers in all. Nothing is assumed of the subgroup size or of how
// lanes map to invocations: subgroups are numbered by a workgroup counter, each lane's rank and
// the lane count come from the subgroup itself.
import { BETTER_WGSL, laneWgsl, retrieveGateWgsl, retrieveThreads, threadBestWgsl } from './retrieve.js';
import { f32 } from './translate.js';

const NONE = '0xffffffffu';

/** Bindings as retrieveWgsl's: 0 out ([lanes, k] weights then [lanes, k] ids, as f32), 1 s1, 2 s2 ([lanes, n] each). */
export function retrieveSubgroupWgsl(lanes: number, n: number, k: number, subk: number, gate: string): string {
  const T = retrieveThreads(subk);
  const rows = Math.min(subk, k);
  const NEG = f32(-Infinity);
  const weight = retrieveGateWgsl(gate);
  // One side: the thread's best subk, its subgroup's best subk into lists sg * subk.., then the
  // first subgroup's merge of the lists into keepV/keepI.
  const side = (input: string, keepV: string, keepI: string) => `
  {${threadBestWgsl(input, n, subk, T)}
  var head = 0u;
  for (var q = 0u; q < ${subk}u; q++) {
    var hv = ${NEG};
    var hi = ${NONE};
    if (head < ${subk}u) { hv = lv[head]; hi = lx[head]; }
    let m = subgroupMax(hv);
    let i = subgroupMin(select(${NONE}, hi, hv == m));
    if (head < ${subk}u && hv == m && hi == i) { head++; }
    if (rank == 0u) { lists[sg * ${subk}u + q] = m; listIds[sg * ${subk}u + q] = i; }
  }
  workgroupBarrier();
  if (sg == 0u) {
    let count = atomicLoad(&subgroups);
    for (var l = rank; l < count; l += width) { at[l] = 0u; }
    for (var q = 0u; q < ${subk}u; q++) {
      var hv = ${NEG};
      var hi = ${NONE};
      var src = ${NONE};
      for (var l = rank; l < count; l += width) {
        if (at[l] < ${subk}u) {
          let v = lists[l * ${subk}u + at[l]];
          let c = listIds[l * ${subk}u + at[l]];
          if (better(v, c, hv, hi)) { hv = v; hi = c; src = l; }
        }
      }
      let m = subgroupMax(hv);
      let i = subgroupMin(select(${NONE}, hi, hv == m));
      if (src != ${NONE} && hv == m && hi == i) { at[src]++; }
      if (rank == 0u) { ${keepV}[q] = m; ${keepI}[q] = i; }
    }
  }
  workgroupBarrier();
  }`;
  return `// product_retrieve (subgroups): ${lanes} lanes, n = ${n}, subk = ${subk}, k = ${k}, gate ${gate}
enable subgroups;
diagnostic(off, subgroup_uniformity);
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> s1: array<f32>;
@group(0) @binding(2) var<storage, read> s2: array<f32>;
var<workgroup> lists: array<f32, ${T * subk}>;
var<workgroup> listIds: array<u32, ${T * subk}>;
var<workgroup> av: array<f32, ${subk}>;
var<workgroup> ai: array<u32, ${subk}>;
var<workgroup> bv: array<f32, ${subk}>;
var<workgroup> bi: array<u32, ${subk}>;
var<workgroup> subgroups: atomic<u32>;

${BETTER_WGSL}

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${laneWgsl(lanes, n)}
  let width = subgroupAdd(1u);
  let rank = subgroupExclusiveAdd(1u);
  var sg = 0u;
  if (subgroupElect()) { sg = atomicAdd(&subgroups, 1u); }
  sg = subgroupBroadcastFirst(sg);
  var lv: array<f32, ${subk}>;
  var lx: array<u32, ${subk}>;
  var at: array<u32, ${Math.max(T, rows)}>;
${side('s1', 'av', 'ai')}
${side('s2', 'bv', 'bi')}
  // The best k candidates: row r is a_r + b_j for j in order (rows from ${rows} on cannot reach the
  // top k); each round every lane offers the best head of its rows, the winner's row advances.
  if (sg == 0u) {
    var cv: array<f32, ${k}>;
    var cc: array<u32, ${k}>;
    for (var r = rank; r < ${rows}u; r += width) { at[r] = 0u; }
    for (var q = 0u; q < ${k}u; q++) {
      var hv = ${NEG};
      var hi = ${NONE};
      var src = ${NONE};
      for (var r = rank; r < ${rows}u; r += width) {
        if (at[r] < ${subk}u) {
          let v = av[r] + bv[at[r]];
          let c = r * ${subk}u + at[r];
          if (better(v, c, hv, hi)) { hv = v; hi = c; src = r; }
        }
      }
      let m = subgroupMax(hv);
      let i = subgroupMin(select(${NONE}, hi, hv == m));
      if (src != ${NONE} && hv == m && hi == i) { at[src]++; }
      cv[q] = m;
      cc[q] = i;
    }
    let top = cv[0];
    var z = 0.0;
    for (var j = 0u; j < ${k}u; j++) { z += exp(cv[j] - top); }
    for (var j = rank; live && j < ${k}u; j += width) {
      let v = cv[j];
      let c = cc[j];
      out[lane * ${k}u + j] = ${weight};
      out[${lanes * k}u + lane * ${k}u + j] = f32(ai[c / ${subk}u] * ${n}u + bi[c % ${subk}u]);
    }
  }
}
`;
}
