/// <reference types="@webgpu/types" />
// Training a table on the GPU: a step's gradient rows summed per touched row where the table
// lives (codegen/wgsl/row-updates.ts), and the optimizer's update of those rows in its resident
// buffers and its state's, so a step moves neither the summed rows (16 MiB per table at
// N = 1024^2, B = 256, h = 4) nor the updated rows. What comes back is a float per touched row
// (its sum of squares: the gradient norm and clipping need it before the update) and a flag.
// The table and its state are then newer on the GPU than on the host: syncToHost copies them
// back (checkpoints; the trainer's syncWeights).
import { bucketByRow, type SparseGrad } from '../row-sums.js';
import type { FactoredRows, RowsUpdate, RowsUpdated } from '../backend.js';
import { ROW_THREADS, ROW_UPDATE_SETTINGS, rowUpdateWgsl, stateArraysOf, sumFactoredRowsWgsl, type GpuRowsKind } from '../../../codegen/wgsl/row-updates.js';
import { markDeviceNewer, rowMajorParts, type Residents } from './residents.js';
import { moved, upload } from './transfer.js';

const STORAGE = 0x0080, COPY_DST = 0x0008, COPY_SRC = 0x0004, MAP_READ = 0x0001;

/** A growing buffer, kept between steps. */
class Scratch {
  private buffer?: GPUBuffer;
  constructor(private readonly usage: number) {}
  get(device: GPUDevice, bytes: number): GPUBuffer {
    if (!this.buffer || this.buffer.size < bytes) {
      this.buffer?.destroy();
      this.buffer = device.createBuffer({ size: Math.max(256, Math.ceil(bytes / 256) * 256), usage: this.usage });
    }
    return this.buffer;
  }
  destroy(): void {
    this.buffer?.destroy();
    this.buffer = undefined;
  }
}

/** A table's last sums, left on the GPU for its update. */
interface DeviceSums {
  rows: Int32Array;
  rowSize: number;
  values: Scratch;
}

function kindOf(u: RowsUpdate): GpuRowsKind {
  return u.kind === 'sgd' ? (u.m ? 'sgd-momentum' : 'sgd') : u.kind;
}

/** An update's state arrays, in the order its kernel binds them. */
export function statesOf(u: RowsUpdate): Float32Array[] {
  return u.kind === 'adam' ? [u.m, u.v] : u.kind === 'adagrad' ? [u.v] : u.m ? [u.m] : [];
}

/** The first index of ascending `rows` at or above `row`. */
function lowerBound(rows: Int32Array, row: number): number {
  let lo = 0, hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rows[mid]! < row) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class TableUpdates {
  private readonly sums = new Map<string, DeviceSums>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly scratch = {
    coef: new Scratch(STORAGE | COPY_DST),
    vec: new Scratch(STORAGE | COPY_DST),
    buckets: new Scratch(STORAGE | COPY_DST),
    squares: new Scratch(STORAGE | COPY_SRC),
    rows: new Scratch(STORAGE | COPY_DST),
    settings: new Scratch(STORAGE | COPY_DST),
    flag: new Scratch(STORAGE | COPY_DST | COPY_SRC),
    readBack: new Scratch(MAP_READ | COPY_DST),
  };

  /** `note`: told what runs on the host instead, and why. */
  /** `bindingLimit`: the bytes one binding may hold (the device's, or less where the backend was told so). */
  constructor(private readonly residents: Residents, private readonly note: (text: string) => void, private readonly bindingLimit: (device: GPUDevice) => number = (d) => Math.min(d.limits.maxStorageBufferBindingSize, d.limits.maxBufferSize)) {}

  /**
   * Sums the factored rows of table `name` per touched row on the GPU and keeps them there for
   * update(); undefined where they do not fit one binding (the caller sums on the host).
   */
  async sumFactored(device: GPUDevice, ids: ArrayLike<number>, f: FactoredRows, rowSize: number, name: string): Promise<SparseGrad | undefined> {
    const b = bucketByRow(ids);
    const rows = b.rows.length, slots = f.coef.length;
    const limit = this.bindingLimit(device);
    const largest = Math.max(rows * rowSize, f.vec.length, 4 + ids.length + 2 * rows) * 4;
    if (largest > limit) {
      this.note(`the gradient rows of ${name} are summed on the host: their sums or factors (${largest} bytes) are more than one binding holds here (${limit} bytes)`);
      return undefined;
    }
    const perToken = slots / (f.vec.length / rowSize);
    // Slots are numbered as ids are (a slot per id); start and length are per touched row.
    const m = ids.length;
    const buckets = new Uint32Array(4 + m + 2 * rows);
    buckets.set([rows, perToken, 4 + m, 4 + m + rows]);
    buckets.set(b.order.subarray(0, m), 4);
    buckets.set(b.start.subarray(0, rows), 4 + m);
    buckets.set(b.length.subarray(0, rows), 4 + m + rows);
    let sums = this.sums.get(name);
    if (!sums) this.sums.set(name, (sums = { rows: b.rows, rowSize, values: new Scratch(STORAGE | COPY_DST) }));
    sums.rows = b.rows;
    sums.rowSize = rowSize;
    const out = sums.values.get(device, rows * rowSize * 4);
    const squares = this.scratch.squares.get(device, rows * 4);
    const coef = this.scratch.coef.get(device, f.coef.byteLength), vec = this.scratch.vec.get(device, f.vec.byteLength), bucketBuf = this.scratch.buckets.get(device, buckets.byteLength);
    upload(device, coef, f.coef);
    upload(device, vec, f.vec);
    upload(device, bucketBuf, buckets);
    const pipeline = await this.pipeline(device, `sum:${rowSize}`, sumFactoredRowsWgsl(rowSize), ['storage', 'storage', 'read-only-storage', 'read-only-storage', 'read-only-storage']);
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [out, squares, coef, vec, bucketBuf].map((buffer, binding) => ({ binding, resource: { buffer } })) }));
    dispatch(device, pass, rows);
    pass.end();
    const back = this.scratch.readBack.get(device, rows * 4);
    encoder.copyBufferToBuffer(squares, 0, back, 0, Math.max(4, rows * 4));
    device.queue.submit([encoder.finish()]);
    await refused(device, `the row sums of ${name}`);
    moved.down += rows * 4;
    await back.mapAsync(1 /* GPUMapMode.READ */);
    const sq = new Float32Array(back.getMappedRange(), 0, rows);
    let sumSquares = 0;
    for (let r = 0; r < rows; r++) sumSquares += sq[r]!;
    back.unmap();
    return { rows: b.rows, rowSize, sumSquares };
  }

  /**
   * The optimizer's update of `sparse`'s rows of `table` (its host array) in the table's resident
   * buffers and its state's: sums kept on the GPU by sumFactored, or `sparse.values` uploaded.
   * done: false where the table's buffers are not row-major copies of all of it (the host updates).
   */
  async update(device: GPUDevice, name: string, table: Float32Array, sparse: SparseGrad, u: RowsUpdate): Promise<RowsUpdated> {
    const width = sparse.rowSize;
    const parts = rowMajorParts(table, width);
    if (!parts) {
      this.note(`the optimizer's update of table ${name} runs on the host: its GPU copies are not row-major buffers of whole rows`);
      return { done: false, finite: true };
    }
    let sums = this.sums.get(name);
    let sumsBuffer: GPUBuffer;
    if (sparse.values) {
      // Summed on the host (rows given whole, not as factors): uploaded.
      if (!sums) this.sums.set(name, (sums = { rows: sparse.rows, rowSize: width, values: new Scratch(STORAGE | COPY_DST) }));
      sumsBuffer = sums.values.get(device, sparse.values.byteLength);
      upload(device, sumsBuffer, sparse.values);
    } else if (sums && sums.rows === sparse.rows) sumsBuffer = sums.values.get(device, 0);
    else throw new Error(`internal: the gradient rows of ${name} are not this backend's last sums`);
    const kind = kindOf(u);
    const states = statesOf(u);
    if (states.length !== stateArraysOf(kind)) throw new Error(`internal: ${kind} takes ${stateArraysOf(kind)} state arrays, given ${states.length}`);
    // Each state array in buffers of the same rows as the table's.
    const stateParts = states.map((s, i) => parts.map((p) => this.residents.buffer(device, s, { name: `${name} (optimizer state ${i})`, shape: [table.length / width, width], chunk: parts.length > 1 ? { first: p.first, rows: p.rows, width } : undefined }, (floats) => device.createBuffer({ size: floats * 4, usage: STORAGE | COPY_DST | COPY_SRC }))));
    const settings = Float32Array.from(ROW_UPDATE_SETTINGS[kind].map((k) => (u as unknown as Record<string, number>)[k]!));
    const settingsBuf = this.scratch.settings.get(device, settings.byteLength);
    upload(device, settingsBuf, settings);
    // Per part: [count, first row of its sums, its rows' numbers in the part], at binding-offset alignment.
    const align = device.limits.minStorageBufferOffsetAlignment / 4;
    const segments = parts.map((p) => {
      const lo = lowerBound(sparse.rows, p.first), hi = lowerBound(sparse.rows, p.first + p.rows);
      return { part: p, lo, count: hi - lo };
    });
    let at = 0;
    const offsets = segments.map((s) => {
      const o = at;
      at += Math.ceil((2 + s.count) / align) * align;
      return o;
    });
    const rowsData = new Uint32Array(Math.max(at, 1));
    segments.forEach((s, j) => {
      rowsData[offsets[j]!] = s.count;
      rowsData[offsets[j]! + 1] = s.lo;
      for (let r = 0; r < s.count; r++) rowsData[offsets[j]! + 2 + r] = sparse.rows[s.lo + r]! - s.part.first;
    });
    const rowsBuf = this.scratch.rows.get(device, rowsData.byteLength);
    upload(device, rowsBuf, rowsData);
    const flag = this.scratch.flag.get(device, 4);
    device.queue.writeBuffer(flag, 0, new Uint32Array(1));
    const types: GPUBufferBindingType[] = [...Array(states.length + 2).fill('storage'), 'read-only-storage', 'read-only-storage', 'read-only-storage'];
    const pipeline = await this.pipeline(device, `update:${kind}:${width}`, rowUpdateWgsl(kind, width), types);
    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    segments.forEach((s, j) => {
      if (!s.count) return;
      const buffers: GPUBufferBinding[] = [
        { buffer: s.part.buffer },
        ...stateParts.map((sp) => ({ buffer: sp[j]! })),
        { buffer: flag, size: 4 },
        { buffer: sumsBuffer },
        { buffer: rowsBuf, offset: offsets[j]! * 4, size: (2 + s.count) * 4 },
        { buffer: settingsBuf, size: settings.byteLength },
      ];
      pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((resource, binding) => ({ binding, resource })) }));
      dispatch(device, pass, Math.ceil((s.count * width) / ROW_THREADS));
    });
    pass.end();
    const back = this.scratch.readBack.get(device, 4);
    encoder.copyBufferToBuffer(flag, 0, back, 0, 4);
    device.queue.submit([encoder.finish()]);
    await refused(device, `the update of ${name}'s rows`);
    markDeviceNewer(table, ...states);
    moved.down += 4;
    await back.mapAsync(1 /* GPUMapMode.READ */);
    const finite = new Uint32Array(back.getMappedRange(), 0, 1)[0] === 0;
    back.unmap();
    return { done: true, finite, onDevice: true };
  }

  /** A kernel's pipeline, made once; WGSL the device refuses is an error here, never one that surfaces at a later step. */
  private async pipeline(device: GPUDevice, key: string, code: string, types: GPUBufferBindingType[]): Promise<GPUComputePipeline> {
    let p = this.pipelines.get(key);
    if (!p) {
      device.pushErrorScope('validation');
      const layout = device.createBindGroupLayout({ entries: types.map((type, binding) => ({ binding, visibility: 4 /* GPUShaderStage.COMPUTE */, buffer: { type } })) });
      p = device.createComputePipeline({ layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
      const err = await device.popErrorScope();
      if (err) throw new Error(`internal: the GPU refused peerc's row kernel ${key}: ${err.message.split('\n')[0]}`);
      this.pipelines.set(key, p);
    }
    return p;
  }

  destroy(): void {
    for (const s of Object.values(this.scratch)) s.destroy();
    for (const s of this.sums.values()) s.values.destroy();
    this.sums.clear();
  }
}

/** Commands the device refused since the matching pushErrorScope: an error now, not at a later step. */
async function refused(device: GPUDevice, what: string): Promise<void> {
  const err = await device.popErrorScope();
  if (err) throw new Error(`internal: the GPU refused ${what}: ${err.message.split('\n')[0]}`);
}

/** `groups` workgroups laid out over x and y (one dimension holds at most 65535). */
function dispatch(device: GPUDevice, pass: GPUComputePassEncoder, groups: number): void {
  const x = Math.max(1, Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension));
  pass.dispatchWorkgroups(x, Math.max(1, Math.ceil(groups / x)));
}

