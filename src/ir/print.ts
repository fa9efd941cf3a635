// Text form of the IR, for --dump-after and golden tests.
import { attrKey, liveNodes, typeKey, type IRFunction, type IRModule, type ValueRef } from './graph.js';

const v = (r: ValueRef) => (r.result === 0 ? `%${r.node}` : `%${r.node}#${r.result}`);

export function printFunction(f: IRFunction): string {
  const lines: string[] = [];
  const args = f.inputs.map((id) => {
    const n = f.graph.node(id);
    return `%${id}: ${typeKey(n.types[0]!)}`;
  });
  const sym = f.symbols.length ? `<${f.symbols.join(', ')}>` : '';
  lines.push(`func @${f.name}${sym}(${args.join(', ')}) {`);
  const live = liveNodes(f);
  for (const n of f.graph.nodes) {
    if (!live.has(n.id) || n.op === 'input') continue;
    const attrs = Object.entries(n.attrs).map(([k, a]) => `${k}=${attrKey(a)}`);
    const ins = n.inputs.map(v).join(', ');
    const types = n.types.map(typeKey).join(', ');
    lines.push(`  %${n.id} = ${n.op}(${ins})${attrs.length ? ` {${attrs.join(', ')}}` : ''} : ${types}`);
  }
  lines.push(`  return ${f.outputs.map(v).join(', ')}`);
  lines.push('}');
  return lines.join('\n');
}

export function printModule(m: IRModule): string {
  const params = m.params.map(
    (p) => `${p.role} ${p.name}: ${p.dtype}[${p.shape.join(', ')}]${p.sparse ? ' @sparse' : ''}${p.lrMultiplier !== 1 || p.lrDecay ? ` @lr(${p.lrMultiplier}${p.lrDecay ? `, to=${p.lrDecay.to}, over=${p.lrDecay.over}` : ''})` : ''}`,
  );
  const fns = [...m.functions.values()].map(printFunction);
  return [...params, '', `entry @${m.entry}`, '', fns.join('\n\n'), ''].join('\n');
}
