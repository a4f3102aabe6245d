#include "tune/confirmation.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
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

namespace {

// The two smallest samples (the second is the first when there is one).
std::pair<double, double> two_fastest(const std::vector<double>& samples) {
    double first = std::numeric_limits<double>::infinity(), second = first;
    for (double t : samples) {
        if (t < first) second = first, first = t;
        else if (t < second) second = t;
    }
    return {first, samples.size() > 1 ? second : first};
}

}  // namespace

double confirmed_time(const std::vector<double>& samples) {
    require(!samples.empty(), "confirmed_time: no re-measurements");
    return two_fastest(samples).second;
}

std::optional<ConfirmedChoice> choose_confirmed(const std::vector<FinalistTimes>& finalists) {
    auto order_key = [&](std::size_t i) {
        return std::make_tuple(!finalists[i].vendor, std::cref(finalists[i].template_name),
                               std::cref(finalists[i].config_hash));
    };
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

bool floor_repeated(const std::vector<double>& samples) {
    if (samples.size() < 2) return false;
    const auto [first, second] = two_fastest(samples);
    return second - first <= kFloorRel * first;
}

std::vector<std::size_t> contested(const std::vector<FinalistTimes>& finalists) {
    const auto choice = choose_confirmed(finalists);
    if (!choice) return {};
    const double fastest = choice->fastest_s;
    std::vector<std::size_t> close;
    // By each finalist's fastest re-measurement, not its confirmed time: one that has once run
    // near the leader's confirmed time may be as fast, its other passes slowed by the machine.
    for (std::size_t i = 0; i < finalists.size(); ++i)
        if (!finalists[i].samples.empty() && two_fastest(finalists[i].samples).first - fastest <= kContestRel * fastest)
            close.push_back(i);
    if (close.size() < 2 ||
        std::all_of(close.begin(), close.end(), [&](std::size_t i) { return floor_repeated(finalists[i].samples); }))
        close.clear();
    return close;
}

}  // namespace tune
