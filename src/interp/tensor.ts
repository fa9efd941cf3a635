// Float64 tensors of the reference interpreter. Index tensors hold integers in the same
// Float64Array. A tensor may be lazy (each element computed on demand from a seed), so a
// 1M-expert table costs nothing until rows are gathered from it.

export type DType = 'f32' | 'index';

export class Tensor {
  private materialized: Float64Array | undefined;
  readonly size: number;

  constructor(
    readonly dtype: DType,
    readonly shape: readonly number[],
    data: Float64Array | ((flat: number) => number),
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
    if (typeof data === 'function') this.element = data;
    else {
      if (data.length !== this.size) throw new Error(`tensor data has ${data.length} elements, shape needs ${this.size}`);
      this.materialized = data;
      this.element = (i) => data[i]!;
    }
  }

  /** Element at a flat row-major position; cheap for lazy tensors too. */
  readonly element: (flat: number) => number;

  get isLazy(): boolean {
    return this.materialized === undefined;
  }

  get data(): Float64Array {
    if (!this.materialized) {
      const d = new Float64Array(this.size);
      for (let i = 0; i < this.size; i++) d[i] = this.element(i);
      this.materialized = d;
    }
    return this.materialized;
  }

  static zeros(dtype: DType, shape: readonly number[]): Tensor {
    return new Tensor(dtype, shape, new Float64Array(shape.reduce((a, b) => a * b, 1)));
  }
  static scalar(v: number, dtype: DType = 'f32'): Tensor {
    return new Tensor(dtype, [], Float64Array.of(v));
  }
}

export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}
