#include "tune/dispatcher.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "tune/cost_model/training.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/error.hpp"

namespace tune {

std::string_view to_string(LookupSource s) {
    switch (s) {
        case LookupSource::exact: return "exact";
        case LookupSource::nearest: return "nearest";
        case LookupSource::default_config: return "default";
        case LookupSource::bucket: return "bucket";
        case LookupSource::predicted: return "predicted";
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
    if (!options_.record_path.empty()) {
        // Checked now: a lookup never fails for the record's sake (see flush_locked).
        std::ofstream probe(options_.record_path, std::ios::app);
        require(probe.good(), "dispatcher: cannot append the record (LIBTUNE_RECORD or record_path) to '" +
                                  options_.record_path.string() + "'");
    }
    TimesMap times;
    EntryMap merged;
    for (const auto& layer : layers) require(layer.db != nullptr, "dispatcher: store '" + layer.name + "' is null");
    // Models first: a row's equivalence class is worked out only where a model will use it.
    for (const auto& layer : layers) load_models(layer);
    for (std::size_t i = 0; i < layers.size(); ++i) {
        layer_names_.push_back(layers[i].name);
        load(layers[i], i, times, merged);
    }
    layer_names_.push_back("published");  // results handed to publish() (online tuning)
    for (const Template* t : registry_->all())
        if (models_.contains(t)) model_templates_.push_back(t);
    std::stable_partition(model_templates_.begin(), model_templates_.end(),
                          [](const Template* t) { return !t->info().vendor; });
    std::vector<Entry> entries;
    for (auto& [shape, e] : merged) {
        if (auto t = times.find(shape); t != times.end())
            e.times = std::make_shared<const ShapeTimes>(t->second.begin(), t->second.end());
        entries.push_back(std::move(e));
    }
    // Sorted by key so the index order (and nearest-match ties) does not depend on hashing.
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return shape_key(a.shape) < shape_key(b.shape); });
    auto index = build_index(std::move(entries));
    stats_.entries = index->entries.size();
    index_.store(index.get(), std::memory_order_release);
    indexes_.push_back(std::move(index));
    compute_regrets(times);
    start_online();
}

Dispatcher::~Dispatcher() {
    {
        std::lock_guard lock(online_mutex_);
        online_stop_ = true;
    }
    online_wake_.notify_all();
    if (online_thread_.joinable()) online_thread_.join();
    try {
        flush_record();
    } catch (...) {
        // A destructor must not throw; a failed final flush loses only these counts.
    }
}

std::unique_ptr<Dispatcher::Index> Dispatcher::build_index(std::vector<Entry> entries) const {
    auto index = std::make_unique<Index>();
    index->entries = std::move(entries);
    std::vector<std::string> lines;
    for (std::size_t i = 0; i < index->entries.size(); ++i) {
        const Entry& e = index->entries[i];
        index->exact.emplace(e.shape, i);
        Group& g = index->groups[group_key(e.shape)];
        g.entries.push_back(i);
        auto specs = dim_specs(e.shape.op);
        for (std::size_t d = 0; d < specs.size(); ++d)
            if (specs[d].kind == DimKind::size) g.log_sizes.push_back(std::log2(double(e.shape.dims[d])));
        lines.push_back(shape_key(e.shape) + '|' + e.tmpl->info().name + '|' + e.tmpl->info().version + '|' +
                        e.config.text());
    }
    add_unseen_evidence(*index);
    std::sort(lines.begin(), lines.end());
    std::string all;
    for (const auto& l : lines) all += l + '\n';
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(all)));
    index->snapshot_id = buf;
    return index;
}

// A stored (or published) measurement as a servable entry, after every check; nullopt with
// `why` set when it is rejected, nullopt with `why` empty when it is stale.
std::optional<Dispatcher::Entry> Dispatcher::checked_entry(const Measurement& m, std::size_t layer,
                                                           std::string* why) const {
    const Template* t = registry_->find(m.template_name);
    if (!t || t->info().version != m.template_version) return std::nullopt;
    if (auto refused = refusal(*t, m.problem, m.config)) {
        *why = shape_key(m.problem) + ": " + *refused;
        return std::nullopt;
    }
    if (!(std::isfinite(m.stats.median_s) && m.stats.median_s > 0)) {
        *why = shape_key(m.problem) + ": non-positive time";
        return std::nullopt;
    }
    return Entry{m.problem, t, m.config, m.stats.median_s, ranking_time(m.stats), m.problem.tolerance, layer, m.config.hash(),
                 m.workspace_bytes, nullptr};
}

void Dispatcher::load(const StoreLayer& layer, std::size_t index, TimesMap& times, EntryMap& merged) {
    MeasurementFilter filter;
    filter.device_id = device_.id();
    auto reject = [&](const std::string& why) {
        ++stats_.rejected;
        stats_.rejections.push_back(layer.name + ": " + why);
    };
    // Best per shape within this layer; it then replaces whatever earlier layers had. So does
    // the layer's Pareto front of each shape it tuned.
    EntryMap best;
    std::unordered_map<Problem, std::pair<std::vector<const Measurement*>, std::vector<Entry>>, ShapeHash, SameShape>
        served;
    auto rows = layer.db->query(filter, [&](std::int64_t row, const std::string& why) {
        reject("row " + std::to_string(row) + ": " + why);
    });
    for (auto& m : rows) {
        if (m.status != Status::ok) continue;
        std::string why;
        auto e = checked_entry(m, index, &why);
        if (!e) {
            if (why.empty()) ++stats_.stale;
            else reject(why);
            continue;
        }
        // The class feeds only the unseen-shape evidence, built for templates with a model.
        const std::uint64_t class_hash =
            models_.contains(e->tmpl) ? e->tmpl->equivalence_key(m.problem, m.config).hash() : e->config_hash;
        times[m.problem][ConfigKey{e->tmpl, e->config_hash}] = {e->rank_s, class_hash};
        auto& [measured, entries] = served[m.problem];
        measured.push_back(&m);
        entries.push_back(*e);
        auto [it, inserted] = best.try_emplace(m.problem, *e);
        // Fastest wins; ties go to the smaller config hash so the choice is deterministic.
        if (!inserted && (e->rank_s < it->second.rank_s ||
                          (e->rank_s == it->second.rank_s && e->config.hash() < it->second.config.hash())))
            it->second = std::move(*e);
    }
    // Where the layer holds a current confirmation round, the Tuner's confirmed pick serves
    // instead of the fastest single measurement (if its row passed the checks above).
    for (const ConfirmedPick& pick : confirmed_picks(*layer.db, filter, false)) {
        auto it = served.find(pick.measurement.problem);
        if (it == served.end()) continue;
        const auto& [measured, entries] = it->second;
        for (std::size_t i = 0; i < measured.size(); ++i)
            if (measured[i]->id == pick.measurement.id) best.insert_or_assign(it->first, entries[i]);
    }
    for (auto& [shape, e] : best) merged.insert_or_assign(shape, std::move(e));
    for (auto& [shape, measured_entries] : served) {
        auto& [measured, entries] = measured_entries;
        std::vector<Entry> front;
        for (std::size_t i : pareto_front(measured)) front.push_back(std::move(entries[i]));
        fronts_.insert_or_assign(shape, std::move(front));
    }
}

void Dispatcher::compute_regrets(const TimesMap& times) {
    if (options_.buckets.empty()) return;
    const Index& ix = *index_.load(std::memory_order_acquire);
    std::map<std::string, BucketRegret> by_bucket;
    for (const auto& [shape, configs] : times) {
        auto rep = options_.buckets.representative(shape);
        if (!rep || *rep == shape) continue;
        auto it = ix.exact.find(*rep);
        if (it == ix.exact.end()) continue;
        const Entry& e = ix.entries[it->second];
        auto served = configs.find(ConfigKey{e.tmpl, e.config_hash});
        if (served == configs.end()) continue;  // the bucket's config was not measured there
        double best_s = served->second.seconds;
        for (const auto& [config, timed] : configs) best_s = std::min(best_s, timed.seconds);
        auto& r = by_bucket[shape_key(*rep)];
        r.representative = *rep;
        r.template_name = e.tmpl->info().name;
        r.config = e.config.text();
        r.samples.push_back({shape, served->second.seconds, best_s});
    }
    for (auto& [key, r] : by_bucket) {
        std::sort(r.samples.begin(), r.samples.end(),
                  [](const auto& a, const auto& b) { return shape_key(a.shape) < shape_key(b.shape); });
        regrets_.push_back(std::move(r));
    }
}

const BucketRegret* Dispatcher::bucket_regret(const Problem& p) const {
    auto rep = options_.buckets.representative(p);
    if (!rep) return nullptr;
    for (const auto& r : regrets_)
        if (r.representative == *rep) return &r;
    return nullptr;
}

double BucketRegret::max_regret() const {
    double worst = 0;
    for (const auto& s : samples) worst = std::max(worst, s.regret());
    return worst;
}

double BucketRegret::mean_regret() const {
    double sum = 0;
    for (const auto& s : samples) sum += s.regret();
    return samples.empty() ? 0 : sum / double(samples.size());
}

void Dispatcher::load_models(const StoreLayer& layer) {
    for (const Template* t : registry_->all()) {
        try {
            if (auto stored = layer.db->load_model(cost_model::kGbdtName, t->info().name, device_.id()))
                models_[t] = cost_model::from_stored(*stored);
        } catch (const Error& e) {
            // A model of another feature schema (or a damaged one) is not used; lookups still work.
            stats_.rejections.push_back(layer.name + ": " + e.what());
            ++stats_.rejected;
        }
    }
}

Dispatcher::SpaceFacts& Dispatcher::facts_of(const Template& t, const Problem& p) const {
    auto space = t.space(p);
    auto& facts = spaces_[space.get()];
    if (!facts.space) facts.space = std::move(space);
    return facts;
}

bool Dispatcher::valid_here(const Index& ix, const Problem& p, std::size_t i) const {
    const Template& t = *ix.entries[i].tmpl;
    return t.supports(p) && accepted(ix, facts_of(t, p), i);
}

Dispatcher::ShapeDefault Dispatcher::shape_default(const Template& t, const Problem& p) const {
    auto& facts = facts_of(t, p);
    Config def = t.default_config(p);
    auto same = std::find_if(facts.shape_defaults.begin(), facts.shape_defaults.end(),
                             [&](const auto& c) { return *c == def; });
    const auto i = std::size_t(same - facts.shape_defaults.begin());
    if (same == facts.shape_defaults.end()) {
        facts.shape_default_hashes.push_back(def.hash());
        facts.shape_defaults.push_back(std::make_unique<Config>(std::move(def)));
    }
    return {facts.shape_defaults[i].get(), facts.shape_default_hashes[i]};
}

bool Dispatcher::accepted(const Index& ix, SpaceFacts& facts, std::size_t i) const {
    if (facts.accepts_for != &ix) facts.accepts.assign(ix.entries.size(), -1);
    facts.accepts_for = &ix;
    auto& ok = facts.accepts[i];
    if (ok < 0) ok = facts.space->violation(ix.entries[i].config) ? 0 : 1;
    return ok == 1;
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
    require(!system_db.empty() || user_db.empty(), "dispatcher: a user store needs a system store");
    // No system store: no layer, every lookup serves defaults (and records, with LIBTUNE_RECORD).
    std::unique_ptr<SqliteDatabase> system, user;
    std::vector<StoreLayer> layers;
    std::vector<const SqliteDatabase*> stores;
    if (!system_db.empty()) {
        system = std::make_unique<SqliteDatabase>(system_db, SqliteDatabase::Mode::read_only);
        layers.push_back({system_db.string(), system.get()});
        stores.push_back(system.get());
    }
    if (!user_db.empty()) {
        user = std::make_unique<SqliteDatabase>(user_db, SqliteDatabase::Mode::read_only);
        layers.push_back({user_db.string(), user.get()});
        stores.push_back(user.get());
    }
    if (options.record_path.empty())
        if (const char* env = std::getenv("LIBTUNE_RECORD"); env && *env) options.record_path = env;
    if (options.buckets.empty())
        for (const SqliteDatabase* db : stores)  // the user's rules over the system's
            if (auto text = db->setting("buckets")) {
                try {
                    options.buckets = BucketRules::parse(*text);
                } catch (const Error& e) {
                    throw Error("database '" + db->path().string() + "': stored " + e.what());
                }
            }
    std::unique_ptr<SqliteDatabase> online_store;
    if (options.online.after_misses > 0 && !options.online.on_request && !options.online.store) {
        require(!user_db.empty(), "dispatcher: online tuning needs a user store to write to (user_db)");
        online_store = std::make_unique<SqliteDatabase>(user_db);
        options.online.store = online_store.get();
    }
    DeviceInfo device = detect_cpu();
    auto registry = std::make_shared<const TemplateRegistry>(builtin_registry(device));
    auto d = std::make_unique<Dispatcher>(std::move(layers), std::move(registry), device, std::move(options));
    d->owned_store_ = std::move(online_store);
    return d;
}

Selection Dispatcher::select(const Entry& e, LookupSource s) const {
    // Entries live in an Index that is never freed before the dispatcher: the pointers stay valid.
    return Selection{e.tmpl, &e.config, s, &e.shape, e.median_s, &layer_names_[e.layer]};
}

Selection Dispatcher::lookup(const Problem& p) const {
    const Index& ix = *index_.load(std::memory_order_acquire);
    if (auto it = ix.exact.find(p); it != ix.exact.end()) return select(ix.entries[it->second], LookupSource::exact);
    {
        std::shared_lock lock(unseen_mutex_);
        if (auto it = unseen_.find(p); it != unseen_.end()) {
            if (!options_.record_path.empty()) it->second.hits.fetch_add(1, std::memory_order_relaxed);
            Selection s = it->second.selection;
            bool request = reached_miss_count(it->second);
            lock.unlock();
            if (request) request_tuning(p);
            return s;
        }
    }
    return resolve_unseen(p);
}

std::size_t Dispatcher::counted_workspace(const Problem& p, const Entry& e) const {
    {
        std::lock_guard lock(counted_mutex_);
        if (auto it = counted_.find(&e); it != counted_.end()) return it->second;
    }
    const std::size_t bytes = e.tmpl->workspace_bytes(p, e.config);  // may build the kernel: unlocked
    std::lock_guard lock(counted_mutex_);
    return counted_.try_emplace(&e, bytes).first->second;
}

Selection Dispatcher::lookup_under(const Problem& p, std::size_t max_workspace_bytes) const {
    if (auto it = fronts_.find(p); it != fronts_.end()) {
        // Fastest first with falling workspace: the first that fits is the fastest that fits.
        for (const Entry& e : it->second)
            if (counted_workspace(p, e) <= max_workspace_bytes) return select(e, LookupSource::exact);
        return {};
    }
    Selection s = lookup(p);
    if (s.tmpl && s.tmpl->workspace_bytes(p, *s.config) <= max_workspace_bytes) return s;
    return {};
}

Selection Dispatcher::resolve_unseen(const Problem& p) const {
    validate(p);
    const Index& ix = *index_.load(std::memory_order_acquire);
    // Log-size distance to every tuned shape of the same group (op, dtype, exact dims), with
    // the entry's index in the group.
    std::vector<std::pair<double, std::size_t>> candidates;
    const Group* group = nullptr;
    if (auto g = ix.groups.find(group_key(p)); g != ix.groups.end()) {
        group = &g->second;
        auto specs = dim_specs(p.op);
        std::array<double, kMaxDims> log_sizes{};
        std::size_t n_sizes = 0;
        for (std::size_t d = 0; d < specs.size(); ++d)
            if (specs[d].kind == DimKind::size) log_sizes[n_sizes++] = std::log2(double(p.dims[d]));
        candidates.reserve(group->entries.size());
        const double* row = group->log_sizes.data();
        for (std::size_t e = 0; e < group->entries.size(); ++e, row += n_sizes) {
            // A config verified under a looser budget than the caller's is not a candidate.
            const double tol = ix.entries[group->entries[e]].tolerance;
            if (tol > 0 && !(p.tolerance >= tol)) continue;
            double dist = 0;
            for (std::size_t d = 0; d < n_sizes; ++d) dist += std::abs(log_sizes[d] - row[d]);
            candidates.emplace_back(dist, e);
        }
    }

    std::unique_lock lock(unseen_mutex_);
    if (auto it = unseen_.find(p); it != unseen_.end()) {  // another thread was first
        if (!options_.record_path.empty()) it->second.hits.fetch_add(1, std::memory_order_relaxed);
        Selection s = it->second.selection;
        bool request = reached_miss_count(it->second);
        lock.unlock();
        if (request) request_tuning(p);
        return s;
    }
    if (unseen_.size() >= kMemoCapacity) {
        flush_locked(std::nothrow);
        unseen_.clear();
        carried_misses_.clear();
    }
    Selection chosen;
    // The bucket's representative, when it was tuned (same budget: it is part of the key).
    if (auto rep = options_.buckets.representative(p); rep && !(*rep == p))
        if (auto it = ix.exact.find(*rep); it != ix.exact.end() && valid_here(ix, p, it->second))
            chosen = select(ix.entries[it->second], LookupSource::bucket);
    // With a cost model for the template: its pick among the neighbours' configs and the default.
    if (!chosen.tmpl && group) chosen = predict_unseen(p, ix, *group, candidates);
    // Else nearest first; ties go to the earlier entry. Usually the first candidate is valid,
    // so pick minima one at a time instead of sorting.
    while (!chosen.tmpl && !candidates.empty()) {
        auto best = std::min_element(candidates.begin(), candidates.end());
        if (const std::size_t e = group->entries[best->second]; valid_here(ix, p, e)) {
            chosen = select(ix.entries[e], LookupSource::nearest);
            break;
        }
        *best = candidates.back();
        candidates.pop_back();
    }
    if (!chosen.tmpl) {
        auto templates = registry_->for_problem(p, device_.backend);
        require(!templates.empty(), "dispatcher: no template can compute '" + shape_key(p) + "'");
        chosen = Selection{templates.front(), shape_default(*templates.front(), p).config,
                           LookupSource::default_config, nullptr, 0};
    }
    // An answer computed from an index that publish() has since replaced is not memoised.
    if (index_.load(std::memory_order_acquire) != &ix) {
        lock.unlock();
        return resolve_unseen(p);
    }
    auto [it, inserted] = unseen_.try_emplace(p, chosen);
    if (auto carried = carried_misses_.find(p); inserted && carried != carried_misses_.end()) {
        it->second.misses.store(carried->second, std::memory_order_relaxed);
        carried_misses_.erase(carried);
    }
    if (!options_.record_path.empty()) it->second.hits.fetch_add(1, std::memory_order_relaxed);
    bool request = reached_miss_count(it->second);
    lock.unlock();
    if (request) request_tuning(p);
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
    std::vector<std::pair<const Memo*, std::uint64_t>> written;
    for (auto& [shape, memo] : unseen_) {
        const std::uint64_t n = memo.hits.load(std::memory_order_relaxed);
        if (n == 0) continue;
        nlohmann::json j{{"key", shape_key(shape)},
                         {"problem", shape},
                         {"count", n},
                         {"source", to_string(memo.selection.source)}};
        lines += j.dump() + '\n';
        written.emplace_back(&memo, n);
    }
    if (lines.empty()) return;
    // One append per flush: lines from several processes interleave whole, never torn.
    std::ofstream out(options_.record_path, std::ios::app);
    out << lines;
    out.flush();
    if (!out) throw Error("dispatcher: cannot append the record to '" + options_.record_path.string() + "'");
    // Counted only once written: a failed append keeps them for the next flush.
    for (const auto& [memo, n] : written) memo->hits.fetch_sub(n, std::memory_order_relaxed);
}

void Dispatcher::flush_locked(std::nothrow_t) const {
    try {
        flush_locked();
    } catch (const std::exception&) {
        // The caller starts the memo over: these counts are lost; flush_record() reports a
        // lasting failure.
    }
}

std::size_t Dispatcher::KernelKeyHash::operator()(const KernelKey& k) const noexcept {
    const auto config = static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(k.config));
    return ProblemHash{}(k.problem) ^ (config * 0x9e3779b97f4a7c15ull);
}

void Dispatcher::run(const Problem& p, const OpArgs& args) const {
    if (std::string why = overlapping_operands(p, args); !why.empty())
        throw InvalidArgument("dispatcher: " + shape_key(p) + ": " + why + "; give the output a buffer of its own");
    const Selection s = lookup(p);
    const KernelKey key{p, s.tmpl, s.config};
    std::shared_ptr<const Kernel> kernel;
    {
        std::shared_lock lock(kernels_mutex_);
        if (auto it = kernels_.find(key); it != kernels_.end()) kernel = it->second;
    }
    if (!kernel) {
        // Built outside the lock (a GPU kernel loads a module): runs of other shapes go on.
        // Two threads may both build one; the first to insert wins and the other's is dropped.
        std::shared_ptr<const Kernel> built = s.tmpl->instantiate(p, *s.config);
        const std::size_t bytes = built->workspace_bytes();
        std::unique_lock lock(kernels_mutex_);
        if (!kernels_.contains(key) &&
            (kernels_.size() >= kKernelCacheCapacity || kernel_bytes_ + bytes > kKernelCacheBytes)) {
            kernels_.clear();
            kernel_bytes_ = 0;
        }
        auto [it, inserted] = kernels_.try_emplace(key, std::move(built));
        if (inserted) kernel_bytes_ += bytes;
        kernel = it->second;
    }
    kernel->run(args);
}

std::size_t Dispatcher::cached_kernels() const {
    std::shared_lock lock(kernels_mutex_);
    return kernels_.size();
}

}  // namespace tune
