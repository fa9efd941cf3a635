# peerc's training loop for PyTorch: `peerc train` on one process or many, for the model that
# `peerc export FILE --torch -o DIR` writes beside this file. Not generated: the model's facts
# (parameters, settings, the program's source) come from DIR/train.json, written by the export.
"""Trains the exported model as `peerc train` does, on one process or many:

    torchrun --nproc-per-node 2 train.py --out runs/x [--steps N] [--lr LR] [--data FILE] ...
    torchrun --nproc-per-node 8 train.py --resume runs/laptop/checkpoint.safetensors --steps 10000

Replicated parameters are sharded by FSDP2 (fully_shard); the @sparse expert tables listed in
train.json's "row_sharded" are sharded by rows across ranks, outside FSDP, with sparse
gradients. Checkpoints (OUT/checkpoint.safetensors) are peerc checkpoints: peerc sample, peerc run
--weights and peerc train --resume read them. Gloo on CPUs, NCCL on GPUs.
"""
import argparse
import importlib
import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_PATH = os.environ.get("PEERC_TRAIN_CONFIG", os.path.join(HERE, "train.json"))
with open(CONFIG_PATH, encoding="utf-8") as config_file:
    CONFIG = json.load(config_file)
sys.path.insert(0, os.path.dirname(os.path.abspath(CONFIG_PATH)))
peer_module = importlib.import_module(CONFIG["module"])
MODEL_CLASS = getattr(peer_module, CONFIG["class"])

SOURCE = CONFIG["source"]
FILE = CONFIG["file"]
ENTRY = CONFIG["entry"]
SETTINGS = CONFIG["settings"]
PARAM_INFO = CONFIG["params"]
ROW_SHARDED = set(CONFIG["row_sharded"])
LOSS = CONFIG["loss"]
INPUT = CONFIG["input"]
RECALL = CONFIG["recall"]
PEERC_VERSION = CONFIG["version"]

# ---- peerc's counter-based random numbers (src/interp/init.ts), so weights and batches match ----
M32 = np.uint64(0xFFFFFFFF)


def _mix(x):
    x = x & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & M32
    x ^= x >> np.uint64(16)
    return x


def _mix_int(x):
    return int(_mix(np.array([x & 0xFFFFFFFF], dtype=np.uint64))[0])


def _hash_string(s):
    """FNV-1a over UTF-16 code units, then mixed (as JavaScript's charCodeAt sees the name)."""
    h = 0x811C9DC5
    for unit in np.frombuffer(s.encode("utf-16-le"), dtype=np.uint16):
        h = ((h ^ int(unit)) * 0x01000193) & 0xFFFFFFFF
    return _mix_int(h)


def _word(key, i, stream):
    lo = i & M32
    hi = i >> np.uint64(32)
    return _mix(np.uint64(key) ^ _mix(lo ^ _mix(hi + np.uint64(((stream + 1) * 0x9E3779B9) & 0xFFFFFFFF))))


def uniform_at(key, i, stream):
    i = np.asarray(i, dtype=np.uint64)
    a = (_word(key, i, 2 * stream) >> np.uint64(5)).astype(np.float64)
    b = (_word(key, i, 2 * stream + 1) >> np.uint64(6)).astype(np.float64)
    return (a * 67108864.0 + b + 0.5) / 9007199254740992.0


def param_key(seed, name):
    return _mix_int(_hash_string(name) ^ _mix_int(seed & 0xFFFFFFFF) ^ (seed // 4294967296))


def seeded(p, seed, start, stop):
    """Elements [start, stop) of a parameter's seeded initial value, as peerc init makes them."""
    init, key = p["init"], param_key(seed, p["name"])
    out = np.empty(stop - start, dtype=np.float32)
    for a in range(start, stop, 1 << 22):
        b = min(stop, a + (1 << 22))
        i = np.arange(a, b, dtype=np.uint64)
        if init["kind"] == "normal":
            v = init["mean"] + init["std"] * (np.sqrt(-2 * np.log(uniform_at(key, i, 0))) * np.cos(2 * np.pi * uniform_at(key, i, 1)))
        elif init["kind"] == "uniform":
            v = init["low"] + (init["high"] - init["low"]) * uniform_at(key, i, 0)
        else:
            v = np.full(b - a, init["value"])
        out[a - start:b - start] = v
    return torch.from_numpy(out)


# ---- data: peerc's datasets (runtime/train/data.ts), batches a pure function of (seed, step) ----
class Data:
    def __init__(self, s):
        self.s = s
        if s["task"] == "text":
            with open(s["data"], "rb") as f:
                self.bytes = np.frombuffer(f.read(), dtype=np.uint8)
            self.train_end = math.floor(len(self.bytes) * 0.9)

    def batch(self, split, step):
        s, b = self.s, self.s["batch"]
        if s["task"] == "recall":
            r = np.arange(step * b, step * b + b, dtype=np.uint64)
            keys = np.floor(uniform_at(s["seed"], r, 22) * RECALL["keys"]) if split == "train" else (r % np.uint64(RECALL["keys"])).astype(np.float64)
            values = np.floor(uniform_at(s["seed"], keys.astype(np.uint64), 21) * RECALL["classes"])
            return torch.from_numpy(keys.astype(np.int64)), torch.from_numpy(values.astype(np.int64))
        lo, hi = (0, self.train_end) if split == "train" else (self.train_end, len(self.bytes))
        q = s["seq"]
        r = np.arange(step * b, step * b + b, dtype=np.uint64)
        starts = lo + np.floor(uniform_at(s["seed"], r, 11 if split == "train" else 12) * (hi - lo - q - 1)).astype(np.int64)
        idx = starts[:, None] + np.arange(q)[None, :]
        return torch.from_numpy(self.bytes[idx].astype(np.int64)), torch.from_numpy(self.bytes[idx + 1].astype(np.int64))


# ---- row-sharded tables: every rank reads its own rows for all ranks' tokens ----
def _world():
    return dist.get_world_size() if dist.is_initialized() else 1


def _own_rows(ids, table):
    start, _total = table.peerc_rows
    local = ids - start
    mask = (local >= 0) & (local < table.shape[0])
    return local.clamp(0, table.shape[0] - 1), mask


class _GatherRanks(torch.autograd.Function):
    """Every rank's x concatenated on axis 0; the gradient of a rank's part sums every rank's."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, g):
        g = g.contiguous().clone()
        dist.all_reduce(g)
        r = dist.get_rank()
        return g[r * ctx.rows:(r + 1) * ctx.rows]


class _SumRanks(torch.autograd.Function):
    """The sum over ranks of x; its gradient is the sum of every rank's."""

    @staticmethod
    def forward(ctx, x):
        y = x.contiguous().clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, g):
        g = g.contiguous().clone()
        dist.all_reduce(g)
        return g


def _all(x):
    """x from every rank, concatenated on axis 0 (differentiable)."""
    return x if _world() == 1 else _GatherRanks.apply(x)


def _back(partial, rows):
    """The sum over ranks of partial results, this rank's rows of it (differentiable)."""
    if _world() == 1:
        return partial
    r = dist.get_rank()
    return _SumRanks.apply(partial)[r * rows:(r + 1) * rows]


_plain_gather, _plain_act, _plain_out = peer_module._gather, peer_module._expert_act, peer_module._expert_out


def _gather(table, idx):
    if not hasattr(table, "peerc_rows"):
        return _plain_gather(table, idx)
    rows = idx.shape[0]
    ids = _all(idx)
    local, mask = _own_rows(ids, table)
    part = F.embedding(local, table, sparse=True) * mask.unsqueeze(-1).to(table.dtype)
    return _back(part, rows)


def _expert_act(x, U, idx, w, act):
    if not hasattr(U, "peerc_rows"):
        return _plain_act(x, U, idx, w, act)
    t = x.shape[0]
    xs, ids = _all(x), _all(idx.reshape(t, -1))
    local, mask = _own_rows(ids, U)
    rows = F.embedding(local, U, sparse=True) * mask.unsqueeze(-1).to(U.dtype)
    dots = _back(torch.bmm(rows, xs.unsqueeze(-1)).squeeze(-1), t)
    return w * peer_module._ACTIVATIONS[act](dots.reshape(idx.shape))


def _expert_out(h, V, idx, residual=None):
    if not hasattr(V, "peerc_rows"):
        return _plain_out(h, V, idx, residual)
    t = h.shape[0]
    hs, ids = _all(h.reshape(t, -1)), _all(idx.reshape(t, -1))
    local, mask = _own_rows(ids, V)
    part = F.embedding_bag(local, V, per_sample_weights=hs * mask.to(hs.dtype), mode="sum", sparse=True)
    out = _back(part, t)
    return out if residual is None else out + residual


peer_module._gather, peer_module._expert_act, peer_module._expert_out = _gather, _expert_act, _expert_out

_plain_batchnorm = peer_module._batchnorm


def _batchnorm(x, gamma, beta, running_mean, running_var, eps, momentum, training):
    """BatchNorm over the global batch, as peerc computes it on one process: the statistics are
    summed over ranks (two passes: mean, then the biased variance), the running ones updated
    with the unbiased variance, identically on every rank."""
    if not training or _world() == 1:
        return _plain_batchnorm(x, gamma, beta, running_mean, running_var, eps, momentum, training)
    c = x.shape[-1]
    flat = x.reshape(-1, c)
    first = _SumRanks.apply(torch.cat([flat.sum(0), flat.new_tensor([float(flat.shape[0])])]))
    n = first[-1]
    mean = first[:c] / n
    var = _SumRanks.apply((flat - mean).pow(2).sum(0)) / n
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * n / (n - 1))
    return ((flat - mean) * torch.rsqrt(var + eps) * gamma + beta).reshape(x.shape)


peer_module._batchnorm = _batchnorm


# ---- peerc's optimizer (runtime/train/optim.ts) on local shards ----
def learning_rate(c, t):
    if c["warmup"] > 0 and t < c["warmup"]:
        return c["lr"] * (t + 1) / c["warmup"]
    if c["schedule"] == "constant":
        return c["lr"]
    span = max(1, c["steps"] - c["warmup"])
    progress = min(1.0, (t - c["warmup"]) / span)
    return c["lr"] * (c["minLrRatio"] + (1 - c["minLrRatio"]) * 0.5 * (1 + math.cos(math.pi * progress)))


def lr_multiplier(p, t):
    if not p["lrDecay"]:
        return p["lr"]
    f = min(1.0, t / p["lrDecay"]["over"])
    return p["lr"] + (p["lrDecay"]["to"] - p["lr"]) * f


def param_kind(info, c):
    return (info.get("optim") or {}).get("kind") or c["kind"]


def param_lr(info, c, t):
    """A parameter's learning rate at step t: @optim(lr=) is absolute (with the run's warmup and its
    own schedule), else the run's rate times its @lr multiplier (runtime/train/optim.ts)."""
    o = info.get("optim") or {}
    if o.get("lr") is not None:
        return learning_rate(dict(c, lr=o["lr"], schedule=o.get("schedule") or c["schedule"]), t)
    return learning_rate(dict(c, schedule=o["schedule"]) if o.get("schedule") else c, t) * lr_multiplier(info, t)


def local(t):
    return t.to_local() if hasattr(t, "to_local") else t


class PeercOptimizer:
    def __init__(self, model, config):
        self.c, self.t = config, 0
        # Lazy Adam on sparse row gradients as one Triton kernel, where the module has Triton kernels.
        self.fused_rows = getattr(peer_module, "adam_rows_", None)
        self.params = [(p, getattr(model, p["name"])) for p in PARAM_INFO if p["role"] == "param"]
        self.m, self.v = {}, {}
        for info, w in self.params:
            lw = local(w)
            kind = param_kind(info, config)
            if kind in ("adam", "adamw") or (kind == "sgd" and config["momentum"] > 0):
                self.m[info["name"]] = torch.zeros_like(lw)
            if kind != "sgd":
                self.v[info["name"]] = torch.zeros_like(lw)

    def grad_norm(self):
        sq = torch.zeros((), dtype=torch.float64)
        for _info, w in self.params:
            g = w.grad
            if g is None:
                continue
            g = local(g)
            sq += (g.coalesce().values() if g.is_sparse else g).double().pow(2).sum().cpu()
        if _world() > 1:
            dist.all_reduce(sq)  # FSDP shards and row shards are disjoint: the squares add up
        return float(sq.sqrt())

    @torch.no_grad()
    def step(self):
        c = self.c
        norm = self.grad_norm()
        scale = c["clip"] / norm if c["clip"] > 0 and norm > c["clip"] else 1.0
        lr = learning_rate(c, self.t)
        self.t += 1
        bc1, bc2 = 1 - c["beta1"] ** self.t, 1 - c["beta2"] ** self.t
        for info, w in self.params:
            if w.grad is None:
                continue
            kind = param_kind(info, c)
            optim = info.get("optim") or {}
            plr = param_lr(info, c, self.t - 1)
            if optim.get("weightDecay") is not None:
                decay = optim["weightDecay"]
            else:
                decay = c["weightDecay"] if info["decay"] and kind not in ("adam", "adagrad") else 0.0
            lw, g = local(w), local(w.grad)
            pscale = scale
            if optim.get("clip") is not None:
                # This parameter's own clip, on its globally clipped gradient (norm over every shard).
                sq = (g.coalesce().values() if g.is_sparse else g).double().pow(2).sum().cpu()
                if _world() > 1:
                    dist.all_reduce(sq)
                norm = float(sq.sqrt()) * scale
                if norm > optim["clip"]:
                    pscale = scale * optim["clip"] / norm
            if g.is_sparse:
                g = g.coalesce()
                rows, d = g.indices()[0], g.values()
            elif info["sparse"]:
                # A replicated @sparse table: lazy too, on the rows that got a gradient.
                rows = (g.reshape(g.shape[0], -1) != 0).any(dim=1).nonzero().squeeze(1)
                d = g[rows]
            else:
                rows, d = None, g
            d = d * pscale
            name = info["name"]
            if g.is_sparse and kind in ("adam", "adamw") and self.fused_rows is not None and peer_module.triton_unavailable(lw) is None:
                # The module's Triton kernel: the same update, in place, one program per touched row.
                self.fused_rows(lw, self.m[name], self.v[name], rows, d, 1.0, c["beta1"], c["beta2"], plr / bc1 * math.sqrt(bc2), c["eps"] * math.sqrt(bc2), 1 - plr * decay)
                continue
            sel = (lambda t, rows=rows: t[rows]) if rows is not None else (lambda t: t)
            wv = sel(lw)
            if kind == "adagrad":
                vv = sel(self.v[name]) + d * d
                self._put(self.v[name], rows, vv)
                new = wv * (1 - plr * decay) - plr * d / (vv.sqrt() + 1e-10)
            elif kind == "sgd":
                if name in self.m:
                    mv = c["momentum"] * sel(self.m[name]) + d
                    self._put(self.m[name], rows, mv)
                    d = mv
                new = wv - plr * (d + decay * wv)
            else:
                mv = c["beta1"] * sel(self.m[name]) + (1 - c["beta1"]) * d
                vv = c["beta2"] * sel(self.v[name]) + (1 - c["beta2"]) * d * d
                self._put(self.m[name], rows, mv)
                self._put(self.v[name], rows, vv)
                step_size, eps_hat = plr / bc1 * math.sqrt(bc2), c["eps"] * math.sqrt(bc2)
                new = wv * (1 - plr * decay) - step_size * mv / (vv.sqrt() + eps_hat)
            self._put(lw, rows, new)
        return lr, norm, scale < 1

    @torch.no_grad()
    def load(self, ckpt, step):
        """Adam's moments (or SGD's velocity) and step count from a checkpoint, this rank's part of each."""
        self.t = step
        saved = set(ckpt.keys())
        for info, w in self.params:
            for kind, state in (("m", self.m), ("v", self.v)):
                name = info["name"]
                if name not in state:
                    continue
                key = f"opt.{kind}.{name}"
                if key not in saved:
                    raise SystemExit(f"--resume: the checkpoint has no optimizer state '{key}' for {self.c['kind']}")
                if hasattr(w, "peerc_rows"):
                    start = w.peerc_rows[0]
                    part = ckpt.get_slice(key)[start:start + w.shape[0]]
                elif hasattr(w, "device_mesh"):
                    from torch.distributed.tensor import distribute_tensor

                    # Every rank read the whole tensor: split it locally (the default scatters from rank 0).
                    part = distribute_tensor(ckpt.get_tensor(key).to(local(w).device), w.device_mesh, w.placements, src_data_rank=None).to_local()
                else:
                    part = ckpt.get_tensor(key)
                if tuple(part.shape) != tuple(state[name].shape):
                    raise SystemExit(f"--resume: {key} has shape {list(part.shape)} here, expected {list(state[name].shape)}")
                state[name].copy_(part)

    @staticmethod
    def _put(t, rows, value):
        if rows is None:
            t.copy_(value)
        else:
            t[rows] = value


# ---- the model: seeded weights, FSDP2 for replicated parameters, row shards for the tables ----
def build(seed, device, mesh, resume=None):
    """The model on this rank: seeded weights, or a checkpoint's (read row block by row block)."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)

    def initial(p, start, stop):
        if resume is None:
            return seeded(p, seed, start, stop)
        rows = resume.get_slice("param." + p["name"])
        width = int(np.prod(p["shape"][1:])) if len(p["shape"]) > 1 else 1
        return (rows[start // width:stop // width] if p["shape"] else rows[:]).reshape(-1).float()

    model = MODEL_CLASS(dtype=torch.float32, device="meta")
    ignored, owned = set(), {}
    for p in PARAM_INFO:
        size = int(np.prod(p["shape"])) if p["shape"] else 1
        if p["name"] in ROW_SHARDED and world > 1:
            n, width = p["shape"]
            per = -(-n // world)
            start, stop = min(n, rank * per), min(n, (rank + 1) * per)
            t = initial(p, start * width, stop * width).reshape(stop - start, width).to(device)
            param = nn.Parameter(t)
            param.peerc_rows = (start, n)
            model._parameters[p["name"]] = param
            ignored.add(param)
            owned[p["name"]] = (start, stop)
            continue
        t = initial(p, 0, size).reshape(p["shape"]).to(device)
        if p["role"] == "param":
            model._parameters[p["name"]] = nn.Parameter(t)
        else:
            model._buffers[p["name"]] = t
    if mesh is not None:
        from torch.distributed.fsdp import fully_shard

        fully_shard(model, mesh=mesh, ignored_params=ignored)
    return model, owned


def full_tensors(model, opt):
    """Every parameter, buffer and optimizer moment as a whole tensor (collective: all ranks call it)."""
    world = _world()
    out = {}
    # A forward without gradients (evaluation) leaves FSDP2's parameters gathered; the optimizer
    # holds the sharded ones, which are what the moments match.
    if hasattr(model, "reshard"):
        model.reshard()
    params = {info["name"]: w for info, w in opt.params}

    def whole(name, t, like):
        if hasattr(like, "peerc_rows") and world > 1:
            n = like.peerc_rows[1]
            per = -(-n // world)
            pad = torch.zeros((per,) + tuple(t.shape[1:]), dtype=t.dtype, device=t.device)
            pad[: t.shape[0]] = t
            parts = [torch.empty_like(pad) for _ in range(world)]
            dist.all_gather(parts, pad)
            return torch.cat(parts, 0)[:n]
        if hasattr(like, "full_tensor"):
            from torch.distributed.tensor import DTensor

            return DTensor.from_local(t, like.device_mesh, like.placements, shape=like.shape, stride=like.stride()).full_tensor() if t is not like else like.full_tensor()
        return t

    for p in PARAM_INFO:
        name = p["name"]
        w = params.get(name)
        w = getattr(model, name) if w is None else w
        t = whole(name, local(w) if hasattr(w, "peerc_rows") else w, w).detach()
        # (Running statistics are the same on every rank: BatchNorm is synchronised.)
        out["param." + name] = t
        if name in opt.m:
            out["opt.m." + name] = whole(name, opt.m[name], w)
        if name in opt.v:
            out["opt.v." + name] = whole(name, opt.v[name], w)
    return out


def save_checkpoint(path, model, opt, step, s, world):
    tensors = full_tensors(model, opt)
    if dist.is_initialized() and dist.get_rank() != 0:
        return
    from safetensors.torch import save_file

    data = {"task": s["task"], "file": s.get("data"), "batch": s["batch"], "seq": s["seq"], "seed": s["seed"]}
    meta = {
        "format": "peerc-checkpoint/1", "source": SOURCE, "file": FILE, "entry": ENTRY, "step": str(step),
        "optimizer": json.dumps(s["optimizer"]), "optimizerStep": str(opt.t), "data": json.dumps(data),
        "rng": json.dumps({"kind": "counter-based (seed, step)", "seed": s["seed"], "position": step}),
        "backend": f"torch {torch.__version__} ({world} rank{'s' if world > 1 else ''}, FSDP2 + row-sharded tables)",
        "run": json.dumps(s), "resumes": "[]",
    }
    tmp = path + ".tmp"
    save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
    os.replace(tmp, path)


def loss_of(model, out, targets):
    """peerc's objective: the task's loss plus the program's aux_loss terms (model.aux_loss)."""
    aux = getattr(model, "aux_loss", 0.0)
    if LOSS == "scalar":
        return out + aux, None
    logits = out.reshape(-1, out.shape[-1])
    t = targets.reshape(-1)
    return F.cross_entropy(logits, t) + aux, (logits.argmax(-1) == t).sum()


def main():
    # The model's output is a view (a reshape); nothing here changes it in place, which is what
    # FSDP2 warns about.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    s = dict(SETTINGS)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join("runs", ENTRY + "-torch"))
    ap.add_argument("--resume", metavar="CHECKPOINT", help="continue a peerc train (or train.py) run from its checkpoint: weights, optimizer state, step, settings")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--batch", type=int, help="global batch (split evenly across ranks)")
    ap.add_argument("--seq", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--data", help="a text file (the text task)")
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--checkpoint-every", type=int)
    a = ap.parse_args()
    ckpt, start = None, 0
    if a.resume:
        from safetensors import safe_open

        ckpt = safe_open(a.resume, framework="pt", device="cpu")
        meta = ckpt.metadata() or {}
        if meta.get("format") != "peerc-checkpoint/1":
            raise SystemExit(f"--resume: {a.resume} is not a peerc checkpoint")
        if meta.get("source") != SOURCE:
            raise SystemExit(f"--resume: {a.resume} was trained from another program ({meta.get('file')}); export that program's train.py")
        s = json.loads(meta["run"])
        start = int(meta["step"])
        # As peerc train --resume: the data stream and the optimizer's kind stay; length, learning rate and cadence may change.
        for fixed in ("batch", "seq", "seed"):
            if getattr(a, fixed) is not None and getattr(a, fixed) != s[fixed]:
                raise SystemExit(f"--resume: --{fixed} is {s[fixed]} in this run and cannot change")
    given = {"steps": a.steps, "batch": a.batch, "seq": a.seq, "seed": a.seed, "evalEvery": a.eval_every, "checkpointEvery": a.checkpoint_every}
    s.update({k: v for k, v in given.items() if v is not None})
    s["optimizer"] = dict(s["optimizer"], steps=s["steps"], **({"lr": a.lr} if a.lr is not None else {}))
    if s["task"] == "text":
        s["data"] = a.data or s.get("data")
        if not s["data"]:
            raise SystemExit("the text task needs --data TEXT_FILE")
    if start >= s["steps"]:
        raise SystemExit(f"--resume: the run is at step {start} of {s['steps']}; pass --steps N with N > {start} to continue it")

    distributed = "WORLD_SIZE" in os.environ
    mesh, device = None, torch.device("cpu")
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if s["batch"] % world:
        raise SystemExit(f"--batch {s['batch']} must split evenly across {world} ranks")
    say = (lambda m: print(m, flush=True)) if rank == 0 else (lambda m: None)
    model, owned = build(s["seed"], device, mesh, ckpt)
    for name, (first, stop) in owned.items():
        print(f"rank {rank}: {name} rows {first}..{stop - 1} of { {p['name']: p['shape'][0] for p in PARAM_INFO}[name] } (row-sharded, sparse gradients)", flush=True)
    dense = [p["name"] for p in PARAM_INFO if p["sparse"] and p["name"] not in ROW_SHARDED]
    if dense and world > 1:
        say(f"note: @sparse {', '.join(dense)} stay under FSDP2 with dense gradients (only 2-D tables read by gathers and expert ops shard by rows)")
    opt = PeercOptimizer(model, s["optimizer"])
    if ckpt is not None:
        opt.load(ckpt, int(ckpt.metadata()["optimizerStep"]))
    data = Data(s)
    per = s["batch"] // world
    os.makedirs(a.out, exist_ok=True)
    # Open for the whole run (appended to step by step, closed at its end), not one write.
    metrics = open(os.path.join(a.out, "metrics.jsonl"), "a" if start else "w") if rank == 0 else None  # noqa: SIM115
    if start:
        say(f"resuming at step {start} of {s['steps']} from {a.resume}")
    kernels = getattr(peer_module, "KERNELS", "eager")
    if kernels == "triton":
        why = peer_module.triton_unavailable(next(model.parameters()))
        sharded = ", ".join(owned)
        say(f"kernels: eager PyTorch ops, not Triton: {why}" if why else f"kernels: Triton (fused retrieval and expert ops, lazy Adam on sparse rows){f'; row-sharded {sharded} read through the eager row-shard path' if sharded else ''}")
    say(f"train.py @{ENTRY}: {world} rank{'s' if world > 1 else ''} ({'FSDP2' if distributed else 'one process'}), {s['optimizer']['kind']}, lr {s['optimizer']['lr']}, global batch {s['batch']}, {s['steps']} steps")

    def shard(x):
        return x[rank * per:(rank + 1) * per].to(device)

    def evaluate(step):
        model.eval()
        tot, correct, count = 0.0, 0, 0
        with torch.no_grad():
            for i in range(s["evalBatches"]):
                x, y = data.batch("validation", i)
                loss, hits = loss_of(model, model(**{INPUT: shard(x)}), shard(y))
                tot += float(loss)
                if hits is not None:
                    correct += int(hits)
                    count += shard(y).numel()
        stats = torch.tensor([tot, correct, count], dtype=torch.float64)
        if distributed:
            dist.all_reduce(stats)
        loss = float(stats[0]) / (s["evalBatches"] * world)
        acc = float(stats[1] / stats[2]) if stats[2] > 0 else None
        say(f"step {step}: validation loss {loss:.4f}" + ("" if acc is None else f", accuracy {100 * acc:.1f}%"))
        if metrics:
            metrics.write(json.dumps({"step": step, "split": "validation", "loss": loss, "accuracy": acc}) + "\n")
            metrics.flush()
        if hasattr(model, "reshard"):
            model.reshard()
        model.train()

    model.train()
    if start == 0:
        evaluate(0)
    path = os.path.join(a.out, "checkpoint.safetensors")
    for step in range(start, s["steps"]):
        t0 = time.perf_counter()
        x, y = data.batch("train", step)
        loss, _ = loss_of(model, model(**{INPUT: shard(x)}), shard(y))
        loss.backward()
        for name in owned:  # row shards hold the sum over ranks; FSDP averages the rest
            g = getattr(model, name).grad
            if g is not None and world > 1:
                getattr(model, name).grad = g * (1.0 / world)
        lr, norm, clipped = opt.step()
        for _info, w in opt.params:
            w.grad = None
        total = loss.detach().clone()
        if distributed:
            dist.all_reduce(total)
        total = float(total) / world
        if not math.isfinite(total):
            raise SystemExit(f"the loss is {total} at step {step + 1}: try a lower --lr or clipping")
        done = step + 1
        ms = (time.perf_counter() - t0) * 1000
        if metrics:
            metrics.write(json.dumps({"step": done, "split": "train", "loss": total, "lr": lr, "grad_norm": norm, "clipped": clipped, "ms": ms}) + "\n")
        say(f"step {done}/{s['steps']}: loss {total:.4f}, lr {lr:.2e}, {ms:.0f} ms")
        if done % s["evalEvery"] == 0 or done == s["steps"]:
            evaluate(done)
        if done % s["checkpointEvery"] == 0 or done == s["steps"]:
            save_checkpoint(path, model, opt, done, s, world)
    say(f"checkpoint: {path}")
    if metrics:
        metrics.close()
    if distributed:
        # Every rank waits for rank 0's checkpoint write, then leaves without interpreter
        # finalisation: there, tensors still held by gloo's worker threads can abort a rank
        # ("terminate called without an active exception", seen 1 run in ~10 under load).
        dist.barrier()
        dist.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
