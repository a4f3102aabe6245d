#!/usr/bin/env bash
# Installs the Debian packages libtune needs (only those missing) and builds it in ./build.
# Safe to run again: apt is asked only when something is missing, CMake rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# ocl-icd-opencl-dev: Debian's dnnl CMake config looks for OpenCL (only a recommendation of libdnnl-dev).
packages=(build-essential cmake ninja-build pkg-config libsqlite3-dev nlohmann-json3-dev libcli11-dev
          catch2 libbenchmark-dev libopenblas-dev libdnnl-dev ocl-icd-opencl-dev libopenmpi-dev openmpi-bin
          python3-dev python3-venv python3-pip python3-setuptools python3-wheel pybind11-dev python3-pybind11
          python3-numpy python3-pytest chromium)
# The learned cost model: Eigen (Gaussian process) and XGBoost's C API (gradient-boosted trees).
packages+=(libeigen3-dev libxgboost-dev)
# The HIP backend: ROCm 5.2's headers and hiprtc (in libamdhip64) with its device libraries;
# kernels compile for gfx90a without a GPU. clang-19: its AMDGPU backend compiles them for
# gfx942 (MI300), which 5.2's hiprtc cannot (CTest hip_compile_sample_gfx942). The CUDA backend
# is built when a CUDA toolkit is installed (/usr/local/cuda; not a Debian package here).
packages+=(libamdhip64-dev rocm-device-libs clang-19)
# The libFuzzer build of the fuzz targets (a test builds and runs it; see fuzz/README.md).
packages+=(clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)"
