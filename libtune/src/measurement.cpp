#include "tune/measurement.hpp"

#include <array>
#include <cmath>
#include <nlohmann/json.hpp>

#include "tune/error.hpp"

namespace tune {
namespace {

constexpr std::array<std::pair<std::string_view, Status>, 6> kStatuses{{
    {"ok", Status::ok},
    {"wrong_result", Status::wrong_result},
    {"failed", Status::failed},
    {"invalid", Status::invalid},
    {"timeout", Status::timeout},
    {"crashed", Status::crashed},
}};

}  // namespace

std::string_view to_string(Status s) {
    for (const auto& [name, v] : kStatuses)
        if (v == s) return name;
    return "?";
}

Status parse_status(std::string_view text) {
    for (const auto& [name, v] : kStatuses)
        if (name == text) return v;
    throw Error("unknown measurement status '" + std::string(text) + "'");
}

double ranking_time(const TimingStats& stats) {
    return stats.min_s > 0 && stats.min_s <= stats.median_s ? stats.min_s : stats.median_s;
}

double Measurement::gflops() const {
    if (status != Status::ok || stats.median_s <= 0) return 0;
    return flop_count(problem) / stats.median_s * 1e-9;
}

void to_json(nlohmann::json& j, const TimingStats& s) {
    j = nlohmann::json{{"median_s", s.median_s}, {"min_s", s.min_s},   {"mean_s", s.mean_s},
                       {"iqr_s", s.iqr_s},       {"ci_rel", s.ci_half_width_rel},
                       {"count", s.count},       {"inner", s.inner},   {"stable", s.stable}};
}

void from_json(const nlohmann::json& j, TimingStats& s) {
    require(j.is_object(), "timing JSON: expected an object");
    TimingStats out;
    auto num = [&](const char* key, double& v) {
        require(j.contains(key) && j[key].is_number(), std::string("timing JSON: '") + key + "' must be a number");
        v = j[key].get<double>();
        require(std::isfinite(v) && v >= 0, std::string("timing JSON: '") + key + "' must be finite and >= 0");
    };
    num("median_s", out.median_s);
    num("min_s", out.min_s);
    num("mean_s", out.mean_s);
    num("iqr_s", out.iqr_s);
    num("ci_rel", out.ci_half_width_rel);
    auto integer = [&](const char* key, int& v) {
        require(j.contains(key) && j[key].is_number_integer(), std::string("timing JSON: '") + key + "' must be an integer");
        auto x = j[key].get<std::int64_t>();
        require(x >= 0 && x <= 1'000'000'000, std::string("timing JSON: '") + key + "' out of range");
        v = static_cast<int>(x);
    };
    integer("count", out.count);
    integer("inner", out.inner);
    require(j.contains("stable") && j["stable"].is_boolean(), "timing JSON: 'stable' must be a boolean");
    out.stable = j["stable"].get<bool>();
    s = out;
}

void to_json(nlohmann::json& j, const Measurement& m) {
    j = nlohmann::json{{"problem", m.problem},
                       {"problem_key", shape_key(m.problem)},
                       {"device_id", m.device_id},
                       {"template", m.template_name},
                       {"template_version", m.template_version},
                       {"config", m.config},
                       {"status", to_string(m.status)},
                       {"reason", m.reason},
                       {"stats", m.stats},
                       {"error", m.error},
                       {"workspace_bytes", m.workspace_bytes},
                       {"created_at", m.created_at}};
}

void from_json(const nlohmann::json& j, Measurement& m) {
    require(j.is_object(), "measurement JSON: expected an object");
    auto str = [&](const char* key) {
        require(j.contains(key) && j[key].is_string(), std::string("measurement JSON: '") + key + "' must be a string");
        return j[key].get<std::string>();
    };
    auto field = [&](const char* key) -> const nlohmann::json& {
        require(j.contains(key), std::string("measurement JSON: missing '") + key + "'");
        return j[key];
    };
    Measurement out;
    out.problem = field("problem").get<Problem>();
    if (j.contains("problem_key"))
        require(str("problem_key") == shape_key(out.problem), "measurement JSON: 'problem_key' does not match 'problem'");
    out.device_id = str("device_id");
    out.template_name = str("template");
    out.template_version = str("template_version");
    out.config = field("config").get<Config>();
    out.status = parse_status(str("status"));
    out.reason = str("reason");
    out.stats = field("stats").get<TimingStats>();
    // A wrong result may have a NaN error, which JSON writes as null.
    const auto& error = field("error");
    require(error.is_number() || (error.is_null() && out.status != Status::ok),
            "measurement JSON: 'error' must be a number");
    out.error = error.is_null() ? std::nan("") : error.get<double>();
    require(std::isnan(out.error) || out.error >= 0, "measurement JSON: 'error' must be >= 0");
    require(field("workspace_bytes").is_number_integer(), "measurement JSON: 'workspace_bytes' must be an integer");
    out.workspace_bytes = j["workspace_bytes"].get<std::int64_t>();
    require(out.workspace_bytes >= 0, "measurement JSON: 'workspace_bytes' must be >= 0");
    if (j.contains("created_at")) out.created_at = str("created_at");
    require(!out.device_id.empty() && !out.template_name.empty(),
            "measurement JSON: 'device_id' and 'template' must not be empty");
    m = std::move(out);
}

}  // namespace tune
