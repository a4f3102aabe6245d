#include "tune/confirmation.hpp"

#include <algorithm>
#include <cstdio>
#include <tuple>

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

double ranking_time(const TimingStats& stats) {
    return stats.min_s > 0 && stats.min_s <= stats.median_s ? stats.min_s : stats.median_s;
}

double confirmed_time(const std::vector<double>& samples) {
    require(!samples.empty(), "confirmed_time: no re-measurements");
    return *std::min_element(samples.begin(), samples.end());
}

std::optional<ConfirmedChoice> choose_confirmed(const std::vector<FinalistTimes>& finalists) {
    auto order_key = [&](std::size_t i) { return std::tie(finalists[i].template_name, finalists[i].config_hash); };
    std::vector<std::pair<std::size_t, double>> ranked;  // (index, confirmed time)
    for (std::size_t i = 0; i < finalists.size(); ++i)
        if (!finalists[i].samples.empty()) ranked.emplace_back(i, confirmed_time(finalists[i].samples));
    if (ranked.empty()) return std::nullopt;
    const double fastest = std::min_element(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
                               return a.second < b.second;
                           })->second;
    ConfirmedChoice choice{0, 0, fastest, 0};
    const std::pair<std::size_t, double>* pick = nullptr;
    for (const auto& r : ranked) {
        if (r.second - fastest > kTieRel * fastest) continue;
        ++choice.tied;
        if (!pick || order_key(r.first) < order_key(pick->first)) pick = &r;
    }
    choice.index = pick->first;
    choice.confirmed_s = pick->second;
    return choice;
}

}  // namespace tune
