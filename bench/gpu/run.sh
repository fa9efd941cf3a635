#!/usr/bin/env bash
# On the GPU machine, in the folder pack.sh wrote: peerc's webgpu backend (fused vs naive,
# forward and training step) and the PyTorch export on CUDA (eager, Triton kernels,
# torch.compile, a materialising baseline), the machine's measured limits, one table on stdout,
# JSON in results/ (gpu.json holds both sides). Under 8 minutes.
#   bash run.sh [--dry-run] [--no-compile]
# --dry-run (or --smoke): tiny sizes on a CPU, to check the folder, not to measure.
set -euo pipefail
cd "$(dirname "$0")"
dry=()
torch_flags=()
for a in "$@"; do
  case "$a" in
    --dry-run|--smoke) dry=(--dry-run); torch_flags+=(--smoke) ;;
    *) torch_flags+=("$a") ;;
  esac
done
mkdir -p results
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi: not a GPU machine"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# peerc: Node and Dawn from the pack; the Vulkan loader where the machine has none (as root).
work="${PEERC_GPU_WORK:-/tmp/peerc-gpu}"
python3 - "$work" <<'PY'
import os, sys, tarfile
work = sys.argv[1]
os.makedirs(work, exist_ok=True)
for archive in ("node.tar.xz", "peerc.tar.xz"):
    with tarfile.open(archive) as t:
        t.extractall(work)
PY
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
  if [ "$(id -u)" = 0 ] && ls vulkan/*.deb >/dev/null 2>&1; then
    for f in vulkan/*.deb; do dpkg -x "$f" /; done
    ldconfig
    echo "installed the packed Vulkan loader"
  else
    echo "no Vulkan loader here and none installed (needs root and vulkan/*.deb): peerc's webgpu side will say so"
  fi
fi
for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$f" ]; then export VK_DRIVER_FILES="$f"; echo "Vulkan driver: $f"; break; fi
done
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
timeout 200 python3 peerc_gpu.py --node "$work/node" --cli "$work/peerc/peerc-gpu.mjs" --program peer_h4.peer --out results/peerc-webgpu.json "${dry[@]}" \
  || echo "peerc's webgpu side did not finish (see above); the PyTorch side runs on"
timeout 270 python3 torch_gpu.py modules --out results/torch-gpu.json "${torch_flags[@]}" \
  || echo "the PyTorch side did not finish (see above)"
python3 table.py results
