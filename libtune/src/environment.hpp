// Integer settings read from the environment (LIBTUNE_NUM_THREADS, LIBTUNE_COMPILE_THREADS):
// one parser, so every such variable accepts and rejects the same spellings.
#pragma once

#include <charconv>
#include <cstdlib>
#include <optional>
#include <string>

#include "tune/error.hpp"

namespace tune::detail {

// $name as a whole number in [lo, hi]; nullopt when unset or empty. Anything else (blanks,
// a sign, a fraction, out of range) throws tune::Error naming the variable, its value and
// `range` (what the caller accepts, in words).
inline std::optional<int> int_from_env(const char* name, int lo, int hi, const std::string& range) {
    const char* env = std::getenv(name);
    if (env == nullptr || *env == '\0') return std::nullopt;
    const std::string text = env;
    int value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < lo || value > hi)
        throw Error(std::string(name) + "='" + text + "': expected a whole number from " + std::to_string(lo) +
                    " to " + std::to_string(hi) + (range.empty() ? "" : " (" + range + ")"));
    return value;
}

}  // namespace tune::detail
