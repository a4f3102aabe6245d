// Dispatcher lookup latency: exact hits, unseen shapes answered for the first time (nearest
// tuned shape, validated), and unseen shapes seen before. The store holds the Llama-3-8B
// layer GEMMs at 16 token counts, as a runtime serving that model would. And the cost of
// Dispatcher::run itself: a tiny GEMM through it, beside the same kernel called directly.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>
#include <set>

#include "bench_common.hpp"
#include "tune/c_api.h"
#include "tune/cost_model/training.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/dispatcher.hpp"
#include "tune/error.hpp"
#include "tune/model.hpp"
#include "tune/problem.hpp"

namespace {

// A stored measurement of config c at p taking `seconds`: only what a Dispatcher serves from.
void record_time(tune::Database& db, std::int64_t run, const tune::DeviceInfo& device, const tune::Template& t,
                 const tune::Problem& p, const tune::Config& c, double seconds) {
    tune::Measurement m;
    m.run_id = run;
    m.problem = p;
    m.device_id = device.id();
    m.template_name = t.info().name;
    m.template_version = t.info().version;
    m.config = c;
    m.stats.median_s = m.stats.min_s = m.stats.mean_s = seconds;
    m.stats.count = 5;
    db.record(m);
}

struct Setup {
    std::shared_ptr<tune::TemplateRegistry> registry;
    std::unique_ptr<tune::Database> db;
    std::unique_ptr<tune::Dispatcher> dispatcher, recording, online;
    std::unique_ptr<tune::Database> modelled_db;       // the same entries plus a stored cost model
    std::unique_ptr<tune::Dispatcher> predicting;
    std::vector<tune::Problem> tuned;

    Setup() {
        tune::DeviceInfo device = tune::detect_cpu();
        registry = std::make_shared<tune::TemplateRegistry>(tune::builtin_registry(device));
        db = tune::make_memory_database();
        auto run = db->start_run({0, "bench", "none", 0, "", ""}, device);
        tune::ModelShape llama;
        llama.hidden_size = 4096;
        llama.num_heads = 32;
        llama.num_kv_heads = 8;
        llama.head_dim = 128;
        llama.intermediate_size = 14336;
        llama.gated_mlp = true;
        std::vector<std::int64_t> tokens;
        for (std::int64_t t = 1; t <= 32768; t *= 2) tokens.push_back(t);
        const tune::Template* t = registry->find("cpu.gemm.blocked");
        for (const auto& np : tune::layer_gemms(llama, tokens, tune::DType::f32)) {
            record_time(*db, run, device, *t, np.problem, t->space(np.problem)->default_config(), 1e-3);
            tuned.push_back(np.problem);
        }
        dispatcher = std::make_unique<tune::Dispatcher>(*db, registry, device);
        // A store with a cost model: the same shapes, each with 16 random configs measured as
        // well, so the winners differ from shape to shape and most candidates of an unseen
        // shape were not measured on its neighbours (the model predicts those at load); trees of
        // the usual size (80 rounds, depth 6). Times are synthetic: only the lookup cost counts.
        modelled_db = tune::make_memory_database();
        auto mrun = modelled_db->start_run({0, "bench", "none", 0, "", ""}, device);
        std::vector<tune::Measurement> samples;
        std::mt19937_64 rng(1);
        for (auto m : db->query({})) {
            m.run_id = mrun;
            modelled_db->record(m);
            samples.push_back(m);
            auto space = t->space(m.problem);
            std::set<std::uint64_t> measured{m.config.hash()};
            for (int i = 0; i < 16; ++i) {
                tune::Measurement x = m;
                x.config = *space->sample(rng);
                if (!measured.insert(x.config.hash()).second) continue;
                x.stats.median_s = x.stats.min_s = x.stats.mean_s =
                    1e-3 * (0.5 + 0.1 * double(x.config.get_int("mc") % 7) + double(x.config.get_int("kc")) / 4096);
                modelled_db->record(x);
                samples.push_back(x);
            }
        }
        auto data = tune::cost_model::training_set(samples, [t](const tune::Problem& p) { return t->space(p); }, device);
        auto model = tune::cost_model::GbdtModel::train(data);
        modelled_db->save_model(tune::cost_model::to_stored(*model, t->info().name, device.id(), 0));
        predicting = std::make_unique<tune::Dispatcher>(*modelled_db, registry, device);
        tune::DispatcherOptions record;
        record.record_path = "/dev/null";
        recording = std::make_unique<tune::Dispatcher>(*db, registry, device, record);

        // The same store as a SQLite file, served through the C API.
        std::filesystem::remove(store_path);
        {
            tune::SqliteDatabase file(store_path);
            file.import_rows({0, "bench", "none", 0, "", ""}, {device}, db->query({}));
        }
        if (tune_dispatcher_open(store_path.c_str(), nullptr, &c_dispatcher) != TUNE_OK) throw tune::Error(tune_last_error());
        for (const auto& p : tuned) {
            auto d = tune::gemm_dims(p);
            tune_gemm_desc g = tune_gemm_desc_init(d.m, d.n, d.k);
            g.trans_b = d.trans_b;
            c_tuned.push_back(g);
        }

        // Online tuning and buckets on: misses are counted, hits take the same path.
        tune::DispatcherOptions online_options;
        online_options.online.after_misses = 1000000;
        online_options.online.on_request = [](const tune::Problem&) {};
        online_options.buckets = tune::BucketRules::parse("m:pow2");
        online = std::make_unique<tune::Dispatcher>(*db, registry, device, online_options);
    }
    ~Setup() {
        tune_dispatcher_close(c_dispatcher);
        std::filesystem::remove(store_path);
    }

    std::string store_path = (std::filesystem::temp_directory_path() / "bench_dispatch_c_api.db").string();
    tune_dispatcher* c_dispatcher = nullptr;
    std::vector<tune_gemm_desc> c_tuned;
};

Setup& setup() {
    static Setup s;
    return s;
}

// Exact hits, cycling through every tuned shape.
void lookup_tuned(benchmark::State& state, const tune::Dispatcher& d) {
    auto& s = setup();
    std::size_t i = 0;
    for (auto _ : state) {
        auto sel = d.lookup(s.tuned[i]);
        benchmark::DoNotOptimize(sel);
        i = (i + 1) % s.tuned.size();
    }
}

// Unseen shapes (odd m) asked again and again: answered from the memo of earlier answers.
void lookup_unseen_again(benchmark::State& state, const tune::Dispatcher& d) {
    std::int64_t m = 3;
    for (auto _ : state) {
        auto sel = d.lookup(tune::make_gemm(m, 4096, 4096, tune::DType::f32, false, true));
        benchmark::DoNotOptimize(sel);
        m = m >= 2001 ? 3 : m + 2;
    }
}

void BM_LookupExact(benchmark::State& state) {
    lookup_tuned(state, *setup().dispatcher);
    state.counters["tuned_shapes"] = double(setup().dispatcher->stats().entries);
}
BENCHMARK(BM_LookupExact)->Repetitions(5)->ReportAggregatesOnly(true);

// The same exact hits with record mode on (misses would be counted; hits are not touched).
void BM_LookupExactRecording(benchmark::State& state) { lookup_tuned(state, *setup().recording); }
BENCHMARK(BM_LookupExactRecording)->Repetitions(5)->ReportAggregatesOnly(true);

// The same exact hits with online tuning (miss counting) and shape buckets on.
void BM_LookupExactOnline(benchmark::State& state) { lookup_tuned(state, *setup().online); }
BENCHMARK(BM_LookupExactOnline)->Repetitions(5)->ReportAggregatesOnly(true);

// Unseen shapes asked before, answered by their bucket (m:pow2), misses counted for online tuning.
void BM_LookupUnseenAgainOnline(benchmark::State& state) { lookup_unseen_again(state, *setup().online); }
BENCHMARK(BM_LookupUnseenAgainOnline)->Repetitions(5)->ReportAggregatesOnly(true);

// Unseen shapes asked before, with record mode on: one relaxed atomic increment per lookup.
void BM_LookupUnseenAgainRecording(benchmark::State& state) { lookup_unseen_again(state, *setup().recording); }
BENCHMARK(BM_LookupUnseenAgainRecording)->Repetitions(5)->ReportAggregatesOnly(true);

// Every iteration asks for a shape never asked before: nearest search + config validation.
void BM_LookupUnseenFirstTime(benchmark::State& state) {
    auto& s = setup();
    static std::int64_t next_m = 3;  // odd token counts: never tuned (all tuned m are powers of two)
    for (auto _ : state) {
        auto sel = s.dispatcher->lookup(tune::make_gemm(next_m, 4096, 4096, tune::DType::f32, false, true));
        benchmark::DoNotOptimize(sel);
        next_m += 2;
    }
}
BENCHMARK(BM_LookupUnseenFirstTime)->Iterations(100000)->Repetitions(5)->ReportAggregatesOnly(true);

// The same unseen shapes again: answered from the dispatcher's memo of earlier answers.
void BM_LookupUnseenAgain(benchmark::State& state) { lookup_unseen_again(state, *setup().dispatcher); }
BENCHMARK(BM_LookupUnseenAgain)->Repetitions(5)->ReportAggregatesOnly(true);

// Exact hits through the C API: descriptor checks, the same lookup, and the config text.
void BM_CApiLookupExact(benchmark::State& state) {
    auto& s = setup();
    std::size_t i = 0;
    tune_selection sel;
    for (auto _ : state) {
        if (tune_lookup_gemm(s.c_dispatcher, &s.c_tuned[i], &sel) != TUNE_OK) state.SkipWithError(tune_last_error());
        benchmark::DoNotOptimize(sel);
        i = (i + 1) % s.c_tuned.size();
    }
}
BENCHMARK(BM_CApiLookupExact)->Repetitions(5)->ReportAggregatesOnly(true);

// Unseen shapes with a cost model in the store, first time: the nearest shapes taken in order,
// the candidates (the default and up to 8 neighbours' winners) checked against the shape's
// space, their losses on the 8 nearest shapes gathered (measured or predicted at load) and
// weighed. No model runs at lookup. Memoised afterwards.
void BM_LookupUnseenFirstTimePredicted(benchmark::State& state) {
    auto& s = setup();
    static std::int64_t next_m = 3;
    for (auto _ : state) {
        auto sel = s.predicting->lookup(tune::make_gemm(next_m, 4096, 4096, tune::DType::f32, false, true));
        benchmark::DoNotOptimize(sel);
        next_m += 2;
    }
}
BENCHMARK(BM_LookupUnseenFirstTimePredicted)->Iterations(2000)->Repetitions(3)->ReportAggregatesOnly(true);

// The same predicted unseen shapes again: the memo answers.
void BM_LookupUnseenAgainPredicted(benchmark::State& state) {
    auto& s = setup();
    std::int64_t m = 3;
    for (auto _ : state) {
        auto sel = s.predicting->lookup(tune::make_gemm(m, 4096, 4096, tune::DType::f32, false, true));
        benchmark::DoNotOptimize(sel);
        m = m >= 2001 ? 3 : m + 2;
    }
}
BENCHMARK(BM_LookupUnseenAgainPredicted)->Repetitions(5)->ReportAggregatesOnly(true);

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

// A 1 x 64 x 64 GEMM (one thread) tuned exactly: Dispatcher::run (lookup, kernel cache, call)
// against the kernel it runs, called directly. The difference is what dispatch costs a call.
struct TinyRun {
    tune::Problem p = tune::make_gemm(1, 64, 64, tune::DType::f32, false, true);
    std::unique_ptr<tune::Database> db = tune::make_memory_database();
    std::unique_ptr<tune::Dispatcher> dispatcher;
    std::unique_ptr<tune::Kernel> kernel;
    tune::bench::Operands operands{p};

    TinyRun() {
        const tune::DeviceInfo device = tune::detect_cpu();
        auto& registry = setup().registry;
        const tune::Template* t = registry->find("cpu.gemm.blocked");
        tune::Config config = t->default_config(p);
        config.set("threads", std::int64_t{1});
        config.set("split", std::string("m"));  // what one thread requires
        record_time(*db, db->start_run({0, "bench", "none", 0, "", ""}, device), device, *t, p, config, 1e-6);
        dispatcher = std::make_unique<tune::Dispatcher>(*db, registry, device);
        if (dispatcher->lookup(p).source != tune::LookupSource::exact)
            throw tune::Error("bench: the tiny shape is not served exactly" +
                              (dispatcher->stats().rejections.empty() ? std::string() : ": " + dispatcher->stats().rejections[0]));
        kernel = t->instantiate(p, config);
    }
    tune::OpArgs args() { return operands.args(); }
};

TinyRun& tiny() {
    static TinyRun t;
    return t;
}

void BM_RunTinyDirect(benchmark::State& state) {
    auto& t = tiny();
    for (auto _ : state) {
        t.kernel->run(t.args());
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_RunTinyDirect)->Repetitions(5)->ReportAggregatesOnly(true);

void BM_RunTinyDispatched(benchmark::State& state) {
    auto& t = tiny();
    for (auto _ : state) {
        t.dispatcher->run(t.p, t.args());
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_RunTinyDispatched)->Repetitions(5)->ReportAggregatesOnly(true);
