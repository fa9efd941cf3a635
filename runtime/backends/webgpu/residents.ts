/// <reference types="@webgpu/types" />
// Parameters on the GPU. Every webgpu backend of the process that reads the same host array
// shares its buffers (a trainer's training and evaluation programs read one set of weights, so
// a 1 GiB table is on the GPU once): one buffer per layout (as it is, permuted, or a chunk of
// whole rows). The host array is the weights of record (the optimizer writes it, checkpoints
// read it); a change reported with `changed` reaches the buffers before their next use: the
// touched rows scattered by a kernel (a lazy update touches a few thousand rows of a million),
// anything else written whole. The other way round, a table the GPU updates itself
// (table-updates.ts) is `deviceNewer` until syncToHost copies its buffers back.
import { permuteAxes } from '../backend.js';
import { download, upload } from './transfer.js';

export interface ResidentLayout {
  /** The parameter's name, for notes. */
  name?: string;
  /** The parameter's shape, and the axes order it is stored in (undefined: as it is). */
  shape: readonly number[];
  perm?: readonly number[];
  /** Whole rows [first, first + rows) of `width` floats each (undefined: all of it). */
  chunk?: { first: number; rows: number; width: number };
}

interface Resident extends ResidentLayout {
  buffer: GPUBuffer;
}

/** What changed in a host array since its buffers were written: all of it, or these rows of rowSize floats. */
interface Pending {
  all: boolean;
  rowLists: ArrayLike<number>[];
  rowSize: number;
}

interface Entry {
  layouts: Map<string, Resident>;
  users: Set<object>;
  pending?: Pending;
  /** The buffers were written on the GPU after the host array was (the host copy is stale). */
  deviceNewer?: boolean;
}

const entries = new WeakMap<Float32Array, Entry>();

const STORAGE = 0x0080, COPY_DST = 0x0008;

/**
 * Reports a change to a host array some buffers hold: `rows` (row ids of `rowSize` floats) or,
 * without them, all of it. Brought to the buffers at their next use; nothing to do where none
 * holds the array yet.
 */
export function changed(data: Float32Array, rows?: ArrayLike<number>, rowSize?: number): void {
  const e = entries.get(data);
  if (!e) return;
  if (!rows || !rowSize) {
    // Written whole on the host (loaded, edited): the host's values win over the GPU's.
    e.deviceNewer = false;
    e.pending = { all: true, rowLists: [], rowSize: 0 };
    return;
  }
  // Rows of a stale host copy would overwrite newer rows on the GPU.
  if (e.deviceNewer) throw new Error('internal: rows of a host array were reported changed while the GPU holds newer values of it (sync it to the host first)');
  const p = (e.pending ??= { all: false, rowLists: [], rowSize });
  if (p.all) return;
  // Rows of another size than the last report's: written whole (correct, and no stacked table does this).
  if (p.rowSize !== rowSize) p.all = true;
  // The training and evaluation executors both report the same step's rows: once is enough.
  else if (!p.rowLists.includes(rows)) p.rowLists.push(rows);
}

function keyOf(l: ResidentLayout): string {
  return `${l.perm?.join(',') ?? ''}|${l.chunk ? `${l.chunk.first}+${l.chunk.rows}` : ''}`;
}

/** The floats of `data` a layout holds (permuted first where it is). */
function contents(data: Float32Array, l: ResidentLayout, permuted?: Float32Array): Float32Array {
  const all = l.perm ? (permuted ?? permuteAxes(data, l.shape, l.perm)) : data;
  return l.chunk ? all.subarray(l.chunk.first * l.chunk.width, (l.chunk.first + l.chunk.rows) * l.chunk.width) : all;
}

/** A buffer of `data` as whole rows: rows [first, first + rows) of `width` floats. */
export interface RowPart {
  first: number;
  rows: number;
  width: number;
  buffer: GPUBuffer;
}

/**
 * The buffers of `data` (rows of `width` floats), where they are all row-major and tile its rows
 * exactly once (one buffer of all of it, or chunks of whole rows): a kernel that writes rows
 * then writes every copy. Undefined otherwise (a permuted copy, overlapping chunks, none yet).
 */
export function rowMajorParts(data: Float32Array, width: number): RowPart[] | undefined {
  const e = entries.get(data);
  if (!e || !e.layouts.size || data.length % width !== 0) return undefined;
  const total = data.length / width;
  const parts: RowPart[] = [];
  for (const r of e.layouts.values()) {
    if (r.perm) return undefined;
    if (!r.chunk) parts.push({ first: 0, rows: total, width, buffer: r.buffer });
    else if (r.chunk.width !== width) return undefined;
    else parts.push({ first: r.chunk.first, rows: r.chunk.rows, width, buffer: r.buffer });
  }
  parts.sort((a, b) => a.first - b.first);
  let next = 0;
  for (const p of parts) {
    if (p.first !== next) return undefined;
    next += p.rows;
  }
  return next === total ? parts : undefined;
}

/** The GPU wrote these arrays' buffers (a row update): their host arrays are stale until synced. */
export function markDeviceNewer(...arrays: Float32Array[]): void {
  for (const data of arrays) {
    const e = entries.get(data);
    if (e) e.deviceNewer = true;
  }
}

/** Whether `data` has buffers the GPU wrote since the host array was last synced. */
export function isDeviceNewer(data: Float32Array): boolean {
  return entries.get(data)?.deviceNewer === true;
}

/** The buffers of one backend: it holds its share of the process's resident parameters. */
export class Residents {
  private readonly used = new Set<Float32Array>();

  /** `note`: told when a change of a few rows makes a whole copy be written (a slower path, said). */
  constructor(private readonly note: (text: string) => void = () => {}) {}

  /**
   * The buffer holding `data` in layout `l`: made and written on first use, brought up to date
   * with the changes reported since (`make` creates a buffer of the given floats).
   */
  buffer(device: GPUDevice, data: Float32Array, l: ResidentLayout, make: (floats: number) => GPUBuffer): GPUBuffer {
    let e = entries.get(data);
    if (!e) entries.set(data, (e = { layouts: new Map(), users: new Set() }));
    e.users.add(this);
    this.used.add(data);
    if (e.pending) bringUpToDate(device, data, e, this.note);
    const key = keyOf(l);
    let r = e.layouts.get(key);
    if (!r) {
      const floats = contents(data, l);
      r = { ...l, buffer: make(floats.length) };
      upload(device, r.buffer, floats, true);
      e.layouts.set(key, r);
    }
    return r.buffer;
  }

  /**
   * Copies back into their host arrays the buffers the GPU wrote since (checkpoints and other
   * backends read the host arrays). Such arrays' layouts are row-major (rowMajorParts held when
   * the GPU wrote them); `only`: just this array.
   */
  async syncToHost(device: GPUDevice, only?: Float32Array): Promise<void> {
    for (const data of only ? [only] : this.used) {
      const e = entries.get(data);
      if (!e?.deviceNewer) continue;
      for (const r of e.layouts.values()) {
        const start = r.chunk ? r.chunk.first * r.chunk.width : 0;
        const floats = r.chunk ? r.chunk.rows * r.chunk.width : data.length;
        await download(device, r.buffer, data.subarray(start, start + floats));
      }
      e.deviceNewer = false;
    }
  }

  /** Whether a buffer of `data` in layout `l` would be made from a stale host array (sync it first). */
  stale(data: Float32Array, l: ResidentLayout): boolean {
    const e = entries.get(data);
    return e?.deviceNewer === true && !e.layouts.has(keyOf(l));
  }

  /** Gives this backend's share back: buffers no backend uses any more are destroyed. */
  release(): void {
    for (const data of this.used) {
      const e = entries.get(data);
      if (!e) continue;
      e.users.delete(this);
      if (e.users.size) continue;
      for (const r of e.layouts.values()) r.buffer.destroy();
      entries.delete(data);
    }
    this.used.clear();
  }
}

/** Writes the reported changes of `data` into each of its buffers. */
function bringUpToDate(device: GPUDevice, data: Float32Array, e: Entry, note: (text: string) => void): void {
  const p = e.pending!;
  e.pending = undefined;
  const permutations = new Map<string, Float32Array>();
  for (const r of e.layouts.values()) {
    const start = r.chunk ? r.chunk.first * r.chunk.width : 0;
    // Permuted layouts, and chunks that do not start on a changed row's boundary, are written whole.
    if (p.all || r.perm || start % p.rowSize !== 0) {
      const key = r.perm?.join(',') ?? '';
      if (r.perm && !permutations.has(key)) permutations.set(key, permuteAxes(data, r.shape, r.perm));
      const floats = contents(data, r, permutations.get(key));
      if (!p.all) note(`parameter ${r.name ?? '(unnamed)'}: its ${r.perm ? `copy with axes (${r.perm.join(', ')})` : `chunk from row ${r.chunk!.first}`} is written whole (${(floats.length * 4 / 2 ** 20).toFixed(1)} MiB) after each update of some of its rows; only row-major copies take just the touched rows`);
      upload(device, r.buffer, floats, true);
      continue;
    }
    const end = r.chunk ? start + r.chunk.rows * r.chunk.width : data.length;
    scatterRows(device, data, r.buffer, p, start / p.rowSize, end / p.rowSize);
  }
}

/** Rows scattered per call are packed here: one growing pair of buffers per device. */
const scratch = new WeakMap<GPUDevice, { rows?: GPUBuffer; ids?: GPUBuffer; pipelines: Map<number, GPUComputePipeline> }>();

const THREADS = 64;

/** out[ids[1 + r] * ROW + c] = rows[r * ROW + c] for r < ids[0]: rows packed on the host, written in place. */
function scatterSource(rowSize: number): string {
  return `@group(0) @binding(0) var<storage, read_write> table: array<f32>;
@group(0) @binding(1) var<storage, read> rows: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
const ROW: u32 = ${rowSize}u;
@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  let i = g.y * n.x * ${THREADS}u + g.x;
  if (i >= ids[0] * ROW) { return; }
  table[ids[1u + i / ROW] * ROW + i % ROW] = rows[i];
}
`;
}

/** The changed rows in [firstRow, endRow) of `data`, copied into `buffer` (which holds those rows from firstRow on). */
function scatterRows(device: GPUDevice, data: Float32Array, buffer: GPUBuffer, p: Pending, firstRow: number, endRow: number): void {
  const R = p.rowSize;
  const local: number[] = [];
  const seen = new Set<number>();
  for (const list of p.rowLists)
    for (let i = 0; i < list.length; i++) {
      const row = list[i]!;
      if (row >= firstRow && row < endRow && !seen.has(row)) {
        seen.add(row);
        local.push(row);
      }
    }
  if (!local.length) return;
  const packed = new Float32Array(local.length * R);
  const ids = new Uint32Array(local.length + 1);
  ids[0] = local.length;
  local.forEach((row, i) => {
    packed.set(data.subarray(row * R, row * R + R), i * R);
    ids[i + 1] = row - firstRow;
  });
  let s = scratch.get(device);
  if (!s) scratch.set(device, (s = { pipelines: new Map() }));
  if (!s.rows || s.rows.size < packed.byteLength) {
    s.rows?.destroy();
    s.rows = device.createBuffer({ size: Math.max(packed.byteLength, 1 << 16), usage: STORAGE | COPY_DST });
  }
  if (!s.ids || s.ids.size < ids.byteLength) {
    s.ids?.destroy();
    s.ids = device.createBuffer({ size: Math.max(ids.byteLength, 1 << 12), usage: STORAGE | COPY_DST });
  }
  upload(device, s.rows, packed, true);
  upload(device, s.ids, ids, true);
  let pipeline = s.pipelines.get(R);
  if (!pipeline) {
    const layout = device.createBindGroupLayout({
      entries: [0, 1, 2].map((binding) => ({ binding, visibility: 4 /* GPUShaderStage.COMPUTE */, buffer: { type: binding === 0 ? ('storage' as const) : ('read-only-storage' as const) } })),
    });
    pipeline = device.createComputePipeline({ layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module: device.createShaderModule({ code: scatterSource(R) }), entryPoint: 'main' } });
    s.pipelines.set(R, pipeline);
  }
  const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [buffer, s.rows, s.ids].map((b, binding) => ({ binding, resource: { buffer: b } })) });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  const groups = Math.ceil(packed.length / THREADS);
  const x = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
  pass.dispatchWorkgroups(x, Math.ceil(groups / x));
  pass.end();
  // Queue order puts this before the step that reads the table, and before the scratch is written again.
  device.queue.submit([encoder.finish()]);
}
