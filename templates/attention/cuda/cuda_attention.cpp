// cuda.attention.flash, cuda.attention.flash_backward and cuda.attention.mma_backward: the GPU
// attention templates (templates/attention/gpu) on NVRTC and the driver API: load
// attention_flash.cu's, attention_backward.cu's and attention_backward_mma.cu's instances and
// launch them on the runtime's stream.
#include "attention_template.hpp"
#include "tune/cuda/driver.hpp"
#include "tune/cuda/kernel_sources.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/error.hpp"
#include "tune/templates/gpu_attention.hpp"

#ifndef LIBTUNE_CUDA_ATTENTION_VERSION
#define LIBTUNE_CUDA_ATTENTION_VERSION "unversioned"
#endif

namespace tune::cuda {
namespace {

// LoadedAttention's device work on the driver API.
struct AttentionApi {
    using Runtime = cuda::Runtime;
    using Memory = DeviceMemory;
    struct Program {
        std::unique_ptr<Module> module;
        CUfunction function = nullptr;
    };

    static void make_current(const Runtime& rt) { rt.context(); }  // modules load into the current context
    static Program load(const CompileResult& compiled, unsigned dynamic_shared_bytes) {
        Program p{std::make_unique<Module>(compiled.binary)};
        p.function = p.module->function(compiled.entry, dynamic_shared_bytes);
        return p;
    }
    static void* address(const Memory& m) { return m.as_ptr(); }
    static void launch(const Runtime& rt, const Program& p, const gpu_attention::Step& s, void** params) {
        const CUresult r = driver().cuLaunchKernel(p.function, s.grid[0], s.grid[1], s.grid[2], s.block, 1, 1,
                                                   s.dynamic_shared_bytes, rt.stream().get(), params, nullptr);
        if (r != CUDA_SUCCESS) check(r, ("cuLaunchKernel(" + std::string(s.what) + ")").c_str());
    }
};

}  // namespace
}  // namespace tune::cuda

namespace tune {
std::unique_ptr<Template> make_cuda_attention_flash_template(std::shared_ptr<cuda::Runtime> runtime) {
    require(runtime != nullptr, "cuda.attention.flash: no CUDA runtime");
    return std::make_unique<gpu_attention::BackendTemplate<cuda::AttentionApi, gpu_attention::Forward>>(
        TemplateInfo{"cuda.attention.flash", OpKind::attention, Backend::cuda, LIBTUNE_CUDA_ATTENTION_VERSION},
        gpu_attention::Target{"attention_flash", 32, true, runtime->max_shared_bytes()}, runtime, cuda::kernel_sources(),
        "attention_flash.cu");
}

std::unique_ptr<Template> make_cuda_attention_flash_backward_template(std::shared_ptr<cuda::Runtime> runtime) {
    require(runtime != nullptr, "cuda.attention.flash_backward: no CUDA runtime");
    return std::make_unique<gpu_attention::BackendTemplate<cuda::AttentionApi, gpu_attention::Backward>>(
        TemplateInfo{"cuda.attention.flash_backward", OpKind::attention, Backend::cuda, LIBTUNE_CUDA_ATTENTION_VERSION},
        gpu_attention::Target{"attention_backward", 32, false, runtime->max_shared_bytes()}, runtime,
        cuda::kernel_sources(), "attention_backward.cu");
}

std::unique_ptr<Template> make_cuda_attention_mma_backward_template(std::shared_ptr<cuda::Runtime> runtime) {
    require(runtime != nullptr, "cuda.attention.mma_backward: no CUDA runtime");
    return std::make_unique<gpu_attention::BackendTemplate<cuda::AttentionApi, gpu_attention::MmaBackward>>(
        TemplateInfo{"cuda.attention.mma_backward", OpKind::attention, Backend::cuda, LIBTUNE_CUDA_ATTENTION_VERSION},
        gpu_attention::Target{"attention_backward_mma", 32, true, runtime->max_shared_bytes()}, runtime,
        cuda::kernel_sources(), "attention_backward_mma.cu");
}
}  // namespace tune
