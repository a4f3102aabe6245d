#include "tune/hip/runtime.hpp"

#include <algorithm>
#include <mutex>

#include "tune/error.hpp"
#include "tune/hip/api.hpp"
#include "tune/shared_runtime.hpp"

namespace tune::hip {

bool hiprtc_available(std::string* why) { return hip_api(why) != nullptr; }

HiprtcCompiler::HiprtcCompiler() {
    std::string why;
    const HipApi* api = hip_api(&why);
    if (!api) throw Error("hiprtc not available: " + why);
    version_ = "hiprtc " + hiprtc_version(*api).text;
}

CompileResult HiprtcCompiler::compile(const CompileRequest& req) const {
    // hiprtc runs clang in this process, and clang parses its options into LLVM's process-wide
    // option registry; ROCm 5.2's hiprtc does not guard it, so two compiles at once can abort
    // the process ("Option 'h' registered more than once"). One compile at a time per process,
    // whatever compiler object or thread asks (compiles still overlap measurement).
    static std::mutex one_at_a_time;
    const std::lock_guard lock(one_at_a_time);
    const HipApi& api = *hip_api();
    CompileResult result;
    auto fail = [&](const std::string& what, hiprtcResult r) {
        result.ok = false;
        result.log = what + ": " + api.hiprtcGetErrorString(r) + (result.log.empty() ? "" : "\n" + result.log);
        return result;
    };
    std::vector<const char*> texts, names;
    for (const auto& [name, text] : req.headers) names.push_back(name.c_str()), texts.push_back(text.c_str());
    hiprtcProgram prog = nullptr;
    hiprtcResult r = api.hiprtcCreateProgram(&prog, req.source.c_str(), req.source_name.c_str(), int(texts.size()),
                                             texts.data(), names.data());
    if (r != HIPRTC_SUCCESS) return fail("hiprtcCreateProgram", r);
    struct Destroy {
        const HipApi& api;
        hiprtcProgram& p;
        ~Destroy() { api.hiprtcDestroyProgram(&p); }
    } destroy{api, prog};
    if (!req.instance.empty() && (r = api.hiprtcAddNameExpression(prog, req.instance.c_str())) != HIPRTC_SUCCESS)
        return fail("hiprtcAddNameExpression " + req.instance, r);
    std::vector<std::string> opts = {"--offload-arch=" + req.arch, "-O3", "-std=c++17"};
    opts.insert(opts.end(), req.options.begin(), req.options.end());
    std::vector<const char*> ptrs;
    for (const auto& o : opts) ptrs.push_back(o.c_str());
    const hiprtcResult compiled = api.hiprtcCompileProgram(prog, int(ptrs.size()), ptrs.data());
    std::size_t log_size = 0;
    if (api.hiprtcGetProgramLogSize(prog, &log_size) == HIPRTC_SUCCESS && log_size > 1) {
        std::string log(log_size, '\0');
        if (api.hiprtcGetProgramLog(prog, log.data()) == HIPRTC_SUCCESS) result.log = log.c_str();
    }
    if (compiled != HIPRTC_SUCCESS) return fail("compile " + req.instance + " for " + req.arch, compiled);
    if (!req.instance.empty()) {
        const char* lowered = nullptr;
        if ((r = api.hiprtcGetLoweredName(prog, req.instance.c_str(), &lowered)) != HIPRTC_SUCCESS || !lowered)
            return fail("hiprtcGetLoweredName " + req.instance, r);
        result.entry = lowered;
    }
    std::size_t size = 0;
    if ((r = api.hiprtcGetCodeSize(prog, &size)) != HIPRTC_SUCCESS) return fail("hiprtcGetCodeSize", r);
    if (size == 0) {
        result.log = "no code object produced for '" + req.arch + "'\n" + result.log;
        return result;
    }
    result.binary.resize(size);
    if ((r = api.hiprtcGetCode(prog, result.binary.data())) != HIPRTC_SUCCESS) return fail("hiprtcGetCode", r);
    result.ok = true;
    return result;
}

namespace {

// The archs the HIP templates are written for, and the oldest hiprtc that compiles for each
// (major * 100 + minor): MI300 (gfx94x) arrived with ROCm 5.7, and 5.2's hiprtc crashes on it.
struct KnownArch {
    const char* name;
    int min_hiprtc;
};
constexpr KnownArch kKnownArchs[] = {{"gfx900", 0},   {"gfx906", 0},   {"gfx908", 0},  {"gfx90a", 0},
                                     {"gfx940", 507}, {"gfx941", 507}, {"gfx942", 507}, {"gfx1030", 0},
                                     {"gfx1100", 0}};

const KnownArch& known_arch(const std::string& arch) {
    std::string names;
    for (const auto& a : kKnownArchs) {
        if (arch == a.name) return a;
        names += (names.empty() ? "" : ", ") + std::string(a.name);
    }
    throw Error("HIP arch '" + arch + "': not supported (" + names + ")");
}

// Throws unless the loaded hiprtc is new enough for `arch` (a known arch).
void require_hiprtc_for(const KnownArch& arch) {
    std::string why;
    const HipApi* api = hip_api(&why);
    if (!api) throw Error("hiprtc not available: " + why);
    const HiprtcVersion loaded = hiprtc_version(*api);
    if (loaded.major_minor >= arch.min_hiprtc) return;
    const std::string needed = std::to_string(arch.min_hiprtc / 100) + "." + std::to_string(arch.min_hiprtc % 100);
    throw Error("HIP arch '" + std::string(arch.name) + "' needs hiprtc " + needed + " or newer (ROCm " + needed +
                "+); the loaded hiprtc is " + loaded.text);
}

std::unique_ptr<CompileService> make_compiler(const RuntimeOptions& o, std::shared_ptr<const KernelCompiler> compiler) {
    return make_compile_service(compiler ? std::move(compiler) : std::make_shared<HiprtcCompiler>(), o.cache_dir,
                                o.compile_threads);
}

}  // namespace

std::shared_ptr<Runtime> Runtime::compile_only(std::string arch, RuntimeOptions options,
                                               std::shared_ptr<const KernelCompiler> compiler) {
    const KnownArch& known = known_arch(arch);
    if (!compiler) require_hiprtc_for(known);
    std::shared_ptr<Runtime> r(new Runtime());
    r->device_.backend = Backend::hip;
    r->device_.arch = std::move(arch);
    r->device_.model = "compile-only " + r->device_.arch;
    r->compiler_ = make_compiler(options, std::move(compiler));
    return r;
}

std::shared_ptr<Runtime> Runtime::for_device(int ordinal, RuntimeOptions options) {
    std::shared_ptr<Runtime> r(new Runtime());
    r->device_ = detect_device(ordinal);
    require_hiprtc_for(known_arch(r->device_.arch));
    r->ordinal_ = ordinal;
    r->compiler_ = make_compiler(options, nullptr);
    const HipApi& h = runtime_api();
    check(h.hipSetDevice(ordinal), "hipSetDevice");
    hipStream_t s = nullptr;
    check(h.hipStreamCreate(&s), "hipStreamCreate");
    r->stream_ = s;
    return r;
}

Runtime::~Runtime() {
    if (stream_) (void)runtime_api().hipStreamDestroy(static_cast<hipStream_t>(stream_));
}

void* Runtime::stream() const {
    if (!stream_) throw Error("no HIP device: compile-only runtime for " + device_.arch);
    check(runtime_api().hipSetDevice(ordinal_), "hipSetDevice");
    return stream_;
}

std::shared_ptr<Runtime> shared_runtime() { return shared_device_runtime<Runtime, RuntimeOptions>(); }

DeviceMemory::DeviceMemory(std::size_t bytes) : bytes_(bytes) {
    if (bytes) check(runtime_api().hipMalloc(&ptr_, bytes), "hipMalloc");
}
DeviceMemory::~DeviceMemory() {
    if (ptr_) (void)runtime_api().hipFree(ptr_);  // nothing to do about a failure here
}
DeviceMemory& DeviceMemory::operator=(DeviceMemory&& o) noexcept {
    if (this != &o) {
        if (ptr_) (void)runtime_api().hipFree(ptr_);  // nothing to do about a failure here
        ptr_ = o.ptr_, bytes_ = o.bytes_;
        o.ptr_ = nullptr, o.bytes_ = 0;
    }
    return *this;
}

Module::Module(const std::string& binary, const std::string& entry) {
    const HipApi& h = runtime_api();
    hipModule_t m = nullptr;
    check(h.hipModuleLoadData(&m, binary.data()), "hipModuleLoadData");
    module_ = m;
    hipFunction_t f = nullptr;
    check(h.hipModuleGetFunction(&f, m, entry.c_str()), ("hipModuleGetFunction " + entry).c_str());
    function_ = f;
}
Module::~Module() {
    if (module_) (void)runtime_api().hipModuleUnload(static_cast<hipModule_t>(module_));
}

HipAccelerator::HipAccelerator(std::shared_ptr<const Runtime> runtime) : runtime_(std::move(runtime)) {
    require(runtime_ != nullptr, "HipAccelerator: null runtime");
    runtime_->stream();  // throws "no HIP device" for a compile-only runtime
    flush_ = DeviceMemory(std::size_t(2 * std::max<std::int64_t>(runtime_->device().l2_bytes, 32 << 20)));
    hipEvent_t a = nullptr, b = nullptr;
    check(runtime_api().hipEventCreate(&a), "hipEventCreate");
    start_ = a;
    check(runtime_api().hipEventCreate(&b), "hipEventCreate");
    stop_ = b;
}

HipAccelerator::~HipAccelerator() {
    for (void* e : {start_, stop_})
        if (e) (void)runtime_api().hipEventDestroy(static_cast<hipEvent_t>(e));
}

OpArgs HipAccelerator::upload(const Workload& w) {
    runtime_->stream();
    return buffers_.upload(
        w,
        [](DeviceMemory& m, const void* host, std::size_t bytes) {
            check(runtime_api().hipMemcpyHtoD(m.get(), const_cast<void*>(host), bytes), "hipMemcpyHtoD");
        },
        [](const DeviceMemory& m) { return m.get(); });
}

void HipAccelerator::poison_outputs() {
    auto s = static_cast<hipStream_t>(runtime_->stream());
    for (const auto& m : buffers_.outputs())  // quiet NaN in every f32 element
        check(runtime_api().hipMemsetD32Async(m.get(), int(0x7fc00000), m.bytes() / 4, s), "hipMemsetD32Async");
}

void HipAccelerator::download(Workload& w) {
    auto s = static_cast<hipStream_t>(runtime_->stream());
    check(runtime_api().hipStreamSynchronize(s), "hipStreamSynchronize");
    buffers_.download(w, [](void* host, const DeviceMemory& m, std::size_t bytes) {
        check(runtime_api().hipMemcpyDtoH(host, m.get(), bytes), "hipMemcpyDtoH");
    });
}

double HipAccelerator::time_calls(const std::function<void()>& run, int calls, bool flush_l2) {
    const HipApi& h = runtime_api();
    auto s = static_cast<hipStream_t>(runtime_->stream());
    if (flush_l2) check(h.hipMemsetD8Async(flush_.get(), 0, flush_.bytes(), s), "hipMemsetD8Async(L2 flush)");
    check(h.hipEventRecord(static_cast<hipEvent_t>(start_), s), "hipEventRecord");
    for (int i = 0; i < calls; ++i) run();
    check(h.hipEventRecord(static_cast<hipEvent_t>(stop_), s), "hipEventRecord");
    check(h.hipEventSynchronize(static_cast<hipEvent_t>(stop_)), "hipEventSynchronize");
    float ms = 0;
    check(h.hipEventElapsedTime(&ms, static_cast<hipEvent_t>(start_), static_cast<hipEvent_t>(stop_)),
          "hipEventElapsedTime");
    return double(ms) * 1e-3 / calls;
}

}  // namespace tune::hip
