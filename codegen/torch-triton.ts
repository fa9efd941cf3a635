// `peerc export --torch --kernels triton`: the fused ops of the IR as Triton kernels inside the
// exported module. Each kernel is specialised for what the program's fused nodes say: a
// retrieval kernel per gate and an expert kernel per activation, with the gate's or the
// activation's Triton spelling (the unary op table's `triton` field) inlined, so a new
// activation is a new kernel without touching this file. The kernels are wrapped as custom ops
// (torch.library: opaque to torch.compile and FSDP2) with their backward registered; the
// backward of the expert tables is a reverse-index segment sum (ids sorted once, one program per
// touched row, no atomics) returning sparse row gradients, which train.py's lazy optimizer
// takes as they are. Where Triton cannot run (not installed, or CPU tensors without
// TRITON_INTERPRET=1), each op warns once and runs the eager PyTorch ops.
import { createHash } from 'node:crypto';
import type { IRModule } from '../src/ir/graph.js';
import { liveNodes } from '../src/ir/graph.js';
import { entryFunction } from '../src/interp/interpreter.js';
import { attrsOf } from '../src/ir/ops/types.js';
import { expert_act, product_retrieve } from '../src/ir/ops/fused.js';
import { ACTIVATIONS } from '../src/ir/ops/unary.js';

/** The ops with a Triton lowering; every other op of the module runs as the eager export writes it. */
export const TRITON_OPS = ['product_retrieve', 'expert_act', 'expert_out'] as const;

/** What the program's live fused nodes need: the gates and activations to specialise for. */
export interface TritonUse {
  gates: string[];
  acts: string[];
  /** Live ops that read expert tables or select experts without a Triton kernel (eager; said in the export's notes). */
  eager: string[];
}

export function tritonUse(m: IRModule): TritonUse {
  const fn = entryFunction(m);
  const live = liveNodes(fn);
  const gates = new Set<string>(), acts = new Set<string>(), eager = new Set<string>();
  for (const n of fn.graph.nodes) {
    if (!live.has(n.id)) continue;
    if (n.op === 'product_retrieve') gates.add(attrsOf(product_retrieve, n).gate);
    else if (n.op === 'expert_act') acts.add(attrsOf(expert_act, n).act);
    else if (n.op === 'topk' || n.op === 'gather') eager.add(n.op);
  }
  return { gates: [...gates].sort(), acts: [...acts].sort(), eager: [...eager].sort() };
}

const pyName = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_');

function activationFns(names: readonly string[]): string {
  return names.map((name) => {
    if (name === 'none') return `@triton.jit\ndef _act_none(v):\n    return v\n\n\n@triton.jit\ndef _dact_none(v):\n    return v * 0.0 + 1.0\n`;
    const a = ACTIVATIONS.find((x) => x.name === name);
    if (!a?.triton) throw new Error(`activation '${name}' has no Triton spelling in the unary op table`);
    return `@triton.jit\ndef _act_${pyName(name)}(v):\n    return ${a.triton.f('v')}\n\n\n@triton.jit\ndef _dact_${pyName(name)}(v):\n    return ${a.triton.df('v')}\n`;
  }).join('\n\n');
}

function gateEpilogue(gate: string): { fwd: string; bwd: string } {
  if (gate === 'softmax')
    return {
      fwd: `    z = tl.exp(best - tl.max(best, 0))\n    w = z / tl.sum(z, 0)`,
      bwd: `    y = tl.load(w_ptr + lane * K + ko, mask=mk, other=0.0)\n    ds = y * (g - tl.sum(g * y, 0))`,
    };
  return {
    fwd: `    w = _act_${pyName(gate)}(best)`,
    bwd: `    x = tl.load(best_ptr + lane * K + ko, mask=mk, other=0.0)\n    ds = g * _dact_${pyName(gate)}(x)`,
  };
}

function retrieveKernels(gate: string): string {
  const g = gateEpilogue(gate), name = pyName(gate);
  return `@triton.jit
def _retrieve_fwd_${name}(s1_ptr, s2_ptr, w_ptr, ids_ptr, best_ptr, n, K: tl.constexpr, SUBK: tl.constexpr, NP: tl.constexpr, SKP: tl.constexpr, KP: tl.constexpr):
    """One lane (token, head): the SUBK best sub-keys per side (ties to the lower index), the
    SUBK^2 candidate sums, their K best, the gate; all in registers."""
    lane = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, NP)
    r1 = tl.load(s1_ptr + lane * n + offs, mask=offs < n, other=float("-inf"))
    r2 = tl.load(s2_ptr + lane * n + offs, mask=offs < n, other=float("-inf"))
    slot = tl.arange(0, SKP)
    va = tl.full([SKP], float("-inf"), r1.dtype)
    vb = tl.full([SKP], float("-inf"), r1.dtype)
    ia = tl.zeros([SKP], tl.int64)
    ib = tl.zeros([SKP], tl.int64)
    for j in tl.static_range(SUBK):
        m1 = tl.max(r1, 0)
        i1 = tl.min(tl.where(r1 == m1, offs, NP), 0)
        va = tl.where(slot == j, m1, va)
        ia = tl.where(slot == j, i1, ia)
        r1 = tl.where(offs == i1, float("-inf"), r1)
        m2 = tl.max(r2, 0)
        i2 = tl.min(tl.where(r2 == m2, offs, NP), 0)
        vb = tl.where(slot == j, m2, vb)
        ib = tl.where(slot == j, i2, ib)
        r2 = tl.where(offs == i2, float("-inf"), r2)
    cand = tl.reshape(va[:, None] + vb[None, :], [SKP * SKP])
    cid = tl.reshape(ia[:, None] * n + ib[None, :], [SKP * SKP])
    cpos = tl.reshape(slot[:, None] * SKP + slot[None, :], [SKP * SKP])
    ko = tl.arange(0, KP)
    best = tl.full([KP], float("-inf"), r1.dtype)
    ids = tl.zeros([KP], tl.int64)
    for j in tl.static_range(K):
        m = tl.max(cand, 0)
        p = tl.min(tl.where(cand == m, cpos, SKP * SKP), 0)
        e = tl.sum(tl.where(cpos == p, cid, 0), 0)
        best = tl.where(ko == j, m, best)
        ids = tl.where(ko == j, e, ids)
        cand = tl.where(cpos == p, float("-inf"), cand)
${g.fwd}
    mk = ko < K
    tl.store(w_ptr + lane * K + ko, w, mask=mk)
    tl.store(ids_ptr + lane * K + ko, ids, mask=mk)
    tl.store(best_ptr + lane * K + ko, best, mask=mk)


@triton.jit
def _retrieve_bwd_${name}(dw_ptr, w_ptr, best_ptr, ids_ptr, ds1_ptr, ds2_ptr, n, K: tl.constexpr, KP: tl.constexpr):
    """The gate's backward, then each selected score's gradient to its two sub-keys: slots that
    share a sub-key are summed in registers, so every store of a lane holds the whole sum."""
    lane = tl.program_id(0).to(tl.int64)
    ko = tl.arange(0, KP)
    mk = ko < K
    g = tl.load(dw_ptr + lane * K + ko, mask=mk, other=0.0)
${g.bwd}
    ds = tl.where(mk, ds, 0.0)
    e = tl.load(ids_ptr + lane * K + ko, mask=mk, other=0)
    a = e // n
    b = e % n
    ta = tl.sum(tl.where(a[:, None] == a[None, :], ds[None, :], 0.0), 1)
    tb = tl.sum(tl.where(b[:, None] == b[None, :], ds[None, :], 0.0), 1)
    tl.store(ds1_ptr + lane * n + a, ta, mask=mk)
    tl.store(ds2_ptr + lane * n + b, tb, mask=mk)
`;
}

function expertKernels(act: string): string {
  const name = pyName(act);
  return `@triton.jit
def _gather_dots_${name}(x_ptr, rows_ptr, idx_ptr, w_ptr, out_ptr, dots_ptr, S, d, HAS_W: tl.constexpr, BS: tl.constexpr, BD: tl.constexpr):
    """BS slots of token t: the rows they select dotted with x[t] (rows read once, straight from
    the table), then w * ${act}(dot)."""
    t = tl.program_id(0).to(tl.int64)
    so = tl.program_id(1) * BS + tl.arange(0, BS)
    ms = so < S
    e = tl.load(idx_ptr + t * S + so, mask=ms, other=0).to(tl.int64)
    acc = tl.zeros([BS], dtype=x_ptr.dtype.element_ty)
    for d0 in range(0, d, BD):
        do = d0 + tl.arange(0, BD)
        md = do < d
        xv = tl.load(x_ptr + t * d + do, mask=md, other=0.0)
        r = tl.load(rows_ptr + e[:, None] * d + do[None, :], mask=ms[:, None] & md[None, :], other=0.0)
        acc += tl.sum(r * xv[None, :], 1)
    tl.store(dots_ptr + t * S + so, acc, mask=ms)
    if HAS_W:
        wv = tl.load(w_ptr + t * S + so, mask=ms, other=0.0)
        tl.store(out_ptr + t * S + so, wv * _act_${name}(acc), mask=ms)


@triton.jit
def _act_bwd_${name}(dy_ptr, w_ptr, dots_ptr, coef_ptr, dw_ptr, size, BLOCK: tl.constexpr):
    """coef = dy * w * ${act}'(dot) (what the rows and x receive), dw = dy * ${act}(dot)."""
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mo = o < size
    dy = tl.load(dy_ptr + o, mask=mo, other=0.0)
    wv = tl.load(w_ptr + o, mask=mo, other=0.0)
    v = tl.load(dots_ptr + o, mask=mo, other=0.0)
    tl.store(coef_ptr + o, dy * wv * _dact_${name}(v), mask=mo)
    tl.store(dw_ptr + o, dy * _act_${name}(v), mask=mo)
`;
}

const SHARED_KERNELS = `@triton.jit
def _tanh(v):
    return 2.0 * tl.sigmoid(2.0 * v) - 1.0


@triton.jit
def _gather_axpy(h_ptr, rows_ptr, idx_ptr, out_ptr, S, d, BS: tl.constexpr, BD: tl.constexpr):
    """out[t] = sum over t's slots of h * rows[idx]: BS rows at a time, BD columns per program."""
    t = tl.program_id(0).to(tl.int64)
    do = tl.program_id(1) * BD + tl.arange(0, BD)
    md = do < d
    acc = tl.zeros([BD], dtype=h_ptr.dtype.element_ty)
    for s0 in range(0, S, BS):
        so = s0 + tl.arange(0, BS)
        ms = so < S
        e = tl.load(idx_ptr + t * S + so, mask=ms, other=0).to(tl.int64)
        hv = tl.load(h_ptr + t * S + so, mask=ms, other=0.0)
        r = tl.load(rows_ptr + e[:, None] * d + do[None, :], mask=ms[:, None] & md[None, :], other=0.0)
        acc += tl.sum(hv[:, None] * r, 0)
    tl.store(out_ptr + t * d + do, acc, mask=md)


@triton.jit
def _rows_grad(order_ptr, starts_ptr, coef_ptr, vec_ptr, out_ptr, S, d, BO: tl.constexpr, BD: tl.constexpr):
    """The reverse index: one program per touched row u (and BD columns) sums coef * vec[token]
    over the slots that selected it, in sorted order: deterministic, no atomics."""
    u = tl.program_id(0).to(tl.int64)
    do = tl.program_id(1) * BD + tl.arange(0, BD)
    md = do < d
    lo = tl.load(starts_ptr + u)
    hi = tl.load(starts_ptr + u + 1)
    acc = tl.zeros([BD], dtype=vec_ptr.dtype.element_ty)
    for o0 in range(lo, hi, BO):
        oo = o0 + tl.arange(0, BO)
        mo = oo < hi
        p = tl.load(order_ptr + oo, mask=mo, other=0)
        c = tl.load(coef_ptr + p, mask=mo, other=0.0)
        r = tl.load(vec_ptr + (p // S)[:, None] * d + do[None, :], mask=mo[:, None] & md[None, :], other=0.0)
        acc += tl.sum(c[:, None] * r, 0)
    tl.store(out_ptr + u * d + do, acc, mask=md)


@triton.jit
def _adam_rows(w_ptr, m_ptr, v_ptr, rows_ptr, g_ptr, width, scale, beta1, beta2, step_size, eps_hat, keep, BD: tl.constexpr):
    """Lazy Adam on the touched rows only, in place (train.py's update, row by row)."""
    u = tl.program_id(0).to(tl.int64)
    do = tl.program_id(1) * BD + tl.arange(0, BD)
    md = do < width
    r = tl.load(rows_ptr + u).to(tl.int64)
    g = tl.load(g_ptr + u * width + do, mask=md, other=0.0) * scale
    at = r * width + do
    mv = beta1 * tl.load(m_ptr + at, mask=md, other=0.0) + (1.0 - beta1) * g
    vv = beta2 * tl.load(v_ptr + at, mask=md, other=0.0) + (1.0 - beta2) * g * g
    tl.store(m_ptr + at, mv, mask=md)
    tl.store(v_ptr + at, vv, mask=md)
    wv = tl.load(w_ptr + at, mask=md, other=0.0)
    tl.store(w_ptr + at, wv * keep - step_size * mv / (tl.sqrt(vv) + eps_hat), mask=md)
`;

const indent = (text: string) => text.split('\n').map((l) => (l ? `    ${l}` : l)).join('\n');

/** The Triton section's imports, at the top of the module. */
export const TRITON_IMPORTS = `import os
import warnings

try:
    import triton
    import triton.language as tl

    _TRITON_MISSING = None
except ImportError as _e:  # the eager ops run instead, with a warning
    triton = None
    _TRITON_MISSING = f"Triton is not installed ({_e})"
`;

/**
 * The Python of the Triton section, appended to the eager module after its helpers: kernels
 * (under `if triton is not None`), custom ops, and the dispatchers that replace the eager
 * _product_retrieve, _expert_act and _expert_out.
 */
export function tritonSection(use: TritonUse): string {
  const acts = [...new Set(['none', ...use.acts, ...use.gates.filter((g) => g !== 'softmax')])].sort();
  const kernels = [SHARED_KERNELS, activationFns(acts), ...use.gates.map(retrieveKernels), ...acts.map(expertKernels)].join('\n\n');
  const ns = `peerc_${createHash('sha256').update(kernels).digest('hex').slice(0, 12)}`;
  const table = (prefix: string, names: readonly string[]) => `{${names.map((n) => `"${n}": ${prefix}${pyName(n)}`).join(', ')}}`;
  return `
# ---- Triton kernels for the fused ops (peerc export --kernels triton) ----
# (op, reason) pairs already warned about: each fallback is said once.
_FALLBACKS = set()

if triton is not None:
${indent(kernels)}

    _RETRIEVE_FWD = ${table('_retrieve_fwd_', use.gates)}
    _RETRIEVE_BWD = ${table('_retrieve_bwd_', use.gates)}
    _GATHER_DOTS = ${table('_gather_dots_', acts)}
    _ACT_BWD = ${table('_act_bwd_', acts)}


def triton_unavailable(t):
    """Why the Triton kernels cannot run on tensor t (None when they can)."""
    if triton is None:
        return _TRITON_MISSING
    if t.is_cuda or os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return f"the tensors are on {t.device} (Triton runs on a GPU, or on the CPU under TRITON_INTERPRET=1)"


def _fell_back(op, why):
    if (op, why) not in _FALLBACKS:
        _FALLBACKS.add((op, why))
        warnings.warn(f"peerc: {op} runs as eager PyTorch ops, not as its Triton kernel: {why}", stacklevel=3)


def _pow2(v):
    return triton.next_power_of_2(max(1, int(v)))


def _block_d(d):
    return min(128, _pow2(d))


@torch.library.custom_op("${ns}::retrieve", mutates_args=())
def _retrieve_op(s1: torch.Tensor, s2: torch.Tensor, k: int, subk: int, gate: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = s1.shape[-1]
    a, b = s1.contiguous().reshape(-1, n), s2.contiguous().reshape(-1, n)
    lanes = a.shape[0]
    w = a.new_empty((lanes, k))
    ids = torch.empty((lanes, k), dtype=torch.int64, device=a.device)
    best = a.new_empty((lanes, k))
    if lanes:
        _RETRIEVE_FWD[gate][(lanes,)](a, b, w, ids, best, n, K=k, SUBK=subk, NP=_pow2(n), SKP=_pow2(subk), KP=_pow2(k))
    shape = tuple(s1.shape[:-1]) + (k,)
    return w.reshape(shape), ids.reshape(shape), best.reshape(shape)


@_retrieve_op.register_fake
def _(s1, s2, k, subk, gate):
    shape = tuple(s1.shape[:-1]) + (k,)
    return s1.new_empty(shape), s1.new_empty(shape, dtype=torch.int64), s1.new_empty(shape)


@torch.library.custom_op("${ns}::retrieve_backward", mutates_args=())
def _retrieve_backward_op(dw: torch.Tensor, w: torch.Tensor, best: torch.Tensor, ids: torch.Tensor, n: int, gate: str) -> tuple[torch.Tensor, torch.Tensor]:
    k = w.shape[-1]
    lanes = w.numel() // k
    shape = tuple(w.shape[:-1]) + (n,)
    ds1 = w.new_zeros(shape)
    ds2 = w.new_zeros(shape)
    if lanes:
        _RETRIEVE_BWD[gate][(lanes,)](dw.contiguous(), w.contiguous(), best.contiguous(), ids.contiguous(), ds1, ds2, n, K=k, KP=_pow2(k))
    return ds1, ds2


@_retrieve_backward_op.register_fake
def _(dw, w, best, ids, n, gate):
    shape = tuple(w.shape[:-1]) + (n,)
    return w.new_empty(shape), w.new_empty(shape)


def _retrieve_setup(ctx, inputs, output):
    w, ids, best = output
    ctx.save_for_backward(w, ids, best)
    ctx.n, ctx.gate = inputs[0].shape[-1], inputs[4]


def _retrieve_grad(ctx, dw, _dids, _dbest):
    w, ids, best = ctx.saved_tensors
    ds1, ds2 = _retrieve_backward_op(dw, w, best, ids, ctx.n, ctx.gate)
    return ds1, ds2, None, None, None


_retrieve_op.register_autograd(_retrieve_grad, setup_context=_retrieve_setup)


@torch.library.custom_op("${ns}::gather_dots", mutates_args=())
def _gather_dots_op(x: torch.Tensor, rows: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, act: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(w * act(rows[idx] . x[t]), the dots), idx and w [T, S]; no [T, S, d] tensor."""
    t, s = idx.shape
    d = x.shape[-1]
    out, dots = x.new_empty((t, s)), x.new_empty((t, s))
    if t and s:
        bs = min(16, _pow2(s))
        _GATHER_DOTS[act][(t, triton.cdiv(s, bs))](x.contiguous(), rows.contiguous(), idx.contiguous(), w.contiguous(), out, dots, s, d, HAS_W=True, BS=bs, BD=_block_d(d))
    return out, dots


@_gather_dots_op.register_fake
def _(x, rows, idx, w, act):
    return x.new_empty(idx.shape), x.new_empty(idx.shape)


@torch.library.custom_op("${ns}::gather_axpy", mutates_args=())
def _gather_axpy_op(h: torch.Tensor, rows: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """sum over each token's slots of h * rows[idx], idx and h [T, S]: embedding_bag's sum."""
    t, s = idx.shape
    d = rows.shape[-1]
    out = rows.new_empty((t, d))
    if t and s:
        bd = _block_d(d)
        _gather_axpy[(t, triton.cdiv(d, bd))](h.contiguous(), rows.contiguous(), idx.contiguous(), out, s, d, BS=min(16, _pow2(s)), BD=bd)
    elif t:
        out.zero_()
    return out


@_gather_axpy_op.register_fake
def _(h, rows, idx):
    return rows.new_empty((idx.shape[0], rows.shape[-1]))


@torch.library.custom_op("${ns}::rows_grad", mutates_args=())
def _rows_grad_op(idx: torch.Tensor, coef: torch.Tensor, vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The touched rows (sorted, unique) and, for each, the sum of coef * vec[token] over the
    slots that selected it. idx and coef [T, S], vec [T, d]."""
    t, s = idx.shape
    d = vec.shape[-1]
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    uniq, counts = torch.unique_consecutive(flat[order], return_counts=True)
    starts = torch.zeros(uniq.numel() + 1, dtype=torch.int64, device=idx.device)
    torch.cumsum(counts, 0, out=starts[1:])
    grads = vec.new_empty((uniq.numel(), d))
    if uniq.numel():
        bd = _block_d(d)
        _rows_grad[(uniq.numel(), triton.cdiv(d, bd))](order, starts, coef.contiguous().reshape(-1), vec.contiguous(), grads, s, d, BO=16, BD=bd)
    return uniq, grads


@_rows_grad_op.register_fake
def _(idx, coef, vec):
    u = torch.library.get_ctx().new_dynamic_size()
    return idx.new_empty((u,)), vec.new_empty((u, vec.shape[-1]))


def _table_grad(table, uniq, grads, sparse):
    """A table's gradient from its touched rows: a sparse COO tensor where the table is a
    parameter itself (train.py's lazy optimizer reads the rows); dense where it is a view of one
    (the view's backward, a reshape, takes no sparse tensor) and under torch.compile (which
    cannot trace the sparse constructor; the lazy optimizer then finds the nonzero rows)."""
    if sparse and not torch.compiler.is_compiling():
        return torch.sparse_coo_tensor(uniq.unsqueeze(0), grads, table.shape, is_coalesced=True, check_invariants=False)
    return grads.new_zeros(table.shape).index_copy_(0, uniq, grads)


@torch.library.custom_op("${ns}::act_backward", mutates_args=())
def _act_backward_op(dy: torch.Tensor, w: torch.Tensor, dots: torch.Tensor, act: str) -> tuple[torch.Tensor, torch.Tensor]:
    coef, dw = torch.empty_like(dots), torch.empty_like(dots)
    size = dots.numel()
    if size:
        _ACT_BWD[act][(triton.cdiv(size, 1024),)](dy.contiguous(), w.contiguous(), dots, coef, dw, size, BLOCK=1024)
    return coef, dw


@_act_backward_op.register_fake
def _(dy, w, dots, act):
    return torch.empty_like(dots), torch.empty_like(dots)


class _ExpertAct(torch.autograd.Function):
    """w * act(U[idx] . x) with its backward: dx through the rows, the table's sparse row
    gradient through the reverse index, dw from the saved dots."""

    @staticmethod
    def forward(ctx, x, table, idx, w, act, sparse):
        ctx.sparse = sparse
        out, dots = _gather_dots_op(x, table, idx, w, act)
        ctx.save_for_backward(x, table, idx, w, dots)
        ctx.act = act
        return out

    @staticmethod
    def backward(ctx, dy):
        x, table, idx, w, dots = ctx.saved_tensors
        coef, dw = _act_backward_op(dy, w, dots, ctx.act)
        dx = _gather_axpy_op(coef, table, idx) if ctx.needs_input_grad[0] else None
        dtable = None
        if ctx.needs_input_grad[1]:
            uniq, grads = _rows_grad_op(idx, coef, x)
            dtable = _table_grad(table, uniq, grads, ctx.sparse)
        return dx, dtable, None, dw, None, None


class _ExpertOut(torch.autograd.Function):
    """sum over slots of h * V[idx], with dh = dout . V[idx] and V's sparse row gradient."""

    @staticmethod
    def forward(ctx, h, table, idx, sparse):
        ctx.sparse = sparse
        ctx.save_for_backward(h, table, idx)
        return _gather_axpy_op(h, table, idx)

    @staticmethod
    def backward(ctx, dout):
        h, table, idx = ctx.saved_tensors
        dh = None
        if ctx.needs_input_grad[0]:
            dh, _ = _gather_dots_op(dout, table, idx, torch.ones_like(h), "none")
        dtable = None
        if ctx.needs_input_grad[1]:
            uniq, grads = _rows_grad_op(idx, h, dout.contiguous())
            dtable = _table_grad(table, uniq, grads, ctx.sparse)
        return dh, dtable, None, None


_eager_product_retrieve, _eager_expert_act, _eager_expert_out = _product_retrieve, _expert_act, _expert_out


def _product_retrieve(s1, s2, k, subk, gate):
    why = triton_unavailable(s1)
    if why:
        _fell_back("product_retrieve", why)
        return _eager_product_retrieve(s1, s2, k, subk, gate)
    w, ids, _best = _retrieve_op(s1, s2, k, subk, gate)
    return w, ids


def _expert_act(x, U, idx, w, act):
    why = triton_unavailable(x)
    if why:
        _fell_back("expert_act", why)
        return _eager_expert_act(x, U, idx, w, act)
    t = x.shape[0]
    return _ExpertAct.apply(x, U, idx.reshape(t, -1), w.reshape(t, -1), act, U.is_leaf).reshape(idx.shape)


def _expert_out(h, V, idx, residual=None):
    why = triton_unavailable(h)
    if why:
        _fell_back("expert_out", why)
        return _eager_expert_out(h, V, idx, residual)
    t = h.shape[0]
    out = _ExpertOut.apply(h.reshape(t, -1), V, idx.reshape(t, -1), V.is_leaf)
    return out if residual is None else out + residual


def adam_rows_(w, m, v, rows, grads, scale, beta1, beta2, step_size, eps_hat, keep):
    """train.py's lazy Adam on the touched rows, in place, as one kernel (rows sorted, unique)."""
    width = grads[0].numel() if grads.shape[0] else 1
    if rows.numel():
        bd = _block_d(width)
        _adam_rows[(rows.numel(), triton.cdiv(width, bd))](w, m, v, rows.contiguous(), grads.contiguous(), width, float(scale), float(beta1), float(beta2), float(step_size), float(eps_hat), float(keep), BD=bd)
`;
}
