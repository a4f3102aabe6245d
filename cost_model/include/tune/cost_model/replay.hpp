// Replay: search strategies run offline against whole spaces measured once (exhaustive
// records in a store), many seeds, no device. Also the model's quality on held-out shapes
// and the picks it would make for shapes never measured.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tune/cost_model/training.hpp"
#include "tune/cost_model/unseen.hpp"
#include "tune/db/database.hpp"
#include "tune/space.hpp"

namespace tune::cost_model {

// One problem's recorded space: every config measured for (problem, device, template version).
struct RecordedShape {
    Problem problem;
    std::string template_name;
    DeviceInfo device;
    std::shared_ptr<const Space> space;                 // exactly the recorded configs
    std::vector<Config> configs;                         // recorded, in store order
    std::unordered_map<std::uint64_t, double> seconds;  // config hash -> ranking_time, ok rows only
    std::vector<Measurement> ok_rows;
    double best_s = 0;
};

// Groups the rows of `measurements` by (problem, device, template, version); keeps groups with
// at least `min_configs` configs and one ok row, sorted by shape key. A config recorded more
// than once (several recordings of one space) keeps its fastest ok row (by ranking_time).
// `devices` supplies each group's fingerprint (a group whose device is not listed is refused:
// its features need it).
// `preferred_default` gives a template's default config for a problem when known.
std::vector<RecordedShape> recorded_shapes(const std::vector<Measurement>& measurements,
                                           const std::vector<DeviceInfo>& devices, std::size_t min_configs = 16,
                                           const std::function<std::optional<Config>(const RecordedShape&)>&
                                               preferred_default = {});

// The equivalence class of a config at a recorded shape (a hash of Template::equivalence_key),
// as the Tuner uses it: configs of one class run the same instructions over the same data.
using Equivalence = std::function<std::uint64_t(const RecordedShape&, const Config&)>;

// The shapes with each config timed as its class: the fastest recorded member. Members of a
// class are repeated measurements of one kernel (a config's own time is already its fastest
// repetition), so a member slowed by a noisy moment no longer stands apart from its twins.
// The best time of a shape does not change; ok_rows keep their own times.
std::vector<RecordedShape> timed_by_class(std::vector<RecordedShape> shapes, const Equivalence& equivalence);

struct ReplayOptions {
    std::vector<std::string> strategies{"random", "annealing", "model", "bo"};
    std::size_t seeds = 10;
    std::vector<std::size_t> budgets{16, 32, 64, 128};
    std::size_t batch = 4;
    std::size_t max_trials = 128;  // per run (capped at the space size)
    bool transfer = false;         // model/bo start from a model of the other recorded shapes
    // As the Tuner: a proposal of a class already tried is not a trial, and the strategy
    // observes it with the first one's result; configs are timed by class (timed_by_class).
    // Null: every config is its own class.
    Equivalence equivalence;
    // With an equivalence: every proposal is still a trial (timed as its class), as for a tuner
    // that measured equivalent configs again; isolates what skipping them saves.
    bool count_equivalent = false;
};

// Per strategy, over every (shape, seed): medians of trials to reach 95% / 99% of the best
// (performance = best time / best-so-far time; a run that never reaches it counts as
// max_trials + 1) and of the fraction of best reached at each budget.
struct ReplayRow {
    std::string strategy;
    double trials_95 = 0, trials_99 = 0;
    double space_fraction_95 = 0;   // median over runs of trials_95 / space size
    std::vector<double> fraction_at_budget;  // median, aligned with ReplayOptions::budgets
    std::vector<double> mean_at_budget;      // mean over the same runs
    // At a tenth of each shape's space (rounded up; capped at max_trials): a budget that
    // scales with the space, median and mean.
    double fraction_at_tenth = 0, mean_at_tenth = 0;
    double reached_95 = 0;          // share of runs that reached 95% within max_trials
};

std::vector<ReplayRow> replay(const std::vector<RecordedShape>& shapes, const ReplayOptions& options);

// Leave-one-shape-out quality of the boosted trees: per held-out shape, Spearman rank
// correlation of predicted vs measured time, recall of the 10 fastest configs in the
// predicted top 10, and the loss of an unseen-shape pick (the dispatcher's: pick_unseen among
// the default and the nearest other shapes' best configs, scored by their measurements on the
// nearest other shapes and the model) against the shape's best; the nearest-shape pick (the
// dispatcher without a model) is shown beside it.
struct HeldOutReport {
    std::string shape;
    std::size_t configs = 0;
    double spearman = 0, recall_top10 = 0;
    double predicted_pick_loss = 0, nearest_pick_loss = 0;
    Config pick, best;  // the unseen pick and the shape's recorded best
};
std::vector<HeldOutReport> model_report(const std::vector<RecordedShape>& shapes, const UnseenPolicy& policy = {});

// The unseen pick with its settings chosen out of sample (nested leave one shape out): per
// held-out shape, each policy of `grid` is scored by its pick losses over the other shapes,
// each held out in turn from the rest (the model then trained without both), and chosen two
// ways: by the lowest mean loss, and by the lowest worst loss (minimax; ties by the mean), as
// the targets bound both the typical and the worst loss. The first on ties. The held-out shape
// takes no part in choosing. At least three shapes. Trees are trained only where a round needs
// them (a loss not measured, or a policy that weighs the model in).
struct NestedHeldOut {
    std::string shape;
    UnseenPolicy chosen;         // by the mean
    double inner_mean_loss = 0;  // the chosen policy's mean loss over the other shapes
    double pick_loss = 0;        // time / best - 1 on the held-out shape, with the chosen policy
    UnseenPolicy chosen_minimax;      // by the worst
    double inner_worst_loss = 0;      // its worst loss over the other shapes
    double pick_loss_minimax = 0;     // on the held-out shape, with chosen_minimax
};
std::vector<NestedHeldOut> nested_unseen_report(const std::vector<RecordedShape>& shapes,
                                                const std::vector<UnseenPolicy>& grid);
// The settings `tune model-report --nested` chooses among: 2 to 12 candidates, 2 to 8
// evidence shapes, bandwidths of 0.5 to 8 octaves; model weight 0 (as the dispatcher runs).
std::vector<UnseenPolicy> unseen_policy_grid();

// The median of the reports' columns (mean of the middle two for an even count); 0 when empty.
double median(std::vector<double> v);

}  // namespace tune::cost_model
