#include "tune/cuda/api.hpp"

#include <mutex>

#include "tune/error.hpp"

namespace tune::cuda {

namespace {

LoadedApi<DriverApi> load_driver() {
    LoadedApi<DriverApi> s = load_api<DriverApi>({"libcuda.so.1", "libcuda.so"}, [](DriverApi& api) {
        LIBTUNE_CUDA_DRIVER_FUNCTIONS(LIBTUNE_API_LOAD)
    });
    if (!s.api) return s;
    // A driver without a usable device is no driver for us.
    const DriverApi& api = *s.api;
    if (CUresult r = api.cuInit(0); r != CUDA_SUCCESS) {
        const char* name = nullptr;
        api.cuGetErrorName(r, &name);
        s.why = std::string("cuInit: ") + (name ? name : "error " + std::to_string(int(r)));
        s.api.reset();
    } else if (int count = 0; api.cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) {
        s.why = "the driver reports no device";
        s.api.reset();
    }
    return s;
}

// The toolkit's major version first (the ABI the headers describe), then any.
LoadedApi<NvrtcApi> load_nvrtc() {
    return load_api<NvrtcApi>({"libnvrtc.so." LIBTUNE_STR(LIBTUNE_CUDA_MAJOR), "libnvrtc.so"},
                          [](NvrtcApi& api) { LIBTUNE_NVRTC_FUNCTIONS(LIBTUNE_API_LOAD) });
}

LoadedApi<CublasLtApi> load_cublaslt() {
    return load_api<CublasLtApi>({"libcublasLt.so." LIBTUNE_STR(LIBTUNE_CUDA_MAJOR), "libcublasLt.so"},
                             [](CublasLtApi& api) { LIBTUNE_CUBLASLT_FUNCTIONS(LIBTUNE_API_LOAD) });
}

}  // namespace

const CublasLtApi* cublaslt_api(std::string* why) {
    static const LoadedApi<CublasLtApi> state = load_cublaslt();
    if (!state.api && why) *why = state.why;
    return state.api.get();
}

const DriverApi* driver_api(std::string* why) {
    static const LoadedApi<DriverApi> state = load_driver();
    if (!state.api && why) *why = state.why;
    return state.api.get();
}

const NvrtcApi* nvrtc_api(std::string* why) {
    static const LoadedApi<NvrtcApi> state = load_nvrtc();
    if (!state.api && why) *why = state.why;
    return state.api.get();
}

const DriverApi& driver() {
    std::string why;
    const DriverApi* api = driver_api(&why);
    if (!api) throw Error("no CUDA device: " + why);
    return *api;
}

void check(CUresult r, const char* what) {
    if (r == CUDA_SUCCESS) return;
    const char* name = nullptr;
    const char* text = nullptr;
    if (const DriverApi* api = driver_api()) {
        api->cuGetErrorName(r, &name);
        api->cuGetErrorString(r, &text);
    }
    throw Error(std::string(what) + ": " + (name ? name : "CUDA error " + std::to_string(int(r))) +
                (text ? std::string(" (") + text + ")" : ""));
}

}  // namespace tune::cuda
