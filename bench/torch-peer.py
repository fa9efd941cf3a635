"""The PEER layer (bench/peer_h4.peer) as the fastest CPU PyTorch program written for it: the
baseline a researcher would write instead of using peerc. Query projection and BatchNorm as
one linear + BatchNorm1d; both sides' sub-key scores as one bmm; top-k per side, the k x k
candidates and their top-k; expert activations from one embedding lookup and bmm; expert outputs
as F.embedding_bag with per_sample_weights (no [T, h, k, d] tensor for them); sparse embedding
gradients and lazy Adam on the touched rows for the expert tables (index_select / index_copy_,
faster here than torch.optim.SparseAdam), fused (foreach) Adam for the rest; global-norm
clipping at 1 over dense and sparse gradients, as peerc's optimizer. Eager mode (no
torch.compile), 2 intra-op threads unless --threads says otherwise.

usage:
  python3 bench/torch-peer.py N_SIDE TOKENS RUNS HEADS [--train] [--threads 2]
      prints one JSON line: median ms of RUNS calls after a warm-up, tokens/s, threads, peak RSS
  python3 bench/torch-peer.py --check WEIGHTS.safetensors INPUTS.safetensors OUT.safetensors
      the forward in float64 (evaluation mode) from peerc's weights, for the parity test
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn.functional as F


class Peer(torch.nn.Module):
    def __init__(self, n, h, d=256, dk=128, k=16, dtype=torch.float32):
        super().__init__()
        self.n, self.h, self.d, self.dk, self.k = n, h, d, dk, k
        g = torch.Generator().manual_seed(0)

        def normal(shape, std):
            return torch.nn.Parameter(torch.randn(shape, generator=g, dtype=dtype) * std)

        self.Wq = normal((h * dk, d), 1 / math.sqrt(d))
        self.bn = torch.nn.BatchNorm1d(h * dk, eps=1e-5, momentum=0.1, dtype=dtype)
        # Both sides' sub-keys stacked, so scoring is one bmm: [2, n, dk/2].
        self.C = normal((2, n, dk // 2), 1 / math.sqrt(dk // 2))
        self.U = torch.nn.Embedding(n * n, d, sparse=True, dtype=dtype)
        self.V = torch.nn.Embedding(n * n, d, sparse=True, dtype=dtype)
        with torch.no_grad():
            self.U.weight.normal_(0, 1 / math.sqrt(d), generator=g)
            self.V.weight.normal_(0, 1 / math.sqrt(h * k), generator=g)

    def forward(self, x):
        t, h, dk, k, n = x.shape[0], self.h, self.dk, self.k, self.n
        q = self.bn(F.linear(x, self.Wq)).view(t * h, 2, dk // 2).transpose(0, 1)  # [2, T*h, dk/2]
        s = torch.bmm(q, self.C.transpose(1, 2))  # [2, T*h, n]
        v, i = s.topk(k, dim=-1)  # [2, T*h, k]
        cand = (v[0].unsqueeze(-1) + v[1].unsqueeze(-2)).view(t * h, k * k)
        best, c = cand.topk(k, dim=-1)
        ids = (i[0].gather(-1, torch.div(c, k, rounding_mode="floor")) * n + i[1].gather(-1, c % k)).view(t, h * k)
        gate = torch.softmax(best, dim=-1).view(t, h * k)
        dots = torch.bmm(self.U(ids), x.unsqueeze(-1)).squeeze(-1)  # [T, h*k]
        return F.embedding_bag(ids, self.V.weight, per_sample_weights=gate * F.gelu(dots), mode="sum", sparse=True)


def load_peerc(model, weights):
    """peerc's parameter names and shapes (bench/peer_h4.peer) into the module's layout."""
    with torch.no_grad():
        model.Wq.copy_(weights["Wq"].reshape(model.Wq.shape))
        model.bn.weight.copy_(weights["bn_g"])
        model.bn.bias.copy_(weights["bn_b"])
        model.bn.running_mean.copy_(weights["bn_mean"])
        model.bn.running_var.copy_(weights["bn_var"])
        model.C.copy_(torch.stack([weights["C1"], weights["C2"]]))
        model.U.weight.copy_(weights["U"])
        model.V.weight.copy_(weights["V"])


class RowAdam:
    """Lazy Adam on the rows a sparse gradient touches, with index_select / index_copy_: what a
    careful program does instead of torch.optim.SparseAdam, whose sparse-mask arithmetic is
    slower on the CPU (measured here, 16k random rows of two 1M x 256 tables, 2 threads: about
    150 ms a step for SparseAdam, 70-110 ms for this). Same update as SparseAdam (and peerc's
    lazy Adam)."""

    def __init__(self, tables, lr, betas=(0.9, 0.999), eps=1e-8):
        self.tables, self.lr, self.betas, self.eps, self.t = tables, lr, betas, eps, 0
        self.state = [(torch.zeros_like(w), torch.zeros_like(w)) for w in tables]

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for w, (m, v) in zip(self.tables, self.state, strict=True):
            g = w.grad.coalesce()
            rows, d = g.indices()[0], g.values()
            mr = m.index_select(0, rows).mul_(b1).add_(d, alpha=1 - b1)
            vr = v.index_select(0, rows).mul_(b2).addcmul_(d, d, value=1 - b2)
            m.index_copy_(0, rows, mr)
            v.index_copy_(0, rows, vr)
            step = mr.div(vr.sqrt().add_(self.eps * math.sqrt(bc2))).mul_(self.lr / bc1 * math.sqrt(bc2))
            w.index_add_(0, rows, step, alpha=-1)

    def zero_grad(self, set_to_none=True):
        for w in self.tables:
            w.grad = None


class Step:
    """forward, cross-entropy against fixed targets (as `peerc bench --train`), backward,
    global-norm clipping at 1 over dense and sparse gradients, Adam / SparseAdam."""

    def __init__(self, model, x):
        self.model, self.x = model, x
        self.targets = (torch.arange(x.shape[0]) * 7919) % model.d
        tables = [model.U.weight, model.V.weight]
        self.sparse = RowAdam(tables, lr=1e-3)
        self.dense = torch.optim.Adam([p for p in model.parameters() if all(p is not q for q in tables)], lr=1e-3, foreach=True)

    def __call__(self):
        loss = F.cross_entropy(self.model(self.x), self.targets)
        loss.backward()
        for p in (self.model.U.weight, self.model.V.weight):
            p.grad = p.grad.coalesce()
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norm = torch.sqrt(sum((g.values() if g.is_sparse else g).pow(2).sum() for g in grads))
        if norm > 1:
            for g in grads:
                (g.values() if g.is_sparse else g).mul_(1 / norm)
        self.sparse.step()
        self.dense.step()
        self.sparse.zero_grad(set_to_none=True)
        self.dense.zero_grad(set_to_none=True)
        return loss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("args", nargs="*")
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.check:
        from safetensors.torch import load_file, save_file

        weights = {k: v.to(torch.float64) for k, v in load_file(a.args[0]).items()}
        x = load_file(a.args[1])["x"].to(torch.float64)
        h, dk, d = weights["Wq"].shape
        model = Peer(weights["C1"].shape[0], h, d, dk, k=16, dtype=torch.float64).eval()
        load_peerc(model, weights)
        with torch.no_grad():
            save_file({"output_0": model(x).contiguous()}, a.args[2])
        return
    n, tokens, runs, h = (int(v) for v in a.args[:4])
    model = Peer(n, h)
    x = torch.randn(tokens, model.d, generator=torch.Generator().manual_seed(1))
    if a.train:
        model.train()
        fn = Step(model, x)
    else:
        model.eval()

        def fn():
            with torch.no_grad():
                return model(x)

    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    median = statistics.median(times)
    print(json.dumps({
        "median_ms": median, "tokens_per_s": tokens / median * 1000, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "allocator": "glibc malloc (PyTorch's CPU default)",
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "train": a.train,
    }))


if __name__ == "__main__":
    main()
