// Pieces shared by the CUDA benchmarks: their command line (--budget, --summary, --db,
// --skip-template, then
// Google Benchmark's flags), the tuning session on device 0 (registry, event-timing Measurer,
// store, Tuner), the main() around a benchmark's own shapes (summary JSON, Google Benchmark's
// run), and CUDA-event timing of a kernel for Google Benchmark's manual time.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tune/backends.hpp"
#include "tune/cuda/driver.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/error.hpp"
#include "tune/executor.hpp"
#include "tune/measurer.hpp"
#include "tune/tuner.hpp"

namespace tune::bench {

struct CudaBenchArgs {
    std::size_t budget;
    std::string summary_path, db_path;
    std::vector<std::string> skip;  // templates left out of the session's registry
};

// Reads the benchmark's own flags and hands the rest to Google Benchmark.
inline CudaBenchArgs parse_cuda_bench_args(int argc, char** argv, std::size_t default_budget) {
    CudaBenchArgs a{default_budget, "", "", {}};
    std::vector<char*> rest = {argv[0]};
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--budget") && i + 1 < argc) a.budget = std::stoul(argv[++i]);
        else if (!std::strcmp(argv[i], "--summary") && i + 1 < argc) a.summary_path = argv[++i];
        else if (!std::strcmp(argv[i], "--db") && i + 1 < argc) a.db_path = argv[++i];
        else if (!std::strcmp(argv[i], "--skip-template") && i + 1 < argc) a.skip.push_back(argv[++i]);
        else rest.push_back(argv[i]);
    }
    int bargc = int(rest.size());
    benchmark::Initialize(&bargc, rest.data());
    return a;
}

// Tuning on device 0 into the store at db_path (a temporary file when empty).
struct CudaSession {
    std::size_t budget = 0;  // candidates per tuned problem
    DeviceInfo device;
    TemplateRegistry registry;
    std::unique_ptr<Measurer> measurer;
    std::unique_ptr<LocalExecutor> executor;
    std::unique_ptr<SqliteDatabase> db;
    std::unique_ptr<Tuner> tuner;

    // The tuner's pick for p on the CUDA templates, measuring at most `budget` candidates.
    TuneResult tune(const Problem& p) const {
        TuneOptions opt;
        opt.budget = budget;
        opt.backend = Backend::cuda;
        return tuner->tune(p, opt);
    }
};

// Null, after printing why, when there is no CUDA device.
inline std::unique_ptr<CudaSession> start_cuda_session(const std::string& name, std::size_t budget, std::string db_path,
                                                       const std::vector<std::string>& skip = {}) {
    auto s = std::make_unique<CudaSession>();
    s->budget = budget;
    try {
        s->device = detect_device(Backend::cuda);
    } catch (const std::exception& e) {
        std::printf("skipped: %s\n", e.what());
        return nullptr;
    }
    std::printf("device: %s\n", s->device.summary().c_str());
    s->registry = builtin_registry(s->device);
    for (const auto& t : skip)
        if (!s->registry.remove(t)) throw Error("--skip-template: no template '" + t + "' on this device");
    MeasureOptions mo;
    mo.pin_cpu = -1;
    mo.max_time_s = 0.5;
    s->measurer = std::make_unique<Measurer>(s->device, mo, make_accelerator(s->device));
    s->executor = std::make_unique<LocalExecutor>(*s->measurer, 8);  // NVRTC compiles ahead of the device
    if (db_path.empty()) db_path = (std::filesystem::temp_directory_path() / (name + ".sqlite")).string();
    s->db = std::make_unique<SqliteDatabase>(db_path);
    const std::int64_t run_id = s->db->start_run({0, name, "annealing", 0, "", ""}, s->device);
    s->tuner = std::make_unique<Tuner>(*s->db, s->registry, *s->executor, run_id);
    return s;
}

// A benchmark's main(): reads the flags, starts the session (exits 0 without a device), lets
// `body` tune its shapes, add them to summary["shapes"] and register their timings, writes the
// summary (--summary) and runs the registered benchmarks.
inline int run_cuda_bench(int argc, char** argv, const std::string& name, std::size_t default_budget,
                          const std::function<void(CudaSession&, nlohmann::json& summary)>& body) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress survives the run being stopped
    const CudaBenchArgs args = parse_cuda_bench_args(argc, argv, default_budget);
    auto session = start_cuda_session(name, args.budget, args.db_path, args.skip);
    if (!session) return 0;
    nlohmann::json summary = {{"device", session->device}, {"budget", args.budget}, {"shapes", nlohmann::json::array()}};
    body(*session, summary);
    if (!args.summary_path.empty()) std::ofstream(args.summary_path) << summary.dump(2) << "\n";
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

// Registers a benchmark that reports the device time it sets (time_on_device).
inline void register_device_timed(const std::string& name, std::function<void(benchmark::State&)> fn) {
    benchmark::RegisterBenchmark(name.c_str(), std::move(fn))->UseManualTime();
}

// Times kernel.run(args) with CUDA events around each call (after one warm-up call).
inline void time_on_device(benchmark::State& state, const Kernel& kernel, const OpArgs& args) {
    auto rt = cuda::shared_runtime();
    cuda::Event start, stop;
    const CUstream s = rt->stream().get();
    kernel.run(args);
    for (auto _ : state) {
        start.record(s);
        kernel.run(args);
        stop.record(s);
        state.SetIterationTime(stop.seconds_since(start));
    }
}

}  // namespace tune::bench
