// Rebuilding a function node by node into a fresh hash-consed graph, with rewrite rules
// tried on every node. Every pass is a rebuild with some rules.
import { Graph, liveNodes, ref, type IRFunction, type IRModule, type Node, type ValueRef } from '../ir/graph.js';

export interface RewriteContext {
  module: IRModule;
  /** The graph being rewritten (patterns are matched here). */
  src: Graph;
  /** The new value of an old one (only for nodes already visited: inputs of the current node). */
  map(r: ValueRef): ValueRef;
  /** The nodes of src that use a node's results. */
  users(id: number): readonly Node[];
}

export interface RewriteRule {
  name: string;
  /** What the rule matches and what it guarantees. */
  doc: string;
  /** Valid in evaluation only (e.g. BatchNorm on running statistics): left out of pipelines whose module also trains. */
  evaluationOnly?: boolean;
  /** Returns the values that replace the node's results, or undefined to leave it alone. */
  apply(node: Node, inputs: readonly ValueRef[], g: Graph, module: IRModule, ctx: RewriteContext): readonly ValueRef[] | undefined;
}

/** Copies a node into g with new inputs (types re-inferred, except calls and leaves). */
export function copyNode(node: Node, inputs: readonly ValueRef[], g: Graph): ValueRef[] {
  const keepTypes = node.op === 'call' || node.op === 'input' || node.op === 'param';
  const id = g.add(node.op, inputs, node.attrs, node.span, keepTypes ? node.types : undefined, node.site ?? g.site);
  return node.types.map((_, r) => ref(id, r));
}

/** Builds the nodes of f into g, with the given values for f's inputs; returns f's outputs. */
/** The context rules match in: f's graph, its live users (built on first use), and `map`. */
export function rewriteContext(module: IRModule, f: IRFunction, map: (r: ValueRef) => ValueRef, live = liveNodes(f)): RewriteContext {
  let usersOf: Map<number, Node[]> | undefined;
  return {
    module,
    src: f.graph,
    map,
    users(id) {
      if (!usersOf) {
        usersOf = new Map();
        for (const n of f.graph.nodes) if (live.has(n.id)) for (const r of n.inputs) usersOf.set(r.node, [...(usersOf.get(r.node) ?? []), n]);
      }
      return usersOf.get(id) ?? [];
    },
  };
}

export function emitInto(f: IRFunction, g: Graph, args: readonly ValueRef[] | null, rules: readonly RewriteRule[], module: IRModule): ValueRef[] {
  const map = new Map<number, ValueRef[]>();
  if (args) f.inputs.forEach((id, i) => map.set(id, [args[i]!]));
  const live = liveNodes(f);
  const ctx = rewriteContext(module, f, (r) => map.get(r.node)![r.result]!, live);
  // Nodes a rule makes in place of a node keep that node's call site (an inlined call's, inside it).
  const outer = g.site;
  for (const node of f.graph.nodes) {
    if (map.has(node.id) || (!live.has(node.id) && node.op !== 'input')) continue;
    const inputs = node.inputs.map((r) => map.get(r.node)![r.result]!);
    g.site = node.site ?? outer;
    let out: readonly ValueRef[] | undefined;
    for (const rule of rules) if ((out = rule.apply(node, inputs, g, module, ctx))) break;
    map.set(node.id, [...(out ?? copyNode(node, inputs, g))]);
  }
  g.site = outer;
  return f.outputs.map((o) => map.get(o.node)![o.result]!);
}

export function rebuildFunction(f: IRFunction, rules: readonly RewriteRule[], module: IRModule): IRFunction {
  const g = new Graph();
  const outputs = emitInto(f, g, null, rules, module);
  const inputs = f.inputs.map((id) => g.nodes.findIndex((n) => n.op === 'input' && n.attrs.name === f.graph.node(id).attrs.name));
  return { ...f, graph: g.freeze(), inputs, outputs };
}

export function rebuildModule(m: IRModule, rules: readonly RewriteRule[]): IRModule {
  const functions = new Map([...m.functions].map(([k, f]) => [k, rebuildFunction(f, rules, m)]));
  return { ...m, functions };
}
