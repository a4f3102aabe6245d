// The CUDA driver API and NVRTC, loaded with dlopen at run time: a binary built with CUDA
// support starts (and reports "no CUDA device") on a machine without libcuda.so.1 or NVRTC.
// Internal to libtune's CUDA backend; types come from the toolkit's headers.
#pragma once

#include <cublasLt.h>
#include <cuda.h>
#include <nvrtc.h>

#include <memory>
#include <string>

#include "tune/shared_library.hpp"

namespace tune::cuda {

// The driver entry points libtune uses. The macro-expanded names (cuMemAlloc -> cuMemAlloc_v2)
// are the ones looked up, so each pointer has the ABI its header declares.
#define LIBTUNE_CUDA_DRIVER_FUNCTIONS(X)                                                       \
    X(cuInit) X(cuDriverGetVersion) X(cuGetErrorName) X(cuGetErrorString) X(cuDeviceGetCount)  \
    X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceGetAttribute) X(cuDeviceTotalMem)             \
    X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuCtxSetCurrent)                \
    X(cuCtxSynchronize) X(cuMemAlloc) X(cuMemFree) X(cuMemcpyHtoD) X(cuMemcpyDtoH)            \
    X(cuMemsetD8) X(cuMemsetD32Async) X(cuModuleLoadData) X(cuModuleUnload)                   \
    X(cuModuleGetFunction) X(cuFuncSetAttribute) X(cuLaunchKernel) X(cuEventCreate)            \
    X(cuEventDestroy) X(cuEventRecord) X(cuEventSynchronize) X(cuEventElapsedTime)             \
    X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize) X(cuMemsetD8Async)             \
    X(cuTensorMapEncodeTiled)

#define LIBTUNE_NVRTC_FUNCTIONS(X)                                                              \
    X(nvrtcVersion) X(nvrtcGetErrorString) X(nvrtcCreateProgram) X(nvrtcDestroyProgram)         \
    X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize) X(nvrtcGetProgramLog) X(nvrtcGetCUBINSize) \
    X(nvrtcGetCUBIN) X(nvrtcAddNameExpression) X(nvrtcGetLoweredName)

#define LIBTUNE_CUBLASLT_FUNCTIONS(X)                                                              \
    X(cublasLtGetVersion) X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtMatmulDescCreate)             \
    X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute) X(cublasLtMatrixLayoutCreate)       \
    X(cublasLtMatrixLayoutDestroy) X(cublasLtMatrixLayoutSetAttribute) X(cublasLtMatmulPreferenceCreate) \
    X(cublasLtMatmulPreferenceDestroy) X(cublasLtMatmulPreferenceSetAttribute)                         \
    X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmul)

struct DriverApi {
    std::shared_ptr<SharedLibrary> lib;
    LIBTUNE_CUDA_DRIVER_FUNCTIONS(LIBTUNE_API_POINTER)
};

struct NvrtcApi {
    std::shared_ptr<SharedLibrary> lib;
    LIBTUNE_NVRTC_FUNCTIONS(LIBTUNE_API_POINTER)
};

struct CublasLtApi {
    std::shared_ptr<SharedLibrary> lib;
    LIBTUNE_CUBLASLT_FUNCTIONS(LIBTUNE_API_POINTER)
};

// Loaded once per process (thread-safe); nullptr when the library or cuInit fails, with the
// reason ("libcuda.so.1: cannot open shared object file", "cuInit: CUDA_ERROR_NO_DEVICE").
const DriverApi* driver_api(std::string* why = nullptr);
const NvrtcApi* nvrtc_api(std::string* why = nullptr);
const CublasLtApi* cublaslt_api(std::string* why = nullptr);

// Throws tune::Error "what: CUDA_ERROR_... (text)" unless r == CUDA_SUCCESS.
void check(CUresult r, const char* what);
// The driver API, or tune::Error("no CUDA device: <reason>").
const DriverApi& driver();

}  // namespace tune::cuda
