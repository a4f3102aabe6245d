#!/bin/sh
# Compiles every valid config of the CUDA GEMM templates' default spaces with NVRTC, for
# sm_80 and sm_90a (no GPU needed): the mma space for each element type and B layout (plus
# the default config for each epilogue), the wgmma space on sm_90a. Hours on 2 cores; run
# with --count first to see the numbers. Not part of CI (the CI test compiles a covering
# sample: tests/cuda_compile_check.cpp --sample).
#   scripts/compile-all.sh [build-dir] [extra tune_cuda_compile flags, e.g. --count]
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
bin="$build/tests/tune_cuda_compile"
if [ ! -x "$bin" ]; then
  echo "compile-all: $bin not found; build it: cmake --build $build --target tune_cuda_compile" >&2
  exit 2
fi
exec "$bin" --all --threads "$(nproc)" "$@"
