#!/bin/sh
# Compiles every valid config of the GPU templates' default spaces (no GPU needed): CUDA with
# NVRTC for sm_80 and sm_90a (GEMM: the mma space for each element type and B layout, plus the
# default config for each epilogue, the wgmma space on sm_90a; attention: the flash space of
# each element type and head dim, prefill and GQA decode, and the backward space), HIP with hiprtc (GEMM for gfx90a and
# gfx1030, attention for gfx90a) and HIP for gfx942 (MI300: GEMM and attention) with clang-19's AMDGPU backend, which
# ROCm 5.2's hiprtc cannot target. Hours on 2 cores; run with --count first to see the numbers.
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
# The last sweep is gfx942 (MI300) through clang: its flags are split into words on purpose.
for sweep in "--backend cuda" "--backend hip" "--backend hip --compiler clang --arch gfx942"; do
  "$bin" $sweep --all --threads "$(nproc)" "$@"
  rc=$?
  case $rc in 0) ;; 77) echo "compile-all: $sweep skipped" ;; *) status=1 ;; esac
done
exit $status
