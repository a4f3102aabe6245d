#include "attention_template.hpp"

#include "tune/error.hpp"

namespace tune::gpu_attention {

CompileResult compiled_or_throw(CompileService& compiler, const CompileRequest& request) {
    CompileResult result = compiler.get(request);
    if (!result.ok) throw Error("compile error in " + request.instance + " (" + request.arch + "):\n" + result.log);
    return result;
}

GpuAttentionTemplate::GpuAttentionTemplate(TemplateInfo info, Target target, CompileService& compiler, std::string arch,
                                           const SourceFiles& sources, std::string program)
    : info_(std::move(info)), target_(std::move(target)), compiler_(compiler), arch_(std::move(arch)), sources_(sources),
      program_(std::move(program)) {}

std::shared_ptr<const Space> GpuAttentionTemplate::space(const Problem& p) const {
    require(supports(p), info_.name + ": problem not supported: " + shape_key(p));
    return spaces_.get(p, [&] { return build_space(p, target_); });
}

Plan GpuAttentionTemplate::plan(const Problem& p, const Config& c) const {
    validate(p);
    space(p)->validate(c);
    Plan out;
    out.launch = launch(p, c, target_);
    out.main = program_request(sources_, program_, out.launch.instance, arch_);
    if (!out.launch.combine_instance.empty())
        out.combine = program_request(sources_, program_, out.launch.combine_instance, arch_);
    return out;
}

std::vector<CompileRequest> GpuAttentionTemplate::compile_requests(const Problem& p, const Config& c) const {
    Plan pl = plan(p, c);
    std::vector<CompileRequest> out = {std::move(pl.main)};
    if (pl.combine) out.push_back(std::move(*pl.combine));
    return out;
}

void GpuAttentionTemplate::precompile(const Problem& p, const Config& c) const {
    for (const auto& r : compile_requests(p, c)) compiler_.submit(r);
}

std::size_t GpuAttentionTemplate::workspace_bytes(const Problem& p, const Config& c) const {
    return plan(p, c).launch.workspace_bytes;
}

std::unique_ptr<Kernel> GpuAttentionTemplate::instantiate(const Problem& p, const Config& c) const {
    Plan pl = plan(p, c);
    precompile(p, c);  // both programs compile in parallel
    const CompileResult main = compiled_or_throw(compiler_, pl.main);
    std::optional<CompileResult> combine;
    if (pl.combine) combine = compiled_or_throw(compiler_, *pl.combine);
    return load(attention_dims(p), pl.launch, main, combine ? &*combine : nullptr);
}

}  // namespace tune::gpu_attention
