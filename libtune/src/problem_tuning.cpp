#include "problem_tuning.hpp"

#include <algorithm>
#include <map>

#include "tune/cost_model/training.hpp"

namespace tune::detail {
namespace {

using Clock = std::chrono::steady_clock;

bool faster(const Measurement& a, const std::optional<Measurement>& b) {
    return a.status == Status::ok && (!b || ranking_time(a.stats) < ranking_time(b->stats));
}

// Vendor spaces this small are measured whole: they are the baseline a pick must beat.
constexpr std::uint64_t kSmallSpace = 8;

}  // namespace

ProblemTuning::ProblemTuning(const Problem& p, Args args)
    : options_(args.options), db_(args.db), device_id_(args.device_id), device_(args.device), progress_(args.progress), start_(Clock::now()) {
    result_.problem = p;
    progress_.problem = &result_.problem;
    progress_.budget = options_.budget;
    for (const Template* t : args.templates) {
        Plan plan{t, t->space(p), {}, {}};
        if (options_.max_workspace_bytes > 0 || !options_.fixed_knobs.empty()) {
            auto narrowed = std::make_shared<Space>(*plan.space);
            if (options_.max_workspace_bytes > 0)
                narrowed->require("max_workspace", [t, p, cap = options_.max_workspace_bytes](const Config& c) {
                    return t->workspace_bytes(p, c) <= cap;
                });
            for (const auto& [name, value] : options_.fixed_knobs.values())
                if (plan.space->knob(name))
                    narrowed->require("fixed_" + name, [name = name, value = value](const Config& c) {
                        const KnobValue* v = c.find(name);
                        return v && *v == value;
                    });
            plan.space = std::move(narrowed);
        }
        MeasurementFilter f{shape_key(p), args.device_id, t->info().name, t->info().version, std::nullopt};
        for (auto& m : args.db.query(f)) plan.stored.emplace(m.config.hash(), std::move(m));
        plans_.push_back(std::move(plan));
    }
    for (auto& plan : plans_)
        if (!plan.t->info().vendor) searched_.push_back(&plan);
    // Smaller spaces search first: the part of its share one cannot use (a space smaller than
    // it) goes to the templates after it instead of staying unspent.
    const std::uint64_t enough = options_.budget + 1;
    std::stable_sort(searched_.begin(), searched_.end(),
                     [enough](const Plan* a, const Plan* b) { return a->space->count(enough) < b->space->count(enough); });
}

double ProblemTuning::elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

bool ProblemTuning::out_of_time() const { return options_.time_limit_s > 0 && elapsed() >= options_.time_limit_s; }

void ProblemTuning::report(bool finished) {
    progress_.done = result_.measured + result_.reused;
    progress_.measured = result_.measured;
    progress_.reused = result_.reused;
    progress_.failed = result_.failed;
    progress_.best = result_.best;
    progress_.elapsed_s = elapsed();
    progress_.finished = finished;
    double rate = progress_.done ? progress_.elapsed_s / double(progress_.done) : 0;
    progress_.remaining_s = finished ? 0 : rate * double(options_.budget - std::min(options_.budget, progress_.done));
    if (options_.time_limit_s > 0)
        progress_.remaining_s = std::min(progress_.remaining_s, std::max(0.0, options_.time_limit_s - progress_.elapsed_s));
    if (options_.on_progress) options_.on_progress(progress_);
}

std::vector<ProblemTuning::Pending> ProblemTuning::next_round() {
    close_round();
    while (open_round()) {
        std::vector<Pending> pending;
        for (std::size_t i = 0; i < round_.size(); ++i) {
            Slot& s = round_[i];
            if (round_stage_ == Stage::confirm) {
                // A re-measurement an interrupted run stored is reused (resume).
                const TemplateInfo& info = s.plan->t->info();
                const std::string key = finalist_key(info.name, info.version, s.config.hash_hex());
                if (auto it = stored_confirmations_.find({key, s.round}); it != stored_confirmations_.end()) {
                    Measurement m = s.plan->stored.at(s.config.hash());
                    m.stats = it->second;
                    resolve(i, std::move(m), true);
                    continue;
                }
                Confirmation c;
                c.problem_key = shape_key(result_.problem);
                c.device_id = device_id_;
                c.template_name = info.name;
                c.template_version = info.version;
                c.config_hash = s.config.hash_hex();
                c.finalists = finalists_;
                c.round = s.round;
                c.vendor = info.vendor;
                pending.push_back({i, s.plan->t, s.config, std::move(c)});
                continue;
            }
            // A stored measurement is reused, never measured again (resume).
            if (auto it = s.plan->stored.find(s.config.hash()); it != s.plan->stored.end())
                resolve(i, it->second, true);
            else
                pending.push_back({i, s.plan->t, s.config, std::nullopt});
        }
        if (!pending.empty()) return pending;
        close_round();
    }
    stage_ = Stage::done;
    result_.elapsed_s = elapsed();
    report(true);
    return {};
}

const Config* ProblemTuning::claim_class(Plan& plan, const Config& c) {
    auto [it, fresh] = plan.classes.try_emplace(plan.t->equivalence_key(result_.problem, c).hash(), c);
    return fresh ? nullptr : &it->second;
}

std::vector<Trial> ProblemTuning::echo_trials() {
    std::vector<Trial> trials;
    for (const Echo& e : echoes_) {
        auto it = e.plan->stored.find(e.measured_as.hash());
        if (it == e.plan->stored.end()) continue;  // not measured: the time limit came first
        trials.push_back({e.config, it->second.status == Status::ok, ranking_time(it->second.stats), true});
    }
    echoes_.clear();
    return trials;
}

std::optional<Config> ProblemTuning::shape_default(const Plan& plan) const {
    Config shaped = plan.t->default_config(result_.problem);
    if (shaped == plan.t->space(result_.problem)->default_config()) return std::nullopt;  // nothing shape-specific
    for (const auto& [name, value] : options_.fixed_knobs.values())
        if (shaped.find(name)) shaped.set(name, value);
    if (shaped == plan.space->default_config() || plan.space->violation(shaped)) return std::nullopt;
    return shaped;
}

void ProblemTuning::add(Plan& plan, Config c) {
    claim_class(plan, c);
    enqueue(plan, std::move(c));
}

void ProblemTuning::enqueue(Plan& plan, Config c) {
    round_.push_back({&plan, std::move(c), std::nullopt});
    ++unresolved_;
    ++spent_;
}

// Budget: every template's default and initial configs first, vendor spaces whole when small,
// the rest shared evenly by the own templates' search strategies. Then the confirmation.
bool ProblemTuning::open_round() {
    if (out_of_time()) return false;
    round_stage_ = stage_;
    switch (stage_) {
        case Stage::defaults:
            stage_ = Stage::vendor_spaces;
            for (auto& plan : plans_) {
                if (spent_ >= options_.budget) break;
                // The template's default for this shape first (what the Dispatcher serves
                // untuned, so the run's "default"), then the space's where they differ.
                const Config def = plan.space->default_config();
                if (auto shaped = shape_default(plan)) add(plan, *shaped);
                if (spent_ >= options_.budget) break;
                if (!plan.space->violation(def)) add(plan, def);  // else: memory cap, fixed knobs
            }
            for (auto& plan : plans_) {
                auto it = options_.initial_configs.find(plan.t->info().name);
                if (it == options_.initial_configs.end()) continue;
                for (const Config& c : it->second) {
                    if (spent_ >= options_.budget) break;
                    const bool listed = std::any_of(round_.begin(), round_.end(), [&](const Slot& s) {
                        return s.plan == &plan && s.config == c;
                    });
                    // One the template's space refuses is recorded invalid; one that only this
                    // run's workspace cap or fixed knobs exclude is left out (valid elsewhere).
                    if (listed || (plan.space->violation(c) && !plan.t->space(result_.problem)->violation(c))) continue;
                    add(plan, c);
                }
            }
            if (!round_.empty()) return true;
            [[fallthrough]];
        case Stage::vendor_spaces:
            round_stage_ = Stage::vendor_spaces;
            stage_ = Stage::search;
            for (auto& plan : plans_) {
                if (!plan.t->info().vendor || plan.space->count(kSmallSpace + 1) > kSmallSpace) continue;
                const Config def = plan.space->default_config();
                for (auto& c : plan.space->enumerate_all()) {
                    if (spent_ >= options_.budget) break;
                    if (c != def) add(plan, std::move(c));
                }
            }
            if (!round_.empty()) return true;
            [[fallthrough]];
        case Stage::search:
            round_stage_ = Stage::search;
            if (open_search_round()) return true;
            stage_ = Stage::confirm;
            [[fallthrough]];
        case Stage::confirm:
            round_stage_ = Stage::confirm;
            stage_ = Stage::contest;
            if (open_confirm_round()) return true;
            stage_ = Stage::done;
            return false;
        case Stage::contest:
            round_stage_ = Stage::confirm;  // more re-measurements of the same finalist set
            if (open_contest_round()) return true;
            stage_ = Stage::done;
            return false;
        case Stage::done:
            return false;
    }
    return false;
}

StrategyOptions ProblemTuning::strategy_options(const Plan& plan) const {
    StrategyOptions so{options_.seed, 4096, nullptr};
    if (!strategy_uses_model(options_.strategy) || !device_) return so;
    // The model-guided strategies see this problem's features and, with transfer on, a model
    // of the other shapes the store holds for this template and device.
    std::shared_ptr<const cost_model::GbdtModel> prior;
    if (options_.transfer)
        prior = cost_model::transfer_prior(db_, result_.problem, plan.t->info().name, plan.t->info().version,
                                           [t = plan.t](const Problem& q) { return t->space(q); }, *device_);
    so.model = std::make_shared<cost_model::SearchContext>(
        cost_model::make_search_context(result_.problem, plan.space, *device_, std::move(prior)));
    return so;
}

bool ProblemTuning::open_search_round() {
    while (searching_ < searched_.size()) {
        Plan& plan = *searched_[searching_];
        const Config def = plan.space->default_config();
        if (!strategy_) {
            share_ = (options_.budget - std::min(options_.budget, spent_)) / (searched_.size() - searching_);
            used_ = 0;
            strategy_ = make_strategy(options_.strategy, plan.space, strategy_options(plan));
            // The default and initial configs were measured in the first round; the strategy
            // still learns from them.
            std::vector<Config> first{def};
            if (auto shaped = shape_default(plan)) first.push_back(std::move(*shaped));
            if (auto it = options_.initial_configs.find(plan.t->info().name); it != options_.initial_configs.end())
                first.insert(first.end(), it->second.begin(), it->second.end());
            std::vector<Trial> trials;
            for (const Config& c : first)
                if (auto it = plan.stored.find(c.hash()); it != plan.stored.end())
                    trials.push_back({c, it->second.status == Status::ok, ranking_time(it->second.stats)});
            strategy_->observe(trials);
        }
        // A proposal equivalent to a config already in the run (same class at this problem's
        // sizes, e.g. a block size past the dim it blocks) is not measured and costs no budget:
        // the strategy observes it with that config's result. Batches of nothing else are
        // answered at once; after kMaxEquivalentBatches of them in a row the search has stalled.
        for (int echo_batches = 0; used_ < share_ && echo_batches < kMaxEquivalentBatches; ++echo_batches) {
            auto batch = strategy_->propose(std::min(options_.batch, share_ - used_));
            std::erase(batch, def);
            if (batch.empty()) {
                // Only the (already measured) default was proposed: ask once more, else stop.
                batch = strategy_->propose(std::min(options_.batch, share_ - used_));
                std::erase(batch, def);
            }
            if (batch.empty()) break;
            bool added = false;
            for (auto& c : batch) {
                if (const Config* same = claim_class(plan, c)) {
                    echoes_.push_back({&plan, std::move(c), *same});
                    ++result_.equivalent;
                    continue;
                }
                ++used_;
                enqueue(plan, std::move(c));
                added = true;
            }
            if (added) return true;
            strategy_->observe(echo_trials());
        }
        echoes_.clear();
        strategy_.reset();
        ++searching_;
    }
    return false;
}

// Finalists: each template's fastest (so the best library is always among them), every config
// of a small vendor space, and the `confirm_top` fastest overall; each is measured
// `confirm_rounds` times, in turn.
bool ProblemTuning::open_confirm_round() {
    if (options_.confirm_rounds == 0 || out_of_time()) return false;
    // The pool is every ok row of the run's templates at this shape, not only this run's: the
    // store takes the round's pick over every row stored before it, so a faster config that an
    // earlier run (another seed, strategy or budget) measured must be able to take part.
    for (Plan& plan : plans_)
        for (const auto& stored : plan.stored) {
            const Measurement& m = stored.second;  // not a structured binding: the lambda captures it (clang 14)
            const bool in_pool = std::any_of(ok_.begin(), ok_.end(), [&](const auto& e) {
                return e.first == &plan && e.second.config == m.config;
            });
            if (m.status == Status::ok && !in_pool && !plan.space->violation(m.config)) ok_.emplace_back(&plan, m);
        }
    std::vector<std::size_t> order(ok_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return ranking_time(ok_[a].second.stats) < ranking_time(ok_[b].second.stats);
    });
    std::vector<std::size_t> finalists;
    auto has = [&](auto pred) {
        return std::any_of(finalists.begin(), finalists.end(), [&](std::size_t f) { return pred(ok_[f]); });
    };
    std::size_t rank = 0;  // among distinct configs, fastest first
    for (std::size_t i : order) {
        const auto& plan = ok_[i].first;  // not a structured binding: lambdas capture it (clang 14)
        const Measurement& m = ok_[i].second;
        if (has([&](const auto& f) { return f.first == plan && f.second.config == m.config; })) continue;
        const bool in_top = rank++ < options_.confirm_top;
        // A small vendor space was measured whole: each of its configs is a baseline (one
        // noisy first measurement must not drop a library's better thread count).
        const bool baseline = plan->t->info().vendor && plan->space->count(kSmallSpace + 1) <= kSmallSpace;
        if (in_top || baseline || !has([&](const auto& f) { return f.first == plan; })) finalists.push_back(i);
    }
    if (finalists.size() < 2) return false;  // nothing to rank
    // A faster row of a template this run leaves out (TuneOptions::templates) cannot be
    // re-measured here; a round without it would outrank it in the store, so none is held.
    const std::vector<Measurement> shape_rows = db_.query({shape_key(result_.problem), device_id_, "", "", Status::ok});
    const double fastest_finalist = ranking_time(ok_[order.front()].second.stats);
    for (const Measurement& m : shape_rows)
        if (ranking_time(m.stats) < fastest_finalist &&
            std::none_of(plans_.begin(), plans_.end(), [&](const Plan& plan) { return plan.t->info().name == m.template_name; }))
            return false;
    std::vector<std::string> keys;
    for (std::size_t f : finalists) {
        const TemplateInfo& info = ok_[f].first->t->info();
        keys.push_back(finalist_key(info.name, info.version, ok_[f].second.config.hash_hex()));
    }
    // The set also names the shape's newest ok row on this device: the store takes a round as
    // out of date once a later row could have ranked in it (confirmed_picks), so a round of the
    // same finalists from before this run's new rows is measured anew, not reused; a resumed
    // run, which stored no row since, finds its own.
    std::int64_t newest = 0;
    for (const Measurement& m : shape_rows) newest = std::max(newest, m.id);
    keys.push_back("newest-row|" + std::to_string(newest));
    finalists_ = finalist_set_id(keys);
    stored_confirmations_.clear();
    for (const Confirmation& c : db_.confirmations({shape_key(result_.problem), device_id_, "", "", std::nullopt}))
        if (c.finalists == finalists_)
            stored_confirmations_[{finalist_key(c.template_name, c.template_version, c.config_hash), c.round}] = c.stats;
    for (std::size_t r = 0; r < options_.confirm_rounds; ++r)
        for (std::size_t f : finalists) {
            round_.push_back({ok_[f].first, ok_[f].second.config, std::nullopt, static_cast<int>(r)});
            ++unresolved_;
        }
    return true;
}

// Close calls after the confirmation rounds (contested(), tune/confirmation.hpp): while one is
// unsettled, its finalists are measured once more, in turn, up to `contest_rounds` passes; the
// passes are rounds confirm_rounds, confirm_rounds + 1, ... of the same finalist set, so a
// resumed run finds them. Which finalists each pass takes follows from the stored rounds alone.
bool ProblemTuning::open_contest_round() {
    if (contest_passes_ >= options_.contest_rounds || out_of_time()) return false;
    const auto groups = finalist_groups();
    std::vector<FinalistTimes> times;
    for (const Finalist& g : groups) times.push_back(times_of(g));
    const auto close = contested(times);
    if (close.empty()) return false;
    const int round = static_cast<int>(options_.confirm_rounds + contest_passes_++);
    for (std::size_t i : close) {
        round_.push_back({groups[i].slot->plan, groups[i].slot->config, std::nullopt, round});
        ++unresolved_;
    }
    return true;
}

std::vector<ProblemTuning::Finalist> ProblemTuning::finalist_groups() const {
    std::vector<Finalist> groups;
    for (const Slot& s : confirmed_) {
        if (!s.m || s.m->status != Status::ok) continue;
        auto g = std::find_if(groups.begin(), groups.end(), [&](const Finalist& x) {
            return x.slot->plan == s.plan && x.slot->config == s.config;
        });
        if (g == groups.end()) groups.push_back({&s, {}}), g = groups.end() - 1;
        g->ms.push_back(&*s.m);
    }
    for (Finalist& g : groups)
        std::sort(g.ms.begin(), g.ms.end(),
                  [](auto* a, auto* b) { return ranking_time(a->stats) < ranking_time(b->stats); });
    return groups;
}

FinalistTimes ProblemTuning::times_of(const Finalist& f) {
    FinalistTimes t{f.slot->plan->t->info().name, f.slot->config.hash_hex(), {}, f.slot->plan->t->info().vendor};
    for (const Measurement* m : f.ms) t.samples.push_back(ranking_time(m->stats));
    return t;
}

// The ranking uses only re-measurements, which shared the same load, and the one rule of
// choose_confirmed (the store ranks its stored re-measurements with it too). A finalist's
// confirmed timing is its re-measurement with the confirmed time.
void ProblemTuning::settle_confirmation() {
    const auto groups = finalist_groups();
    if (groups.empty()) return;
    auto pick = [&](auto in_scope) -> std::optional<Measurement> {
        std::vector<FinalistTimes> times;
        std::vector<const Finalist*> members;
        for (const Finalist& g : groups) {
            if (!in_scope(*g.slot->plan->t)) continue;
            times.push_back(times_of(g));
            members.push_back(&g);
        }
        auto choice = choose_confirmed(times);
        if (!choice) return std::nullopt;
        const auto& ms = members[choice->index]->ms;
        return **std::find_if(ms.begin(), ms.end(), [&](const Measurement* m) {
            return ranking_time(m->stats) == choice->confirmed_s;
        });
    };
    result_.best = pick([](const Template&) { return true; });
    if (auto v = pick([](const Template& t) { return t.info().vendor; })) result_.vendor_best = std::move(v);
    for (const Finalist& g : groups) {
        const std::string& name = g.slot->plan->t->info().name;
        if (auto m = pick([&](const Template& t) { return t.info().name == name; })) result_.template_best[name] = *m;
    }
    // A default config among the finalists is compared by its confirmed time too: its first
    // measurement was taken under other load, and the pick (the default itself, often) carries
    // its confirmed time.
    if (!result_.default_config) return;
    const Measurement& def = *result_.default_config;
    for (const Finalist& g : groups) {
        if (g.slot->plan->t->info().name != def.template_name || !(g.slot->config == def.config)) continue;
        if (auto choice = choose_confirmed({times_of(g)}))
            for (const Measurement* m : g.ms)
                if (ranking_time(m->stats) == choice->confirmed_s) {
                    result_.default_config = *m;
                    break;
                }
        break;
    }
}

void ProblemTuning::resolve(std::size_t slot, Measurement m, bool reused) {
    Slot& s = round_.at(slot);
    if (round_stage_ == Stage::confirm) {
        if (!reused) ++result_.confirmed;
        s.m = std::move(m);
        --unresolved_;
        report(false);
        return;
    }
    ++(reused ? result_.reused : result_.measured);
    if (m.status != Status::ok) ++result_.failed;
    s.m = std::move(m);
    --unresolved_;
    report(false);
}

void ProblemTuning::measured(std::size_t slot, Measurement m) {
    Slot& s = round_.at(slot);
    if (round_stage_ != Stage::confirm) s.plan->stored.emplace(s.config.hash(), m);
    resolve(slot, std::move(m), false);
}

void ProblemTuning::skipped(std::size_t slot) {
    static_cast<void>(round_.at(slot));  // bounds check
    --unresolved_;
}

void ProblemTuning::close_round() {
    if (round_.empty()) return;
    if (round_stage_ == Stage::confirm) {
        for (Slot& slot : round_) confirmed_.push_back(std::move(slot));
        settle_confirmation();
        round_.clear();
        unresolved_ = 0;
        return;
    }
    std::vector<Trial> trials;
    for (Slot& s : round_) {
        if (!s.m) continue;  // skipped: out of time
        const Measurement& m = *s.m;
        const TemplateInfo& info = s.plan->t->info();
        if (round_stage_ == Stage::defaults && !info.vendor && !result_.default_config) result_.default_config = m;
        if (faster(m, result_.best)) result_.best = m;
        if (info.vendor && faster(m, result_.vendor_best)) result_.vendor_best = m;
        if (m.status == Status::ok) {
            ok_.emplace_back(s.plan, m);
            auto [it, inserted] = result_.template_best.try_emplace(info.name, m);
            if (!inserted && ranking_time(m.stats) < ranking_time(it->second.stats)) it->second = m;
        }
        trials.push_back({s.config, m.status == Status::ok, ranking_time(m.stats)});
    }
    if (round_stage_ == Stage::search && strategy_) {
        auto echoes = echo_trials();
        trials.insert(trials.end(), echoes.begin(), echoes.end());
        strategy_->observe(trials);
    }
    round_.clear();
    unresolved_ = 0;
}

}  // namespace tune::detail
