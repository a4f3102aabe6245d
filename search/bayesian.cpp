#include <algorithm>
#include <optional>

#include "model_pool.hpp"

namespace tune {
namespace {

// Bayesian optimisation for small budgets: a Gaussian process over the measured configs
// (modelling the residual of a model of other shapes when there is one) and the configs of
// the pool with the largest expected improvement measured next.
class Bayesian final : public SearchStrategy {
public:
    Bayesian(std::shared_ptr<const Space> space, const StrategyOptions& o) : state_(std::move(space), o) {}
    std::string_view name() const override { return "bo"; }

    std::vector<Config> propose(std::size_t n) override {
        std::vector<Config> out;
        const auto& prior = state_.context().prior;
        if (!prior && state_.measured_ok() < kInitial) {
            state_.random_fill(n, out);
            return out;
        }
        auto pool = state_.pool(kPoolSize);
        if (pool.empty()) return out;
        auto rows = state_.features(pool);
        std::vector<double> base(pool.size(), 0.0);
        if (prior) base = prior->predict(rows);
        if (state_.measured_ok() == 0) return state_.take(search::ranked_by(std::move(pool), base), n, 0);

        // Refitted when a new measurement arrived (see ModelSearchState::measurements).
        if (!gp_ || fitted_at_ != state_.measurements()) {
            auto data = state_.observed();
            std::vector<double> residual = data.targets;
            if (prior) {
                auto fitted = prior->predict(data.rows);
                for (std::size_t i = 0; i < residual.size(); ++i) residual[i] -= fitted[i];
            }
            gp_.emplace();
            gp_->fit(data.rows, residual);
            best_ = *std::min_element(data.targets.begin(), data.targets.end());
            fitted_at_ = state_.measurements();
        }
        const double best = best_;
        auto predicted = gp_->predict(rows);
        std::vector<double> score(pool.size());
        for (std::size_t i = 0; i < pool.size(); ++i)
            score[i] = -cost_model::expected_improvement(base[i] + predicted[i].mean, predicted[i].stddev, best);
        return state_.take(search::ranked_by(std::move(pool), score), n, 0);
    }

    void observe(std::span<const Trial> trials) override { state_.observe(trials); }

private:
    static constexpr std::size_t kInitial = 5;
    static constexpr std::size_t kPoolSize = 1024;
    search::ModelSearchState state_;
    std::optional<cost_model::GaussianProcess> gp_;  // this run's fit (residuals of the prior)
    double best_ = 0;                                // lowest target it was fitted to
    std::size_t fitted_at_ = 0;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_bayesian(std::shared_ptr<const Space> space, const StrategyOptions& o) {
    return std::make_unique<Bayesian>(std::move(space), o);
}

}  // namespace tune
