// ThreadPool: workers wait on an atomic generation counter (a short spin, then a futex wait
// through std::atomic::wait), so back-to-back regions start within microseconds.
#include "tune/thread_pool.hpp"

#include <pthread.h>
#include <sched.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tune/device.hpp"
#include "tune/error.hpp"

namespace tune {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Spins while value == old for a bounded number of iterations (~50 us), then blocks. From
// iteration `yield_from` on (never when negative), every 16th iteration yields the CPU
// instead of pausing, so a spinning thread does not hold off a runnable one that needs this
// CPU: an idle worker spinning where another pool's worker or the caller must run, or a caller
// spinning where its own worker waits to start. Both spin kHotSpins (~10 us) first, so
// back-to-back regions are still picked up by pure spinning; a caller yields only when a
// worker of its region last ran on its CPU (elsewhere a yield would only hand its CPU to other
// threads). bench_threads pool_region and the decoder runtime on a tiny config measure both
// (docs/performance.md).
constexpr int kHotSpins = 400;

template <class T>
void wait_while_equal(const std::atomic<T>& value, T old, int yield_from) {
    for (int spin = 0; spin < 2000; ++spin) {
        if (value.load(std::memory_order_acquire) != old) return;
        if (yield_from >= 0 && spin >= yield_from && spin % 16 == 15) {
            sched_yield();
        } else {
            cpu_relax();
        }
    }
    while (value.load(std::memory_order_acquire) == old) value.wait(old, std::memory_order_acquire);
}

// Bumped in every forked child: threads do not survive fork(), so a pool compares this with
// the generation its workers were started in. A relaxed load per region, where getpid()
// would be a system call (and could meet a reused pid).
std::atomic<std::uint64_t> fork_generation_counter{0};

// shared_thread_pool's registry: weak, so the last template to go takes its pool (and
// workers) with it. Never destroyed, like the registry of live pools below.
struct SharedPools {
    std::mutex mutex;
    std::map<int, std::weak_ptr<ThreadPool>> pools;
};

SharedPools& shared_pools() {
    static SharedPools& shared = *std::make_unique<SharedPools>().release();
    return shared;
}

}  // namespace

// Every live pool, for the fork handlers below.
struct ThreadPool::LivePools {
    std::mutex mutex;
    std::vector<ThreadPool*> pools;
};

ThreadPool::LivePools& ThreadPool::live_pools() {
    // Never destroyed: pools owned by static objects leave it while the program exits.
    static LivePools& pools = *std::make_unique<LivePools>().release();
    return pools;
}

// A child process inherits every mutex as the parent's threads held it, and a region lock
// held by another thread would never be released there: its first region on that pool would
// wait forever. So fork() first waits for the regions in flight (taking each pool's region
// lock), and both processes release the locks after it. The shared pool made this matter: an
// isolated measurement forked while any other thread ran any CPU kernel. The registries' locks
// are taken first, in the order shared_thread_pool takes them.
void ThreadPool::before_fork() {
    shared_pools().mutex.lock();
    LivePools& live = live_pools();
    live.mutex.lock();
    for (ThreadPool* pool : live.pools) pool->region_mutex_.lock();
}

void ThreadPool::after_fork_in_parent() {
    LivePools& live = live_pools();
    for (ThreadPool* pool : live.pools) pool->region_mutex_.unlock();
    live.mutex.unlock();
    shared_pools().mutex.unlock();
}

void ThreadPool::after_fork_in_child() {
    fork_generation_counter.fetch_add(1, std::memory_order_relaxed);
    after_fork_in_parent();  // the forking thread holds the locks; in the child it is the only thread
}

std::uint64_t ThreadPool::fork_generation() {
    static const int registered = ::pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child);
    static_cast<void>(registered);
    return fork_generation_counter.load(std::memory_order_relaxed);
}

ThreadPool::ThreadPool(int max_threads, bool pin_workers)
    : max_threads_(max_threads), pin_workers_(pin_workers) {
    require(max_threads >= 1, "ThreadPool: max_threads must be >= 1, got " + std::to_string(max_threads));
    wake_ = std::make_unique<WakeSlot[]>(static_cast<std::size_t>(max_threads));
    workers_fork_generation_ = fork_generation();  // registers the fork handlers before any worker exists
    LivePools& live = live_pools();
    std::lock_guard lock(live.mutex);
    live.pools.push_back(this);
}

ThreadPool::~ThreadPool() {
    {
        LivePools& live = live_pools();
        std::lock_guard lock(live.mutex);
        std::erase(live.pools, this);
    }
    if (workers_fork_generation_ != fork_generation()) {
        abandon_workers_of_parent();  // a copy in a forked child: its workers are not here to stop
        return;
    }
    stop_.store(true, std::memory_order_release);
    for (std::size_t w = 1; w <= workers_.size(); ++w) {
        wake_[w].generation.fetch_add(1, std::memory_order_acq_rel);
        wake_[w].generation.notify_one();
    }
    for (auto& w : workers_) w.join();
}

void ThreadPool::start_workers() {
    workers_fork_generation_ = fork_generation();
    workers_.reserve(static_cast<std::size_t>(max_threads_ - 1));
    for (int w = 1; w < max_threads_; ++w) {
        // In a forked child the counters carry the parent's regions: start from their value.
        std::uint64_t seen = wake_[static_cast<std::size_t>(w)].generation.load(std::memory_order_acquire);
        workers_.emplace_back([this, w, seen] { worker_loop(w, seen); });
    }
}

void ThreadPool::abandon_workers_of_parent() {
    // These std::thread objects name threads of the parent process: joining one would wait
    // forever and destroying a joinable one terminates, so they are released unjoined (a few
    // bytes per pool and fork).
    static_cast<void>(std::make_unique<std::vector<std::thread>>(std::move(workers_)).release());
    workers_.clear();
}

void ThreadPool::worker_loop(int index, std::uint64_t seen) {
    if (pin_workers_) {
        pin_current_thread(index);
    } else {
        unpin_current_thread();
    }
    WakeSlot& slot = wake_[static_cast<std::size_t>(index)];
    for (;;) {
        slot.cpu.store(sched_getcpu(), std::memory_order_relaxed);
        wait_while_equal(slot.generation, seen, kHotSpins);
        ++seen;  // every bump is one region (or the stop signal): none is skipped
        if (stop_.load(std::memory_order_acquire)) return;
        // The caller may have run this index already (the offer is gone): then there is
        // nothing to do. A worker a region behind may take the next region's offer here; task_
        // is that region's, as it was written before the offer.
        if (slot.offer.exchange(0, std::memory_order_acq_rel) != 0) run_claimed(index);
    }
}

void ThreadPool::run_claimed(int index) {
    try {
        (*task_)(index);
    } catch (...) {
        std::lock_guard lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
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
    if (!workers_.empty() && workers_fork_generation_ != fork_generation()) abandon_workers_of_parent();
    if (workers_.empty()) start_workers();
    task_ = &task;
    error_ = nullptr;
    const int cpu = sched_getcpu();
    const std::uint64_t id = ++regions_;
    pending_.store(threads - 1, std::memory_order_relaxed);
    for (int w = 1; w < threads; ++w) {
        WakeSlot& slot = wake_[static_cast<std::size_t>(w)];
        slot.offer.store(id, std::memory_order_release);
        slot.generation.fetch_add(1, std::memory_order_acq_rel);
        slot.generation.notify_one();
    }

    std::exception_ptr own_error;
    try {
        task(0);
    } catch (...) {
        own_error = std::current_exception();
    }
    // Indices no worker has claimed yet run here: their worker is asleep or cannot get a CPU
    // (the caller may be on it), and waiting for it would cost more than the task.
    for (int w = 1; w < threads; ++w) {
        if (wake_[static_cast<std::size_t>(w)].offer.exchange(0, std::memory_order_acq_rel) == id) run_claimed(w);
    }
    bool shared = false;  // a worker of this region last ran on this CPU
    for (int w = 1; w < threads; ++w) shared = shared || wake_[static_cast<std::size_t>(w)].cpu.load(std::memory_order_relaxed) == cpu;
    for (int left = pending_.load(std::memory_order_acquire); left != 0;
         left = pending_.load(std::memory_order_acquire)) {
        wait_while_equal(pending_, left, shared ? kHotSpins : -1);
    }
    task_ = nullptr;
    if (own_error) std::rethrow_exception(own_error);
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

std::shared_ptr<ThreadPool> shared_thread_pool(int max_threads) {
    require(max_threads >= 1, "shared_thread_pool: max_threads must be >= 1, got " + std::to_string(max_threads));
    SharedPools& shared = shared_pools();
    std::lock_guard lock(shared.mutex);
    std::weak_ptr<ThreadPool>& slot = shared.pools[max_threads];
    std::shared_ptr<ThreadPool> pool = slot.lock();
    if (!pool) {
        pool = std::make_shared<ThreadPool>(max_threads);
        slot = pool;
    }
    return pool;
}

}  // namespace tune
