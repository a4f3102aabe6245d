// hip.attention.flash and hip.attention.flash_backward: the GPU attention templates
// (templates/attention/gpu) on hiprtc: load attention_flash.hip's and attention_backward.hip's
// instances and launch them on the runtime's stream.
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

// LoadedAttention's device work on the HIP module API.
struct AttentionApi {
    using Runtime = hip::Runtime;
    using Memory = DeviceMemory;
    using Program = std::unique_ptr<Module>;

    static void make_current(const Runtime& rt) { rt.stream(); }  // the device current on this thread
    static Program load(const CompileResult& compiled, unsigned /*dynamic_shared_bytes: a launch asks*/) {
        return std::make_unique<Module>(compiled.binary, compiled.entry);
    }
    static void* address(const Memory& m) { return m.get(); }
    static void launch(const Runtime& rt, const Program& p, const gpu_attention::Step& s, void** params) {
        const hipError_t e = runtime_api().hipModuleLaunchKernel(
            static_cast<hipFunction_t>(p->function()), s.grid[0], s.grid[1], s.grid[2], s.block, 1, 1,
            s.dynamic_shared_bytes, static_cast<hipStream_t>(rt.stream()), params, nullptr);
        if (e != hipSuccess) check(e, ("hipModuleLaunchKernel(" + std::string(s.what) + ")").c_str());
    }
};

}  // namespace
}  // namespace tune::hip

namespace tune {
std::unique_ptr<Template> make_hip_attention_flash_template(std::shared_ptr<hip::Runtime> runtime) {
    require(runtime != nullptr, "hip.attention.flash: no HIP runtime");
    return std::make_unique<gpu_attention::BackendTemplate<hip::AttentionApi, gpu_attention::Forward>>(
        TemplateInfo{"hip.attention.flash", OpKind::attention, Backend::hip, LIBTUNE_HIP_ATTENTION_VERSION},
        gpu_attention::Target{"attention_flash_generic", 64, false, hip::kLdsBytes, /*static_shared=*/true}, runtime,
        hip::kernel_sources(), "attention_flash.hip");
}

std::unique_ptr<Template> make_hip_attention_flash_backward_template(std::shared_ptr<hip::Runtime> runtime) {
    require(runtime != nullptr, "hip.attention.flash_backward: no HIP runtime");
    return std::make_unique<gpu_attention::BackendTemplate<hip::AttentionApi, gpu_attention::Backward>>(
        TemplateInfo{"hip.attention.flash_backward", OpKind::attention, Backend::hip, LIBTUNE_HIP_ATTENTION_VERSION},
        gpu_attention::Target{"attention_backward", 64, false, hip::kLdsBytes}, runtime, hip::kernel_sources(),
        "attention_backward.hip");
}
}  // namespace tune
