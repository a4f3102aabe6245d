// Database: the durable store of tuning results. Every measurement is kept (failures too);
// the best config per key is a query over them, never a separate truth.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
    // Fastest ok measurement per (problem key, template) for this filter, sorted by key.
    virtual std::vector<Measurement> best(const MeasurementFilter& filter) const = 0;
};

// A Database kept in memory; for tests and for callers that do not want a file.
std::unique_ptr<Database> make_memory_database();

}  // namespace tune
