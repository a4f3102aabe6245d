// SearchStrategy: proposes batches of configs from a Space and learns from their measured
// results. The Tuner drives it; a strategy never measures or stores anything itself.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tune/config.hpp"
#include "tune/space.hpp"

namespace tune {

namespace cost_model {
struct SearchContext;  // tune/cost_model/training.hpp
}

struct Trial {
    Config config;
    bool ok = false;     // verified and timed; failed candidates are still reported
    double seconds = 0;  // ranking time when ok (lower is better)
    // Answered with the result of an equivalent config already tried (no new measurement):
    // a model-based strategy adds it to its data but need not refit for it alone.
    bool equivalent = false;
};

class SearchStrategy {
public:
    virtual ~SearchStrategy() = default;
    virtual std::string_view name() const = 0;
    // Up to n configs never proposed before; fewer (or none) once the strategy is exhausted.
    virtual std::vector<Config> propose(std::size_t n) = 0;
    virtual void observe(std::span<const Trial> trials) = 0;
};

// The Tuner measures one config per equivalence class (Template::equivalence_key) and answers a
// proposal of a class already measured with that result; the replay harness does the same. After
// this many batches in a row of nothing but such proposals, a search has stalled and ends.
inline constexpr int kMaxEquivalentBatches = 64;

struct StrategyOptions {
    std::uint64_t seed = 0;
    std::uint64_t exhaustive_cap = 4096;  // exhaustive refuses larger spaces rather than truncate silently
    // For the model-guided strategies (model, bo): the problem's feature view and a model of
    // other shapes. Null: they featurize with Space::encode alone and start without a prior.
    std::shared_ptr<const cost_model::SearchContext> model;
};

using StrategyFactory =
    std::function<std::unique_ptr<SearchStrategy>(std::shared_ptr<const Space>, const StrategyOptions&)>;

struct StrategyEntry {
    std::string name;
    std::string help;
    StrategyFactory make;
};

// The registered strategies: "exhaustive", "random", "annealing", "model", "bo".
const std::vector<StrategyEntry>& strategies();
// Throws tune::Error listing the known names when `name` is unknown.
std::unique_ptr<SearchStrategy> make_strategy(std::string_view name, std::shared_ptr<const Space> space,
                                              const StrategyOptions& options);

// Factories, one file each under search/.
std::unique_ptr<SearchStrategy> make_exhaustive(std::shared_ptr<const Space>, const StrategyOptions&);
std::unique_ptr<SearchStrategy> make_random(std::shared_ptr<const Space>, const StrategyOptions&);
std::unique_ptr<SearchStrategy> make_annealing(std::shared_ptr<const Space>, const StrategyOptions&);
std::unique_ptr<SearchStrategy> make_model_guided(std::shared_ptr<const Space>, const StrategyOptions&);
std::unique_ptr<SearchStrategy> make_bayesian(std::shared_ptr<const Space>, const StrategyOptions&);

// Whether the named strategy reads StrategyOptions::model (the Tuner then builds one).
bool strategy_uses_model(std::string_view name);

}  // namespace tune
