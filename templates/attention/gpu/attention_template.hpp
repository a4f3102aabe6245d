// GpuAttentionTemplate<Pass>: the Template + RuntimeCompiled side the CUDA and HIP attention
// templates share, forward and backward alike (support, cached spaces, validated plans, compile
// requests, the kernel launches of a config); a backend adds only an Api: how a compiled
// program is loaded and one launch enqueued (see LoadedAttention).
#pragma once

#include <algorithm>
#include <vector>

#include "attention_backward_space.hpp"
#include "attention_space.hpp"
#include "tune/compile_service.hpp"
#include "tune/runtime_compile.hpp"
#include "tune/space_cache.hpp"

namespace tune::gpu_attention {

// One kernel launch of a config's run(); a run enqueues its steps in order.
struct Step {
    std::size_t program = 0;  // which of the plan's programs
    unsigned grid[3] = {1, 1, 1};
    unsigned block = 0;
    unsigned dynamic_shared_bytes = 0;
    int pass = 0;            // the kernel argument's pass (backward: 0 dK and dV, 1 dQ)
    const char* what = "";   // names the launch in an error
};

// The forward pass: attention_flash (Target::kernel), then attention_combine with split-KV.
struct Forward {
    using Launch = gpu_attention::Launch;
    using Params = libtune::AttentionParams;
    static bool supports(const Problem& p) { return gpu_attention::supports(p); }
    static std::shared_ptr<Space> space(const Problem& p, const Target& t) { return build_space(p, t); }
    static Launch launch(const Problem& p, const Config& c, const Target& t) { return gpu_attention::launch(p, c, t); }
    static std::vector<std::string> instances(const Launch& l);  // Step::program indexes them
    static std::vector<Step> steps(const Launch& l, const Target& t);
    static Params params(const AttentionDims& a, const OpArgs& args, const Launch& l, void* workspace, int /*pass*/) {
        return gpu_attention::params(a, args, l, workspace);
    }
};

// The backward pass: one attention_backward instance launched twice (dK and dV, then dQ).
struct Backward {
    using Launch = BackwardLaunch;
    using Params = libtune::AttentionBackwardParams;
    static bool supports(const Problem& p) { return supports_backward(p); }
    static std::shared_ptr<Space> space(const Problem& p, const Target& t) { return build_backward_space(p, t); }
    static Launch launch(const Problem& p, const Config& c, const Target& t) { return backward_launch(p, c, t); }
    static std::vector<std::string> instances(const Launch& l) { return {l.instance}; }
    static std::vector<Step> steps(const Launch& l, const Target& t);
    static Params params(const AttentionDims& a, const OpArgs& args, const Launch& l, void* workspace, int pass) {
        return backward_params(a, args, l, workspace, pass);
    }
};

// The backward pass on tensor cores (cuda.attention.mma_backward): the same two launches.
struct MmaBackward : Backward {
    static bool supports(const Problem& p) { return supports_backward_mma(p); }
    static std::shared_ptr<Space> space(const Problem& p, const Target& t) { return build_backward_mma_space(p, t); }
    static Launch launch(const Problem& p, const Config& c, const Target& t) { return backward_mma_launch(p, c, t); }
};

template <class Pass>
struct Plan {
    typename Pass::Launch launch;
    std::vector<CompileRequest> programs;  // one per Pass::instances
    std::vector<Step> steps;
};

template <class Pass>
class GpuAttentionTemplate : public Template, public RuntimeCompiled {
public:
    // `sources`: the backend's embedded kernel files; `program`: the one holding the kernels.
    GpuAttentionTemplate(TemplateInfo info, Target target, CompileService& compiler, std::string arch,
                         const SourceFiles& sources, std::string program);

    const TemplateInfo& info() const override { return info_; }
    bool supports(const Problem& p) const override { return Pass::supports(p); }
    std::shared_ptr<const Space> space(const Problem& p) const override;
    // Validates c, compiles (or takes from the cache) and loads the binaries: throws tune::Error
    // with the compiler's log on a compile error, "no ... device" without one.
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override;
    std::size_t workspace_bytes(const Problem& p, const Config& c) const override;
    std::vector<CompileRequest> compile_requests(const Problem& p, const Config& c) const override;
    void precompile(const Problem& p, const Config& c) const override;

    // The validated plan of (p, c); throws tune::Error naming the violated constraint.
    Plan<Pass> plan(const Problem& p, const Config& c) const;

protected:
    virtual std::unique_ptr<Kernel> load(const AttentionDims& a, Plan<Pass> plan,
                                         const std::vector<CompileResult>& compiled) const = 0;

private:
    TemplateInfo info_;
    Target target_;
    CompileService& compiler_;
    std::string arch_;
    const SourceFiles& sources_;
    std::string program_;
    SpaceCache spaces_;
};

extern template class GpuAttentionTemplate<Forward>;
extern template class GpuAttentionTemplate<Backward>;
extern template class GpuAttentionTemplate<MmaBackward>;

// A loaded config: its programs, its workspace, and run() enqueueing the plan's steps on the
// runtime's stream (it returns at once). Operands are device pointers in the Pass's order. The
// Api names the backend's Runtime, Memory (device buffer) and Program (a loaded kernel), and
// does the device work: make_current(rt) before loading, load(compiled, dynamic_shared_bytes),
// address(memory), launch(rt, program, step, params).
template <class Api, class Pass>
class LoadedAttention final : public Kernel {
public:
    LoadedAttention(std::shared_ptr<const typename Api::Runtime> rt, const AttentionDims& a, Plan<Pass> plan,
                    const std::vector<CompileResult>& compiled)
        : rt_(std::move(rt)), a_(a), launch_(std::move(plan.launch)), steps_(std::move(plan.steps)) {
        Api::make_current(*rt_);
        for (std::size_t i = 0; i < compiled.size(); ++i) {
            unsigned shared = 0;  // the most dynamic shared memory a launch of program i asks for
            for (const Step& s : steps_)
                if (s.program == i) shared = std::max(shared, s.dynamic_shared_bytes);
            programs_.push_back(Api::load(compiled[i], shared));
        }
        if (launch_.workspace_bytes > 0) workspace_ = typename Api::Memory(launch_.workspace_bytes);
    }

    std::size_t workspace_bytes() const override { return launch_.workspace_bytes; }

    void run(const OpArgs& args) const override {
        for (const Step& s : steps_) {  // in stream order: a later step reads an earlier one's results
            typename Pass::Params p = Pass::params(a_, args, launch_, Api::address(workspace_), s.pass);
            void* params[] = {&p};
            Api::launch(*rt_, programs_[s.program], s, params);
        }
    }

private:
    std::shared_ptr<const typename Api::Runtime> rt_;
    AttentionDims a_;
    typename Pass::Launch launch_;
    std::vector<Step> steps_;
    std::vector<typename Api::Program> programs_;
    typename Api::Memory workspace_;
};

// A backend's template of a pass: its runtime (compile service, arch) keeps the kernels'
// device alive; instances load as LoadedAttention<Api, Pass>.
template <class Api, class Pass>
class BackendTemplate final : public GpuAttentionTemplate<Pass> {
public:
    BackendTemplate(TemplateInfo info, Target target, std::shared_ptr<typename Api::Runtime> rt,
                    const SourceFiles& sources, std::string program)
        : GpuAttentionTemplate<Pass>(std::move(info), std::move(target), rt->compiler(), rt->arch(), sources,
                                     std::move(program)),
          rt_(std::move(rt)) {}

protected:
    std::unique_ptr<Kernel> load(const AttentionDims& a, Plan<Pass> plan,
                                 const std::vector<CompileResult>& compiled) const override {
        return std::make_unique<LoadedAttention<Api, Pass>>(rt_, a, std::move(plan), compiled);
    }

private:
    std::shared_ptr<typename Api::Runtime> rt_;  // keeps the compile service alive
};

}  // namespace tune::gpu_attention
