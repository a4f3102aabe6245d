// The HIP runtime (libamdhip64) and hiprtc, loaded with dlopen at run time: a build with HIP
// support starts (and reports "no HIP device") on a machine without ROCm or a GPU. Internal to
// libtune's HIP backend; types come from ROCm's headers.
#pragma once

#include <hip/hip_runtime_api.h>
#include <hip/hiprtc.h>

#include <string>
#include <vector>

#include "tune/device.hpp"
#include "tune/shared_library.hpp"

namespace tune::hip {

// Only C functions whose ABI ROCm 5, 6 and 7 share. hipGetDeviceProperties is the unversioned
// symbol, which every release since ROCm 6 keeps as ROCm 5's layout (R0000), the one these
// headers declare; ROCm 6's own layout is behind a new name (hipGetDevicePropertiesR0600).
#define LIBTUNE_HIP_RUNTIME_FUNCTIONS(X)                                                                \
    X(hipInit) X(hipGetDeviceCount) X(hipGetDeviceProperties) X(hipDriverGetVersion) X(hipGetErrorName) \
    X(hipSetDevice) X(hipFree) X(hipMemcpyHtoD) X(hipMemcpyDtoH) X(hipMemsetD32Async) X(hipMemsetD8Async) \
    X(hipModuleLoadData) X(hipModuleUnload) X(hipModuleGetFunction) X(hipModuleLaunchKernel)            \
    X(hipEventCreate) X(hipEventDestroy) X(hipEventRecord) X(hipEventSynchronize) X(hipEventElapsedTime) \
    X(hipStreamCreate) X(hipStreamDestroy) X(hipStreamSynchronize) X(hipRuntimeGetVersion)
#define LIBTUNE_HIPRTC_FUNCTIONS(X)                                                                     \
    X(hiprtcGetErrorString) X(hiprtcCreateProgram) X(hiprtcDestroyProgram) X(hiprtcCompileProgram)       \
    X(hiprtcGetProgramLogSize) X(hiprtcGetProgramLog) X(hiprtcGetCodeSize) X(hiprtcGetCode)             \
    X(hiprtcAddNameExpression) X(hiprtcGetLoweredName)

struct HipApi {
    std::shared_ptr<SharedLibrary> lib;  // the HIP runtime
    // hiprtc: inside the runtime up to ROCm 5; from ROCm 6 its own libhiprtc.so.<major>.
    std::shared_ptr<SharedLibrary> rtc_lib;
    LIBTUNE_HIP_RUNTIME_FUNCTIONS(LIBTUNE_API_POINTER)
    LIBTUNE_HIPRTC_FUNCTIONS(LIBTUNE_API_POINTER)
    hipError_t (*hipMalloc)(void**, size_t) = nullptr;  // the header overloads it for C++
};

// The runtimes tried, in order: under `rocm_path` (the ROCM_PATH variable: an explicit
// choice) when set, then by the loader's search path, then under /opt/rocm (ROCm's default
// prefix, not always on that path); in each place the newest release first (a newer ROCm
// targets more archs), then the unversioned development link.
std::vector<std::string> hip_runtime_candidates(const char* rocm_path);
// The first of `runtimes` that loads together with its hiprtc: the runtime's own hiprtc
// symbols when it has them (ROCm 5), else hiprtc_library_for(runtime) (ROCm 6+). Without
// one, a null api and each candidate's reason.
LoadedApi<HipApi> load_hip_api(const std::vector<std::string>& runtimes);
// ROCm installs hiprtc beside the runtime, with the same major version:
// "/opt/rocm/lib/libamdhip64.so.6" -> "/opt/rocm/lib/libhiprtc.so.6".
std::string hiprtc_library_for(const std::string& runtime);

// load_hip_api(hip_runtime_candidates($ROCM_PATH)), once per process; nullptr with the
// reason when no runtime loads.
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
// The same from `api` (a loaded runtime with a device, hipInit done). Properties a runtime
// fills in a layout other than these headers' give a name or arch that is not text, or no
// compute units: refused with tune::Error naming the runtime, never taken as a fingerprint.
DeviceInfo detect_device(const HipApi& api, int ordinal);

}  // namespace tune::hip
