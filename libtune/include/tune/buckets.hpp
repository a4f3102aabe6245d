// Shape buckets for dynamic dims: rules that map a size dim (e.g. the token count m) to its
// bucket's representative, so one config tuned for the representative serves every shape of
// the bucket. Text form (CLI, stored in the DB): "m:pow2" or "m:1,16,64,256,1024,4096",
// several rules separated by ';'.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tune/problem.hpp"

namespace tune {

struct BucketRule {
    std::string dim;                   // a size dim, e.g. "m"
    std::vector<std::int64_t> bounds;  // ascending upper bounds; empty = powers of two

    // The bucket of v is represented by the smallest bound >= v (pow2: the next power of
    // two), so a bucket is (previous bound, bound]. nullopt above the last bound.
    std::optional<std::int64_t> representative(std::int64_t v) const;
    // The smallest value in the bucket represented by r (r must be a representative).
    std::int64_t lower(std::int64_t r) const;
    // Representatives of every bucket that holds a value in [lo, hi], ascending.
    std::vector<std::int64_t> representatives(std::int64_t lo, std::int64_t hi) const;
    // Up to n values of r's bucket other than r, spread geometrically from its lower end
    // (where serving r's config is the biggest stretch): where regret is measured.
    std::vector<std::int64_t> samples(std::int64_t r, std::size_t n) const;
    std::string text() const;
};

class BucketRules {
public:
    BucketRules() = default;
    // Throws tune::Error naming the rule: unknown or non-size dim, bad or unsorted bounds,
    // a dim given twice. An empty text gives no rules.
    static BucketRules parse(std::string_view text);
    std::string text() const;  // canonical; parse(text()) gives the same rules
    bool empty() const { return rules_.empty(); }
    const std::vector<BucketRule>& rules() const { return rules_; }
    const BucketRule* rule_for(std::string_view dim) const;

    // p with each bucketed size dim replaced by its representative; nullopt when no rule
    // applies to p's op or a value lies above a rule's last bound.
    std::optional<Problem> representative(const Problem& p) const;

private:
    std::vector<BucketRule> rules_;
};

}  // namespace tune
