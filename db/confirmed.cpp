// confirmed_picks: the store's view of the Tuner's confirmation rounds (database.hpp states
// the rule; tune/confirmation.hpp ranks).
#include <algorithm>
#include <map>

#include "rows.hpp"
#include "tune/db/database.hpp"

namespace tune {

std::vector<ConfirmedPick> confirmed_picks(const Database& db, const MeasurementFilter& filter, bool per_template) {
    MeasurementFilter shapes{filter.problem_key, filter.device_id, "", "", std::nullopt};
    std::map<std::pair<std::string, std::string>, std::vector<Confirmation>> by_shape;
    for (auto& c : db.confirmations(shapes)) by_shape[{c.problem_key, c.device_id}].push_back(std::move(c));

    std::vector<ConfirmedPick> out;
    for (auto& [shape, all] : by_shape) {
        // The newest round: the finalist set of the last stored re-measurement.
        const std::string set = std::max_element(all.begin(), all.end(), [](const auto& a, const auto& b) {
                                    return a.id < b.id;
                                })->finalists;
        std::int64_t snapshot = 0;
        std::map<std::string, std::vector<double>> samples;  // by finalist_key
        std::map<std::string, bool> vendor;                   // by finalist_key
        std::map<std::string, std::string> versions;          // the round's templates and their versions
        for (const auto& c : all) {
            if (c.finalists != set) continue;
            snapshot = std::max(snapshot, c.snapshot);
            const std::string key = finalist_key(c.template_name, c.template_version, c.config_hash);
            samples[key].push_back(ranking_time(c.stats));
            vendor[key] = vendor[key] || c.vendor;
            versions[c.template_name] = c.template_version;
        }
        // A candidate stored after the round that the round's Tuner would have ranked (a template
        // of the round at its version, or another template) means it no longer ranks the shape.
        // Rows of other versions of the round's templates (e.g. an imported old build) do not.
        auto rows = db.query({shape.first, shape.second, "", "", Status::ok});
        if (std::any_of(rows.begin(), rows.end(), [&](const Measurement& m) {
                auto v = versions.find(m.template_name);
                return m.id > snapshot && (v == versions.end() || v->second == m.template_version);
            }))
            continue;
        // Finalists grouped by what the pick is for: the shape, or each template.
        std::map<std::string, std::pair<std::vector<FinalistTimes>, std::vector<const Measurement*>>> groups;
        for (const Measurement& m : rows) {
            auto it = samples.find(finalist_key(m.template_name, m.template_version, m.config.hash_hex()));
            if (it == samples.end()) continue;
            auto& [times, members] = groups[per_template ? m.template_name + '|' + m.template_version : ""];
            times.push_back({m.template_name, m.config.hash_hex(), it->second, vendor.at(it->first)});
            members.push_back(&m);
        }
        for (auto& [scope, group] : groups) {
            auto choice = choose_confirmed(group.first);
            if (!choice) continue;
            const Measurement& picked = *group.second[choice->index];
            if (!db_rules::matches(filter, picked)) continue;
            out.push_back({picked, *choice, set});
        }
    }
    return out;
}

namespace db_rules {

std::vector<Measurement> with_confirmed_picks(const Database& db, const MeasurementFilter& filter,
                                              std::vector<Measurement> best) {
    MeasurementFilter ok = filter;
    ok.status = std::nullopt;
    for (auto& pick : confirmed_picks(db, ok, true)) {
        const Measurement& m = pick.measurement;
        auto it = std::find_if(best.begin(), best.end(), [&](const Measurement& b) {
            return b.template_name == m.template_name && shape_key(b.problem) == shape_key(m.problem);
        });
        if (it != best.end()) *it = std::move(pick.measurement);
    }
    return best;
}

}  // namespace db_rules
}  // namespace tune
