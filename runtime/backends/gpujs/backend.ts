// gpu.js's backends (cpu, webasm, webasm-threads, headlessgl, webgl2, webgpu): one generated
// kernel per op (per fused op under the fused lowering), created per shape, every call checked
// to run as the backend's own kernel class (a silent fallback to another mode is an error).
// Under training, gathers from parameter tables run on the host so a big table is never copied
// into kernel memory, only its selected rows.
import gpujs from 'gpu.js';
import { renderKernels } from '../../../codegen/render.js';
import { FLAT_INDEX_LIMIT, unpackPairs, type KernelPlan } from '../../../codegen/kernel.js';
import type { IRFunction, IRModule, Node, ValueRef } from '../../../src/ir/graph.js';
import type { Tensor } from '../../../src/interp/tensor.js';
import { sharedFloat32, type WorkerPool } from '../../pool.js';
import { kernelArgs, weightArrays, kernelLimit, KernelFallback, NonFiniteIndex, permuteAxes, type Backend, type PlanContext, type PlannedStep, type Read } from '../backend.js';
import type { BackendInfo } from '../backend.js';
import { sumRowsOnHost, type SparseGrad } from '../row-sums.js';
import { KernelRowSummer } from './row-sums.js';

const { GPU } = gpujs;
// gpu.js builds multi-dimensional views with input(); its typings omit it.
const input = (gpujs as unknown as { input: (data: Float32Array, size: number[]) => unknown }).input;

type Kernel = (...args: unknown[]) => unknown;

/** gpu.js source of a plan, as the kernel function gpu.js compiles. */
export function kernelSource(plan: KernelPlan): string {
  const params = plan.args.flatMap((a, i) => (a.kind === 'value' ? [`a${i}`] : []));
  for (let s = 0; s < plan.earlierStages; s++) params.push(`st${s}`);
  return `function(${params.join(', ')}) {\n${plan.source}\n}`;
}

/** A kernel's output as one flat array (2-D grids, vector returns and pair layouts unpacked). */
function flatten(out: unknown, plan: KernelPlan): Float32Array {
  let flat = out as Float32Array;
  if (plan.grid) {
    const rows = out as Float32Array[];
    const [w] = plan.grid;
    flat = new Float32Array(rows.length * w);
    for (let y = 0; y < rows.length; y++) flat.set(rows[y]!, y * w);
  } else if (plan.vec4) {
    const cells = out as Float32Array[];
    flat = new Float32Array(cells.length * 4);
    for (let i = 0; i < cells.length; i++) flat.set(cells[i]!, i * 4);
  }
  return plan.layout === 'pairs' ? unpackPairs(flat) : flat;
}

export class GpujsBackend implements Backend {
  private readonly gpu: InstanceType<typeof GPU>;
  readonly threads = 1;

  constructor(readonly info: BackendInfo) {
    this.gpu = new GPU({ mode: info.mode as 'cpu' });
  }

  private summer: KernelRowSummer | undefined;

  /**
   * A gpu.js kernel on GPU modes; the host loop on cpu and webasm, where the kernel would run on
   * the same cores after copying every row into kernel memory (measured ~10x slower at 16k x 256).
   */
  async sumRows(ids: ArrayLike<number>, grads: Float32Array, rowSize: number): Promise<SparseGrad> {
    if (this.info.mode === 'cpu' || this.info.mode === 'webasm') return sumRowsOnHost(ids, grads, rowSize);
    return (this.summer ??= new KernelRowSummer(this.info)).sum(ids, grads, rowSize);
  }

  describe(): string {
    return this.info.name;
  }

  notes(): string[] {
    return [];
  }

  pool(): WorkerPool | undefined {
    return undefined;
  }

  adoptParams(module: IRModule, _fn: IRFunction, weights: ReadonlyMap<string, Tensor | Float32Array>, given: Map<string, Float32Array>): Map<string, Float32Array> {
    return weightArrays(module, weights, given, sharedFloat32);
  }

  plan(node: Node, ctx: PlanContext): PlannedStep {
    if (ctx.paramsAsArguments && node.op === 'gather' && ctx.source(node.inputs[0]!).kind === 'param') return hostGather(node, ctx);
    const args = kernelArgs(node, ctx);
    const plans = renderKernels(node, args, node.types.map((_, i) => ctx.shapeOf({ node: node.id, result: i })), (d) => ctx.dimValue(d), ctx.training);
    return this.kernelStep(node, plans, ctx);
  }

  /** The kernels of a node, stage after stage, as one step. */
  kernelStep(node: Node, plans: KernelPlan[], ctx: PlanContext): PlannedStep {
    plans.forEach((plan) => {
      for (const a of plan.args)
        if (a.kind === 'value' && a.shape.reduce((x, y) => x * y, 1) > FLAT_INDEX_LIMIT)
          throw kernelLimit(node, this.info.name, `${node.op} reads an intermediate of ${a.shape.join(' x ')} cells, beyond the 2^24 cells a gpu.js kernel (which runs this step here) indexes correctly; use fewer tokens per call`);
      if (plan.outputLength > FLAT_INDEX_LIMIT) throw kernelLimit(node, this.info.name, `${plan.label} would write ${plan.outputLength} cells, beyond the 2^24 cells a gpu.js kernel (which runs this step here) indexes correctly; use fewer tokens per call`);
    });
    const kernels = plans.map((plan) => ({ plan, kernel: this.createKernel(plan, ctx), checked: false }));
    const run = async (read: Read, time: (label: string, ms: number) => void): Promise<Float32Array[]> => {
      const stages: Float32Array[] = [];
      for (const k of kernels) {
        const plan = k.plan;
        const views = plan.views;
        const callArgs = [
          ...plan.args.flatMap((a, i) => {
            if (a.kind !== 'value') return [];
            const data = a.perm ? permuteAxes(read(a.ref), a.perm.map((_, j) => a.shape[a.perm!.indexOf(j)]!), a.perm) : read(a.ref);
            const view = views?.get(i);
            return [view ? input(data, view) : data];
          }),
          ...stages.slice(0, plan.earlierStages),
        ];
        const t0 = performance.now();
        let out = k.kernel(...callArgs);
        if (this.info.asyncMode) out = await out;
        time(plan.label, performance.now() - t0);
        if (!k.checked) {
          this.checkKernel(k.kernel, plan.label);
          k.checked = true;
        }
        stages.push(flatten(out, plan));
      }
      const last = stages[stages.length - 1]!;
      let offset = 0;
      return plans[plans.length - 1]!.results.map((len) => last.subarray(offset, (offset += len)));
    };
    return { label: plans[0]!.label, run, timesItself: true, kernels: plans.length, sources: plans.map((p) => `// ${p.label}: ${p.outputLength} cells\n${kernelSource(p)}`) };
  }

  private createKernel(plan: KernelPlan, ctx: PlanContext): Kernel {
    const constants: Record<string, unknown> = {};
    plan.args.forEach((a, i) => {
      if (a.kind === 'value') return;
      const data = a.perm ? ctx.permuted(a.name, a.perm) : ctx.param(a.name);
      const cells = a.shape.reduce((x, y) => x * y, 1);
      const view = plan.views?.get(i);
      constants[`p${i}`] = view ? input(data, view) : cells >= FLAT_INDEX_LIMIT ? input(data, [cells / a.shape[0]!, a.shape[0]!]) : data;
    });
    const create = this.gpu.createKernel as unknown as (src: string, settings: object) => Kernel;
    return create.call(this.gpu, kernelSource(plan), {
      ...(plan.vec4 ? { returnType: 'Array(4)' } : {}),
      output: plan.grid ?? [plan.outputLength],
      constants,
      loopMaxIterations: Math.max(1000, plan.loopMax + 1),
      tactic: 'precision',
      precision: 'single',
      asyncMode: this.info.asyncMode,
    });
  }

  /** Never let a kernel fall back to another backend silently. */
  private checkKernel(kernel: Kernel, label: string): void {
    const k = kernel as unknown as { kernel?: { constructor: { name: string }; fallbackReason?: string | null } };
    const cls = k.kernel?.constructor?.name;
    if (cls !== this.info.kernelClass)
      throw new KernelFallback(`kernel '${label}' ran as ${cls ?? 'unknown'} instead of ${this.info.kernelClass}${k.kernel?.fallbackReason ? `: ${k.kernel.fallbackReason}` : ''}`);
  }

  /** GFLOP/s of gpu.js's own fastest matmul kernel shape (2-D views), 512^3. */
  async matmulReference(runs = 3): Promise<number> {
    const n = 512;
    const m = new Float32Array(n * n).map((_, i) => (i % 13) * 0.01);
    const create = this.gpu.createKernel as unknown as (src: string, settings: object) => Kernel;
    const k = create.call(this.gpu, `function(a, b) { let acc = 0.0; for (let s = 0; s < ${n}; s++) { acc += a[this.thread.y][s] * b[s][this.thread.x]; } return acc; }`, { output: [n, n], asyncMode: this.info.asyncMode, tactic: 'precision' });
    return timeMatmul(n, runs, () => k(input(m, [n, n]), input(m, [n, n])));
  }

  destroy(): void {
    this.gpu.destroy();
    this.summer?.destroy();
  }
}

/** Median GFLOP/s of an n^3 matmul over `runs` timed calls after a warm-up. */
export async function timeMatmul(n: number, runs: number, run: () => unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    await run();
    if (i > 0) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return (2 * n ** 3) / times[Math.floor(times.length / 2)]! / 1e6;
}

/** Copies the selected rows of a parameter table on the host: the table never enters kernel memory. */
export function hostGather(node: Node, ctx: PlanContext): PlannedStep {
  const [table, indices] = node.inputs as [ValueRef, ValueRef];
  const tableShape = ctx.shapeOf(table);
  const rowSize = tableShape.slice(1).reduce((a, b) => a * b, 1);
  const rows = tableShape[0]!;
  const run = (read: Read) => {
    const t = read(table), idx = read(indices);
    const out = new Float32Array(idx.length * rowSize);
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i]!;
      if (!(r >= 0 && r < rows)) throw new NonFiniteIndex(`gather: index ${r} is out of range for ${rows} rows (the values it was selected from are not finite)`);
      out.set(t.subarray(r * rowSize, r * rowSize + rowSize), i * rowSize);
    }
    return [out];
  };
  return { label: 'gather (host)', run, kernels: 1 };
}
