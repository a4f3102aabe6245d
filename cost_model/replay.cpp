#include "tune/cost_model/replay.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "tune/cost_model/subspace.hpp"
#include "tune/cost_model/training.hpp"
#include "tune/error.hpp"
#include "tune/search/strategy.hpp"

namespace tune::cost_model {

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

namespace {

// The recorded config that agrees with `wanted` on the most knobs (first one on ties).
const Config& closest(const std::vector<Config>& configs, const Config& wanted) {
    std::size_t best = 0, best_score = 0;
    for (std::size_t i = 0; i < configs.size(); ++i) {
        std::size_t score = 0;
        for (const auto& [name, v] : configs[i].values())
            if (const KnobValue* w = wanted.find(name); w && *w == v) ++score;
        if (score > best_score) best = i, best_score = score;
    }
    return configs[best];
}

// Boosted trees of every recorded shape but `held_out` (leave one shape out) and `also_out`
// (leave two out: the inner round of a nested evaluation).
std::shared_ptr<const GbdtModel> model_without(const std::vector<RecordedShape>& shapes, std::size_t held_out,
                                               std::size_t also_out = SIZE_MAX) {
    std::vector<Measurement> rows;
    std::map<std::string, std::shared_ptr<const Space>> spaces;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
        if (i == held_out || i == also_out || shapes[i].device.id() != shapes[held_out].device.id() ||
            shapes[i].template_name != shapes[held_out].template_name)
            continue;
        rows.insert(rows.end(), shapes[i].ok_rows.begin(), shapes[i].ok_rows.end());
        spaces[shape_key(shapes[i].problem)] = shapes[i].space;
    }
    if (rows.empty()) return nullptr;
    auto data = training_set(rows, [&](const Problem& p) { return spaces.at(shape_key(p)); }, shapes[held_out].device);
    return GbdtModel::train(data);
}

// Each shape's fastest config.
std::vector<Config> best_configs(const std::vector<RecordedShape>& shapes) {
    std::vector<Config> best;
    for (const auto& s : shapes) {
        const Measurement* b = &s.ok_rows.front();
        for (const auto& m : s.ok_rows)
            if (ranking_time(m.stats) < ranking_time(b->stats)) b = &m;
        best.push_back(b->config);
    }
    return best;
}

std::vector<std::size_t> others_than(std::size_t count, std::size_t i, std::size_t j = SIZE_MAX) {
    std::vector<std::size_t> out;
    for (std::size_t k = 0; k < count; ++k)
        if (k != i && k != j) out.push_back(k);
    return out;
}

using ModelSource = std::function<std::shared_ptr<const GbdtModel>()>;

// The unseen-shape pick for shapes[i] as the dispatcher makes it with only the shapes in
// `known` tuned: the default and the nearest known shapes' winners valid here, scored by their
// measurements on the nearest known shapes, the model (asked for only when a loss is missing or
// the policy weighs it in) filling the gaps.
Config unseen_pick(const std::vector<RecordedShape>& shapes, const std::vector<Config>& best_config, std::size_t i,
                   std::vector<std::size_t> known, const ModelSource& model_source, const UnseenPolicy& policy) {
    const RecordedShape& s = shapes[i];
    std::shared_ptr<const GbdtModel> model;
    auto get_model = [&] {
        if (!model) model = model_source();
        require(model != nullptr, "model report: no other shape of " + s.template_name + " to train a model on");
        return model;
    };
    std::stable_sort(known.begin(), known.end(), [&](std::size_t a, std::size_t b) {
        return shape_distance(s.problem, shapes[a].problem) < shape_distance(s.problem, shapes[b].problem);
    });
    std::vector<Config> candidates{s.space->default_config()};
    for (std::size_t j : known) {
        if (candidates.size() > policy.neighbours) break;
        if (s.seconds.contains(best_config[j].hash()) &&
            std::find(candidates.begin(), candidates.end(), best_config[j]) == candidates.end())
            candidates.push_back(best_config[j]);
    }
    known.resize(std::min(known.size(), policy.evidence));
    std::vector<double> distances;
    for (std::size_t j : known) distances.push_back(shape_distance(s.problem, shapes[j].problem));
    // Measured there, else the model's prediction for that shape (as the dispatcher does at load).
    std::vector<float> losses(candidates.size() * known.size());
    for (std::size_t j = 0; j < known.size(); ++j) {
        const RecordedShape& o = shapes[known[j]];
        std::optional<ConfigScorer> there;
        for (std::size_t c = 0; c < candidates.size(); ++c) {
            auto it = o.seconds.find(candidates[c].hash());
            if (it == o.seconds.end() && !o.space->violation(candidates[c]) && !there)
                there.emplace(get_model(), o.problem, o.space, o.device);
            losses[c * known.size() + j] =
                it != o.seconds.end() ? float(relative_loss(it->second, o.best_s))
                : o.space->violation(candidates[c]) ? std::nanf("")
                                                    : float(predicted_loss((*there)(candidates[c])));
        }
    }
    std::optional<ConfigScorer> scorer;
    auto predict = [&](std::size_t c) {
        if (!scorer) scorer.emplace(get_model(), s.problem, s.space, s.device);
        return (*scorer)(candidates[c]);
    };
    return candidates[pick_unseen({candidates.size(), distances, losses}, predict, policy)];
}

// Its loss: time / best - 1 on the held-out shape's record.
double unseen_pick_loss(const std::vector<RecordedShape>& shapes, const std::vector<Config>& best_config,
                        std::size_t i, std::vector<std::size_t> known, const ModelSource& model_source,
                        const UnseenPolicy& policy) {
    const Config pick = unseen_pick(shapes, best_config, i, std::move(known), model_source, policy);
    auto it = shapes[i].seconds.find(pick.hash());
    return it == shapes[i].seconds.end() ? std::numeric_limits<double>::infinity() : it->second / shapes[i].best_s - 1;
}

// Ranks with ties averaged (1-based), for Spearman's correlation.
std::vector<double> ranks(const std::vector<double>& v) {
    std::vector<std::size_t> order(v.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < order.size();) {
        std::size_t j = i;
        while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
        for (std::size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * double(i + j) + 1;
        i = j + 1;
    }
    return r;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
    auto ra = ranks(a), rb = ranks(b);
    const double n = double(a.size()), mean = (n + 1) / 2;
    double cov = 0, va = 0, vb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        cov += (ra[i] - mean) * (rb[i] - mean);
        va += (ra[i] - mean) * (ra[i] - mean);
        vb += (rb[i] - mean) * (rb[i] - mean);
    }
    return va > 0 && vb > 0 ? cov / std::sqrt(va * vb) : 0;
}

// Best-so-far performance (best time / best time so far) after each trial of one run,
// measured the way the Tuner measures: the default config first, then the strategy's batches.
std::vector<double> run_once(const RecordedShape& shape, const std::string& strategy_name, std::uint64_t seed,
                             std::shared_ptr<const GbdtModel> prior, const ReplayOptions& o) {
    StrategyOptions so{seed, 1u << 20, nullptr};
    if (strategy_uses_model(strategy_name))
        so.model = std::make_shared<SearchContext>(make_search_context(shape.problem, shape.space, shape.device, prior));
    auto strategy = make_strategy(strategy_name, shape.space, so);
    const std::size_t limit = std::min(o.max_trials, shape.configs.size());
    std::vector<double> curve;
    double best = std::numeric_limits<double>::infinity();
    auto class_of = [&](const Config& c) { return o.equivalence ? o.equivalence(shape, c) : c.hash(); };
    // With an equivalence the shape is timed by class (replay() applies timed_by_class), so the
    // class holding the exhaustive best reaches it, whichever member is tried.
    auto evaluate = [&](const Config& c) {
        std::optional<double> t;
        if (auto it = shape.seconds.find(c.hash()); it != shape.seconds.end()) t = it->second;
        if (t) best = std::min(best, *t);
        curve.push_back(std::isfinite(best) ? shape.best_s / best : 0.0);
        return Trial{c, t.has_value(), t.value_or(0.0)};
    };
    // As the Tuner: one trial per equivalence class, later proposals of a class answered
    // with its first trial's result, until kMaxEquivalentBatches batches in a row bring no new one.
    std::unordered_map<std::uint64_t, Trial> tried;
    const Config def = shape.space->default_config();
    Trial first = evaluate(def);
    tried.emplace(class_of(def), first);
    strategy->observe({&first, 1});
    for (int echo_batches = 0; curve.size() < limit && echo_batches < kMaxEquivalentBatches;) {
        auto batch = strategy->propose(std::min(o.batch, limit - curve.size()));
        std::erase(batch, def);
        if (batch.empty()) break;
        std::vector<Trial> trials;
        bool new_class = false;
        for (const auto& c : batch) {
            const std::uint64_t k = class_of(c);
            if (auto it = tried.find(k); it != tried.end() && !o.count_equivalent) {
                trials.push_back({c, it->second.ok, it->second.seconds, true});
            } else if (curve.size() < limit) {
                trials.push_back(evaluate(c));
                new_class |= tried.emplace(k, trials.back()).second || o.count_equivalent;
            }
        }
        echo_batches = new_class ? 0 : echo_batches + 1;
        strategy->observe(trials);
    }
    return curve;
}

}  // namespace

std::vector<RecordedShape> recorded_shapes(
    const std::vector<Measurement>& measurements, const std::vector<DeviceInfo>& devices, std::size_t min_configs,
    const std::function<std::optional<Config>(const RecordedShape&)>& preferred_default) {
    std::map<std::string, std::vector<const Measurement*>> groups;
    for (const auto& m : measurements)
        groups[shape_key(m.problem) + '|' + m.device_id + '|' + m.template_name + '|' + m.template_version].push_back(&m);
    std::vector<RecordedShape> out;
    for (auto& [key, all_rows] : groups) {
        // Several recordings of one space: per config, the fastest ok row (contention only
        // ever slows a measurement down), else its first row.
        std::vector<const Measurement*> rows;
        std::unordered_map<std::uint64_t, std::size_t> at;
        for (const Measurement* m : all_rows) {
            auto [it, fresh] = at.try_emplace(m->config.hash(), rows.size());
            if (fresh) {
                rows.push_back(m);
                continue;
            }
            const Measurement*& kept = rows[it->second];
            if (m->status == Status::ok &&
                (kept->status != Status::ok || ranking_time(m->stats) < ranking_time(kept->stats)))
                kept = m;
        }
        if (rows.size() < min_configs) continue;
        RecordedShape s;
        s.problem = rows.front()->problem;
        s.template_name = rows.front()->template_name;
        auto dev = std::find_if(devices.begin(), devices.end(),
                                [&](const DeviceInfo& d) { return d.id() == rows.front()->device_id; });
        require(dev != devices.end(), "replay: no device fingerprint for device '" + rows.front()->device_id + "'");
        s.device = *dev;
        s.best_s = std::numeric_limits<double>::infinity();
        for (const Measurement* m : rows) {
            s.configs.push_back(m->config);
            if (m->status != Status::ok) continue;
            s.seconds[m->config.hash()] = ranking_time(m->stats);
            s.ok_rows.push_back(*m);
            s.best_s = std::min(s.best_s, ranking_time(m->stats));
        }
        if (s.ok_rows.empty()) continue;
        std::optional<Config> wanted = preferred_default ? preferred_default(s) : std::nullopt;
        s.space = recorded_space(s.configs, wanted ? closest(s.configs, *wanted) : s.configs.front());
        out.push_back(std::move(s));
    }
    return out;
}

std::vector<RecordedShape> timed_by_class(std::vector<RecordedShape> shapes, const Equivalence& equivalence) {
    if (!equivalence) return shapes;
    for (RecordedShape& s : shapes) {
        std::unordered_map<std::uint64_t, double> class_time;
        std::vector<std::pair<std::uint64_t, std::uint64_t>> class_of;  // config hash, class
        for (const Config& c : s.configs) {
            auto it = s.seconds.find(c.hash());
            if (it == s.seconds.end()) continue;
            const std::uint64_t k = equivalence(s, c);
            class_of.emplace_back(c.hash(), k);
            auto [at, fresh] = class_time.try_emplace(k, it->second);
            if (!fresh) at->second = std::min(at->second, it->second);
        }
        for (const auto& [hash, k] : class_of) s.seconds[hash] = class_time.at(k);
    }
    return shapes;
}

std::vector<ReplayRow> replay(const std::vector<RecordedShape>& recorded, const ReplayOptions& o) {
    require(!recorded.empty(), "replay: no recorded space (a shape needs every config of a space measured)");
    const std::vector<RecordedShape> shapes = timed_by_class(recorded, o.equivalence);
    require(o.seeds >= 1 && o.batch >= 1 && o.max_trials >= 1, "replay: seeds, batch and max trials must be >= 1");
    std::vector<std::shared_ptr<const GbdtModel>> priors(shapes.size());
    if (o.transfer)
        for (std::size_t i = 0; i < shapes.size(); ++i) priors[i] = model_without(shapes, i);
    std::vector<ReplayRow> out;
    for (const auto& name : o.strategies) {
        ReplayRow row;
        row.strategy = name + (o.transfer && strategy_uses_model(name) ? "+transfer" : "");
        std::vector<double> t95, t99, frac95;
        std::vector<std::vector<double>> at_budget(o.budgets.size());
        std::vector<double> at_tenth;
        double reached = 0;
        for (std::size_t i = 0; i < shapes.size(); ++i) {
            for (std::uint64_t seed = 1; seed <= o.seeds; ++seed) {
                auto curve = run_once(shapes[i], name, seed, priors[i], o);
                auto first = [&](double level) {
                    for (std::size_t t = 0; t < curve.size(); ++t)
                        if (curve[t] >= level - 1e-12) return double(t + 1);
                    return double(o.max_trials + 1);
                };
                t95.push_back(first(0.95));
                t99.push_back(first(0.99));
                frac95.push_back(t95.back() / double(shapes[i].configs.size()));
                reached += t95.back() <= double(o.max_trials);
                auto at = [&](std::size_t budget) { return curve.empty() ? 0 : curve[std::min(budget, curve.size()) - 1]; };
                for (std::size_t b = 0; b < o.budgets.size(); ++b) at_budget[b].push_back(at(o.budgets[b]));
                at_tenth.push_back(at(std::max<std::size_t>(1, (shapes[i].configs.size() + 9) / 10)));
            }
        }
        row.trials_95 = median(t95);
        row.trials_99 = median(t99);
        row.space_fraction_95 = median(frac95);
        auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); };
        for (auto& v : at_budget) {
            row.fraction_at_budget.push_back(median(v));
            row.mean_at_budget.push_back(mean(v));
        }
        row.fraction_at_tenth = median(at_tenth);
        row.mean_at_tenth = mean(at_tenth);
        row.reached_95 = reached / double(t95.size());
        out.push_back(std::move(row));
    }
    return out;
}

std::vector<HeldOutReport> model_report(const std::vector<RecordedShape>& shapes, const UnseenPolicy& policy) {
    require(shapes.size() >= 2, "model report: needs at least two recorded shapes (one held out, the rest to train)");
    const std::vector<Config> best_config = best_configs(shapes);
    std::vector<HeldOutReport> out;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
        const auto& s = shapes[i];
        auto model = model_without(shapes, i);
        if (!model) continue;
        HeldOutReport r;
        r.shape = shape_key(s.problem);
        r.configs = s.ok_rows.size();
        std::vector<Config> configs;
        std::vector<double> measured;
        for (const auto& m : s.ok_rows) {
            configs.push_back(m.config);
            measured.push_back(std::log(ranking_time(m.stats)));
        }
        auto predicted = predict_configs(*model, s.problem, s.space, s.device, configs);
        r.spearman = spearman(predicted, measured);
        const std::size_t k = std::min<std::size_t>(10, configs.size());
        std::vector<std::size_t> by_measured(configs.size()), by_predicted(configs.size());
        std::iota(by_measured.begin(), by_measured.end(), 0);
        std::iota(by_predicted.begin(), by_predicted.end(), 0);
        std::sort(by_measured.begin(), by_measured.end(), [&](auto a, auto b) { return measured[a] < measured[b]; });
        std::sort(by_predicted.begin(), by_predicted.end(), [&](auto a, auto b) { return predicted[a] < predicted[b]; });
        std::unordered_set<std::size_t> top(by_measured.begin(), by_measured.begin() + long(k));
        std::size_t hits = 0;
        for (std::size_t j = 0; j < k; ++j) hits += top.contains(by_predicted[j]);
        r.recall_top10 = double(hits) / double(k);

        r.pick = unseen_pick(shapes, best_config, i, others_than(shapes.size(), i), [&] { return model; }, policy);
        r.best = best_config[i];
        auto time_of = [&](const Config& c) {
            auto it = s.seconds.find(c.hash());
            return it == s.seconds.end() ? std::numeric_limits<double>::infinity() : it->second;
        };
        r.predicted_pick_loss = time_of(r.pick) / s.best_s - 1;
        double nearest = std::numeric_limits<double>::infinity();
        r.nearest_pick_loss = time_of(s.space->default_config()) / s.best_s - 1;
        for (std::size_t j = 0; j < shapes.size(); ++j) {
            double d = shape_distance(s.problem, shapes[j].problem);
            if (j != i && d < nearest && s.seconds.contains(best_config[j].hash())) {
                nearest = d;
                r.nearest_pick_loss = time_of(best_config[j]) / s.best_s - 1;
            }
        }
        out.push_back(r);
    }
    require(!out.empty(), "model report: no template has two recorded shapes on one device (one held out, another "
                          "to train its model)");
    return out;
}

std::vector<UnseenPolicy> unseen_policy_grid() {
    std::vector<UnseenPolicy> grid;
    for (std::size_t neighbours : {2, 4, 8, 12})
        for (std::size_t evidence : {2, 4, 8})
            for (double bandwidth : {0.5, 1.0, 2.0, 4.0, 8.0}) grid.push_back({neighbours, evidence, bandwidth, 0.0});
    return grid;
}

std::vector<NestedHeldOut> nested_unseen_report(const std::vector<RecordedShape>& shapes,
                                                const std::vector<UnseenPolicy>& grid) {
    require(shapes.size() >= 3, "nested report: needs at least three recorded shapes (one held out, one held out "
                                "of the rest, the others to score it)");
    require(!grid.empty(), "nested report: no settings to choose among");
    const std::vector<Config> best_config = best_configs(shapes);
    std::vector<NestedHeldOut> out;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
        // Trees without the held-out shape (and without the inner one), trained when first asked.
        std::map<std::size_t, std::shared_ptr<const GbdtModel>> models;
        auto model_for = [&](std::size_t k) -> ModelSource {
            return [&, k] {
                auto& m = models[k];
                if (!m) m = model_without(shapes, i, k);
                return m;
            };
        };
        NestedHeldOut r;
        r.shape = shape_key(shapes[i].problem);
        const double inf = std::numeric_limits<double>::infinity();
        r.inner_mean_loss = inf;
        r.inner_worst_loss = inf;
        double minimax_mean = inf;
        for (const UnseenPolicy& policy : grid) {
            double sum = 0, worst = 0;
            std::size_t count = 0;
            for (std::size_t k : others_than(shapes.size(), i)) {
                const double loss =
                    unseen_pick_loss(shapes, best_config, k, others_than(shapes.size(), i, k), model_for(k), policy);
                sum += loss;
                worst = std::max(worst, loss);
                ++count;
            }
            const double mean = sum / double(count);
            if (mean < r.inner_mean_loss) {
                r.inner_mean_loss = mean;
                r.chosen = policy;
            }
            if (worst < r.inner_worst_loss || (worst == r.inner_worst_loss && mean < minimax_mean)) {
                r.inner_worst_loss = worst;
                minimax_mean = mean;
                r.chosen_minimax = policy;
            }
        }
        // Every setting missed: none is better.
        if (!std::isfinite(r.inner_mean_loss)) r.chosen = grid.front();
        if (!std::isfinite(r.inner_worst_loss)) r.chosen_minimax = grid.front();
        r.pick_loss = unseen_pick_loss(shapes, best_config, i, others_than(shapes.size(), i), model_for(SIZE_MAX),
                                       r.chosen);
        r.pick_loss_minimax = unseen_pick_loss(shapes, best_config, i, others_than(shapes.size(), i),
                                               model_for(SIZE_MAX), r.chosen_minimax);
        out.push_back(r);
    }
    return out;
}

}  // namespace tune::cost_model
