// Runs a GPU attention kernel source through the host emulator on a Workload and checks it
// against the fp64 reference: the host plan (tune::gpu_attention::launch) gives the grid, the
// kernel argument and the instance name, which must name the instantiation under test.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "../../templates/attention/gpu/attention_space.hpp"
#include "gpu_emulator.hpp"
#include "tune/workload.hpp"

namespace attention_check {

// `kernel` and `combine` are called with the kernel argument inside each emulated thread.
template <class Kernel, class Combine>
void expect_correct(const tune::Problem& p, const tune::Config& c, const tune::gpu_attention::Target& target,
                    const std::string& instance, Kernel&& kernel, Combine&& combine) {
    using namespace tune;
    INFO(shape_key(p) << " " << c.text());
    const gpu_attention::Launch l = gpu_attention::launch(p, c, target);
    REQUIRE(l.instance == instance);
    REQUIRE_FALSE(gpu_attention::build_space(p, target)->violation(c).has_value());
    Workload w(p, 11);
    w.poison_outputs();  // NaN: an element the kernels never write fails the check
    std::vector<float> workspace(l.workspace_bytes / sizeof(float));
    const libtune::AttentionParams args = gpu_attention::params(attention_dims(p), w.args(), l, workspace.data());
    gpu_emulator::launch(l.grid, l.block, target.wave, [&] { kernel(args); });
    if (l.splits > 1) {
        const unsigned grid[3] = {l.combine_blocks, 1, 1};
        gpu_emulator::launch(grid, 256, target.wave, [&] { combine(args); });
    }
    const double error = w.error();
    INFO("error " << error << " tolerance " << effective_tolerance(p));
    CHECK(error <= effective_tolerance(p));  // NaN fails too
}

// f16 inputs multiply exactly in f32 and the kernels accumulate in f32 (P as two f16 terms), so
// they meet the f32 problem's bound; f16's own default tolerance would hide layout mistakes.
inline double f32_level_tolerance(tune::Problem p) {
    p.dtype = tune::DType::f32;
    return tune::default_tolerance(p);
}

inline tune::Config config(const tune::Problem& p, const tune::gpu_attention::Target& t,
                           std::initializer_list<std::pair<const char*, std::int64_t>> values) {
    tune::Config c = tune::gpu_attention::build_space(p, t)->default_config();
    for (auto [k, v] : values) c.set(k, v);
    return c;
}

}  // namespace attention_check
