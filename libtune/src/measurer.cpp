#include "tune/measurer.hpp"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <new>
#include <numeric>
#include <thread>

#include "tune/error.hpp"
#include "worker.hpp"

namespace tune {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double quantile(const std::vector<double>& sorted, double q) {
    double pos = q * double(sorted.size() - 1);
    auto lo = static_cast<std::size_t>(std::floor(pos));
    auto hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

TimingStats summarize(std::vector<double> samples) {
    TimingStats s;
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    const auto n = samples.size();
    s.count = static_cast<int>(n);
    s.median_s = quantile(samples, 0.5);
    s.min_s = samples.front();
    s.mean_s = std::accumulate(samples.begin(), samples.end(), 0.0) / double(n);
    s.iqr_s = quantile(samples, 0.75) - quantile(samples, 0.25);
    // Distribution-free 95% CI of the median: the order statistics of 1-based ranks
    // floor(n/2 - 0.98 sqrt(n)) and ceil(n/2 + 1 + 0.98 sqrt(n)), here as 0-based indexes.
    double half = 0.98 * std::sqrt(double(n));
    auto lo = static_cast<std::size_t>(std::max(0.0, std::floor(double(n) / 2 - half) - 1));
    auto hi = static_cast<std::size_t>(std::min(double(n - 1), std::ceil(double(n) / 2 + half)));
    s.ci_half_width_rel = s.median_s > 0 ? (samples[hi] - samples[lo]) / 2 / s.median_s : 0;
    return s;
}

Measurer::Measurer(DeviceInfo device, MeasureOptions options)
    : device_(std::move(device)), options_(options) {
    require(options_.min_reps >= 1 && options_.max_reps >= options_.min_reps,
            "measure options: need 1 <= min_reps <= max_reps");
    require(options_.max_time_s > 0 && options_.timeout_s > 0, "measure options: time limits must be > 0");
    require(options_.setup_timeout_s > 0, "measure options: setup_timeout_s must be > 0");
    require(options_.memory_limit_bytes >= 0, "measure options: memory_limit_bytes must be >= 0");
    require(options_.reference_settle_s >= 0 && options_.reference_settle_s <= 60,
            "measure options: reference_settle_s must be in [0, 60] seconds");
    if (options_.flush_cache) {
        // Twice the last-level cache, so one sweep evicts the operands.
        std::int64_t llc = std::max({device_.l3_bytes, device_.l2_bytes, std::int64_t{8} << 20});
        flush_buffer_ = AlignedBuffer(static_cast<std::size_t>(2 * llc));
        std::fill_n(flush_buffer_.data(), flush_buffer_.bytes(), std::byte{1});
    }
}

Measurer::Measurer(DeviceInfo device, MeasureOptions options, std::shared_ptr<Accelerator> accelerator)
    : Measurer(std::move(device), options) {
    require(accelerator != nullptr, "Measurer: null accelerator");
    require(!options_.isolate, "measure options: isolate is not supported on a GPU (the device context does not survive fork)");
    accelerator_ = std::move(accelerator);
    flush_buffer_ = AlignedBuffer();  // the device flushes its own L2
}

Measurer::~Measurer() = default;

Workload& Measurer::workload_for(const Problem& p) {
    if (!workload_ || !(workload_->problem() == p)) {
        uploaded_ = nullptr;
        workload_.reset();  // free the old operands before allocating new ones
        workload_ = std::make_unique<Workload>(p, options_.seed);
        // The fp64 reference ran on OpenBLAS, whose threads now spin for a while: a
        // multi-threaded candidate timed meanwhile shares the cores with them (docs/
        // performance.md: 8 ms per call instead of 0.05-1.4 ms). A GPU candidate does not.
        if (!accelerator_ && options_.reference_settle_s > 0 && openblas_get_num_threads() > 1)
            std::this_thread::sleep_for(std::chrono::duration<double>(options_.reference_settle_s));
    }
    return *workload_;
}

void Measurer::flush_caches() {
    // A read-modify-write sweep; the volatile sink keeps it from being optimised away.
    volatile std::byte sink{};
    for (std::size_t i = 0; i < flush_buffer_.bytes(); i += 64) {
        flush_buffer_.data()[i] = std::byte(std::to_integer<int>(flush_buffer_.data()[i]) + 1);
        sink = flush_buffer_.data()[i];
    }
    (void)sink;
}

namespace {

// Pins the calling thread for the timing loop and restores its mask afterwards: threads it
// starts later (OpenMP's pool, created on oneDNN's first call) inherit the mask, and a pool
// pinned to one CPU would run a multi-threaded candidate on a single core.
class PinnedForTiming {
public:
    explicit PinnedForTiming(int cpu) {
        if (cpu < 0) return;
        saved_ = pthread_getaffinity_np(pthread_self(), sizeof mask_, &mask_) == 0;
        pin_current_thread(cpu);
    }
    ~PinnedForTiming() {
        if (saved_) pthread_setaffinity_np(pthread_self(), sizeof mask_, &mask_);
    }
    PinnedForTiming(const PinnedForTiming&) = delete;
    PinnedForTiming& operator=(const PinnedForTiming&) = delete;

private:
    cpu_set_t mask_{};
    bool saved_ = false;
};

}  // namespace

TimingStats Measurer::time(const std::function<void()>& run) {
    const PinnedForTiming pinned(options_.pin_cpu);
    // Warm-up: at least one call and at least warmup_s; it also estimates the call time.
    auto t0 = Clock::now();
    int calls = 0;
    do {
        run();
        ++calls;
    } while (seconds_since(t0) < options_.warmup_s);
    double per_call = seconds_since(t0) / calls;
    int inner = 1;
    if (!options_.flush_cache && per_call < options_.min_sample_s)
        inner = static_cast<int>(std::min(1e6, std::ceil(options_.min_sample_s / std::max(per_call, 1e-9))));

    return sample_until_stable(
        [&](int calls) {
            if (options_.flush_cache) flush_caches();
            auto s0 = Clock::now();
            for (int i = 0; i < calls; ++i) run();
            return seconds_since(s0) / calls;
        },
        inner);
}

TimingStats Measurer::time_on_device(const std::function<void()>& run) {
    // Warm-up by synchronised single calls (run() only enqueues: wall time of a bare loop
    // would measure launch overhead and queue unbounded work).
    auto t0 = Clock::now();
    int calls = 0;
    double device_s = 0;
    do {
        device_s += accelerator_->time_calls(run, 1, false);
        ++calls;
    } while (seconds_since(t0) < options_.warmup_s);
    const double per_call = device_s / calls;
    int inner = 1;
    if (!options_.flush_cache && per_call < options_.min_sample_s)
        inner = static_cast<int>(std::min(1e5, std::ceil(options_.min_sample_s / std::max(per_call, 1e-9))));
    return sample_until_stable([&](int n) { return accelerator_->time_calls(run, n, options_.flush_cache); }, inner);
}

TimingStats Measurer::sample_until_stable(const std::function<double(int)>& sample, int inner) {
    std::vector<double> samples;
    auto start = Clock::now();
    TimingStats stats;
    while (true) {
        samples.push_back(sample(inner));
        if (static_cast<int>(samples.size()) < options_.min_reps) continue;
        stats = summarize(samples);
        stats.stable = stats.ci_half_width_rel <= options_.target_ci_rel;
        if (stats.stable || stats.count >= options_.max_reps || seconds_since(start) >= options_.max_time_s) break;
    }
    stats.inner = inner;
    return stats;
}

int Measurer::worker_starts() const { return worker_ ? worker_->forks() : 0; }

Measurement Measurer::measure(const Problem& p, const Template& t, const Config& c) {
    const bool valid = !t.space(p)->violation(c);
    // Whatever the outcome, a library's threads may still be spinning after its kernel ran:
    // wait them out here, in the measuring process or rank, before the next candidate is timed.
    struct Settle {
        double seconds;
        ~Settle() {
            if (seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        }
    } settle{valid ? t.info().settle_s : 0.0};
    if (!options_.isolate || !valid) return measure_here(p, t, c, {});  // an invalid config needs no worker
    if (!worker_) {
        detail::WorkerLimits limits;
        limits.setup_timeout_s = options_.setup_timeout_s;
        limits.verify_timeout_s = options_.timeout_s;
        // Warm-up and the timing loop: the loop always takes min_reps samples, and the warm-up
        // and the sample that crosses max_time_s add one call each, every call up to the
        // per-call limit (a correct kernel that slow is ok in process; so it must be here).
        limits.timing_timeout_s =
            options_.warmup_s + options_.max_time_s + double(options_.min_reps + 2) * options_.timeout_s;
        limits.memory_limit_bytes = options_.memory_limit_bytes;
        worker_ = std::make_unique<detail::Worker>(
            [this](const Problem& wp, const Template& wt, const Config& wc, const detail::PhaseFn& phase) {
                return measure_here(wp, wt, wc, phase);
            },
            limits);
    }
    Measurement m = worker_->measure(p, t, c);
    // A candidate that failed may have left the worker damaged (leaked memory, a stuck
    // thread): the next candidate gets a fresh one.
    if (m.status == Status::failed) worker_->retire();
    // A failure decided by the parent carries only status and reason: fill in the record.
    m.problem = p;
    m.device_id = device_.id();
    m.template_name = t.info().name;
    m.template_version = t.info().version;
    m.config = c;
    return m;
}

Measurement Measurer::measure_here(const Problem& p, const Template& t, const Config& c,
                                   const std::function<void(std::string_view)>& phase) {
    Measurement m;
    m.problem = p;
    m.device_id = device_.id();
    m.template_name = t.info().name;
    m.template_version = t.info().version;
    m.config = c;
    auto fail = [&](Status s, std::string why) {
        m.status = s;
        m.reason = std::move(why);
        return m;
    };
    if (auto why = t.space(p)->violation(c)) return fail(Status::invalid, *why);
    std::unique_ptr<Kernel> kernel;
    try {
        kernel = t.instantiate(p, c);
        m.workspace_bytes = static_cast<std::int64_t>(kernel->workspace_bytes());
    } catch (const std::bad_alloc&) {
        return fail(Status::failed, "instantiate: out of memory (std::bad_alloc)");
    } catch (const std::exception& e) {
        return fail(Status::failed, std::string("instantiate: ") + e.what());
    }
    try {
        Workload& w = workload_for(p);
        OpArgs args = w.args();
        if (accelerator_) {
            if (uploaded_ != &w) {
                device_args_ = accelerator_->upload(w);
                uploaded_ = &w;
            }
            args = device_args_;
        }
        // Verify before timing counts: a wrong candidate is recorded, never timed.
        accelerator_ ? accelerator_->poison_outputs() : w.poison_outputs();
        if (phase) phase("verify");
        auto t0 = Clock::now();
        kernel->run(args);
        if (accelerator_) accelerator_->download(w);  // waits for the kernel
        double first = seconds_since(t0);
        m.error = w.error();
        double tol = effective_tolerance(p);
        if (!(m.error <= tol)) {
            return fail(Status::wrong_result, std::isnan(m.error) ? "output has NaN/Inf or unwritten elements"
                                                                  : "error " + std::to_string(m.error) +
                                                                        " exceeds tolerance " + std::to_string(tol));
        }
        if (first > options_.timeout_s)
            return fail(Status::timeout, "one call took " + std::to_string(first) + " s (limit " +
                                             std::to_string(options_.timeout_s) + " s)");
        if (phase) phase("time");
        m.stats = accelerator_ ? time_on_device([&] { kernel->run(args); }) : time([&] { kernel->run(args); });
        m.status = Status::ok;
    } catch (const std::bad_alloc&) {
        return fail(Status::failed, "run: out of memory (std::bad_alloc)");
    } catch (const std::exception& e) {
        return fail(Status::failed, std::string("run: ") + e.what());
    }
    return m;
}

}  // namespace tune
