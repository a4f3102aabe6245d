// ThreadPool: in a forked child (which has none of the parent's worker threads) the pool starts
// its own instead of waiting for workers that do not exist; workers float over the process's
// CPUs unless pinned, also when a pinned thread starts them.
#include <signal.h>
#include <sys/wait.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

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

// One region of `threads` threads; true when every index ran once and index 1 ran on
// another thread than the caller (a worker, not an inline fallback).
bool region_uses_workers(ThreadPool& pool, int threads) {
    std::vector<int> hits(static_cast<std::size_t>(threads), 0);
    std::thread::id worker;
    pool.parallel_for(threads, [&](int t) {
        ++hits[static_cast<std::size_t>(t)];
        if (t == 1) worker = std::this_thread::get_id();
    });
    for (int h : hits)
        if (h != 1) return false;
    return worker != std::this_thread::get_id();
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
        int count = -1;
        pool.parallel_for(2, [&](int t) {
            cpu_set_t mine;
            if (t == 1 && ::pthread_getaffinity_np(::pthread_self(), sizeof mine, &mine) == 0) count = CPU_COUNT(&mine);
        });
        return count;
    };
    const int floating = worker_cpus(false), pinned = worker_cpus(true);
    ::pthread_setaffinity_np(::pthread_self(), sizeof saved, &saved);
    CHECK(floating == cpus);
    CHECK(pinned == 1);
}
