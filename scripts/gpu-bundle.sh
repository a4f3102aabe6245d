#!/bin/sh
# Packs the programs scripts/gpu-check.sh runs, from a CUDA-enabled build, with the shared
# libraries they need beyond the C runtime and the GPU driver, into one folder: for GPU
# machines that have a driver and CUDA 13 but not libtune's build dependencies (SQLite,
# OpenBLAS, oneDNN, Google Benchmark, ...). There: LIBTUNE_GPU_BIN=<folder> scripts/gpu-check.sh.
#   scripts/gpu-bundle.sh [build-folder] <bundle-folder>   (.gpu/ in the checkout is ignored by git)
set -eu
if [ $# -eq 1 ]; then build=build out=$1; elif [ $# -eq 2 ]; then build=$1 out=$2; else
  echo "usage: scripts/gpu-bundle.sh [build-folder] <bundle-folder>" >&2
  exit 2
fi
grep -q "LIBTUNE_WITH_CUDA:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null ||
  { echo "gpu-bundle: $build is not a CUDA-enabled libtune build (LIBTUNE_WITH_CUDA=ON)" >&2; exit 1; }
cmake --build "$build" --target tune_tests tune_cuda_device_tests tune_gpu_compile bench_cuda_gemm \
  bench_cuda_attention tune_cli
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for p in tests/tune_tests tests/tune_cuda_device_tests tests/tune_gpu_compile bench/bench_cuda_gemm \
         bench/bench_cuda_attention cli/tune; do
  strip --strip-unneeded -o "$out/bin/$(basename "$p")" "$build/$p"
done
# Libraries from ldd, less the C runtime, the C++ runtime (a GPU machine's is as new or newer)
# and anything the driver or toolkit provides (the programs dlopen those).
for f in "$out"/bin/*; do ldd "$f"; done | awk '$3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    case $name in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
      libcuda.so*|libnvrtc*|libcublas*) ;;
      *) cp -L "$path" "$out/lib/$name" ;;
    esac
  done
du -sh "$out"/bin "$out"/lib
