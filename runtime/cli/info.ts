// `peerc info`: what a program's weights and inputs must look like.
import type { IRModule } from '../../src/ir/graph.js';
import { typeKey } from '../../src/ir/graph.js';
import { entryFunction } from '../../src/interp/interpreter.js';
import { tokenCost } from '../../src/passes/cost.js';

export interface ModuleInfo {
  entry: { name: string; inputs: { name: string; dtype: string; shape: string[] }[]; outputs: { dtype: string; shape: string[] }[] } | null;
  parameters: {
    name: string; role: string; dtype: string; shape: number[]; count: number;
    init: unknown; lr_multiplier: number; lr_multiplier_decay?: { to: number; over: number }; sparse: boolean; weight_decay: boolean;
  }[];
  total_parameters: number;
  /** Per token of the entry (open dimensions at cost.openDim): trainable values read and einsum FLOPs. */
  cost: { active_parameters: number; forward_flops: number; open_dim: number } | null;
  train: Record<string, number | string>;
  text: string;
}

export function moduleInfo(m: IRModule): ModuleInfo {
  const parameters = m.params.map((p) => ({
    name: p.name, role: p.role, dtype: p.dtype, shape: [...p.shape], count: p.shape.reduce((a, b) => a * b, 1),
    init: p.init, lr_multiplier: p.lrMultiplier, ...(p.lrDecay ? { lr_multiplier_decay: p.lrDecay } : {}), sparse: p.sparse, weight_decay: p.weightDecay,
  }));
  const total = parameters.filter((p) => p.role === 'param').reduce((a, p) => a + p.count, 0);
  let entry: ModuleInfo['entry'] = null;
  if (m.entry) {
    const f = entryFunction(m);
    entry = {
      name: f.name,
      inputs: f.inputs.map((id) => {
        const n = f.graph.node(id);
        return { name: n.attrs.name as string, dtype: n.types[0]!.dtype, shape: n.types[0]!.shape.map(String) };
      }),
      outputs: f.outputs.map((o) => ({ dtype: f.graph.typeOf(o).dtype, shape: f.graph.typeOf(o).shape.map(String) })),
    };
  }
  const lines: string[] = [];
  if (entry) {
    const f = entryFunction(m);
    lines.push(`entry @${entry.name}(${f.inputs.map((id) => `${f.graph.node(id).attrs.name as string}: ${typeKey(f.graph.node(id).types[0]!)}`).join(', ')}) -> ${f.outputs.map((o) => typeKey(f.graph.typeOf(o))).join(', ')}`);
  } else lines.push('no model (use --entry LAYER to pick one)');
  lines.push('', 'parameters:');
  const w = Math.max(4, ...parameters.map((p) => p.name.length));
  for (const p of parameters) {
    const extras = [p.role === 'buffer' ? 'buffer' : '', p.sparse ? 'sparse' : '', lrText(p)].filter(Boolean);
    lines.push(`  ${p.name.padEnd(w)}  ${p.dtype}[${p.shape.join(', ')}]`.padEnd(w + 26) + `${p.count.toLocaleString('en-US').padStart(13)}${extras.length ? `  (${extras.join(', ')})` : ''}`);
  }
  lines.push(`  ${'total'.padEnd(w)}  ${''.padEnd(24)}${total.toLocaleString('en-US').padStart(13)} trainable values`);
  const c = m.entry ? tokenCost(m) : undefined;
  const cost = c ? { active_parameters: c.activeParams, forward_flops: c.flops, open_dim: c.openDim } : null;
  if (c) lines.push('', `per token: ${c.activeParams.toLocaleString('en-US')} active parameters (of ${c.params.toLocaleString('en-US')}), ${Math.round(c.flops).toLocaleString('en-US')} forward einsum FLOPs (open dimensions at ${c.openDim})`);
  if (m.train.size) lines.push('', `training defaults: ${[...m.train].map(([k, v]) => `${k} = ${v}`).join(', ')}`);
  return { entry, parameters, total_parameters: total, cost, train: Object.fromEntries(m.train), text: lines.join('\n') + '\n' };
}

/** `@lr(m)` and `@lr(m, to=t, over=S)` as info prints them. */
function lrText(p: { lr_multiplier: number; lr_multiplier_decay?: { to: number; over: number } }): string {
  if (p.lr_multiplier_decay) return `lr x${p.lr_multiplier} -> x${p.lr_multiplier_decay.to} over ${p.lr_multiplier_decay.over.toLocaleString('en-US')} steps`;
  return p.lr_multiplier !== 1 ? `lr x${p.lr_multiplier}` : '';
}
