#!/usr/bin/env bash
# Builds the folder a GPU machine needs for bench/gpu/run.sh (no Node there, no network): the
# paper's layer (N = 1024^2, h = 4 and 8) exported by peerc for PyTorch, eager and with Triton
# kernels, and the benchmark script. Run here after `npm run build`:
#   bash bench/gpu/pack.sh [OUT_DIR] [--smoke]
# --smoke exports small tables (N = 32^2) so run.sh --smoke can check the folder on a CPU.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/bench/gpu/out}"
sets=()
if [ "${2:-}" = "--smoke" ] || [ "${1:-}" = "--smoke" ]; then
  [ "${1:-}" = "--smoke" ] && out="$root/bench/gpu/out"
  sets=(--set 'N=32^2')
fi
[ -f "$root/dist/peerc.js" ] || { echo "pack.sh: dist/peerc.js is missing: run npm run build first" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out/modules"
for h in 4 8; do
  for kernels in eager triton; do
    node "$root/dist/peerc.js" export "$root/bench/peer_h4.peer" --torch --kernels "$kernels" --set "h=$h" "${sets[@]}" -o "$out/modules/h$h-$kernels" >/dev/null
  done
done
cp "$here/torch_gpu.py" "$here/run.sh" "$out/"
size=$(du -sm "$out" | cut -f1)
echo "packed $out (${size} MiB): copy it to the GPU machine and run: bash run.sh"
