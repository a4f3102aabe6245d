#include "attention_template.hpp"

#include "tune/error.hpp"

namespace tune::gpu_attention {

std::vector<std::string> Forward::instances(const Launch& l) {
    std::vector<std::string> out = {l.instance};
    if (!l.combine_instance.empty()) out.push_back(l.combine_instance);
    return out;
}

std::vector<Step> Forward::steps(const Launch& l, const Target& t) {
    std::vector<Step> out = {
        {0, {l.grid[0], l.grid[1], l.grid[2]}, l.block, t.static_shared ? 0u : l.shared_bytes, 0, "attention"}};
    if (!l.combine_instance.empty())  // 256-thread blocks: attention_combine's layout
        out.push_back({1, {l.combine_blocks, 1, 1}, 256, 0, 0, "attention combine"});
    return out;
}

std::vector<Step> Backward::steps(const Launch& l, const Target&) {
    const unsigned* key = l.key_grid;
    const unsigned* query = l.query_grid;
    return {{0, {key[0], key[1], key[2]}, l.block, l.shared_bytes, 0, "attention backward"},
            {0, {query[0], query[1], query[2]}, l.block, l.shared_bytes, 1, "attention backward"}};
}

template <class Pass>
GpuAttentionTemplate<Pass>::GpuAttentionTemplate(TemplateInfo info, Target target, CompileService& compiler,
                                                 std::string arch, const SourceFiles& sources, std::string program)
    : info_(std::move(info)), target_(std::move(target)), compiler_(compiler), arch_(std::move(arch)), sources_(sources),
      program_(std::move(program)) {}

template <class Pass>
std::shared_ptr<const Space> GpuAttentionTemplate<Pass>::space(const Problem& p) const {
    require(supports(p), info_.name + ": problem not supported: " + shape_key(p));
    return spaces_.get(p, [&] { return Pass::space(p, target_); });
}

template <class Pass>
Plan<Pass> GpuAttentionTemplate<Pass>::plan(const Problem& p, const Config& c) const {
    validate(p);
    space(p)->validate(c);
    Plan<Pass> out;
    out.launch = Pass::launch(p, c, target_);
    for (const std::string& instance : Pass::instances(out.launch))
        out.programs.push_back(program_request(sources_, program_, instance, arch_));
    out.steps = Pass::steps(out.launch, target_);
    return out;
}

template <class Pass>
std::vector<CompileRequest> GpuAttentionTemplate<Pass>::compile_requests(const Problem& p, const Config& c) const {
    return plan(p, c).programs;
}

template <class Pass>
void GpuAttentionTemplate<Pass>::precompile(const Problem& p, const Config& c) const {
    for (const auto& r : compile_requests(p, c)) compiler_.submit(r);
}

template <class Pass>
std::size_t GpuAttentionTemplate<Pass>::workspace_bytes(const Problem& p, const Config& c) const {
    return plan(p, c).launch.workspace_bytes;
}

template <class Pass>
std::unique_ptr<Kernel> GpuAttentionTemplate<Pass>::instantiate(const Problem& p, const Config& c) const {
    Plan<Pass> pl = plan(p, c);
    for (const auto& r : pl.programs) compiler_.submit(r);  // the programs compile in parallel
    std::vector<CompileResult> compiled;
    for (const auto& r : pl.programs) compiled.push_back(compiler_.get_or_throw(r));
    return load(attention_dims(p), std::move(pl), compiled);
}

template class GpuAttentionTemplate<Forward>;
template class GpuAttentionTemplate<Backward>;
template class GpuAttentionTemplate<MmaBackward>;

}  // namespace tune::gpu_attention
