// What --resume compares: the program's meaning, not its text. Both programs are lowered the same
// way and compared as IR (no source spans), so comments, spacing and renamed locals resume fine,
// while a change of a parameter, a training setting or the computation is named exactly.
import type { IRModule, ParamInfo } from '../../src/ir/graph.js';
import { moduleToJSON } from '../../src/ir/serialize.js';
import { optimize } from '../../src/passes/pipeline.js';

const shape = (p: ParamInfo) => `[${p.shape.join(', ')}]`;

/** What `now` changes in the checkpoint's program `saved`, or undefined when they compute the same. */
export function programDifference(saved: IRModule, now: IRModule): string | undefined {
  const diffs: string[] = [];
  const before = new Map(saved.params.map((p) => [p.name, p]));
  const after = new Map(now.params.map((p) => [p.name, p]));
  for (const [name, p] of before) {
    const q = after.get(name);
    if (!q) diffs.push(`${p.role} '${name}' ${shape(p)} is gone`);
    else if (shape(p) !== shape(q) || p.dtype !== q.dtype) diffs.push(`${p.role} '${name}' was ${p.dtype}${shape(p)}, now ${q.dtype}${shape(q)}`);
    else {
      const attrs = (x: ParamInfo) => JSON.stringify({ role: x.role, lr: x.lrMultiplier, decay: x.lrDecay ?? null, sparse: x.sparse, wd: x.weightDecay });
      if (attrs(p) !== attrs(q)) diffs.push(`the training attributes of '${name}' changed (${attrs(p)} -> ${attrs(q)})`);
    }
  }
  for (const [name, q] of after) if (!before.has(name)) diffs.push(`${q.role} '${name}' ${shape(q)} is new`);
  if (saved.entry !== now.entry) diffs.push(`the model is @${now.entry}, not @${saved.entry}`);
  if (diffs.length) return diffs.slice(0, 4).join('; ') + (diffs.length > 4 ? `; and ${diffs.length - 4} more` : '');
  const a = moduleToJSON(optimize(saved)), b = moduleToJSON(optimize(now));
  const train = (j: typeof a) => JSON.stringify(j.train);
  if (train(a) !== train(b)) return `its train { } block changed (${train(a)} -> ${train(b)})`;
  // Call sites (line, column) are where a layer is written, not what it computes: a comment
  // added above a call moves them, so they are left out of the comparison.
  const placeless = (j: typeof a) => j.functions.find((f) => f.name === j.entry)?.nodes.map(({ site: _s, at: _a, ...n }) => n) ?? [];
  const na = placeless(a), nb = placeless(b);
  if (JSON.stringify(na) === JSON.stringify(nb)) return undefined;
  const i = na.findIndex((n, k) => JSON.stringify(n) !== JSON.stringify(nb[k]));
  const at = i < 0 ? Math.min(na.length, nb.length) : i;
  const op = (n: (typeof na)[number] | undefined) => (n ? `'${n.op}'` : 'nothing');
  return `the computation differs (${na.length} IR ops in the checkpoint's program, ${nb.length} now; the first difference is op ${at}: ${op(na[at])} then, ${op(nb[at])} now)`;
}
