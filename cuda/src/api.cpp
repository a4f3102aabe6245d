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

template <class Api>
struct Loaded {
    std::unique_ptr<Api> api;
    std::string why;  // when api is null
};

// Opens the first library of `names` that loads and fills the table with fill(api); a missing
// symbol leaves api null with the reason.
template <class Api, class Fill>
Loaded<Api> load(std::initializer_list<const char*> names, Fill fill) {
    Loaded<Api> s;
    auto lib = SharedLibrary::open(names, &s.why);
    if (!lib) return s;
    try {
        auto api = std::make_unique<Api>();
        api->lib = std::move(lib);
        fill(*api);
        s.api = std::move(api);
    } catch (const std::exception& e) {
        s.why = e.what();
    }
    return s;
}

Loaded<DriverApi> load_driver() {
    Loaded<DriverApi> s = load<DriverApi>({"libcuda.so.1", "libcuda.so"}, [](DriverApi& api) {
        LIBTUNE_CUDA_DRIVER_FUNCTIONS(LIBTUNE_CUDA_LOAD)
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
Loaded<NvrtcApi> load_nvrtc() {
    return load<NvrtcApi>({"libnvrtc.so." LIBTUNE_STR(LIBTUNE_CUDA_MAJOR), "libnvrtc.so"},
                          [](NvrtcApi& api) { LIBTUNE_NVRTC_FUNCTIONS(LIBTUNE_CUDA_LOAD) });
}

Loaded<CublasLtApi> load_cublaslt() {
    return load<CublasLtApi>({"libcublasLt.so." LIBTUNE_STR(LIBTUNE_CUDA_MAJOR), "libcublasLt.so"},
                             [](CublasLtApi& api) { LIBTUNE_CUBLASLT_FUNCTIONS(LIBTUNE_CUDA_LOAD) });
}

}  // namespace

const CublasLtApi* cublaslt_api(std::string* why) {
    static const Loaded<CublasLtApi> state = load_cublaslt();
    if (!state.api && why) *why = state.why;
    return state.api.get();
}

const DriverApi* driver_api(std::string* why) {
    static const Loaded<DriverApi> state = load_driver();
    if (!state.api && why) *why = state.why;
    return state.api.get();
}

const NvrtcApi* nvrtc_api(std::string* why) {
    static const Loaded<NvrtcApi> state = load_nvrtc();
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
