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

struct Trial {
    Config config;
    bool ok = false;     // verified and timed; failed candidates are still reported
    double seconds = 0;  // median time when ok (lower is better)
};

class SearchStrategy {
public:
    virtual ~SearchStrategy() = default;
    virtual std::string_view name() const = 0;
    // Up to n configs never proposed before; fewer (or none) once the strategy is exhausted.
    virtual std::vector<Config> propose(std::size_t n) = 0;
    virtual void observe(std::span<const Trial> trials) = 0;
};

struct StrategyOptions {
    std::uint64_t seed = 0;
    std::uint64_t exhaustive_cap = 4096;  // exhaustive refuses larger spaces rather than truncate silently
};

using StrategyFactory =
    std::function<std::unique_ptr<SearchStrategy>(std::shared_ptr<const Space>, const StrategyOptions&)>;

struct StrategyEntry {
    std::string name;
    std::string help;
    StrategyFactory make;
};

// The registered strategies: "exhaustive", "random", "annealing".
const std::vector<StrategyEntry>& strategies();
// Throws tune::Error listing the known names when `name` is unknown.
std::unique_ptr<SearchStrategy> make_strategy(std::string_view name, std::shared_ptr<const Space> space,
                                              const StrategyOptions& options);

// Factories, one file each under search/.
std::unique_ptr<SearchStrategy> make_exhaustive(std::shared_ptr<const Space>, const StrategyOptions&);
std::unique_ptr<SearchStrategy> make_random(std::shared_ptr<const Space>, const StrategyOptions&);
std::unique_ptr<SearchStrategy> make_annealing(std::shared_ptr<const Space>, const StrategyOptions&);

}  // namespace tune
