// Knob and Space: the named tuning parameters of a template for one problem, and the named
// constraints between them. Enumerate, count, sample, neighbours, validate, encode.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tune/config.hpp"

namespace tune {

enum class KnobKind : std::uint8_t { int_set, pow2_range, categorical, boolean };

struct Knob {
    std::string name;
    KnobKind kind = KnobKind::int_set;
    std::vector<KnobValue> values;  // legal values in order (neighbours are adjacent ones)
    KnobValue default_value;
    std::string help;

    static Knob ints(std::string name, std::vector<std::int64_t> values, std::int64_t def,
                     std::string help = {});
    static Knob pow2(std::string name, std::int64_t lo, std::int64_t hi, std::int64_t def,
                     std::string help = {});
    static Knob categorical(std::string name, std::vector<std::string> labels, std::string def,
                            std::string help = {});
    static Knob boolean(std::string name, bool def, std::string help = {});

    // Index of v in values, or -1.
    int index_of(const KnobValue& v) const;
};

struct Constraint {
    std::string name;  // appears verbatim in rejection messages, e.g. "pack_b_if_trans_b"
    std::function<bool(const Config&)> holds;
};

class Space {
public:
    Space& add(Knob knob);
    Space& require(std::string name, std::function<bool(const Config&)> holds);

    const std::vector<Knob>& knobs() const { return knobs_; }
    const std::vector<Constraint>& constraints() const { return constraints_; }
    const Knob* knob(std::string_view name) const;

    // Product of knob cardinalities (constraints ignored); saturates at UINT64_MAX.
    std::uint64_t raw_size() const;
    // Number of configs that satisfy every constraint (enumerates; stops counting at `cap`).
    std::uint64_t count(std::uint64_t cap = UINT64_MAX) const;
    // Calls fn for each valid config in lexicographic knob order until fn returns false.
    void enumerate(const std::function<bool(const Config&)>& fn) const;
    std::vector<Config> enumerate_all(std::size_t cap = SIZE_MAX) const;

    Config default_config() const;  // every knob's default; must itself be valid
    // Starting points for local search: the default config, then those added with add_start
    // (a template marks regions a neighbour step rarely reaches, e.g. one per precision).
    // add_start throws tune::Error for an invalid config.
    Space& add_start(Config c);
    std::vector<Config> starts() const;
    // A uniformly drawn valid config (rejection sampling); nullopt if none found in `tries`.
    std::optional<Config> sample(std::mt19937_64& rng, int tries = 1000) const;
    // Valid configs that differ from c in one knob by one step (or any label, categorical).
    std::vector<Config> neighbours(const Config& c) const;

    // nullopt when c is valid; otherwise a message naming the unknown/missing knob, the
    // illegal value or the violated constraint.
    std::optional<std::string> violation(const Config& c) const;
    void validate(const Config& c) const;  // throws tune::Error with violation()'s message

    // Numeric features of c: log2 for pow2 knobs, raw for ints, one-hot for categoricals.
    std::vector<double> encode(const Config& c) const;

private:
    std::vector<Knob> knobs_;
    std::vector<Constraint> constraints_;
    std::vector<Config> starts_;
};

}  // namespace tune
