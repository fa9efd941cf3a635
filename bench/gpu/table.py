"""One table from both sides of the GPU benchmark (bench/gpu/run.sh): peerc's webgpu backend
(peerc-webgpu.json) and the PyTorch export on CUDA (torch-gpu.json), per configuration, with the
machine's measured limits and each figure's share of them; writes results/gpu.json.

usage: python3 table.py RESULTS_DIR
"""
import json
import os
import sys


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cell(v):
    return "-" if v is None else f"{v:.2f}"


def main():
    d = sys.argv[1]
    peerc, torch = read(os.path.join(d, "peerc-webgpu.json")), read(os.path.join(d, "torch-gpu.json"))
    limits = (torch or {}).get("limits", {})
    out = {"peerc_webgpu": peerc, "torch": torch, "limits": limits, "rows": []}
    print()
    print(f"{'config':12} {'engine':24} {'forward ms':>11} {'train step ms':>14}   notes")
    keys = sorted(set((peerc or {}).get("configs", {})) | set((torch or {}).get("configs", {})))
    for key in keys:
        p = (peerc or {}).get("configs", {}).get(key)
        if p:
            f, t = p["forward"], p["train"]
            fused = f.get("fused", {}).get("medianMs")
            naive = (f.get("naive") or {}).get("medianMs")
            step = t.get("median_ms")
            note = f.get("error") or t.get("error") or ""
            gemm = f.get("matmul_reference_gflops_per_s")
            if gemm and limits.get("gemm_fp32_tflops"):
                note = f"webgpu 512^3 matmul {gemm:.0f} GFLOP/s = {100 * gemm / 1000 / limits['gemm_fp32_tflops']:.1f}% of torch's fp32 GEMM; " + note
            rows = [("peerc webgpu fused", fused, step), ("peerc webgpu naive", naive, None)]
            for name, fwd, st in rows:
                extra = note if name.endswith("fused") else ("" if naive else f"not run: {f.get('naive_not_run', f.get('error', ''))}"[:100])
                print(f"{key:12} {name:24} {cell(fwd):>11} {cell(st):>14}   {extra}")
                out["rows"].append({"config": key, "engine": name, "forward_ms": fwd, "train_step_ms": st, "note": extra})
        tr = (torch or {}).get("configs", {}).get(key, {})
        for name, r in tr.items():
            engine = f"torch {name}"
            print(f"{key:12} {engine:24} {r['forward_ms']:11.2f} {r['train_step_ms']:14.2f}   max rel diff vs eager {r['max_rel_diff_vs_eager']:.1e}")
            out["rows"].append({"config": key, "engine": engine, "forward_ms": r["forward_ms"], "train_step_ms": r["train_step_ms"]})
    for name, why in (peerc or {}).get("engines_not_run", {}).items():
        print(f"{'':12} {name:24} {'-':>11} {'-':>14}   not run: {why}")
    if limits:
        print(f"machine: copy {limits.get('copy_gb_per_s', 0):.0f} GB/s, fp32 GEMM {limits.get('gemm_fp32_tflops', 0):.1f} TFLOP/s (measured by torch); peerc device: {(peerc or {}).get('device', 'not run')}")
    with open(os.path.join(d, "gpu.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {os.path.join(d, 'gpu.json')}")


if __name__ == "__main__":
    main()
