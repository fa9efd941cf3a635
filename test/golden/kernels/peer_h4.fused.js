// einsum_bn: 1536 cells
function(a0) {
let acc = 0.0;
for (let s = 0; s < 256; s++) {
  acc += a0[this.thread.y][s] * this.constants.p1[s][this.thread.x];
}
let cf = (this.thread.y * 512 + this.thread.x);
let ch = cf - Math.floor(cf / 512) * 512;
if (ch < 0) { ch = ch + 512; }
if (ch >= 512) { ch = ch - 512; }
return (acc - this.constants.p4[ch]) / Math.sqrt(this.constants.p5[ch] + 0.00001) * this.constants.p2[ch] + this.constants.p3[ch];
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

// einsum thc,nc->thn: 384 cells
function(a0) {
let acc = 0.0;
for (let s = 0; s < 64; s++) {
  acc += a0[this.thread.y][s] * this.constants.p1[s][this.thread.x];
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

// einsum thc,nc->thn: 384 cells
function(a0) {
let acc = 0.0;
for (let s = 0; s < 64; s++) {
  acc += a0[this.thread.y][s] * this.constants.p1[s][this.thread.x];
}
return acc;
}

// product_retrieve:subkey_topk: 192 cells
function(a0, a1) {
let o_rest = this.thread.x;
let o_q2 = Math.floor(o_rest / 8);
let o2 = o_rest - o_q2 * 8;
if (o2 < 0) { o_q2 = o_q2 - 1; o2 = o2 + 8; }
if (o2 >= 8) { o_q2 = o_q2 + 1; o2 = o2 - 8; }
o_rest = o_q2;
let o_q1 = Math.floor(o_rest / 2);
let o1 = o_rest - o_q1 * 2;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 2; }
if (o1 >= 2) { o_q1 = o_q1 + 1; o1 = o1 - 2; }
o_rest = o_q1;
let o0 = o_rest;
let v0 = -3.4e38; let i0 = 32.0; let v1 = -3.4e38; let i1 = 33.0; let v2 = -3.4e38; let i2 = 34.0; let v3 = -3.4e38; let i3 = 35.0; let v4 = -3.4e38; let i4 = 36.0; let v5 = -3.4e38; let i5 = 37.0; let v6 = -3.4e38; let i6 = 38.0; let v7 = -3.4e38; let i7 = 39.0; let v8 = -3.4e38; let i8 = 40.0; let v9 = -3.4e38; let i9 = 41.0; let v10 = -3.4e38; let i10 = 42.0; let v11 = -3.4e38; let i11 = 43.0; let v12 = -3.4e38; let i12 = 44.0; let v13 = -3.4e38; let i13 = 45.0; let v14 = -3.4e38; let i14 = 46.0; let v15 = -3.4e38; let i15 = 47.0;
let tv = 0.0; let ti = 0.0;
for (let c = 0; c < 32; c++) {
  let cv = (o1 < 0.5 ? a0[o0 * 32 + c] : a1[o0 * 32 + c]);
  if (cv > v15) {
    v15 = cv; i15 = c;
    if ((v15 > v14 || (v15 == v14 && i15 < i14))) { tv = v14; ti = i14; v14 = v15; i14 = i15; v15 = tv; i15 = ti; }
    if ((v14 > v13 || (v14 == v13 && i14 < i13))) { tv = v13; ti = i13; v13 = v14; i13 = i14; v14 = tv; i14 = ti; }
    if ((v13 > v12 || (v13 == v12 && i13 < i12))) { tv = v12; ti = i12; v12 = v13; i12 = i13; v13 = tv; i13 = ti; }
    if ((v12 > v11 || (v12 == v11 && i12 < i11))) { tv = v11; ti = i11; v11 = v12; i11 = i12; v12 = tv; i12 = ti; }
    if ((v11 > v10 || (v11 == v10 && i11 < i10))) { tv = v10; ti = i10; v10 = v11; i10 = i11; v11 = tv; i11 = ti; }
    if ((v10 > v9 || (v10 == v9 && i10 < i9))) { tv = v9; ti = i9; v9 = v10; i9 = i10; v10 = tv; i10 = ti; }
    if ((v9 > v8 || (v9 == v8 && i9 < i8))) { tv = v8; ti = i8; v8 = v9; i8 = i9; v9 = tv; i9 = ti; }
    if ((v8 > v7 || (v8 == v7 && i8 < i7))) { tv = v7; ti = i7; v7 = v8; i7 = i8; v8 = tv; i8 = ti; }
    if ((v7 > v6 || (v7 == v6 && i7 < i6))) { tv = v6; ti = i6; v6 = v7; i6 = i7; v7 = tv; i7 = ti; }
    if ((v6 > v5 || (v6 == v5 && i6 < i5))) { tv = v5; ti = i5; v5 = v6; i5 = i6; v6 = tv; i6 = ti; }
    if ((v5 > v4 || (v5 == v4 && i5 < i4))) { tv = v4; ti = i4; v4 = v5; i4 = i5; v5 = tv; i5 = ti; }
    if ((v4 > v3 || (v4 == v3 && i4 < i3))) { tv = v3; ti = i3; v3 = v4; i3 = i4; v4 = tv; i4 = ti; }
    if ((v3 > v2 || (v3 == v2 && i3 < i2))) { tv = v2; ti = i2; v2 = v3; i2 = i3; v3 = tv; i3 = ti; }
    if ((v2 > v1 || (v2 == v1 && i2 < i1))) { tv = v1; ti = i1; v1 = v2; i1 = i2; v2 = tv; i2 = ti; }
    if ((v1 > v0 || (v1 == v0 && i1 < i0))) { tv = v0; ti = i0; v0 = v1; i0 = i1; v1 = tv; i1 = ti; }
  }
}
let av = v0; let ai = i0; let bv = v1; let bi = i1;
if (o2 == 1) { av = v2; ai = i2; bv = v3; bi = i3; }
if (o2 == 2) { av = v4; ai = i4; bv = v5; bi = i5; }
if (o2 == 3) { av = v6; ai = i6; bv = v7; bi = i7; }
if (o2 == 4) { av = v8; ai = i8; bv = v9; bi = i9; }
if (o2 == 5) { av = v10; ai = i10; bv = v11; bi = i11; }
if (o2 == 6) { av = v12; ai = i12; bv = v13; bi = i13; }
if (o2 == 7) { av = v14; ai = i14; bv = v15; bi = i15; }
return [av, ai, bv, bi];
}

// product_retrieve:combine: 96 cells
function(a0, a1, st0) {
let o_rest = this.thread.x;
let o_q1 = Math.floor(o_rest / 8);
let o1 = o_rest - o_q1 * 8;
if (o1 < 0) { o_q1 = o_q1 - 1; o1 = o1 + 8; }
if (o1 >= 8) { o_q1 = o_q1 + 1; o1 = o1 - 8; }
o_rest = o_q1;
let o0 = o_rest;
let v0 = -3.4e38; let c0 = 256.0; let v1 = -3.4e38; let c1 = 257.0; let v2 = -3.4e38; let c2 = 258.0; let v3 = -3.4e38; let c3 = 259.0; let v4 = -3.4e38; let c4 = 260.0; let v5 = -3.4e38; let c5 = 261.0; let v6 = -3.4e38; let c6 = 262.0; let v7 = -3.4e38; let c7 = 263.0; let v8 = -3.4e38; let c8 = 264.0; let v9 = -3.4e38; let c9 = 265.0; let v10 = -3.4e38; let c10 = 266.0; let v11 = -3.4e38; let c11 = 267.0; let v12 = -3.4e38; let c12 = 268.0; let v13 = -3.4e38; let c13 = 269.0; let v14 = -3.4e38; let c14 = 270.0; let v15 = -3.4e38; let c15 = 271.0;
let tv = 0.0; let tc = 0.0;
for (let ia = 0; ia < 16; ia++) {
  for (let ib = 0; ib < 16; ib++) {
    if ((ia + 1) * (ib + 1) > 16) { break; }
    let cv = st0[((o0 * 2 + 0) * 8 + Math.floor((ia) / 2.0)) * 4 + ((ia) - Math.floor((ia) / 2.0) * 2.0) * 2 + 0] + st0[((o0 * 2 + 1) * 8 + Math.floor((ib) / 2.0)) * 4 + ((ib) - Math.floor((ib) / 2.0) * 2.0) * 2 + 0];
    if (cv > v15) {
      v15 = cv; c15 = ia * 16 + ib;
      if ((v15 > v14 || (v15 == v14 && c15 < c14))) { tv = v14; tc = c14; v14 = v15; c14 = c15; v15 = tv; c15 = tc; }
      if ((v14 > v13 || (v14 == v13 && c14 < c13))) { tv = v13; tc = c13; v13 = v14; c13 = c14; v14 = tv; c14 = tc; }
      if ((v13 > v12 || (v13 == v12 && c13 < c12))) { tv = v12; tc = c12; v12 = v13; c12 = c13; v13 = tv; c13 = tc; }
      if ((v12 > v11 || (v12 == v11 && c12 < c11))) { tv = v11; tc = c11; v11 = v12; c11 = c12; v12 = tv; c12 = tc; }
      if ((v11 > v10 || (v11 == v10 && c11 < c10))) { tv = v10; tc = c10; v10 = v11; c10 = c11; v11 = tv; c11 = tc; }
      if ((v10 > v9 || (v10 == v9 && c10 < c9))) { tv = v9; tc = c9; v9 = v10; c9 = c10; v10 = tv; c10 = tc; }
      if ((v9 > v8 || (v9 == v8 && c9 < c8))) { tv = v8; tc = c8; v8 = v9; c8 = c9; v9 = tv; c9 = tc; }
      if ((v8 > v7 || (v8 == v7 && c8 < c7))) { tv = v7; tc = c7; v7 = v8; c7 = c8; v8 = tv; c8 = tc; }
      if ((v7 > v6 || (v7 == v6 && c7 < c6))) { tv = v6; tc = c6; v6 = v7; c6 = c7; v7 = tv; c7 = tc; }
      if ((v6 > v5 || (v6 == v5 && c6 < c5))) { tv = v5; tc = c5; v5 = v6; c5 = c6; v6 = tv; c6 = tc; }
      if ((v5 > v4 || (v5 == v4 && c5 < c4))) { tv = v4; tc = c4; v4 = v5; c4 = c5; v5 = tv; c5 = tc; }
      if ((v4 > v3 || (v4 == v3 && c4 < c3))) { tv = v3; tc = c3; v3 = v4; c3 = c4; v4 = tv; c4 = tc; }
      if ((v3 > v2 || (v3 == v2 && c3 < c2))) { tv = v2; tc = c2; v2 = v3; c2 = c3; v3 = tv; c3 = tc; }
      if ((v2 > v1 || (v2 == v1 && c2 < c1))) { tv = v1; tc = c1; v1 = v2; c1 = c2; v2 = tv; c2 = tc; }
      if ((v1 > v0 || (v1 == v0 && c1 < c0))) { tv = v0; tc = c0; v0 = v1; c0 = c1; v1 = tv; c1 = tc; }
    }
  }
}
let z = 0.0;
z += Math.exp(v0 - v0);
z += Math.exp(v1 - v0);
z += Math.exp(v2 - v0);
z += Math.exp(v3 - v0);
z += Math.exp(v4 - v0);
z += Math.exp(v5 - v0);
z += Math.exp(v6 - v0);
z += Math.exp(v7 - v0);
z += Math.exp(v8 - v0);
z += Math.exp(v9 - v0);
z += Math.exp(v10 - v0);
z += Math.exp(v11 - v0);
z += Math.exp(v12 - v0);
z += Math.exp(v13 - v0);
z += Math.exp(v14 - v0);
z += Math.exp(v15 - v0);
let av = v0; let ac = c0; let bv = v1; let bc = c1;
if (o1 == 1) { av = v2; ac = c2; bv = v3; bc = c3; }
if (o1 == 2) { av = v4; ac = c4; bv = v5; bc = c5; }
if (o1 == 3) { av = v6; ac = c6; bv = v7; bc = c7; }
if (o1 == 4) { av = v8; ac = c8; bv = v9; bc = c9; }
if (o1 == 5) { av = v10; ac = c10; bv = v11; bc = c11; }
if (o1 == 6) { av = v12; ac = c12; bv = v13; bc = c13; }
if (o1 == 7) { av = v14; ac = c14; bv = v15; bc = c15; }
return [Math.exp(av - v0) / z, (st0[((o0 * 2 + 0) * 8 + Math.floor((Math.floor(ac / 16.0)) / 2.0)) * 4 + ((Math.floor(ac / 16.0)) - Math.floor((Math.floor(ac / 16.0)) / 2.0) * 2.0) * 2 + 1] * 32.0 + st0[((o0 * 2 + 1) * 8 + Math.floor(((ac - Math.floor(ac / 16.0) * 16.0)) / 2.0)) * 4 + (((ac - Math.floor(ac / 16.0) * 16.0)) - Math.floor(((ac - Math.floor(ac / 16.0) * 16.0)) / 2.0) * 2.0) * 2 + 1]), Math.exp(bv - v0) / z, (st0[((o0 * 2 + 0) * 8 + Math.floor((Math.floor(bc / 16.0)) / 2.0)) * 4 + ((Math.floor(bc / 16.0)) - Math.floor((Math.floor(bc / 16.0)) / 2.0) * 2.0) * 2 + 1] * 32.0 + st0[((o0 * 2 + 1) * 8 + Math.floor(((bc - Math.floor(bc / 16.0) * 16.0)) / 2.0)) * 4 + (((bc - Math.floor(bc / 16.0) * 16.0)) - Math.floor(((bc - Math.floor(bc / 16.0) * 16.0)) / 2.0) * 2.0) * 2 + 1])];
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
