// Batched matrix products as a tiled WGSL kernel: C[b, M, N] = A[b, M, K] B[b, K, N], one
// workgroup of 16 x 16 threads per 64 x 64 tile of C, each thread a 4 x 4 block held in
// registers, A's and B's 16-deep slices staged in workgroup memory (8 KiB) so each value read
// from storage is used 64 times. An optional epilogue (einsum_bn's evaluation-mode BatchNorm,
// channel = flat index mod C) is applied before the store.
import { f32 } from './translate.js';

export const GEMM_TILE = 64;
const TK = 16;

export interface GemmShape {
  batch: number;
  rows: number;
  cols: number;
  inner: number;
}

/**
 * Bindings: 0 out, 1 A, 2 B, then (with bn) 3 gamma, 4 beta, 5 mean, 6 variance. `strides`:
 * where C[b, r, c] is stored (the einsum's own output order), default [M * N, N, 1].
 */
export function gemmWgsl(s: GemmShape, bn?: { channels: number; eps: number }, strides?: [number, number, number]): string {
  const { rows: M, cols: N, inner: K } = s;
  const [sb, sr, sc] = strides ?? [M * N, N, 1];
  const store = bn
    ? `let ch = flat % ${bn.channels}u;
        out[flat] = (v - mean[ch]) * (gamma[ch] / sqrt(variance[ch] + ${f32(bn.eps)})) + beta[ch];`
    : 'out[flat] = v;';
  return `// batched matmul ${s.batch} x [${M}, ${K}] x [${K}, ${N}]${bn ? ' + BatchNorm' : ''}${strides ? `, stored with strides ${strides.join(', ')}` : ''}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
${bn ? ['gamma', 'beta', 'mean', 'variance'].map((n, i) => `@group(0) @binding(${i + 3}) var<storage, read> ${n}: array<f32>;`).join('\n') : ''}
var<workgroup> tileA: array<f32, ${TK * GEMM_TILE}>;
var<workgroup> tileB: array<f32, ${TK * GEMM_TILE}>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let batch = wg.z;
  let row0 = wg.y * ${GEMM_TILE}u;
  let col0 = wg.x * ${GEMM_TILE}u;
  let aBase = batch * ${M * K}u;
  let bBase = batch * ${K * N}u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < ${K}u; k0 += ${TK}u) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      // A's slice: 64 rows x 16, consecutive threads along k (contiguous in A).
      let am = e / ${TK}u;
      let ak = e % ${TK}u;
      var av = 0.0;
      if (row0 + am < ${M}u && k0 + ak < ${K}u) { av = a[aBase + (row0 + am) * ${K}u + k0 + ak]; }
      tileA[ak * ${GEMM_TILE}u + am] = av;
      // B's slice: 16 x 64 columns, consecutive threads along n (contiguous in B).
      let bk = e / ${GEMM_TILE}u;
      let bc = e % ${GEMM_TILE}u;
      var bv = 0.0;
      if (k0 + bk < ${K}u && col0 + bc < ${N}u) { bv = b[bBase + (k0 + bk) * ${N}u + col0 + bc]; }
      tileB[bk * ${GEMM_TILE}u + bc] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk++) {
      let a4 = vec4<f32>(tileA[kk * ${GEMM_TILE}u + lid.y * 4u], tileA[kk * ${GEMM_TILE}u + lid.y * 4u + 1u], tileA[kk * ${GEMM_TILE}u + lid.y * 4u + 2u], tileA[kk * ${GEMM_TILE}u + lid.y * 4u + 3u]);
      let b4 = vec4<f32>(tileB[kk * ${GEMM_TILE}u + lid.x], tileB[kk * ${GEMM_TILE}u + lid.x + 16u], tileB[kk * ${GEMM_TILE}u + lid.x + 32u], tileB[kk * ${GEMM_TILE}u + lid.x + 48u]);
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i * 4u + j] = fma(a4[i], b4[j], acc[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      // Columns strided by 16 so a row of threads stores 16 consecutive values.
      let c = col0 + lid.x + j * 16u;
      if (r < ${M}u && c < ${N}u) {
        let flat = batch * ${sb}u + r * ${sr}u + c * ${sc}u;
        let v = acc[i * 4u + j];
        ${store}
      }
    }
  }
}
`;
}

/** Workgroups to launch for a product (x: column tiles, y: row tiles, z: batch). */
export function gemmGrid(s: GemmShape): [number, number, number] {
  return [Math.ceil(s.cols / GEMM_TILE), Math.ceil(s.rows / GEMM_TILE), s.batch];
}
