#!/usr/bin/env bash
# Builds the folder a GPU machine needs for bench/gpu/run.sh (no Node there, no network), under
# 60 MiB: the paper's layer (N = 1024^2, h = 4 and 8) exported by peerc for PyTorch, eager and
# with Triton kernels; peerc's CLI for its webgpu backend with this machine's Node and Dawn's
# addon (compressed), the Vulkan loader as Debian packages; the benchmark scripts. Run here
# after `npm run build`:
#   bash bench/gpu/pack.sh [OUT_DIR] [--dry-run]
# --dry-run (or --smoke) exports small tables (N = 32^2) so run.sh --dry-run checks the folder
# on a CPU (software Vulkan driver, Triton interpreted).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/bench/gpu/out"
sets=()
for a in "$@"; do
  case "$a" in
    --dry-run|--smoke) sets=(--set 'N=32^2') ;;
    *) out="$a" ;;
  esac
done
[ -f "$root/dist/peerc.js" ] || { echo "pack.sh: dist/peerc.js is missing: run npm run build first" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out/modules"
for h in 4 8; do
  for kernels in eager triton; do
    node "$root/dist/peerc.js" export "$root/bench/peer_h4.peer" --torch --kernels "$kernels" --set "h=$h" "${sets[@]}" -o "$out/modules/h$h-$kernels" >/dev/null
  done
done

# peerc's webgpu side: the CLI without its build-time tools, gpu.js (the registry loads it),
# Dawn's addon for linux-x64 only, and the Node running this script.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/peerc/node_modules/webgpu/dist"
(cd "$root" && node bench/gpu/bundle.mjs "$stage/peerc/peerc-gpu.mjs")
for m in gpu.js acorn gpu-mock.js; do cp -r "$root/node_modules/$m" "$stage/peerc/node_modules/"; done
rm -rf "$stage/peerc/node_modules/gpu.js/node_modules" # its own webgpu 0.2 serves only its browser mode
dawn="$(node -p "try { require('$root/node_modules/webgpu/package.json').version } catch { '' }")"
if [ "${dawn%%.*}" = 0 ] && [ "$(echo "$dawn" | cut -d. -f2)" -ge 6 ]; then
  cp "$root/node_modules/webgpu/index.js" "$root/node_modules/webgpu/package.json" "$stage/peerc/node_modules/webgpu/"
  cp -r "$root/node_modules/webgpu/dist/linux-x64" "$stage/peerc/node_modules/webgpu/dist/"
else
  rm -rf "$stage/peerc/node_modules/webgpu"
  echo "pack.sh: Dawn (npm package webgpu 0.6) is not installed here (npm run extras -- webgpu): the pack's peerc side will say webgpu is not available" >&2
fi
cp "$root/bench/peer_h4.peer" "$out/"
node_bin="$(node -p 'process.execPath')"
cp "$node_bin" "$stage/node"
tar -C "$stage" -cf - peerc | xz -T0 -6 >"$out/peerc.tar.xz"
tar -C "$stage" -cf - node | xz -T0 -6 >"$out/node.tar.xz"
# The Vulkan loader (the NVIDIA driver brings the ICD, not always libvulkan.so.1).
mkdir -p "$out/vulkan"
if ! (cd "$out/vulkan" && apt-get download libvulkan1 >/dev/null 2>&1); then
  echo "pack.sh: apt-get download libvulkan1 failed: run.sh will use the machine's Vulkan loader, if it has one" >&2
fi
cp "$here/torch_gpu.py" "$here/peerc_gpu.py" "$here/table.py" "$here/run.sh" "$out/"
size=$(du -sm "$out" | cut -f1)
[ "$size" -le 60 ] || { echo "pack.sh: $out is ${size} MiB, over the 60 MiB a GPU machine takes" >&2; exit 1; }
echo "packed $out (${size} MiB): copy it to the GPU machine and run: bash run.sh"
