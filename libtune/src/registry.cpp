#include <algorithm>
#include <atomic>

#include "tune/error.hpp"
#include "tune/kernel.hpp"
#include "tune/templates/cpu_attention.hpp"
#include "tune/templates/cpu_gemm.hpp"
#ifdef LIBTUNE_WITH_CUDA
#include "tune/cuda/runtime.hpp"
#include "tune/templates/cuda_gemm.hpp"
#include "tune/templates/gpu_attention.hpp"
#endif
#ifdef LIBTUNE_WITH_HIP
#include "tune/hip/runtime.hpp"
#include "tune/templates/gpu_attention.hpp"
#include "tune/templates/hip_gemm.hpp"
#endif

namespace tune {

std::uint64_t Template::next_instance() {
    static std::atomic<std::uint64_t> next{0};  // identities only: nothing reads it but this
    return next.fetch_add(1, std::memory_order_relaxed) + 1;
}

bool computes(const Template& t, const Problem& p, Backend backend) {
    return t.info().op == p.op && t.info().backend == backend && t.supports(p);
}

std::optional<std::string> refusal(const Template& t, const Problem& p, const Config& c) {
    if (!t.supports(p)) return "template " + t.info().name + " does not support it";
    if (auto bad = t.space(p)->violation(c)) return t.info().name + " config '" + c.text() + "': " + *bad;
    return std::nullopt;
}

void TemplateRegistry::add(std::unique_ptr<Template> t) {
    require(t != nullptr, "registry: null template");
    require(find(t->info().name) == nullptr, "registry: template '" + t->info().name + "' registered twice");
    templates_.push_back(std::move(t));
}

const Template* TemplateRegistry::find(std::string_view name) const {
    for (const auto& t : templates_)
        if (t->info().name == name) return t.get();
    return nullptr;
}

bool TemplateRegistry::remove(std::string_view name) {
    const auto it = std::find_if(templates_.begin(), templates_.end(),
                                 [&](const auto& t) { return t->info().name == name; });
    if (it == templates_.end()) return false;
    templates_.erase(it);
    return true;
}

std::vector<const Template*> TemplateRegistry::for_problem(const Problem& p, Backend backend) const {
    std::vector<const Template*> out;
    for (const auto& t : templates_)
        if (computes(*t, p, backend)) out.push_back(t.get());
    std::stable_partition(out.begin(), out.end(), [](const Template* t) { return !t->info().vendor; });
    return out;
}

std::vector<const Template*> TemplateRegistry::all() const {
    std::vector<const Template*> out;
    for (const auto& t : templates_) out.push_back(t.get());
    return out;
}

TemplateRegistry builtin_registry(const DeviceInfo& device) {
    TemplateRegistry r;
    if (device.backend == Backend::cpu) {
        r.add(make_cpu_gemm_template(device));
        r.add(make_openblas_gemm_template(device));
        r.add(make_onednn_gemm_template(device));
        r.add(make_cpu_swiglu_template(device));
        r.add(make_cpu_attention_fused_template(device));
        r.add(make_cpu_attention_unfused_template(device));
        r.add(make_cpu_attention_backward_template(device));
    }
#ifdef LIBTUNE_WITH_CUDA
    if (device.backend == Backend::cuda) {
        auto rt = cuda::shared_runtime();
        r.add(make_cuda_gemm_mma_template(rt));
        r.add(make_cuda_gemm_wgmma_template(rt));
        r.add(make_cuda_gemm_cublaslt_template(rt));
        r.add(make_cuda_attention_flash_template(rt));
        r.add(make_cuda_attention_wgmma_template(rt));
        r.add(make_cuda_attention_flash_backward_template(rt));
        r.add(make_cuda_attention_mma_backward_template(rt));
    }
#endif
#ifdef LIBTUNE_WITH_HIP
    if (device.backend == Backend::hip) {
        auto rt = hip::shared_runtime();
        r.add(make_hip_gemm_mfma_template(rt));
        r.add(make_hip_attention_flash_template(rt));
        r.add(make_hip_attention_flash_backward_template(rt));
    }
#endif
    return r;
}

}  // namespace tune
