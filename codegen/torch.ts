// `peerc export --torch`: the entry's forward as a self-contained Python module built from the
// fused IR: one nn.Module whose parameters and buffers carry peerc's names and shapes, and
// load_peerc(path) reading peerc safetensors weights or a checkpoint. Each IR op is one torch
// expression (TORCH_OPS); the fused ops are written the way fast PyTorch code does it:
// retrieval as top-k over sub-keys and only the candidates that can win, expert outputs as
// embedding_bag with per-sample weights (no [T, h, k, d] tensor). It computes in the dtype of
// the weights it was given: float64 weights give a float64 model.
import type { IRModule, Node, ValueRef } from '../src/ir/graph.js';
import { liveNodes } from '../src/ir/graph.js';
import { entryFunction } from '../src/interp/interpreter.js';
import type { Dim } from '../src/shapes/dim.js';
import { CompileError, diagnostic } from '../src/diagnostics/diagnostic.js';
import { runPasses, TORCH_EXPORT } from '../src/passes/pipeline.js';
import { ACTIVATIONS, UNARY_OPS } from '../src/ir/ops/unary.js';
import { TRITON_IMPORTS, TRITON_OPS, tritonSection, tritonUse } from './torch-triton.js';

/**
 * The IR the export is generated from: the pipeline and the fusions, except the projection's
 * BatchNorm epilogue (evaluation-only), so the module also trains with batch statistics.
 */
export function torchModule(m: IRModule): IRModule {
  return runPasses(m, TORCH_EXPORT);
}

/** A Python expression for one op, from its inputs' expressions (`x[i]`) and the node. */
type TorchOp = (x: string[], n: Node, c: EmitContext) => string;

interface EmitContext {
  dim(d: Dim): string;
  dims(ds: readonly Dim[]): string;
}

const UNARY: Record<string, (a: string) => string> = {
  ...Object.fromEntries(UNARY_OPS.map((u) => [u.name, u.torch])),
};

const COMPARE: Record<string, string> = { greater: '>', greater_equal: '>=', less: '<', less_equal: '<=', equal: '==' };

/** The torch form of every forward op (backward-only ops such as scatter_rows have none: PEER0900). */
export const TORCH_OPS: Record<string, TorchOp> = {
  einsum: (x, n) => `torch.einsum(${JSON.stringify(n.attrs.spec)}, ${x.join(', ')})`,
  add: ([a, b]) => `(${a} + ${b})`,
  sub: ([a, b]) => `(${a} - ${b})`,
  mul: ([a, b]) => `(${a} * ${b})`,
  div: ([a, b]) => `(${a} / ${b})`,
  pow: ([a, b]) => `torch.pow(${a}, ${b})`,
  maximum: ([a, b]) => `torch.maximum(${a}, ${b})`,
  minimum: ([a, b]) => `torch.minimum(${a}, ${b})`,
  floordiv: ([a, b]) => `torch.div(${a}, ${b}, rounding_mode="floor")`,
  mod: ([a, b]) => `torch.remainder(${a}, ${b})`,
  ...Object.fromEntries(Object.entries(UNARY).map(([k, f]) => [k, ([a]: string[]) => f(a!)])),
  ...Object.fromEntries(Object.entries(COMPARE).map(([k, op]) => [k, ([a, b]: string[]) => `(${a} ${op} ${b}).to(dt)`])),
  to_f32: ([a]) => `${a}.to(dt)`,
  select: ([c, a, b]) => `torch.where(${c} != 0, ${a}, ${b})`,
  reduce_sum: ([a], n) => `${a}.sum(dim=${n.attrs.axis})`,
  reduce_mean: ([a], n) => `${a}.mean(dim=${n.attrs.axis})`,
  reduce_max: ([a], n) => `${a}.amax(dim=${n.attrs.axis})`,
  reduce_min: ([a], n) => `${a}.amin(dim=${n.attrs.axis})`,
  softmax: ([a], n) => `torch.softmax(${a}, dim=${n.attrs.axis})`,
  log_softmax: ([a], n) => `torch.log_softmax(${a}, dim=${n.attrs.axis})`,
  layernorm: ([a, g, b], n) => `F.layer_norm(${a}, (${a}.shape[-1],), ${g}, ${b}, ${n.attrs.eps})`,
  rmsnorm: ([a, g], n) => `(${a} * torch.rsqrt(${a}.pow(2).mean(-1, keepdim=True) + ${n.attrs.eps}) * ${g})`,
  batchnorm: ([a, g, b, m, v], n) => `_batchnorm(${a}, ${g}, ${b}, ${m}, ${v}, ${n.attrs.eps}, ${n.attrs.momentum}, self.training)`,
  gather: ([t, i]) => `_gather(${t}, ${i})`,
  take_along: ([a, i]) => `torch.gather(${a}, -1, ${i})`,
  topk: ([a], n) => `torch.topk(${a}, ${n.attrs.k}, dim=-1)`,
  reshape: ([a], n, c) => `${a}.reshape(${c.dims(n.attrs.shape as Dim[])})`,
  expand_dims: ([a], n) => `${a}.unsqueeze(${n.attrs.axis})`,
  slice: ([a], n) => `${a}.narrow(${n.attrs.axis}, ${n.attrs.start}, ${(n.attrs.end as number) - (n.attrs.start as number)})`,
  broadcast_to: ([a], n, c) => `torch.broadcast_to(${a}, ${c.dims(n.attrs.shape as Dim[])})`,
  pad: ([a], n, c) => `_pad(${a}, ${n.attrs.axis}, ${n.attrs.start}, ${c.dim((n.attrs.size as Dim[])[0]!)})`,
  concat: (x, n) => `torch.cat([${x.join(', ')}], dim=${n.attrs.axis})`,
  cumsum: ([a], n) => (n.attrs.reverse ? `torch.flip(torch.cumsum(torch.flip(${a}, [${n.attrs.axis}]), ${n.attrs.axis}), [${n.attrs.axis}])` : `torch.cumsum(${a}, ${n.attrs.axis})`),
  iota: (_x, n, c) => `torch.arange(${c.dim((n.attrs.n as Dim[])[0]!)}, device=dev)`,
  causal_mask: (_x, n, c) => `_causal_mask(${c.dim((n.attrs.n as Dim[])[0]!)}, dt, dev)`,
  dim_size: (_x, n, c) => `torch.tensor(${c.dim((n.attrs.n as Dim[])[0]!)}, dtype=dt, device=dev)`,
  // Noise only in training mode, drawn from torch's generator (not peerc's counter-based draws).
  dropout: ([a], n) => `F.dropout(${a}, ${n.attrs.p}, self.training)`,
  gumbel: ([a], n) => `_gumbel(${a}, ${n.attrs.scale}, self.training)`,
  aux_loss: ([x, l], n) => `_aux_loss(self, ${x}, ${l}, ${n.attrs.weight})`,
  metric: ([x, v], n) => `_metric(self, ${x}, ${v}, ${JSON.stringify(n.attrs.name)})`,
  product_retrieve: ([s1, s2], n) => `_product_retrieve(${s1}, ${s2}, ${n.attrs.k}, ${n.attrs.subk}, ${JSON.stringify(n.attrs.gate)})`,
  product_extend: ([v, i, s3], n) => `_product_extend(${v}, ${i}, ${s3}, ${n.attrs.k}, ${n.attrs.subk}, ${JSON.stringify(n.attrs.gate)})`,
  expert_act: ([x, u, i, w], n) => `_expert_act(${x}, ${u}, ${i}, ${w}, ${JSON.stringify(n.attrs.act)})`,
  expert_out: ([h, v, i, r]) => `_expert_out(${h}, ${v}, ${i}${r ? `, ${r}` : ''})`,
  einsum_bn: ([a, b, g, beta, m, v], n, c) => `((torch.einsum(${JSON.stringify(n.attrs.spec)}, ${a}, ${b}).reshape(${c.dims(n.attrs.shape as Dim[])}) - ${m}) / torch.sqrt(${v} + ${n.attrs.eps}) * ${g} + ${beta})`,
};

const HELPERS = `
def _pad(x, axis, start, size):
    shape = list(x.shape)
    shape[axis] = size
    out = x.new_zeros(shape)
    out.narrow(axis, start, x.shape[axis]).copy_(x)
    return out


def _batchnorm(x, gamma, beta, running_mean, running_var, eps, momentum, training):
    """BatchNorm over every axis but the last; in training mode batch statistics (biased variance)
    and running statistics updated with the unbiased one, as peerc does."""
    c = x.shape[-1]
    return F.batch_norm(x.reshape(-1, c), running_mean, running_var, gamma, beta, training, momentum, eps).reshape(x.shape)


def _gumbel(x, scale, training):
    if not training:
        return x
    u = torch.rand_like(x).clamp_(1e-20, 1.0)
    return x - scale * torch.log(-torch.log(u))


def _gather(table, idx):
    return F.embedding(idx, table) if table.dim() == 2 else table[idx]


def _causal_mask(n, dtype, device):
    return torch.triu(torch.full((n, n), -1e9, dtype=dtype, device=device), diagonal=1)


def _gate(scores, gate):
    if gate == "softmax":
        return torch.softmax(scores, dim=-1)
    return _ACTIVATIONS[gate](scores)


def _aux_loss(module, x, loss, weight):
    """x itself; weight * loss joins module.aux_loss, which peerc's training objective adds."""
    module.aux_loss = module.aux_loss + weight * loss
    return x


def _metric(module, x, value, name):
    """x itself; value joins module.metrics[name] (a list: calls that share a name are averaged)."""
    module.metrics.setdefault(name, []).append(value.detach())
    return x


def _product_retrieve(s1, s2, k, subk, gate):
    """Product-key retrieval: the subk best sub-keys per side, the subk^2 candidate sums, their
    top k, the gate, and the expert ids a * n + b (n sub-keys per side)."""
    n = s1.shape[-1]
    v1, a = torch.topk(s1, subk, dim=-1)
    v2, b = torch.topk(s2, subk, dim=-1)
    cand = (v1.unsqueeze(-1) + v2.unsqueeze(-2)).flatten(-2)
    best, c = torch.topk(cand, k, dim=-1)
    ids = torch.gather(a, -1, torch.div(c, subk, rounding_mode="floor")) * n + torch.gather(b, -1, c % subk)
    return _gate(best, gate), ids


def _product_extend(v, ids, s3, k, subk, gate):
    """One more product-key factor (arity-3 keys): the subk best sub-keys of s3, the k1 * subk
    candidate sums v[i] + s3[c], their top k, the gate, the expert ids ids[i] * n + c, and each
    selection's candidate position."""
    n = s3.shape[-1]
    v3, c = torch.topk(s3, subk, dim=-1)
    cand = (v.unsqueeze(-1) + v3.unsqueeze(-2)).flatten(-2)
    best, pos = torch.topk(cand, k, dim=-1)
    out = torch.gather(ids, -1, torch.div(pos, subk, rounding_mode="floor")) * n + torch.gather(c, -1, pos % subk)
    return _gate(best, gate), out, pos


_ACTIVATIONS = {
    "none": lambda v: v,
${ACTIVATIONS.map((a) => `    "${a.name}": lambda v: ${a.torch('v')},`).join('\n')}
}


def _expert_act(x, U, idx, w, act):
    """w * act(U[idx] . x[t]) for every slot of every token (U read as rows of x's width)."""
    t = x.shape[0]
    rows = U.reshape(-1, x.shape[-1])
    dots = torch.bmm(F.embedding(idx.reshape(t, -1), rows), x.unsqueeze(-1)).squeeze(-1)
    return w * _ACTIVATIONS[act](dots.reshape(idx.shape))


def _expert_out(h, V, idx, residual=None):
    """sum over a token's slots of h * V[idx], as embedding_bag: no [T, slots, d] tensor."""
    t = h.shape[0]
    out = F.embedding_bag(idx.reshape(t, -1), V, per_sample_weights=h.reshape(t, -1), mode="sum")
    return out if residual is None else out + residual
`;

/** The class name of an entry: its name in CamelCase. */
export function torchClassName(entry: string): string {
  return entry.split(/_+/).filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join('') || 'Model';
}

const PY_RESERVED = new Set('False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield'.split(' '));

export interface TorchExport {
  fileName: string;
  text: string;
  /** What the user should know about the kernels: which ops got Triton kernels, which stay eager and why. */
  notes: string[];
}

/** How the fused ops run: the eager PyTorch ops, or Triton kernels generated for this program. */
export type TorchKernels = 'eager' | 'triton';

/**
 * The Python module for an inlined, fused module's entry. `source` names the .peer file in
 * the header. Throws PEER0900 at the first op without a torch form.
 */
export function emitTorch(m: IRModule, source: string, version: string, opts: { kernels?: TorchKernels } = {}): TorchExport {
  const kernels = opts.kernels ?? 'eager';
  const fn = entryFunction(m);
  const live = liveNodes(fn);
  const name = (r: ValueRef, results: number) => (results > 1 ? `v${r.node}_${r.result}` : `v${r.node}`);
  const ident = (s: string) => (PY_RESERVED.has(s) ? `${s}_` : s);
  const symbols = new Map<string, string>();
  const dimExpr = (d: Dim): string => {
    const parts = d.terms_.map(([mono, coef]) => {
      const factors = mono ? mono.split('*').map((s) => symbols.get(s) ?? `dim_${s}`) : [];
      return [...(coef !== 1 || factors.length === 0 ? [String(coef)] : []), ...factors].join(' * ');
    });
    return parts.length ? parts.join(' + ') : '0';
  };
  const ctx: EmitContext = { dim: dimExpr, dims: (ds) => `(${ds.map(dimExpr).join(', ')}${ds.length === 1 ? ',' : ''})` };

  const inputs = fn.inputs.map((id) => fn.graph.node(id));
  const argNames = inputs.map((n) => ident(n.attrs.name as string));
  const lines: string[] = [];
  // Symbolic dims are bound from the inputs' shapes (the first axis that is exactly that symbol).
  inputs.forEach((n, i) => {
    (n.attrs.shape as Dim[]).forEach((d, axis) => {
      const t = d.terms_;
      if (t.length === 1 && t[0]![1] === 1 && t[0]![0] && !t[0]![0].includes('*') && !symbols.has(t[0]![0])) {
        symbols.set(t[0]![0], `dim_${t[0]![0]}`);
        lines.push(`dim_${t[0]![0]} = ${argNames[i]}.shape[${axis}]`);
      }
    });
    if (n.attrs.dtype === 'index') lines.push(`${argNames[i]} = ${argNames[i]}.long()`);
  });
  const expr = new Map<string, string>();
  inputs.forEach((n, i) => expr.set(`${n.id}:0`, argNames[i]!));
  const refExpr = (r: ValueRef) => expr.get(`${r.node}:${r.result}`)!;
  for (const node of fn.graph.nodes) {
    if (!live.has(node.id) || node.op === 'input') continue;
    if (node.op === 'param') {
      const pname = node.attrs.name as string;
      expr.set(`${node.id}:0`, PY_RESERVED.has(pname) ? `getattr(self, ${JSON.stringify(pname)})` : `self.${pname}`);
      continue;
    }
    if (node.op === 'const') {
      const v = node.attrs.value as number;
      const lit = Number.isFinite(v) ? (node.attrs.dtype === 'index' ? String(Math.round(v)) : `${v}`) : v > 0 ? 'float("inf")' : v < 0 ? 'float("-inf")' : 'float("nan")';
      expr.set(`${node.id}:0`, node.attrs.dtype === 'index' ? `torch.tensor(${lit}, device=dev)` : `torch.tensor(${lit}, dtype=dt, device=dev)`);
      continue;
    }
    const op = TORCH_OPS[node.op];
    if (!op) throw new CompileError(diagnostic('PEER0900', node.span ?? null, { op: node.op, target: 'PyTorch' }));
    const results = node.types.length;
    const e = op(node.inputs.map(refExpr), node, ctx);
    if (results === 1) {
      lines.push(`v${node.id} = ${e}`);
      expr.set(`${node.id}:0`, `v${node.id}`);
    } else {
      const names = node.types.map((_, i) => name({ node: node.id, result: i }, results));
      lines.push(`${names.join(', ')} = ${e}`);
      names.forEach((n, i) => expr.set(`${node.id}:${i}`, n));
    }
  }
  const outs = fn.outputs.map(refExpr);
  lines.push(`return ${outs.length === 1 ? outs[0] : `(${outs.join(', ')})`}`);
  // aux_loss terms of this call, summed as they are computed (train.py adds them to the loss).
  if (fn.graph.nodes.some((n) => live.has(n.id) && n.op === 'aux_loss')) lines.unshift('self.aux_loss = 0.0');
  if (fn.graph.nodes.some((n) => live.has(n.id) && n.op === 'metric')) lines.unshift('self.metrics = {}');

  const cls = torchClassName(m.entry ?? fn.name);
  const notes: string[] = [];
  let triton = '';
  if (kernels === 'triton') {
    const use = tritonUse(m);
    const fused = fn.graph.nodes.filter((n) => live.has(n.id) && (TRITON_OPS as readonly string[]).includes(n.op)).map((n) => n.op);
    triton = tritonSection(use);
    notes.push(fused.length
      ? `Triton kernels for ${[...new Set(fused)].join(', ')}${use.gates.length ? ` (gate ${use.gates.join(', ')})` : ''}${use.acts.length ? ` (activation ${use.acts.join(', ')})` : ''}, with their backward; every other op is eager PyTorch`
      : 'no fused retrieval or expert op in this program: --kernels triton changes nothing, every op is eager PyTorch');
    for (const op of use.eager) notes.push(`'${op}' runs eager (torch.${op === 'gather' ? 'embedding' : 'topk'}): only the fused retrieval and expert ops have Triton kernels`);
    if (fn.graph.nodes.some((n) => live.has(n.id) && n.op === 'product_extend'))
      notes.push("'product_extend' (a further product-key factor: arity-3 keys) runs eager (torch.topk on its k1 x subk candidates): it has no Triton kernel yet");
  }
  const firstParam = m.params.find((p) => p.dtype === 'f32');
  const floatInput = inputs.find((n) => n.attrs.dtype === 'f32');
  const dtypeLine = firstParam ? `self.${firstParam.name}.dtype` : floatInput ? `${ident(floatInput.attrs.name as string)}.dtype` : 'torch.get_default_dtype()';
  const devLine = firstParam ? `self.${firstParam.name}.device` : inputs.length ? `${argNames[0]}.device` : 'None';
  const spec = (shape: readonly (Dim | number)[]) => `[${shape.map((d) => (typeof d === 'number' ? String(d) : JSON.stringify(d.toString()))).join(', ')}]`;
  const text = `# Generated by peerc ${version} from ${source} (entry @${m.entry ?? fn.name}). Do not edit: re-export with
#   peerc export ${source} --torch -o DIR
"""${cls}: the forward of @${m.entry ?? fn.name} in PyTorch, with peerc's parameter names and shapes.

    model = load_peerc("weights.safetensors")   # peerc init/train weights or a checkpoint
    ${fn.outputs.length === 1 ? 'y' : 'outputs'} = model(${argNames.map((a) => `${a}=...`).join(', ')})
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
${triton ? TRITON_IMPORTS : ''}
ENTRY = ${JSON.stringify(m.entry ?? fn.name)}
# how the fused ops run: "eager" PyTorch ops, or "triton" kernels generated for this program
KERNELS = ${JSON.stringify(kernels)}
# (name, dtype, shape); symbolic sizes as strings
INPUTS = [${inputs.map((n) => `(${JSON.stringify(n.attrs.name)}, ${JSON.stringify(n.attrs.dtype)}, ${spec(n.attrs.shape as Dim[])})`).join(', ')}]
# (name, role, shape): role "param" is trained, "buffer" is state (BatchNorm running statistics),
# "index" an integer buffer (fixed ids, int64)
PARAMS = [
${m.params.map((p) => `    (${JSON.stringify(p.name)}, ${JSON.stringify(p.dtype === 'index' ? 'index' : p.role)}, ${spec(p.shape)}),`).join('\n')}
]
${HELPERS}${triton}

class ${cls}(nn.Module):
    def __init__(self, dtype=torch.float32, device=None):
        super().__init__()
        for name, role, shape in PARAMS:
            t = torch.zeros(shape, dtype=torch.long if role == "index" else dtype, device=device)
            if role == "param":
                self.register_parameter(name, nn.Parameter(t))
            else:
                self.register_buffer(name, t)

    def forward(self, ${argNames.join(', ')}):
${/\bdt\b/.test(lines.join('\n')) ? `        dt = ${dtypeLine}\n` : ''}${/\bdev\b/.test(lines.join('\n')) ? `        dev = ${devLine}\n` : ''}${lines.map((l) => `        ${l}`).join('\n')}


def load_peerc(path, dtype=None, device=None):
    """The model loaded from peerc safetensors weights (peerc init, --weights) or a peerc train
    checkpoint (its param.* tensors), in the file's dtype unless dtype is given; in eval mode."""
    from safetensors import safe_open

    tensors = {}
    with safe_open(path, framework="pt", device="cpu") as f:
        keys = list(f.keys())
        checkpoint = any(k.startswith("param.") for k in keys)
        for name, _role, _shape in PARAMS:
            key = "param." + name if checkpoint else name
            if key not in keys:
                raise KeyError(f"{path} has no tensor '{key}' for parameter {name}")
            tensors[name] = f.get_tensor(key)
    first = next((tensors[name] for name, role, _shape in PARAMS if role != "index"), None)
    model = ${cls}(dtype=dtype or (first.dtype if first is not None else torch.float32), device=device)
    with torch.no_grad():
        for name, _role, shape in PARAMS:
            t = tensors[name]
            if list(t.shape) != [int(s) for s in shape]:
                raise ValueError(f"{path}: {name} has shape {list(t.shape)}, the program declares {shape}")
            getattr(model, name).copy_(t)
    return model.eval()
`;
  return { fileName: `${m.entry ?? fn.name}.py`, text, notes };
}
