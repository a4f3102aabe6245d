#include "tune/dispatcher.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tune/db/sqlite_database.hpp"
#include "tune/error.hpp"

namespace tune {

std::string_view to_string(LookupSource s) {
    switch (s) {
        case LookupSource::exact: return "exact";
        case LookupSource::nearest: return "nearest";
        case LookupSource::default_config: return "default";
    }
    return "?";
}

Dispatcher::Dispatcher(const Database& db, std::shared_ptr<const TemplateRegistry> registry, const DeviceInfo& device)
    : registry_(std::move(registry)), device_(device) {
    require(registry_ != nullptr, "dispatcher: null template registry");
    MeasurementFilter filter;
    filter.device_id = device_.id();
    auto reject = [&](const std::string& why) {
        ++stats_.rejected;
        stats_.rejections.push_back(why);
    };
    std::unordered_map<Problem, std::size_t, ShapeHash, SameShape> best;
    auto rows = db.query(filter, [&](std::int64_t row, const std::string& why) {
        reject("row " + std::to_string(row) + ": " + why);
    });
    for (auto& m : rows) {
        if (m.status != Status::ok) continue;
        const Template* t = registry_->find(m.template_name);
        if (!t || t->info().version != m.template_version) {
            ++stats_.stale;
            continue;
        }
        if (!t->supports(m.problem)) {
            reject(shape_key(m.problem) + ": template " + m.template_name + " does not support it");
            continue;
        }
        if (auto why = t->space(m.problem)->violation(m.config)) {
            reject(shape_key(m.problem) + ": " + m.template_name + " config '" + m.config.text() + "': " + *why);
            continue;
        }
        if (!(std::isfinite(m.stats.median_s) && m.stats.median_s > 0)) {
            reject(shape_key(m.problem) + ": non-positive time");
            continue;
        }
        Entry e{m.problem, t, m.config, m.stats.median_s, m.problem.tolerance};
        auto [it, inserted] = best.try_emplace(m.problem, entries_.size());
        if (inserted) {
            entries_.push_back(std::move(e));
        } else {
            Entry& cur = entries_[it->second];
            // Fastest wins; ties go to the smaller config hash so the choice is deterministic.
            if (e.median_s < cur.median_s || (e.median_s == cur.median_s && e.config.hash() < cur.config.hash()))
                cur = std::move(e);
        }
    }
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const Problem& shape = entries_[i].shape;
        exact_.emplace(shape, i);
        Group& g = groups_[group_key(shape)];
        g.entries.push_back(i);
        auto specs = dim_specs(shape.op);
        for (std::size_t d = 0; d < specs.size(); ++d)
            if (specs[d].kind == DimKind::size) g.log_sizes.push_back(std::log2(double(shape.dims[d])));
    }
    stats_.entries = entries_.size();
}

Problem Dispatcher::group_key(const Problem& p) {
    Problem key;  // tolerance stays 0: budgets are filtered per entry
    key.op = p.op;
    key.dtype = p.dtype;
    auto specs = dim_specs(p.op);
    for (std::size_t d = 0; d < specs.size(); ++d) key.dims[d] = specs[d].kind == DimKind::size ? 0 : p.dims[d];
    return key;
}

std::unique_ptr<Dispatcher> Dispatcher::open(const std::filesystem::path& db_path) {
    SqliteDatabase db(db_path, SqliteDatabase::Mode::read_only);
    DeviceInfo device = detect_cpu();
    auto registry = std::make_shared<const TemplateRegistry>(builtin_registry(device));
    return std::make_unique<Dispatcher>(db, std::move(registry), device);
}

Selection Dispatcher::select(const Entry& e, LookupSource s) {
    return Selection{e.tmpl, &e.config, s, &e.shape, e.median_s};
}

Selection Dispatcher::lookup(const Problem& p) const {
    if (auto it = exact_.find(p); it != exact_.end()) return select(entries_[it->second], LookupSource::exact);
    {
        std::shared_lock lock(unseen_mutex_);
        if (auto it = unseen_.find(p); it != unseen_.end()) return it->second;
    }
    return resolve_unseen(p);
}

Selection Dispatcher::resolve_unseen(const Problem& p) const {
    validate(p);
    // Log-size distance to every tuned shape of the same group (op, dtype, exact dims).
    std::vector<std::pair<double, std::size_t>> candidates;
    if (auto g = groups_.find(group_key(p)); g != groups_.end()) {
        auto specs = dim_specs(p.op);
        std::array<double, kMaxDims> log_sizes{};
        std::size_t n_sizes = 0;
        for (std::size_t d = 0; d < specs.size(); ++d)
            if (specs[d].kind == DimKind::size) log_sizes[n_sizes++] = std::log2(double(p.dims[d]));
        const auto& group = g->second;
        candidates.reserve(group.entries.size());
        const double* row = group.log_sizes.data();
        for (std::size_t e = 0; e < group.entries.size(); ++e, row += n_sizes) {
            // A config verified under a looser budget than the caller's is not a candidate.
            const double tol = entries_[group.entries[e]].tolerance;
            if (tol > 0 && !(p.tolerance >= tol)) continue;
            double dist = 0;
            for (std::size_t d = 0; d < n_sizes; ++d) dist += std::abs(log_sizes[d] - row[d]);
            candidates.emplace_back(dist, group.entries[e]);
        }
    }

    std::unique_lock lock(unseen_mutex_);
    if (auto it = unseen_.find(p); it != unseen_.end()) return it->second;  // another thread was first
    if (unseen_.size() >= kMemoCapacity) unseen_.clear();
    // Nearest first; ties go to the earlier entry. Usually the first candidate is valid, so
    // pick minima one at a time instead of sorting.
    Selection chosen;
    while (!candidates.empty()) {
        auto best = std::min_element(candidates.begin(), candidates.end());
        const Entry& e = entries_[best->second];
        if (e.tmpl->supports(p)) {
            auto space = e.tmpl->space(p);
            auto& facts = spaces_[space.get()];
            if (!facts.space) facts.space = space;
            facts.accepts.resize(entries_.size(), -1);
            auto& ok = facts.accepts[best->second];
            if (ok < 0) ok = space->violation(e.config) ? 0 : 1;
            if (ok) {
                chosen = select(e, LookupSource::nearest);
                break;
            }
        }
        *best = candidates.back();
        candidates.pop_back();
    }
    if (!chosen.tmpl) {
        auto templates = registry_->for_problem(p, device_.backend);
        require(!templates.empty(), "dispatcher: no template can compute '" + shape_key(p) + "'");
        auto space = templates.front()->space(p);
        auto& facts = spaces_[space.get()];
        if (!facts.space) facts.space = space;
        if (!facts.default_config) facts.default_config = std::make_unique<Config>(space->default_config());
        chosen = Selection{templates.front(), facts.default_config.get(), LookupSource::default_config, nullptr, 0};
    }
    unseen_.emplace(p, chosen);
    return chosen;
}

void Dispatcher::run(const Problem& p, const OpArgs& args) const {
    Selection s = lookup(p);
    std::string key = shape_key(p) + '|' + s.tmpl->info().name + '|' + s.config->text();
    std::shared_ptr<const Kernel> kernel;
    {
        std::lock_guard lock(kernels_mutex_);
        auto& slot = kernels_[key];
        if (!slot) slot = s.tmpl->instantiate(p, *s.config);
        kernel = slot;
    }
    kernel->run(args);
}

}  // namespace tune
