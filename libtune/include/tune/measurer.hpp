// Measurer: the timing protocol (warm-up, repeat until the median is stable or a time cap,
// optional cache flush) and the correctness check that gates every candidate.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "tune/accelerator.hpp"
#include "tune/device.hpp"
#include "tune/kernel.hpp"
#include "tune/measurement.hpp"
#include "tune/openblas_env.hpp"
#include "tune/workload.hpp"

namespace tune {

struct MeasureOptions {
    double warmup_s = 0.02;        // run at least this long (and at least once) before timing
    int min_reps = 5;              // samples before the stopping rule is consulted
    int max_reps = 100;
    double target_ci_rel = 0.02;   // stop when the median's 95% CI half-width <= 2%
    double max_time_s = 1.0;       // per-candidate timing cap (after verification)
    double timeout_s = 30.0;       // a single verification call slower than this: timeout
    double min_sample_s = 2e-4;    // tiny kernels are repeated inside one sample
    bool flush_cache = false;      // cold-cache timing: evict caches before each sample
    int pin_cpu = 0;               // pin the timing thread to this CPU while it times; -1 = leave as is
    std::uint64_t seed = 1;        // operand values
    // CPU: wait this long after computing a new problem's fp64 reference (OpenBLAS, whose
    // threads then spin on the cores the first candidate is timed on); 0 = do not wait.
    double reference_settle_s = kOpenblasSettleSeconds;
    // Isolation: measure in a forked worker process, so a candidate that crashes (SIGSEGV,
    // SIGILL, abort), hangs or exhausts memory ends only the worker and is recorded as
    // crashed / timeout with its reason. The worker is reused until one dies. Workers are
    // forked from this process at any time: a template's thread pool starts its own threads
    // there, and the worker serves from a new thread so that OpenMP (oneDNN's runtime) starts
    // a new pool too, whatever OpenMP this process ran before; the forking thread's own
    // OpenMP pool ends before each fork (it restarts at its next parallel region).
    bool isolate = false;
    double setup_timeout_s = 300;            // isolated: build + operands, before the first call
    std::int64_t memory_limit_bytes = 0;     // isolated: extra address space per worker; 0 = none
};

namespace detail {
class Worker;
}

class Measurer {
public:
    Measurer(DeviceInfo device, MeasureOptions options = {});
    // Measures on a GPU: operands live on the device, run() enqueues there, samples are device
    // events, flush_cache flushes the L2. Verification stays the host fp64 reference. Not
    // with options.isolate (a device context does not survive fork()).
    Measurer(DeviceInfo device, MeasureOptions options, std::shared_ptr<Accelerator> accelerator);
    ~Measurer();

    const DeviceInfo& device() const { return device_; }
    const MeasureOptions& options() const { return options_; }

    // Builds, verifies and times one candidate. Never throws for a bad candidate: the
    // returned measurement says failed / invalid / wrong_result / timeout / crashed with a
    // reason. With options().isolate the candidate runs in a worker process.
    Measurement measure(const Problem& p, const Template& t, const Config& c);

    // Worker processes started so far (isolated mode; 0 in process).
    int worker_starts() const;

    // The protocol alone, for baselines outside any template.
    TimingStats time(const std::function<void()>& run);

private:
    Measurement measure_here(const Problem& p, const Template& t, const Config& c,
                             const std::function<void(std::string_view)>& phase);
    Workload& workload_for(const Problem& p);
    void flush_caches();
    // The sampling loop after warm-up: sample(inner) returns seconds per call.
    TimingStats sample_until_stable(const std::function<double(int)>& sample, int inner);
    TimingStats time_on_device(const std::function<void()>& run);

    DeviceInfo device_;
    MeasureOptions options_;
    std::unique_ptr<Workload> workload_;  // operands of the last problem measured
    AlignedBuffer flush_buffer_;
    std::unique_ptr<detail::Worker> worker_;  // isolated mode
    std::shared_ptr<Accelerator> accelerator_;
    const Workload* uploaded_ = nullptr;  // the workload whose operands are on the device
    OpArgs device_args_;
};

// Order statistics of timing samples (seconds): median, min, mean, IQR and the relative
// half-width of a distribution-free 95% confidence interval of the median.
TimingStats summarize(std::vector<double> samples);

}  // namespace tune
