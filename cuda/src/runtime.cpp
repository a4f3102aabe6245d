#include "tune/cuda/runtime.hpp"

#include "tune/cuda/driver.hpp"
#include "tune/cuda/nvrtc.hpp"
#include "tune/error.hpp"
#include "tune/shared_runtime.hpp"

namespace tune::cuda {
namespace {

std::unique_ptr<CompileService> make_compiler(const RuntimeOptions& o) {
    return make_compile_service(std::make_shared<NvrtcCompiler>(), o.cache_dir, o.compile_threads);
}

}  // namespace

std::shared_ptr<Runtime> Runtime::compile_only(std::string arch, RuntimeOptions options) {
    std::shared_ptr<Runtime> r(new Runtime());
    r->max_shared_bytes_ = cuda::max_shared_bytes(arch);  // validates the arch
    r->arch_ = std::move(arch);
    r->device_.backend = Backend::cuda;
    r->device_.arch = r->arch_;
    r->device_.model = "compile-only " + r->arch_;
    r->compiler_ = make_compiler(options);
    return r;
}

std::shared_ptr<Runtime> Runtime::for_device(int ordinal, RuntimeOptions options) {
    std::shared_ptr<Runtime> r(new Runtime());
    r->device_ = detect_device(ordinal);
    r->arch_ = r->device_.arch;
    r->max_shared_bytes_ = cuda::max_shared_bytes(r->arch_);
    r->compiler_ = make_compiler(options);
    r->context_ = std::make_unique<Context>(ordinal);
    r->stream_ = std::make_unique<Stream>();
    return r;
}

Runtime::~Runtime() {
    stream_.reset();  // before the context it belongs to
    context_.reset();
}

const Context& Runtime::context() const {
    if (!context_) throw Error("no CUDA device: compile-only runtime for " + arch_);
    context_->make_current();
    return *context_;
}

const Stream& Runtime::stream() const {
    context();
    return *stream_;
}

std::shared_ptr<Runtime> shared_runtime() { return shared_device_runtime<Runtime, RuntimeOptions>(); }

}  // namespace tune::cuda
