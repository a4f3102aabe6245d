// ThreadPool: workers wait on an atomic generation counter (a short spin, then a futex wait
// through std::atomic::wait), so back-to-back regions start within microseconds.
#include "tune/thread_pool.hpp"

#include <string>
#include <utility>

#include "tune/device.hpp"
#include "tune/error.hpp"

namespace tune {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Spins while value == old for a bounded number of iterations, then blocks.
template <class T>
void wait_while_equal(const std::atomic<T>& value, T old) {
    for (int spin = 0; spin < 2000; ++spin) {
        if (value.load(std::memory_order_acquire) != old) return;
        cpu_relax();
    }
    while (value.load(std::memory_order_acquire) == old) value.wait(old, std::memory_order_acquire);
}

}  // namespace

ThreadPool::ThreadPool(int max_threads, bool pin_workers)
    : max_threads_(max_threads), pin_workers_(pin_workers) {
    require(max_threads >= 1, "ThreadPool: max_threads must be >= 1, got " + std::to_string(max_threads));
    wake_ = std::make_unique<WakeSlot[]>(static_cast<std::size_t>(max_threads));
}

ThreadPool::~ThreadPool() {
    stop_.store(true, std::memory_order_release);
    for (std::size_t w = 1; w <= workers_.size(); ++w) {
        wake_[w].generation.fetch_add(1, std::memory_order_acq_rel);
        wake_[w].generation.notify_one();
    }
    for (auto& w : workers_) w.join();
}

void ThreadPool::start_workers() {
    workers_.reserve(static_cast<std::size_t>(max_threads_ - 1));
    for (int w = 1; w < max_threads_; ++w) workers_.emplace_back([this, w] { worker_loop(w); });
}

void ThreadPool::worker_loop(int index) {
    if (pin_workers_) pin_current_thread(index);
    std::uint64_t seen = 0;
    auto& generation = wake_[static_cast<std::size_t>(index)].generation;
    for (;;) {
        wait_while_equal(generation, seen);
        ++seen;  // every bump is one region (or the stop signal): none is skipped
        if (stop_.load(std::memory_order_acquire)) return;
        try {
            (*task_)(index);
        } catch (...) {
            std::lock_guard lock(error_mutex_);
            if (!error_) error_ = std::current_exception();
        }
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
    }
}

void ThreadPool::parallel_for(int threads, const std::function<void(int)>& task) {
    require(threads >= 1 && threads <= max_threads_,
            "ThreadPool: threads must be in [1, " + std::to_string(max_threads_) + "], got " +
                std::to_string(threads));
    if (threads == 1) {
        task(0);
        return;
    }
    std::lock_guard region(region_mutex_);
    if (workers_.empty()) start_workers();
    task_ = &task;
    error_ = nullptr;
    pending_.store(threads - 1, std::memory_order_relaxed);
    for (int w = 1; w < threads; ++w) {
        wake_[static_cast<std::size_t>(w)].generation.fetch_add(1, std::memory_order_acq_rel);
        wake_[static_cast<std::size_t>(w)].generation.notify_one();
    }

    std::exception_ptr own_error;
    try {
        task(0);
    } catch (...) {
        own_error = std::current_exception();
    }
    for (int left = pending_.load(std::memory_order_acquire); left != 0;
         left = pending_.load(std::memory_order_acquire)) {
        wait_while_equal(pending_, left);
    }
    task_ = nullptr;
    if (own_error) std::rethrow_exception(own_error);
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace tune
