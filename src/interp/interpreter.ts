// The float64 reference interpreter: the definition of what a program means. It evaluates
// an IR module (before or after any pass) on weights and inputs.
import { CompileError, diagnostic, fail } from '../diagnostics/diagnostic.js';
import { liveNodes, stackSlice, typeKey, type IRFunction, type IRModule, type Node, type ValueRef } from '../ir/graph.js';
import { opDef } from '../ir/ops/registry.js';
import type { EvalContext } from '../ir/ops/types.js';
import { Dim, shapeToString } from '../shapes/dim.js';
import { Tensor } from './tensor.js';
import { checkFiniteOutputs, firstNonFinite } from './input-checks.js';

export interface RunOptions {
  training?: boolean;
  /** Seed and step of training-time noise (dropout, Gumbel); default seed 0, step 0. */
  noise?: { seed: number; step: number };
  /** Sees every node's values as they are computed (for tools and tests). */
  trace?: (node: Node, fn: IRFunction, values: Tensor[]) => void;
}

export interface RunResult {
  outputs: Tensor[];
  /** New running statistics for buffers (only when training). */
  bufferUpdates: Map<string, Tensor>;
  /** Values of the entry's symbolic dims, bound from the inputs. */
  dims: Map<string, number>;
}

export function entryFunction(m: IRModule): IRFunction {
  if (!m.entry) fail('PEER0209', null, { detail: "the program has no model; declare one with 'model name(x: [T, d]) -> ... { ... }' or pass --entry" });
  return [...m.functions.values()].find((f) => f.name === m.entry)!;
}

/** Binds the entry's symbolic dims from the actual input shapes, checking every input. */
export function bindInputDims(fn: IRFunction, inputs: ReadonlyMap<string, Tensor>): Map<string, number> {
  const dims = new Map<string, number>();
  const where = new Map<string, string>();
  for (const id of fn.inputs) {
    const n = fn.graph.node(id);
    const name = n.attrs.name as string;
    const type = n.types[0]!;
    const t = inputs.get(name);
    if (!t) fail('PEER0601', null, { file: 'the inputs', name, kind: `input ${typeKey(type)}` });
    if (t.shape.length !== type.shape.length)
      fail('PEER0602', null, { name, expected: `rank ${type.shape.length} ${shapeToString(type.shape)}`, found: `shape [${t.shape.join(', ')}]` });
    type.shape.forEach((d, i) => {
      const syms = d.symbols;
      if (syms.length === 1 && d.equals(Dim.sym(syms[0]!))) {
        const prev = dims.get(syms[0]!);
        if (prev !== undefined && prev !== t.shape[i])
          fail('PEER0604', null, { dim: syms[0]!, first: prev, second: t.shape[i]!, where: `input '${name}' (axis ${i})` }, [`first bound by ${where.get(syms[0]!)}`]);
        dims.set(syms[0]!, t.shape[i]!);
        where.set(syms[0]!, `input '${name}'`);
      }
    });
  }
  for (const id of fn.inputs) {
    const n = fn.graph.node(id);
    const name = n.attrs.name as string;
    const type = n.types[0]!;
    const t = inputs.get(name)!;
    const expected = type.shape.map((d) => d.evaluate((s) => dims.get(s)));
    if (expected.some((e, i) => e !== t.shape[i]))
      fail('PEER0602', null, { name, expected: `${shapeToString(type.shape)} = [${expected.join(', ')}]`, found: `[${t.shape.join(', ')}]` });
    if (expected.some((e) => e === 0)) fail('PEER0602', null, { name, expected: 'no empty axis', found: `[${t.shape.join(', ')}]` });
    if (type.dtype === 'index' && t.data.some((v) => !Number.isInteger(v)))
      fail('PEER0602', null, { name, expected: 'whole numbers (an index tensor)', found: 'fractional values' });
    const bad = type.dtype === 'f32' ? firstNonFinite(t.data, t.shape) : undefined;
    if (bad) fail('PEER0605', null, { what: `input '${name}'`, detail: bad });
  }
  return dims;
}

export function checkWeights(m: IRModule, weights: ReadonlyMap<string, Tensor>, providedElsewhere: readonly string[] = []): void {
  for (const p of m.params) {
    if (providedElsewhere.includes(p.name)) continue;
    const w = weights.get(p.name);
    if (!w) fail('PEER0601', null, { file: 'the weights', name: p.name, kind: `${p.role} ${p.dtype}[${p.shape.join(', ')}]` });
    if (w.shape.length !== p.shape.length || w.shape.some((d, i) => d !== p.shape[i]))
      fail('PEER0602', null, { name: p.name, expected: `[${p.shape.join(', ')}]`, found: `[${w.shape.join(', ')}]` });
  }
}

export function interpret(m: IRModule, inputs: ReadonlyMap<string, Tensor>, weights: ReadonlyMap<string, Tensor>, options: RunOptions = {}): RunResult {
  const fn = entryFunction(m);
  checkWeights(m, weights);
  const dims = bindInputDims(fn, inputs);
  const byName = new Map([...m.functions.values()].map((f) => [f.name, f]));
  const bufferUpdates = new Map<string, Tensor>();
  const dimValue = (d: Dim) => {
    const v = d.evaluate((s) => dims.get(s));
    if (v === undefined) throw new Error(`unbound dim ${d}`);
    return v;
  };
  // argParams: for each argument of f, the parameter it is (through any calls), so batchnorm
  // knows which buffers to update even inside a called layer.
  const run = (f: IRFunction, args: Tensor[], argParams: (string | undefined)[]): Tensor[] => {
    // The parameter behind a value: itself, a layer argument, or one slice `name[i]` of a stacked one.
    const paramOf = (r: ValueRef): string | undefined => {
      const src = f.graph.node(r.node);
      if (src.op === 'param') return src.attrs.name as string;
      if (src.op === 'input') return argParams[f.inputs.indexOf(src.id)];
      const at = stackSlice(f.graph, r);
      const base = at && paramOf(at.stack);
      if (at && base && !base.endsWith(']')) return `${base}[${at.index}]`;
      return undefined;
    };
    const values = new Map<number, Tensor[]>();
    f.inputs.forEach((id, i) => values.set(id, [args[i]!]));
    const live = liveNodes(f);
    for (const node of f.graph.nodes) {
      if (!live.has(node.id) || node.op === 'input') continue;
      const ins = node.inputs.map((r) => values.get(r.node)![r.result]!);
      const result = evalNode(node, ins);
      options.trace?.(node, f, result);
      values.set(node.id, result);
    }
    return f.outputs.map((o) => values.get(o.node)![o.result]!);

    function evalNode(node: Node, ins: Tensor[]): Tensor[] {
      if (node.op === 'param') return [weights.get(node.attrs.name as string)!];
      if (node.op === 'call') return run(byName.get(node.attrs.callee as string)!, ins, node.inputs.map(paramOf));
      const ctx: EvalContext = {
        training: options.training ?? false,
        noise: options.noise,
        dimValue,
        updateBuffer: (name, value) => {
          // A slice of a stacked buffer (bn_mean[i]) updates that slice of the whole buffer.
          const at = /^(.*)\[(\d+)\]$/.exec(name);
          if (!at) return void bufferUpdates.set(name, value);
          const whole = bufferUpdates.get(at[1]!) ?? weights.get(at[1]!)!;
          const data = Float64Array.from({ length: whole.size }, (_, j) => whole.element(j));
          data.set(value.data, Number(at[2]) * value.size);
          bufferUpdates.set(at[1]!, new Tensor('f32', whole.shape, data));
        },
        inputParamNames: node.inputs.map(paramOf),
      };
      try {
        return opDef(node.op).evaluate!(ins, node.attrs, ctx);
      } catch (e) {
        if (e instanceof CompileError && !e.diagnostic.span && node.span) throw new CompileError({ ...e.diagnostic, span: node.span });
        throw e;
      }
    }
  };
  const outputs = run(fn, fn.inputs.map((id) => inputs.get(fn.graph.node(id).attrs.name as string)!), []);
  checkFiniteOutputs(outputs, (i) => outputs[i]!.dtype === 'f32');
  return { outputs, bufferUpdates, dims };
}
