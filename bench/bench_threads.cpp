// Threads around a call:
//   own_after_*  an own cpu.gemm.blocked GEMM timed `delay_ms` after a call of another template
//                on the same cores (oneDNN: OpenMP workers spin before they sleep; OpenBLAS: its
//                pthreads spin), and after an own call as the baseline: what
//                TemplateInfo::settle_s holds, and what a runtime interleaving libraries pays.
//                The other call and the pause are untimed; only the own GEMM is.
//   pool_region  back-to-back regions of a 2-thread ThreadPool from this (unpinned) thread, each
//                index busy for work_us (0 or 5 us), workers floating or pinned to one CPU each
//                (the default): median and p90 of the region times, and the share of regions
//                whose index 1 ran on the worker (else the caller ran it after its own). A
//                pinned worker shares its CPU with a caller the OS runs there.
//   first_measure  what Measurer::measure reports for a 2-thread oneDNN GEMM (16 x 512 x 512)
//                on a new problem in process, right after the same measurement in a worker
//                (the fork stops OpenBLAS's threads; the new workload's reference starts new
//                ones, which spin): the iteration time is that reported median, `spiked` the
//                share of reports above 4x the run's smallest. settle_ms: the Measurer's
//                reference_settle_s.
//   bench_threads [--benchmark_filter=onednn] [--benchmark_repetitions=3]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "bench_common.hpp"
#include "tune/measurer.hpp"
#include "tune/openblas_env.hpp"
#include "tune/thread_pool.hpp"

namespace {

using namespace tune;
using namespace tune::bench;

// A prefill-sized layer GEMM (Llama-3-8B qkv_proj at 64 tokens), all cores.
Problem problem() { return make_gemm(64, 6144, 4096, DType::f32, false, true); }

void own_after(benchmark::State& state, const Template& before) {
    const Problem p = problem();
    const int threads = host().cores;
    const auto own = own_gemm().instantiate(p, with_threads(own_gemm(), p, threads));
    const auto other = before.instantiate(p, with_threads(before, p, threads));
    Operands o(p);
    const auto delay = std::chrono::milliseconds(state.range(0));
    own->run(o.args());
    other->run(o.args());
    for (auto _ : state) {
        state.PauseTiming();
        other->run(o.args());
        std::this_thread::sleep_for(delay);
        state.ResumeTiming();
        own->run(o.args());
    }
    set_gflops(state, p);
    settle(before);
}

// Holds the calling thread for `us` microseconds: a task of known length.
void busy_for(double us) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double, std::micro>(us);
    while (std::chrono::steady_clock::now() < until) {
    }
}

void pool_region(benchmark::State& state) {
    ThreadPool pool(2, state.range(0) != 0);
    const double work_us = double(state.range(1));
    std::vector<double> us;
    const auto caller = std::this_thread::get_id();
    std::size_t on_worker = 0;
    const std::function<void(int)> task = [&](int t) {
        busy_for(work_us);
        if (t == 1 && std::this_thread::get_id() != caller) ++on_worker;
    };
    for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.parallel_for(2, task);
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(us.begin(), us.end());
    state.counters["median_us"] = us[us.size() / 2];
    state.counters["p90_us"] = us[us.size() * 9 / 10];
    state.counters["on_worker"] = double(on_worker) / double(us.size());  // index 1 ran on the worker
}

void first_measure(benchmark::State& state) {
    const Problem p = make_gemm(16, 512, 512, DType::f32, false, true);
    const Config c = with_threads(onednn_gemm(), p, 2);
    MeasureOptions o;
    o.reference_settle_s = double(state.range(0)) * 1e-3;
    std::vector<double> medians;
    for (auto _ : state) {
        {
            MeasureOptions isolated = o;
            isolated.isolate = true;
            Measurer worker(host(), isolated);
            worker.measure(p, onednn_gemm(), c);
        }
        Measurer m(host(), o);  // a new workload: its reference runs on OpenBLAS
        const Measurement r = m.measure(p, onednn_gemm(), c);
        if (r.status != Status::ok) state.SkipWithError(r.reason.c_str());
        medians.push_back(r.stats.median_s);
        state.SetIterationTime(r.stats.median_s);
    }
    const double least = *std::min_element(medians.begin(), medians.end());
    state.counters["spiked"] =
        double(std::count_if(medians.begin(), medians.end(), [&](double t) { return t > 4 * least; })) /
        double(medians.size());
}

void register_all() {
    if (host().cores >= 2)
        benchmark::RegisterBenchmark("pool_region", pool_region)
            ->ArgNames({"pinned", "work_us"})
            ->ArgsProduct({{0, 1}, {0, 5}})
            ->Iterations(2000);
    if (host().cores >= 2 && onednn_gemm().supports(make_gemm(16, 512, 512, DType::f32, false, true)))
        benchmark::RegisterBenchmark("first_measure", first_measure)
            ->ArgName("settle_ms")
            ->Arg(0)
            ->Arg(150)
            ->Unit(benchmark::kMicrosecond)
            ->UseManualTime()
            ->Iterations(24);
    for (const Template* t : {&own_gemm(), &onednn_gemm(), &openblas_gemm()}) {
        if (!t->supports(problem())) continue;
        const std::string name = "own_after_" + t->info().name.substr(t->info().name.rfind('.') + 1);
        auto* b = benchmark::RegisterBenchmark(name.c_str(), [t](benchmark::State& s) { own_after(s, *t); });
        for (int ms : {0, 2, 5, 10, 20, 50, 200}) b->Arg(ms);
        b->ArgName("delay_ms")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(20);
    }
}

}  // namespace

int main(int argc, char** argv) {
    tune::use_best_openblas_core(argv);
    benchmark::Initialize(&argc, argv);
    register_all();
    std::printf("device: %s\n", host().summary().c_str());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
