#include "tune/confirmation.hpp"

#include <algorithm>
#include <cstdio>

#include "tune/config.hpp"
#include "tune/error.hpp"

namespace tune {

std::string finalist_key(const std::string& template_name, const std::string& template_version,
                         const std::string& config_hash) {
    return template_name + '|' + template_version + '|' + config_hash;
}

std::string finalist_set_id(std::vector<std::string> finalist_keys) {
    std::sort(finalist_keys.begin(), finalist_keys.end());
    std::string all;
    for (const auto& k : finalist_keys) all += k + '\n';
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(all)));
    return buf;
}

double confirmed_time(std::vector<double> samples) {
    require(!samples.empty(), "confirmed_time: no re-measurements");
    std::sort(samples.begin(), samples.end());
    return samples[(samples.size() - 1) / 2];
}

std::optional<ConfirmedChoice> choose_confirmed(const std::vector<FinalistTimes>& finalists) {
    struct Ranked {
        std::size_t index;
        double time, spread;
    };
    std::vector<Ranked> ranked;
    for (std::size_t i = 0; i < finalists.size(); ++i) {
        const auto& s = finalists[i].samples;
        if (s.empty()) continue;
        auto [lo, hi] = std::minmax_element(s.begin(), s.end());
        ranked.push_back({i, confirmed_time(s), (*hi - *lo) / 2});
    }
    if (ranked.empty()) return std::nullopt;
    auto order_key = [&](const Ranked& r) {
        return std::tie(finalists[r.index].template_name, finalists[r.index].config_hash);
    };
    const Ranked fastest = *std::min_element(ranked.begin(), ranked.end(), [&](const Ranked& a, const Ranked& b) {
        return a.time != b.time ? a.time < b.time : order_key(a) < order_key(b);
    });
    ConfirmedChoice choice{fastest.index, fastest.time, fastest.time, 0};
    const Ranked* pick = nullptr;
    for (const Ranked& r : ranked) {
        const double allowed =
            std::min(kTieCapRel * fastest.time, std::max(kTieFloorRel * fastest.time, fastest.spread + r.spread));
        if (r.time - fastest.time > allowed) continue;
        ++choice.tied;
        if (!pick || order_key(r) < order_key(*pick)) pick = &r;
    }
    choice.index = pick->index;
    choice.confirmed_s = pick->time;
    return choice;
}

}  // namespace tune
