#include "tune/hip/api.hpp"

#include "tune/error.hpp"

namespace tune::hip {
namespace {

LoadedApi<HipApi> load_hip() {
    return load_api<HipApi>({"libamdhip64.so.5", "libamdhip64.so"}, [](HipApi& api) {
        LIBTUNE_HIP_FUNCTIONS(LIBTUNE_API_LOAD)
        api.hipMalloc = reinterpret_cast<decltype(api.hipMalloc)>(api.lib->symbol("hipMalloc"));
    });
}

struct DeviceState {
    const HipApi* api = nullptr;
    std::string why;
};

DeviceState find_device() {
    DeviceState s;
    const HipApi* api = hip_api(&s.why);
    if (!api) return s;
    int count = 0;
    if (hipError_t e = api->hipInit(0); e != hipSuccess) {
        s.why = std::string("hipInit: ") + api->hipGetErrorName(e);
    } else if (api->hipGetDeviceCount(&count) != hipSuccess || count == 0) {
        s.why = "the runtime reports no device";
    } else {
        s.api = api;
    }
    return s;
}

}  // namespace

const HipApi* hip_api(std::string* why) {
    static const LoadedApi<HipApi> state = load_hip();
    if (!state.api && why) *why = state.why;
    return state.api.get();
}

const HipApi& runtime_api() {
    static const DeviceState state = find_device();
    if (!state.api) throw Error("no HIP device: " + state.why);
    return *state.api;
}

void check(hipError_t e, const char* what) {
    if (e == hipSuccess) return;
    const HipApi* api = hip_api();
    throw Error(std::string(what) + ": " + (api ? api->hipGetErrorName(e) : "HIP error " + std::to_string(int(e))));
}

HiprtcVersion hiprtc_version(const HipApi& api) {
    int v = 0;  // HIP_VERSION: major * 10^7 + minor * 10^5 + patch
    check(api.hipRuntimeGetVersion(&v), "hipRuntimeGetVersion");
    const int major = v / 10000000, minor = v / 100000 % 100, patch = v % 100000;
    return {major * 100 + minor, std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch)};
}

DeviceInfo detect_device(int ordinal) {
    const HipApi& h = runtime_api();
    hipDeviceProp_t prop{};
    check(h.hipGetDeviceProperties(&prop, ordinal), "hipGetDeviceProperties");
    DeviceInfo info;
    info.backend = Backend::hip;
    info.model = prop.name;
    std::string arch = prop.gcnArchName;  // "gfx90a:sramecc+:xnack-": the target features follow
    info.arch = arch.substr(0, arch.find(':'));
    info.cores = prop.multiProcessorCount;
    info.l2_bytes = prop.l2CacheSize;
    info.memory_bytes = static_cast<std::int64_t>(prop.totalGlobalMem);
    int driver = 0;
    check(h.hipDriverGetVersion(&driver), "hipDriverGetVersion");
    info.versions["hip_driver"] = std::to_string(driver);
    info.versions["gcn_arch_name"] = arch;
    info.versions["sm_clock_mhz"] = std::to_string(prop.clockRate / 1000);
    info.versions["memory_clock_mhz"] = std::to_string(prop.memoryClockRate / 1000);
    info.versions["lds_per_block"] = std::to_string(prop.sharedMemPerBlock);
    info.versions["libtune"] = LIBTUNE_VERSION;
    info.versions["hiprtc"] = hiprtc_version(h).text;
    return info;
}

}  // namespace tune::hip
