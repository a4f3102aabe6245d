// ThreadPool: in a forked child (which has none of the parent's worker threads) the pool starts
// its own instead of waiting for workers that do not exist; workers float over the process's
// CPUs unless pinned, also when a pinned thread starts them; an index whose worker cannot run
// runs on the caller, and every index runs exactly once however regions and wake-ups
// interleave; the shared pool is one per size while anyone holds it; LIBTUNE_NUM_THREADS caps
// the device's cores, and with them every CPU template's thread knob.
#include <signal.h>
#include <sys/wait.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <atomic>
#include <chrono>
#include <ctime>
#include <random>
#include <stdexcept>
#include <optional>
#include <thread>
#include <vector>

#include "tune/device.hpp"
#include "tune/error.hpp"
#include "tune/problem.hpp"
#include "tune/kernel.hpp"
#include "tune/space.hpp"
#include "tune/thread_pool.hpp"

using namespace tune;

namespace {

// Exit code of `pid`, or -1 when it has not exited within `limit` (it is then killed).
int wait_or_kill(pid_t pid, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Yields until done() holds or 10 s have passed; returns done().
template <class Done>
bool wait_for(Done&& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    return done();
}

// One region of `threads` threads; true when every index ran once and index 1 ran on
// another thread than the caller (a worker). The caller runs an index itself when its worker
// has not started it by the end of task 0, so task 0 gives the workers up to 10 s first.
bool region_uses_workers(ThreadPool& pool, int threads) {
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(threads));
    std::atomic<int> started{0};
    std::thread::id worker;
    pool.parallel_for(threads, [&](int t) {
        ++hits[static_cast<std::size_t>(t)];
        if (t == 1) worker = std::this_thread::get_id();
        if (t != 0) {
            ++started;
            return;
        }
        wait_for([&] { return started.load() == threads - 1; });
    });
    for (const auto& h : hits)
        if (h.load() != 1) return false;
    return worker != std::this_thread::get_id();
}

// One 2-thread region whose index 1 runs at_worker() on the worker: task 0 waits (up to 10 s)
// for it, so the caller does not take index 1 itself.
template <class AtWorker>
void on_worker(ThreadPool& pool, AtWorker&& at_worker) {
    std::atomic<bool> done{false};
    pool.parallel_for(2, [&](int t) {
        if (t == 0) {
            wait_for([&] { return done.load(); });
            return;
        }
        at_worker();
        done.store(true);
    });
}

// Holds a thread inside a signal handler until released: a worker that cannot run, as when
// the OS gives its CPU to the caller or it is slow to wake.
std::atomic<bool> hold_in_handler{false};
std::atomic<bool> in_handler{false};

void holding_handler(int) {
    in_handler.store(true);
    const timespec nap{0, 1000000};
    while (hold_in_handler.load()) ::nanosleep(&nap, nullptr);
    in_handler.store(false);
}

}  // namespace

TEST_CASE("a thread pool started before fork() works in the child and in the parent", "[core][fork]") {
    std::optional<ThreadPool> pool;
    pool.emplace(3, false);
    REQUIRE(region_uses_workers(*pool, 3));  // the parent's workers exist now

    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // No Catch2 in the child: the exit code is the verdict. A hang is caught by the parent.
        int code = 0;
        for (int rep = 0; rep < 50 && code == 0; ++rep)
            if (!region_uses_workers(*pool, 3) || !region_uses_workers(*pool, 2)) code = 3;
        pool.reset();  // the destructor must neither wait for the parent's threads nor terminate
        ::_exit(code);
    }
    CHECK(wait_or_kill(child, std::chrono::seconds(20)) == 0);  // -1: hung, as before the fix
    CHECK(region_uses_workers(*pool, 3));                       // the parent's pool is untouched

    // A grandchild of a child that used the pool restarts again.
    child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        if (!region_uses_workers(*pool, 3)) ::_exit(3);
        pid_t grandchild = ::fork();
        if (grandchild == 0) ::_exit(region_uses_workers(*pool, 3) ? 0 : 3);
        ::_exit(wait_or_kill(grandchild, std::chrono::seconds(10)) == 0 ? 0 : 4);
    }
    CHECK(wait_or_kill(child, std::chrono::seconds(20)) == 0);
}

TEST_CASE("fork() while another thread is inside a region leaves the child a usable pool", "[core][fork]") {
    ThreadPool pool(2, false);
    REQUIRE(region_uses_workers(pool, 2));
    std::atomic<bool> inside{false}, stop{false};
    std::thread busy([&] {
        while (!stop.load()) {
            pool.parallel_for(2, [&](int t) {
                if (t != 0) return;
                inside.store(true);
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                inside.store(false);
            });
        }
    });
    REQUIRE(wait_for([&] { return inside.load(); }));  // the other thread holds the pool's region now
    // Before fork() waited for regions in flight, the child inherited that region's lock held
    // by a thread it does not have, and its first region waited forever (killed here: -1).
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(region_uses_workers(pool, 2) ? 0 : 3);
    const int code = wait_or_kill(child, std::chrono::seconds(20));
    stop.store(true);
    busy.join();
    CHECK(code == 0);
    CHECK(region_uses_workers(pool, 2));  // and the parent's pool goes on
}

TEST_CASE("workers run on the whole process mask unless pinned, even when started by a pinned thread", "[core]") {
    cpu_set_t process;
    REQUIRE(::sched_getaffinity(0, sizeof process, &process) == 0);
    const int cpus = CPU_COUNT(&process);
    cpu_set_t saved;
    REQUIRE(::pthread_getaffinity_np(::pthread_self(), sizeof saved, &saved) == 0);
    // The caller pinned to one CPU, as the Measurer pins its thread while timing.
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &process)) {
            CPU_SET(cpu, &one);
            break;
        }
    REQUIRE(::pthread_setaffinity_np(::pthread_self(), sizeof one, &one) == 0);
    auto worker_cpus = [](bool pin) {
        ThreadPool pool(2, pin);
        REQUIRE(region_uses_workers(pool, 2));  // started, and index 1 runs on the worker
        int count = -1;
        on_worker(pool, [&] {
            cpu_set_t mine;
            if (::pthread_getaffinity_np(::pthread_self(), sizeof mine, &mine) == 0) count = CPU_COUNT(&mine);
        });
        return count;
    };
    const int floating = worker_cpus(false), pinned = worker_cpus(true);
    ::pthread_setaffinity_np(::pthread_self(), sizeof saved, &saved);
    CHECK(floating == cpus);
    CHECK(pinned == 1);
}

TEST_CASE("an index whose worker cannot run runs once on the caller", "[core]") {
    ThreadPool pool(2, false);
    pthread_t worker = ::pthread_self();
    on_worker(pool, [&] { worker = ::pthread_self(); });
    REQUIRE_FALSE(pthread_equal(worker, ::pthread_self()));

    struct sigaction action {}, saved {};
    action.sa_handler = holding_handler;
    ::sigemptyset(&action.sa_mask);
    REQUIRE(::sigaction(SIGUSR1, &action, &saved) == 0);
    hold_in_handler.store(true);
    REQUIRE(::pthread_kill(worker, SIGUSR1) == 0);
    REQUIRE(wait_for([] { return in_handler.load(); }));
    // Before the caller took unclaimed indices, the first region waited for the worker for as
    // long as it was held: the watchdog lets it go after 10 s, and then index 1 would have
    // run on the worker.
    std::thread watchdog([] {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (hold_in_handler.load() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        hold_in_handler.store(false);
    });

    int on_caller = 0, runs = 0;
    for (int region = 0; region < 200; ++region) {
        int hits[2] = {0, 0};
        bool caller = false;
        pool.parallel_for(2, [&](int t) {
            ++hits[t];
            if (t == 1) caller = pthread_equal(::pthread_self(), worker) == 0;
        });
        runs += hits[0] == 1 && hits[1] == 1;
        on_caller += caller;
    }
    // A task that throws on the caller's behalf still reaches the caller.
    bool threw = false;
    try {
        pool.parallel_for(2, [](int t) {
            if (t == 1) throw std::runtime_error("index 1 failed");
        });
    } catch (const std::runtime_error& e) {
        threw = std::string(e.what()) == "index 1 failed";
    }
    hold_in_handler.store(false);
    watchdog.join();
    wait_for([] { return !in_handler.load(); });
    ::sigaction(SIGUSR1, &saved, nullptr);

    CHECK(runs == 200);
    CHECK(on_caller == 200);
    CHECK(threw);
    // The worker, back after 201 wake-ups whose offers were all taken, serves regions again.
    CHECK(region_uses_workers(pool, 2));
}

TEST_CASE("every index runs exactly once however regions and wake-ups interleave", "[core]") {
    ThreadPool pool(4, false);
    std::mt19937 rng(7);
    int bad = 0;
    for (int region = 0; region < 20000; ++region) {
        const int threads = 1 + int(rng() % 4);
        // Mostly back to back; now and then a pause long enough for the workers to fall asleep,
        // and uneven task lengths, so both the workers and the caller claim indices.
        if (rng() % 50 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
        const int spin = int(rng() % 2000);
        std::vector<std::atomic<int>> hits(4);
        pool.parallel_for(threads, [&](int t) {
            ++hits[static_cast<std::size_t>(t)];
            volatile int sink = 0;
            for (int i = 0; i < spin * (t + 1); ++i) sink = sink + i;
        });
        for (int t = 0; t < 4; ++t) bad += hits[static_cast<std::size_t>(t)].load() != (t < threads ? 1 : 0);
    }
    CHECK(bad == 0);
}

TEST_CASE("the shared pool is one per size while anyone holds it", "[core]") {
    auto a = shared_thread_pool(2), b = shared_thread_pool(2), c = shared_thread_pool(3);
    CHECK(a.get() == b.get());
    CHECK(a.get() != c.get());
    CHECK(a->max_threads() == 2);
    CHECK(c->max_threads() == 3);
    CHECK(region_uses_workers(*a, 2));
    CHECK_THROWS_WITH(shared_thread_pool(0), Catch::Contains("max_threads must be >= 1"));
    const std::weak_ptr<ThreadPool> gone = c;
    c.reset();
    CHECK(gone.expired());  // the registry holds no pool alive by itself
    auto d = shared_thread_pool(3);
    CHECK(d->max_threads() == 3);
}

TEST_CASE("LIBTUNE_NUM_THREADS caps the device's cores and every CPU thread knob", "[core]") {
    REQUIRE(std::getenv("LIBTUNE_NUM_THREADS") == nullptr);
    const DeviceInfo all = detect_cpu();
    struct Restore {
        ~Restore() { ::unsetenv("LIBTUNE_NUM_THREADS"); }
    } restore;

    ::setenv("LIBTUNE_NUM_THREADS", "1", 1);
    const DeviceInfo one = detect_cpu();
    CHECK(one.cores == 1);
    if (all.cores > 1) CHECK(one.id() != all.id());  // its own store keys
    // No CPU template offers more threads than the cap, for a GEMM, a SwiGLU or attention.
    const auto registry = builtin_registry(one);
    int thread_knobs = 0;
    for (const Problem& p : {make_gemm(64, 256, 128), make_swiglu(16, 128, 64), make_attention(1, 4, 2, 64, 64, 64, true)})
        for (const Template* t : registry.for_problem(p, Backend::cpu))
            for (const Knob& k : t->space(p)->knobs())
                if (k.name == "threads") {
                    ++thread_knobs;
                    CHECK(k.values.size() == 1);
                    CHECK(std::get<std::int64_t>(k.values.front()) == 1);
                }
    CHECK(thread_knobs >= 4);

    ::setenv("LIBTUNE_NUM_THREADS", std::to_string(all.cores).c_str(), 1);
    CHECK(detect_cpu() == all);
    for (const std::string& bad : std::vector<std::string>{"0", "-1", "two", "1.5", " 1", std::to_string(all.cores + 1), "99999999999"}) {
        ::setenv("LIBTUNE_NUM_THREADS", bad.c_str(), 1);
        CHECK_THROWS_WITH(detect_cpu(), Catch::Contains("LIBTUNE_NUM_THREADS='" + bad + "'") &&
                                            Catch::Contains("from 1 to " + std::to_string(all.cores)));
    }
    ::setenv("LIBTUNE_NUM_THREADS", "", 1);  // empty: not set
    CHECK(detect_cpu() == all);
}
