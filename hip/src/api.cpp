#include "tune/hip/api.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "tune/error.hpp"

namespace tune::hip {

std::string hiprtc_library_for(const std::string& runtime) {
    const std::size_t slash = runtime.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : runtime.substr(0, slash + 1);
    const std::string file = runtime.substr(dir.size()), stem = "libamdhip64";
    if (file.rfind(stem, 0) != 0) return dir + "libhiprtc.so";
    return dir + "libhiprtc" + file.substr(stem.size());
}

std::vector<std::string> hip_runtime_candidates(const char* rocm_path) {
    std::vector<std::string> out;
    auto releases = [&](const std::string& dir) {
        for (const char* name : {"libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5", "libamdhip64.so"})
            out.push_back(dir + name);
    };
    if (rocm_path && *rocm_path) releases(std::string(rocm_path) + "/lib/");
    releases("");
    releases("/opt/rocm/lib/");
    return out;
}

LoadedApi<HipApi> load_hip_api(const std::vector<std::string>& runtimes) {
    LoadedApi<HipApi> s;
    auto note = [&](const std::string& reason) { s.why += (s.why.empty() ? "" : "; ") + reason; };
    for (const std::string& name : runtimes) {
        std::string why;
        auto lib = SharedLibrary::open(std::vector<std::string>{name}, &why);
        if (!lib) {
            note(why);
            continue;
        }
        std::shared_ptr<SharedLibrary> rtc = lib;
        if (!lib->find("hiprtcCreateProgram")) {  // ROCm 6+: hiprtc is a library of its own
            rtc = SharedLibrary::open(std::vector<std::string>{hiprtc_library_for(name)}, &why);
            if (!rtc) {
                note(name + " has no hiprtc, and " + why);
                continue;
            }
        }
        try {
            auto loaded = std::make_unique<HipApi>();
            HipApi& api = *loaded;
            api.lib = std::move(lib);
            api.rtc_lib = std::move(rtc);
            LIBTUNE_HIP_RUNTIME_FUNCTIONS(LIBTUNE_API_LOAD)
#define LIBTUNE_HIPRTC_LOAD(fn) api.fn = reinterpret_cast<decltype(api.fn)>(api.rtc_lib->symbol(LIBTUNE_STR(fn)));
            LIBTUNE_HIPRTC_FUNCTIONS(LIBTUNE_HIPRTC_LOAD)
#undef LIBTUNE_HIPRTC_LOAD
            api.hipMalloc = reinterpret_cast<decltype(api.hipMalloc)>(api.lib->symbol("hipMalloc"));
            s.api = std::move(loaded);
            s.why.clear();
            return s;
        } catch (const std::exception& e) {
            note(e.what());
        }
    }
    return s;
}

namespace {

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
    static const LoadedApi<HipApi> state = load_hip_api(hip_runtime_candidates(std::getenv("ROCM_PATH")));
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

DeviceInfo detect_device(int ordinal) { return detect_device(runtime_api(), ordinal); }

namespace {

// A property string as the runtime left it: up to its terminator, or empty without one.
std::string property_text(const char* field, std::size_t capacity) {
    const std::size_t n = strnlen(field, capacity);
    return n < capacity ? std::string(field, n) : std::string();
}

bool printable(char c) { return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) <= 0x7e; }
bool printable(const std::string& s) { return std::all_of(s.begin(), s.end(), [](char c) { return printable(c); }); }

// For an error message: unprintable bytes as '?', at most 64 characters.
std::string shown(std::string s) {
    for (char& c : s)
        if (!printable(c)) c = '?';
    return s.size() > 64 ? s.substr(0, 64) + "..." : s;
}

}  // namespace

DeviceInfo detect_device(const HipApi& h, int ordinal) {
    // Room behind the struct: a runtime newer than these headers may fill a longer layout.
    struct {
        hipDeviceProp_t prop;
        unsigned char spare[8192];
    } props{};
    check(h.hipGetDeviceProperties(&props.prop, ordinal), "hipGetDeviceProperties");
    const hipDeviceProp_t& prop = props.prop;
    const std::string name = property_text(prop.name, sizeof prop.name);
    // "gfx90a:sramecc+:xnack-": the target features follow the arch
    const std::string arch = property_text(prop.gcnArchName, sizeof prop.gcnArchName);
    if (name.empty() || !printable(name) || arch.rfind("gfx", 0) != 0 || !printable(arch) ||
        prop.multiProcessorCount <= 0)
        throw Error("hipGetDeviceProperties of " + h.lib->name() + " (HIP " + hiprtc_version(h).text +
                    ") did not fill ROCm 5's property layout, which this build reads: name '" + shown(name) +
                    "', arch '" + shown(arch) + "', " + std::to_string(prop.multiProcessorCount) + " compute units");
    DeviceInfo info;
    info.backend = Backend::hip;
    info.model = name;
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
    info.versions["hip_runtime_library"] = h.lib->name();
    return info;
}

}  // namespace tune::hip
