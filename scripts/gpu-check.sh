#!/bin/sh
# GPU check, unattended, on a machine with an NVIDIA GPU (driver + CUDA 13 NVRTC/cuBLASLt):
# builds the CUDA parts (or takes prebuilt ones, below), runs the numerical device tests one
# test case at a time (a hung kernel costs its own step, not the run), the GPU benchmarks
# (GEMM, then attention), `tune model --backend cuda`, then the host-side CUDA tests, and
# writes every result as JSON (plus logs) into the folder given as $1 or $OUT.
#   scripts/gpu-check.sh <results-folder>
# Environment:
#   GPU_CHECK_SECONDS  wall-clock budget for all steps (default 470); each step also has a cap
#   LIBTUNE_GPU_BIN    a folder made by scripts/gpu-bundle.sh (bin/ and lib/): no build, for
#                      GPU machines that lack libtune's build dependencies
#   GPU_CHECK_PACK     a .tar.gz of the results folder, refreshed after every step, so that what
#                      was measured survives the whole check being stopped
#   GPU_CHECK_BUDGET_GEMM / GPU_CHECK_BUDGET_ATTENTION   candidates per tuned shape (16 / 12)
set -u
out=${1:-${OUT:-}}
if [ -z "$out" ]; then
  echo "usage: scripts/gpu-check.sh <results-folder>   (or set OUT)" >&2
  exit 2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
t0=$(date +%s)
budget=${GPU_CHECK_SECONDS:-470}
status=0
PATH=$PATH:/usr/local/cuda/bin
export PATH

# The dlopen'd CUDA libraries: the toolkit's folder, else wherever the machine has them (a
# Python wheel's nvidia/*/lib, say).
for lib in libnvrtc.so.13 libcublasLt.so.13; do
  ldconfig -p 2>/dev/null | grep -q "$lib" && continue
  found=""
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$d/$lib" ] && found="$d/$lib" && break
  done
  [ -n "$found" ] || found=$(find /usr/local /opt /usr/lib -name "$lib" 2>/dev/null | head -n 1)
  [ -n "$found" ] && LD_LIBRARY_PATH=$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}

left() { echo $(( budget - ($(date +%s) - t0) )); }

pack() {
  [ -n "${GPU_CHECK_PACK:-}" ] && tar czf "$GPU_CHECK_PACK.tmp" -C "$(dirname "$out")" "$(basename "$out")" 2>/dev/null &&
    mv "$GPU_CHECK_PACK.tmp" "$GPU_CHECK_PACK"
  return 0
}

step() {  # step <name> <cap-s> <command...>: runs within min(cap, time left), logs to $out/<name>.log
  name=$1 limit=$2
  shift 2
  l=$(left)
  [ "$l" -lt "$limit" ] && limit=$l
  if [ "$limit" -lt 5 ]; then
    echo "{\"step\": \"$name\", \"rc\": null, \"skipped\": \"out of time\"}" >> "$out/steps.jsonl"
    echo "$name: skipped (out of time)"
    status=1
    return 1
  fi
  s=$(date +%s)
  timeout -k 5 "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  took=$(( $(date +%s) - s ))
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $took, \"cap\": $limit}" >> "$out/steps.jsonl"
  echo "$name: rc=$rc ($took s of $limit)"
  [ $rc -eq 0 ] || { status=1; tail -n 15 "$out/$name.log"; }
  pack
  return $rc
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; nproc; } > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

if [ -n "${LIBTUNE_GPU_BIN:-}" ]; then
  bin=$(cd "$LIBTUNE_GPU_BIN" && pwd)
  LD_LIBRARY_PATH=$bin/lib:$LD_LIBRARY_PATH
  tests=$bin/bin benches=$bin/bin cli=$bin/bin
  export LIBTUNE_KERNEL_CACHE=${LIBTUNE_KERNEL_CACHE:-/tmp/libtune-kernels}
  LD_LIBRARY_PATH=$LD_LIBRARY_PATH ldd "$bin"/bin/* | grep "not found" | sort -u | tee -a "$out/machine.txt"
else
  build=${LIBTUNE_GPU_BUILD:-$src/build-gpu}
  tests=$build/tests benches=$build/bench cli=$build/cli
  export LIBTUNE_KERNEL_CACHE=${LIBTUNE_KERNEL_CACHE:-$build/kernel-cache}
  # Only what the check runs (the CPU-only parts are built and tested in CI).
  step configure 90 cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLIBTUNE_WITH_CUDA=ON \
    -DLIBTUNE_WITH_HIP=OFF -DLIBTUNE_WITH_MPI=OFF -DLIBTUNE_BUILD_BENCH=ON -DLIBTUNE_BUILD_TESTS=ON \
    -DLIBTUNE_BUILD_CLI=ON || exit 1
  step build 300 cmake --build "$build" -j "$jobs" --target tune_tests tune_gpu_compile tune_cuda_device_tests \
    bench_cuda_gemm bench_cuda_attention tune_cli || exit 1
fi
export LD_LIBRARY_PATH

# Numerics on the device, one test case per step.
dev() {  # dev <name> <cap> <test-spec>
  step "device_$1" "$2" "$tests/tune_cuda_device_tests" "$3" -r junit -o "$out/device_$1.xml"
}
# The Hopper GEMM first: if it hangs, or leaves the context unusable (a launch or memory fault
# is sticky for the process), the GEMM benchmark tunes without it; wrong results alone are no
# reason, since tuning verifies every candidate.
unusable() {  # unusable <device step>: it hung, or a launch or memory fault ended it
  rc=$(grep "\"step\": \"device_$1\"" "$out/steps.jsonl" | tail -n 1 | sed 's/.*"rc": \([0-9a-z]*\).*/\1/')
  [ "$rc" = 124 ] || [ "$rc" = 137 ] ||
    grep -qE "ILLEGAL|MISALIGNED|LAUNCH_FAILED|LAUNCH_TIMEOUT|HARDWARE_STACK|unspecified launch failure" "$out/device_$1.log"
}
skip_wgmma=""
dev wgmma 45 "cuda.gemm.wgmma*"
if unusable wgmma; then
  skip_wgmma="--skip-template cuda.gemm.wgmma"
  echo "bench_cuda_gemm runs without cuda.gemm.wgmma"
fi

# The Hopper attention kernel likewise, before the attention benchmark tunes with it.
skip_attention=""
dev attention_wgmma 45 "cuda.attention.wgmma*"
if unusable attention_wgmma; then
  skip_attention="--skip-template cuda.attention.wgmma"
  echo "bench_cuda_attention runs without cuda.attention.wgmma"
fi

# Attention: forward hd128 8k TFLOP/s, decode GB/s at 8k / 32k keys, backward 4k.
# shellcheck disable=SC2086
step bench_cuda_attention 140 "$benches/bench_cuda_attention" --budget "${GPU_CHECK_BUDGET_ATTENTION:-10}" $skip_attention \
  --summary "$out/bench_cuda_attention_summary.json" --db "$out/bench_cuda_attention.sqlite" \
  --benchmark_min_time=0.05 --benchmark_out="$out/bench_cuda_attention.json" --benchmark_out_format=json

# The Hopper GEMM's pipeline knobs side by side (overlap x persistent at one tile shape) with
# cuBLAS's default pick, in one store: tune db show / SQL reads them.
if [ -z "$skip_wgmma" ]; then
  for n in 8192 4096; do
    step "ablation_wgmma_$n" 25 "$cli/tune" sweep --m $n --n $n --k $n --trans-b 1 --dtype bf16 --backend cuda \
      --template cuda.gemm.wgmma --only "block_m=128 block_n=256 consumers=2 stages=4 group_m=8" \
      --db "$out/ablation_wgmma.sqlite" -q
    step "ablation_cublas_$n" 15 "$cli/tune" sweep --m $n --n $n --k $n --trans-b 1 --dtype bf16 --backend cuda \
      --template cuda.gemm.cublaslt --only "algo=0" --db "$out/ablation_wgmma.sqlite" -q
  done
fi

# GEMM: tuning (budget per shape), then event-timed own vs cuBLAS vs tuned pick.
# shellcheck disable=SC2086
step bench_cuda_gemm 120 "$benches/bench_cuda_gemm" --budget "${GPU_CHECK_BUDGET_GEMM:-16}" $skip_wgmma \
  --summary "$out/bench_cuda_gemm_summary.json" --db "$out/bench_cuda_gemm.sqlite" --benchmark_min_time=0.05 \
  --benchmark_out="$out/bench_cuda_gemm.json" --benchmark_out_format=json

step tune_model_cuda 60 "$cli/tune" model "$src/examples/models/llama-3-8b.json" --backend cuda --dtype bf16 \
  --tokens 16 --budget 6 --db "$out/tune_model_cuda.sqlite"

# The rest of the numerics, the Dispatcher's reuse of cached binaries, the CLI on a model,
# host logic: as far as the budget goes.
dev mma_default 60 "cuda.gemm.mma default*"
dev attention_default 90 "cuda.attention.flash default*"
dev cublaslt 30 "cuda.gemm.cublaslt*"
dev backward_default 60 "cuda.attention.flash_backward default*"
dev mma_backward_default 60 "cuda.attention.mma_backward default*"
dev split_kv 30 "cuda.attention.flash split-KV*"
dev dispatcher 30 "instantiating a measured config*"
dev mma_covering 60 "cuda.gemm.mma covering*"
dev attention_covering 90 "cuda.attention.flash covering*"
dev backward_covering 60 "cuda.attention.flash_backward covering*"
dev mma_backward_covering 60 "cuda.attention.mma_backward covering*"
step cuda_unit_tests 30 "$tests/tune_tests" "[cuda],[gpu_attention]" -r junit -o "$out/cuda_unit_tests.xml"

echo "{\"total_seconds\": $(( $(date +%s) - t0 )), \"status\": $status}" > "$out/gpu-check.json"
pack
echo "gpu-check: status $status in $(( $(date +%s) - t0 )) s; results in $out"
exit $status
