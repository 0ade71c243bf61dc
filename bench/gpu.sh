#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU and a CUDA toolkit: builds everything (libmoe4j_cuda included), runs
# all tests (the GPU tests run for real there), prints the CUDA kernels' resource use (registers, shared memory,
# spills) and the speed table of bench GpuReport. Usage: bench/gpu.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
command -v nvcc >/dev/null || { echo "gpu.sh: nvcc not found: install a CUDA toolkit (12 or newer)" >&2; exit 1; }

echo "== build and tests (GPU tests included)"
./moe4j test

echo "== resource use per kernel (nvcc -Xptxas -v), sm_90a"
for f in native/src/cuda/*.cu; do
  nvcc -std=c++17 -c "$f" -o /dev/null -Inative/include -DMOE4J_WITH_CUDA=1 -Xptxas -v \
    -gencode=arch=compute_90a,code=sm_90a 2>&1 | grep -E "Compiling entry|registers|spill" |
    sed -e 's/ptxas info    : //' -e 's/Compiling entry function //'
done

echo "== speed"
exec ./moe4j bench gpu
