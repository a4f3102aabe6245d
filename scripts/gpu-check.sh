#!/bin/sh
# GPU check, unattended, on a machine with an NVIDIA GPU (driver + CUDA toolkit 12.x/13.x):
# configures and builds the CUDA parts, runs the CUDA tests (host logic, the NVRTC compile
# sample, the numerical device tests that CPU-only CI skips) and the GPU benchmarks (attention,
# then GEMM), and
# writes every result as JSON (plus logs) into the folder given as $1 or $OUT. Sized for
# under 8 minutes on an H200 host with 16 cores; each step has its own time cap.
#   scripts/gpu-check.sh <results-folder>
set -u
out=${1:-${OUT:-}}
if [ -z "$out" ]; then
  echo "usage: scripts/gpu-check.sh <results-folder>   (or set OUT)" >&2
  exit 2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
build=${LIBTUNE_GPU_BUILD:-$src/build-gpu}
jobs=$(nproc)
t0=$(date +%s)
status=0
export LIBTUNE_KERNEL_CACHE="$build/kernel-cache"

step() {  # step <name> <timeout-s> <command...>: runs with a cap, logs to $out/<name>.log
  name=$1 limit=$2
  shift 2
  s=$(date +%s)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - s ))}" >> "$out/steps.jsonl"
  echo "$name: rc=$rc ($(( $(date +%s) - s )) s)"
  [ $rc -eq 0 ] || status=1
  return $rc
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv \
  > "$out/nvidia-smi.csv" 2>&1 || echo "nvidia-smi not found" > "$out/nvidia-smi.csv"
PATH=$PATH:/usr/local/cuda/bin
export PATH

# Build only what the check runs (the CPU-only parts are built and tested in CI).
step configure 60 cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLIBTUNE_WITH_CUDA=ON \
  -DLIBTUNE_BUILD_BENCH=ON -DLIBTUNE_BUILD_TESTS=ON -DLIBTUNE_BUILD_CLI=ON || exit 1
step build 240 cmake --build "$build" -j "$jobs" --target tune_tests tune_gpu_compile tune_cuda_device_tests \
  bench_cuda_gemm bench_cuda_attention tune_cli || exit 1

# Host logic of the CUDA backend, the compile sample, then the numerics on the device.
step cuda_unit_tests 40 "$build/tests/tune_tests" "[cuda],[gpu_attention]" -r junit -o "$out/cuda_unit_tests.xml"
step compile_sample 60 "$build/tests/tune_gpu_compile" --backend cuda --sample --threads "$jobs"
step device_tests 180 "$build/tests/tune_cuda_device_tests" -r junit -o "$out/device_tests.xml"

# Attention: cuda.attention.flash tuned (budget 16 per shape) and at its default config;
# forward hd128 8k TFLOP/s, decode at 8k / 32k keys GB/s.
step bench_cuda_attention 110 "$build/bench/bench_cuda_attention" --budget 16 \
  --summary "$out/bench_cuda_attention_summary.json" --db "$out/bench_cuda_attention.sqlite" \
  --benchmark_min_time=0.2 --benchmark_out="$out/bench_cuda_attention.json" --benchmark_out_format=json

# GEMM benchmarks: tuning (budget 24 per shape) then event-timed own vs cuBLAS vs tuned pick,
# in what is left of the 8 minutes (at least 60 s).
left=$(( 470 - ($(date +%s) - t0) ))
[ $left -ge 60 ] || left=60
step bench_cuda_gemm $left "$build/bench/bench_cuda_gemm" --budget 24 --summary "$out/bench_cuda_gemm_summary.json" \
  --db "$out/bench_cuda_gemm.sqlite" --benchmark_min_time=0.2 \
  --benchmark_out="$out/bench_cuda_gemm.json" --benchmark_out_format=json

echo "{\"total_seconds\": $(( $(date +%s) - t0 )), \"status\": $status}" > "$out/gpu-check.json"
echo "gpu-check: status $status in $(( $(date +%s) - t0 )) s; results in $out"
exit $status
