// Dispatcher: configs for shapes the store has no entry for (the `predicted` source). What the
// store measured of each candidate config on each tuned shape is laid out per group when an
// index is built, and each model's features of the tuned configs are read at load; a lookup
// only gathers the nearest shapes' evidence and lets cost_model::pick_unseen choose.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>

#include "tune/cost_model/training.hpp"
#include "tune/cost_model/unseen.hpp"
#include "tune/dispatcher.hpp"

namespace tune {
namespace {

constexpr cost_model::UnseenPolicy kPolicy{};
constexpr std::size_t kMaxCandidates = kPolicy.neighbours + 1;  // the default and the winners
constexpr std::size_t kScan = 8 * kPolicy.neighbours;  // nearest shapes searched for distinct valid winners
constexpr std::uint32_t kNoColumn = std::numeric_limits<std::uint32_t>::max();

}  // namespace

// A template's model on one space: the scorer and each candidate config's feature inputs,
// read once (the default's at construction, the entries' at load or on first use).
struct Dispatcher::Predictor {
    Predictor(std::shared_ptr<const cost_model::GbdtModel> model, const Problem& p, std::shared_ptr<const Space> space,
              const DeviceInfo& device)
        : scorer(std::move(model), p, space, device), default_inputs(scorer.inputs(space->default_config())),
          default_hash(space->default_config().hash()) {}

    const cost_model::ConfigInputs& of(const Index& ix, std::size_t e) {
        if (inputs_for != &ix) inputs.assign(ix.entries.size(), std::nullopt);
        inputs_for = &ix;
        if (!inputs[e]) inputs[e] = scorer.inputs(ix.entries[e].config);
        return *inputs[e];
    }

    cost_model::ConfigScorer scorer;
    cost_model::ConfigInputs default_inputs;
    std::uint64_t default_hash;
    const Index* inputs_for = nullptr;
    std::vector<std::optional<cost_model::ConfigInputs>> inputs;  // per entry of inputs_for
};

void Dispatcher::add_unseen_evidence(const std::vector<Entry>& entries, Group& g) {
    // The candidates any unseen shape of the group can have: winners and spaces' defaults.
    std::unordered_map<const Space*, std::uint64_t> default_hash;
    for (std::size_t e : g.entries) {
        const Entry& x = entries[e];
        g.columns.push_back({x.tmpl, x.config_hash});
        auto space = x.tmpl->space(x.shape);
        auto [it, fresh] = default_hash.try_emplace(space.get(), 0);
        if (fresh) it->second = space->default_config().hash();
        g.columns.push_back({x.tmpl, it->second});
    }
    std::sort(g.columns.begin(), g.columns.end());
    g.columns.erase(std::unique(g.columns.begin(), g.columns.end()), g.columns.end());
    auto column_of = [&](const ConfigKey& key) {
        auto it = std::lower_bound(g.columns.begin(), g.columns.end(), key);
        return it != g.columns.end() && *it == key ? std::uint32_t(it - g.columns.begin()) : kNoColumn;
    };
    // Per entry, the loss of each candidate measured there against the shape's best (times
    // come sorted by key, as the columns are, so the cells of an entry come out sorted).
    g.cell_begin.push_back(0);
    for (std::size_t e : g.entries) {
        const Entry& x = entries[e];
        g.winner_column.push_back(column_of({x.tmpl, x.config_hash}));
        double best = x.median_s;
        if (x.times)
            for (const auto& [key, seconds] : *x.times) best = std::min(best, seconds);
        if (!x.times) g.cells.emplace_back(g.winner_column.back(), float(cost_model::relative_loss(x.median_s, best)));
        else
            for (const auto& [key, seconds] : *x.times)
                if (std::uint32_t c = column_of(key); c != kNoColumn)
                    g.cells.emplace_back(c, float(cost_model::relative_loss(seconds, best)));
        g.cell_begin.push_back(std::uint32_t(g.cells.size()));
    }
}

Dispatcher::Predictor& Dispatcher::predictor(SpaceFacts& facts, const Template* t, const Problem& p) const {
    if (!facts.predictor) facts.predictor = std::make_shared<Predictor>(models_.at(t), p, facts.space, device_);
    return *facts.predictor;
}

void Dispatcher::prepare_predictors() {
    if (models_.empty()) return;
    const Index& ix = *index_.load(std::memory_order_acquire);
    for (std::size_t e = 0; e < ix.entries.size(); ++e) {
        const Entry& x = ix.entries[e];
        if (!models_.contains(x.tmpl)) continue;
        auto space = x.tmpl->space(x.shape);
        auto& facts = spaces_[space.get()];
        if (!facts.space) facts.space = space;
        predictor(facts, x.tmpl, x.shape).of(ix, e);
    }
}

Selection Dispatcher::predict_unseen(const Problem& p, const Index& ix, const Group& g,
                                     std::vector<std::pair<double, std::size_t>> near) const {
    if (models_.empty()) return {};
    if (near.size() > kScan) {
        std::nth_element(near.begin(), near.begin() + long(kScan), near.end());
        near.resize(kScan);
    }
    std::sort(near.begin(), near.end());  // nearest first; ties: the earlier entry
    const std::size_t evidence = std::min(near.size(), kPolicy.evidence);
    std::array<double, kPolicy.evidence> distances{};
    for (std::size_t j = 0; j < evidence; ++j) distances[j] = near[j].first;
    for (const Template* t : registry_->for_problem(p, device_.backend)) {
        auto model = models_.find(t);
        if (model == models_.end()) continue;
        auto space = t->space(p);
        auto& facts = spaces_[space.get()];
        if (!facts.space) facts.space = space;
        if (!facts.default_config) facts.default_config = std::make_unique<Config>(space->default_config());
        Predictor& predictor = this->predictor(facts, t, p);

        // The candidates: the default, then the distinct winners valid here, nearest first.
        struct Candidate {
            std::size_t entry;  // SIZE_MAX: the default
            std::uint64_t hash;
            std::uint32_t column;
        };
        std::array<Candidate, kMaxCandidates> c;
        const std::uint64_t default_hash = predictor.default_hash;
        auto it = std::lower_bound(g.columns.begin(), g.columns.end(), ConfigKey{t, default_hash});
        c[0] = {SIZE_MAX, default_hash,
                it != g.columns.end() && *it == ConfigKey{t, default_hash} ? std::uint32_t(it - g.columns.begin())
                                                                            : kNoColumn};
        std::size_t n = 1;
        for (const auto& [dist, r] : near) {
            if (n == kMaxCandidates) break;
            const std::size_t e = g.entries[r];
            const Entry& entry = ix.entries[e];
            if (entry.tmpl != t ||
                std::any_of(c.begin(), c.begin() + long(n), [&](const Candidate& x) { return x.hash == entry.config_hash; }) ||
                !accepted(ix, facts, e))
                continue;
            c[n++] = {e, entry.config_hash, g.winner_column[r]};
        }
        // What each candidate measured on each of the nearest shapes (NaN: not measured there).
        std::array<float, kMaxCandidates * kPolicy.evidence> measured;
        for (std::size_t j = 0; j < evidence; ++j) {
            const std::size_t r = near[j].second;
            const auto* first = g.cells.data() + g.cell_begin[r];
            const auto* last = g.cells.data() + g.cell_begin[r + 1];
            for (std::size_t i = 0; i < n; ++i) {
                auto cell = std::lower_bound(first, last, c[i].column,
                                             [](const auto& x, std::uint32_t col) { return x.first < col; });
                measured[i * evidence + j] =
                    cell != last && cell->first == c[i].column ? cell->second : std::numeric_limits<float>::quiet_NaN();
            }
        }
        // The model fills the gaps; features of p are computed only if one is asked for. One
        // pointer captured: the std::function then holds it without allocating.
        struct Scoring {
            const Problem& p;
            const Index& ix;
            Predictor& predictor;
            const std::array<Candidate, kMaxCandidates>& c;
            bool problem_set = false;
        } scoring{p, ix, predictor, c};
        auto predict = [s = &scoring](std::size_t i) {
            if (!s->problem_set) s->predictor.scorer.set_problem(s->p);
            s->problem_set = true;
            return s->c[i].entry == SIZE_MAX ? s->predictor.scorer(s->predictor.default_inputs)
                                             : s->predictor.scorer(s->predictor.of(s->ix, s->c[i].entry));
        };
        const std::size_t best = cost_model::pick_unseen({n, {distances.data(), evidence}, {measured.data(), n * evidence}},
                                                         predict, kPolicy);
        if (c[best].entry != SIZE_MAX) return select(ix.entries[c[best].entry], LookupSource::predicted);
        return Selection{t, facts.default_config.get(), LookupSource::predicted, nullptr, 0};
    }
    return {};
}

}  // namespace tune
