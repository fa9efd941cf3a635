// Column-wise work on a [rows, c] tensor as pool tasks over ranges of columns, each walking the
// rows in memory order. The generated per-cell kernels (one output per column) read a column at
// a stride of c floats, one cache line per value; these read each row's slice of the range
// contiguously. The arithmetic is the kernels' own, in the same order, so the results are the
// same bits: float64 sums over rows in row order, float32 statistics where the kernels store them.
import type { PoolTask } from './pool-task.js';

/** args: x [rows, c], out [c]; lanes are columns. out[j] = sum over rows of x[r, j] (/ rows for the mean). */
export function columnReduceTask(rows: number, c: number, mean: boolean): PoolTask {
  return {
    key: `column_reduce:${rows}:${c}:${mean ? 'mean' : 'sum'}`,
    source: `function columnReduce(args, from, to) {
  const x = args[0], out = args[1], acc = new Float64Array(to - from);
  for (let r = 0; r < ${rows}; r++) {
    const o = r * ${c} + from;
    for (let j = 0; j < to - from; j++) acc[j] = acc[j] + x[o + j];
  }
  for (let j = 0; j < to - from; j++) out[from + j] = ${mean ? `acc[j] / ${rows}.0` : 'acc[j]'};
}`,
  };
}

/**
 * BatchNorm with batch statistics (training) over x [rows, c]: args x, gamma [c], beta [c],
 * out [rows, c]; lanes are channels. The statistics kernel's arithmetic (the mean in float64, the
 * variance about that mean, both then stored as float32) and the cell kernel's formula.
 */
export function batchnormTrainingTask(rows: number, c: number, eps: string): PoolTask {
  return {
    key: `batchnorm_training:${rows}:${c}:${eps}`,
    source: `function batchnormTraining(args, from, to) {
  const x = args[0], g = args[1], b = args[2], out = args[3], n = to - from;
  const mean = new Float64Array(n), sq = new Float64Array(n), mean32 = new Float32Array(n), inv32 = new Float32Array(n);
  for (let r = 0; r < ${rows}; r++) {
    const o = r * ${c} + from;
    for (let j = 0; j < n; j++) mean[j] = mean[j] + x[o + j];
  }
  for (let j = 0; j < n; j++) { mean[j] = mean[j] / ${rows}.0; mean32[j] = mean[j]; }
  for (let r = 0; r < ${rows}; r++) {
    const o = r * ${c} + from;
    for (let j = 0; j < n; j++) { const dv = x[o + j] - mean[j]; sq[j] = sq[j] + dv * dv; }
  }
  for (let j = 0; j < n; j++) inv32[j] = 1.0 / Math.sqrt(sq[j] / ${rows}.0 + ${eps});
  for (let r = 0; r < ${rows}; r++) {
    const o = r * ${c} + from;
    for (let j = 0; j < n; j++) out[o + j] = (x[o + j] - mean32[j]) * inv32[j] * g[from + j] + b[from + j];
  }
}`,
  };
}
