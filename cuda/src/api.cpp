#include "tune/cuda/api.hpp"

#include <dlfcn.h>

#include <mutex>

#include "tune/error.hpp"

namespace tune::cuda {

std::shared_ptr<SharedLibrary> SharedLibrary::open(std::initializer_list<const char*> names, std::string* why) {
    std::string errors;
    for (const char* n : names) {
        if (void* h = ::dlopen(n, RTLD_NOW | RTLD_LOCAL))
            return std::shared_ptr<SharedLibrary>(new SharedLibrary(h, n));  // private constructor
        const char* e = ::dlerror();
        errors += (errors.empty() ? "" : "; ") + std::string(e ? e : n);
    }
    if (why) *why = errors;
    return nullptr;
}

SharedLibrary::~SharedLibrary() { ::dlclose(handle_); }

void* SharedLibrary::symbol(const char* name) const {
    ::dlerror();
    void* p = ::dlsym(handle_, name);
    require(p != nullptr, name_ + ": symbol '" + std::string(name) + "' not found (library too old?)");
    return p;
}

namespace {

// Two-step stringizing expands the header's macros: cuMemAlloc -> "cuMemAlloc_v2".
#define LIBTUNE_STR2(x) #x
#define LIBTUNE_STR(x) LIBTUNE_STR2(x)
#define LIBTUNE_CUDA_LOAD(name) \
    api.name = reinterpret_cast<decltype(api.name)>(api.lib->symbol(LIBTUNE_STR(name)));

struct DriverState {
    std::unique_ptr<DriverApi> api;
    std::string why;
};

DriverState load_driver() {
    DriverState s;
    auto lib = SharedLibrary::open({"libcuda.so.1", "libcuda.so"}, &s.why);
    if (!lib) return s;
    try {
        auto api_ptr = std::make_unique<DriverApi>();
        DriverApi& api = *api_ptr;
        api.lib = std::move(lib);
        LIBTUNE_CUDA_DRIVER_FUNCTIONS(LIBTUNE_CUDA_LOAD)
        CUresult r = api.cuInit(0);
        if (r != CUDA_SUCCESS) {
            const char* name = nullptr;
            api.cuGetErrorName(r, &name);
            s.why = std::string("cuInit: ") + (name ? name : "error " + std::to_string(int(r)));
            return s;
        }
        int count = 0;
        if (api.cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) {
            s.why = "the driver reports no device";
            return s;
        }
        s.api = std::move(api_ptr);
    } catch (const std::exception& e) {
        s.why = e.what();
    }
    return s;
}

struct NvrtcState {
    std::unique_ptr<NvrtcApi> api;
    std::string why;
};

NvrtcState load_nvrtc() {
    NvrtcState s;
    // The toolkit's major version first (the ABI the headers describe), then any.
    auto lib = SharedLibrary::open({"libnvrtc.so." LIBTUNE_STR(LIBTUNE_CUDA_MAJOR), "libnvrtc.so"}, &s.why);
    if (!lib) return s;
    try {
        auto api_ptr = std::make_unique<NvrtcApi>();
        NvrtcApi& api = *api_ptr;
        api.lib = std::move(lib);
        LIBTUNE_NVRTC_FUNCTIONS(LIBTUNE_CUDA_LOAD)
        s.api = std::move(api_ptr);
    } catch (const std::exception& e) {
        s.why = e.what();
    }
    return s;
}

struct CublasLtState {
    std::unique_ptr<CublasLtApi> api;
    std::string why;
};

CublasLtState load_cublaslt() {
    CublasLtState s;
    auto lib = SharedLibrary::open({"libcublasLt.so." LIBTUNE_STR(LIBTUNE_CUDA_MAJOR), "libcublasLt.so"}, &s.why);
    if (!lib) return s;
    try {
        auto api_ptr = std::make_unique<CublasLtApi>();
        CublasLtApi& api = *api_ptr;
        api.lib = std::move(lib);
        LIBTUNE_CUBLASLT_FUNCTIONS(LIBTUNE_CUDA_LOAD)
        s.api = std::move(api_ptr);
    } catch (const std::exception& e) {
        s.why = e.what();
    }
    return s;
}

}  // namespace

const CublasLtApi* cublaslt_api(std::string* why) {
    static const CublasLtState state = load_cublaslt();
    if (!state.api && why) *why = state.why;
    return state.api.get();
}

const DriverApi* driver_api(std::string* why) {
    static const DriverState state = load_driver();
    if (!state.api && why) *why = state.why;
    return state.api.get();
}

const NvrtcApi* nvrtc_api(std::string* why) {
    static const NvrtcState state = load_nvrtc();
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
