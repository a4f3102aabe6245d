#include "model_pool.hpp"

namespace tune {
namespace {

// Model-guided evolutionary search (as in Ansor/MetaSchedule): a pool of random samples and
// mutations of the best configs so far is ranked by boosted trees retrained on every
// measurement of this run (on top of a model of other shapes when there is one); the top of
// the ranking is measured, with a few random picks for exploration.
class ModelGuided final : public SearchStrategy {
public:
    ModelGuided(std::shared_ptr<const Space> space, const StrategyOptions& o) : state_(std::move(space), o) {}
    std::string_view name() const override { return "model"; }

    std::vector<Config> propose(std::size_t n) override {
        std::vector<Config> out;
        const auto& prior = state_.context().prior;
        // Without a prior, a few measurements first (local steps and random picks): trees
        // fitted to one or two points rank nothing.
        if (!prior && state_.measured_ok() < kWarmup) {
            state_.warm_fill(n, out);
            return out;
        }
        auto pool = state_.pool(kPoolSize);
        if (pool.empty()) return out;
        // Refitted when a new measurement arrived; a batch answered only by equivalent
        // configs' results adds rows but not information worth a refit.
        if (state_.measured_ok() >= 2 && (!model_ || fitted_at_ != state_.measurements())) {
            model_ = cost_model::GbdtModel::train(state_.observed(), kParams, prior);
            fitted_at_ = state_.measurements();
        }
        const auto& model = model_ ? model_ : prior;
        auto score = model->predict(state_.features(pool));
        return state_.take(search::ranked_by(std::move(pool), score), n, kEpsilon);
    }

    void observe(std::span<const Trial> trials) override { state_.observe(trials); }

private:
    static constexpr std::size_t kWarmup = 8;
    static constexpr std::size_t kPoolSize = 2048;
    static constexpr double kEpsilon = 0.1;
    static constexpr cost_model::GbdtParams kParams{.rounds = 50, .max_depth = 4, .eta = 0.3};
    search::ModelSearchState state_;
    std::shared_ptr<const cost_model::GbdtModel> model_;  // this run's fit, on top of the prior
    std::size_t fitted_at_ = 0;                            // state_.measurements() when fitted
};

}  // namespace

std::unique_ptr<SearchStrategy> make_model_guided(std::shared_ptr<const Space> space, const StrategyOptions& o) {
    return std::make_unique<ModelGuided>(std::move(space), o);
}

}  // namespace tune
