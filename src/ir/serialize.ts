// IR modules as JSON, so a compiled program can carry its (optimised) IR into generated code.
import { Dim } from '../shapes/dim.js';
import { Graph, type IRFunction, type IRModule, type ParamInfo, type TrainValue, type ValueRef } from './graph.js';
import type { AttrValue, TensorType } from './ops/types.js';

type DimJSON = [string, number][];
type TypeJSON = { dtype: 'f32' | 'index'; shape: DimJSON[]; bound?: DimJSON };
/**
 * A node's call site (graph.ts's Node.site), and a call node's own place (`at`, which inlining
 * makes its nodes' site), as line and column: usage is reported per call site.
 */
type SiteJSON = [number, number];
type AttrJSON = number | string | boolean | { dims: DimJSON[] };

export interface ModuleJSON {
  entry: string;
  params: ParamInfo[];
  train: [string, TrainValue][];
  functions: { name: string; symbols: string[]; inputs: number[]; outputs: ValueRef[]; nodes: { op: string; inputs: ValueRef[]; attrs: Record<string, AttrJSON>; types: TypeJSON[]; site?: SiteJSON; at?: SiteJSON }[] }[];
}

const typeToJSON = (t: TensorType): TypeJSON => ({ dtype: t.dtype, shape: t.shape.map((d) => d.terms_), ...(t.bound ? { bound: t.bound.terms_ } : {}) });
const typeFromJSON = (t: TypeJSON): TensorType => ({ dtype: t.dtype, shape: t.shape.map(Dim.fromTerms), ...(t.bound ? { bound: Dim.fromTerms(t.bound) } : {}) });
const attrToJSON = (a: AttrValue): AttrJSON => (Array.isArray(a) ? { dims: a.map((d: Dim) => d.terms_) } : (a as number | string | boolean));
const attrFromJSON = (a: AttrJSON): AttrValue => (typeof a === 'object' ? a.dims.map(Dim.fromTerms) : a);

export function moduleToJSON(m: IRModule): ModuleJSON {
  return {
    entry: m.entry,
    params: m.params.map(({ span: _span, ...p }) => p),
    train: [...m.train],
    functions: [...m.functions.values()].map((f) => ({
      name: f.name,
      symbols: [...f.symbols],
      inputs: [...f.inputs],
      outputs: [...f.outputs],
      nodes: f.graph.nodes.map((n) => ({
        op: n.op,
        inputs: [...n.inputs],
        attrs: Object.fromEntries(Object.entries(n.attrs).map(([k, v]) => [k, attrToJSON(v)])),
        types: n.types.map(typeToJSON),
        ...(n.site ? { site: [n.site.line, n.site.col] as SiteJSON } : {}),
        ...(n.op === 'call' && n.span ? { at: [n.span.line, n.span.col] as SiteJSON } : {}),
      })),
    })),
  };
}

export function moduleFromJSON(j: ModuleJSON): IRModule {
  const functions = new Map<string, IRFunction>();
  for (const f of j.functions) {
    const g = new Graph();
    const span = (s: SiteJSON | undefined) => s && { file: j.entry, offset: 0, line: s[0], col: s[1], length: 1 };
    const ids = f.nodes.map((n) => g.add(n.op, n.inputs, Object.fromEntries(Object.entries(n.attrs).map(([k, v]) => [k, attrFromJSON(v)])), span(n.at), n.types.map(typeFromJSON), span(n.site)));
    // Hash-consing may merge nothing here (the module was built that way), so ids line up.
    if (ids.some((id, i) => id !== i)) throw new Error('serialised IR is not in canonical form');
    functions.set(f.name, { name: f.name, graph: g.freeze(), inputs: f.inputs, outputs: f.outputs, symbols: f.symbols });
  }
  return { entry: j.entry, params: j.params, train: new Map(j.train), functions };
}
