// GpuAttentionTemplate: the Template + RuntimeCompiled side the CUDA and HIP attention
// templates share (support, cached spaces, validated plans, compile requests); a backend adds
// only how a compiled instance is loaded and launched.
#pragma once

#include <map>
#include <mutex>
#include <optional>

#include "attention_space.hpp"
#include "tune/compile_service.hpp"
#include "tune/runtime_compile.hpp"

namespace tune::gpu_attention {

// Spaces by shape key, built once per shape (the forward and backward templates' cache).
class SpaceCache {
public:
    template <class Build>
    std::shared_ptr<const Space> get(const Problem& p, Build&& build) const {
        std::lock_guard lock(mutex_);
        auto& slot = spaces_[shape_key(p)];
        if (!slot) slot = build();
        return slot;
    }

private:
    mutable std::mutex mutex_;
    mutable std::map<std::string, std::shared_ptr<const Space>> spaces_;
};

// The compiled binary of `request`, or tune::Error with the compiler's log.
CompileResult compiled_or_throw(CompileService& compiler, const CompileRequest& request);

struct Plan {
    Launch launch;
    CompileRequest main;
    std::optional<CompileRequest> combine;  // split-KV only
};

class GpuAttentionTemplate : public Template, public RuntimeCompiled {
public:
    // `sources`: the backend's embedded kernel files; `program`: the one holding the kernels.
    GpuAttentionTemplate(TemplateInfo info, Target target, CompileService& compiler, std::string arch,
                         const SourceFiles& sources, std::string program);

    const TemplateInfo& info() const override { return info_; }
    bool supports(const Problem& p) const override { return gpu_attention::supports(p); }
    std::shared_ptr<const Space> space(const Problem& p) const override;
    // Validates c, compiles (or takes from the cache) and loads the binaries: throws tune::Error
    // with the compiler's log on a compile error, "no ... device" without one.
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override;
    std::size_t workspace_bytes(const Problem& p, const Config& c) const override;
    std::vector<CompileRequest> compile_requests(const Problem& p, const Config& c) const override;
    void precompile(const Problem& p, const Config& c) const override;

    // The validated plan of (p, c); throws tune::Error naming the violated constraint.
    Plan plan(const Problem& p, const Config& c) const;

protected:
    virtual std::unique_ptr<Kernel> load(const AttentionDims& a, const Launch& l, const CompileResult& main,
                                          const CompileResult* combine) const = 0;

private:
    TemplateInfo info_;
    Target target_;
    CompileService& compiler_;
    std::string arch_;
    const SourceFiles& sources_;
    std::string program_;
    SpaceCache spaces_;
};

// A backend's template: its runtime (compile service, arch) and the Kernel class that loads a
// compiled instance and launches it, constructed as LoadedKernel(runtime, dims, launch, main,
// combine-or-null).
template <class Runtime, class LoadedKernel>
class BackendTemplate final : public GpuAttentionTemplate {
public:
    BackendTemplate(TemplateInfo info, Target target, std::shared_ptr<Runtime> rt, const SourceFiles& sources,
                    std::string program)
        : GpuAttentionTemplate(std::move(info), std::move(target), rt->compiler(), rt->arch(), sources, std::move(program)),
          rt_(std::move(rt)) {}

protected:
    std::unique_ptr<Kernel> load(const AttentionDims& a, const Launch& l, const CompileResult& main,
                                 const CompileResult* combine) const override {
        return std::make_unique<LoadedKernel>(rt_, a, l, main, combine);
    }

private:
    std::shared_ptr<Runtime> rt_;  // keeps the compile service alive
};

}  // namespace tune::gpu_attention
