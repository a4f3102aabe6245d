#include "tune/error.hpp"
#include "tune/search/strategy.hpp"

namespace tune {

const std::vector<StrategyEntry>& strategies() {
    static const std::vector<StrategyEntry> table{
        {"exhaustive", "every valid config in order (refuses spaces over the cap)", make_exhaustive},
        {"random", "uniform samples without repetition", make_random},
        {"annealing", "simulated annealing over knob neighbours, from the default config", make_annealing},
        {"model", "model-guided evolutionary: rank a large pool with boosted trees, measure the top plus exploration",
         make_model_guided},
        {"bo", "Bayesian optimisation: Gaussian process, expected improvement", make_bayesian},
    };
    return table;
}

bool strategy_uses_model(std::string_view name) { return name == "model" || name == "bo"; }

std::unique_ptr<SearchStrategy> make_strategy(std::string_view name, std::shared_ptr<const Space> space,
                                              const StrategyOptions& options) {
    std::string known;
    for (const auto& s : strategies()) {
        if (s.name == name) return s.make(std::move(space), options);
        known += known.empty() ? "" : ", ";
        known += s.name;
    }
    throw Error("strategy: unknown name '" + std::string(name) + "' (expected one of: " + known + ")");
}

}  // namespace tune
