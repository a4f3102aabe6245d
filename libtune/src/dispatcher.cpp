#include "tune/dispatcher.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

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

Dispatcher::Dispatcher(const Database& db, std::shared_ptr<const TemplateRegistry> registry, const DeviceInfo& device,
                       DispatcherOptions options)
    : Dispatcher(std::vector<StoreLayer>{{"db", &db}}, std::move(registry), device, std::move(options)) {}

Dispatcher::Dispatcher(std::vector<StoreLayer> layers, std::shared_ptr<const TemplateRegistry> registry,
                       const DeviceInfo& device, DispatcherOptions options)
    : registry_(std::move(registry)), device_(device), options_(std::move(options)) {
    require(registry_ != nullptr, "dispatcher: null template registry");
    for (std::size_t i = 0; i < layers.size(); ++i) {
        require(layers[i].db != nullptr, "dispatcher: store '" + layers[i].name + "' is null");
        layer_names_.push_back(layers[i].name);
        load(layers[i], i);
    }
    std::vector<std::string> lines;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const Entry& e = entries_[i];
        exact_.emplace(e.shape, i);
        Group& g = groups_[group_key(e.shape)];
        g.entries.push_back(i);
        auto specs = dim_specs(e.shape.op);
        for (std::size_t d = 0; d < specs.size(); ++d)
            if (specs[d].kind == DimKind::size) g.log_sizes.push_back(std::log2(double(e.shape.dims[d])));
        lines.push_back(shape_key(e.shape) + '|' + e.tmpl->info().name + '|' + e.tmpl->info().version + '|' +
                        e.config.text());
    }
    std::sort(lines.begin(), lines.end());
    std::string all;
    for (const auto& l : lines) all += l + '\n';
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(all)));
    snapshot_id_ = buf;
    stats_.entries = entries_.size();
}

Dispatcher::~Dispatcher() {
    try {
        flush_record();
    } catch (...) {
        // A destructor must not throw; a failed final flush loses only these counts.
    }
}

void Dispatcher::load(const StoreLayer& layer, std::size_t index) {
    MeasurementFilter filter;
    filter.device_id = device_.id();
    auto reject = [&](const std::string& why) {
        ++stats_.rejected;
        stats_.rejections.push_back(layer.name + ": " + why);
    };
    // Best per shape within this layer; it then replaces whatever earlier layers had.
    std::unordered_map<Problem, Entry, ShapeHash, SameShape> best;
    auto rows = layer.db->query(filter, [&](std::int64_t row, const std::string& why) {
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
        Entry e{m.problem, t, m.config, m.stats.median_s, m.problem.tolerance, index};
        auto [it, inserted] = best.try_emplace(m.problem, e);
        // Fastest wins; ties go to the smaller config hash so the choice is deterministic.
        if (!inserted && (e.median_s < it->second.median_s ||
                          (e.median_s == it->second.median_s && e.config.hash() < it->second.config.hash())))
            it->second = std::move(e);
    }
    std::unordered_map<Problem, std::size_t, ShapeHash, SameShape> position;
    for (std::size_t i = 0; i < entries_.size(); ++i) position.emplace(entries_[i].shape, i);
    // Sorted by key so the index order (and nearest-match ties) does not depend on hashing.
    std::vector<Entry> fresh;
    for (auto& [shape, e] : best) fresh.push_back(std::move(e));
    std::sort(fresh.begin(), fresh.end(),
              [](const Entry& a, const Entry& b) { return shape_key(a.shape) < shape_key(b.shape); });
    for (auto& e : fresh) {
        if (auto it = position.find(e.shape); it != position.end())
            entries_[it->second] = std::move(e);
        else
            entries_.push_back(std::move(e));
    }
}

Problem Dispatcher::group_key(const Problem& p) {
    Problem key;  // tolerance stays 0: budgets are filtered per entry
    key.op = p.op;
    key.dtype = p.dtype;
    auto specs = dim_specs(p.op);
    for (std::size_t d = 0; d < specs.size(); ++d) key.dims[d] = specs[d].kind == DimKind::size ? 0 : p.dims[d];
    return key;
}

std::unique_ptr<Dispatcher> Dispatcher::open(const std::filesystem::path& system_db,
                                             const std::filesystem::path& user_db, DispatcherOptions options) {
    SqliteDatabase system(system_db, SqliteDatabase::Mode::read_only);
    std::unique_ptr<SqliteDatabase> user;
    std::vector<StoreLayer> layers{{system_db.string(), &system}};
    if (!user_db.empty()) {
        user = std::make_unique<SqliteDatabase>(user_db, SqliteDatabase::Mode::read_only);
        layers.push_back({user_db.string(), user.get()});
    }
    if (options.record_path.empty())
        if (const char* env = std::getenv("LIBTUNE_RECORD"); env && *env) options.record_path = env;
    DeviceInfo device = detect_cpu();
    auto registry = std::make_shared<const TemplateRegistry>(builtin_registry(device));
    return std::make_unique<Dispatcher>(std::move(layers), std::move(registry), device, std::move(options));
}

Selection Dispatcher::select(const Entry& e, LookupSource s) const {
    return Selection{e.tmpl, &e.config, s, &e.shape, e.median_s, &layer_names_[e.layer]};
}

Selection Dispatcher::lookup(const Problem& p) const {
    if (auto it = exact_.find(p); it != exact_.end()) return select(entries_[it->second], LookupSource::exact);
    {
        std::shared_lock lock(unseen_mutex_);
        if (auto it = unseen_.find(p); it != unseen_.end()) {
            if (!options_.record_path.empty()) it->second.hits.fetch_add(1, std::memory_order_relaxed);
            return it->second.selection;
        }
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
    if (auto it = unseen_.find(p); it != unseen_.end()) {  // another thread was first
        if (!options_.record_path.empty()) it->second.hits.fetch_add(1, std::memory_order_relaxed);
        return it->second.selection;
    }
    if (unseen_.size() >= kMemoCapacity) {
        flush_locked();
        unseen_.clear();
    }
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
    auto [it, inserted] = unseen_.try_emplace(p, chosen);
    if (!options_.record_path.empty()) it->second.hits.fetch_add(1, std::memory_order_relaxed);
    return chosen;
}

void Dispatcher::flush_record() const {
    if (options_.record_path.empty()) return;
    std::unique_lock lock(unseen_mutex_);
    flush_locked();
}

void Dispatcher::flush_locked() const {
    if (options_.record_path.empty()) return;
    std::string lines;
    for (auto& [shape, memo] : unseen_) {
        std::uint64_t n = memo.hits.exchange(0, std::memory_order_relaxed);
        if (n == 0) continue;
        nlohmann::json j{{"key", shape_key(shape)},
                         {"problem", shape},
                         {"count", n},
                         {"source", to_string(memo.selection.source)}};
        lines += j.dump() + '\n';
    }
    if (lines.empty()) return;
    // One append per flush: lines from several processes interleave whole, never torn.
    std::ofstream out(options_.record_path, std::ios::app);
    out << lines;
    out.flush();
    if (!out) throw Error("dispatcher: cannot append the record to '" + options_.record_path.string() + "'");
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
