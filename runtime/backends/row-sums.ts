// Sparse gradients of expert tables. A step's gathers produce (row id, gradient row) pairs,
// often several for one row. They are bucketed by row id (a CSR: sorted order, start, length)
// on the host and summed per touched row by the backend (Backend.sumRows): on the host here,
// in a gpu.js kernel on GPU backends, across the pool's threads on wasm-simd; no atomics.

export interface SparseGrad {
  /** Distinct touched rows, ascending. */
  rows: Int32Array;
  /** Floats per row. */
  rowSize: number;
  /**
   * Their summed gradients, rows.length x rowSize; undefined where a device backend kept them on
   * its device for its own update of the rows (Backend.updateRows), with sumSquares given.
   */
  values?: Float32Array;
  /** The sum of the squares of `values`, where the backend computed it with the sums (the gradient norm reads it). */
  sumSquares?: number;
}

export interface Buckets {
  rows: Int32Array;
  /** Slot numbers sorted by row id; bucket b is order[start[b] .. start[b] + length[b]). */
  order: Float32Array;
  start: Float32Array;
  length: Float32Array;
  longest: number;
}

/**
 * The last ids bucketed (a copy) and their buckets: a step sums the gradients of several tables
 * read through the same ids (an expert's down and up rows), and bucketing 16k ids of a 1M-row
 * table costs ~1 ms, where comparing them costs ~0.02.
 */
let lastBucketed: { ids: Float64Array; buckets: Buckets } | undefined;

/** The slots of `ids` grouped by row id (a CSR), ascending rows; callers only read the arrays. */
export function bucketByRow(ids: ArrayLike<number>): Buckets {
  const last = lastBucketed;
  if (last && sameValues(last.ids, ids)) return { ...last.buckets, rows: last.buckets.rows.slice() };
  const buckets = bucketAnew(ids);
  lastBucketed = { ids: Float64Array.from(ids), buckets: { ...buckets, rows: buckets.rows.slice() } };
  return buckets;
}

function sameValues(a: Float64Array, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  // Object.is: a NaN id (bucketed by the comparison sort) equals only a NaN.
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !Object.is(a[i], b[i])) return false;
  return true;
}

function bucketAnew(ids: ArrayLike<number>): Buckets {
  const m = ids.length;
  const order = new Float32Array(m), start = new Float32Array(m), length = new Float32Array(m);
  const { slots, keys } = slotsByRow(ids);
  const rows = new Int32Array(m);
  let n = 0, longest = 0;
  for (let i = 0; i < m; i++) {
    const row = keys[i]!;
    order[i] = slots[i]!;
    if (n === 0 || rows[n - 1] !== row) {
      rows[n] = row;
      start[n] = i;
      n++;
    }
    const len = length[n - 1]! + 1;
    length[n - 1] = len;
    if (len > longest) longest = len;
  }
  return { rows: rows.slice(0, n), order, start, length, longest };
}

const DIGIT = 11;

/**
 * Slot numbers ordered by (row id, slot), with their ids: a stable radix sort of (id, slot)
 * pairs, 11 bits a pass (two passes below 2^22 rows), the ids carried along so no pass reads
 * them through the slot numbers (1.3 -> 0.3 ms for 16k slots); ids that are not whole numbers
 * below 2^31 take a comparison sort.
 */
function slotsByRow(ids: ArrayLike<number>): { slots: Uint32Array; keys: Int32Array } {
  const m = ids.length;
  let max = 0;
  let keys = new Int32Array(m), slots = new Uint32Array(m);
  for (let i = 0; i < m; i++) {
    const id = ids[i]!;
    if (!(id >= 0 && id < 2 ** 31 && Number.isInteger(id))) {
      const sorted = Uint32Array.from(Array.from({ length: m }, (_, j) => j).sort((a, b) => ids[a]! - ids[b]! || a - b));
      return { slots: sorted, keys: Int32Array.from(sorted, (j) => ids[j]!) };
    }
    keys[i] = id;
    slots[i] = i;
    if (id > max) max = id;
  }
  let keysTo = new Int32Array(m), slotsTo = new Uint32Array(m);
  const counts = new Uint32Array(1 << DIGIT), mask = (1 << DIGIT) - 1;
  for (let shift = 0; shift === 0 || max >>> shift > 0; shift += DIGIT) {
    counts.fill(0);
    for (let i = 0; i < m; i++) counts[(keys[i]! >>> shift) & mask]! += 1;
    let sum = 0;
    for (let d = 0; d < counts.length; d++) {
      const c = counts[d]!;
      counts[d] = sum;
      sum += c;
    }
    for (let i = 0; i < m; i++) {
      const key = keys[i]!, at = counts[(key >>> shift) & mask]!++;
      keysTo[at] = key;
      slotsTo[at] = slots[i]!;
    }
    [keys, keysTo] = [keysTo, keys];
    [slots, slotsTo] = [slotsTo, slots];
  }
  return { slots, keys };
}

/** Sums on the host, in slot order within each row (the reference, and the CPU backends' path). */
export function sumRowsOnHost(ids: ArrayLike<number>, grads: Float32Array, rowSize: number): SparseGrad {
  const b = bucketByRow(ids);
  const values = new Float32Array(b.rows.length * rowSize);
  for (let r = 0; r < b.rows.length; r++) {
    const start = b.start[r]!, len = b.length[r]!, out = r * rowSize;
    // Most rows are touched once: a block copy; the others add their further rows.
    const first = b.order[start]! * rowSize;
    values.set(grads.subarray(first, first + rowSize), out);
    for (let j = 1; j < len; j++) {
      const src = b.order[start + j]! * rowSize;
      for (let c = 0; c < rowSize; c++) values[out + c] = values[out + c]! + grads[src + c]!;
    }
  }
  return { rows: b.rows, rowSize, values };
}

/**
 * sumRowsOnHost of factored rows (row q = coef[q] * vec[token of q]) without building them: the
 * same float32 products added in the same order, so the sums are bit for bit sumRowsOnHost's of
 * outerRows, without writing and reading back slots x rowSize floats.
 */
export function sumFactoredRowsOnHost(ids: ArrayLike<number>, f: { coef: Float32Array; vec: Float32Array }, rowSize: number): SparseGrad {
  const b = bucketByRow(ids);
  const perToken = f.coef.length / (f.vec.length / rowSize);
  const values = new Float32Array(b.rows.length * rowSize);
  for (let r = 0; r < b.rows.length; r++) {
    const start = b.start[r]!, len = b.length[r]!, out = r * rowSize;
    for (let j = 0; j < len; j++) {
      const q = b.order[start + j]!, c = f.coef[q]!, t = Math.floor(q / perToken) * rowSize;
      if (j === 0) for (let x = 0; x < rowSize; x++) values[out + x] = c * f.vec[t + x]!;
      else for (let x = 0; x < rowSize; x++) values[out + x] = values[out + x]! + Math.fround(c * f.vec[t + x]!);
    }
  }
  return { rows: b.rows, rowSize, values };
}
