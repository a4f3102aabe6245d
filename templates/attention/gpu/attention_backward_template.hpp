// GpuAttentionBackwardTemplate: the Template + RuntimeCompiled side the CUDA and HIP attention
// backward templates share (support, cached spaces, validated plans, the one compile request
// of a config); a backend adds only how the compiled instance is loaded and its two passes
// launched.
#pragma once

#include "attention_backward_space.hpp"
#include "attention_template.hpp"

namespace tune::gpu_attention {

struct BackwardPlan {
    BackwardLaunch launch;
    CompileRequest request;
};

class GpuAttentionBackwardTemplate : public Template, public RuntimeCompiled {
public:
    // `sources`: the backend's embedded kernel files; `program`: the one holding the kernel.
    GpuAttentionBackwardTemplate(TemplateInfo info, Target target, CompileService& compiler, std::string arch,
                                 const SourceFiles& sources, std::string program);

    const TemplateInfo& info() const override { return info_; }
    bool supports(const Problem& p) const override { return supports_backward(p); }
    std::shared_ptr<const Space> space(const Problem& p) const override;
    // Validates c, compiles (or takes from the cache) and loads the binary: throws tune::Error
    // with the compiler's log on a compile error, "no ... device" without one.
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override;
    std::size_t workspace_bytes(const Problem& p, const Config& c) const override;
    std::vector<CompileRequest> compile_requests(const Problem& p, const Config& c) const override;
    void precompile(const Problem& p, const Config& c) const override;

    // The validated plan of (p, c); throws tune::Error naming the violated constraint.
    BackwardPlan plan(const Problem& p, const Config& c) const;

protected:
    virtual std::unique_ptr<Kernel> load(const AttentionDims& a, const BackwardLaunch& l, const CompileResult& compiled) const = 0;

private:
    TemplateInfo info_;
    Target target_;
    CompileService& compiler_;
    std::string arch_;
    const SourceFiles& sources_;
    std::string program_;
    SpaceCache spaces_;
};

// A backend's backward template: its runtime and the Kernel class constructed as
// LoadedKernel(runtime, dims, launch, compiled).
template <class Runtime, class LoadedKernel>
class BackwardBackendTemplate final : public GpuAttentionBackwardTemplate {
public:
    BackwardBackendTemplate(TemplateInfo info, Target target, std::shared_ptr<Runtime> rt, const SourceFiles& sources,
                            std::string program)
        : GpuAttentionBackwardTemplate(std::move(info), std::move(target), rt->compiler(), rt->arch(), sources,
                                       std::move(program)),
          rt_(std::move(rt)) {}

protected:
    std::unique_ptr<Kernel> load(const AttentionDims& a, const BackwardLaunch& l, const CompileResult& compiled) const override {
        return std::make_unique<LoadedKernel>(rt_, a, l, compiled);
    }

private:
    std::shared_ptr<Runtime> rt_;  // keeps the compile service alive
};

}  // namespace tune::gpu_attention
