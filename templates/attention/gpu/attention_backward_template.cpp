#include "attention_backward_template.hpp"

#include "tune/error.hpp"

namespace tune::gpu_attention {

GpuAttentionBackwardTemplate::GpuAttentionBackwardTemplate(TemplateInfo info, Target target, CompileService& compiler,
                                                           std::string arch, const SourceFiles& sources,
                                                           std::string program)
    : info_(std::move(info)), target_(std::move(target)), compiler_(compiler), arch_(std::move(arch)), sources_(sources),
      program_(std::move(program)) {}

std::shared_ptr<const Space> GpuAttentionBackwardTemplate::space(const Problem& p) const {
    require(supports(p), info_.name + ": problem not supported: " + shape_key(p));
    return spaces_.get(p, [&] { return build_backward_space(p, target_); });
}

BackwardPlan GpuAttentionBackwardTemplate::plan(const Problem& p, const Config& c) const {
    validate(p);
    space(p)->validate(c);
    BackwardPlan out;
    out.launch = backward_launch(p, c, target_);
    out.request = program_request(sources_, program_, out.launch.instance, arch_);
    return out;
}

std::vector<CompileRequest> GpuAttentionBackwardTemplate::compile_requests(const Problem& p, const Config& c) const {
    return {plan(p, c).request};
}

void GpuAttentionBackwardTemplate::precompile(const Problem& p, const Config& c) const {
    compiler_.submit(plan(p, c).request);
}

std::size_t GpuAttentionBackwardTemplate::workspace_bytes(const Problem& p, const Config& c) const {
    return plan(p, c).launch.workspace_bytes;
}

std::unique_ptr<Kernel> GpuAttentionBackwardTemplate::instantiate(const Problem& p, const Config& c) const {
    const BackwardPlan pl = plan(p, c);
    return load(attention_dims(p), pl.launch, compiled_or_throw(compiler_, pl.request));
}

}  // namespace tune::gpu_attention
