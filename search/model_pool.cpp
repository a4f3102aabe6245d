#include "model_pool.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sampling.hpp"

namespace tune::search {
namespace {

constexpr std::uint64_t kWholeSpace = 4096;  // spaces up to this size are ranked whole
constexpr std::size_t kParents = 8;          // best configs whose neighbours join the pool

cost_model::SearchContext default_context(const Space& space) {
    cost_model::SearchContext ctx;
    auto sample = space.encode(space.default_config());
    for (std::size_t i = 0; i < sample.size(); ++i) ctx.names.push_back("x" + std::to_string(i));
    ctx.features = [&space](const Config& c) { return space.encode(c); };
    return ctx;
}

}  // namespace

ModelSearchState::ModelSearchState(std::shared_ptr<const Space> space, const StrategyOptions& options)
    : space_(std::move(space)), rng_(options.seed),
      context_(options.model ? *options.model : default_context(*space_)) {
    if (space_->count(kWholeSpace + 1) <= kWholeSpace) whole_ = space_->enumerate_all();
}

std::vector<Config> ModelSearchState::pool(std::size_t size) {
    std::vector<Config> out;
    if (!whole_.empty() || space_->knobs().empty()) {
        for (const auto& c : whole_)
            if (!seen_.contains(c.hash())) out.push_back(c);
        // In random order: a model fitted to a few points scores many configs alike, and the
        // ranking keeps ties in pool order, which in enumeration order would always offer the
        // same corner of the space first.
        std::shuffle(out.begin(), out.end(), rng_);
        return out;
    }
    std::unordered_set<std::uint64_t> in_pool;
    auto add = [&](Config c) {
        if (!seen_.contains(c.hash()) && in_pool.insert(c.hash()).second) out.push_back(std::move(c));
    };
    auto best = ok_;
    std::sort(best.begin(), best.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < std::min(kParents, best.size()); ++i)
        for (auto& n : space_->neighbours(best[i].second)) {
            if (i < 2)
                for (auto& nn : space_->neighbours(n)) add(std::move(nn));
            add(std::move(n));
        }
    for (int misses = 0; out.size() < size && misses < 200;) {
        auto c = space_->sample(rng_);
        if (!c) break;
        std::size_t before = out.size();
        add(std::move(*c));
        misses = out.size() > before ? 0 : misses + 1;
    }
    return out;
}

std::vector<std::vector<double>> ModelSearchState::features(std::span<const Config> configs) const {
    std::vector<std::vector<double>> rows;
    rows.reserve(configs.size());
    for (const auto& c : configs) rows.push_back(context_.features(c));
    return rows;
}

cost_model::Dataset ModelSearchState::observed() const {
    cost_model::Dataset d;
    d.names = context_.names;
    d.rows = ok_rows_;
    for (const auto& [y, c] : ok_) d.targets.push_back(y);
    if (!ok_.empty() && !failed_rows_.empty()) {
        double worst = std::max_element(ok_.begin(), ok_.end(), [](const auto& a, const auto& b) {
                           return a.first < b.first;
                       })->first;
        for (const auto& r : failed_rows_) {
            d.rows.push_back(r);
            d.targets.push_back(worst + std::log(2.0));
        }
    }
    return d;
}

void ModelSearchState::observe(std::span<const Trial> trials) {
    for (const auto& t : trials) {
        seen_.insert(t.config.hash());
        measurements_ += !t.equivalent;
        if (t.ok && t.seconds > 0 && std::isfinite(t.seconds)) {
            ok_.emplace_back(std::log(t.seconds), t.config);
            ok_rows_.push_back(context_.features(t.config));
        } else {
            failed_rows_.push_back(context_.features(t.config));
        }
    }
}

void ModelSearchState::random_fill(std::size_t n, std::vector<Config>& out) {
    if (!whole_.empty()) {
        auto rest = pool(0);
        std::shuffle(rest.begin(), rest.end(), rng_);
        for (auto& c : rest) {
            if (out.size() >= n) break;
            seen_.insert(c.hash());
            out.push_back(std::move(c));
        }
        return;
    }
    sample_unseen(*space_, rng_, seen_, n, out);
}

void ModelSearchState::warm_fill(std::size_t n, std::vector<Config>& out) {
    std::vector<Config> near;
    if (!ok_.empty()) {
        const auto& best = *std::min_element(ok_.begin(), ok_.end(),
                                             [](const auto& a, const auto& b) { return a.first < b.first; });
        near = space_->neighbours(best.second);
        std::erase_if(near, [&](const Config& c) { return seen_.contains(c.hash()); });
        std::shuffle(near.begin(), near.end(), rng_);
    }
    std::size_t next = 0;
    auto local_step = [&] {  // false when no unseen neighbour is left
        while (next < near.size() && seen_.contains(near[next].hash())) ++next;
        if (next >= near.size()) return false;
        seen_.insert(near[next].hash());
        out.push_back(std::move(near[next++]));
        return true;
    };
    while (out.size() < n) {
        if (out.size() % 2 == 0 && local_step()) continue;
        const std::size_t before = out.size();
        random_fill(before + 1, out);
        if (out.size() == before && !local_step()) return;  // the space is used up
    }
}

std::vector<Config> ModelSearchState::take(std::vector<Config> ranked, std::size_t n, double epsilon) {
    std::vector<Config> out;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::size_t next = 0;
    while (out.size() < n && next < ranked.size()) {
        std::size_t pick = next;
        if (u(rng_) < epsilon) pick = std::uniform_int_distribution<std::size_t>(next, ranked.size() - 1)(rng_);
        std::swap(ranked[next], ranked[pick]);
        seen_.insert(ranked[next].hash());
        out.push_back(std::move(ranked[next++]));
    }
    return out;
}

std::vector<Config> ranked_by(std::vector<Config> pool, std::span<const double> score) {
    std::vector<std::size_t> order(pool.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
    std::vector<Config> out;
    out.reserve(pool.size());
    for (auto i : order) out.push_back(std::move(pool[i]));
    return out;
}

}  // namespace tune::search
