// ThreadPool: a small pool of pinned worker threads that runs one parallel region at a time,
// for CPU kernels that split their work over a fixed number of threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tune {

class ThreadPool {
public:
    // A pool for regions of up to max_threads threads: the calling thread plus up to
    // max_threads - 1 workers, started on first use. With pin_workers, worker w (1-based) is
    // pinned to CPU w of this process's affinity mask; without, workers run on any CPU of that
    // mask (set explicitly: a worker started by a pinned thread would otherwise inherit its one
    // CPU). Either way a caller the OS runs on a worker's CPU shares it: the caller runs that
    // worker's index itself when the worker has not started it, and waits yield the CPU, so
    // such a region costs about its serial time (bench_threads pool_region).
    explicit ThreadPool(int max_threads, bool pin_workers = true);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int max_threads() const { return max_threads_; }

    // Runs task(t) once for every t in [0, threads): t == 0 on the calling thread, t >= 1 on
    // worker t, or on the calling thread after task(0) when worker t has not started it by then
    // (asleep, or sharing a CPU with the caller). A task must therefore not wait for another
    // index of its region. Returns when all have finished and rethrows the first exception a
    // task threw.
    // Regions from different calling threads run one after the other. A task must not start
    // a region on the same pool. Throws tune::Error when threads is outside [1, max_threads].
    // Usable in a forked child: a pool whose workers were started before fork() (they do not
    // exist in the child) starts new ones there. fork() waits for the regions other threads
    // have in flight, so the child never inherits a region lock held; a task must therefore
    // not fork().
    void parallel_for(int threads, const std::function<void(int)>& task);

private:
    void start_workers();
    void abandon_workers_of_parent();
    void worker_loop(int index, std::uint64_t seen);
    void run_claimed(int index);  // task_(index), recording its exception, then one off pending_
    struct LivePools;
    static LivePools& live_pools();
    static std::uint64_t fork_generation();  // also registers the fork handlers, once
    static void before_fork();
    static void after_fork_in_parent();
    static void after_fork_in_child();

    const int max_threads_;
    const bool pin_workers_;
    std::mutex region_mutex_;  // one region at a time; also guards worker start-up
    std::vector<std::thread> workers_;
    std::uint64_t workers_fork_generation_ = 0;  // process generation the workers belong to

    // Each worker waits on its own counter; a region bumps only the counters of the workers
    // it uses (release), which then read task_ (acquire). task_ is rewritten only after every
    // worker of the previous region has signalled through pending_.
    // Index w of a region runs on whichever thread takes the slot's offer first: worker w, or
    // the caller once its own index is done.
    struct alignas(64) WakeSlot {
        std::atomic<std::uint64_t> generation{0};
        std::atomic<std::uint64_t> offer{0};  // the region whose index w is unclaimed, else 0
        std::atomic<int> cpu{-1};  // where the worker last ran (it sets this before waiting)
    };
    std::unique_ptr<WakeSlot[]> wake_;
    std::uint64_t regions_ = 0;  // regions started (ids from 1), under region_mutex_
    const std::function<void(int)>* task_ = nullptr;
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    std::mutex error_mutex_;
    std::exception_ptr error_;
};

// The process's pool for regions of up to max_threads threads, made on first request and kept
// while anyone holds it. Every CPU template takes this one, so a runtime that calls the GEMM,
// SwiGLU and attention kernels in turn finds the workers still spinning from the previous
// call instead of asleep in each template's own pool, and no two pools' workers compete for
// one CPU. The cost: regions of different calling threads run one after the other.
std::shared_ptr<ThreadPool> shared_thread_pool(int max_threads);

}  // namespace tune
