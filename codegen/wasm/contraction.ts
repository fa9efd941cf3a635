// Any two-operand einsum without a letter summed inside one operand, as batched matrix
// products for the SIMD kernel: out[batch, rows, cols] = X[batch, rows, K] Y[batch, K, cols],
// with the axis permutations that lay the operands and the result out that way.

export interface BatchedLayout {
  /** Which operand gives the rows (X) and which the columns (Y). */
  x: number;
  y: number;
  /** Permutations of X's axes to [batch, rows, K] and of Y's to [batch, K, cols]. */
  permX: number[];
  permY: number[];
  batch: number;
  rows: number;
  cols: number;
  inner: number;
  /** The result [batch..., rows..., cols...] and the permutation to the einsum's output order (undefined: already in order). */
  resultShape: number[];
  permOut?: number[];
}

export function batchedLayout(spec: { inputs: readonly string[]; output: string }, inShapes: readonly (readonly number[])[]): BatchedLayout | undefined {
  if (spec.inputs.length !== 2) return undefined;
  const out = spec.output;
  const [s0, s1] = spec.inputs as [string, string];
  if (new Set(s0).size !== s0.length || new Set(s1).size !== s1.length) return undefined; // repeated letters (diagonals)
  const batchL = [...out].filter((c) => s0.includes(c) && s1.includes(c));
  const contracted = [...s0].filter((c) => s1.includes(c) && !out.includes(c));
  // A letter summed within one operand is a reduction, not a product.
  if ([...s0, ...s1].some((c) => !out.includes(c) && !contracted.includes(c))) return undefined;
  // No summed letter is an outer product: a product with an inner size of 1.
  // X owns the first output letter that is not a batch letter (or operand 0 when there is none).
  const firstOwn = [...out].find((c) => !batchL.includes(c));
  const x = firstOwn !== undefined && s1.includes(firstOwn) ? 1 : 0;
  const y = 1 - x;
  const [sx, sy] = [spec.inputs[x]!, spec.inputs[y]!];
  const rowsL = [...out].filter((c) => sx.includes(c) && !batchL.includes(c));
  const colsL = [...out].filter((c) => sy.includes(c) && !batchL.includes(c));
  const size = (c: string) => (sx.includes(c) ? inShapes[x]![sx.indexOf(c)]! : inShapes[y]![sy.indexOf(c)]!);
  const prod = (ls: string[]) => ls.reduce((a, c) => a * size(c), 1);
  const natural = [...batchL, ...rowsL, ...colsL];
  const permOut = [...out].map((c) => natural.indexOf(c));
  return {
    x, y,
    permX: [...batchL, ...rowsL, ...contracted].map((c) => sx.indexOf(c)),
    permY: [...batchL, ...contracted, ...colsL].map((c) => sy.indexOf(c)),
    batch: prod(batchL), rows: prod(rowsL), cols: prod(colsL), inner: prod(contracted),
    resultShape: natural.map(size),
    permOut: permOut.every((p, i) => p === i) ? undefined : permOut,
  };
}
