// Dispatcher: exact, nearest and default lookups; stale and tampered rows are never served.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

#include "fake_template.hpp"
#include "tune/dispatcher.hpp"

using namespace tune;

namespace {

struct Fixture {
    std::unique_ptr<Database> db = make_memory_database();
    std::shared_ptr<TemplateRegistry> registry = std::make_shared<TemplateRegistry>();
    DeviceInfo device = detect_cpu();
    std::int64_t run = 0;

    Fixture() {
        registry->add(std::make_unique<testing::FakeGemmTemplate>());
        run = db->start_run({0, "test", "manual", 0, "", ""}, device);
    }
    void add(const Problem& p, const std::string& config, double seconds, std::string version = "v1",
             Status status = Status::ok, std::string device_id = {}) {
        Measurement m;
        m.run_id = run;
        m.problem = p;
        m.device_id = device_id.empty() ? device.id() : device_id;
        m.template_name = "test.gemm.fake";
        m.template_version = std::move(version);
        m.config = Config::parse(config);
        m.status = status;
        m.stats.median_s = m.stats.min_s = m.stats.mean_s = seconds;
        m.stats.count = 5;
        db->record(m);
    }
    Dispatcher make() const { return Dispatcher(*db, registry, device); }
};

}  // namespace

TEST_CASE("an exact hit returns the fastest verified config for that shape", "[dispatcher]") {
    Fixture f;
    Problem p = make_gemm(256, 512, 128);
    f.add(p, "mode=good tile=2 unroll=1", 2e-3);
    f.add(p, "mode=good tile=3 unroll=1", 1e-3);
    f.add(p, "mode=wrong tile=4 unroll=1", 1e-6, "v1", Status::wrong_result);
    auto d = f.make();
    Selection s = d.lookup(p);
    CHECK(s.source == LookupSource::exact);
    CHECK(s.config->text() == "mode=good tile=3 unroll=1");
    CHECK(s.tuned_median_s == 1e-3);
    CHECK(d.stats().entries == 1);
}

TEST_CASE("an unseen shape uses the nearest tuned shape whose config is valid for it", "[dispatcher]") {
    Fixture f;
    f.add(make_gemm(256, 512, 128), "mode=good tile=2 unroll=1", 1e-3);
    f.add(make_gemm(4096, 512, 128), "mode=good tile=4 unroll=2", 1e-2);
    auto d = f.make();
    Selection s = d.lookup(make_gemm(300, 512, 128));
    CHECK(s.source == LookupSource::nearest);
    CHECK(s.config->text() == "mode=good tile=2 unroll=1");
    CHECK(shape_key(*s.tuned_shape) == shape_key(make_gemm(256, 512, 128)));
    CHECK(d.lookup(make_gemm(3000, 512, 128)).config->text() == "mode=good tile=4 unroll=2");
    // Repeated lookups of an unseen shape give the same answer.
    CHECK(d.lookup(make_gemm(300, 512, 128)).config == s.config);
}

TEST_CASE("the nearest shape is skipped when its config is invalid for the new shape", "[dispatcher]") {
    Fixture f;
    f.add(make_gemm(8, 64, 64), "mode=good tile=4 unroll=1", 1e-5);    // tile 4 illegal when m < 4
    f.add(make_gemm(64, 64, 64), "mode=good tile=1 unroll=2", 1e-4);
    auto d = f.make();
    Selection s = d.lookup(make_gemm(2, 64, 64));
    CHECK(s.source == LookupSource::nearest);
    CHECK(s.config->text() == "mode=good tile=1 unroll=2");
}

TEST_CASE("with nothing tuned of that kind the template default is used", "[dispatcher]") {
    Fixture f;
    f.add(make_gemm(64, 64, 64), "mode=good tile=2 unroll=1", 1e-4);
    auto d = f.make();
    Selection s = d.lookup(make_gemm(64, 64, 64, DType::f32, true, false));  // transposed: no match
    CHECK(s.source == LookupSource::default_config);
    CHECK(*s.config == f.registry->find("test.gemm.fake")->space(make_gemm(64, 64, 64))->default_config());
}

TEST_CASE("stale versions, other devices and tampered configs are never served", "[dispatcher]") {
    Fixture f;
    Problem p = make_gemm(128, 128, 128);
    f.add(p, "mode=good tile=1 unroll=1", 1e-3);
    f.add(p, "mode=good tile=2 unroll=1", 1e-5, "v0");                         // stale template
    f.add(p, "mode=good tile=3 unroll=1", 1e-6, "v1", Status::ok, "otherdev");  // another machine
    f.add(p, "mode=good tile=99 unroll=1", 1e-7);                              // illegal value
    f.add(p, "mode=wrong tile=1 unroll=4", 1e-7);                              // violates a constraint
    f.add(p, "mode=good tile=1 unroll=1 evil=1", 1e-7);                        // unknown knob
    auto d = f.make();
    Selection s = d.lookup(p);
    CHECK(s.source == LookupSource::exact);
    CHECK(s.config->text() == "mode=good tile=1 unroll=1");
    CHECK(d.stats().stale == 1);
    CHECK(d.stats().rejected == 3);
    REQUIRE(d.stats().rejections.size() == 3);
    CHECK_THAT(d.stats().rejections[0], Catch::Contains("tile"));
}

TEST_CASE("lookups are thread-safe and agree across threads", "[dispatcher]") {
    Fixture f;
    for (int m : {16, 64, 256, 1024}) f.add(make_gemm(m, 256, 256), "mode=good tile=" + std::to_string(m % 3 + 1) + " unroll=1", 1e-4);
    auto d = f.make();
    std::vector<std::string> results(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            std::string acc;
            for (int i = 1; i < 400; ++i) acc += d.lookup(make_gemm(i, 256, 256)).config->text() + ";";
            results[t] = acc;
        });
    for (auto& th : threads) th.join();
    for (int t = 1; t < 4; ++t) CHECK(results[t] == results[0]);
}

TEST_CASE("run executes the selected kernel", "[dispatcher]") {
    Fixture f;
    Problem p = make_gemm(2, 3, 4);
    f.add(p, "mode=good tile=1 unroll=1", 1e-6);
    auto d = f.make();
    std::vector<float> a(8, 1.0f), b(12, 2.0f), c(6, 0.0f);
    const void* in[] = {a.data(), b.data()};
    void* out[] = {c.data()};
    d.run(p, {in, out});
    for (float v : c) CHECK(v == 8.0f);
}

TEST_CASE("a config verified under a looser budget is served only to callers who accept it", "[dispatcher]") {
    Fixture f;
    Problem strict = make_gemm(64, 64, 64);
    Problem loose = strict;
    loose.tolerance = 0.01;
    f.add(strict, "mode=good tile=1 unroll=1", 2e-4);
    f.add(loose, "mode=good tile=2 unroll=1", 1e-4);
    auto d = f.make();
    CHECK(d.lookup(strict).config->text() == "mode=good tile=1 unroll=1");
    CHECK(d.lookup(loose).config->text() == "mode=good tile=2 unroll=1");
    Problem other = make_gemm(70, 64, 64);  // unseen: the loose entry is not a candidate for a strict caller
    CHECK(d.lookup(other).config->text() == "mode=good tile=1 unroll=1");
    other.tolerance = 0.02;
    CHECK(d.lookup(other).source == LookupSource::nearest);
}

TEST_CASE("a user store overrides the system store for the same shape", "[dispatcher]") {
    Fixture system, user;
    Problem shared = make_gemm(32, 32, 32), only_system = make_gemm(64, 64, 64);
    system.add(shared, "mode=good tile=1 unroll=1", 1e-6);  // faster, but the user's entry wins
    system.add(only_system, "mode=good tile=2 unroll=1", 1e-4);
    user.add(shared, "mode=good tile=3 unroll=1", 1e-3);
    Dispatcher d({{"system", system.db.get()}, {"user", user.db.get()}}, system.registry, system.device);
    auto s = d.lookup(shared);
    CHECK(s.config->text() == "mode=good tile=3 unroll=1");
    CHECK(*s.store == "user");
    auto t = d.lookup(only_system);
    CHECK(*t.store == "system");
    CHECK(d.stats().entries == 2);
}

TEST_CASE("the snapshot id identifies the served index", "[dispatcher]") {
    Fixture a, b;
    a.add(make_gemm(32, 32, 32), "mode=good tile=1 unroll=1", 1e-4);
    b.add(make_gemm(32, 32, 32), "mode=good tile=1 unroll=1", 2e-4);  // same choice, other timing
    CHECK(a.make().snapshot_id() == b.make().snapshot_id());
    b.add(make_gemm(48, 32, 32), "mode=good tile=2 unroll=1", 2e-4);
    CHECK(a.make().snapshot_id() != b.make().snapshot_id());
    CHECK(a.make().snapshot_id().size() == 16);
}

TEST_CASE("record mode counts every shape served without an exact entry", "[dispatcher]") {
    Fixture f;
    f.add(make_gemm(32, 32, 32), "mode=good tile=1 unroll=1", 1e-4);
    auto path = std::filesystem::temp_directory_path() / ("libtune-record-" + std::to_string(::getpid()) + ".jsonl");
    std::filesystem::remove(path);
    {
        Dispatcher d(*f.db, f.registry, f.device, {path});
        for (int i = 0; i < 5; ++i) d.lookup(make_gemm(32, 32, 32));  // exact: not recorded
        for (int i = 0; i < 3; ++i) d.lookup(make_gemm(40, 32, 32));
        d.lookup(make_gemm(7, 32, 32, DType::f32, true, false));
        d.flush_record();
        d.lookup(make_gemm(40, 32, 32));  // flushed at destruction
    }
    std::ifstream in(path);
    std::map<std::string, std::uint64_t> counts;
    std::string line;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line);
        counts[j["key"].get<std::string>()] += j["count"].get<std::uint64_t>();
    }
    std::filesystem::remove(path);
    CHECK(counts.size() == 2);
    CHECK(counts[shape_key(make_gemm(40, 32, 32))] == 4);
    CHECK(counts[shape_key(make_gemm(7, 32, 32, DType::f32, true, false))] == 1);
    CHECK(counts.count(shape_key(make_gemm(32, 32, 32))) == 0);
}
