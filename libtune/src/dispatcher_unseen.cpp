// Dispatcher: configs for shapes the store has no entry for (the `predicted` source). When an
// index is built, each group of tuned shapes gets its evidence: per shape, the loss of each
// candidate config that can come up near it, measured where the store has it, else predicted
// by the template's model for that shape. A lookup only gathers the nearest shapes' evidence
// and lets cost_model::pick_unseen choose: no features, no trees.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>

#include "tune/cost_model/training.hpp"
#include "tune/cost_model/unseen.hpp"
#include "tune/dispatcher.hpp"

namespace tune {
namespace {

constexpr cost_model::UnseenPolicy kPolicy{};
static_assert(kPolicy.model_weight == 0, "lookups do not run the model: its predictions are made at load");
constexpr std::size_t kMaxCandidates = kPolicy.neighbours + 1;  // the default and the winners
constexpr std::size_t kScan = 8 * kPolicy.neighbours;  // nearest shapes searched for distinct valid winners
// A shape's gaps are predicted for the winners of its nearest shapes, as many as can offer
// candidates to an unseen shape that has it among its nearest.
constexpr std::size_t kPredictedNear = 2 * (kPolicy.neighbours + kPolicy.evidence);
constexpr std::uint32_t kNoColumn = std::numeric_limits<std::uint32_t>::max();

// Where `column` is or would go in the sorted columns[0, size): a lower bound without
// branches on the data (a lookup runs up to 72 of these; mispredictions would dominate).
std::uint32_t find_column(const std::uint32_t* columns, std::uint32_t size, std::uint32_t column) {
    if (size == 0) return 0;
    const std::uint32_t* base = columns;
    for (std::uint32_t len = size; len > 1;) {
        const std::uint32_t half = len / 2;
        base += base[half] < column ? half : 0;
        len -= half;
    }
    return std::uint32_t(base - columns) + (*base < column);
}

using Near = std::pair<double, std::size_t>;  // distance, entry of the group
constexpr auto kFarther = [](const Near& a, const Near& b) { return b < a; };  // min-heap order

// A template's model on one space, while the evidence of a group is built: the scorer, and
// per column its config's feature inputs and whether the space accepts it (read once).
struct SpaceModel {
    SpaceModel(std::shared_ptr<const cost_model::GbdtModel> model, const Problem& p, std::shared_ptr<const Space> s,
               const DeviceInfo& device, std::size_t columns)
        : space(s), scorer(std::move(model), p, s, device), default_config(s->default_config()), inputs(columns),
          valid(columns, -1) {}
    std::shared_ptr<const Space> space;
    cost_model::ConfigScorer scorer;
    Config default_config;
    std::vector<std::optional<cost_model::ConfigInputs>> inputs;
    std::vector<std::int8_t> valid;  // -1 unknown, 0 no, 1 yes
};

}  // namespace

void Dispatcher::add_unseen_evidence(Index& ix) const {
    for (auto& group : ix.groups) {
        Group& g = group.second;  // not a structured binding: lambdas below capture it (clang 14)
        const std::size_t count = g.entries.size(), sizes = count ? g.log_sizes.size() / count : 0;
        // The candidates any unseen shape of the group can have: winners and spaces' defaults.
        std::vector<std::shared_ptr<const Space>> space(count);
        std::unordered_map<const Space*, std::uint64_t> default_hash;
        for (std::size_t r = 0; r < count; ++r) {
            const Entry& x = ix.entries[g.entries[r]];
            space[r] = x.tmpl->space(x.shape);
            auto [it, fresh] = default_hash.try_emplace(space[r].get(), 0);
            if (fresh) it->second = space[r]->default_config().hash();
            g.columns.push_back({x.tmpl, x.config_hash});
            g.columns.push_back({x.tmpl, it->second});
        }
        std::sort(g.columns.begin(), g.columns.end());
        g.columns.erase(std::unique(g.columns.begin(), g.columns.end()), g.columns.end());
        auto column_of = [&](const ConfigKey& k) {
            auto it = std::lower_bound(g.columns.begin(), g.columns.end(), k);
            return it != g.columns.end() && *it == k ? std::uint32_t(it - g.columns.begin()) : kNoColumn;
        };
        std::vector<const Config*> winner_config(g.columns.size(), nullptr);
        for (std::size_t r = 0; r < count; ++r) {
            const Entry& x = ix.entries[g.entries[r]];
            g.winner_column.push_back(column_of({x.tmpl, x.config_hash}));
            winner_config[g.winner_column.back()] = &x.config;
        }

        std::unordered_map<const Space*, std::unique_ptr<SpaceModel>> models;
        std::vector<std::pair<std::uint32_t, float>> row;
        std::map<std::pair<const Template*, std::uint64_t>, double> class_time;  // of one entry
        std::vector<Near> near;
        std::vector<std::uint32_t> wanted;
        g.cell_begin.assign(1, 0);
        for (std::size_t r = 0; r < count; ++r) {
            const Entry& x = ix.entries[g.entries[r]];
            // Measured: every candidate the store timed on this shape, against its best, each
            // timed as its equivalence class here (the fastest member: one kernel, measured by
            // each member; a member slowed by a noisy moment does not count against its twins).
            double best = x.rank_s;
            class_time.clear();
            if (x.times)
                for (const auto& [k, timed] : *x.times) {
                    best = std::min(best, timed.seconds);
                    auto [it, fresh] = class_time.try_emplace({k.tmpl, timed.class_hash}, timed.seconds);
                    if (!fresh) it->second = std::min(it->second, timed.seconds);
                }
            row.clear();
            if (!x.times) row.emplace_back(g.winner_column[r], float(cost_model::relative_loss(x.rank_s, best)));
            else
                for (const auto& [k, timed] : *x.times)  // sorted by key, as the columns are
                    if (std::uint32_t c = column_of(k); c != kNoColumn)
                        row.emplace_back(
                            c, float(cost_model::relative_loss(class_time.at({k.tmpl, timed.class_hash}), best)));
            // Predicted: the winners of the nearest shapes (same template) and the default,
            // where not measured and valid here.
            if (auto model = models_.find(x.tmpl); model != models_.end()) {
                near.clear();
                for (std::size_t s = 0; s < count; ++s) {
                    if (s == r || ix.entries[g.entries[s]].tmpl != x.tmpl) continue;
                    double d = 0;
                    for (std::size_t k = 0; k < sizes; ++k)
                        d += std::abs(g.log_sizes[r * sizes + k] - g.log_sizes[s * sizes + k]);
                    near.emplace_back(d, s);
                }
                if (near.size() > kPredictedNear) {
                    std::nth_element(near.begin(), near.begin() + long(kPredictedNear), near.end());
                    near.resize(kPredictedNear);
                }
                wanted.assign(1, column_of({x.tmpl, default_hash.at(space[r].get())}));
                for (const auto& [d, s] : near) wanted.push_back(g.winner_column[s]);
                std::sort(wanted.begin(), wanted.end());
                wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
                auto& m = models[space[r].get()];
                if (!m) m = std::make_unique<SpaceModel>(model->second, x.shape, space[r], device_, g.columns.size());
                m->scorer.set_problem(x.shape);
                const std::size_t measured = row.size();
                for (std::uint32_t c : wanted) {
                    if (std::binary_search(row.begin(), row.begin() + long(measured), std::pair{c, 0.0f},
                                           [](const auto& a, const auto& b) { return a.first < b.first; }))
                        continue;
                    const Config& config = winner_config[c] ? *winner_config[c] : m->default_config;
                    if (m->valid[c] < 0) m->valid[c] = m->space->violation(config) ? 0 : 1;
                    if (!m->valid[c]) continue;
                    // Not measured here, but a config of its class was: that is its time.
                    if (auto same = class_time.find({x.tmpl, x.tmpl->equivalence_key(x.shape, config).hash()});
                        same != class_time.end()) {
                        row.emplace_back(c, float(cost_model::relative_loss(same->second, best)));
                        continue;
                    }
                    if (!m->inputs[c]) m->inputs[c] = m->scorer.inputs(config);
                    row.emplace_back(c, float(cost_model::predicted_loss(m->scorer(*m->inputs[c]))));
                }
                std::sort(row.begin(), row.end());
            }
            for (const auto& [column, loss] : row) {
                g.cell_columns.push_back(column);
                g.cell_losses.push_back(loss);
            }
            g.cell_begin.push_back(std::uint32_t(g.cell_columns.size()));
        }
    }
}

Selection Dispatcher::predict_unseen(const Problem& p, const Index& ix, const Group& g,
                                     std::vector<std::pair<double, std::size_t>>& near) const {
    if (models_.empty()) return {};
    // Nearest first (ties: the earlier entry), taken one at a time: a lookup needs only the
    // first few of a large group.
    std::make_heap(near.begin(), near.end(), kFarther);
    auto heap_end = near.end();
    std::array<const Near*, kScan> scanned{};
    std::size_t n_scanned = 0;
    auto nearest = [&](std::size_t k) -> const Near* {  // the k-th nearest (k < kScan), or null
        for (; n_scanned <= k && heap_end != near.begin(); ++n_scanned) {
            std::pop_heap(near.begin(), heap_end, kFarther);
            scanned[n_scanned] = &*--heap_end;
        }
        return k < n_scanned ? scanned[k] : nullptr;
    };
    std::array<double, kPolicy.evidence> distances{};
    std::array<std::size_t, kPolicy.evidence> evidence_rows{};
    std::size_t evidence = 0;
    for (const Near* x; evidence < kPolicy.evidence && (x = nearest(evidence)); ++evidence) {
        distances[evidence] = x->first;
        evidence_rows[evidence] = x->second;
    }
    for (const Template* t : model_templates_) {
        if (t->info().op != p.op || t->info().backend != device_.backend || !t->supports(p)) continue;
        auto space = t->space(p);
        auto& facts = spaces_[space.get()];
        if (!facts.space) facts.space = space;
        if (!facts.default_config) facts.default_config = std::make_unique<Config>(space->default_config());
        if (!facts.default_hash) facts.default_hash = facts.default_config->hash();  // 0: not computed yet
        // The candidates: the default, then the distinct winners valid here, nearest first.
        struct Candidate {
            std::size_t entry;  // SIZE_MAX: the default
            std::uint64_t hash;
            std::uint32_t column;
        };
        std::array<Candidate, kMaxCandidates> c;
        const ConfigKey default_key{t, facts.default_hash};
        auto it = std::lower_bound(g.columns.begin(), g.columns.end(), default_key);
        c[0] = {SIZE_MAX, facts.default_hash,
                it != g.columns.end() && *it == default_key ? std::uint32_t(it - g.columns.begin()) : kNoColumn};
        std::size_t n = 1;
        for (std::size_t k = 0; k < kScan && n < kMaxCandidates; ++k) {
            const Near* x = nearest(k);
            if (!x) break;
            const std::size_t r = x->second, e = g.entries[r];
            const Entry& entry = ix.entries[e];
            if (entry.tmpl != t ||
                std::any_of(c.begin(), c.begin() + long(n), [&](const Candidate& y) { return y.hash == entry.config_hash; }) ||
                !accepted(ix, facts, e))
                continue;
            c[n++] = {e, entry.config_hash, g.winner_column[r]};
        }
        // Each candidate's loss on each of the nearest shapes (NaN: neither measured nor predicted).
        std::array<float, kMaxCandidates * kPolicy.evidence> losses;
        for (std::size_t j = 0; j < evidence; ++j) {
            const std::size_t r = evidence_rows[j];
            const std::uint32_t begin = g.cell_begin[r], size = g.cell_begin[r + 1] - begin;
            const std::uint32_t* columns = g.cell_columns.data() + begin;
            for (std::size_t i = 0; i < n; ++i) {
                const std::uint32_t at = find_column(columns, size, c[i].column);
                losses[i * evidence + j] = at < size && columns[at] == c[i].column
                                               ? g.cell_losses[begin + at]
                                               : std::numeric_limits<float>::quiet_NaN();
            }
        }
        const std::size_t best =
            cost_model::pick_unseen({n, {distances.data(), evidence}, {losses.data(), n * evidence}}, {}, kPolicy);
        if (c[best].entry != SIZE_MAX) return select(ix.entries[c[best].entry], LookupSource::predicted);
        return Selection{t, facts.default_config.get(), LookupSource::predicted, nullptr, 0};
    }
    return {};
}

}  // namespace tune
