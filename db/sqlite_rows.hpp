// How the SQLite store writes measurements, devices and runs, and reads them back. Nothing
// read from a file is trusted: decoding checks every value (see db/README.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sqlite.hpp"
#include "tune/db/database.hpp"

namespace tune::sqlite_rows {

// The measurement columns, in the order decode() reads them.
inline constexpr const char* kColumns =
    "id, run_id, problem_key, problem, device_id, template, template_version, config, "
    "config_hash, status, reason, median_s, min_s, mean_s, iqr_s, ci_rel, reps, inner, stable, "
    "error, workspace_bytes, created_at";
// ranking_time() in SQL: what "fastest" orders by.
inline constexpr const char* kRankingTime = "(CASE WHEN min_s > 0 AND min_s <= median_s THEN min_s ELSE median_s END)";

// Registers a fingerprint once; later calls with the same id change nothing.
void insert_device(sqlite::Connection& c, const DeviceInfo& device);
// Adds a run (device_id empty = none) and returns its id.
std::int64_t insert_run(sqlite::Connection& c, const RunInfo& run, const std::string& device_id);
// Inserts one sound measurement under `run_id` (0 = none); false when its key is stored.
bool insert_measurement(sqlite::Connection& c, const Measurement& m, std::int64_t run_id,
                        const std::string& created_at);

// The confirmation columns, in the order decode_confirmation() reads them.
inline constexpr const char* kConfirmationColumns =
    "id, run_id, problem_key, device_id, template, template_version, config_hash, finalists, round, "
    "median_s, min_s, mean_s, iqr_s, ci_rel, reps, inner, snapshot, created_at, vendor";

// Inserts one sound re-measurement, its snapshot taken in the same statement; false when its
// (finalist, finalist set, round) is stored.
bool insert_confirmation(sqlite::Connection& c, const Confirmation& conf);
// Reads the current row (kConfirmationColumns order); returns why it cannot be trusted, or "".
std::string decode_confirmation(const sqlite::Statement& s, Confirmation& out);

// Reads the current row (kColumns order) into `out`; returns why the row cannot be trusted,
// or "" when every value decodes and checks.
std::string decode(const sqlite::Statement& s, Measurement& out);
// Reads a (id, info) devices row; same contract.
std::string decode_device(const sqlite::Statement& s, DeviceInfo& out);

// " WHERE ..." for a filter (ok_only: status = ok, ignoring filter.status); the values to
// bind are appended to `args`, numbered from 1.
std::string where(const MeasurementFilter& f, bool ok_only, std::vector<std::string>& args);
sqlite::Statement prepare_with(sqlite::Connection& c, const std::string& sql,
                               const std::vector<std::string>& args);

}  // namespace tune::sqlite_rows
