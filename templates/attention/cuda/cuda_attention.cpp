// cuda.attention.flash and cuda.attention.flash_backward: the GPU attention spaces and plans
// (templates/attention/gpu) on NVRTC and the driver API: load attention_flash.cu's and
// attention_backward.cu's instances and launch them on the runtime's stream.
#include "attention_backward_template.hpp"
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

// A loaded instance (and its combine kernel with split-KV). run() enqueues and returns:
// operands are device pointers Q, K, V; outputs O, LSE.
class AttentionKernel final : public Kernel {
public:
    AttentionKernel(std::shared_ptr<const Runtime> rt, const AttentionDims& a, gpu_attention::Launch l,
                    const CompileResult& main, const CompileResult* combine)
        : rt_(std::move(rt)), a_(a), l_(std::move(l)) {
        rt_->context();  // modules load into the current context
        module_ = std::make_unique<Module>(main.binary);
        function_ = module_->function(main.entry, l_.shared_bytes);
        if (combine) {
            combine_module_ = std::make_unique<Module>(combine->binary);
            combine_function_ = combine_module_->function(combine->entry);
            workspace_ = DeviceMemory(l_.workspace_bytes);
        }
    }

    std::size_t workspace_bytes() const override { return l_.workspace_bytes; }

    void run(const OpArgs& args) const override {
        libtune::AttentionParams p = gpu_attention::params(a_, args, l_, workspace_.as_ptr());
        CUstream stream = rt_->stream().get();
        void* params[] = {&p};
        check(driver().cuLaunchKernel(function_, l_.grid[0], l_.grid[1], l_.grid[2], l_.block, 1, 1, l_.shared_bytes,
                                      stream, params, nullptr),
              "cuLaunchKernel(attention)");
        if (combine_function_)
            check(driver().cuLaunchKernel(combine_function_, l_.combine_blocks, 1, 1, 256, 1, 1, 0, stream, params, nullptr),
                  "cuLaunchKernel(attention combine)");
    }

private:
    std::shared_ptr<const Runtime> rt_;
    AttentionDims a_;
    gpu_attention::Launch l_;
    std::unique_ptr<Module> module_, combine_module_;
    CUfunction function_ = nullptr, combine_function_ = nullptr;
    DeviceMemory workspace_;
};

// A loaded backward instance: run() enqueues its two passes (dK and dV, then dQ) and returns.
// Operands: device pointers Q, K, V, O, LSE, dO; outputs dQ, dK, dV.
class AttentionBackwardKernel final : public Kernel {
public:
    AttentionBackwardKernel(std::shared_ptr<const Runtime> rt, const AttentionDims& a, gpu_attention::BackwardLaunch l,
                            const CompileResult& compiled)
        : rt_(std::move(rt)), a_(a), l_(std::move(l)) {
        rt_->context();
        module_ = std::make_unique<Module>(compiled.binary);
        function_ = module_->function(compiled.entry, l_.shared_bytes);
        if (l_.workspace_bytes > 0) workspace_ = DeviceMemory(l_.workspace_bytes);
    }

    std::size_t workspace_bytes() const override { return l_.workspace_bytes; }

    void run(const OpArgs& args) const override {
        CUstream stream = rt_->stream().get();
        for (int pass = 0; pass < 2; ++pass) {  // in stream order: the dQ pass may read pass 0's dS
            libtune::AttentionBackwardParams p = gpu_attention::backward_params(a_, args, l_, workspace_.as_ptr(), pass);
            const unsigned* grid = pass == 0 ? l_.key_grid : l_.query_grid;
            void* params[] = {&p};
            check(driver().cuLaunchKernel(function_, grid[0], grid[1], grid[2], l_.block, 1, 1, l_.shared_bytes, stream,
                                          params, nullptr),
                  "cuLaunchKernel(attention backward)");
        }
    }

private:
    std::shared_ptr<const Runtime> rt_;
    AttentionDims a_;
    gpu_attention::BackwardLaunch l_;
    std::unique_ptr<Module> module_;
    CUfunction function_ = nullptr;
    DeviceMemory workspace_;
};

}  // namespace
}  // namespace tune::cuda

namespace tune {
std::unique_ptr<Template> make_cuda_attention_flash_template(std::shared_ptr<cuda::Runtime> runtime) {
    require(runtime != nullptr, "cuda.attention.flash: no CUDA runtime");
    return std::make_unique<gpu_attention::BackendTemplate<cuda::Runtime, cuda::AttentionKernel>>(
        TemplateInfo{"cuda.attention.flash", OpKind::attention, Backend::cuda, LIBTUNE_CUDA_ATTENTION_VERSION},
        gpu_attention::Target{"attention_flash", 32, true, runtime->max_shared_bytes()}, runtime, cuda::kernel_sources(),
        "attention_flash.cu");
}
}  // namespace tune

namespace tune {
std::unique_ptr<Template> make_cuda_attention_flash_backward_template(std::shared_ptr<cuda::Runtime> runtime) {
    require(runtime != nullptr, "cuda.attention.flash_backward: no CUDA runtime");
    return std::make_unique<gpu_attention::BackwardBackendTemplate<cuda::Runtime, cuda::AttentionBackwardKernel>>(
        TemplateInfo{"cuda.attention.flash_backward", OpKind::attention, Backend::cuda, LIBTUNE_CUDA_ATTENTION_VERSION},
        gpu_attention::Target{"attention_backward", 32, false, runtime->max_shared_bytes()}, runtime,
        cuda::kernel_sources(), "attention_backward.cu");
}
}  // namespace tune
