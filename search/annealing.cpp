#include <algorithm>
#include <cmath>
#include <random>
#include <unordered_set>

#include "sampling.hpp"
#include "tune/search/strategy.hpp"

namespace tune {
namespace {

// Simulated annealing on log(time): measures the space's starting points (the default config
// first), then walks from the best point so far: proposes unvisited
// neighbours of the current point, accepts a worse one with probability exp(-delta / T),
// and cools T geometrically. With no unvisited neighbour left it jumps to a random config.
class Annealing final : public SearchStrategy {
public:
    Annealing(std::shared_ptr<const Space> space, const StrategyOptions& o)
        : space_(std::move(space)), rng_(o.seed), current_(space_->default_config()), starts_(space_->starts()) {}

    std::string_view name() const override { return "annealing"; }

    std::vector<Config> propose(std::size_t n) override {
        std::vector<Config> out;
        while (next_start_ < starts_.size() && out.size() < n) {
            const Config& c = starts_[next_start_++];
            if (seen_.insert(c.hash()).second) out.push_back(c);
        }
        if (out.size() >= n) return out;
        auto candidates = space_->neighbours(current_);
        std::shuffle(candidates.begin(), candidates.end(), rng_);
        for (auto& c : candidates) {
            if (out.size() >= n) break;
            if (seen_.insert(c.hash()).second) out.push_back(std::move(c));
        }
        search::sample_unseen(*space_, rng_, seen_, n, out);  // no unvisited neighbour left: jump
        return out;
    }

    void observe(std::span<const Trial> trials) override {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (const auto& t : trials) {
            if (!t.ok || t.seconds <= 0) continue;
            double cost = std::log(t.seconds);
            if (!have_current_ || cost < current_cost_ ||
                u(rng_) < std::exp(-(cost - current_cost_) / temperature_)) {
                current_ = t.config;
                current_cost_ = cost;
                have_current_ = true;
            }
            temperature_ = std::max(temperature_ * 0.9, 1e-3);
        }
    }

private:
    std::shared_ptr<const Space> space_;
    std::mt19937_64 rng_;
    Config current_;
    double current_cost_ = 0;
    bool have_current_ = false;
    std::vector<Config> starts_;
    std::size_t next_start_ = 0;
    double temperature_ = 0.1;  // in log-time units: a 10% slower point is accepted ~1/e of the time at start
    std::unordered_set<std::uint64_t> seen_;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_annealing(std::shared_ptr<const Space> space, const StrategyOptions& o) {
    return std::make_unique<Annealing>(std::move(space), o);
}

}  // namespace tune
