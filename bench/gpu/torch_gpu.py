"""The PyTorch side of the GPU benchmark (bench/gpu/run.sh): the paper's layer exported by
`peerc export --torch`, run four ways on one GPU, forward and training step, side by side:

  eager      the exported module as PyTorch eager runs it (--kernels eager)
  triton     the exported module with peerc's generated Triton kernels (--kernels triton)
  compiled   torch.compile of the eager export
  gathered   a PEER-pytorch-style baseline: the eager export with its expert ops replaced by
             ones that materialise the gathered experts U[idx], V[idx] as [T, h, k, d] tensors

plus the machine's measured limits (a large copy's bandwidth, a large GEMM's FLOP/s) and each
Triton expert kernel's share of that bandwidth. A training step is forward, a mean-square loss,
backward and the optimizer: Adam on dense parameters, lazy Adam on the touched rows of the
expert tables (train.py's update; the Triton export's as its kernel).

usage: python3 torch_gpu.py MODULES_DIR [--out results.json] [--smoke]
MODULES_DIR holds h4-eager/, h4-triton/, h8-eager/, h8-triton/ (pack.sh writes them).
--smoke runs tiny sizes on the CPU (Triton interpreted) to check the script, not to measure.
"""
import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time

SMOKE = "--smoke" in sys.argv
if SMOKE:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

DEV = torch.device("cuda" if torch.cuda.is_available() and not SMOKE else "cpu")


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, warmup, reps):
    """Median milliseconds of reps calls after warmup calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def module_file(folder):
    return os.path.join(folder, next(f for f in os.listdir(folder) if f.endswith(".py") and f != "train.py"))


def materialising(mod):
    """The eager export with PEER-pytorch's expert side: gathered expert rows as tensors."""

    def expert_act(x, U, idx, w, act):
        rows = U[idx]  # [T, ..., d], as PEER-pytorch's embedding lookups
        dots = torch.einsum("t...d,td->t...", rows, x)
        return w * mod._ACTIVATIONS[act](dots)

    def expert_out(h, V, idx, residual=None):
        rows = V[idx]
        out = torch.einsum("t...,t...d->td", h, rows)
        return out if residual is None else out + residual

    mod._expert_act, mod._expert_out = expert_act, expert_out
    return mod


def build(mod, seed):
    torch.manual_seed(seed)
    cls = next(v for v in vars(mod).values() if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == mod.__name__)
    model = cls(dtype=torch.float32, device=DEV)
    with torch.no_grad():
        for name, role, shape in mod.PARAMS:
            t = getattr(model, name)
            if role != "param":
                t.copy_(torch.ones_like(t) if name.endswith("var") else torch.zeros_like(t))
            elif len(shape) == 1:
                t.copy_(torch.ones_like(t) if name.endswith("_g") else torch.zeros_like(t))
            else:
                t.normal_(0, 1 / math.sqrt(int(shape[-1])))
    return model.train()


class LazyAdam:
    """Adam on dense parameters; on the expert tables, lazy Adam over the rows with a gradient."""

    def __init__(self, model, tables, fused_rows=None, lr=1e-3):
        self.model, self.tables, self.fused, self.lr, self.t = model, set(tables), fused_rows, lr, 0
        dense = [p for n, p in model.named_parameters() if n not in self.tables]
        self.dense = torch.optim.Adam(dense, lr=lr, foreach=True)
        self.state = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in model.named_parameters() if n in self.tables}

    @torch.no_grad()
    def step(self):
        self.t += 1
        self.dense.step()
        b1, b2, eps = 0.9, 0.999, 1e-8
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        step_size, eps_hat = self.lr / bc1 * math.sqrt(bc2), eps * math.sqrt(bc2)
        for name, p in self.model.named_parameters():
            if name not in self.tables or p.grad is None:
                continue
            g = p.grad
            if g.is_sparse:
                g = g.coalesce()
                rows, d = g.indices()[0], g.values()
            else:
                rows = (g != 0).any(dim=1).nonzero().squeeze(1)
                d = g[rows]
            m, v = self.state[name]
            if self.fused is not None:
                self.fused(p.data, m, v, rows, d, 1.0, b1, b2, step_size, eps_hat, 1.0)
                continue
            mv = b1 * m[rows] + (1 - b1) * d
            vv = b2 * v[rows] + (1 - b2) * d * d
            m[rows], v[rows] = mv, vv
            p.data[rows] = p.data[rows] - step_size * mv / (vv.sqrt() + eps_hat)

    def zero_grad(self):
        for p in self.model.parameters():
            p.grad = None


def measure_limits(quick):
    """A large device copy's bandwidth (GB/s, read + write) and a large fp32 GEMM's TFLOP/s (TF32 off and on)."""
    n = (1 << 20) if quick else (1 << 28)  # 4 MiB or 1 GiB of float32
    a = torch.empty(n, device=DEV)
    b = torch.empty_like(a)
    ms = timed(lambda: b.copy_(a), 2, 5 if quick else 20)
    bandwidth = 2 * n * 4 / (ms / 1000) / 1e9
    s = 256 if quick else 8192
    x, y = torch.randn(s, s, device=DEV), torch.randn(s, s, device=DEV)
    out = {"copy_gb_per_s": bandwidth}
    for tf32 in (False, True):
        if DEV.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
        gms = timed(lambda: x @ y, 2, 5 if quick else 20)
        out["gemm_fp32_tf32_tflops" if tf32 else "gemm_fp32_tflops"] = 2 * s ** 3 / (gms / 1000) / 1e12
    if DEV.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    return out


def kernel_shares(mod, model, x, bandwidth, warmup, reps):
    """Each Triton expert kernel alone, on the ids the layer selects: time and share of the copy bandwidth."""
    with torch.no_grad():
        cap = {}
        real = mod._expert_out

        def spy(h, V, idx, residual=None):
            cap["h"], cap["idx"] = h, idx
            return real(h, V, idx, residual)

        mod._expert_out = spy
        model(x)
        mod._expert_out = real
    t = x.shape[0]
    h, idx = cap["h"].reshape(t, -1).contiguous(), cap["idx"].reshape(t, -1).contiguous()
    s, d = idx.shape[1], model.V.shape[1]
    w = torch.ones_like(h)
    results = {}
    slot_rows = t * s * d * 4  # the selected rows, read once each
    cases = {
        "expert_out (gather_axpy)": (lambda: mod._gather_axpy_op(h, model.V, idx), slot_rows + t * d * 4 + t * s * 12),
        "expert_act (gather_dots)": (lambda: mod._gather_dots_op(x, model.U, idx, w, "none"), slot_rows + t * d * 4 + t * s * 20),
        "table backward (rows_grad)": (lambda: mod._rows_grad_op(idx, h, x), 2 * slot_rows + t * s * 16),
    }
    for name, (fn, moved) in cases.items():
        ms = timed(fn, warmup, reps)
        results[name] = {"ms": ms, "gb_per_s": moved / (ms / 1000) / 1e9, "share_of_copy_bandwidth": moved / (ms / 1000) / 1e9 / bandwidth}
    return results


def run_config(folder, label, tokens, warmup, reps, with_compile, limits):
    eager_mod = load(module_file(os.path.join(folder, f"{label}-eager")), f"{label}_eager")
    triton_mod = load(module_file(os.path.join(folder, f"{label}-triton")), f"{label}_triton")
    gathered_mod = materialising(load(module_file(os.path.join(folder, f"{label}-eager")), f"{label}_gathered"))
    tables = ["U", "V"]
    rows = {}
    x = torch.randn(tokens, int(eager_mod.INPUTS[0][2][1]), device=DEV)
    reference = None
    variants = [("eager", eager_mod, False), ("triton", triton_mod, False), ("gathered", gathered_mod, False)]
    if with_compile:
        variants.append(("compiled", eager_mod, True))
    for name, mod, compiled in variants:
        model = build(mod, 0)
        run = torch.compile(model) if compiled else model
        with torch.no_grad():
            model.eval()
            y = run(x)
            model.train()
        if reference is None:
            reference = y.detach()
        err = float((y - reference).abs().max() / reference.abs().max().clamp_min(1e-30))
        with torch.no_grad():
            model.eval()
            fwd = timed(lambda run=run: run(x), warmup, reps)
            model.train()
        opt = LazyAdam(model, tables, getattr(mod, "adam_rows_", None) if name == "triton" else None)

        def step(run=run, opt=opt):
            out = run(x)
            loss = out.pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()

        train = timed(step, warmup, reps)
        rows[name] = {"forward_ms": fwd, "train_step_ms": train, "forward_tokens_per_s": tokens / fwd * 1000, "train_tokens_per_s": tokens / train * 1000, "max_rel_diff_vs_eager": err}
        if name == "triton":
            rows[name]["kernels"] = kernel_shares(mod, model, x, limits["copy_gb_per_s"], warmup, reps)
        del model, run, opt
        if DEV.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules")
    ap.add_argument("--out", default="torch-gpu.json")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (it compiles for minutes on some machines)")
    a = ap.parse_args()
    warmup, reps = (0, 1) if SMOKE else (3, 10)
    limits = measure_limits(SMOKE)
    facts = {"device": torch.cuda.get_device_name() if DEV.type == "cuda" else "cpu (smoke: Triton interpreted, not a measurement)", "torch": torch.__version__}
    try:
        import triton

        facts["triton"] = triton.__version__
    except ImportError:
        facts["triton"] = None
    results = {"facts": facts, "limits": limits, "configs": {}}
    print(f"{facts['device']}, torch {facts['torch']}, triton {facts['triton']}: copy {limits['copy_gb_per_s']:.0f} GB/s, fp32 GEMM {limits['gemm_fp32_tflops']:.1f} TFLOP/s ({limits['gemm_fp32_tf32_tflops']:.1f} with TF32)", flush=True)
    batches = [8] if SMOKE else [256, 4096]
    for label in ("h4",) if SMOKE else ("h4", "h8"):
        for tokens in batches:
            key = f"{label} B={tokens}"
            rows = run_config(a.modules, label, tokens, warmup, reps, not a.no_compile and tokens == batches[-1] and not SMOKE, limits)
            results["configs"][key] = rows
            base = rows["gathered"]
            for name, r in rows.items():
                print(f"{key:12} {name:9} forward {r['forward_ms']:8.2f} ms ({base['forward_ms'] / r['forward_ms']:5.2f}x gathered)   train step {r['train_step_ms']:8.2f} ms ({base['train_step_ms'] / r['train_step_ms']:5.2f}x gathered)   max rel diff vs eager {r['max_rel_diff_vs_eager']:.1e}", flush=True)
            for kname, k in rows["triton"]["kernels"].items():
                print(f"{'':12} triton kernel {kname:28} {k['ms']:7.3f} ms  {k['gb_per_s']:7.1f} GB/s  {100 * k['share_of_copy_bandwidth']:5.1f}% of copy bandwidth", flush=True)
            # Written after each configuration: a run stopped by run.sh's time limit keeps what it measured.
            with open(a.out, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
