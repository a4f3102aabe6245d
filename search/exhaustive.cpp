#include "tune/error.hpp"
#include "tune/search/strategy.hpp"

namespace tune {
namespace {

class Exhaustive final : public SearchStrategy {
public:
    Exhaustive(std::shared_ptr<const Space> space, const StrategyOptions& o) {
        configs_ = space->enumerate_all(o.exhaustive_cap + 1);
        require(configs_.size() <= o.exhaustive_cap,
                "strategy exhaustive: the space has more than " + std::to_string(o.exhaustive_cap) +
                    " valid configs; use random or annealing");
    }
    std::string_view name() const override { return "exhaustive"; }
    std::vector<Config> propose(std::size_t n) override {
        std::vector<Config> out;
        while (out.size() < n && next_ < configs_.size()) out.push_back(configs_[next_++]);
        return out;
    }
    void observe(std::span<const Trial>) override {}

private:
    std::vector<Config> configs_;
    std::size_t next_ = 0;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_exhaustive(std::shared_ptr<const Space> space, const StrategyOptions& o) {
    return std::make_unique<Exhaustive>(std::move(space), o);
}

}  // namespace tune
