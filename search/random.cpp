#include <random>
#include <unordered_set>

#include "sampling.hpp"
#include "tune/search/strategy.hpp"

namespace tune {
namespace {

class RandomSearch final : public SearchStrategy {
public:
    RandomSearch(std::shared_ptr<const Space> space, const StrategyOptions& o)
        : space_(std::move(space)), rng_(o.seed) {}
    std::string_view name() const override { return "random"; }
    std::vector<Config> propose(std::size_t n) override {
        std::vector<Config> out;
        search::sample_unseen(*space_, rng_, seen_, n, out);
        return out;
    }
    void observe(std::span<const Trial>) override {}

private:
    std::shared_ptr<const Space> space_;
    std::mt19937_64 rng_;
    std::unordered_set<std::uint64_t> seen_;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_random(std::shared_ptr<const Space> space, const StrategyOptions& o) {
    return std::make_unique<RandomSearch>(std::move(space), o);
}

}  // namespace tune
