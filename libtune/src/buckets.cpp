#include "tune/buckets.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "tune/error.hpp"

namespace tune {
namespace {

constexpr std::int64_t kMaxPow2 = std::int64_t{1} << 62;

bool is_size_dim(OpKind op, std::string_view dim) {
    for (const DimSpec& s : dim_specs(op))
        if (s.name == dim) return s.kind == DimKind::size;
    return false;
}

std::int64_t parse_bound(std::string_view rule, std::string_view text) {
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    require(ec == std::errc() && ptr == text.data() + text.size() && v >= 1,
            "buckets: rule '" + std::string(rule) + "': bound '" + std::string(text) + "' is not a positive integer");
    return v;
}

}  // namespace

std::optional<std::int64_t> BucketRule::representative(std::int64_t v) const {
    if (v < 1) return std::nullopt;
    if (bounds.empty()) {
        if (v > kMaxPow2) return std::nullopt;
        std::int64_t r = 1;
        while (r < v) r *= 2;
        return r;
    }
    auto it = std::lower_bound(bounds.begin(), bounds.end(), v);
    if (it == bounds.end()) return std::nullopt;
    return *it;
}

std::int64_t BucketRule::lower(std::int64_t r) const {
    if (bounds.empty()) return r <= 1 ? 1 : r / 2 + 1;
    auto it = std::lower_bound(bounds.begin(), bounds.end(), r);
    return it == bounds.begin() ? 1 : *(it - 1) + 1;
}

std::vector<std::int64_t> BucketRule::representatives(std::int64_t lo, std::int64_t hi) const {
    std::vector<std::int64_t> out;
    for (auto r = representative(std::max<std::int64_t>(lo, 1)); r && lower(*r) <= hi;) {
        out.push_back(*r);
        if (*r >= kMaxPow2) break;
        r = representative(*r + 1);
    }
    return out;
}

std::vector<std::int64_t> BucketRule::samples(std::int64_t r, std::size_t n) const {
    const std::int64_t lo = lower(r);
    std::vector<std::int64_t> out;
    for (std::size_t i = 0; i < n; ++i) {
        auto v = static_cast<std::int64_t>(std::llround(double(lo) * std::pow(double(r) / double(lo), double(i) / double(n))));
        v = std::clamp<std::int64_t>(v, lo, r - 1);
        if (v >= lo && v < r && (out.empty() || out.back() != v)) out.push_back(v);
    }
    return out;
}

std::string BucketRule::text() const {
    std::string out = dim + ":";
    if (bounds.empty()) return out + "pow2";
    for (std::size_t i = 0; i < bounds.size(); ++i) out += (i ? "," : "") + std::to_string(bounds[i]);
    return out;
}

BucketRules BucketRules::parse(std::string_view text) {
    BucketRules out;
    while (!text.empty()) {
        auto end = text.find(';');
        std::string_view rule = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (rule.empty()) continue;
        auto colon = rule.find(':');
        require(colon != std::string_view::npos && colon > 0 && colon + 1 < rule.size(),
                "buckets: rule '" + std::string(rule) + "' is not DIM:pow2 or DIM:B1,B2,... (e.g. m:pow2)");
        BucketRule r;
        r.dim = std::string(rule.substr(0, colon));
        require(is_size_dim(OpKind::gemm, r.dim) || is_size_dim(OpKind::swiglu, r.dim) ||
                    is_size_dim(OpKind::attention, r.dim),
                "buckets: rule '" + std::string(rule) + "': '" + r.dim + "' is not a size dim of any op");
        require(out.rule_for(r.dim) == nullptr, "buckets: dim '" + r.dim + "' has two rules");
        std::string_view values = rule.substr(colon + 1);
        if (values != "pow2") {
            while (!values.empty()) {
                auto comma = values.find(',');
                r.bounds.push_back(parse_bound(rule, values.substr(0, comma)));
                values = comma == std::string_view::npos ? std::string_view{} : values.substr(comma + 1);
            }
            require(std::adjacent_find(r.bounds.begin(), r.bounds.end(), std::greater_equal<>()) == r.bounds.end(),
                    "buckets: rule '" + std::string(rule) + "': bounds must be strictly ascending");
        }
        out.rules_.push_back(std::move(r));
    }
    return out;
}

std::string BucketRules::text() const {
    std::string out;
    for (const auto& r : rules_) out += (out.empty() ? "" : ";") + r.text();
    return out;
}

const BucketRule* BucketRules::rule_for(std::string_view dim) const {
    for (const auto& r : rules_)
        if (r.dim == dim) return &r;
    return nullptr;
}

std::optional<Problem> BucketRules::representative(const Problem& p) const {
    Problem out = p;
    bool applied = false;
    auto specs = dim_specs(p.op);
    for (std::size_t d = 0; d < specs.size(); ++d) {
        if (specs[d].kind != DimKind::size) continue;
        const BucketRule* r = rule_for(specs[d].name);
        if (!r) continue;
        auto v = r->representative(p.dims[d]);
        if (!v) return std::nullopt;
        out.dims[d] = *v;
        applied = true;
    }
    if (!applied) return std::nullopt;
    return out;
}

}  // namespace tune
