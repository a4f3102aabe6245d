// Executor: where the Tuner's candidates are measured. The Tuner submits candidates and takes
// results as they complete, so an executor may measure several at once (MPI ranks, see mpi/);
// LocalExecutor measures one at a time in this process.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>

#include "tune/device.hpp"
#include "tune/kernel.hpp"
#include "tune/measurement.hpp"

namespace tune {

class Measurer;

// Measures one candidate and returns its complete record (normally Measurer::measure).
using MeasureCandidateFn = std::function<Measurement(const Problem&, const Template&, const Config&)>;

struct Job {
    std::uint64_t id = 0;  // chosen by the submitter, returned with the result
    Problem problem;
    const Template* tmpl = nullptr;
    Config config;
    // Optional: true once the job is no longer wanted (its problem's time limit passed); an
    // executor that has not started it yet may then complete it unmeasured (skipped).
    std::function<bool()> expired;
};

struct JobResult {
    std::uint64_t id = 0;
    Measurement measurement;
    bool skipped = false;  // completed unmeasured: the job had expired before it started
};

class Executor {
public:
    virtual ~Executor() = default;
    // The device every result is measured on (its id keys the stored results).
    virtual const DeviceInfo& device() const = 0;
    // Jobs worth having in flight at once; at least 1. May change between calls (a rank lost).
    virtual std::size_t slots() const = 0;
    virtual void submit(Job job) = 0;
    // Blocks until a submitted job completes; every submitted job completes exactly once (one
    // that could not be measured completes with a failure status and its reason).
    virtual JobResult wait_next() = 0;
};

// Measures each job in this process when it is waited for. With lookahead > 1 it takes that
// many jobs at once and starts compiling those of run-time compiled templates (GPU) on
// submit, so the compiler works ahead of the device; a job expired by the time it is waited
// for is skipped.
class LocalExecutor final : public Executor {
public:
    LocalExecutor(DeviceInfo device, MeasureCandidateFn measure, std::size_t lookahead = 1);
    explicit LocalExecutor(Measurer& measurer, std::size_t lookahead = 1);

    const DeviceInfo& device() const override { return device_; }
    std::size_t slots() const override { return lookahead_; }
    void submit(Job job) override;
    JobResult wait_next() override;

private:
    DeviceInfo device_;
    MeasureCandidateFn measure_;
    std::size_t lookahead_;
    std::deque<Job> queue_;
};

}  // namespace tune
