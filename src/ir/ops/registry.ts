// The op registry: every IR op, declared once.
import * as elementwise from './elementwise.js';
import { einsum } from './einsum.js';
import * as indexing from './indexing.js';
import * as fused from './fused.js';
import * as leaves from './leaves.js';
import * as reductions from './reductions.js';
import * as scatter from './scatter.js';
import * as select from './select.js';
import * as noise from './noise.js';
import { aux_loss } from './aux-loss.js';
import { metric } from './metric.js';
import { elementwise_fused, setElementwiseLookup } from './elementwise-fused.js';
import type { OpDef } from './types.js';

const all: OpDef[] = [
  ...opsIn(elementwise),
  ...elementwise.UNARY_OP_DEFS,
  einsum,
  ...opsIn(indexing),
  ...opsIn(reductions),
  ...opsIn(leaves),
  ...opsIn(fused),
  ...opsIn(scatter),
  ...opsIn(select),
  ...opsIn(noise),
  elementwise_fused,
  aux_loss,
  metric,
];

function isOp(x: unknown): x is OpDef {
  return typeof x === 'object' && x !== null && 'infer' in x && 'name' in x;
}

/** The op declarations a module exports. */
function opsIn(module: object): OpDef[] {
  return (Object.values(module) as unknown[]).filter(isOp);
}

export const OPS: ReadonlyMap<string, OpDef> = new Map(all.map((o) => [o.name, o]));

setElementwiseLookup((name) => opDef(name));

export function opDef(name: string): OpDef {
  const d = OPS.get(name);
  if (!d) throw new Error(`unknown IR op '${name}'`);
  return d;
}
