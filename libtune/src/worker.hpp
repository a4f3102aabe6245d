// Worker: a forked child process that measures candidates for an isolated Measurer. A crash,
// hang or runaway allocation ends only the worker; the parent records it and forks a new one.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "tune/kernel.hpp"
#include "tune/measurement.hpp"

namespace tune::detail {

struct WorkerLimits {
    double setup_timeout_s = 300;  // instantiate + operands + fp64 reference, before the first call
    double verify_timeout_s = 30;  // the single verification call
    double timing_timeout_s = 60;  // the whole timing protocol after verification
    std::int64_t memory_limit_bytes = 0;  // extra address space the worker may map; 0 = unlimited
};

// Reports the phase a measurement is in ("verify" before the first call, "time" after it).
using PhaseFn = std::function<void(std::string_view)>;
// Runs one candidate in the current process (the worker's copy of the Measurer).
using MeasureFn = std::function<Measurement(const Problem&, const Template&, const Config&, const PhaseFn&)>;

class Worker {
public:
    Worker(MeasureFn measure, WorkerLimits limits);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Measures in the worker (forking one first when none is alive). A worker that dies or
    // overruns a phase limit is killed and the returned measurement says crashed / timeout.
    Measurement measure(const Problem& p, const Template& t, const Config& c);

    // Ends the live worker; the next measurement forks a fresh one.
    void retire() { stop(); }

    pid_t pid() const { return pid_; }
    int forks() const { return forks_; }

private:
    void start();
    void stop();
    [[noreturn]] void serve(int fd);

    MeasureFn measure_;
    WorkerLimits limits_;
    pid_t pid_ = -1;
    int fd_ = -1;
    int forks_ = 0;
    // Templates (Template::instance, not addresses: a new template may take a destroyed one's
    // address) that existed when the live worker was forked: each was first measured before
    // that fork and is alive when measured again, so it was alive then. A template first seen
    // later makes the measurement fork again.
    std::unordered_set<std::uint64_t> known_;
};

// "SIGSEGV (Segmentation fault)" for a signal number.
std::string signal_description(int sig);

}  // namespace tune::detail
