import type { IRModule } from '../ir/graph.js';
import { emitInto, rebuildFunction, type RewriteRule } from './rebuild.js';

export const inlineCall: RewriteRule = {
  name: 'inline-call',
  doc: 'call(@f, args) -> the body of f on args (recursively); no calls remain',
  apply(node, inputs, g, module) {
    if (node.op !== 'call') return undefined;
    const callee = [...module.functions.values()].find((f) => f.name === node.attrs.callee);
    if (!callee) throw new Error(`call of unknown function @${node.attrs.callee as string}`);
    // The outermost call is the site: a layer's nodes inlined into the entry keep the entry's call.
    const outer = g.site;
    g.site = outer ?? node.span;
    try {
      return emitInto(callee, g, inputs, [inlineCall], module);
    } finally {
      g.site = outer;
    }
  },
};

/** Inlines every call into the entry function and drops the other functions. */
export function inlineModule(m: IRModule): IRModule {
  const entry = [...m.functions].find(([, f]) => f.name === m.entry);
  if (!entry) return m;
  return { ...m, functions: new Map([[entry[0], rebuildFunction(entry[1], [inlineCall], m)]]) };
}
