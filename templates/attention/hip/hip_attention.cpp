// hip.attention.flash and hip.attention.flash_backward: the GPU attention spaces and plans
// (templates/attention/gpu) on hiprtc: load attention_flash.hip's and attention_backward.hip's
// instances and launch them on the runtime's stream.
#include "attention_backward_template.hpp"
#include "attention_template.hpp"
#include "tune/error.hpp"
#include "tune/hip/api.hpp"
#include "tune/hip/kernel_sources.hpp"
#include "tune/hip/runtime.hpp"
#include "tune/templates/gpu_attention.hpp"

#ifndef LIBTUNE_HIP_ATTENTION_VERSION
#define LIBTUNE_HIP_ATTENTION_VERSION "unversioned"
#endif

namespace tune::hip {
namespace {

constexpr std::int64_t kLdsBytes = 64 * 1024;  // per workgroup on CDNA and RDNA

class AttentionKernel final : public Kernel {
public:
    AttentionKernel(std::shared_ptr<const Runtime> rt, const AttentionDims& a, gpu_attention::Launch l,
                    const CompileResult& main, const CompileResult* combine)
        : rt_(std::move(rt)), a_(a), l_(std::move(l)) {
        rt_->stream();  // the device current on this thread
        module_ = std::make_unique<Module>(main.binary, main.entry);
        if (combine) {
            combine_module_ = std::make_unique<Module>(combine->binary, combine->entry);
            workspace_ = DeviceMemory(l_.workspace_bytes);
        }
    }

    std::size_t workspace_bytes() const override { return l_.workspace_bytes; }

    void run(const OpArgs& args) const override {
        libtune::AttentionParams p = gpu_attention::params(a_, args, l_, workspace_.get());
        auto stream = static_cast<hipStream_t>(rt_->stream());
        void* params[] = {&p};
        // The generic kernel's LDS is static: no dynamic shared memory.
        check(runtime_api().hipModuleLaunchKernel(static_cast<hipFunction_t>(module_->function()), l_.grid[0], l_.grid[1],
                                                  l_.grid[2], l_.block, 1, 1, 0, stream, params, nullptr),
              "hipModuleLaunchKernel(attention)");
        if (combine_module_)
            check(runtime_api().hipModuleLaunchKernel(static_cast<hipFunction_t>(combine_module_->function()),
                                                      l_.combine_blocks, 1, 1, 256, 1, 1, 0, stream, params, nullptr),
                  "hipModuleLaunchKernel(attention combine)");
    }

private:
    std::shared_ptr<const Runtime> rt_;
    AttentionDims a_;
    gpu_attention::Launch l_;
    std::unique_ptr<Module> module_, combine_module_;
    DeviceMemory workspace_;
};

// A loaded backward instance: run() enqueues its two passes (dK and dV, then dQ) and returns.
class AttentionBackwardKernel final : public Kernel {
public:
    AttentionBackwardKernel(std::shared_ptr<const Runtime> rt, const AttentionDims& a, gpu_attention::BackwardLaunch l,
                            const CompileResult& compiled)
        : rt_(std::move(rt)), a_(a), l_(std::move(l)) {
        rt_->stream();
        module_ = std::make_unique<Module>(compiled.binary, compiled.entry);
        if (l_.workspace_bytes > 0) workspace_ = DeviceMemory(l_.workspace_bytes);
    }

    std::size_t workspace_bytes() const override { return l_.workspace_bytes; }

    void run(const OpArgs& args) const override {
        auto stream = static_cast<hipStream_t>(rt_->stream());
        for (int pass = 0; pass < 2; ++pass) {  // in stream order: the dQ pass may read pass 0's dS
            libtune::AttentionBackwardParams p = gpu_attention::backward_params(a_, args, l_, workspace_.get(), pass);
            const unsigned* grid = pass == 0 ? l_.key_grid : l_.query_grid;
            void* params[] = {&p};
            check(runtime_api().hipModuleLaunchKernel(static_cast<hipFunction_t>(module_->function()), grid[0], grid[1],
                                                      grid[2], l_.block, 1, 1, l_.shared_bytes, stream, params, nullptr),
                  "hipModuleLaunchKernel(attention backward)");
        }
    }

private:
    std::shared_ptr<const Runtime> rt_;
    AttentionDims a_;
    gpu_attention::BackwardLaunch l_;
    std::unique_ptr<Module> module_;
    DeviceMemory workspace_;
};

}  // namespace
}  // namespace tune::hip

namespace tune {
std::unique_ptr<Template> make_hip_attention_flash_template(std::shared_ptr<hip::Runtime> runtime) {
    require(runtime != nullptr, "hip.attention.flash: no HIP runtime");
    return std::make_unique<gpu_attention::BackendTemplate<hip::Runtime, hip::AttentionKernel>>(
        TemplateInfo{"hip.attention.flash", OpKind::attention, Backend::hip, LIBTUNE_HIP_ATTENTION_VERSION},
        gpu_attention::Target{"attention_flash_generic", 64, false, hip::kLdsBytes}, runtime, hip::kernel_sources(),
        "attention_flash.hip");
}
}  // namespace tune

namespace tune {
std::unique_ptr<Template> make_hip_attention_flash_backward_template(std::shared_ptr<hip::Runtime> runtime) {
    require(runtime != nullptr, "hip.attention.flash_backward: no HIP runtime");
    return std::make_unique<gpu_attention::BackwardBackendTemplate<hip::Runtime, hip::AttentionBackwardKernel>>(
        TemplateInfo{"hip.attention.flash_backward", OpKind::attention, Backend::hip, LIBTUNE_HIP_ATTENTION_VERSION},
        gpu_attention::Target{"attention_backward", 64, false, hip::kLdsBytes}, runtime, hip::kernel_sources(),
        "attention_backward.hip");
}
}  // namespace tune
