// Database: the durable store of tuning results. Every measurement is kept (failures too);
// the best config per key is a query over them, never a separate truth.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tune/confirmation.hpp"
#include "tune/device.hpp"
#include "tune/measurement.hpp"

namespace tune {

struct RunInfo {
    std::int64_t id = 0;      // assigned by the DB
    std::string command;      // the command line or API call that started it
    std::string strategy;
    std::uint64_t seed = 0;
    std::string device_id;    // set by the DB from start_run's device; empty for imports
    std::string started_at;   // set by the DB
};

// Which measurements a query returns; empty fields match everything.
struct MeasurementFilter {
    std::string problem_key;
    std::string device_id;
    std::string template_name;
    std::string template_version;
    std::optional<Status> status;
};

// A learned cost model as data: which template and device it was trained for, the feature
// schema and column names it reads, and the model itself in a text format (e.g. XGBoost JSON).
struct StoredModel {
    std::string name;          // "gbdt"
    std::string template_name;
    std::string device_id;
    int feature_schema = 0;    // readers refuse a schema other than theirs
    std::string format;        // "xgboost-json"
    std::vector<std::string> features;  // column names, in the model's order
    std::string body;
    std::int64_t trained_rows = 0;
    std::string created_at;    // set by the store
};

class Database {
public:
    virtual ~Database() = default;
    // Registers a device fingerprint and a tuning run; returns the run id.
    virtual std::int64_t start_run(const RunInfo& run, const DeviceInfo& device) = 0;
    // Commits one measurement durably. A measurement of the same (problem, device, template,
    // version, config) replaces nothing: the first one stays and false is returned.
    virtual bool record(const Measurement& m) = 0;
    // Rows matching the filter, oldest first, each decoded and checked (see db/README).
    // Rows that fail to decode are skipped and reported through `on_bad_row` if given.
    virtual std::vector<Measurement> query(
        const MeasurementFilter& filter,
        const std::function<void(std::int64_t row_id, const std::string& why)>& on_bad_row = {})
        const = 0;
    // Best ok measurement per (problem key, template) for this filter, sorted by key: the
    // template's confirmed pick where the shape has a current confirmation round (see
    // confirmed_picks), else the fastest (by ranking_time).
    virtual std::vector<Measurement> best(const MeasurementFilter& filter) const = 0;
    // Commits one re-measurement of the confirmation round durably. One of the same finalist,
    // finalist set and round is already stored: nothing changes and false is returned.
    virtual bool record_confirmation(const Confirmation& c) = 0;
    // Re-measurements of the filter's problem key, device, template and version (its status
    // is ignored), oldest first, each decoded and checked; unsound rows are skipped.
    virtual std::vector<Confirmation> confirmations(const MeasurementFilter& filter) const = 0;
    // Cost models: one per (name, template, device); saving replaces the previous one. Loading
    // checks the row (fields set, features a list of names) and returns nullopt when absent.
    virtual void save_model(const StoredModel& model) = 0;
    virtual std::optional<StoredModel> load_model(const std::string& name, const std::string& template_name,
                                                  const std::string& device_id) const = 0;
};

// The Tuner's pick of a shape as the store can prove it: from the shape's newest confirmation
// round on a device, the finalists' stored rows ranked by choose_confirmed. A round is current
// while no ok measurement of the shape that it would have ranked (a template of the round at
// its version, or another template) was stored after it: a later run with new candidates and
// no confirmation falls back to the fastest. Finalists whose row is gone or fails to decode
// take no part.
struct ConfirmedPick {
    Measurement measurement;  // the picked row as stored (its first measurement)
    ConfirmedChoice choice;
    std::string finalists;    // the round: finalist_set_id() of its finalists
};
// One pick per (problem key, device) over all templates, or with per_template one per
// (problem key, device, template); for the filter's problem key, device, template, version.
std::vector<ConfirmedPick> confirmed_picks(const Database& db, const MeasurementFilter& filter, bool per_template);

// A Database kept in memory; for tests and for callers that do not want a file.
std::unique_ptr<Database> make_memory_database();

// The Pareto front of (ranking_time, workspace bytes) over measurements of one shape: indexes
// into `rows`, fastest first, each needing less workspace than every faster one (rows equal
// in both are all kept); time ties go to the smaller config hash. The one definition of the
// front: store pruning keeps these rows and the Dispatcher answers "fastest under a workspace
// cap" from them.
std::vector<std::size_t> pareto_front(const std::vector<const Measurement*>& rows);

}  // namespace tune
