// The wasm-simd backend's own steps: ops that run as peerc-generated code on the worker pool
// instead of gpu.js kernels. Contractions in matrix-product form as the SIMD128 micro-kernel
// (codegen/wasm), the fused retrieval and expert ops, parameter gathers and slices as generated
// host tasks (codegen/host) over shared memory. Each returns undefined when its op does not
// fit (a product narrower than one register tile), and the op stays a gpu.js kernel.
import type { IRFunction, Node, ValueRef } from '../../../src/ir/graph.js';
import { parseEinsum } from '../../../src/ir/ops/einsum.js';
import { batchedLayout } from '../../../codegen/wasm/contraction.js';
import { MR, NR } from '../../../codegen/wasm/gemm.js';
import { productRetrieveTask } from '../../../codegen/host/retrieve.js';
import { retrieveModule, retrieveScratchBytes } from '../../../codegen/wasm/retrieve.js';
import { expertActTask, expertOutTask, gatherRowsTask } from '../../../codegen/host/experts.js';
import { keptShared, type WorkerPool } from '../../pool.js';
import type { WasmGemm } from './gemm.js';
import { tableStep, type TableContext } from './table-steps.js';
import { attrsOf } from '../../../src/ir/ops/types.js';
import { einsum } from '../../../src/ir/ops/einsum.js';
import { einsum_bn, expert_act, product_retrieve } from '../../../src/ir/ops/fused.js';
import { batchnorm, reduce_mean, reduce_sum } from '../../../src/ir/ops/reductions.js';
import { batchnormTrainingTask, columnReduceTask } from '../../../codegen/host/columns.js';
import { lit } from '../../../codegen/kernel.js';
import { batchnormTrainingModule, COLUMN_BLOCK, columnSumsModule, elementwiseModule, operandKind, wasmElementwiseFits, type OperandKind } from '../../../codegen/wasm/elementwise.js';
import { scatterRowsStep, sliceStep, transposer } from './layout-steps.js';
import { inPlaceOrCopied, size, type HostContext, type HostFn, type Read } from './places.js';
import { elementwise_fused, type ElementwiseExpr } from '../../../src/ir/ops/elementwise-fused.js';
import type { PoolTask } from '../../pool.js';

export type { HostContext, HostFn, Read } from './places.js';

/** A step for `node` on the pool, with its timing label, or undefined to leave it to gpu.js. */
export function hostStep(ctx: HostContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: HostFn } | undefined {
  switch (node.op) {
    case 'einsum':
    case 'einsum_bn':
      return contraction(ctx, node, shapeOf);
    case 'product_retrieve':
      return retrieveStep(ctx, node, shapeOf);
    case 'elementwise_fused':
    case 'add':
    case 'sub':
    case 'mul':
    case 'div':
    case 'maximum':
    case 'minimum':
    case 'neg':
    case 'abs':
    case 'sqrt':
    case 'relu':
    case 'broadcast_to':
      return elementwiseStep(ctx, node, shapeOf);
    case 'expert_act':
    case 'expert_out': {
      const step = tableStep(ctx, node, shapeOf);
      if (typeof step !== 'string') return step;
      const table = ctx.source(node.inputs[1]!);
      ctx.note(`${node.op} reads the rows of ${table.kind === 'param' ? `table ${table.name}` : 'its table'} in a JavaScript task, not the SIMD kernel: ${step}`);
      return node.op === 'expert_act' ? expertActStep(ctx, node, shapeOf) : expertOutStep(ctx, node, shapeOf);
    }
    case 'gather': {
      if (!ctx.paramsAsArguments || ctx.source(node.inputs[0]!).kind !== 'param') return undefined;
      const tableShape = shapeOf(node.inputs[0]!);
      const rowSize = size(tableShape.slice(1));
      const slots = size(shapeOf(node.inputs[1]!));
      const task = gatherRowsTask(rowSize, tableShape[0]!);
      const outBuf = keptShared(slots * rowSize);
      return {
        label: 'gather (host)',
        host: async (read) => {
          const out = outBuf();
          await ctx.pool.run(task, [read(node.inputs[0]!), read(node.inputs[1]!), out], slots, { minLanes: 256, outputs: [2] });
          return [out];
        },
      };
    }
    case 'slice':
      return sliceStep(ctx, node, shapeOf);
    case 'scatter_rows':
      return scatterRowsStep(ctx, node, shapeOf);
    case 'reduce_sum':
    case 'reduce_mean':
    case 'batchnorm':
      return columnStep(ctx, node, shapeOf);
    default:
      return undefined;
  }
}

/**
 * Reductions over the leading axis of a [rows, c] tensor and training-mode BatchNorm as tasks over
 * ranges of columns that walk rows in memory order (codegen/host/columns.ts), on the pool's
 * threads; the per-column kernels read each column at a stride of c. Same arithmetic, same bits.
 * Other shapes, and BatchNorm in evaluation mode (one pass with the running statistics), stay kernels.
 */
function columnStep(ctx: HostContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: HostFn } | undefined {
  const shape = shapeOf(node.inputs[0]!);
  if (node.types[0]!.dtype !== 'f32' || shape.length < 2) return undefined;
  const c = shape[shape.length - 1]!;
  if (node.op === 'batchnorm') {
    if (!ctx.training) return undefined;
    const rows = size(shape) / c;
    if (c % COLUMN_BLOCK === 0 && rows * c >= ELEMENTWISE_MIN_CELLS) return batchnormStep(ctx, node, rows, c);
    const task = batchnormTrainingTask(rows, c, lit(attrsOf(batchnorm, node).eps));
    const outBuf = keptShared(rows * c);
    return {
      label: 'batchnorm (host)',
      host: async (read) => {
        const out = outBuf();
        await ctx.pool.run(task, [read(node.inputs[0]!), read(node.inputs[1]!), read(node.inputs[2]!), out], c, { minLanes: 64, outputs: [3] });
        return [out];
      },
    };
  }
  const axis = (attrsOf(node.op === 'reduce_sum' ? reduce_sum : reduce_mean, node).axis + shape.length) % shape.length;
  // Only a sum over the first axis with every other axis kept as columns (no outer axes).
  if (axis !== 0) return undefined;
  const rows = shape[0]!, cols = size(shape) / rows;
  if (cols < 16) return undefined;
  if (cols % COLUMN_BLOCK === 0 && rows * cols >= ELEMENTWISE_MIN_CELLS) return columnSumsStep(ctx, node, rows, cols);
  const task = columnReduceTask(rows, cols, node.op === 'reduce_mean');
  const outBuf = keptShared(cols);
  return {
    label: `${node.op} (host)`,
    host: async (read) => {
      const out = outBuf();
      await ctx.pool.run(task, [read(node.inputs[0]!), out], cols, { minLanes: 64, outputs: [1] });
      return [out];
    },
  };
}

/**
 * A two-operand contraction in matrix-product form as peerc's SIMD kernel: operands laid out
 * [rows, inner] and [inner, cols] (parameters once, values per call), einsum_bn's
 * evaluation-mode BatchNorm (flat index mod C is the channel) as the epilogue.
 */
function contraction(ctx: HostContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: HostFn } | undefined {
  const specText = node.op === 'einsum_bn' ? attrsOf(einsum_bn, node).spec : attrsOf(einsum, node).spec;
  const spec = parseEinsum(specText, 2);
  if (spec.inputs.length !== 2 || node.inputs.length < 2) return undefined;
  const shapes = node.inputs.slice(0, 2).map(shapeOf);
  const m = batchedLayout(spec, shapes);
  // Products narrower than one register tile are left to the gpu.js kernels (the edge would be all of it).
  if (!m || m.rows < MR || m.cols < NR) return undefined;
  const constant = (i: number) => ctx.source(node.inputs[i]!).kind === 'param' && !ctx.paramsAsArguments;
  const operand = (i: number, perm: number[]) => {
    const r = node.inputs[i]!;
    const src = ctx.source(r);
    const identity = perm.every((p, j) => p === j);
    if (src.kind === 'param' && !ctx.paramsAsArguments) return () => (identity ? ctx.param(src.name) : ctx.permuted(src.name, perm));
    if (identity) return (read: Read) => read(r);
    const transpose = transposer(ctx, shapes[i]!, perm);
    return transpose ? (read: Read) => transpose(read(r)) : (read: Read) => ctx.permuteAxes(read(r), shapes[i]!, perm);
  };
  const bConstant = constant(m.y);
  // B read per call whose axes are [cols..., contracted...] (a key table or a weight read
  // transposed): packed straight from that layout, not permuted and then packed.
  // That is: permY rotates Y's axes by j, and Y's first j axes hold exactly the columns.
  const j = m.permY[0]!, yShape = shapes[m.y]!;
  const bTransposed = !bConstant && m.batch === 1 && j > 0 && m.permY.every((p, i) => p === (i + j) % m.permY.length) && size(yShape.slice(0, j)) === m.cols;
  const ax = operand(m.x, m.permX), ay = bTransposed ? (read: Read) => read(node.inputs[m.y]!) : operand(m.y, m.permY);
  const bn = node.op === 'einsum_bn' ? node.inputs.slice(2) : undefined;
  const eps = node.op === 'einsum_bn' ? attrsOf(einsum_bn, node).eps : 0;
  const label = `${node.op === 'einsum_bn' ? 'einsum_bn' : `einsum ${specText}`} (wasm-simd)`;
  // The step's place in the kernel memory, fixed now: a program whose products pass wasm32's
  // 4 GiB fails here, before any kernel runs.
  const gemm = ctx.gemm();
  const region = gemm.region(m.batch, m.rows, m.cols, m.inner);
  const epilogue = bn && batchnormEpilogue(ctx, size(m.resultShape), shapeOf(bn[0]!)[0]!);
  const outTranspose = m.permOut && transposer(ctx, m.resultShape, m.permOut);
  const host: HostFn = async (read) => {
    let out = await gemm.run(region, await ax(read), await ay(read), bConstant, bTransposed);
    if (m.permOut) out = outTranspose ? await outTranspose(out) : ctx.permuteAxes(out, m.resultShape, m.permOut);
    if (!epilogue) return [out];
    const [g, b, mean, variance] = bn.map(read) as [Float32Array, Float32Array, Float32Array, Float32Array];
    const scale = epilogue.scale();
    for (let j = 0; j < g.length; j++) scale[j] = g[j]! / Math.sqrt(variance[j]! + eps);
    return [await epilogue.run(out, mean, scale, b)];
  };
  return { label, host };
}

/**
 * product_retrieve as the SIMD selection kernel in the contraction kernel's memory: scores that
 * a product left there are read in place (others are copied in), the k best sums and their ids
 * are written there, and the gate runs after the kernel in the same task.
 */
function retrieveStep(ctx: HostContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: HostFn } {
  const shape = shapeOf(node.inputs[0]!);
  const { k, subk, gate } = attrsOf(product_retrieve, node);
  const n = shape[shape.length - 1]!;
  const lanes = size(shape) / n;
  const gemm = ctx.gemm();
  const kernel = gemm.instantiate(`retrieve:${n}:${k}:${subk}`, (limits) => retrieveModule(n, k, subk, limits));
  const task = productRetrieveTask(kernel, n, k, subk, gate);
  const what = `product_retrieve of ${lanes} lanes`;
  const scratch = gemm.reserve(lanes * retrieveScratchBytes(k, subk), what), cand = gemm.reserve(lanes * 8 * k, what), idx = gemm.reserve(lanes * 4 * k, what);
  const sums = gemm.view(Float64Array, cand, lanes * k), ids = gemm.view(Float32Array, idx, lanes * k);
  const wBuf = keptShared(lanes * k);
  // Scores that are not a product's result in this memory (computed another way) are copied in, and the user is told once.
  let told = false;
  const copies = [0, 1].map(() => inPlaceOrCopied(gemm, lanes * n, what, () => {
    if (!told) ctx.note(`product_retrieve copies its scores into the kernel memory on every call (${(4 * lanes * n / 2 ** 20).toFixed(1)} MB per side): they are not a contraction's result read in place`);
    told = true;
  }));
  return {
    label: 'product_retrieve (wasm-simd)',
    host: async (read) => {
      const [p1, p2] = [0, 1].map((s) => copies[s]!(read(node.inputs[s]!))) as [number, number];
      const w = wBuf();
      await ctx.pool.run(task, [p1, p2, scratch, cand, idx, sums(), w], lanes, { minLanes: 16, outputs: [5, 6] });
      return [w, ids()];
    },
  };
}

/**
 * A sum or mean over the leading axis as the SIMD column-sum kernel in the contraction kernel's
 * memory (the operand read in place or copied in), blocks of 16 columns split across the threads.
 */
function columnSumsStep(ctx: HostContext, node: Node, rows: number, cols: number): { label: string; host: HostFn } {
  const mean = node.op === 'reduce_mean';
  const gemm = ctx.gemm();
  const kernel = gemm.instantiate(`columnSums:${mean}`, (limits) => columnSumsModule(mean, limits));
  const task: PoolTask = {
    key: `${kernel}:blocks`,
    source: `function columnSums(args, from, to, ctx) {
  ctx.wasm[${JSON.stringify(kernel)}].columnSums(args[0], args[1], ${rows}, ${cols}, from, to);
}`,
  };
  const what = `${node.op} over [${rows}, ${cols}]`;
  const outAt = gemm.reserve(4 * cols, what);
  const result = gemm.view(Float32Array, outAt, cols);
  const place = inPlaceOrCopied(gemm, rows * cols, what);
  return {
    label: `${node.op} (wasm-simd)`,
    host: async (read) => {
      await ctx.pool.run(task, [place(read(node.inputs[0]!)), outAt], cols / COLUMN_BLOCK, { minLanes: 4 });
      return [result()];
    },
  };
}

/** Training-mode BatchNorm as the SIMD kernel (blocks of 16 channels split across the threads), in the contraction kernel's memory. */
function batchnormStep(ctx: HostContext, node: Node, rows: number, c: number): { label: string; host: HostFn } {
  const gemm = ctx.gemm();
  const kernel = gemm.instantiate('batchnormTraining', (limits) => batchnormTrainingModule(limits));
  const eps = attrsOf(batchnorm, node).eps;
  const task: PoolTask = {
    key: `${kernel}:blocks`,
    source: `function batchnormTraining(args, from, to, ctx) {
  ctx.wasm[${JSON.stringify(kernel)}].batchnormTraining(args[0], args[1], args[2], args[3], ${rows}, ${c}, from, to, args[4]);
}`,
  };
  const what = `batchnorm over [${rows}, ${c}]`;
  const outAt = gemm.reserve(4 * rows * c, what);
  const result = gemm.view(Float32Array, outAt, rows * c);
  const places = [rows * c, c, c].map((n) => inPlaceOrCopied(gemm, n, what));
  return {
    label: 'batchnorm (wasm-simd)',
    host: async (read) => {
      const [x, g, b] = node.inputs.slice(0, 3).map((r, i) => places[i]!(read(r)));
      await ctx.pool.run(task, [x!, g!, b!, outAt, eps], c / COLUMN_BLOCK, { minLanes: 2 });
      return [result()];
    },
  };
}

/** Below this many cells an elementwise op stays a JavaScript task (the copies in would cost more than they save). */
const ELEMENTWISE_MIN_CELLS = 8192;

/**
 * An arithmetic elementwise_fused as the SIMD kernel (codegen/wasm/elementwise.ts) in the
 * contraction kernel's memory: operands a kernel left there are read in place, others copied
 * in; the result is left there (read in place by the steps after it). Undefined (a JavaScript
 * task, bit for bit the same values) for other ops, other broadcasts, or small outputs.
 */
function elementwiseStep(ctx: HostContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: HostFn } | undefined {
  if (node.types[0]!.dtype !== 'f32' || node.inputs.some((r) => ctx.fn.graph.node(r.node).types[r.result]!.dtype !== 'f32')) return undefined;
  const text = node.op === 'elementwise_fused' ? attrsOf(elementwise_fused, node).expr : JSON.stringify({ op: node.op, args: node.inputs.map((_, i) => ({ input: i })) });
  const expr = JSON.parse(text) as ElementwiseExpr;
  const out = shapeOf({ node: node.id, result: 0 });
  const cells = size(out), cols = out[out.length - 1] ?? 1;
  if (!wasmElementwiseFits(expr) || cells < ELEMENTWISE_MIN_CELLS || cols % 4 !== 0) return undefined;
  const shapes = node.inputs.map(shapeOf);
  const kinds = shapes.map((sh) => operandKind(sh, out));
  if (kinds.some((k) => k === undefined)) return undefined;
  const known = kinds as OperandKind[];
  const gemm = ctx.gemm();
  const kernel = elementwiseKernel(ctx, expr, known, cols);
  const what = `${node.op} over [${out.join(', ')}]`;
  const outAt = gemm.reserve(4 * cells, what);
  const result = gemm.view(Float32Array, outAt, cells);
  const places = shapes.map((sh) => inPlaceOrCopied(gemm, size(sh), what));
  return {
    label: `${node.op} (wasm-simd)`,
    host: async (read) => {
      await kernel(outAt, node.inputs.map((r, i) => places[i]!(read(r))), cells / cols);
      return [result()];
    },
  };
}

/** The SIMD kernel of `expr` over rows of `cols`, split across the threads by rows: (output, operands, rows) in byte offsets. */
function elementwiseKernel(ctx: HostContext, expr: ElementwiseExpr, kinds: OperandKind[], cols: number): (outAt: number, operands: number[], rows: number) => Promise<void> {
  const text = JSON.stringify(expr);
  const kernel = ctx.gemm().instantiate(`elementwise:${cols}:${kinds.join(',')}:${text}`, (limits) => elementwiseModule(expr, kinds, cols, limits));
  const task: PoolTask = {
    key: `${kernel}:rows`,
    source: `function elementwise(args, from, to, ctx) {
  ctx.wasm[${JSON.stringify(kernel)}].elementwise(${kinds.map((_, i) => `args[${i}], `).join('')}args[${kinds.length}], from, to);
}`,
  };
  return (outAt, operands, rows) => ctx.pool.run(task, [outAt, ...operands], rows, { minLanes: Math.max(1, Math.ceil(16384 / cols)) });
}

/**
 * einsum_bn's evaluation-mode BatchNorm, (x - mean) * scale + b per channel (the last axis, c
 * channels), rounded once: the elementwise kernel where the rows are whole vectors, else the
 * same arithmetic in JavaScript. (x - mean) * scale, not x * scale - mean * scale, which loses
 * digits where the mean is large against the spread.
 */
function batchnormEpilogue(ctx: HostContext, cells: number, c: number): { scale: () => Float32Array; run: (x: Float32Array, mean: Float32Array, scale: Float32Array, b: Float32Array) => Promise<Float32Array> } {
  const scaleBuf = new Float32Array(c);
  if (c % 4 !== 0 || cells < ELEMENTWISE_MIN_CELLS)
    return {
      scale: () => scaleBuf,
      run: async (out, mean, scale, b) => {
        for (let row = 0; row < out.length; row += c)
          for (let j = 0; j < c; j++) out[row + j] = (out[row + j]! - mean[j]!) * scale[j]! + b[j]!;
        return out;
      },
    };
  const gemm = ctx.gemm();
  const input = (i: number) => ({ input: i });
  const expr: ElementwiseExpr = { op: 'add', args: [{ op: 'mul', args: [{ op: 'sub', args: [input(0), input(1)] }, input(2)] }, input(3)] };
  const kernel = elementwiseKernel(ctx, expr, ['full', 'row', 'row', 'row'], c);
  const what = `einsum_bn's BatchNorm over ${cells} values`;
  const outAt = gemm.reserve(4 * cells, what);
  const result = gemm.view(Float32Array, outAt, cells);
  const places = [cells, c, c, c].map((n) => inPlaceOrCopied(gemm, n, what));
  return {
    scale: () => scaleBuf,
    run: async (...operands) => {
      await kernel(outAt, operands.map((a, i) => places[i]!(a)), cells / c);
      return result();
    },
  };
}

/** expert_act as a JavaScript task on the pool (for tables the SIMD kernel cannot read in place). */
function expertActStep(ctx: HostContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: HostFn } {
  const [T, d] = shapeOf(node.inputs[0]!) as [number, number];
  const rows = size(shapeOf(node.inputs[1]!)) / d;
  const slots = size(shapeOf(node.inputs[2]!));
  const task = expertActTask(d, rows, slots / T, attrsOf(expert_act, node).act);
  const outBuf = keptShared(slots);
  return {
    label: 'expert_act (host)',
    host: async (read) => {
      const out = outBuf();
      await ctx.pool.run(task, [...node.inputs.map(read), out], T, { minLanes: 8, outputs: [4] });
      return [out];
    },
  };
}

/** expert_out as a JavaScript task on the pool. */
function expertOutStep(ctx: HostContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: HostFn } {
  const [T] = shapeOf(node.inputs[0]!) as [number];
  const [rows, d] = shapeOf(node.inputs[1]!) as [number, number];
  const slots = size(shapeOf(node.inputs[2]!));
  const residual = node.inputs.length > 3;
  const task = expertOutTask(d, rows, slots / T, residual);
  const outBuf = keptShared(T * d);
  return {
    label: 'expert_out (host)',
    host: async (read) => {
      const out = outBuf();
      const [h, v, idx, res] = node.inputs.map(read);
      await ctx.pool.run(task, [h!, v!, idx!, out, ...(res ? [res] : [])], T, { minLanes: 8, outputs: [3] });
      return [out];
    },
  };
}
