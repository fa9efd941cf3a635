// product_retrieve as one WGSL kernel: a workgroup per (token, head) lane, the selection in
// workgroup memory. Each side's n scores are sorted in place (bitonic, by score descending then
// index ascending: exactly topk's order, ties to the lower index) and its first subk kept; the
// subk^2 candidate sums are sorted the same way (ties to the lower candidate position, as the
// op's meaning has it); the first k get the gate and the ids a * n + b. Nothing of [lanes,
// subk^2] leaves the workgroup.
import { elementwiseGateJs } from '../../src/ir/ops/unary.js';
import { f32, wgslOfExpression } from './translate.js';

export const RETRIEVE_THREADS = 64;
/** Workgroup memory every WebGPU adapter offers (maxComputeWorkgroupStorageSize's default). */
export const WORKGROUP_BYTES = 16384;

const pow2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(2, x)));

/** Bytes of workgroup memory the kernel needs for n scores per side and subk kept. */
export function retrieveWorkgroupBytes(n: number, subk: number): number {
  return 8 * pow2(n) + 8 * pow2(subk * subk) + 16 * subk;
}

/** Bindings: 0 out ([lanes, k] weights then [lanes, k] ids, as f32), 1 s1, 2 s2 ([lanes, n] each). */
export function retrieveWgsl(lanes: number, n: number, k: number, subk: number, gate: string): string {
  const P = pow2(n), C = pow2(subk * subk), T = RETRIEVE_THREADS;
  const weight = gate === 'softmax' ? 'exp(v - top) / z' : wgslOfExpression(elementwiseGateJs(gate, 'sv'), `product_retrieve gate ${gate}`).replace(/\bv_sv\b/g, 'v');
  const sort = (vals: string, ids: string, size: number) => `
  for (var blk = 2u; blk <= ${size}u; blk = blk << 1u) {
    for (var stride = blk >> 1u; stride > 0u; stride = stride >> 1u) {
      for (var t = li; t < ${size / 2}u; t += ${T}u) {
        let i = 2u * stride * (t / stride) + t % stride;
        let j = i + stride;
        let jBetter = ${vals}[j] > ${vals}[i] || (${vals}[j] == ${vals}[i] && ${ids}[j] < ${ids}[i]);
        let iBetter = ${vals}[i] > ${vals}[j] || (${vals}[i] == ${vals}[j] && ${ids}[i] < ${ids}[j]);
        // Blocks with (i & blk) == 0 end best-first; the last pass (blk = size) sorts them all so.
        if (((i & blk) == 0u && jBetter) || ((i & blk) != 0u && iBetter)) {
          let tv = ${vals}[i]; ${vals}[i] = ${vals}[j]; ${vals}[j] = tv;
          let ti = ${ids}[i]; ${ids}[i] = ${ids}[j]; ${ids}[j] = ti;
        }
      }
      workgroupBarrier();
    }
  }`;
  const side = (input: string, keepV: string, keepI: string) => `
  for (var c = li; c < ${P}u; c += ${T}u) {
    if (c < ${n}u) { sv[c] = ${input}[base + c]; si[c] = c; } else { sv[c] = ${f32(-Infinity)}; si[c] = 0xffffffffu; }
  }
  workgroupBarrier();${sort('sv', 'si', P)}
  for (var c = li; c < ${subk}u; c += ${T}u) { ${keepV}[c] = sv[c]; ${keepI}[c] = si[c]; }
  workgroupBarrier();`;
  return `// product_retrieve: ${lanes} lanes, n = ${n}, subk = ${subk}, k = ${k}, gate ${gate}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> s1: array<f32>;
@group(0) @binding(2) var<storage, read> s2: array<f32>;
var<workgroup> sv: array<f32, ${P}>;
var<workgroup> si: array<u32, ${P}>;
var<workgroup> av: array<f32, ${subk}>;
var<workgroup> ai: array<u32, ${subk}>;
var<workgroup> bv: array<f32, ${subk}>;
var<workgroup> bi: array<u32, ${subk}>;
var<workgroup> cv: array<f32, ${C}>;
var<workgroup> ci: array<u32, ${C}>;

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  // Uniform per workgroup, so every thread reaches every barrier (extra workgroups do no writes).
  let lane = wg.y * nwg.x + wg.x;
  let live = lane < ${lanes}u;
  let base = min(lane, ${lanes - 1}u) * ${n}u;
${side('s1', 'av', 'ai')}
${side('s2', 'bv', 'bi')}
  for (var c = li; c < ${C}u; c += ${T}u) {
    if (c < ${subk * subk}u) { cv[c] = av[c / ${subk}u] + bv[c % ${subk}u]; ci[c] = c; } else { cv[c] = ${f32(-Infinity)}; ci[c] = 0xffffffffu; }
  }
  workgroupBarrier();${sort('cv', 'ci', C)}
  if (live && li < ${k}u) {
    let top = cv[0];
    var z = 0.0;
    for (var j = 0u; j < ${k}u; j++) { z += exp(cv[j] - top); }
    let v = cv[li];
    let c = ci[li];
    out[lane * ${k}u + li] = ${weight};
    out[${lanes * k}u + lane * ${k}u + li] = f32(ai[c / ${subk}u] * ${n}u + bi[c % ${subk}u]);
  }
}
`;
}
