#!/usr/bin/env bash
# Runs the CPU GEMM measurements quoted in docs/performance.md and keeps the raw results:
# bench_suite on the given filter (default: squares >= 1024 and the decode / 128-token layer
# shapes) and bench_fusion; JSON and the printed tables land in bench/results/.
# Usage: scripts/bench-cpu-gemm.sh [BENCHMARK_FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-square_(1024|2048|4096)/|_m(1|16|128)/}"
out="bench/results/cpu-$(hostname -s)-$(date -u +%Y-%m-%d)"
mkdir -p bench/results
cmake --build build --target bench_suite bench_fusion > /dev/null
./build/bench/bench_suite --benchmark_filter="$filter" --benchmark_min_time=0.2 \
  --benchmark_out="$out-suite.json" --benchmark_out_format=json | tee "$out-suite.txt"
./build/bench/bench_fusion | tee "$out-fusion.txt"
echo "results: $out-*"
