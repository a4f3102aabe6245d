#include "tune/dispatcher.hpp"

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
        Entry e{m.problem, t, m.config, m.stats.median_s, {}};
        auto specs = dim_specs(m.problem.op);
        for (std::size_t i = 0; i < specs.size(); ++i)
            e.log_dims[i] = specs[i].kind == DimKind::size ? std::log2(double(m.problem.dims[i])) : 0;
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
    for (std::size_t i = 0; i < entries_.size(); ++i) exact_.emplace(entries_[i].shape, i);
    stats_.entries = entries_.size();
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
        if (auto it = unseen_.find(p); it != unseen_.end()) return it->second.selection;
    }
    return resolve_unseen(p);
}

Selection Dispatcher::resolve_unseen(const Problem& p) const {
    validate(p);
    Resolved r;
    // Nearest tuned shape (log-size distance) whose config is valid for this shape.
    auto specs = dim_specs(p.op);
    std::array<double, kMaxDims> log_dims{};
    for (std::size_t i = 0; i < specs.size(); ++i)
        log_dims[i] = specs[i].kind == DimKind::size ? std::log2(double(p.dims[i])) : 0;
    std::vector<std::pair<double, const Entry*>> order;
    for (const auto& e : entries_) {
        if (e.shape.op != p.op || e.shape.dtype != p.dtype) continue;
        double d = 0;
        for (std::size_t i = 0; i < specs.size() && std::isfinite(d); ++i) {
            if (specs[i].kind == DimKind::size)
                d += std::abs(log_dims[i] - e.log_dims[i]);
            else if (e.shape.dims[i] != p.dims[i])
                d = std::numeric_limits<double>::infinity();
        }
        if (std::isfinite(d)) order.emplace_back(d, &e);
    }
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        return a.first < b.first || (a.first == b.first && a.second < b.second);
    });
    for (const auto& [d, e] : order) {
        if (e->tmpl->supports(p) && !e->tmpl->space(p)->violation(e->config)) {
            r.selection = select(*e, LookupSource::nearest);
            break;
        }
    }
    if (!r.selection.tmpl) {
        auto templates = registry_->for_problem(p, device_.backend);
        require(!templates.empty(), "dispatcher: no template can compute '" + shape_key(p) + "'");
        r.default_config = std::make_unique<Config>(templates.front()->space(p)->default_config());
        r.selection = Selection{templates.front(), r.default_config.get(), LookupSource::default_config, nullptr, 0};
    }
    std::unique_lock lock(unseen_mutex_);
    auto [it, inserted] = unseen_.try_emplace(p, std::move(r));
    return it->second.selection;
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
