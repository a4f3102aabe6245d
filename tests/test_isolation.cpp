// Isolated measurement: candidates that segfault, execute an illegal instruction, abort,
// hang or allocate without bound end only their worker process; the tuner records why and
// still selects a correct best.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include "fast_measure.hpp"
#include "fake_template.hpp"
#include "hostile_template.hpp"
#include "process_threads.hpp"
#include "tune/db/database.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/measurer.hpp"
#include "tune/tuner.hpp"

using namespace tune;
namespace fs = std::filesystem;

namespace {

MeasureOptions isolated_options() {
    MeasureOptions o = test::fast_measure_options();
    o.max_time_s = 0.01;
    o.isolate = true;
    o.timeout_s = 1.0;
    o.memory_limit_bytes = std::int64_t{256} << 20;
    return o;
}

Config mode(const std::string& name) { return Config::parse("mode=" + name); }

}  // namespace

TEST_CASE("an isolated measurer survives crashing, hanging and hoarding candidates", "[isolation]") {
    testing::HostileGemmTemplate t;
    Measurer m(detect_cpu(), isolated_options());
    Problem p = make_gemm(6, 5, 7, DType::f32, false, true);

    auto good = m.measure(p, t, mode("good"));
    REQUIRE(good.status == Status::ok);
    CHECK(good.stats.median_s > 0);
    CHECK(good.template_name == "test.gemm.hostile");
    CHECK(m.worker_starts() == 1);

    auto segv = m.measure(p, t, mode("segv"));
    CHECK(segv.status == Status::crashed);
    CHECK_THAT(segv.reason, Catch::Contains("SIGSEGV"));
    CHECK(segv.problem == p);
    CHECK(segv.config == mode("segv"));
    CHECK(segv.device_id == m.device().id());

    auto sigill = m.measure(p, t, mode("sigill"));
    CHECK(sigill.status == Status::crashed);
    CHECK_THAT(sigill.reason, Catch::Contains("SIGILL"));

    auto aborted = m.measure(p, t, mode("abort"));
    CHECK(aborted.status == Status::crashed);
    CHECK_THAT(aborted.reason, Catch::Contains("SIGABRT"));

    auto start = std::chrono::steady_clock::now();
    auto hang = m.measure(p, t, mode("hang"));
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(hang.status == Status::timeout);
    CHECK_THAT(hang.reason, Catch::Contains("longer than 1 s"));
    CHECK(waited < 5);

    auto oom = m.measure(p, t, mode("oom"));
    CHECK((oom.status == Status::failed || oom.status == Status::crashed));
    CHECK_THAT(oom.reason, Catch::Contains("out of memory"));

    auto wrong = m.measure(p, t, mode("wrong"));
    CHECK(wrong.status == Status::wrong_result);
    CHECK_THAT(wrong.reason, Catch::Contains("exceeds tolerance"));

    auto again = m.measure(p, t, mode("good"));
    CHECK(again.status == Status::ok);
    // One worker at the start, a fresh one after each of the 3 crashes, the killed hang and
    // the failed hoarder; wrong results keep their worker.
    CHECK(m.worker_starts() == 6);
}

TEST_CASE("a correct kernel slower than the timing cap is timed to the end, in a worker as in process", "[isolation]") {
    // Each call is within the per-call limit, but the protocol's warm-up and min_reps samples
    // (5 calls, 0.75 s) outlast max_time_s plus two calls' worth: the worker's limit must not
    // call that a timeout when the same candidate is ok in process.
    testing::FakeGemmTemplate slow;
    slow.call_s = 0.15;
    MeasureOptions isolated = isolated_options();
    isolated.timeout_s = 0.25;
    MeasureOptions in_process = isolated;
    in_process.isolate = false;
    const Problem p = make_gemm(4, 4, 4);
    for (const MeasureOptions& o : {in_process, isolated}) {
        Measurer m(detect_cpu(), o);
        const Measurement r = m.measure(p, slow, slow.space(p)->default_config());
        INFO("isolate " << o.isolate << ": " << r.reason);
        CHECK(r.status == Status::ok);
        CHECK(r.stats.median_s >= 0.15);
    }
}

TEST_CASE("a template created where a destroyed one lived is measured by a worker that sees it", "[isolation]") {
    // The worker is a fork: it holds the templates that existed then, at their addresses. A
    // template destroyed in the parent and another created at the same address (a registry
    // rebuilt between runs) is not the one a worker knows there.
    Measurer m(detect_cpu(), isolated_options());
    const Problem p = make_gemm(4, 4, 4);
    alignas(testing::FakeGemmTemplate) unsigned char storage[sizeof(testing::FakeGemmTemplate)];
    auto* slot = reinterpret_cast<testing::FakeGemmTemplate*>(storage);
    auto measure = [&](const Template& t) {
        const Measurement r = m.measure(p, t, t.space(p)->default_config());
        INFO(r.reason);
        CHECK(r.status == Status::ok);
        CHECK(r.template_name == t.info().name);
    };
    std::construct_at(slot, "test.gemm.first");
    measure(*slot);
    REQUIRE(m.worker_starts() == 1);
    // Destroyed after the fork: the worker's copy is intact but another template (it answered
    // "failed: template changed").
    std::destroy_at(slot);
    std::construct_at(slot, "test.gemm.second");
    measure(*slot);
    CHECK(m.worker_starts() == 2);
    measure(*slot);  // the new worker holds it: no fork
    CHECK(m.worker_starts() == 2);
    // Destroyed before the next fork: that worker holds freed memory there (scribbled over
    // here, as an allocator may), and a template created there later must not be sent to it.
    testing::FakeGemmTemplate other("test.gemm.other");
    std::destroy_at(slot);
    std::memset(storage, 0xa5, sizeof storage);
    measure(other);
    REQUIRE(m.worker_starts() == 3);
    std::construct_at(slot, "test.gemm.second");
    measure(*slot);
    CHECK(m.worker_starts() == 4);
    std::destroy_at(slot);
}

TEST_CASE("after a template whose threads linger the measurer waits them out, and only after a run",
          "[isolation]") {
    // settle_s stands for OpenBLAS's spinning workers: the next candidate must not be timed
    // while they hold the cores, whether candidates run here or in a worker.
    testing::FakeGemmTemplate lingering("test.gemm.lingering", "v1", true, 0.3);
    Problem p = make_gemm(5, 7, 9, DType::f32, false, true);
    MeasureOptions in_process = isolated_options();
    in_process.isolate = false;
    Measurer local(detect_cpu(), in_process), isolated(detect_cpu(), isolated_options());
    for (Measurer* m : {&local, &isolated}) {
        auto seconds = [&](const Config& c) {
            const auto start = std::chrono::steady_clock::now();
            CHECK(m->measure(p, lingering, c).status != Status::crashed);
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        };
        CHECK(seconds(Config::parse("mode=good tile=1 unroll=1")) >= 0.3);
        CHECK(seconds(Config::parse("mode=wrong tile=1 unroll=1")) >= 0.3);  // a wrong result ran all the same
        // An invalid config runs nothing: no wait (2 s would be a wait, not load).
        testing::FakeGemmTemplate slow("test.gemm.lingering", "v1", true, 5.0);
        const auto start = std::chrono::steady_clock::now();
        CHECK(m->measure(p, slow, Config::parse("mode=wrong tile=1 unroll=2")).status == Status::invalid);
        CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 2.0);
    }
}

TEST_CASE("isolated and in-process measurement agree on status", "[isolation]") {
    testing::FakeGemmTemplate t;
    MeasureOptions in_process = isolated_options();
    in_process.isolate = false;
    Measurer local(detect_cpu(), in_process), isolated(detect_cpu(), isolated_options());
    Problem p = make_gemm(5, 7, 9, DType::f32, false, true);
    for (const char* text : {"mode=good tile=1 unroll=1", "mode=wrong tile=1 unroll=1",
                             "mode=throws tile=1 unroll=1", "mode=wrong tile=1 unroll=2", "mode=good tile=4 unroll=2"}) {
        Config c = Config::parse(text);
        auto a = local.measure(p, t, c), b = isolated.measure(p, t, c);
        INFO(text << ": " << b.reason);
        CHECK(a.status == b.status);
        CHECK(a.reason == b.reason);
        CHECK(a.workspace_bytes == b.workspace_bytes);
    }
    // ok, wrong and invalid results keep the worker; the throwing build retired one.
    CHECK(isolated.worker_starts() == 2);
}

TEST_CASE("a tuning run with hostile candidates completes and picks a correct best", "[isolation]") {
    auto path = fs::temp_directory_path() / ("libtune_isolation_" + std::to_string(::getpid()) + ".sqlite");
    auto cleanup = [&] {
        for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
    };
    cleanup();
    TemplateRegistry registry;
    registry.add(std::make_unique<testing::HostileGemmTemplate>());
    Problem p = make_gemm(8, 6, 5, DType::f32, false, false);
    DeviceInfo device = detect_cpu();
    TuneOptions options;
    options.budget = 8;
    options.strategy = "exhaustive";
    {
        SqliteDatabase db(path);
        Measurer measurer(device, isolated_options());
        Tuner tuner(db, registry, measurer, db.start_run({0, "isolation test", "exhaustive", 0, "", ""}, device));
        TuneResult r = tuner.tune(p, options);
        CHECK(r.measured == 8);
        CHECK(r.failed == 6);
        REQUIRE(r.best);
        CHECK(r.best->config == mode("good"));  // faster than "slow", and correct
        auto rows = db.query({shape_key(p), device.id(), "test.gemm.hostile", "v1", std::nullopt});
        REQUIRE(rows.size() == 8);
        std::map<std::string, Measurement> by_mode;
        for (auto& row : rows) by_mode[row.config.get_str("mode")] = row;
        CHECK(by_mode["segv"].status == Status::crashed);
        CHECK_THAT(by_mode["segv"].reason, Catch::Contains("SIGSEGV"));
        CHECK(by_mode["sigill"].status == Status::crashed);
        CHECK_THAT(by_mode["sigill"].reason, Catch::Contains("SIGILL"));
        CHECK(by_mode["abort"].status == Status::crashed);
        CHECK(by_mode["hang"].status == Status::timeout);
        CHECK_THAT(by_mode["oom"].reason, Catch::Contains("out of memory"));
        CHECK(by_mode["wrong"].status == Status::wrong_result);
        CHECK(by_mode["slow"].status == Status::ok);
        auto best = db.best({shape_key(p), device.id(), "test.gemm.hostile", "v1", std::nullopt});
        REQUIRE(best.size() == 1);
        CHECK(best[0].config == mode("good"));
    }
    {
        // Resuming measures nothing again: the crashed and hung candidates are not re-run.
        SqliteDatabase db(path);
        Measurer measurer(device, isolated_options());
        Tuner tuner(db, registry, measurer, db.start_run({0, "isolation test", "exhaustive", 0, "", ""}, device));
        TuneResult r = tuner.tune(p, options);
        CHECK(r.measured == 0);
        CHECK(r.reused == 8);
        CHECK(measurer.worker_starts() == 0);
    }
    cleanup();
}

TEST_CASE("a persistent worker adds little per candidate", "[isolation][overhead]") {
    testing::FakeGemmTemplate t;
    MeasureOptions o = isolated_options();
    o.warmup_s = 1e-4;
    o.max_time_s = 1e-3;
    o.min_reps = 1;
    o.max_reps = 1;
    o.min_sample_s = 1e-6;
    Problem p = make_gemm(4, 4, 4, DType::f32, false, false);
    Config c = Config::parse("mode=good tile=1 unroll=1");
    auto per_candidate = [&](bool isolate) {
        o.isolate = isolate;
        Measurer m(detect_cpu(), o);
        m.measure(p, t, c);  // first: fork + operands
        const int n = 200;
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i) REQUIRE(m.measure(p, t, c).status == Status::ok);
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / n;
    };
    double local = per_candidate(false), isolated = per_candidate(true);
    std::cout << "isolation overhead per candidate: " << (isolated - local) * 1e6 << " us (in-process "
              << local * 1e6 << " us, worker " << isolated * 1e6 << " us)\n";
    CHECK(isolated - local < 5e-3);
}

// A worker forked while this thread holds an OpenMP pool (oneDNN run in process) would count
// its threads as running and spin too little: the pool ends before the fork.
TEST_CASE("starting a worker ends the forking thread's OpenMP pool", "[isolation]") {
    DeviceInfo device = detect_cpu();
    if (device.cores < 2) return;  // no pool to end
    TemplateRegistry registry = builtin_registry(device);
    const Template* onednn = registry.find("cpu.gemm.onednn");
    REQUIRE(onednn != nullptr);
    Problem p = make_gemm(64, 48, 32);
    Config c = onednn->space(p)->default_config();
    c.set("threads", std::int64_t{2});
    MeasureOptions o = isolated_options();
    o.isolate = false;
    Measurer local(device, o);
    REQUIRE(local.measure(p, *onednn, c).status == Status::ok);  // starts this thread's pool
    testing::FakeGemmTemplate fake;
    const Config plain = Config::parse("mode=good tile=1 unroll=1");
    auto fork_worker = [&] {
        Measurer isolated(device, isolated_options());
        REQUIRE(isolated.measure(make_gemm(6, 5, 7), fake, plain).status == Status::ok);
    };
    // A fork also ends OpenBLAS's threads (its own fork handler): fork once, then run oneDNN
    // again (the same problem: no new reference, so OpenBLAS stays stopped).
    fork_worker();
    REQUIRE(local.measure(p, *onednn, c).status == Status::ok);
    const std::size_t with_pool = testing::process_threads();
    fork_worker();
    CHECK(testing::process_threads() == with_pool - 1);  // the pool's one worker thread
}

TEST_CASE("the built-in templates measure the same in a worker", "[isolation]") {
    DeviceInfo device = detect_cpu();
    TemplateRegistry registry = builtin_registry(device);
    MeasureOptions o = isolated_options();
    Measurer isolated(device, o);
    o.isolate = false;
    Measurer local(device, o);
    Problem p = make_gemm(64, 48, 32, DType::f32, false, true);
    for (const Template* t : registry.for_problem(p, Backend::cpu)) {
        Config c = t->space(p)->default_config();
        INFO(t->info().name << " " << c.text());
        // Twice in the worker: a multi-threaded kernel must also work in a reused worker.
        for (int i = 0; i < 2; ++i) {
            auto m = isolated.measure(p, *t, c);
            INFO(m.reason);
            CHECK(m.status == Status::ok);
        }
    }
    // In-process measurement afterwards still works, and so does a worker forked after the
    // parent ran the templates' thread pools, oneDNN's OpenMP pool included (libgomp has no
    // fork handler: a child whose forking thread ran a parallel region waits for ever in its
    // next one unless it serves from a new thread).
    for (const Template* t : registry.for_problem(p, Backend::cpu))
        CHECK(local.measure(p, *t, t->space(p)->default_config()).status == Status::ok);
    Measurer forked_late(device, isolated_options());
    for (const Template* t : registry.for_problem(p, Backend::cpu)) {
        auto m = forked_late.measure(p, *t, t->space(p)->default_config());
        INFO(t->info().name << ": " << m.reason);
        CHECK(m.status == Status::ok);
    }
}
