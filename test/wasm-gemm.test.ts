// The generated WebAssembly SIMD128 contraction kernel against a float64 product: full tiles,
// ragged edges, both the relaxed-SIMD and the plain SIMD paths (whichever this engine has).
import { describe, expect, it } from 'vitest';
import { buildModule, I, sleb, uleb, wasmFeatures } from '../codegen/wasm/module.js';
import { WasmGemm } from '../runtime/backends/wasm-simd/gemm.js';
import { batchedLayout } from '../codegen/wasm/contraction.js';
import { parseEinsum } from '../src/ir/ops/einsum.js';
import { opDef } from '../src/ir/ops/registry.js';
import { Tensor } from '../src/interp/tensor.js';
import { permuteAxes } from '../runtime/executor.js';

function reference(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let acc = 0;
    for (let q = 0; q < k; q++) acc += a[i * k + q]! * b[q * n + j]!;
    c[i * n + j] = acc;
  }
  return c;
}

const random = (len: number, seed: number) => Float32Array.from({ length: len }, (_, i) => Math.sin(seed * 7919 + i * 12.9898) * 2);

describe('the module builder', () => {
  it('encodes LEB128 as the spec does', () => {
    expect(uleb(624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(sleb(-123456)).toEqual([0xc0, 0xbb, 0x78]);
    expect(sleb(63)).toEqual([0x3f]);
    expect(sleb(64)).toEqual([0xc0, 0x00]);
  });
  it('builds modules the engine validates; SIMD128 is detected', () => {
    const ok = buildModule([{ name: 'f', params: ['i32'], locals: ['f32'], body: [I.localGet(0), I.f32Load(0), I.localSet(1)] }], { minPages: 1, maxPages: 2 });
    expect(WebAssembly.validate(ok)).toBe(true);
    expect(wasmFeatures().simd).toBe(true);
  });
});

describe('SIMD128 contraction kernel', () => {
  const paths = [{ relaxed: false }, ...(wasmFeatures().relaxedSimd ? [{ relaxed: true }] : [])];
  for (const path of paths)
    it(`${path.relaxed ? 'relaxed-SIMD multiply-add' : 'plain SIMD'}: full tiles and ragged edges agree with float64`, () => {
      const g = new WasmGemm(path);
      expect(g.relaxed).toBe(path.relaxed);
      for (const [m, n, k] of [[4, 8, 1], [8, 16, 32], [5, 9, 7], [1, 3, 2], [3, 7, 5], [64, 64, 64], [13, 40, 33], [256, 24, 128]] as const) {
        const a = random(m * k, m + k), b = random(k * n, n);
        const c = g.matmul(a, b, m, n, k), ref = reference(a, b, m, n, k);
        let err = 0;
        ref.forEach((v, i) => { err = Math.max(err, Math.abs(v - c[i]!) / (1 + Math.abs(v))); });
        expect(err, `[${m}, ${k}] x [${k}, ${n}]`).toBeLessThan(1e-5 * Math.sqrt(k));
      }
    });
  it('B given transposed ([n, k], a key table read as [k, n]) is packed straight from that layout, ragged columns included', async () => {
    const g = new WasmGemm();
    for (const [m, n, k] of [[8, 16, 4], [12, 1027, 64], [4, 13, 3], [256, 24, 128]] as const) {
      const a = random(m * k, m + 1), bt = random(n * k, n + 2);
      const b = new Float32Array(k * n);
      for (let j = 0; j < n; j++) for (let q = 0; q < k; q++) b[q * n + j] = bt[j * k + q]!;
      const region = g.region(1, m, n, k);
      const viaT = (await g.run(region, a, bt, false, true)).slice();
      const plain = (await g.run(region, a, b, false, false)).slice();
      expect(viaT, `[${m}, ${k}] x [${k}, ${n}]`).toEqual(plain);
      const ref = reference(a, b, m, n, k);
      ref.forEach((v, i) => expect(Math.abs(v - viaT[i]!)).toBeLessThan(1e-5 * Math.sqrt(k) * (1 + Math.abs(v))));
    }
  });
  it('grows its memory for large operands and refuses products past 4 GiB', () => {
    const g = new WasmGemm();
    const m = 512, k = 512, n = 512;
    const c = g.matmul(random(m * k, 1), random(k * n, 2), m, n, k);
    expect(c.length).toBe(m * n);
    expect(() => g.matmul(new Float32Array(0), new Float32Array(0), 40000, 40000, 0)).toThrow(/passes wasm32's limit/);
  });
});

describe('einsums as batched products on the SIMD kernel', () => {
  const specs: [string, number[][]][] = [
    ['bhqd,bhkd->bhqk', [[2, 3, 9, 8], [2, 3, 10, 8]]],   // attention scores: batch letters b, h
    ['bhqk,bhkd->bqhd', [[2, 3, 9, 10], [2, 3, 10, 16]]], // attention output, result permuted
    ['thc,nc->thn', [[5, 4, 6], [12, 6]]],                // scoring
    ['thc,td->hcd', [[7, 3, 4], [7, 9]]],                 // a training-program contraction
  ];
  for (const [spec, shapes] of specs)
    it(spec, async () => {
      const parsed = parseEinsum(spec, 2);
      const m = batchedLayout(parsed, shapes)!;
      expect(m).toBeDefined();
      const [a, b] = shapes.map((s, i) => random(s.reduce((x, y) => x * y, 1), i + 3));
      const xs = m.x === 0 ? a! : b!, ys = m.x === 0 ? b! : a!;
      let out = await new WasmGemm().batched(permuteAxes(xs, shapes[m.x]!, m.permX), permuteAxes(ys, shapes[m.y]!, m.permY), m.batch, m.rows, m.cols, m.inner);
      if (m.permOut) out = permuteAxes(out, m.resultShape, m.permOut);
      const ref = opDef('einsum').evaluate!([new Tensor('f32', shapes[0]!, Float64Array.from(a!)), new Tensor('f32', shapes[1]!, Float64Array.from(b!))], { spec }, { training: false, dimValue: () => 0, updateBuffer: () => undefined, inputParamNames: [] })[0]!;
      expect(out.length).toBe(ref.size);
      ref.data.forEach((v, i) => expect(Math.abs(v - out[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(v))));
    });
  it('a letter summed inside one operand is not a product', () => {
    expect(batchedLayout(parseEinsum('ab,bc->c', 2), [[2, 3], [3, 4]])).toBeUndefined();
  });
});
