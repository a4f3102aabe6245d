// Measurement: the record of one candidate (problem, device, template, config) measured
// once: timing statistics, verified error, status and reason. The DB stores every one.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "tune/config.hpp"
#include "tune/problem.hpp"

namespace tune {

enum class Status : std::uint8_t {
    ok,            // verified and timed
    wrong_result,  // error over the problem's tolerance (or NaN): never selected
    failed,        // threw while building or running
    invalid,       // config rejected by the template's space
    timeout,       // exceeded the per-candidate time limit
    crashed,       // worker process died (isolated measurement)
};
std::string_view to_string(Status s);
Status parse_status(std::string_view text);

struct TimingStats {
    double median_s = 0, min_s = 0, mean_s = 0, iqr_s = 0;
    double ci_half_width_rel = 0;  // 95% CI half-width of the median, relative to it
    int count = 0;                 // timed repetitions
    int inner = 1;                 // kernel calls per repetition (tiny kernels)
    bool stable = false;           // CI target met before the time cap
    friend bool operator==(const TimingStats&, const TimingStats&) = default;
};

// The time a measurement ranks by wherever configs are compared (the Tuner's search and
// confirmation, the store's best, the cost model's targets and evidence): its fastest
// repetition; its median where the fastest is not recorded (a row without min_s, or an
// inconsistent one). Interference on a shared machine only adds time: two recordings of one
// space agree on a config's fastest repetition about 3x as closely as on its median
// (docs/performance.md, "Learned cost model").
double ranking_time(const TimingStats& stats);

struct Measurement {
    std::int64_t id = 0;      // assigned by the DB
    std::int64_t run_id = 0;  // tuning run that produced it
    Problem problem;
    std::string device_id;
    std::string template_name;
    std::string template_version;
    Config config;
    Status status = Status::ok;
    std::string reason;       // why it failed; empty when ok
    TimingStats stats;
    double error = 0;         // measured error against the fp64 reference (op's metric)
    std::int64_t workspace_bytes = 0;
    std::string created_at;   // ISO-8601 UTC, set by the DB

    double gflops() const;    // 0 unless ok
};

void to_json(nlohmann::json& j, const Measurement& m);
void from_json(const nlohmann::json& j, Measurement& m);
void to_json(nlohmann::json& j, const TimingStats& s);
void from_json(const nlohmann::json& j, TimingStats& s);

}  // namespace tune
