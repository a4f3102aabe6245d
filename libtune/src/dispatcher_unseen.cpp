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
        : space(s), scorer(std::move(model), p, s, device), inputs(columns), valid(columns, -1) {}
    std::shared_ptr<const Space> space;
    cost_model::ConfigScorer scorer;
    std::vector<std::optional<cost_model::ConfigInputs>> inputs;
    std::vector<std::int8_t> valid;  // -1 unknown, 0 no, 1 yes
};

}  // namespace

void Dispatcher::add_unseen_evidence(Index& ix) const {
    for (auto& group : ix.groups) {
        Group& g = group.second;  // not a structured binding: lambdas below capture it (clang 14)
        const std::size_t count = g.entries.size(), sizes = count ? g.log_sizes.size() / count : 0;
        // The candidates any unseen shape of the group can have: the winners, and on each tuned
        // shape the default (Template::default_config, the config the Tuner measures first
        // there) of each template with a model that computes it.
        struct Default {
            std::size_t entry;
            const Template* tmpl;
            Config config;
        };
        std::vector<Default> defaults;
        for (std::size_t r = 0; r < count; ++r) {
            const Entry& x = ix.entries[g.entries[r]];
            g.columns.push_back({x.tmpl, x.config_hash});
            for (const Template* t : model_templates_) {
                if (!computes(*t, x.shape, device_.backend)) continue;
                defaults.push_back({r, t, t->default_config(x.shape)});
                g.columns.push_back({t, defaults.back().config.hash()});
            }
        }
        std::sort(g.columns.begin(), g.columns.end());
        g.columns.erase(std::unique(g.columns.begin(), g.columns.end()), g.columns.end());
        auto column_of = [&](const ConfigKey& k) {
            auto it = std::lower_bound(g.columns.begin(), g.columns.end(), k);
            return it != g.columns.end() && *it == k ? std::uint32_t(it - g.columns.begin()) : kNoColumn;
        };
        std::vector<const Config*> column_config(g.columns.size(), nullptr);
        for (std::size_t r = 0; r < count; ++r) {
            const Entry& x = ix.entries[g.entries[r]];
            g.winner_column.push_back(column_of({x.tmpl, x.config_hash}));
            column_config[g.winner_column.back()] = &x.config;
        }
        // Per entry, the columns of its shape's defaults (defaults is in entry order).
        std::vector<std::uint32_t> default_column(defaults.size());
        for (std::size_t i = 0; i < defaults.size(); ++i) {
            default_column[i] = column_of({defaults[i].tmpl, defaults[i].config.hash()});
            if (!column_config[default_column[i]]) column_config[default_column[i]] = &defaults[i].config;
        }

        std::map<std::pair<const Template*, const Space*>, std::unique_ptr<SpaceModel>> models;
        std::vector<std::pair<std::uint32_t, float>> row;
        std::map<std::pair<const Template*, std::uint64_t>, double> class_time;  // of one entry
        std::vector<Near> near;
        std::vector<std::uint32_t> wanted;
        g.cell_begin.assign(1, 0);
        std::size_t next_default = 0;
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
            // Predicted, by each template's model: its default here and the winners of the
            // nearest shapes it won, where not measured and valid here.
            const std::size_t measured = row.size();
            for (; next_default < defaults.size() && defaults[next_default].entry == r; ++next_default) {
                const Template* t = defaults[next_default].tmpl;
                near.clear();
                for (std::size_t s = 0; s < count; ++s) {
                    if (s == r || ix.entries[g.entries[s]].tmpl != t) continue;
                    double d = 0;
                    for (std::size_t k = 0; k < sizes; ++k)
                        d += std::abs(g.log_sizes[r * sizes + k] - g.log_sizes[s * sizes + k]);
                    near.emplace_back(d, s);
                }
                if (near.size() > kPredictedNear) {
                    std::nth_element(near.begin(), near.begin() + long(kPredictedNear), near.end());
                    near.resize(kPredictedNear);
                }
                wanted.assign(1, default_column[next_default]);
                for (const auto& [d, s] : near) wanted.push_back(g.winner_column[s]);
                std::sort(wanted.begin(), wanted.end());
                wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
                auto space = t->space(x.shape);
                auto& m = models[{t, space.get()}];
                if (!m) m = std::make_unique<SpaceModel>(models_.at(t), x.shape, space, device_, g.columns.size());
                m->scorer.set_problem(x.shape);
                for (std::uint32_t c : wanted) {
                    if (std::binary_search(row.begin(), row.begin() + long(measured), std::pair{c, 0.0f},
                                           [](const auto& a, const auto& b) { return a.first < b.first; }))
                        continue;
                    const Config& config = *column_config[c];
                    if (m->valid[c] < 0) m->valid[c] = m->space->violation(config) ? 0 : 1;
                    if (!m->valid[c]) continue;
                    // Not measured here, but a config of its class was: that is its time.
                    if (auto same = class_time.find({t, t->equivalence_key(x.shape, config).hash()});
                        same != class_time.end()) {
                        row.emplace_back(c, float(cost_model::relative_loss(same->second, best)));
                        continue;
                    }
                    if (!m->inputs[c]) m->inputs[c] = m->scorer.inputs(config);
                    row.emplace_back(c, float(cost_model::predicted_loss(m->scorer(*m->inputs[c]))));
                }
            }
            std::sort(row.begin(), row.end());
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
    // The default: that of the first template with a model that computes p, the one whose
    // model was asked for (none: no prediction, the nearest shape's winner serves).
    const auto owner = std::find_if(model_templates_.begin(), model_templates_.end(),
                                    [&](const Template* t) { return computes(*t, p, device_.backend); });
    if (owner == model_templates_.end()) return {};
    const Template* t = *owner;
    const ShapeDefault def = shape_default(*t, p);
    // valid_here, with p's space facts looked up once per template (a few templates, many
    // winners): about 0.2 us of a first lookup.
    std::array<std::pair<const Template*, SpaceFacts*>, 4> facts{};
    std::size_t templates_seen = 0;
    auto valid = [&](std::size_t e) {
        const Template* w = ix.entries[e].tmpl;
        for (std::size_t i = 0; i < templates_seen; ++i)
            if (facts[i].first == w) return facts[i].second && accepted(ix, *facts[i].second, e);
        if (templates_seen == facts.size()) return valid_here(ix, p, e);
        facts[templates_seen++] = {w, w->supports(p) ? &facts_of(*w, p) : nullptr};
        return facts[templates_seen - 1].second && accepted(ix, *facts[templates_seen - 1].second, e);
    };
    // The candidates: the default, then the distinct winners valid here, of any template,
    // nearest first (the evidence has each one's measured losses where the store timed it).
    struct Candidate {
        std::size_t entry;  // SIZE_MAX: the default
        ConfigKey key;
        std::uint32_t column;
    };
    std::array<Candidate, kMaxCandidates> c;
    const ConfigKey default_key{t, def.hash};
    auto it = std::lower_bound(g.columns.begin(), g.columns.end(), default_key);
    c[0] = {SIZE_MAX, default_key,
            it != g.columns.end() && *it == default_key ? std::uint32_t(it - g.columns.begin()) : kNoColumn};
    std::size_t n = 1;
    for (std::size_t k = 0; k < kScan && n < kMaxCandidates; ++k) {
        const Near* x = nearest(k);
        if (!x) break;
        const std::size_t r = x->second, e = g.entries[r];
        const Entry& entry = ix.entries[e];
        const ConfigKey key{entry.tmpl, entry.config_hash};
        if (std::any_of(c.begin(), c.begin() + long(n), [&](const Candidate& y) { return y.key == key; }) ||
            !valid(e))
            continue;
        c[n++] = {e, key, g.winner_column[r]};
    }
    // Each candidate's loss on each of the nearest shapes (NaN: neither measured nor predicted).
    std::array<float, kMaxCandidates * kPolicy.evidence> losses;
    for (std::size_t j = 0; j < evidence; ++j) {
        const std::size_t r = evidence_rows[j];
        const std::uint32_t begin = g.cell_begin[r], size = g.cell_begin[r + 1] - begin;
        const std::uint32_t* columns = g.cell_columns.data() + begin;
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint32_t at = find_column(columns, size, c[i].column);
            losses[i * evidence + j] =
                at < size && columns[at] == c[i].column ? g.cell_losses[begin + at] : std::numeric_limits<float>::quiet_NaN();
        }
    }
    const std::size_t best =
        cost_model::pick_unseen({n, {distances.data(), evidence}, {losses.data(), n * evidence}}, {}, kPolicy);
    if (c[best].entry != SIZE_MAX) return select(ix.entries[c[best].entry], LookupSource::predicted);
    return Selection{t, def.config, LookupSource::predicted, nullptr, 0};
}

}  // namespace tune
