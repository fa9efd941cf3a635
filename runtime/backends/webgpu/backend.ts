/// <reference types="@webgpu/types" />
// peerc's own WebGPU backend: WGSL generated from the IR. Contractions run as a tiled kernel
// with workgroup memory (codegen/wgsl/gemm.ts), product_retrieve and the expert ops as kernels
// of their own (retrieve.ts, experts.ts); every other op's generated kernel plan is printed as
// WGSL (translate.ts). Parameters are uploaded once and stay on the GPU; results stay there too
// (DeviceValues) until a host step or the caller needs them.
import { renderKernels } from '../../../codegen/render.js';
import { FLAT_INDEX_LIMIT, unpackPairs, type KernelPlan } from '../../../codegen/kernel.js';
import { batchedLayout, type BatchedLayout } from '../../../codegen/wasm/contraction.js';
import { gemmGrid, gemmWgsl, type GemmShape } from '../../../codegen/wgsl/gemm.js';
import { WORKGROUP, wgslOfPlan, type WgslKernel } from '../../../codegen/wgsl/translate.js';
import type { IRFunction, IRModule, Node, ValueRef } from '../../../src/ir/graph.js';
import type { Tensor } from '../../../src/interp/tensor.js';
import { attrsOf } from '../../../src/ir/ops/types.js';
import { einsum, parseEinsum } from '../../../src/ir/ops/einsum.js';
import { einsum_bn, expert_act, product_retrieve } from '../../../src/ir/ops/fused.js';
import { expertActGroups, expertActWgsl, expertOutWgsl, partsOf, type TableBinding } from '../../../codegen/wgsl/experts.js';
import { retrieveWgsl, retrieveWorkgroupBytes, WORKGROUP_BYTES } from '../../../codegen/wgsl/retrieve.js';
import { retrieveSubgroupWgsl } from '../../../codegen/wgsl/retrieve-subgroups.js';
import type { WorkerPool } from '../../pool.js';
import { isDeviceValue, kernelArgs, kernelLimit, permuteAxes, weightArrays, type Backend, type BackendInfo, type BackendOptions, type DeviceValue, type FactoredRows, type PlanContext, type PlannedStep, type Read, type ReadAny, type RowsUpdate, type RowsUpdated } from '../backend.js';
import { timeMatmul } from '../gpujs/backend.js';
import { sumFactoredRowsOnHost, sumRowsOnHost, type SparseGrad } from '../row-sums.js';
import { gpuDevice, type GpuHandle } from './device.js';
import { Residents, changed, isDeviceNewer } from './residents.js';
import { mapped, moved, upload } from './transfer.js';
import { statesOf, TableUpdates } from './table-updates.js';

/** Where a kernel's input comes from: a parameter (resident), a value read per call, an earlier stage's buffer. */
type Operand =
  | { kind: 'param'; name: string; perm?: number[]; chunk?: { first: number; rows: number; width: number } }
  | { kind: 'value'; ref: ValueRef; shape: number[]; perm?: number[] }
  | { kind: 'stage'; index: number };

/** One compute dispatch of a step. */
interface Launch {
  label: string;
  source: string;
  operands: Operand[];
  outputFloats: number;
  /** Workgroups: [x, y, z], or a count laid out over x and y (threads: WORKGROUP per workgroup). */
  grid: [number, number, number] | { threads: number } | { workgroups: number };
  /** The generated kernel plan it prints (translated kernels), to print again with tables in parts. */
  plan?: KernelPlan;
  /** The launch as it runs where one binding holds at most `limit` bytes (kernels of peerc's own that read tables). */
  fit?: (limit: number, subgroups: boolean) => Launch;
}

/** A node input as an operand: a resident parameter, or a value read per call (`perm`: laid out so first; `shape` then the permuted one, as in a KernelArg). */
function operandOf(ctx: PlanContext, r: ValueRef, perm?: number[]): Operand {
  const src = ctx.source(r);
  if (src.kind === 'param' && !ctx.paramsAsArguments) return { kind: 'param', name: src.name, perm };
  const shape = ctx.shapeOf(r);
  return { kind: 'value', ref: r, shape: perm ? perm.map((j) => shape[j]!) : shape, perm };
}

/**
 * Where the product C[b, r, c] goes in the einsum's own output order, as strides of the batch,
 * row and column indices: each group's letters must stay together and in order in the output
 * (undefined where they do not). Already in order: the plain layout.
 */
function storeStrides(spec: { inputs: readonly string[]; output: string }, m: BatchedLayout): [number, number, number] | undefined {
  const out = spec.output;
  const [sx, sy] = [spec.inputs[m.x]!, spec.inputs[m.y]!];
  const batchL = [...out].filter((c) => sx.includes(c) && sy.includes(c));
  const rowsL = [...out].filter((c) => sx.includes(c) && !batchL.includes(c));
  const colsL = [...out].filter((c) => sy.includes(c) && !batchL.includes(c));
  const natural = [...batchL, ...rowsL, ...colsL];
  const size = (c: string) => m.resultShape[natural.indexOf(c)]!;
  const stride = (c: string) => [...out.slice(out.indexOf(c) + 1)].reduce((a, d) => a * size(d), 1);
  const group = (letters: string[]): number | undefined => {
    if (!letters.length) return 0;
    const at = letters.map((c) => out.indexOf(c));
    return at.every((p, i) => i === 0 || p === at[i - 1]! + 1) ? stride(letters[letters.length - 1]!) : undefined;
  };
  const [b, r, c] = [group(batchL), group(rowsL), group(colsL)];
  return b === undefined || r === undefined || c === undefined ? undefined : [b, r, c];
}

/** 24 MiB, 2 KiB, 100 bytes. */
function bytesText(b: number): string {
  return b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(0)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(0)} KiB` : `${b} bytes`;
}

const STORAGE = 0x0080, COPY_DST = 0x0008, COPY_SRC = 0x0004, MAP_READ = 0x0001; // GPUBufferUsage, which Node lacks before the device opens

export class WebGpuBackend implements Backend {
  readonly threads = 1;
  private handle: GpuHandle | undefined;
  private readonly residents = new Residents((text) => this.noteSet.add(text));
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly noteSet = new Set<string>();
  /** Host arrays (results read back or downloaded) whose data is still in a GPU buffer of this backend. */
  private readonly onGpu = new WeakMap<Float32Array, GPUBuffer>();
  /** The buffers of the DeviceValues this backend returned. */
  private readonly deviceBuffers = new WeakMap<DeviceValue, GPUBuffer>();
  /** Size checks of the steps planned since the last run (run before the first kernel of the next). */
  private readonly preflight: ((device: GPUDevice) => void)[] = [];

  private readonly maxBindingBytes: number | undefined;
  private readonly allowSubgroups: boolean;

  constructor(readonly info: BackendInfo, options: BackendOptions = {}) {
    this.maxBindingBytes = options.maxBindingBytes;
    this.allowSubgroups = options.subgroups !== false;
  }

  /** Whether kernels may use subgroup operations: the adapter has them (detected, never assumed) and the options allow them. */
  private subgroups(): boolean {
    return this.allowSubgroups && this.handle?.subgroups === true;
  }

  describe(): string {
    return this.handle ? `${this.info.name} (${this.handle.adapter}${this.handle.software ? ', a CPU emulation' : ''}${this.subgroups() ? ', subgroups' : ''})` : this.info.name;
  }

  notes(): string[] {
    return [...this.noteSet];
  }

  /** Counted over every webgpu backend of the process (they share one device). */
  transfers(): { up: number; down: number; params: number } {
    return { ...moved };
  }

  pool(): WorkerPool | undefined {
    return undefined;
  }

  async sumRows(ids: ArrayLike<number>, grads: Float32Array, rowSize: number): Promise<SparseGrad> {
    return sumRowsOnHost(ids, grads, rowSize);
  }

  /**
   * The factored rows of a table read in place, summed per touched row: on the GPU, kept there
   * for updateRows, where they are for an update of a trained table (the factors came down with
   * the step's outputs and go back up: ~0.3 MiB at B = 256); on the host otherwise.
   */
  async sumFactoredRows(ids: ArrayLike<number>, rows: FactoredRows, rowSize: number, key: string, forUpdate = false): Promise<SparseGrad> {
    if (forUpdate && this.tables.has(key) && ids.length > 0) {
      const { device } = await this.gpu();
      const sums = await this.updates.sumFactored(device, ids, rows, rowSize, key);
      if (sums) return sums;
    }
    return sumFactoredRowsOnHost(ids, rows, rowSize);
  }

  /** Trained tables the expert kernels read (placeTable): their host arrays, by name. */
  private readonly tables = new Map<string, Float32Array>();
  private readonly updates = new TableUpdates(this.residents, (text) => this.noteSet.add(text), (device) => this.bindingLimit(device));

  /** A table stays where it is (its host array, copied to the GPU on first use); recorded so its updates can run on the GPU. */
  placeTable(name: string, data: Float32Array): Float32Array {
    this.tables.set(name, data);
    return data;
  }

  /** The optimizer's state of a placed table: host arrays of record, with GPU copies its updates write (syncToHost brings them back). */
  tableState(name: string, count: number): Float32Array[] | string {
    const table = this.tables.get(name);
    if (!table) return 'the table is not one the expert kernels read';
    return Array.from({ length: count }, () => new Float32Array(table.length));
  }

  /** The update of a placed table's touched rows on the GPU, in its resident buffers and its state's. */
  async updateRows(name: string, sparse: SparseGrad, update: RowsUpdate, denseToo = false): Promise<RowsUpdated> {
    const table = this.tables.get(name);
    // With a dense gradient too, the host updated the whole table first: the rows stay there (so it is never newer here).
    if (!table || !sparse.rows.length || denseToo) return { done: false, finite: true };
    const { device } = await this.gpu();
    const r = await this.updates.update(device, name, table, sparse, update);
    // Updated on the host after all: a table the GPU updated at an earlier step comes back first.
    if (!r.done) for (const a of [table, ...statesOf(update)]) await this.residents.syncToHost(device, a);
    return r;
  }

  newerOnDevice(data: Float32Array): boolean {
    return isDeviceNewer(data);
  }

  /** Tables and optimizer state the GPU updated, copied back to their host arrays. */
  async syncToHost(): Promise<void> {
    if (this.handle) await this.residents.syncToHost(this.handle.device);
  }

  adoptParams(module: IRModule, _fn: IRFunction, weights: ReadonlyMap<string, Tensor | Float32Array>, given: Map<string, Float32Array>): Map<string, Float32Array> {
    return weightArrays(module, weights, given, (n) => new Float32Array(n));
  }

  private async gpu(): Promise<GpuHandle> {
    return (this.handle ??= await gpuDevice());
  }

  plan(node: Node, given: PlanContext): PlannedStep {
    // Parameters stay on the GPU in training too: the trainer reports each change to a parameter
    // array (Executor.paramsChanged), and its buffers follow before their next use. So every
    // kernel reads parameters as resident, the expert ops read tables in place and gathers run here.
    const ctx: PlanContext = given.paramsAsArguments ? { ...given, paramsAsArguments: false } : given;
    const own = this.contraction(node, ctx) ?? this.retrieval(node, ctx) ?? this.experts(node, ctx);
    if (own) return own;
    const args = kernelArgs(node, ctx);
    const plans = renderKernels(node, args, node.types.map((_, i) => ctx.shapeOf({ node: node.id, result: i })), (d) => ctx.dimValue(d), ctx.training);
    for (const plan of plans) {
      for (const a of plan.args)
        if (a.kind === 'value' && a.shape.reduce((x, y) => x * y, 1) > FLAT_INDEX_LIMIT)
          throw kernelLimit(node, this.info.name, `${node.op} reads an intermediate of ${a.shape.join(' x ')} cells; its generated kernel indexes in f32, exact below 2^24 cells; use fewer tokens per call`);
      if (plan.outputLength > FLAT_INDEX_LIMIT) throw kernelLimit(node, this.info.name, `${plan.label} would write ${plan.outputLength} cells; its generated kernel indexes in f32, exact below 2^24 cells; use fewer tokens per call`);
    }
    const launches = plans.map((plan) => this.translated(node, plan));
    const last = plans[plans.length - 1]!;
    let at = 0;
    const ranges = last.layout === 'pairs' ? undefined : last.results.map((len): [number, number] => {
      at += len;
      return [at - len, len];
    });
    return this.step(node, ctx, `${plans[0]!.label.split(':')[0]} (webgpu)`, launches, (flat) => {
      const data = last.layout === 'pairs' ? unpackPairs(flat) : flat;
      let offset = 0;
      return last.results.map((len) => data.subarray(offset, (offset += len)));
    }, ranges);
  }

  private translated(node: Node, plan: KernelPlan, chunkRows?: Map<number, number>): Launch {
    let k: WgslKernel;
    try {
      k = wgslOfPlan(plan, chunkRows);
    } catch (e) {
      throw kernelLimit(node, this.info.name, (e as Error).message);
    }
    const operands: Operand[] = k.inputs.map((i) => {
      if (i.kind === 'stage') return { kind: 'stage', index: i.index };
      const a = plan.args[i.index]!;
      return a.kind === 'param' ? { kind: 'param', name: a.name, perm: a.perm, chunk: i.chunk } : { kind: 'value', ref: a.ref, shape: a.shape, perm: a.perm };
    });
    return { label: plan.label, source: k.source, operands, outputFloats: k.outputFloats, grid: { threads: k.threads }, plan };
  }

  /** Bytes one buffer may bind here (the adapter's limit, or less where asked). */
  private bindingLimit(device: GPUDevice): number {
    return Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize, this.maxBindingBytes ?? Infinity);
  }

  /**
   * The launch as it runs on this device: parameters read by row that are larger than one
   * binding are bound as several buffers of whole rows (never truncated).
   */
  private fitted(node: Node, l: Launch, device: GPUDevice): Launch {
    const limit = this.bindingLimit(device);
    if (l.fit) return l.fit(limit, this.subgroups());
    if (!l.plan) return l;
    const chunkRows = new Map<number, number>();
    l.plan.args.forEach((a, i) => {
      const cells = a.shape.reduce((x, y) => x * y, 1);
      if (a.kind !== 'param' || cells * 4 <= limit || cells < FLAT_INDEX_LIMIT || l.plan!.views?.has(i)) return;
      const rowBytes = (cells / a.shape[0]!) * 4;
      if (rowBytes > limit) throw kernelLimit(node, this.info.name, `a row of parameter ${a.name} is ${rowBytes} bytes, more than one buffer binds here (${limit})`);
      chunkRows.set(i, Math.floor(limit / rowBytes));
    });
    if (!chunkRows.size) return l;
    const parts = [...chunkRows].map(([i, rows]) => `${(l.plan!.args[i] as { name: string }).name} in ${Math.ceil(l.plan!.args[i]!.shape[0]! / rows)} buffers`);
    this.noteSet.add(`${l.label}: ${parts.join(', ')} (one binding holds at most ${bytesText(limit)} here)`);
    return this.translated(node, l.plan, chunkRows);
  }

  /** A two-operand einsum (einsum_bn included) as the tiled matmul kernel. */
  private contraction(node: Node, ctx: PlanContext): PlannedStep | undefined {
    if (node.op !== 'einsum' && node.op !== 'einsum_bn') return undefined;
    const specText = node.op === 'einsum_bn' ? attrsOf(einsum_bn, node).spec : attrsOf(einsum, node).spec;
    const spec = parseEinsum(specText, 2);
    if (spec.inputs.length !== 2 || node.inputs.length < 2) return undefined;
    const shapes = node.inputs.slice(0, 2).map(ctx.shapeOf);
    const m = batchedLayout(spec, shapes);
    const bn = node.op === 'einsum_bn';
    // A permuted result is stored in the einsum's order by the kernel (so BatchNorm's channel, flat index mod C, holds).
    const strides = m?.permOut ? storeStrides(spec, m) : undefined;
    const why = !m ? undefined : m.permOut && !strides ? `its result would be permuted on the host (${spec.output}'s axes do not keep the product's groups together)` : m.batch > 65535 ? `its ${m.batch} batched products are more than one dispatch dimension holds (65535)` : undefined;
    if (why) this.noteSet.add(`${node.op} ${specText} runs as the generated one-thread-per-cell kernel, not the tiled matmul: ${why}`);
    if (!m || why) return undefined;
    const identity = (perm: number[]) => (perm.every((x, j) => x === j) ? undefined : perm);
    const extra = bn ? node.inputs.slice(2).map((r) => operandOf(ctx, r)) : [];
    const shape: GemmShape = { batch: m.batch, rows: m.rows, cols: m.cols, inner: m.inner };
    const channels = bn ? ctx.shapeOf(node.inputs[2]!).reduce((a, b) => a * b, 1) : 0;
    const source = gemmWgsl(shape, bn ? { channels, eps: attrsOf(einsum_bn, node).eps } : undefined, strides);
    const launch: Launch = { label: `${node.op} ${specText}`, source, operands: [operandOf(ctx, node.inputs[m.x]!, identity(m.permX)), operandOf(ctx, node.inputs[m.y]!, identity(m.permY)), ...extra], outputFloats: m.batch * m.rows * m.cols, grid: gemmGrid(shape) };
    return this.step(node, ctx, `${node.op === 'einsum_bn' ? 'einsum_bn' : `einsum ${specText}`} (webgpu matmul)`, [launch], (flat) => [flat], [[0, launch.outputFloats]]);
  }

  /**
   * expert_act and expert_out as kernels of their own (codegen/wgsl/experts.ts) reading the
   * resident table's selected rows; a table larger than one binding is read from buffers of
   * whole rows (with a note).
   */
  private experts(node: Node, ctx: PlanContext): PlannedStep | undefined {
    if (node.op !== 'expert_act' && node.op !== 'expert_out') return undefined;
    const src = ctx.source(node.inputs[1]!);
    // plan() never passes paramsAsArguments here: parameters are resident in training too.
    if (src.kind !== 'param') {
      this.noteSet.add(`${node.op} runs as the generated one-thread-per-cell kernel: its table is a computed value, not a parameter, and the row-reading kernel reads resident parameters`);
      return undefined;
    }
    const [rows, width] = ctx.shapeOf(node.inputs[1]!) as [number, number];
    const T = ctx.shapeOf(node.inputs[0]!)[0]!;
    const slots = ctx.shapeOf(node.inputs[2]!).reduce((a, b) => a * b, 1);
    const value = (i: number): Operand => ({ kind: 'value', ref: node.inputs[i]!, shape: ctx.shapeOf(node.inputs[i]!) });
    const act = node.op === 'expert_act';
    const residual = !act && node.inputs.length > 3;
    const label = node.op;
    const fit = (limit: number, subgroups: boolean): Launch => {
      const rowsPer = Math.min(rows, Math.floor(limit / (width * 4)));
      if (rowsPer < 1) throw kernelLimit(node, this.info.name, `a row of parameter ${src.name} is ${width * 4} bytes, more than one buffer binds here (${limit})`);
      const table: TableBinding = { rows, width, rowsPer };
      const parts = partsOf(table);
      if (parts > 1) this.noteSet.add(`${label}: ${src.name} in ${parts} buffers (one binding holds at most ${bytesText(limit)} here)`);
      const chunks: Operand[] = Array.from({ length: parts }, (_, c) => ({ kind: 'param', name: src.name, chunk: { first: c * rowsPer, rows: Math.min(rowsPer, rows - c * rowsPer), width } }));
      return act
        ? { label, source: expertActWgsl(T, slots, width, attrsOf(expert_act, node).act, table, subgroups), operands: [value(0), value(2), value(3), ...chunks], outputFloats: slots, grid: { workgroups: expertActGroups(slots) } }
        : { label, source: expertOutWgsl(T, slots, width, residual, table), operands: [value(0), value(2), ...(residual ? [value(3)] : []), ...chunks], outputFloats: T * width, grid: { threads: T * width } };
    };
    // Planned with one buffer; the run fits it to the device's binding limit.
    const launch = { ...fit(Infinity, false), fit };
    return this.step(node, ctx, `${label} (webgpu)`, [launch], (flat) => [flat], [[0, launch.outputFloats]]);
  }

  /** product_retrieve as one kernel per lane with the selection in workgroup memory (codegen/wgsl/retrieve.ts). */
  private retrieval(node: Node, ctx: PlanContext): PlannedStep | undefined {
    if (node.op !== 'product_retrieve') return undefined;
    const shape = ctx.shapeOf(node.inputs[0]!);
    const n = shape[shape.length - 1]!;
    const lanes = shape.reduce((a, b) => a * b, 1) / n;
    const { k, subk, gate } = attrsOf(product_retrieve, node);
    const bytes = retrieveWorkgroupBytes(k, subk);
    if (bytes > WORKGROUP_BYTES) {
      this.noteSet.add(`product_retrieve with k = ${k} of ${subk} x ${subk} candidates needs ${bytes} bytes of workgroup memory, more than every adapter offers (${WORKGROUP_BYTES}): it runs as the generated one-thread-per-cell kernels`);
      return undefined;
    }
    const operands = [0, 1].map((i) => operandOf(ctx, node.inputs[i]!));
    const launch: Launch = { label: 'product_retrieve', source: retrieveWgsl(lanes, n, k, subk, gate), operands, outputFloats: 2 * lanes * k, grid: { workgroups: lanes } };
    // Where the device has subgroups, the merge trees become rounds of a subgroup argmax (retrieve-subgroups.ts).
    launch.fit = (_limit, subgroups) => (subgroups ? { ...launch, source: retrieveSubgroupWgsl(lanes, n, k, subk, gate) } : launch);
    return this.step(node, ctx, 'product_retrieve (webgpu)', [launch], (flat) => [flat.subarray(0, lanes * k), flat.subarray(lanes * k)], [[0, lanes * k], [lanes * k, lanes * k]]);
  }

  /**
   * Launches in order as one submission (stage i binds the outputs of stages before it). `run`
   * reads the last one's output back and splits it into the node's results; `runOnDevice`
   * (where the results are plain ranges of that output) leaves them on the GPU as DeviceValues.
   */
  private step(node: Node, ctx: PlanContext, label: string, launches: Launch[], results: (flat: Float32Array) => Float32Array[], ranges?: [number, number][]): PlannedStep {
    const outputs: GPUBuffer[] = [];
    const uploads = new Map<string, GPUBuffer>();
    const resultBuffers: GPUBuffer[] = [];
    let staging: GPUBuffer | undefined;
    let fitted: Launch[] | undefined;
    // Host arrays of this step's last results that are bound where they are (dropped when the buffers change).
    let registered: Float32Array[] = [];
    let validated = false;
    // Checked for every planned step at the first run of any: a program that does not fit fails before any work.
    this.preflight.push((device) => {
      fitted ??= launches.map((l) => this.fitted(node, l, device));
      for (const l of fitted) this.checkFits(node, l, ctx, device);
    });
    const encode = async (read: ReadAny): Promise<{ device: GPUDevice; encoder: GPUCommandEncoder }> => {
      const { device } = await this.gpu();
      for (const check of this.preflight.splice(0)) check(device);
      // The output buffers are about to change: the last call's results no longer match them.
      for (const r of registered) this.onGpu.delete(r);
      registered = [];
      launches = fitted ??= launches.map((l) => this.fitted(node, l, device));
      // The first call's commands are validated in a scope of their own (a round trip to the GPU
      // process in browsers); later calls encode the same commands on the same buffers.
      if (!validated) device.pushErrorScope('validation');
      const encoder = device.createCommandEncoder();
      for (const [s, l] of launches.entries()) {
        const pipeline = await this.pipeline(node, l, device);
        outputs[s] ??= this.buffer(node, device, l.outputFloats, STORAGE | COPY_SRC, `${l.label} output`);
        const bound: GPUBuffer[] = [];
        for (const [j, o] of l.operands.entries()) {
          if (o.kind === 'stage') bound.push(outputs[o.index]!);
          else if (o.kind === 'param') bound.push(await this.residentParam(node, device, o, ctx));
          else {
            const raw = read(o.ref);
            // A value an earlier step of this backend computed is bound where it already is.
            const resident = o.perm ? undefined : isDeviceValue(raw) ? this.deviceBuffers.get(raw) : this.onGpu.get(raw);
            if (resident) {
              bound.push(resident);
              continue;
            }
            // Operands laid out another way are permuted on the host (a device value comes down for it).
            const host = isDeviceValue(raw) ? await raw.download() : raw;
            const data = o.perm ? permuteAxes(host, o.perm.map((_, q) => o.shape[o.perm!.indexOf(q)]!), o.perm) : host;
            const key = `${s}:${j}`;
            let buf = uploads.get(key);
            if (!buf) uploads.set(key, (buf = this.buffer(node, device, data.length, STORAGE | COPY_DST, `${l.label} input ${j}`)));
            upload(device, buf, data);
            bound.push(buf);
          }
        }
        const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [outputs[s]!, ...bound].map((buffer, binding) => ({ binding, resource: { buffer } })) });
        const p = encoder.beginComputePass();
        p.setPipeline(pipeline);
        p.setBindGroup(0, group);
        if (!Array.isArray(l.grid)) {
          const groups = Math.max(1, 'threads' in l.grid ? Math.ceil(l.grid.threads / WORKGROUP) : l.grid.workgroups);
          const x = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
          p.dispatchWorkgroups(x, Math.ceil(groups / x));
        } else p.dispatchWorkgroups(...l.grid);
        p.end();
      }
      return { device, encoder };
    };
    const submit = async (device: GPUDevice, encoder: GPUCommandEncoder) => {
      device.queue.submit([encoder.finish()]);
      if (validated) return;
      const invalid = await device.popErrorScope();
      if (invalid) throw kernelLimit(node, this.info.name, `${label} was refused by WebGPU: ${invalid.message.split('\n')[0]}`);
      validated = true;
    };
    const run = async (read: Read) => {
      const { device, encoder } = await encode(read);
      const floats = launches[launches.length - 1]!.outputFloats;
      staging ??= this.buffer(node, device, floats, MAP_READ | COPY_DST, `${label} read-back`);
      encoder.copyBufferToBuffer(outputs[launches.length - 1]!, 0, staging, 0, Math.max(4, floats * 4));
      await submit(device, encoder);
      const flat = await mapped(staging, floats);
      this.checkUncaptured(node, label);
      const res = results(flat);
      // The first result, where it is the output buffer's data as it is (not unpacked or permuted), stays bound there.
      if (res[0] && res[0].buffer === flat.buffer && res[0].byteOffset === 0) {
        this.onGpu.set(res[0], outputs[launches.length - 1]!);
        registered.push(res[0]);
      }
      return res;
    };
    const runOnDevice = async (read: ReadAny): Promise<DeviceValue[]> => {
      const { device, encoder } = await encode(read);
      const out = outputs[launches.length - 1]!;
      // Each result in a buffer of its own (binding offsets must be aligned; copies need not be).
      const buffers = ranges!.map(([offset, length], i) => {
        if (ranges!.length === 1 && offset === 0) return out;
        resultBuffers[i] ??= this.buffer(node, device, length, STORAGE | COPY_SRC | COPY_DST, `${label} result ${i}`);
        if (length) encoder.copyBufferToBuffer(out, offset * 4, resultBuffers[i]!, 0, length * 4);
        return resultBuffers[i]!;
      });
      await submit(device, encoder);
      // Waiting for the GPU keeps each step's time its own (the bench's per-kernel figures).
      await device.queue.onSubmittedWorkDone();
      this.checkUncaptured(node, label);
      return buffers.map((buffer, i) => this.deviceValue(node, device, buffer, ranges![i]![1], `${label} result ${i}`, (a) => registered.push(a)));
    };
    return { label, run, ...(ranges ? { runOnDevice } : {}), kernels: launches.length, sources: launches.map((l) => l.source) };
  }

  /** A command WebGPU refused after a step's first call (outside its error scope) fails the step, never passes silently. */
  private checkUncaptured(node: Node, label: string): void {
    const errors = this.handle?.uncaptured.splice(0) ?? [];
    if (errors.length) throw kernelLimit(node, this.info.name, `${label} was refused by WebGPU: ${errors[0]!.split('\n')[0]}`);
  }

  /** A result left in `buffer`: downloaded once when the host needs it, then bound where it is. */
  private deviceValue(node: Node, device: GPUDevice, buffer: GPUBuffer, length: number, what: string, onHost: (a: Float32Array) => void): DeviceValue {
    let host: Promise<Float32Array> | undefined;
    const value: DeviceValue = {
      onDevice: true,
      length,
      download: () =>
        (host ??= (async () => {
          const staging = this.buffer(node, device, length, MAP_READ | COPY_DST, `${what} read-back`);
          const encoder = device.createCommandEncoder();
          if (length) encoder.copyBufferToBuffer(buffer, 0, staging, 0, length * 4);
          device.queue.submit([encoder.finish()]);
          const a = await mapped(staging, length);
          staging.destroy();
          this.onGpu.set(a, buffer);
          onHost(a);
          return a;
        })()),
    };
    this.deviceBuffers.set(value, buffer);
    return value;
  }

  /** Every buffer a launch binds fits one binding, and the bindings fit the adapter's count (PEER0606 otherwise). */
  private checkFits(node: Node, l: Launch, ctx: PlanContext, device: GPUDevice): void {
    const limit = this.bindingLimit(device);
    const max = device.limits.maxStorageBuffersPerShaderStage;
    if (l.operands.length + 1 > max) throw kernelLimit(node, this.info.name, `${l.label} binds ${l.operands.length + 1} storage buffers; this adapter allows ${max} per kernel`);
    const floats = [l.outputFloats, ...l.operands.map((o) => (o.kind === 'stage' ? 0 : o.kind === 'value' ? o.shape.reduce((a, b) => a * b, 1) : o.chunk ? o.chunk.rows * o.chunk.width : ctx.param(o.name).length))];
    floats.forEach((f, i) => {
      const o = i === 0 ? undefined : l.operands[i - 1]!;
      const what = !o ? `${l.label}'s output` : o.kind === 'param' ? `parameter ${o.name}` : `${l.label}'s input ${i - 1}`;
      if (f * 4 > limit) throw kernelLimit(node, this.info.name, `${what} needs ${bytesText(f * 4)} in one buffer; one binding holds at most ${bytesText(limit)} here`);
    });
  }

  /**
   * A parameter's buffer (or a chunk of its rows): uploaded on first use, shared with the other
   * webgpu backends reading the same array, and brought up to date with the changes reported
   * since (paramsChanged: a trainer's updates).
   */
  private async residentParam(node: Node, device: GPUDevice, o: { name: string; perm?: number[]; chunk?: { first: number; rows: number; width: number } }, ctx: PlanContext): Promise<GPUBuffer> {
    const shape = ctx.module.params.find((p) => p.name === o.name)!.shape;
    const layout = { name: o.name, shape, perm: o.perm, chunk: o.chunk };
    // A new layout of a table the GPU updated is made from its host array: brought back first.
    if (this.residents.stale(ctx.param(o.name), layout)) await this.residents.syncToHost(device, ctx.param(o.name));
    return this.residents.buffer(device, ctx.param(o.name), layout, (floats) => this.buffer(node, device, floats, STORAGE | COPY_DST | COPY_SRC, `parameter ${o.name}`));
  }

  /** The host array of a parameter changed (rows of rowSize floats, or all of it): its buffers follow before their next use. */
  paramsChanged(data: Float32Array, rows?: ArrayLike<number>, rowSize?: number): void {
    changed(data, rows, rowSize);
  }

  /** A buffer of `floats` floats; more than one binding may hold is a coded error, never a truncation. */
  private buffer(node: Node, device: GPUDevice, floats: number, usage: number, what: string): GPUBuffer {
    const bytes = Math.max(4, floats * 4);
    const limit = usage & STORAGE ? device.limits.maxStorageBufferBindingSize : device.limits.maxBufferSize;
    if (bytes > limit) throw kernelLimit(node, this.info.name, `${what} needs ${bytesText(bytes)} in one buffer; one binding holds at most ${bytesText(limit)} here`);
    return device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage });
  }

  private async pipeline(node: Node, l: Launch, device: GPUDevice): Promise<GPUComputePipeline> {
    const key = `${l.operands.length}:${l.source}`;
    let p = this.pipelines.get(key);
    if (p) return p;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: l.source });
    // An explicit layout: 'auto' would drop the bindings a kernel does not read.
    const bindings = l.operands.length + 1;
    const layout = device.createPipelineLayout({
      bindGroupLayouts: [
        device.createBindGroupLayout({
          entries: Array.from({ length: bindings }, (_, binding) => ({ binding, visibility: 4 /* GPUShaderStage.COMPUTE */, buffer: { type: binding === 0 ? ('storage' as const) : ('read-only-storage' as const) } })),
        }),
      ],
    });
    p = await device.createComputePipelineAsync({ layout, compute: { module, entryPoint: 'main' } }).catch(async (e) => {
      const info = await module.getCompilationInfo();
      const msgs = info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
      throw kernelLimit(node, this.info.name, `the WGSL of ${l.label} did not compile: ${msgs.join('; ') || String(e)}`);
    });
    const err = await device.popErrorScope();
    if (err) throw kernelLimit(node, this.info.name, `the WGSL of ${l.label} did not compile: ${err.message}`);
    this.pipelines.set(key, p);
    return p;
  }

  /** GFLOP/s of the tiled matmul kernel on a 512^3 product (read-back included). */
  async matmulReference(runs = 3): Promise<number> {
    const { device } = await this.gpu();
    const n = 512, shape: GemmShape = { batch: 1, rows: n, cols: n, inner: n };
    const dummy = { id: -1, op: 'einsum', inputs: [], types: [], attrs: {} } as unknown as Node;
    const m = new Float32Array(n * n).map((_, i) => (i % 13) * 0.01);
    const a = this.buffer(dummy, device, n * n, STORAGE | COPY_DST, 'matmul operand');
    device.queue.writeBuffer(a, 0, m);
    const operand: Operand = { kind: 'stage', index: 0 };
    const launch: Launch = { label: 'matmul 512^3', source: gemmWgsl(shape), operands: [operand, operand], outputFloats: n * n, grid: gemmGrid(shape) };
    const pipeline = await this.pipeline(dummy, launch, device);
    const out = this.buffer(dummy, device, n * n, STORAGE | COPY_SRC, 'matmul result');
    const staging = this.buffer(dummy, device, 1, MAP_READ | COPY_DST, 'matmul read-back');
    const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [out, a, a].map((buffer, binding) => ({ binding, resource: { buffer } })) });
    return timeMatmul(n, runs, async () => {
      const enc = device.createCommandEncoder();
      const p = enc.beginComputePass();
      p.setPipeline(pipeline);
      p.setBindGroup(0, group);
      p.dispatchWorkgroups(...gemmGrid(shape));
      p.end();
      enc.copyBufferToBuffer(out, 0, staging, 0, 4);
      device.queue.submit([enc.finish()]);
      await staging.mapAsync(1);
      staging.unmap();
    });
  }

  destroy(): void {
    this.updates.destroy();
    this.residents.release();
  }
}
