#include "tune/tuner.hpp"

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "tune/error.hpp"
#include "tune/search/strategy.hpp"

namespace tune {
namespace {

using Clock = std::chrono::steady_clock;

bool faster(const Measurement& a, const std::optional<Measurement>& b) {
    return a.status == Status::ok && (!b || a.stats.median_s < b->stats.median_s);
}

// Vendor spaces this small are measured whole: they are the baseline a pick must beat.
constexpr std::uint64_t kSmallSpace = 8;

}  // namespace

Tuner::Tuner(Database& db, const TemplateRegistry& registry, Measurer& measurer, std::int64_t run_id)
    : db_(db), registry_(registry), measurer_(measurer), run_id_(run_id) {}

TuneResult Tuner::tune(const Problem& p, const TuneOptions& options, TuneProgress progress) {
    validate(p);
    require(options.budget >= 1, "tune: budget must be >= 1");
    require(options.batch >= 1, "tune: batch must be >= 1");
    auto templates = registry_.for_problem(p, options.backend);
    if (!options.templates.empty()) {
        for (const auto& name : options.templates)
            require(registry_.find(name) != nullptr, "tune: unknown template '" + name + "'");
        std::erase_if(templates, [&](const Template* t) {
            return std::find(options.templates.begin(), options.templates.end(), t->info().name) ==
                   options.templates.end();
        });
    }
    require(!templates.empty(), "tune: no template can compute '" + shape_key(p) + "' on backend " +
                                    std::string(to_string(options.backend)));

    TuneResult result;
    result.problem = p;
    const auto start = Clock::now();
    const std::string device_id = measurer_.device().id();
    progress.problem = &p;
    progress.budget = options.budget;

    auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    auto out_of_time = [&] { return options.time_limit_s > 0 && elapsed() >= options.time_limit_s; };
    auto report = [&] {
        progress.done = result.measured + result.reused;
        progress.measured = result.measured;
        progress.reused = result.reused;
        progress.failed = result.failed;
        progress.best = result.best;
        progress.elapsed_s = elapsed();
        double rate = progress.done ? progress.elapsed_s / double(progress.done) : 0;
        progress.remaining_s = rate * double(options.budget - std::min(options.budget, progress.done));
        if (options.time_limit_s > 0)
            progress.remaining_s = std::min(progress.remaining_s, std::max(0.0, options.time_limit_s - progress.elapsed_s));
        if (options.on_progress) options.on_progress(progress);
    };

    // Evaluates one config: reuses a stored measurement when there is one, else measures and
    // records it at once (a killed run loses at most the candidate in flight).
    auto evaluate = [&](const Template& t, const Config& c,
                        std::unordered_map<std::uint64_t, Measurement>& stored) -> Measurement {
        Measurement m;
        if (auto it = stored.find(c.hash()); it != stored.end()) {
            m = it->second;
            ++result.reused;
        } else {
            m = measurer_.measure(p, t, c);
            m.run_id = run_id_;
            db_.record(m);
            stored.emplace(c.hash(), m);
            ++result.measured;
        }
        if (m.status != Status::ok) ++result.failed;
        if (faster(m, result.best)) result.best = m;
        if (t.info().vendor && faster(m, result.vendor_best)) result.vendor_best = m;
        if (m.status == Status::ok) {
            auto [it, inserted] = result.template_best.try_emplace(t.info().name, m);
            if (!inserted && m.stats.median_s < it->second.stats.median_s) it->second = m;
        }
        return m;
    };

    // Budget: every template's default first, vendor spaces whole when small, the rest
    // shared evenly by the own templates' search strategies.
    struct Plan {
        const Template* t;
        std::shared_ptr<const Space> space;
        std::unordered_map<std::uint64_t, Measurement> stored;
    };
    std::vector<Plan> plans;
    for (const Template* t : templates) {
        Plan plan{t, t->space(p), {}};
        MeasurementFilter f{shape_key(p), device_id, t->info().name, t->info().version, std::nullopt};
        for (auto& m : db_.query(f)) plan.stored.emplace(m.config.hash(), std::move(m));
        plans.push_back(std::move(plan));
    }
    std::size_t spent = 0;
    for (auto& plan : plans) {
        if (spent >= options.budget || out_of_time()) break;
        auto m = evaluate(*plan.t, plan.space->default_config(), plan.stored);
        ++spent;
        if (!plan.t->info().vendor && !result.default_config) result.default_config = m;
        report();
    }
    for (auto& plan : plans) {
        if (!plan.t->info().vendor || plan.space->count(kSmallSpace + 1) > kSmallSpace) continue;
        for (const auto& c : plan.space->enumerate_all()) {
            if (spent >= options.budget || out_of_time()) break;
            if (c == plan.space->default_config()) continue;
            evaluate(*plan.t, c, plan.stored);
            ++spent;
            report();
        }
    }
    std::vector<Plan*> searched;
    for (auto& plan : plans)
        if (!plan.t->info().vendor) searched.push_back(&plan);
    for (std::size_t i = 0; i < searched.size(); ++i) {
        Plan& plan = *searched[i];
        std::size_t share = (options.budget - std::min(options.budget, spent)) / (searched.size() - i);
        auto strategy = make_strategy(options.strategy, plan.space, {options.seed, 4096});
        const Config def = plan.space->default_config();
        // The default was measured above; the strategy still learns from it.
        if (auto it = plan.stored.find(def.hash()); it != plan.stored.end()) {
            Trial trial{def, it->second.status == Status::ok, it->second.stats.median_s};
            strategy->observe({&trial, 1});
        }
        std::size_t used = 0;
        while (used < share && !out_of_time()) {
            auto batch = strategy->propose(std::min(options.batch, share - used));
            std::erase(batch, def);
            if (batch.empty()) {
                // Only the (already measured) default was proposed: ask once more, else stop.
                batch = strategy->propose(std::min(options.batch, share - used));
                std::erase(batch, def);
                if (batch.empty()) break;
            }
            std::vector<Trial> trials;
            for (const auto& c : batch) {
                if (used >= share || out_of_time()) break;
                auto m = evaluate(*plan.t, c, plan.stored);
                trials.push_back({c, m.status == Status::ok, m.stats.median_s});
                ++used;
                ++spent;
                report();
            }
            strategy->observe(trials);
        }
    }
    result.elapsed_s = elapsed();
    return result;
}

}  // namespace tune
