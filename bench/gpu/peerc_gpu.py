"""peerc's side of the GPU benchmark (bench/gpu/run.sh): the paper's layer on peerc's own WebGPU
backend (WGSL through Dawn on the machine's Vulkan driver), fused vs naive lowering, forward and
training step, with `peerc bench --json` from the pack's Node. gpu.js's backends are listed with
the reason they do not run here (its webgpu mode runs only in browsers; headless GL needs the
native 'gl' addon, which is not packed).

usage: python3 peerc_gpu.py --node NODE --cli PEERC.mjs --program peer_h4.peer --out OUT.json [--dry-run]
--dry-run: N = 32^2 and 8 tokens, to check the pack on a CPU with a software Vulkan driver.
"""
import argparse
import json
import subprocess
import time


def bench(a, h, tokens, train, budget):
    args = [a.node, a.cli, "bench", a.program, "--set", f"h={h}", "--tokens", str(tokens), "--backend", "webgpu", "--json", "--runs", "3" if a.dry_run else "5"]
    args += ["--set", "N=32^2"] if a.dry_run else []
    args += ["--train"] if train else ["--skip-reference", "--skip-ort"]
    t0 = time.time()
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        return {"error": f"not finished within {budget:.0f} s"}
    at = p.stdout.find("{")
    if p.returncode != 0 or at < 0:
        said = [line for line in (p.stderr + p.stdout).splitlines() if line.strip() and not line.startswith("Warning: max")]
        return {"error": " ".join(said[-3:])[:600] or f"exit status {p.returncode}"}
    r, _ = json.JSONDecoder().raw_decode(p.stdout[at:])
    r["wall_s"] = time.time() - t0
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--program", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--budget", type=float, default=170, help="seconds for all runs together")
    a = ap.parse_args()
    started = time.time()
    configs = [(4, 8)] if a.dry_run else [(4, 256), (4, 4096), (8, 256), (8, 4096)]
    results = {
        "engines_not_run": {
            "gpu.js webgpu": "gpu.js's webgpu mode runs only in a browser page (there is no browser on this machine)",
            "gpu.js headlessgl": "needs the native 'gl' addon built for this Node and an X server with GLX (Xvfb); neither is packed",
        },
        "configs": {},
    }
    for h, tokens in configs:
        key = f"h{h} B={tokens}"
        row = {}
        for what, train in (("forward", False), ("train", True)):
            left = a.budget - (time.time() - started)
            row[what] = bench(a, h, tokens, train, max(10.0, left / 2)) if left > 10 else {"error": "skipped: the time budget was spent"}
        results["configs"][key] = row
        f, t = row["forward"], row["train"]
        fused = f"fused {f['fused']['medianMs']:8.2f} ms" if "fused" in f else f"forward: {f.get('error', '')[:160]}"
        naive = f"naive {f['naive']['medianMs']:8.2f} ms" if f.get("naive") else f"naive: not run ({f.get('naive_not_run', 'skipped')[:120]})"
        step = f"train step {t['median_ms']:8.2f} ms" if "median_ms" in t else f"train: {t.get('error', '')[:160]}"
        # The step's traffic (the tables are summed and updated on the GPU) and the optimizer's rate over the touched rows.
        per_step = t.get("host_device_bytes_per_step")
        if per_step:
            step += f" ({per_step['up'] / 1e6:.1f} MB up, {per_step['down'] / 1e6:.1f} MB down; optimizer {t.get('optimizer_gb_per_s', 0):.1f} GB/s)"
        moved = (f.get("fused") or {}).get("hostDeviceBytesPerForward")
        traffic = f"   host<->GPU {moved['up'] / 1e6:.1f} MB up, {moved['down'] / 1e6:.1f} MB down per forward" if moved else ""
        print(f"{key:12} peerc webgpu  {fused}   {naive}   {step}{traffic}", flush=True)
        if "backend_detail" in f:
            results["device"] = f["backend_detail"]
    with open(a.out, "w", encoding="utf-8") as out:
        json.dump(results, out, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
