// The fused expert ops on the wasm-simd backend as SIMD kernels in the expert table's own
// memory (runtime/wasm-tables.ts): the rows are read where they live; only the tokens' small
// operands are copied into the table memory's scratch area and the results out of it. Where
// the table cannot live there (a computed table, rows not a multiple of 4 floats, past 4 GiB)
// the step says why and the caller runs the JavaScript task instead.
import type { Node, ValueRef } from '../../../src/ir/graph.js';
import { TableMemory } from './tables.js';
import { keptShared as kept } from '../../pool.js';
import { attrsOf } from '../../../src/ir/ops/types.js';
import { expert_act, expert_out } from '../../../src/ir/ops/fused.js';

export interface TableContext {
  source(r: ValueRef): { kind: 'value'; ref: ValueRef } | { kind: 'param'; name: string };
  /** The table memory holding parameter `name` (rows of `rowSize`), or why there is none. */
  table(name: string, rowSize: number): TableMemory | string;
}

/** A step's body: reads its inputs, returns its results (host-steps.ts's HostFn, declared here to keep imports one way). */
type TableFn = (read: (r: ValueRef) => Float32Array) => Promise<Float32Array[]>;

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);


/**
 * Whether to run an expert op grouped by expert: the rows come in blocks (experts of m rows) that
 * fit a product's tiles, and the call has at least 4 slots per expert on average. Below that
 * most experts have one or two slots, and a product padded to a tile of 8 columns does up to 8x
 * the multiply-adds of the per-slot kernel for the same rows read (measured at E = 64, d = 256,
 * m = 1024: 16 tokens 25 ms by expert against 10 ms per slot; 1024 tokens 149 ms against 440).
 */
function byExpert(block: number, d: number, slots: number, rows: number): boolean {
  return block > 1 && TableMemory.groupedUnfit(block, d) === null && slots >= 4 * (rows / block);
}

/** expert_act or expert_out in the table memory, or the reason it cannot run there. */
export function tableStep(ctx: TableContext, node: Node, shapeOf: (r: ValueRef) => number[]): { label: string; host: TableFn } | string {
  const src = ctx.source(node.inputs[1]!);
  if (src.kind !== 'param') return 'its table is a computed value, not a parameter';
  if (node.op === 'expert_act') {
    const [T, d] = shapeOf(node.inputs[0]!) as [number, number];
    const table = ctx.table(src.name, d);
    if (typeof table === 'string') return table;
    const slots = size(shapeOf(node.inputs[2]!)), perToken = slots / T;
    const { act, block } = attrsOf(expert_act, node);
    const outBuf = kept(slots);
    if (byExpert(block, d, slots / block, table.rows))
      return {
        label: 'expert_act (wasm-simd, by expert)',
        host: async (read) => {
          const out = outBuf();
          await table.groupedDots(read(node.inputs[0]!), read(node.inputs[2]!), read(node.inputs[3]!), out, T, block, act);
          return [out];
        },
      };
    return {
      label: 'expert_act (wasm-simd)',
      host: async (read) => {
        const x = read(node.inputs[0]!), idx = read(node.inputs[2]!), w = read(node.inputs[3]!);
        const off = table.scratch(slots * 8 + T * d * 4), xPtr = off + slots * 4, dotsPtr = xPtr + T * d * 4;
        table.rowOffsets(idx, table.u32(off, slots), 'expert_act');
        table.f32(xPtr, T * d).set(x);
        const out = outBuf();
        await table.gatedDots(xPtr, off, dotsPtr, T, perToken, w, out, act);
        return [out];
      },
    };
  }
  const [T] = shapeOf(node.inputs[0]!) as [number];
  const d = shapeOf(node.inputs[1]!).at(-1)!;
  const table = ctx.table(src.name, d);
  if (typeof table === 'string') return table;
  const slots = size(shapeOf(node.inputs[2]!)), perToken = slots / T;
  const residual = node.inputs.length > 3;
  const outBuf = kept(T * d);
  const { block } = attrsOf(expert_out, node);
  if (byExpert(block, d, slots / block, table.rows))
    return {
      label: 'expert_out (wasm-simd, by expert)',
      host: async (read) => {
        const out = outBuf();
        if (residual) out.set(read(node.inputs[3]!));
        else out.fill(0);
        await table.groupedAxpys(read(node.inputs[0]!), read(node.inputs[2]!), out, T, block);
        return [out];
      },
    };
  return {
    label: 'expert_out (wasm-simd)',
    host: async (read) => {
      const h = read(node.inputs[0]!), idx = read(node.inputs[2]!);
      const off = table.scratch(slots * 8 + T * d * 4), hPtr = off + slots * 4, yPtr = hPtr + slots * 4;
      table.rowOffsets(idx, table.u32(off, slots), 'expert_out');
      table.f32(hPtr, slots).set(h);
      const y = table.f32(yPtr, T * d);
      if (residual) y.set(read(node.inputs[3]!));
      else y.fill(0);
      await table.axpys(hPtr, off, yPtr, T, perToken);
      const out = outBuf();
      out.set(y);
      return [out];
    },
  };
}
