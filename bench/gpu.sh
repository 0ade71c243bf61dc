#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: runs the GPU tests (they must run, not skip), prints the CUDA
# kernels' resource use (registers, shared memory, spills), the speed table of bench GpuReport (copy bandwidth, cuBLAS
# bf16, FP8 GEMMs, MLA decode, each with the kernel variant that ran) and whole-model generation tokens/s on the GPU.
#
# Made for GPU machines without a JDK, Maven or network: `./moe4j gpu-bundle` on a development machine prepares
# build/gpu-bundle (jars, a Java runtime) and build/gpu-native/lib (libmoe4j_cuda, portable x86-64); carry those two
# folders along and run `bash bench/gpu.sh` there. The native libraries are rebuilt there (CMake + nvcc) only when
# the native sources differ from the ones they were built from; jars built from other Java sources are refused.
# With no bundle and a JDK + Maven at hand, the script makes the bundle first.
# Each section runs under a time limit and a failing or hanging one does not stop the next (a first run on a new card
# should show everything it can); the script exits 1 at the end when any failed, naming them.
# Usage: bench/gpu.sh [section...]   sections: tests ptxas speed model (default: all four, in that order)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf 'gpu.sh: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}
start=$(date +%s)
elapsed() { echo "$(($(date +%s) - start)) s"; }
sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(tests ptxas speed model)
for s in "${sections[@]}"; do
  case "$s" in tests | ptxas | speed | model) ;; *) die "unknown section '$s' (tests, ptxas, speed, model)" ;; esac
done
wanted() { [[ " ${sections[*]} " == *" $1 "* ]]; }
failed=()
# section NAME SECONDS COMMAND...: runs COMMAND under a time limit, records a failure and goes on
section() {
  local name=$1 limit=$2
  shift 2
  wanted "$name" || return 0
  echo "== $name ($(elapsed), limit ${limit} s)"
  local rc=0
  if declare -F "$1" >/dev/null; then # a function of this script: timeout needs a program, so a bash that has it
    timeout --kill-after=10 "$limit" bash -c "set -euo pipefail; $(declare -p java); $(declare -f "$1"); $*" || rc=$?
  else
    timeout --kill-after=10 "$limit" "$@" || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      say "$name: stopped at its ${limit} s limit"
    else
      say "$name: failed (exit $rc)"
    fi
    failed+=("$name")
  fi
}

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

bundle=build/gpu-bundle
if [ ! -f "$bundle/jre.tar.xz" ]; then
  say "no $bundle: making it (needs a JDK >= 22, Maven and nvcc)"
  ./moe4j gpu-bundle
fi
# the files whose hash differs from the record RECORDED (tools/sources-hash.sh PART --files), at most ten
changed_sources() {
  diff <(cat "$2" 2>/dev/null) <(tools/sources-hash.sh "$1" --files) | grep '^[<>]' | awk '{print $3}' | sort -u |
    head -10 | sed 's/^/  /' || true
}
if [ "$(cat "$bundle/java-sources.sha256")" != "$(tools/sources-hash.sh java)" ]; then
  changed_sources java "$bundle/java-sources.files" >&2
  die "$bundle was built from other Java sources than these (above): run ./moe4j gpu-bundle again before carrying it"
fi

echo "== native build ($(elapsed))"
native=build/gpu-native
if [ "$(cat "$native/lib/sources.sha256" 2>/dev/null)" = "$(tools/sources-hash.sh native)" ] &&
  [ -f "$native/lib/libmoe4j_cuda.so" ]; then
  echo "reusing the carried $native/lib (built from these native sources)"
else
  say "rebuilding $native: the carried one is missing or was built from other native sources:"
  changed_sources native "$native/lib/sources.files" >&2
  command -v nvcc >/dev/null || die "the native libraries must be rebuilt and nvcc is not found"
  cmake -S . -B "$native" -DCMAKE_BUILD_TYPE=Release -DMOE4J_NATIVE_ARCH=OFF -DMOE4J_BENCH=OFF >/dev/null
  cmake --build "$native" -j "$(nproc)" >/dev/null
  tools/sources-hash.sh native >"$native/lib/sources.sha256"
  tools/sources-hash.sh native --files >"$native/lib/sources.files"
fi

jre=/tmp/moe4j-gpu-jre
if [ ! -x "$jre/bin/java" ] || [ "$(cat "$jre/id" 2>/dev/null)" != "$(cat "$bundle/jre.id")" ]; then
  rm -rf "$jre" /tmp/gpu-jre && tar -C /tmp -xJf "$bundle/jre.tar.xz" && mv /tmp/gpu-jre "$jre"
  cp "$bundle/jre.id" "$jre/id"
fi
java=("$jre/bin/java" --enable-native-access=ALL-UNNAMED -Dmoe4j.library=moe4j_cuda
  -Dmoe4j.library.path="$PWD/$native/lib" -cp "$PWD/$bundle/jars/*")

# From java/, as Maven runs them (the fixtures' paths are relative to it); the multi-GPU tests only where they can run.
gpu_tests() {
  local gpus exclude=()
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  [ "$gpus" -ge 2 ] || exclude=(--exclude multi-gpu)
  cd java && "${java[@]}" dev.moe4j.testing.TaggedTests gpu "${exclude[@]}"
}
section tests 240 gpu_tests

ptxas_report() {
  for f in native/src/cuda/*.cu; do
    nvcc -std=c++17 -c "$f" -o /dev/null -Inative/include -DMOE4J_WITH_CUDA=1 -Xptxas -v \
      -gencode=arch=compute_90a,code=sm_90a >"/tmp/ptxas-$(basename "$f").log" 2>&1 &
  done
  wait
  for f in native/src/cuda/*.cu; do
    # files without kernels (context.cu, memory.cu) print nothing
    { grep -E "Compiling entry|registers|spill" "/tmp/ptxas-$(basename "$f").log" || true; } |
      sed -e 's/ptxas info    : //' -e 's/Compiling entry function //'
  done
}
section ptxas 120 ptxas_report

section speed 180 "${java[@]}" dev.moe4j.bench.GpuReport

# Whole-model generation on GPU 0: the V2-Lite-shaped 4-layer checkpoint of the CPU benchmarks (bench/RESULTS.md),
# tokens/s and decode weight bytes per step, to set beside the copy bandwidth above.
whole_model() {
  local model=/tmp/moe4j-gpu-model/v2-lite-4-layers-v102400
  [ -f "$model/config.json" ] ||
    "${java[@]}" dev.moe4j.cli.Main make-model --preset v2-lite --layers 4 --vocab 102400 --out "$model"
  "${java[@]}" dev.moe4j.cli.Main bench-generate --model "$model" --gpu --quantize --batch 1,16 --prompt-tokens 128 \
    --new-tokens 32 --reps 1
}
section model 240 whole_model

if [ ${#failed[@]} -gt 0 ]; then
  say "done in $(elapsed); FAILED: ${failed[*]}"
  exit 1
fi
echo "== done in $(elapsed)"
