// 2000 back-to-back 2-thread regions of a ThreadPool (workers pinned, the default) from an
// unpinned caller, each index busy for WORK us: median, p10, p90 region time and the share
// of regions whose index 1 ran on the worker.
//   g++ -O2 -std=c++20 -Ilibtune/include region_work.cpp build/libtune.a -lopenblas -lpthread
#include <sched.h>
#include <tune/thread_pool.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>
int main(int argc, char** argv) {
    const double work = argc > 1 ? std::atof(argv[1]) : 5.0;
    tune::ThreadPool pool(2);
    const auto caller = std::this_thread::get_id();
    int on_worker = 0;
    std::function<void(int)> task = [&](int t) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double, std::micro>(work);
        while (std::chrono::steady_clock::now() < until) {
        }
        if (t == 1 && std::this_thread::get_id() != caller) ++on_worker;
    };
    std::vector<double> v;
    int shared = 0;  // regions that ended with the caller on CPU 1, worker 1's CPU
    for (int i = 0; i < 2000; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        pool.parallel_for(2, task);
        v.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e6);
        shared += sched_getcpu() == 1;
    }
    std::sort(v.begin(), v.end());
    std::printf("work %.0f us: median %.2f us, p10 %.2f, p90 %.2f, index 1 on the worker in %.1f%%, caller on the worker's CPU in %.1f%%\n", work,
                v[1000], v[200], v[1800], 100.0 * on_worker / 2000, 100.0 * shared / 2000);
}
