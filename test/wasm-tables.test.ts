// Expert tables in wasm memories of their own (runtime/wasm-tables.ts): the SIMD row kernels
// against plain loops on 1 and 2 threads (groups of eight and four slots, and tails), the forward of a PEER
// layer reading its rows in place, and the note a user gets where a table cannot live there.
import { describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize } from '../src/passes/pipeline.js';
import { unavailableReason } from '../runtime/backends/info.js';
import { Executor } from '../runtime/executor.js';
import { workerPool } from '../runtime/pool.js';
import { TableMemory, tableMemoryUnfit } from '../runtime/backends/wasm-simd/tables.js';
import { compileOk, sampleInputs, scaledError, smallExample } from './helpers.js';

const skip = !!unavailableReason('wasm-simd');
const rows = 11, d = 12, T = 5, perToken = 15; // per token: one group of eight slots, one of four and a tail of three

describe.skipIf(skip).each([1, 2])('row kernels in a table memory, %i thread(s)', (threads) => {
  const table = new TableMemory(rows, d, { pool: threads > 1 ? workerPool(threads) : undefined });
  table.weights.set(Float32Array.from({ length: rows * d }, (_, i) => Math.sin(i)));
  const idx = Float32Array.from({ length: T * perToken }, (_, i) => (i * 5 + 3) % rows);
  const x = Float32Array.from({ length: T * d }, (_, i) => Math.cos(0.3 * i));
  const h = Float32Array.from({ length: T * perToken }, (_, i) => 0.1 * i - 1);
  const U = table.weights;

  it('dots and axpys agree with plain loops', async () => {
    // x, then h, share one area; the dots, then y, another: each as large as the larger of the two.
    const area = 4 * T * Math.max(d, perToken);
    const off = table.scratch(T * perToken * 4 + 2 * area), xPtr = off + T * perToken * 4, outPtr = xPtr + area;
    table.rowOffsets(idx, table.u32(off, T * perToken), 'test');
    table.f32(xPtr, T * d).set(x);
    await table.dots(xPtr, off, outPtr, T, perToken);
    const dots = table.f32(outPtr, T * perToken);
    for (let i = 0; i < T * perToken; i++) {
      const t = Math.floor(i / perToken);
      let want = 0;
      for (let j = 0; j < d; j++) want += U[idx[i]! * d + j]! * x[t * d + j]!;
      expect(dots[i]).toBeCloseTo(want, 4);
    }
    table.f32(xPtr, T * perToken).set(h);
    const y = table.f32(outPtr, T * d).fill(0.5);
    await table.axpys(xPtr, off, outPtr, T, perToken);
    for (let t = 0; t < T; t++)
      for (let j = 0; j < d; j++) {
        let want = 0.5;
        for (let s = 0; s < perToken; s++) want += h[t * perToken + s]! * U[idx[t * perToken + s]! * d + j]!;
        expect(y[t * d + j]).toBeCloseTo(want, 4);
      }
  });

  it('gated dots apply the gate and the activation on the threads that made the dots', async () => {
    const area = 4 * T * Math.max(d, perToken);
    const off = table.scratch(T * perToken * 4 + 2 * area), xPtr = off + T * perToken * 4, dotsPtr = xPtr + area;
    table.rowOffsets(idx, table.u32(off, T * perToken), 'test');
    table.f32(xPtr, T * d).set(x);
    const w = Float32Array.from({ length: T * perToken }, (_, i) => 0.05 * i - 0.5);
    const out = new Float32Array(T * perToken).fill(NaN);
    await table.gatedDots(xPtr, off, dotsPtr, T, perToken, w, out, 'relu');
    for (let i = 0; i < T * perToken; i++) {
      const t = Math.floor(i / perToken);
      let dot = 0;
      for (let j = 0; j < d; j++) dot += U[idx[i]! * d + j]! * x[t * d + j]!;
      expect(out[i]).toBeCloseTo(w[i]! * Math.max(dot, 0), 4);
    }
  });

  it('the random-row-read yardstick sums the rows it reads (checked inside) and gives a rate', async () => {
    const gbPerS = await table.randomRowReads(1001, 2); // odd: a tail after the groups of eight
    expect(Number.isFinite(gbPerS) && gbPerS > 0).toBe(true);
  });

  it('a row id made NaN upstream is refused before any kernel reads memory', () => {
    const bad = Float32Array.from(idx);
    bad[3] = NaN;
    expect(() => table.rowOffsets(bad, table.u32(table.scratch(bad.length * 4), bad.length), 'expert_act')).toThrow(/NonFiniteIndex: expert_act: index NaN is out of range for 11 rows/);
  });
});

describe('what cannot live in a table memory, and why', () => {
  it('rows not a multiple of 4 floats, and tables past wasm32 memory', () => {
    expect(tableMemoryUnfit(10, 6)).toMatch(/rows of 6 values are not a multiple of 4/);
    expect(tableMemoryUnfit(1 << 22, 256)).toMatch(/it needs 4.00 GiB, past wasm32's 4 GiB memory/);
    expect(tableMemoryUnfit(1 << 20, 256)).toBeNull();
  });
});

describe.skipIf(skip)('the fused expert ops on wasm-simd', () => {
  /** The paper's layer at model width d, fused on 2 threads, and the reference's output. */
  const forward = async (d: number) => {
    const m = compileOk(smallExample('peer_paper.peer').replace('const d = 256', `const d = ${d}`));
    const weights = seededWeights(m, 4), inputs = sampleInputs(m, 2);
    const ref = interpret(m, inputs, weights).outputs[0]!;
    const ex = new Executor(optimize(m, { lowering: 'fused' }), weights, 'wasm-simd', { threads: 2 });
    return { ref, ex, ...(await ex.forward(inputs)) };
  };
  it('read the table rows in place and match the reference', async () => {
    const { ref, ex, outputs, timings } = await forward(32);
    expect([...timings.keys()]).toEqual(expect.arrayContaining(['expert_act (wasm-simd)', 'expert_out (wasm-simd)']));
    expect(ex.notes()).toEqual([]);
    expect(scaledError(ref.data, outputs[0]!.data)).toBeLessThan(2e-5);
  });
  it('say so where a table cannot live there, and still match the reference', async () => {
    const { ref, ex, outputs, timings } = await forward(30);
    expect([...timings.keys()]).toEqual(expect.arrayContaining(['expert_act (host)', 'expert_out (host)']));
    expect(ex.notes().join('\n')).toMatch(/expert_act reads the rows of table \w+ in a JavaScript task, not the SIMD kernel: its rows of 30 values are not a multiple of 4/);
    expect(scaledError(ref.data, outputs[0]!.data)).toBeLessThan(2e-5);
  });
});

// A table memory past 2 GiB puts the scratch (dots, products) at byte offsets of 2^31 and more:
// host code that turns them into float indices must shift them unsigned (>>> 2), or it reads and
// writes at negative indices (a NaN loss at N = 1024^2 with Adam state beside the table). Only the
// rows touched here are ever written, so the memory costs little more than its address space.
describe.skipIf(skip)('a table memory past 2 GiB, 2 threads', () => {
  const d = 256, rows = (1 << 21) + 64, T = 3, perToken = 8, block = 8;
  const table = new TableMemory(rows, d, { pool: workerPool(2) });
  const U = table.weights;
  const ids = Array.from({ length: T * perToken }, (_, i) => (i % 2 ? rows - 1 - 3 * i : 5 * i));
  for (const r of ids) for (let j = 0; j < d; j++) U[r * d + j] = Math.sin(0.01 * r + 0.3 * j);
  const x = Float32Array.from({ length: T * d }, (_, i) => Math.cos(0.7 * i));
  const dot = (r: number, t: number) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += U[r * d + j]! * x[t * d + j]!;
    return s;
  };

  it('gated dots read their dots from past 2 GiB', async () => {
    const idx = Float32Array.from(ids);
    const off = table.scratch(T * perToken * 8 + T * d * 4), xPtr = off + T * perToken * 4, dotsPtr = xPtr + T * d * 4;
    expect(dotsPtr).toBeGreaterThan(2 ** 31);
    table.rowOffsets(idx, table.u32(off, T * perToken), 'test');
    table.f32(xPtr, T * d).set(x);
    const w = Float32Array.from({ length: T * perToken }, (_, i) => 1 + 0.1 * i);
    const out = new Float32Array(T * perToken).fill(NaN);
    await table.gatedDots(xPtr, off, dotsPtr, T, perToken, w, out, 'none');
    out.forEach((v, i) => expect(v, `slot ${i}`).toBeCloseTo(w[i]! * dot(ids[i]!, Math.floor(i / perToken)), 3));
  });

  it('the products grouped by expert lay out and read their operands past 2 GiB', async () => {
    // Two slots of one expert of `block` rows per token (the last expert of the table for token 1).
    const experts = [0, (rows - block) / block, 7];
    for (const e of experts) for (let r = e * block; r < (e + 1) * block; r++) for (let j = 0; j < d; j++) U[r * d + j] = Math.cos(0.02 * r + 0.1 * j);
    const idx = Float32Array.from({ length: T * 2 * block }, (_, i) => experts[Math.floor(i / (2 * block))]! * block + (i % block));
    const w = new Float32Array(idx.length).fill(1);
    const out = new Float32Array(new SharedArrayBuffer(idx.length * 4)).fill(NaN);
    await table.groupedDots(x, idx, w, out, T, block, 'none');
    out.forEach((v, i) => expect(v, `slot cell ${i}`).toBeCloseTo(dot(idx[i]!, Math.floor(i / (2 * block))), 3));
    const h = Float32Array.from(idx, (_, i) => Math.sin(0.3 * i));
    const y = new Float32Array(T * d).fill(0.5);
    await table.groupedAxpys(h, idx, y, T, block);
    for (let t = 0; t < T; t++)
      for (let j = 0; j < d; j += 17) {
        let want = 0.5;
        for (let c = t * 2 * block; c < (t + 1) * 2 * block; c++) want += h[c]! * U[idx[c]! * d + j]!;
        expect(y[t * d + j], `token ${t} column ${j}`).toBeCloseTo(want, 3);
      }
  });
});
