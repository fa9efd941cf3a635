// The IR verifier: checks every invariant a pass may rely on. Run after every pass in tests.
import { typeKey, type IRFunction, type IRModule } from './graph.js';
import { OPS } from './ops/registry.js';

export function verifyModule(m: IRModule): string[] {
  const problems: string[] = [];
  const byName = new Map([...m.functions.values()].map((f) => [f.name, f]));
  if (m.entry && !byName.has(m.entry)) problems.push(`entry @${m.entry} is not a function of the module`);
  for (const f of m.functions.values()) problems.push(...verifyFunction(f, byName, new Set(m.params.map((p) => p.name))).map((p) => `@${f.name}: ${p}`));
  return problems;
}

function verifyFunction(f: IRFunction, fns: Map<string, IRFunction>, params: Set<string>): string[] {
  const out: string[] = [];
  const g = f.graph;
  for (const n of g.nodes) {
    const where = `%${n.id} = ${n.op}`;
    const def = OPS.get(n.op);
    if (!def) {
      out.push(`${where}: unknown op`);
      continue;
    }
    for (const r of n.inputs)
      if (r.node >= n.id || r.result >= (g.nodes[r.node]?.types.length ?? 0)) out.push(`${where}: input %${r.node}#${r.result} is not an earlier value`);
    const variadic = def.inputs[def.inputs.length - 1]?.endsWith('...');
    if (!variadic && n.inputs.length !== def.inputs.length) out.push(`${where}: ${n.inputs.length} inputs, op takes ${def.inputs.length}`);
    for (const k of Object.keys(n.attrs)) if (!(k in def.attrs)) out.push(`${where}: unknown attribute ${k}`);
    for (const k of Object.keys(def.attrs)) if (!(k in n.attrs)) out.push(`${where}: missing attribute ${k}`);
    if (out.length) continue;
    const ins = n.inputs.map((r) => g.typeOf(r));
    let expected: string[];
    try {
      if (n.op === 'call') {
        const callee = fns.get(n.attrs.callee as string);
        if (!callee) {
          out.push(`${where}: calls unknown function @${n.attrs.callee as string}`);
          continue;
        }
        const params = callee.inputs.map((id) => typeKey(callee.graph.node(id).types[0]!));
        if (params.join('|') !== ins.map(typeKey).join('|')) out.push(`${where}: argument types ${ins.map(typeKey)} do not match @${callee.name}(${params})`);
        expected = callee.outputs.map((o) => typeKey(callee.graph.typeOf(o)));
      } else expected = def.infer(ins, n.attrs).map(typeKey);
    } catch (e) {
      out.push(`${where}: ill-typed: ${(e as Error).message}`);
      continue;
    }
    // An input may know more than its attributes say: the index bound of the caller's argument.
    const actual = n.types.map((t) => typeKey(n.op === 'input' ? { dtype: t.dtype, shape: t.shape } : t));
    if (expected.join('|') !== actual.join('|')) out.push(`${where}: stored types ${actual} differ from inferred ${expected}`);
    if (n.op === 'param' && !params.has(n.attrs.name as string)) out.push(`${where}: unknown parameter ${n.attrs.name as string}`);
  }
  for (const id of f.inputs) if (g.nodes[id]?.op !== 'input') out.push(`input %${id} is not an input node`);
  for (const o of f.outputs) if (!g.nodes[o.node] || o.result >= g.nodes[o.node]!.types.length) out.push(`output %${o.node}#${o.result} does not exist`);
  return out;
}
