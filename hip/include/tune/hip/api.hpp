// The HIP runtime and hiprtc (both in libamdhip64), loaded with dlopen at run time: a build
// with HIP support starts (and reports "no HIP device") on a machine without ROCm or a GPU.
// Internal to libtune's HIP backend; types come from ROCm's headers.
#pragma once

#include <hip/hip_runtime_api.h>
#include <hip/hiprtc.h>

#include <string>

#include "tune/device.hpp"
#include "tune/shared_library.hpp"

namespace tune::hip {

#define LIBTUNE_HIP_FUNCTIONS(X)                                                                       \
    X(hipInit) X(hipGetDeviceCount) X(hipGetDeviceProperties) X(hipDriverGetVersion) X(hipGetErrorName) \
    X(hipSetDevice) X(hipFree) X(hipMemcpyHtoD) X(hipMemcpyDtoH) X(hipMemsetD32Async) X(hipMemsetD8Async) \
    X(hipModuleLoadData) X(hipModuleUnload) X(hipModuleGetFunction) X(hipModuleLaunchKernel)            \
    X(hipEventCreate) X(hipEventDestroy) X(hipEventRecord) X(hipEventSynchronize) X(hipEventElapsedTime) \
    X(hipStreamCreate) X(hipStreamDestroy) X(hipStreamSynchronize) X(hipRuntimeGetVersion) X(hiprtcGetErrorString) \
    X(hiprtcCreateProgram) X(hiprtcDestroyProgram) X(hiprtcCompileProgram) X(hiprtcGetProgramLogSize)    \
    X(hiprtcGetProgramLog) X(hiprtcGetCodeSize) X(hiprtcGetCode) X(hiprtcAddNameExpression)               \
    X(hiprtcGetLoweredName)

struct HipApi {
    std::shared_ptr<SharedLibrary> lib;
    LIBTUNE_HIP_FUNCTIONS(LIBTUNE_API_POINTER)
    hipError_t (*hipMalloc)(void**, size_t) = nullptr;  // the header overloads it for C++
};

// Loaded once per process; nullptr with the reason when libamdhip64 is missing.
const HipApi* hip_api(std::string* why = nullptr);
// The API with a usable device (hipInit and a device count checked), or tune::Error
// ("no HIP device: <reason>").
const HipApi& runtime_api();
// Throws tune::Error "what: hipError... " unless e == hipSuccess.
void check(hipError_t e, const char* what);

// The loaded hiprtc's version: major * 100 + minor (ROCm 5.2: 502) and as text ("5.2.21153").
// ROCm's hiprtcVersion answers 9.0 whatever the release, so this is the version of the HIP
// runtime hiprtc ships in (hipRuntimeGetVersion; no device needed).
struct HiprtcVersion {
    int major_minor = 0;
    std::string text;
};
HiprtcVersion hiprtc_version(const HipApi& api);

// Fingerprint of HIP device `ordinal`: name, gfx arch, CUs, memory, L2, clocks, driver and
// hiprtc versions. Throws tune::Error("no HIP device: ...") when there is none.
DeviceInfo detect_device(int ordinal = 0);

}  // namespace tune::hip
