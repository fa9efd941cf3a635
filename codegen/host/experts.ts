// The expert fusions and the row movements of training as generated host tasks (JavaScript
// over shared memory, run by the worker pool, split by token or by row): each reads whole
// 1 KiB expert rows of tables that may exceed 2^24 cells, which typed arrays index directly.
// A row index out of range can only come from NaN upstream (inputs are checked before any
// kernel): the task stops with a message the executor turns into NonFiniteIndex.
import type { PoolTask } from './pool-task.js';
import { ACTIVATIONS } from '../naive.js';

const badRow = (op: string, e: string, rows: number) =>
  `if (!(${e} >= 0 && ${e} < ${rows})) throw new Error('NonFiniteIndex: ${op}: index ' + ${e} + ' is out of range for ${rows} rows (the values it was selected from are not finite)');`;

// Four slots at a time: four independent row streams keep more memory reads in flight than
// one (the rows are random 1 KiB reads from a table of up to 1 GiB), and x or out is read or
// written once per four rows. Measured ~2x over one row at a time for both ops.

/** h[i] = w[i] * act(U[idx[i]] . x[t]) for the slots of tokens [from, to). Args: x, U, idx, w, out. */
export function expertActTask(d: number, rows: number, perToken: number, act: string): PoolTask {
  const value = (v: string) => (act === 'none' ? v : ACTIVATIONS[act]!(v));
  const source = `function expertAct(args, from, to) {
  const x = args[0], U = args[1], idx = args[2], w = args[3], out = args[4];
  for (let t = from; t < to; t++) {
    const xo = t * ${d}, end = (t + 1) * ${perToken};
    let i = t * ${perToken};
    for (; i + 4 <= end; i += 4) {
      const e0 = idx[i], e1 = idx[i + 1], e2 = idx[i + 2], e3 = idx[i + 3];
      ${['e0', 'e1', 'e2', 'e3'].map((e) => badRow('expert_act', e, rows)).join('\n      ')}
      const a0 = e0 * ${d}, a1 = e1 * ${d}, a2 = e2 * ${d}, a3 = e3 * ${d};
      let d0 = 0, d1 = 0, d2 = 0, d3 = 0;
      for (let j = 0; j < ${d}; j++) {
        const xv = x[xo + j];
        d0 += U[a0 + j] * xv; d1 += U[a1 + j] * xv; d2 += U[a2 + j] * xv; d3 += U[a3 + j] * xv;
      }
      out[i] = w[i] * (${value('d0')}); out[i + 1] = w[i + 1] * (${value('d1')});
      out[i + 2] = w[i + 2] * (${value('d2')}); out[i + 3] = w[i + 3] * (${value('d3')});
    }
    for (; i < end; i++) {
      const e = idx[i];
      ${badRow('expert_act', 'e', rows)}
      const a = e * ${d};
      let dot = 0;
      for (let j = 0; j < ${d}; j++) dot += U[a + j] * x[xo + j];
      out[i] = w[i] * (${value('dot')});
    }
  }
}`;
  return { key: `expert_act:${d}:${rows}:${perToken}:${act}`, source };
}

/** y[t] = (residual[t]) + sum over t's slots of h[i] * V[idx[i]], tokens [from, to). Args: h, V, idx, out, residual?. */
export function expertOutTask(d: number, rows: number, perToken: number, residual: boolean): PoolTask {
  const source = `function expertOut(args, from, to) {
  const h = args[0], V = args[1], idx = args[2], out = args[3]${residual ? ', res = args[4]' : ''};
  for (let t = from; t < to; t++) {
    const yo = t * ${d}, end = (t + 1) * ${perToken};
    ${residual ? `for (let j = 0; j < ${d}; j++) out[yo + j] = res[yo + j];` : `for (let j = 0; j < ${d}; j++) out[yo + j] = 0;`}
    let i = t * ${perToken};
    for (; i + 4 <= end; i += 4) {
      const e0 = idx[i], e1 = idx[i + 1], e2 = idx[i + 2], e3 = idx[i + 3];
      ${['e0', 'e1', 'e2', 'e3'].map((e) => badRow('expert_out', e, rows)).join('\n      ')}
      const a0 = e0 * ${d}, a1 = e1 * ${d}, a2 = e2 * ${d}, a3 = e3 * ${d};
      const s0 = h[i], s1 = h[i + 1], s2 = h[i + 2], s3 = h[i + 3];
      for (let j = 0; j < ${d}; j++) out[yo + j] += s0 * V[a0 + j] + s1 * V[a1 + j] + s2 * V[a2 + j] + s3 * V[a3 + j];
    }
    for (; i < end; i++) {
      const e = idx[i], s = h[i];
      ${badRow('expert_out', 'e', rows)}
      const a = e * ${d};
      for (let j = 0; j < ${d}; j++) out[yo + j] += s * V[a + j];
    }
  }
}`;
  return { key: `expert_out:${d}:${rows}:${perToken}:${residual}`, source };
}

/** out[i] = table[idx[i]] (rows of `rowSize`), slots [from, to). Args: table, idx, out. */
export function gatherRowsTask(rowSize: number, rows: number): PoolTask {
  const source = `function gatherRows(args, from, to) {
  const table = args[0], idx = args[1], out = args[2];
  for (let i = from; i < to; i++) {
    const r = idx[i];
    ${badRow('gather', 'r', rows)}
    out.set(table.subarray(r * ${rowSize}, r * ${rowSize} + ${rowSize}), i * ${rowSize});
  }
}`;
  return { key: `gather_rows:${rowSize}:${rows}`, source };
}

/**
 * Sums gradient rows per touched row, buckets [from, to) of a CSR (order sorted by row id,
 * start, length): in slot order, as the reference does; and each summed row's sum of squares
 * while it is in cache (the gradient norm needs them: a separate pass over every row cost
 * 13-24 ms per step at 16k rows x 256 x 2 tables). Args: grads, order, start, length, out, squares.
 */
export function sumRowsTask(rowSize: number): PoolTask {
  const source = `function sumRows(args, from, to) {
  const g = args[0], order = args[1], start = args[2], len = args[3], out = args[4], squares = args[5];
  for (let r = from; r < to; r++) {
    const s = start[r], o = r * ${rowSize};
    const first = order[s] * ${rowSize};
    out.set(g.subarray(first, first + ${rowSize}), o);
    for (let q = 1; q < len[r]; q++) {
      const src = order[s + q] * ${rowSize};
      for (let c = 0; c < ${rowSize}; c++) out[o + c] += g[src + c];
    }
    let sq = 0;
    for (let c = o; c < o + ${rowSize}; c++) sq += out[c] * out[c];
    squares[r] = sq;
  }
}`;
  return { key: `sum_rows:${rowSize}`, source };
}

/**
 * One element's Adam update (the operations and order of runtime/train/optim.ts's host loop),
 * element i of w, m, v with gradient g[gIndex]; adds w * 0 to `check` (NaN once any is not finite).
 */
const adamElement = (gIndex: string) => `
      const d = g[${gIndex}] * scale;
      const mi = (m[i] = b1 * m[i] + (1 - b1) * d);
      const vi = (v[i] = b2 * v[i] + (1 - b2) * d * d);
      const wi = (w[i] = w[i] * keep - (stepSize * mi) / (Math.sqrt(vi) + epsHat));
      check += wi * 0;`;

/**
 * Lazy Adam (decoupled decay as `keep`) on touched rows [from, to): w, m, v at row ids[r],
 * gradient row r of g. flags[0] is set to 1 when an updated weight is not finite (every
 * thread writes the same 1, so no atomics are needed).
 * Args: w, m, v, g, ids, flags, rowSize, scale, b1, b2, stepSize, epsHat, keep.
 */
export const LAZY_ADAM_TASK: PoolTask = {
  key: 'lazy_adam',
  source: `function lazyAdam(args, from, to) {
  const w = args[0], m = args[1], v = args[2], g = args[3], ids = args[4], flags = args[5];
  const rowSize = args[6], scale = args[7], b1 = args[8], b2 = args[9], stepSize = args[10], epsHat = args[11], keep = args[12];
  let check = 0;
  for (let r = from; r < to; r++) {
    const base = ids[r] * rowSize, go = r * rowSize - base;
    for (let i = base; i < base + rowSize; i++) {${adamElement('i + go')}
    }
  }
  if (check !== 0) flags[0] = 1;
}`,
};

/**
 * Adam (decoupled decay as `keep`) on a dense parameter's elements [from, to): the main thread's
 * loop (runtime/train/optim.ts) split across the pool, same operations in the same order, so the
 * weights are bit-identical to it. flags[0] as LAZY_ADAM_TASK's.
 * Args: w, m, v, g, flags, scale, b1, b2, stepSize, epsHat, keep.
 */
export const DENSE_ADAM_TASK: PoolTask = {
  key: 'dense_adam',
  source: `function denseAdam(args, from, to) {
  const w = args[0], m = args[1], v = args[2], g = args[3], flags = args[4];
  const scale = args[5], b1 = args[6], b2 = args[7], stepSize = args[8], epsHat = args[9], keep = args[10];
  let check = 0;
  for (let i = from; i < to; i++) {${adamElement('i')}
  }
  if (check !== 0) flags[0] = 1;
}`,
};

/**
 * Sums of squares of a dense gradient by chunk: out[c] = sum of a[i]^2 over chunk c (float64,
 * in element order), chunks [from, to). The same loop as runtime/train/optim.ts's chunkSquares.
 * Args: a, out (Float64Array), chunk.
 */
export const CHUNK_SQUARES_TASK: PoolTask = {
  key: 'chunk_squares',
  source: `function chunkSquares(args, from, to) {
  const a = args[0], out = args[1], chunk = args[2];
  for (let c = from; c < to; c++) {
    let s = 0;
    const end = Math.min(a.length, (c + 1) * chunk);
    for (let i = c * chunk; i < end; i++) s += a[i] * a[i];
    out[c] = s;
  }
}`,
};
