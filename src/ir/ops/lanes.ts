import { strides } from '../../interp/tensor.js';

/** Calls fn for every 1-D lane along `axis`: the lane's elements are base + i*stride, i < n. */
export function forEachLane(shape: readonly number[], axis: number, fn: (base: number, stride: number, n: number, lane: number) => void): void {
  const st = strides(shape);
  const n = shape[axis]!;
  const stride = st[axis]!;
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = stride;
  let lane = 0;
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) fn(o * n * inner + i, stride, n, lane++);
}
