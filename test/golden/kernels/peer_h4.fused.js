// einsum: 1536 cells
function(a0) {
let o_rest = this.thread.x;
let o_q2 = Math.floor(o_rest / 128);
let o2 = o_rest - o_q2 * 128;
if (o2 < 0) { o_q2 = o_q2 - 1; o2 = o2 + 128; }
if (o2 >= 128) { o_q2 = o_q2 + 1; o2 = o2 - 128; }
o_rest = o_q2;
let o_q1 = Math.floor(o_rest / 4);
let o1 = o_rest - o_q1 * 4;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 4; }
if (o1 >= 4) { o_q1 = o_q1 + 1; o1 = o1 - 4; }
o_rest = o_q1;
let o0 = o_rest;
let acc = 0.0;
for (let s_d = 0; s_d < 256; s_d++) {
acc += a0[(o0) * 256 + s_d] * this.constants.p1[((o1) * 128 + o2) * 256 + s_d];
}
return acc;
}

// batchnorm: 1536 cells
function(a0) {
let o_rest = this.thread.x;
let o_q1 = Math.floor(o_rest / 512);
let o1 = o_rest - o_q1 * 512;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 512; }
if (o1 >= 512) { o_q1 = o_q1 + 1; o1 = o1 - 512; }
o_rest = o_q1;
let o0 = o_rest;
let xv = a0[this.thread.x];
return (xv - this.constants.p3[o1]) / Math.sqrt(this.constants.p4[o1] + 0.00001) * this.constants.p1[o1] + this.constants.p2[o1];
}

// slice: 768 cells
function(a0) {
let o_rest = this.thread.x;
let o_q2 = Math.floor(o_rest / 64);
let o2 = o_rest - o_q2 * 64;
if (o2 < 0) { o_q2 = o_q2 - 1; o2 = o2 + 64; }
if (o2 >= 64) { o_q2 = o_q2 + 1; o2 = o2 - 64; }
o_rest = o_q2;
let o_q1 = Math.floor(o_rest / 4);
let o1 = o_rest - o_q1 * 4;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 4; }
if (o1 >= 4) { o_q1 = o_q1 + 1; o1 = o1 - 4; }
o_rest = o_q1;
let o0 = o_rest;
return a0[((o0) * 4 + o1) * 128 + (o2 + 0)];
}

// einsum: 384 cells
function(a0) {
let o_rest = this.thread.x;
let o_q2 = Math.floor(o_rest / 32);
let o2 = o_rest - o_q2 * 32;
if (o2 < 0) { o_q2 = o_q2 - 1; o2 = o2 + 32; }
if (o2 >= 32) { o_q2 = o_q2 + 1; o2 = o2 - 32; }
o_rest = o_q2;
let o_q1 = Math.floor(o_rest / 4);
let o1 = o_rest - o_q1 * 4;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 4; }
if (o1 >= 4) { o_q1 = o_q1 + 1; o1 = o1 - 4; }
o_rest = o_q1;
let o0 = o_rest;
let acc = 0.0;
for (let s_c = 0; s_c < 64; s_c++) {
acc += a0[((o0) * 4 + o1) * 64 + s_c] * this.constants.p1[(o2) * 64 + s_c];
}
return acc;
}

// slice: 768 cells
function(a0) {
let o_rest = this.thread.x;
let o_q2 = Math.floor(o_rest / 64);
let o2 = o_rest - o_q2 * 64;
if (o2 < 0) { o_q2 = o_q2 - 1; o2 = o2 + 64; }
if (o2 >= 64) { o_q2 = o_q2 + 1; o2 = o2 - 64; }
o_rest = o_q2;
let o_q1 = Math.floor(o_rest / 4);
let o1 = o_rest - o_q1 * 4;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 4; }
if (o1 >= 4) { o_q1 = o_q1 + 1; o1 = o1 - 4; }
o_rest = o_q1;
let o0 = o_rest;
return a0[((o0) * 4 + o1) * 128 + (o2 + 64)];
}

// einsum: 384 cells
function(a0) {
let o_rest = this.thread.x;
let o_q2 = Math.floor(o_rest / 32);
let o2 = o_rest - o_q2 * 32;
if (o2 < 0) { o_q2 = o_q2 - 1; o2 = o2 + 32; }
if (o2 >= 32) { o_q2 = o_q2 + 1; o2 = o2 - 32; }
o_rest = o_q2;
let o_q1 = Math.floor(o_rest / 4);
let o1 = o_rest - o_q1 * 4;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 4; }
if (o1 >= 4) { o_q1 = o_q1 + 1; o1 = o1 - 4; }
o_rest = o_q1;
let o0 = o_rest;
let acc = 0.0;
for (let s_c = 0; s_c < 64; s_c++) {
acc += a0[((o0) * 4 + o1) * 64 + s_c] * this.constants.p1[(o2) * 64 + s_c];
}
return acc;
}

// product_retrieve:threshold: 48 cells
function(a0, a1) {
let cell = this.thread.x; let second = 0.0;
if (cell >= 24) { cell = cell - 24; second = 1.0; }
let o_rest = cell;
let o_q1 = Math.floor(o_rest / 2);
let o1 = o_rest - o_q1 * 2;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 2; }
if (o1 >= 2) { o_q1 = o_q1 + 1; o1 = o1 - 2; }
o_rest = o_q1;
let o0 = o_rest;
let v_pv = 3.4e38; let v_pi = -1.0; let v = 0.0; let vi = -1.0;
for (let p = 0; p < 16; p++) {
  if (p <= 15) {
    let bv = -3.4e38; let bi = -1.0;
    for (let c = 0; c < 32; c++) {
      let cv = (o1 < 0.5 ? a0[o0 * 32 + c] : a1[o0 * 32 + c]);
      if ((cv < v_pv || (cv == v_pv && c > v_pi)) && (bi < 0.0 || cv > bv || (cv == bv && c < bi))) { bv = cv; bi = c; }
    }
    v_pv = bv; v_pi = bi; v = bv; vi = bi;
  }
}
return second > 0.5 ? vi : v;
}

// product_retrieve:survivors: 768 cells
function(a0, a1, st0) {
let cell = this.thread.x; let second = 0.0;
if (cell >= 384) { cell = cell - 384; second = 1.0; }
let o_rest = cell;
let o_q2 = Math.floor(o_rest / 16);
let o2 = o_rest - o_q2 * 16;
if (o2 < 0) { o_q2 = o_q2 - 1; o2 = o2 + 16; }
if (o2 >= 16) { o_q2 = o_q2 + 1; o2 = o2 - 16; }
o_rest = o_q2;
let o_q1 = Math.floor(o_rest / 2);
let o1 = o_rest - o_q1 * 2;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 2; }
if (o1 >= 2) { o_q1 = o_q1 + 1; o1 = o1 - 2; }
o_rest = o_q1;
let o0 = o_rest;
let tv = st0[o0 * 2 + o1]; let ti = st0[24 + o0 * 2 + o1];
let seen = 0.0; let found = 0.0;
for (let c = 0; c < 32; c++) {
  let cv = (o1 < 0.5 ? a0[o0 * 32 + c] : a1[o0 * 32 + c]);
  if ((cv > tv || (cv == tv && c < ti)) || (cv == tv && c == ti)) { if (seen == o2) { found = c; } seen += 1.0; }
}
if (second > 0.5) { return found; }
return (o1 < 0.5 ? a0[o0 * 32 + found] : a1[o0 * 32 + found]);
}

// product_retrieve:sort: 768 cells
function(a0, a1, st0, st1) {
let cell = this.thread.x; let second = 0.0;
if (cell >= 384) { cell = cell - 384; second = 1.0; }
let o_rest = cell;
let o_q2 = Math.floor(o_rest / 16);
let o2 = o_rest - o_q2 * 16;
if (o2 < 0) { o_q2 = o_q2 - 1; o2 = o2 + 16; }
if (o2 >= 16) { o_q2 = o_q2 + 1; o2 = o2 - 16; }
o_rest = o_q2;
let o_q1 = Math.floor(o_rest / 2);
let o1 = o_rest - o_q1 * 2;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 2; }
if (o1 >= 2) { o_q1 = o_q1 + 1; o1 = o1 - 2; }
o_rest = o_q1;
let o0 = o_rest;
let base = (o0 * 2 + o1) * 16;
let rv = 0.0; let ri = 0.0;
for (let m = 0; m < 16; m++) {
  let mv = st1[base + m]; let mi = st1[384 + base + m];
  let rk = 0.0;
  for (let q = 0; q < 16; q++) { let qv = st1[base + q]; let qi = st1[384 + base + q]; if ((qv > mv || (qv == mv && qi < mi))) { rk += 1.0; } }
  if (rk == o2) { rv = mv; ri = mi; }
}
return second > 0.5 ? ri : rv;
}

// product_retrieve:pair_rank: 3072 cells
function(a0, a1, st0, st1, st2) {
let o_rest = this.thread.x;
let o_q2 = Math.floor(o_rest / 16);
let o2 = o_rest - o_q2 * 16;
if (o2 < 0) { o_q2 = o_q2 - 1; o2 = o2 + 16; }
if (o2 >= 16) { o_q2 = o_q2 + 1; o2 = o2 - 16; }
o_rest = o_q2;
let o_q1 = Math.floor(o_rest / 16);
let o1 = o_rest - o_q1 * 16;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 16; }
if (o1 >= 16) { o_q1 = o_q1 + 1; o1 = o1 - 16; }
o_rest = o_q1;
let o0 = o_rest;
if ((o1 + 1) * (o2 + 1) > 16) { return -1.0; }
let mc = o1 * 16 + o2;
let mv = st2[(o0 * 2 + 0) * 16 + o1] + st2[(o0 * 2 + 1) * 16 + o2];
let rk = 0.0;
for (let ia = 0; ia < 16; ia++) {
  for (let ib = 0; ib < 16; ib++) {
    if ((ia + 1) * (ib + 1) > 16) { break; }
    let cv = st2[(o0 * 2 + 0) * 16 + ia] + st2[(o0 * 2 + 1) * 16 + ib];
    if ((cv > mv || (cv == mv && (ia * 16 + ib) < mc))) { rk += 1.0; }
  }
}
return rk;
}

// product_retrieve:combine: 384 cells
function(a0, a1, st0, st1, st2, st3) {
let cell = this.thread.x; let second = 0.0;
if (cell >= 192) { cell = cell - 192; second = 1.0; }
let o_rest = cell;
let o_q1 = Math.floor(o_rest / 16);
let o1 = o_rest - o_q1 * 16;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 16; }
if (o1 >= 16) { o_q1 = o_q1 + 1; o1 = o1 - 16; }
o_rest = o_q1;
let o0 = o_rest;
let top = 0.0; let sv = 0.0; let sa = 0.0; let sb = 0.0;
for (let ia = 0; ia < 16; ia++) {
  for (let ib = 0; ib < 16; ib++) {
    if ((ia + 1) * (ib + 1) > 16) { break; }
    let rk = st3[o0 * 256 + ia * 16 + ib];
    if (rk == 0.0) { top = st2[(o0 * 2 + 0) * 16 + ia] + st2[(o0 * 2 + 1) * 16 + ib]; }
    if (rk == o1) { sv = st2[(o0 * 2 + 0) * 16 + ia] + st2[(o0 * 2 + 1) * 16 + ib]; sa = ia; sb = ib; }
  }
}
let z = 0.0;
for (let ia = 0; ia < 16; ia++) {
  for (let ib = 0; ib < 16; ib++) {
    if ((ia + 1) * (ib + 1) > 16) { break; }
    let rk = st3[o0 * 256 + ia * 16 + ib];
    if (rk >= 0.0 && rk < 16.0) { z += Math.exp(st2[(o0 * 2 + 0) * 16 + ia] + st2[(o0 * 2 + 1) * 16 + ib] - top); }
  }
}
if (second > 0.5) { return st2[384 + (o0 * 2 + 0) * 16 + sa] * 32.0 + st2[384 + (o0 * 2 + 1) * 16 + sb]; }
return Math.exp(sv - top) / z;
}

// expert_act: 192 cells
function(a0, a2, a3) {
let o_rest = this.thread.x;
let o_q1 = Math.floor(o_rest / 64);
let o1 = o_rest - o_q1 * 64;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 64; }
if (o1 >= 64) { o_q1 = o_q1 + 1; o1 = o1 - 64; }
o_rest = o_q1;
let o0 = o_rest;
let e = a2[this.thread.x];
let dot = 0.0;
for (let j = 0; j < 256; j++) { dot += this.constants.p1[(e) * 256 + j] * a0[o0 * 256 + j]; }
return a3[this.thread.x] * 0.5 * (dot) * (1.0 + (((dot) * 0.7071067811865476) >= 0.0 ? 1.0 : -1.0) * (1.0 - (((((1.061405429 * (1.0 / (1.0 + 0.3275911 * Math.abs((dot) * 0.7071067811865476))) - 1.453152027) * (1.0 / (1.0 + 0.3275911 * Math.abs((dot) * 0.7071067811865476))) + 1.421413741) * (1.0 / (1.0 + 0.3275911 * Math.abs((dot) * 0.7071067811865476))) - 0.284496736) * (1.0 / (1.0 + 0.3275911 * Math.abs((dot) * 0.7071067811865476))) + 0.254829592) * (1.0 / (1.0 + 0.3275911 * Math.abs((dot) * 0.7071067811865476)))) * Math.exp(-((dot) * 0.7071067811865476) * ((dot) * 0.7071067811865476))));
}

// expert_out: 768 cells
function(a0, a2) {
let o_rest = this.thread.x;
let o_q1 = Math.floor(o_rest / 256);
let o1 = o_rest - o_q1 * 256;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 256; }
if (o1 >= 256) { o_q1 = o_q1 + 1; o1 = o1 - 256; }
o_rest = o_q1;
let o0 = o_rest;
let acc = 0.0;
for (let s = 0; s < 64; s++) {
  let slot = o0 * 64 + s;
  acc += a0[slot] * this.constants.p1[(a2[slot]) * 256 + o1];
}
return acc;
}
