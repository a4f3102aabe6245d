#include "common.hpp"

#include <limits>
#include <vector>

namespace tune::cpu_attention {

bool supports_problem(const Problem& p, const DeviceInfo& device, bool backward) {
    if (p.op != OpKind::attention || p.dtype != DType::f32 || !device.isa.avx512f) return false;
    const AttentionDims a = attention_dims(p);
    if (a.backward != backward) return false;
    constexpr std::int64_t kMax = std::numeric_limits<int>::max() / 16;
    return a.q_len <= kMax && a.kv_len <= kMax && a.head_dim <= kMax;
}

Knob threads_knob(int cores, std::string help) {
    std::vector<std::int64_t> threads;
    for (int t = 1; t <= cores; ++t) threads.push_back(t);
    return Knob::ints("threads", threads, cores, std::move(help));
}

}  // namespace tune::cpu_attention
