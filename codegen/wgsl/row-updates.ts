// WGSL for training a table on the GPU (runtime/backends/webgpu/table-updates.ts): the sums of
// a step's factored gradient rows per touched table row, and the optimizer's update of those
// rows in the resident table and its state. The sums never leave the GPU; what comes back is a
// float per touched row (its sum of squares, for the gradient norm) and a flag (a non-finite
// weight). No atomics on the sums: each touched row is one workgroup's (the slots were grouped
// by row on the host, as the CPU backends group them).

/** Threads per workgroup of both kernels. */
export const ROW_THREADS = 64;

/**
 * out[r, c] = sum over the slots q of bucket r of coef[q] * vec[q / perToken, c], in bucket order
 * (f32, as the host sums); squares[r] = sum over c of out[r, c]^2. `buckets` is u32:
 * [rows, perToken, startAt, lengthAt, order..., start..., length...]; a workgroup per row.
 */
export function sumFactoredRowsWgsl(rowSize: number): string {
  return `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> squares: array<f32>;
@group(0) @binding(2) var<storage, read> coef: array<f32>;
@group(0) @binding(3) var<storage, read> tokenRows: array<f32>;
@group(0) @binding(4) var<storage, read> buckets: array<u32>;
const ROW: u32 = ${rowSize}u;
const THREADS: u32 = ${ROW_THREADS}u;
var<workgroup> partial: array<f32, ${ROW_THREADS}>;
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let r = wg.y * n.x + wg.x;
  // No early return: every thread reaches the barriers below.
  let inRange = r < buckets[0];
  var sq = 0.0;
  if (inRange) {
    let perToken = buckets[1];
    let start = buckets[buckets[2] + r];
    let len = buckets[buckets[3] + r];
    for (var c = lane; c < ROW; c += THREADS) {
      var acc = 0.0;
      for (var i = 0u; i < len; i++) {
        let q = buckets[4u + start + i];
        acc += coef[q] * tokenRows[(q / perToken) * ROW + c];
      }
      out[r * ROW + c] = acc;
      sq += acc * acc;
    }
  }
  partial[lane] = sq;
  workgroupBarrier();
  for (var half = THREADS / 2u; half > 0u; half /= 2u) {
    if (lane < half) { partial[lane] += partial[lane + half]; }
    workgroupBarrier();
  }
  if (inRange && lane == 0u) { squares[r] = partial[0]; }
}
`;
}

export type GpuRowsKind = 'adam' | 'sgd' | 'sgd-momentum' | 'adagrad';

/** The settings each kind reads from its `settings` array, in order. */
export const ROW_UPDATE_SETTINGS: Record<GpuRowsKind, readonly string[]> = {
  adam: ['scale', 'b1', 'b2', 'stepSize', 'epsHat', 'keep'],
  sgd: ['scale', 'lr', 'decay'],
  'sgd-momentum': ['scale', 'lr', 'decay', 'momentum'],
  adagrad: ['scale', 'lr', 'keep', 'eps'],
};

/** State arrays each kind binds after the table (m and v for Adam, the velocity, Adagrad's sum of squares). */
export function stateArraysOf(kind: GpuRowsKind): number {
  return kind === 'adam' ? 2 : kind === 'sgd' ? 0 : 1;
}

/**
 * The update of touched rows of one buffer of the table (a chunk of whole rows, or all of it),
 * in place, a thread per cell, in f32 and in the host loop's order of operations
 * (runtime/train/optim.ts). `rows` is u32: [count, first row of the sums, buffer row of each].
 * Bindings: table, state arrays (0-2), flag (1 where an updated weight is not finite), sums,
 * rows, settings.
 */
export function rowUpdateWgsl(kind: GpuRowsKind, rowSize: number): string {
  const states = stateArraysOf(kind);
  const names = kind === 'adam' ? ['m', 'v'] : kind === 'adagrad' ? ['v'] : kind === 'sgd-momentum' ? ['m'] : [];
  const settings = ROW_UPDATE_SETTINGS[kind].map((s, i) => `  let ${s} = settings[${i}];`).join('\n');
  const body =
    kind === 'adam'
      ? `  let mi = b1 * m[wi] + (1.0 - b1) * d;
  let vi = b2 * v[wi] + (1.0 - b2) * d * d;
  m[wi] = mi;
  v[wi] = vi;
  let w1 = table[wi] * keep - (stepSize * mi) / (sqrt(vi) + epsHat);`
      : kind === 'adagrad'
        ? `  let vi = v[wi] + d * d;
  v[wi] = vi;
  let w1 = table[wi] * keep - (lr * d) / (sqrt(vi) + eps);`
        : kind === 'sgd-momentum'
          ? `  let mi = momentum * m[wi] + d;
  m[wi] = mi;
  let w1 = table[wi] - lr * (mi + decay * table[wi]);`
          : `  let w1 = table[wi] - lr * (d + decay * table[wi]);`;
  return `@group(0) @binding(0) var<storage, read_write> table: array<f32>;
${names.map((n, i) => `@group(0) @binding(${i + 1}) var<storage, read_write> ${n}: array<f32>;`).join('\n')}
@group(0) @binding(${states + 1}) var<storage, read_write> flag: array<atomic<u32>>;
@group(0) @binding(${states + 2}) var<storage, read> sums: array<f32>;
@group(0) @binding(${states + 3}) var<storage, read> rows: array<u32>;
@group(0) @binding(${states + 4}) var<storage, read> settings: array<f32>;
const ROW: u32 = ${rowSize}u;
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  let i = g.y * n.x * ${ROW_THREADS}u + g.x;
  let r = i / ROW;
  if (r >= rows[0]) { return; }
  let c = i % ROW;
  let wi = rows[2u + r] * ROW + c;
${settings}
  let d = sums[(rows[1] + r) * ROW + c] * scale;
${body}
  table[wi] = w1;
  // The exponent's bits, not a comparison: WGSL lets a compiler assume no NaN or infinity exists.
  if ((bitcast<u32>(w1) & 0x7f800000u) == 0x7f800000u) { atomicStore(&flag[0], 1u); }
}
`;
}
