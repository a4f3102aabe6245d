#include "tune/space.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tune/error.hpp"

namespace tune {

Knob Knob::ints(std::string name, std::vector<std::int64_t> values, std::int64_t def, std::string help) {
    require(!values.empty(), "knob '" + name + "': no values");
    Knob k{std::move(name), KnobKind::int_set, {}, def, std::move(help)};
    for (auto v : values) k.values.emplace_back(v);
    require(k.index_of(k.default_value) >= 0, "knob '" + k.name + "': default is not a legal value");
    return k;
}

Knob Knob::pow2(std::string name, std::int64_t lo, std::int64_t hi, std::int64_t def, std::string help) {
    require(lo >= 1 && lo <= hi && (lo & (lo - 1)) == 0, "knob '" + name + "': bad power-of-two range");
    Knob k{std::move(name), KnobKind::pow2_range, {}, def, std::move(help)};
    for (std::int64_t v = lo; v <= hi; v *= 2) k.values.emplace_back(v);
    require(k.index_of(k.default_value) >= 0, "knob '" + k.name + "': default is not a legal value");
    return k;
}

Knob Knob::categorical(std::string name, std::vector<std::string> labels, std::string def, std::string help) {
    require(!labels.empty(), "knob '" + name + "': no labels");
    Knob k{std::move(name), KnobKind::categorical, {}, std::move(def), std::move(help)};
    for (auto& l : labels) k.values.emplace_back(std::move(l));
    require(k.index_of(k.default_value) >= 0, "knob '" + k.name + "': default is not a legal value");
    return k;
}

Knob Knob::boolean(std::string name, bool def, std::string help) {
    return Knob{std::move(name), KnobKind::boolean, {std::int64_t{0}, std::int64_t{1}},
                std::int64_t{def ? 1 : 0}, std::move(help)};
}

int Knob::index_of(const KnobValue& v) const {
    for (std::size_t i = 0; i < values.size(); ++i)
        if (values[i] == v) return static_cast<int>(i);
    return -1;
}

Space& Space::add(Knob knob) {
    tune::require(this->knob(knob.name) == nullptr, "space: knob '" + knob.name + "' declared twice");
    knobs_.push_back(std::move(knob));
    std::sort(knobs_.begin(), knobs_.end(), [](const Knob& a, const Knob& b) { return a.name < b.name; });
    return *this;
}

Space& Space::require(std::string name, std::function<bool(const Config&)> holds) {
    constraints_.push_back({std::move(name), std::move(holds)});
    return *this;
}

const Knob* Space::knob(std::string_view name) const {
    for (const auto& k : knobs_)
        if (k.name == name) return &k;
    return nullptr;
}

std::uint64_t Space::raw_size() const {
    std::uint64_t n = 1;
    for (const auto& k : knobs_)
        if (__builtin_mul_overflow(n, k.values.size(), &n)) return std::numeric_limits<std::uint64_t>::max();
    return n;
}

void Space::enumerate(const std::function<bool(const Config&)>& fn) const {
    if (knobs_.empty()) return;
    std::vector<std::size_t> idx(knobs_.size(), 0);
    Config c;
    for (std::size_t i = 0; i < knobs_.size(); ++i) c.set(knobs_[i].name, knobs_[i].values[0]);
    while (true) {
        bool ok = std::all_of(constraints_.begin(), constraints_.end(),
                              [&](const Constraint& r) { return r.holds(c); });
        if (ok && !fn(c)) return;
        // Odometer increment, last knob fastest.
        std::size_t i = knobs_.size();
        while (i > 0) {
            --i;
            if (++idx[i] < knobs_[i].values.size()) {
                c.set(knobs_[i].name, knobs_[i].values[idx[i]]);
                break;
            }
            idx[i] = 0;
            c.set(knobs_[i].name, knobs_[i].values[0]);
            if (i == 0) return;
        }
    }
}

std::uint64_t Space::count(std::uint64_t cap) const {
    std::uint64_t n = 0;
    enumerate([&](const Config&) { return ++n < cap; });
    return n;
}

std::vector<Config> Space::enumerate_all(std::size_t cap) const {
    std::vector<Config> out;
    if (cap == 0) return out;
    enumerate([&](const Config& c) {
        out.push_back(c);
        return out.size() < cap;
    });
    return out;
}

Config Space::default_config() const {
    Config c;
    for (const auto& k : knobs_) c.set(k.name, k.default_value);
    return c;
}

Space& Space::add_start(Config c) {
    validate(c);
    starts_.push_back(std::move(c));
    return *this;
}

std::vector<Config> Space::starts() const {
    std::vector<Config> out{default_config()};
    for (const Config& c : starts_)
        if (c.hash() != out.front().hash()) out.push_back(c);
    // A copy with an added constraint (a memory cap) may exclude some of them.
    std::erase_if(out, [&](const Config& c) { return violation(c).has_value(); });
    return out;
}

std::optional<Config> Space::sample(std::mt19937_64& rng, int tries) const {
    if (knobs_.empty()) return std::nullopt;
    for (int t = 0; t < tries; ++t) {
        Config c;
        for (const auto& k : knobs_) {
            std::uniform_int_distribution<std::size_t> pick(0, k.values.size() - 1);
            c.set(k.name, k.values[pick(rng)]);
        }
        if (!violation(c)) return c;
    }
    return std::nullopt;
}

std::vector<Config> Space::neighbours(const Config& c) const {
    std::vector<Config> out;
    for (const auto& k : knobs_) {
        const KnobValue* v = c.find(k.name);
        int i = v ? k.index_of(*v) : -1;
        if (i < 0) continue;
        std::vector<int> steps;
        if (k.kind == KnobKind::categorical) {
            for (int j = 0; j < static_cast<int>(k.values.size()); ++j)
                if (j != i) steps.push_back(j);
        } else {
            if (i > 0) steps.push_back(i - 1);
            if (i + 1 < static_cast<int>(k.values.size())) steps.push_back(i + 1);
        }
        for (int j : steps) {
            Config n = c;
            n.set(k.name, k.values[static_cast<std::size_t>(j)]);
            if (!violation(n)) out.push_back(std::move(n));
        }
    }
    return out;
}

std::optional<std::string> Space::violation(const Config& c) const {
    for (const auto& [name, value] : c.values())
        if (!knob(name)) return "unknown knob '" + name + "'";
    for (const auto& k : knobs_) {
        const KnobValue* v = c.find(k.name);
        if (!v) return "missing knob '" + k.name + "'";
        if (k.index_of(*v) < 0) return "knob '" + k.name + "' has illegal value " + to_string(*v);
    }
    for (const auto& r : constraints_)
        if (!r.holds(c)) return "violates constraint '" + r.name + "'";
    return std::nullopt;
}

void Space::validate(const Config& c) const {
    if (auto why = violation(c)) throw Error("config '" + c.text() + "': " + *why);
}

std::vector<double> Space::encode(const Config& c) const {
    std::vector<double> out;
    for (const auto& k : knobs_) {
        const KnobValue* v = c.find(k.name);
        int i = v ? k.index_of(*v) : -1;
        if (k.kind == KnobKind::categorical) {
            for (std::size_t j = 0; j < k.values.size(); ++j) out.push_back(static_cast<int>(j) == i ? 1.0 : 0.0);
        } else {
            double x = i >= 0 ? static_cast<double>(std::get<std::int64_t>(*v)) : 0.0;
            out.push_back(k.kind == KnobKind::pow2_range && x > 0 ? std::log2(x) : x);
        }
    }
    return out;
}

}  // namespace tune
