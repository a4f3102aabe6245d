#include "rows.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <exception>
#include <utility>

#include "tune/error.hpp"

namespace tune::db_rules {

namespace {

std::string check_timing(const char* name, double value) {
    if (!std::isfinite(value)) return std::string(name) + " is not finite";
    if (value < 0) return std::string(name) + " is negative (" + std::to_string(value) + ")";
    return {};
}

// Timings finite and >= 0, reps >= 0, inner >= 1.
std::string check_stats(const TimingStats& s) {
    for (auto [name, value] : {std::pair{"median_s", s.median_s}, std::pair{"min_s", s.min_s},
                               std::pair{"mean_s", s.mean_s}, std::pair{"iqr_s", s.iqr_s},
                               std::pair{"ci_rel", s.ci_half_width_rel}}) {
        if (auto why = check_timing(name, value); !why.empty()) return why;
    }
    if (s.count < 0) return "reps is negative (" + std::to_string(s.count) + ")";
    if (s.inner < 1) return "inner is < 1 (" + std::to_string(s.inner) + ")";
    return {};
}

}  // namespace

std::string find_defect(const Measurement& m) {
    try {
        validate(m.problem);
    } catch (const std::exception& e) {
        return std::string("problem: ") + e.what();
    }
    if (m.device_id.empty()) return "device_id is empty";
    if (m.template_name.empty()) return "template is empty";
    if (m.run_id < 0) return "run_id is negative (" + std::to_string(m.run_id) + ")";
    const TimingStats& s = m.stats;
    if (auto why = check_stats(s); !why.empty()) return why;
    if (!std::isnan(m.error) && m.error < 0) return "error is negative";
    if (m.workspace_bytes < 0) return "workspace_bytes is negative";
    if (m.status == Status::ok) {
        if (!(s.median_s > 0)) return "status ok with median_s = 0";
        if (!std::isfinite(m.error)) return "status ok with a non-finite error";
    }
    return {};
}

std::string find_confirmation_defect(const Confirmation& c) {
    for (auto [name, value] : {std::pair{"problem_key", &c.problem_key}, std::pair{"device_id", &c.device_id},
                               std::pair{"template", &c.template_name}, std::pair{"config_hash", &c.config_hash},
                               std::pair{"finalists", &c.finalists}})
        if (value->empty()) return std::string(name) + " is empty";
    if (c.run_id < 0) return "run_id is negative (" + std::to_string(c.run_id) + ")";
    if (c.round < 0) return "round is negative (" + std::to_string(c.round) + ")";
    if (auto why = check_stats(c.stats); !why.empty()) return why;
    if (!(c.stats.median_s > 0)) return "median_s = 0";
    return {};
}

void require_sound(const Measurement& m, const std::string& context) {
    if (auto why = find_defect(m); !why.empty()) throw Error(context + ": " + why);
}

Key unique_key(const Measurement& m) {
    return {shape_key(m.problem), m.device_id, m.template_name, m.template_version,
            m.config.hash_hex()};
}

bool matches(const MeasurementFilter& f, const Measurement& m) {
    return (f.problem_key.empty() || f.problem_key == shape_key(m.problem)) &&
           (f.device_id.empty() || f.device_id == m.device_id) &&
           (f.template_name.empty() || f.template_name == m.template_name) &&
           (f.template_version.empty() || f.template_version == m.template_version) &&
           (!f.status || *f.status == m.status);
}

bool faster(const Measurement& a, const Measurement& b) {
    return std::pair(ranking_time(a.stats), a.config.hash()) < std::pair(ranking_time(b.stats), b.config.hash());
}

std::string utc_now() {
    using namespace std::chrono;
    auto now = system_clock::now();
    std::time_t seconds = system_clock::to_time_t(now);
    auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char text[64];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(millis));
    return text;
}

bool is_timestamp(const std::string& text) {
    // YYYY-MM-DDTHH:MM:SS, optional fraction, then Z; each field within its calendar range
    // (a day past its month's end passes: the store only orders and shows these times).
    if (text.size() < 20 || text.size() > 40 || text.back() != 'Z') return false;
    const char* pattern = "dddd-dd-ddTdd:dd:dd";
    for (std::size_t i = 0; pattern[i]; ++i) {
        char c = text[i];
        bool ok = pattern[i] == 'd' ? (c >= '0' && c <= '9') : c == pattern[i];
        if (!ok) return false;
    }
    auto field = [&](std::size_t at) { return (text[at] - '0') * 10 + (text[at + 1] - '0'); };
    if (field(5) < 1 || field(5) > 12 || field(8) < 1 || field(8) > 31 || field(11) > 23 || field(14) > 59 ||
        field(17) > 60)
        return false;
    const std::size_t end = text.size() - 1;  // the Z
    if (end == 19) return true;
    if (text[19] != '.' || end == 20) return false;
    for (std::size_t i = 20; i < end; ++i)
        if (text[i] < '0' || text[i] > '9') return false;
    return true;
}

void require_sound_model(const StoredModel& model) {
    auto need = [&](bool ok, const char* field) {
        if (!ok) throw Error("cost model '" + model.name + "' for '" + model.template_name + "': " + field);
    };
    need(!model.name.empty(), "name is empty");
    need(!model.template_name.empty(), "template is empty");
    need(!model.device_id.empty(), "device is empty");
    need(model.feature_schema >= 1, "feature schema must be >= 1");
    need(!model.format.empty(), "format is empty");
    need(!model.body.empty(), "body is empty");
    need(!model.features.empty(), "no feature columns");
    for (const auto& f : model.features) need(!f.empty(), "a feature column has no name");
    need(model.trained_rows >= 0, "trained_rows is negative");
}

}  // namespace tune::db_rules
