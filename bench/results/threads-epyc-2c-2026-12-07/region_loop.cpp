// The loop behind region-loop-old-new.txt: 2000 back-to-back empty 2-thread regions of a
// ThreadPool from an unpinned caller; built against libtune.a of the commit before the yields
// (3a11799, "old") and after ("new"):
//   g++ -O2 -std=c++20 -Ilibtune/include region_loop.cpp build/libtune.a -lopenblas -lpthread
// bench_threads pool_region measures the same with Google Benchmark.
#include <tune/thread_pool.hpp>
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>
#include <functional>
int main() {
    tune::ThreadPool pool(2);
    volatile int sink = 0;
    std::function<void(int)> task = [&](int t) { sink = sink + t; };
    std::vector<double> v;
    for (int i = 0; i < 2000; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        pool.parallel_for(2, task);
        v.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e6);
    }
    std::sort(v.begin(), v.end());
    std::printf("median %.2f us, p10 %.2f, p90 %.2f\n", v[1000], v[200], v[1800]);
}
