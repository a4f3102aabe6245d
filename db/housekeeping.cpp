// Store statistics and pruning (housekeeping.hpp states the rules).
#include "tune/db/housekeeping.hpp"

#include <algorithm>
#include <filesystem>
#include <set>
#include <tuple>
#include <unordered_set>

#include "rows.hpp"

namespace tune {
namespace {

std::uintmax_t size_of(const std::filesystem::path& p) {
    std::error_code ec;
    auto n = std::filesystem::file_size(p, ec);
    return ec ? 0 : n;
}

std::uintmax_t bytes_on_disk(const SqliteDatabase& db) {
    return size_of(db.path()) + size_of(db.path().string() + "-wal");
}

TemplateVersionStats::State state_of(const TemplateVersions& current, const Measurement& m) {
    auto it = current.find(m.template_name);
    if (it == current.end()) return TemplateVersionStats::State::unknown;
    return it->second == m.template_version ? TemplateVersionStats::State::current
                                            : TemplateVersionStats::State::stale;
}

// Which ok rows of one (problem key, device) group to keep; indexes into `rows`.
std::vector<std::size_t> keep_of_group(const std::vector<const Measurement*>& rows, std::size_t keep) {
    std::vector<std::size_t> order(rows.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return db_rules::faster(*rows[a], *rows[b]); });
    std::set<std::size_t> kept(order.begin(), order.begin() + std::min(keep, order.size()));
    std::set<std::string> templates_seen;  // the first of each template in time order is its fastest
    for (std::size_t i : order)
        if (templates_seen.insert(rows[i]->template_name).second) kept.insert(i);
    for (std::size_t i : pareto_front(rows)) kept.insert(i);
    return {kept.begin(), kept.end()};
}

}  // namespace

std::string_view to_string(TemplateVersionStats::State s) {
    switch (s) {
        case TemplateVersionStats::State::current: return "current";
        case TemplateVersionStats::State::stale: return "stale";
        case TemplateVersionStats::State::unknown: return "unknown";
    }
    return "?";
}

StoreStats store_stats(const SqliteDatabase& db, const TemplateVersions& current) {
    StoreStats st;
    st.file_bytes = size_of(db.path());
    st.wal_bytes = size_of(db.path().string() + "-wal");
    auto rows = db.query({}, [&](std::int64_t, const std::string&) { ++st.bad_rows; });
    std::set<std::string> keys;
    std::map<std::pair<std::string, std::string>, TemplateVersionStats> templates;
    for (const auto& m : rows) {
        ++st.rows;
        (m.status == Status::ok ? st.ok_rows : st.failed_rows)++;
        keys.insert(shape_key(m.problem));
        auto& t = templates[{m.template_name, m.template_version}];
        t.template_name = m.template_name;
        t.version = m.template_version;
        t.state = state_of(current, m);
        ++t.rows;
        if (t.state == TemplateVersionStats::State::stale) ++st.stale_rows;
        if (t.state == TemplateVersionStats::State::unknown) ++st.unknown_rows;
        if (st.oldest.empty() || m.created_at < st.oldest) st.oldest = m.created_at;
        if (m.created_at > st.newest) st.newest = m.created_at;
    }
    st.keys = keys.size();
    st.devices = db.devices().size();
    st.runs = db.runs().size();
    for (auto& [name, t] : templates) st.templates.push_back(std::move(t));
    return st;
}

PruneReport prune_store(SqliteDatabase& db, const TemplateVersions& current, const PruneOptions& options) {
    PruneReport r;
    r.bytes_before = bytes_on_disk(db);
    auto rows = db.query({}, [&](std::int64_t, const std::string&) { ++r.bad_rows; });
    r.rows_before = rows.size();
    std::vector<std::int64_t> drop;
    std::map<std::pair<std::string, std::string>, std::vector<const Measurement*>> groups;
    for (const auto& m : rows) {
        switch (state_of(current, m)) {
            case TemplateVersionStats::State::stale:
                drop.push_back(m.id);
                ++r.dropped_stale;
                continue;
            case TemplateVersionStats::State::unknown:
                ++r.kept_unknown;
                continue;
            case TemplateVersionStats::State::current: break;
        }
        if (m.status == Status::ok && options.servable && !options.servable(m)) {
            ++r.kept_unservable;
        } else if (m.status == Status::ok) {
            groups[{shape_key(m.problem), m.device_id}].push_back(&m);
        } else if (options.drop_failed) {
            drop.push_back(m.id);
            ++r.dropped_failed;
        } else {
            ++r.kept_failed;
        }
    }
    // Rows re-measured in a confirmation round stay: the store's pick is ranked among them.
    std::set<std::tuple<std::string, std::string, std::string, std::string, std::string>> finalists;
    for (const Confirmation& c : db.confirmations({}))
        finalists.insert({c.problem_key, c.device_id, c.template_name, c.template_version, c.config_hash});
    for (const auto& [key, group] : groups) {
        auto kept = keep_of_group(group, options.keep);
        std::unordered_set<std::size_t> keep_set(kept.begin(), kept.end());
        for (std::size_t i = 0; i < group.size(); ++i)
            if (!keep_set.count(i) &&
                !finalists.count({key.first, key.second, group[i]->template_name, group[i]->template_version,
                                  group[i]->config.hash_hex()})) {
                drop.push_back(group[i]->id);
                ++r.dropped_slow;
            }
    }
    r.kept = r.rows_before - drop.size();
    if (options.dry_run || drop.empty()) {
        r.bytes_after = r.bytes_before;
        return r;
    }
    db.remove_measurements(drop);
    db.vacuum();
    r.bytes_after = bytes_on_disk(db);
    return r;
}

}  // namespace tune
