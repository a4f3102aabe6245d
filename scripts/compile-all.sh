#!/bin/sh
# Compiles every valid config of the GPU templates' default spaces (no GPU needed): CUDA with
# NVRTC for sm_80 and sm_90a (GEMM: the mma space for each element type and B layout, plus the
# default config for each epilogue, the wgmma space on sm_90a; attention: the flash space of
# each element type and head dim, prefill and GQA decode, and the backward space), HIP with hiprtc (GEMM for gfx90a and
# gfx1030, attention for gfx90a). Hours on 2 cores; run with --count first to see the numbers.
# Not part of CI (the CI tests compile a covering sample: tests/gpu_compile_check.cpp --sample).
#   scripts/compile-all.sh [build-dir] [extra tune_gpu_compile flags, e.g. --count, --op attention]
set -u
build=${1:-build}
[ $# -gt 0 ] && shift
bin="$build/tests/tune_gpu_compile"
if [ ! -x "$bin" ]; then
  echo "compile-all: $bin not found; build it: cmake --build $build --target tune_gpu_compile" >&2
  exit 2
fi
status=0
for backend in cuda hip; do
  "$bin" --backend "$backend" --all --threads "$(nproc)" "$@"
  rc=$?
  case $rc in 0) ;; 77) echo "compile-all: $backend skipped" ;; *) status=1 ;; esac
done
exit $status
