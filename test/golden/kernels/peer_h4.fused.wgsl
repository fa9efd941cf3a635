// batched matmul 1 x [3, 256] x [256, 512] + BatchNorm
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read> mean: array<f32>;
@group(0) @binding(6) var<storage, read> variance: array<f32>;
var<workgroup> tileA: array<f32, 1024>;
var<workgroup> tileB: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let batch = wg.z;
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let aBase = batch * 768u;
  let bBase = batch * 131072u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < 256u; k0 += 16u) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      // A's slice: 64 rows x 16, consecutive threads along k (contiguous in A).
      let am = e / 16u;
      let ak = e % 16u;
      var av = 0.0;
      if (row0 + am < 3u && k0 + ak < 256u) { av = a[aBase + (row0 + am) * 256u + k0 + ak]; }
      tileA[ak * 64u + am] = av;
      // B's slice: 16 x 64 columns, consecutive threads along n (contiguous in B).
      let bk = e / 64u;
      let bc = e % 64u;
      var bv = 0.0;
      if (k0 + bk < 256u && col0 + bc < 512u) { bv = b[bBase + (k0 + bk) * 512u + col0 + bc]; }
      tileB[bk * 64u + bc] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a4 = vec4<f32>(tileA[kk * 64u + lid.y * 4u], tileA[kk * 64u + lid.y * 4u + 1u], tileA[kk * 64u + lid.y * 4u + 2u], tileA[kk * 64u + lid.y * 4u + 3u]);
      let b4 = vec4<f32>(tileB[kk * 64u + lid.x], tileB[kk * 64u + lid.x + 16u], tileB[kk * 64u + lid.x + 32u], tileB[kk * 64u + lid.x + 48u]);
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
      if (r < 3u && c < 512u) {
        let flat = batch * 1536u + r * 512u + c * 1u;
        let v = acc[i * 4u + j];
        let ch = flat % 512u;
        out[flat] = (v - mean[ch]) * (gamma[ch] / sqrt(variance[ch] + 0.00001)) + beta[ch];
      }
    }
  }
}


// slice: 768 threads
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a0: array<f32>;


@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let cell = (wg.y * nwg.x + wg.x) * 64u + li;
  if (cell >= 768u) { return; }
  let tx = cell % 768u;
  let ty = cell / 768u;
  {
    var v_o_rest: f32 = f32(tx);
    var v_o_q2: f32 = floor((v_o_rest / 64.0));
    var v_o2: f32 = (v_o_rest - (v_o_q2 * 64.0));
    if (v_o2 < 0.0) {
      v_o_q2 = (v_o_q2 - 1.0);
      v_o2 = (v_o2 + 64.0);
    }
    if (v_o2 >= 64.0) {
      v_o_q2 = (v_o_q2 + 1.0);
      v_o2 = (v_o2 - 64.0);
    }
    v_o_rest = v_o_q2;
    var v_o_q1: f32 = floor((v_o_rest / 4.0));
    var v_o1: f32 = (v_o_rest - (v_o_q1 * 4.0));
    if (v_o1 < 0.0) {
      v_o_q1 = (v_o_q1 - 1.0);
      v_o1 = (v_o1 + 4.0);
    }
    if (v_o1 >= 4.0) {
      v_o_q1 = (v_o_q1 + 1.0);
      v_o1 = (v_o1 - 4.0);
    }
    v_o_rest = v_o_q1;
    var v_o0: f32 = v_o_rest;
    out[cell] = a0[u32(((((v_o0 * 4.0) + v_o1) * 128.0) + (v_o2 + 0.0)))]; return;
  }
}


// batched matmul 1 x [12, 64] x [64, 32]
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

var<workgroup> tileA: array<f32, 1024>;
var<workgroup> tileB: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let batch = wg.z;
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let aBase = batch * 768u;
  let bBase = batch * 2048u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < 64u; k0 += 16u) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      // A's slice: 64 rows x 16, consecutive threads along k (contiguous in A).
      let am = e / 16u;
      let ak = e % 16u;
      var av = 0.0;
      if (row0 + am < 12u && k0 + ak < 64u) { av = a[aBase + (row0 + am) * 64u + k0 + ak]; }
      tileA[ak * 64u + am] = av;
      // B's slice: 16 x 64 columns, consecutive threads along n (contiguous in B).
      let bk = e / 64u;
      let bc = e % 64u;
      var bv = 0.0;
      if (k0 + bk < 64u && col0 + bc < 32u) { bv = b[bBase + (k0 + bk) * 32u + col0 + bc]; }
      tileB[bk * 64u + bc] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a4 = vec4<f32>(tileA[kk * 64u + lid.y * 4u], tileA[kk * 64u + lid.y * 4u + 1u], tileA[kk * 64u + lid.y * 4u + 2u], tileA[kk * 64u + lid.y * 4u + 3u]);
      let b4 = vec4<f32>(tileB[kk * 64u + lid.x], tileB[kk * 64u + lid.x + 16u], tileB[kk * 64u + lid.x + 32u], tileB[kk * 64u + lid.x + 48u]);
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
      if (r < 12u && c < 32u) {
        let flat = batch * 384u + r * 32u + c * 1u;
        let v = acc[i * 4u + j];
        out[flat] = v;
      }
    }
  }
}


// slice: 768 threads
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a0: array<f32>;


@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let cell = (wg.y * nwg.x + wg.x) * 64u + li;
  if (cell >= 768u) { return; }
  let tx = cell % 768u;
  let ty = cell / 768u;
  {
    var v_o_rest: f32 = f32(tx);
    var v_o_q2: f32 = floor((v_o_rest / 64.0));
    var v_o2: f32 = (v_o_rest - (v_o_q2 * 64.0));
    if (v_o2 < 0.0) {
      v_o_q2 = (v_o_q2 - 1.0);
      v_o2 = (v_o2 + 64.0);
    }
    if (v_o2 >= 64.0) {
      v_o_q2 = (v_o_q2 + 1.0);
      v_o2 = (v_o2 - 64.0);
    }
    v_o_rest = v_o_q2;
    var v_o_q1: f32 = floor((v_o_rest / 4.0));
    var v_o1: f32 = (v_o_rest - (v_o_q1 * 4.0));
    if (v_o1 < 0.0) {
      v_o_q1 = (v_o_q1 - 1.0);
      v_o1 = (v_o1 + 4.0);
    }
    if (v_o1 >= 4.0) {
      v_o_q1 = (v_o_q1 + 1.0);
      v_o1 = (v_o1 - 4.0);
    }
    v_o_rest = v_o_q1;
    var v_o0: f32 = v_o_rest;
    out[cell] = a0[u32(((((v_o0 * 4.0) + v_o1) * 128.0) + (v_o2 + 64.0)))]; return;
  }
}


// batched matmul 1 x [12, 64] x [64, 32]
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

var<workgroup> tileA: array<f32, 1024>;
var<workgroup> tileB: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let batch = wg.z;
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let aBase = batch * 768u;
  let bBase = batch * 2048u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < 64u; k0 += 16u) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      // A's slice: 64 rows x 16, consecutive threads along k (contiguous in A).
      let am = e / 16u;
      let ak = e % 16u;
      var av = 0.0;
      if (row0 + am < 12u && k0 + ak < 64u) { av = a[aBase + (row0 + am) * 64u + k0 + ak]; }
      tileA[ak * 64u + am] = av;
      // B's slice: 16 x 64 columns, consecutive threads along n (contiguous in B).
      let bk = e / 64u;
      let bc = e % 64u;
      var bv = 0.0;
      if (k0 + bk < 64u && col0 + bc < 32u) { bv = b[bBase + (k0 + bk) * 32u + col0 + bc]; }
      tileB[bk * 64u + bc] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a4 = vec4<f32>(tileA[kk * 64u + lid.y * 4u], tileA[kk * 64u + lid.y * 4u + 1u], tileA[kk * 64u + lid.y * 4u + 2u], tileA[kk * 64u + lid.y * 4u + 3u]);
      let b4 = vec4<f32>(tileB[kk * 64u + lid.x], tileB[kk * 64u + lid.x + 16u], tileB[kk * 64u + lid.x + 32u], tileB[kk * 64u + lid.x + 48u]);
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
      if (r < 12u && c < 32u) {
        let flat = batch * 384u + r * 32u + c * 1u;
        let v = acc[i * 4u + j];
        out[flat] = v;
      }
    }
  }
}


// product_retrieve: 12 lanes, n = 32, subk = 16, k = 16, gate softmax
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> s1: array<f32>;
@group(0) @binding(2) var<storage, read> s2: array<f32>;
var<workgroup> mv: array<f32, 1024>;
var<workgroup> mi: array<u32, 1024>;
var<workgroup> av: array<f32, 16>;
var<workgroup> ai: array<u32, 16>;
var<workgroup> bv: array<f32, 16>;
var<workgroup> bi: array<u32, 16>;

// topk's order: the higher score first, ties to the lower index.
fn better(v1: f32, i1: u32, v2: f32, i2: u32) -> bool {
  return v1 > v2 || (v1 == v2 && i1 < i2);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  // Uniform per workgroup, so every thread reaches every barrier (extra workgroups write nothing).
  let lane = wg.y * nwg.x + wg.x;
  let live = lane < 12u;
  let base = min(lane, 11u) * 32u;
  var lv: array<f32, 16>;
  var lx: array<u32, 16>;

  for (var q = 0u; q < 16u; q++) { lv[q] = -3.4028234e38; lx[q] = 0xffffffffu; }
  for (var c = li; c < 32u; c += 64u) {
    let v = s1[base + c];
    if (better(v, c, lv[15u], lx[15u])) {
      var p = 15u;
      while (p > 0u && better(v, c, lv[p - 1u], lx[p - 1u])) { lv[p] = lv[p - 1u]; lx[p] = lx[p - 1u]; p--; }
      lv[p] = v;
      lx[p] = c;
    }
  }
  for (var q = 0u; q < 16u; q++) { mv[li * 16u + q] = lv[q]; mi[li * 16u + q] = lx[q]; }
  workgroupBarrier();
  for (var step = 1u; step < 64u; step = step << 1u) {
    for (var t = li * 2u * step; t + step < 64u; t += 64u * 2u * step) {
      let A = t * 16u;
      let B = (t + step) * 16u;
      var x = 0u;
      var y = 0u;
      for (var q = 0u; q < 16u; q++) {
        if (better(mv[A + x], mi[A + x], mv[B + y], mi[B + y])) { lv[q] = mv[A + x]; lx[q] = mi[A + x]; x++; } else { lv[q] = mv[B + y]; lx[q] = mi[B + y]; y++; }
      }
      for (var q = 0u; q < 16u; q++) { mv[A + q] = lv[q]; mi[A + q] = lx[q]; }
    }
    workgroupBarrier();
  }
  if (li < 16u) { av[li] = mv[li]; ai[li] = mi[li]; }
  workgroupBarrier();

  for (var q = 0u; q < 16u; q++) { lv[q] = -3.4028234e38; lx[q] = 0xffffffffu; }
  for (var c = li; c < 32u; c += 64u) {
    let v = s2[base + c];
    if (better(v, c, lv[15u], lx[15u])) {
      var p = 15u;
      while (p > 0u && better(v, c, lv[p - 1u], lx[p - 1u])) { lv[p] = lv[p - 1u]; lx[p] = lx[p - 1u]; p--; }
      lv[p] = v;
      lx[p] = c;
    }
  }
  for (var q = 0u; q < 16u; q++) { mv[li * 16u + q] = lv[q]; mi[li * 16u + q] = lx[q]; }
  workgroupBarrier();
  for (var step = 1u; step < 64u; step = step << 1u) {
    for (var t = li * 2u * step; t + step < 64u; t += 64u * 2u * step) {
      let A = t * 16u;
      let B = (t + step) * 16u;
      var x = 0u;
      var y = 0u;
      for (var q = 0u; q < 16u; q++) {
        if (better(mv[A + x], mi[A + x], mv[B + y], mi[B + y])) { lv[q] = mv[A + x]; lx[q] = mi[A + x]; x++; } else { lv[q] = mv[B + y]; lx[q] = mi[B + y]; y++; }
      }
      for (var q = 0u; q < 16u; q++) { mv[A + q] = lv[q]; mi[A + q] = lx[q]; }
    }
    workgroupBarrier();
  }
  if (li < 16u) { bv[li] = mv[li]; bi[li] = mi[li]; }
  workgroupBarrier();
  // Row i of the candidates: a_i + b_j for j in order, padded to k; rows from 16 on cannot reach the top k.
  for (var r = li; r < 16u; r += 64u) {
    for (var j = 0u; j < 16u; j++) {
      var v = -3.4028234e38;
      var c = 0xffffffffu;
      if (r < 16u && j < 16u) { v = av[r] + bv[j]; c = r * 16u + j; }
      mv[r * 16u + j] = v;
      mi[r * 16u + j] = c;
    }
  }
  workgroupBarrier();
  for (var step = 1u; step < 16u; step = step << 1u) {
    for (var t = li * 2u * step; t + step < 16u; t += 64u * 2u * step) {
      let A = t * 16u;
      let B = (t + step) * 16u;
      var x = 0u;
      var y = 0u;
      for (var q = 0u; q < 16u; q++) {
        if (better(mv[A + x], mi[A + x], mv[B + y], mi[B + y])) { lv[q] = mv[A + x]; lx[q] = mi[A + x]; x++; } else { lv[q] = mv[B + y]; lx[q] = mi[B + y]; y++; }
      }
      for (var q = 0u; q < 16u; q++) { mv[A + q] = lv[q]; mi[A + q] = lx[q]; }
    }
    workgroupBarrier();
  }
  if (live && li < 16u) {
    let top = mv[0];
    var z = 0.0;
    for (var j = 0u; j < 16u; j++) { z += exp(mv[j] - top); }
    let v = mv[li];
    let c = mi[li];
    out[lane * 16u + li] = exp(v - top) / z;
    out[192u + lane * 16u + li] = f32(ai[c / 16u] * 32u + bi[c % 16u]);
  }
}


// expert_act: 192 slots of 3 tokens, d = 256, gelu
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> U_0: array<f32>;
fn read_U(r: u32, c: u32) -> f32 {
  return U_0[(r - 0u) * 256u + c];
}
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let group = li / 8u;
  let lane = li % 8u;
  let slot = (wg.y * nwg.x + wg.x) * 32u + group;
  var acc = 0.0;
  if (slot < 192u) {
    let e = u32(idx[slot]);
    let xBase = (slot / 64u) * 256u;
    for (var j = lane * 4u; j < 256u; j += 32u) {
      for (var q = 0u; q < 4u; q++) {
        if (j + q < 256u) { acc = fma(read_U(e, j + q), x[xBase + j + q], acc); }
      }
    }
  }
  partial[li] = acc;
  workgroupBarrier();
  if (lane == 0u && slot < 192u) {
    var dot = 0.0;
    for (var q = 0u; q < 8u; q++) { dot += partial[li + q]; }
    out[slot] = w[slot] * ((0.5 * dot) * (1.0 + (select((-1.0), 1.0, ((dot * 0.7071067811865476) >= 0.0)) * (1.0 - ((((((((((1.061405429 * (1.0 / (1.0 + (0.3275911 * abs((dot * 0.7071067811865476)))))) - 1.453152027) * (1.0 / (1.0 + (0.3275911 * abs((dot * 0.7071067811865476)))))) + 1.421413741) * (1.0 / (1.0 + (0.3275911 * abs((dot * 0.7071067811865476)))))) - 0.284496736) * (1.0 / (1.0 + (0.3275911 * abs((dot * 0.7071067811865476)))))) + 0.254829592) * (1.0 / (1.0 + (0.3275911 * abs((dot * 0.7071067811865476)))))) * exp(((-(dot * 0.7071067811865476)) * (dot * 0.7071067811865476))))))));
  }
}


// expert_out: 3 tokens x 64 slots, d = 256
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;

@group(0) @binding(3) var<storage, read> V_0: array<f32>;
fn read_V(r: u32, c: u32) -> f32 {
  return V_0[(r - 0u) * 256u + c];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let cell = (wg.y * nwg.x + wg.x) * 64u + li;
  if (cell >= 768u) { return; }
  let t = cell / 256u;
  let j = cell % 256u;
  var acc = 0.0;
  for (var s = 0u; s < 64u; s++) {
    let slot = t * 64u + s;
    acc = fma(h[slot], read_V(u32(idx[slot]), j), acc);
  }
  out[cell] = acc;
}

