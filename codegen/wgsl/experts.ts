// The expert side in WGSL, reading the selected rows of the tables where they are (no
// [T, slots, d] gather). expert_act: a group of 8 threads per slot reads the slot's row of U
// 32 consecutive floats at a time (a 128-byte line per step), dots it with the token's x, and
// the 8 partial sums meet in workgroup memory. expert_out: one thread per output cell (t, j),
// looping over the token's slots: the threads of a workgroup read consecutive columns of each
// selected row of V, the GEMV of a gather. Tables larger than one binding are read through a
// function over their buffers of whole rows.
import { ACTIVATIONS } from '../naive.js';
import { WORKGROUP, wgslOfExpression } from './translate.js';

export const EXPERT_ACT_THREADS = 256;
const PER_SLOT = 8;
const SLOTS_PER_GROUP = EXPERT_ACT_THREADS / PER_SLOT;

/** A table bound as `parts` buffers of `rowsPer` rows each (one buffer when parts is 1). */
export interface TableBinding {
  rows: number;
  width: number;
  rowsPer: number;
}

export const partsOf = (t: TableBinding) => Math.ceil(t.rows / t.rowsPer);

/** Declarations of a table's buffers from `binding` on, and `read_NAME(row, col)` over them. */
function tableDecl(name: string, t: TableBinding, binding: number): string {
  const parts = partsOf(t);
  const decl = Array.from({ length: parts }, (_, c) => `@group(0) @binding(${binding + c}) var<storage, read> ${name}_${c}: array<f32>;`);
  const lines = Array.from({ length: parts }, (_, c) =>
    c < parts - 1 ? `  if (r < ${(c + 1) * t.rowsPer}u) { return ${name}_${c}[(r - ${c * t.rowsPer}u) * ${t.width}u + c]; }` : `  return ${name}_${c}[(r - ${c * t.rowsPer}u) * ${t.width}u + c];`,
  );
  return `${decl.join('\n')}\nfn read_${name}(r: u32, c: u32) -> f32 {\n${lines.join('\n')}\n}`;
}

/**
 * Bindings: 0 out [slots], 1 x [T, d], 2 indices [slots], 3 weights [slots], 4.. U's buffers.
 * `subgroups` (where the device has them): expertActSubgroupWgsl instead.
 */
export function expertActWgsl(T: number, slots: number, d: number, act: string, u: TableBinding, subgroups = false): string {
  if (subgroups) return expertActSubgroupWgsl(T, slots, d, act, u);
  const perToken = slots / T;
  const a = activation(act);
  return `// expert_act: ${slots} slots of ${T} tokens, d = ${d}, ${act}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
${tableDecl('U', u, 4)}
var<workgroup> partial: array<f32, ${EXPERT_ACT_THREADS}>;

@compute @workgroup_size(${EXPERT_ACT_THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let group = li / ${PER_SLOT}u;
  let lane = li % ${PER_SLOT}u;
  let slot = (wg.y * nwg.x + wg.x) * ${SLOTS_PER_GROUP}u + group;
  var acc = 0.0;
  if (slot < ${slots}u) {
    let e = u32(idx[slot]);
    let xBase = (slot / ${perToken}u) * ${d}u;
    for (var j = lane * 4u; j < ${d}u; j += ${PER_SLOT * 4}u) {
      for (var q = 0u; q < 4u; q++) {
        if (j + q < ${d}u) { acc = fma(read_U(e, j + q), x[xBase + j + q], acc); }
      }
    }
  }
  partial[li] = acc;
  workgroupBarrier();
  if (lane == 0u && slot < ${slots}u) {
    var dot = 0.0;
    for (var q = 0u; q < ${PER_SLOT}u; q++) { dot += partial[li + q]; }
    out[slot] = w[slot] * ${a};
  }
}
`;
}

const activation = (act: string) => wgslOfExpression(ACTIVATIONS[act === 'none' ? 'identity' : act]!('dot'), `expert_act ${act}`).replace(/\bv_dot\b/g, 'dot');

/**
 * expert_act with subgroup operations, no workgroup memory and no barrier: each subgroup takes
 * the workgroup's slots one at a time from a counter, its active lanes read the slot's row in
 * consecutive floats, and subgroupAdd meets their partial dots. Nothing is assumed about the
 * subgroup size or how lanes map to invocations: the counter numbers the work, and each lane's
 * rank and the lane count come from the subgroup itself (a partial subgroup works too). The
 * loop's bounds are the same across a subgroup (broadcast from one lane), which WGSL's
 * workgroup-wide uniformity analysis cannot see, hence the diagnostic.
 */
function expertActSubgroupWgsl(T: number, slots: number, d: number, act: string, u: TableBinding): string {
  const perToken = slots / T;
  return `// expert_act (subgroups): ${slots} slots of ${T} tokens, d = ${d}, ${act}
enable subgroups;
diagnostic(off, subgroup_uniformity);
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
${tableDecl('U', u, 4)}
var<workgroup> taken: atomic<u32>;

@compute @workgroup_size(${EXPERT_ACT_THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let first = (wg.y * nwg.x + wg.x) * ${SLOTS_PER_GROUP}u;
  let lanes = subgroupAdd(1u);
  let rank = subgroupExclusiveAdd(1u);
  loop {
    var s = 0u;
    if (subgroupElect()) { s = atomicAdd(&taken, 1u); }
    s = subgroupBroadcastFirst(s);
    let slot = first + s;
    if (s >= ${SLOTS_PER_GROUP}u || slot >= ${slots}u) { break; }
    let e = u32(idx[slot]);
    let xBase = (slot / ${perToken}u) * ${d}u;
    var acc = 0.0;
    for (var j = rank; j < ${d}u; j += lanes) { acc = fma(read_U(e, j), x[xBase + j], acc); }
    let dot = subgroupAdd(acc);
    if (rank == 0u) { out[slot] = w[slot] * ${activation(act)}; }
  }
}
`;
}

/** Bindings: 0 out [T, d], 1 h [slots], 2 indices [slots], then (residual) 3 residual [T, d], then V's buffers. */
export function expertOutWgsl(T: number, slots: number, d: number, residual: boolean, v: TableBinding): string {
  const perToken = slots / T;
  return `// expert_out: ${T} tokens x ${perToken} slots, d = ${d}${residual ? ', residual' : ''}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;
${residual ? '@group(0) @binding(3) var<storage, read> res: array<f32>;' : ''}
${tableDecl('V', v, residual ? 4 : 3)}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let cell = (wg.y * nwg.x + wg.x) * ${WORKGROUP}u + li;
  if (cell >= ${T * d}u) { return; }
  let t = cell / ${d}u;
  let j = cell % ${d}u;
  var acc = ${residual ? 'res[cell]' : '0.0'};
  for (var s = 0u; s < ${perToken}u; s++) {
    let slot = t * ${perToken}u + s;
    acc = fma(h[slot], read_V(u32(idx[slot]), j), acc);
  }
  out[cell] = acc;
}
`;
}

/** Workgroups for expert_act over `slots`. */
export const expertActGroups = (slots: number) => Math.ceil(slots / SLOTS_PER_GROUP);
