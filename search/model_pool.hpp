// Shared by the model-guided strategies (model, bo): what has been proposed and measured, the
// feature view of configs, and the pool of unseen candidates a model ranks.
#pragma once

#include <memory>
#include <random>
#include <span>
#include <unordered_set>
#include <vector>

#include "tune/cost_model/training.hpp"
#include "tune/search/strategy.hpp"

namespace tune::search {

class ModelSearchState {
public:
    ModelSearchState(std::shared_ptr<const Space> space, const StrategyOptions& options);

    const cost_model::SearchContext& context() const { return context_; }
    std::mt19937_64& rng() { return rng_; }
    std::size_t measured_ok() const { return ok_rows_.size(); }
    // Trials observed that were new measurements (not Trial::equivalent): a model fitted at
    // this count has seen every new timing.
    std::size_t measurements() const { return measurements_; }

    // Unseen candidates: every unseen config when the space is small, else `size` random
    // samples plus the neighbours of the best configs measured so far (mutations).
    std::vector<Config> pool(std::size_t size);
    std::vector<std::vector<double>> features(std::span<const Config> configs) const;

    // Measured data as a training set: log(seconds); a failed config counts as twice as slow
    // as the slowest success, so the model learns to avoid it.
    cost_model::Dataset observed() const;
    void observe(std::span<const Trial> trials);

    // Random unseen configs appended until `out` holds n (marked as proposed).
    void random_fill(std::size_t n, std::vector<Config>& out);
    // The same, every other slot taking an unseen neighbour of the best config measured so far
    // instead (while it has any): before a model can rank, a local step from the incumbent is
    // the likeliest improvement, and the random half spreads the first training rows.
    void warm_fill(std::size_t n, std::vector<Config>& out);
    // Takes n of `ranked` (best first) and marks them proposed; with probability epsilon a
    // slot takes a random pool member instead (exploration).
    std::vector<Config> take(std::vector<Config> ranked, std::size_t n, double epsilon);

private:
    std::shared_ptr<const Space> space_;
    std::mt19937_64 rng_;
    cost_model::SearchContext context_;
    std::vector<Config> whole_;  // every valid config when the space is small; else empty
    std::unordered_set<std::uint64_t> seen_;
    std::vector<std::pair<double, Config>> ok_;  // (log seconds, config), measured
    std::vector<std::vector<double>> ok_rows_;
    std::vector<std::vector<double>> failed_rows_;
    std::size_t measurements_ = 0;
};

// The configs of `pool` ordered by ascending score.
std::vector<Config> ranked_by(std::vector<Config> pool, std::span<const double> score);

}  // namespace tune::search
