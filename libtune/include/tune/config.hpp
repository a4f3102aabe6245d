// Config: one assignment of values to a template's knobs, i.e. how to compute a Problem.
// Canonical text ("kc=256 mc=96 ukernel=avx512_8x32"), JSON round-trip and a stable hash.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tune {

// Integer knobs (and booleans as 0/1) hold numbers; categorical knobs hold their label.
using KnobValue = std::variant<std::int64_t, std::string>;

std::string to_string(const KnobValue& v);

class Config {
public:
    Config() = default;
    Config(std::initializer_list<std::pair<std::string, KnobValue>> values);

    // Sets or replaces a value; entries stay sorted by name so text and hash are canonical.
    Config& set(std::string_view name, KnobValue value);
    bool has(std::string_view name) const;
    const KnobValue* find(std::string_view name) const;
    // Typed getters throw tune::Error naming the knob when it is absent or of the other kind.
    std::int64_t get_int(std::string_view name) const;
    const std::string& get_str(std::string_view name) const;

    const std::vector<std::pair<std::string, KnobValue>>& values() const { return values_; }
    std::size_t size() const { return values_.size(); }
    bool empty() const { return values_.empty(); }

    std::string text() const;  // canonical "name=value" list, sorted by name
    static Config parse(std::string_view text);  // inverse of text(); throws on malformed text
    std::uint64_t hash() const;  // FNV-1a 64 of text(): stable across runs and machines
    std::string hash_hex() const;

    friend bool operator==(const Config&, const Config&) = default;

private:
    std::vector<std::pair<std::string, KnobValue>> values_;
};

// JSON: {"kc": 256, "ukernel": "avx512_8x32"}. Anything but an object of integers/strings
// is rejected with the offending key named.
void to_json(nlohmann::json& j, const Config& c);
void from_json(const nlohmann::json& j, Config& c);

// FNV-1a's step over the bytes, from the basis 1469598103934665603 (not FNV's published
// 14695981039346656037: one digit short). Stores key every row by this hash (config_hash), so
// the basis stays; a tool writing rows computes the same.
std::uint64_t fnv1a64(std::string_view bytes);

}  // namespace tune
