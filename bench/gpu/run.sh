#!/usr/bin/env bash
# On the GPU machine, in the folder pack.sh wrote: the PyTorch side of the benchmark (eager export,
# Triton export, torch.compile, a materialising baseline), one table on stdout, JSON in results/.
#   bash run.sh [--smoke] [--no-compile]
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p results
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi: not a GPU machine"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())"
timeout 480 python3 torch_gpu.py modules --out results/torch-gpu.json "$@"
