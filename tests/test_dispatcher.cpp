// Dispatcher: exact, nearest and default lookups; stale and tampered rows are never served.
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

#include "confirmations.hpp"
#include "fake_template.hpp"
#include "tune/dispatcher.hpp"
#include "tune/templates/cpu_gemm.hpp"

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
             Status status = Status::ok, std::string device_id = {}, std::int64_t workspace_bytes = 0) {
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
        m.workspace_bytes = workspace_bytes;
        db->record(m);
    }
    Dispatcher make() const { return Dispatcher(*db, registry, device); }
    // The registry's fake template (it counts the kernels it built).
    const testing::FakeGemmTemplate& fake() const {
        return dynamic_cast<const testing::FakeGemmTemplate&>(*registry->find("test.gemm.fake"));
    }
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

TEST_CASE("an exact hit serves the Tuner's confirmed pick while its confirmation round is current", "[dispatcher]") {
    Fixture f;
    Problem p = make_gemm(256, 512, 128);
    f.add(p, "mode=good tile=2 unroll=1", 2e-3);
    f.add(p, "mode=good tile=3 unroll=1", 1e-3);  // lucky once: slower in every re-measurement
    auto confirm = [&](const std::string& config, int round, double seconds) {
        REQUIRE(f.db->record_confirmation(testing::confirmation_of(p, f.device.id(), "test.gemm.fake", "v1",
                                                                   Config::parse(config), "00000000000000aa", round,
                                                                   seconds)));
    };
    for (int r = 0; r < 3; ++r) {
        confirm("mode=good tile=2 unroll=1", r, 1.5e-3);
        confirm("mode=good tile=3 unroll=1", r, 3e-3);
    }
    CHECK(f.make().lookup(p).config->text() == "mode=good tile=2 unroll=1");
    // A later candidate of the shape: the round no longer ranks it, the fastest serves.
    f.add(p, "mode=good tile=1 unroll=1", 5e-3);
    CHECK(f.make().lookup(p).config->text() == "mode=good tile=3 unroll=1");
}

// The fake's kernels hold these workspace bytes per tile.
constexpr std::size_t kTileWorkspace[] = {0, 4000, 1000, 2000, 0};

TEST_CASE("under a workspace cap the dispatcher serves the fastest config on the shape's Pareto front", "[dispatcher]") {
    Fixture f;
    f.fake().workspace_of = [](const Config& c) { return kTileWorkspace[c.get_int("tile")]; };
    Problem p = make_gemm(256, 512, 128);
    auto add = [&](const char* config, double seconds) {
        f.add(p, config, seconds, "v1", Status::ok, {},
              std::int64_t(kTileWorkspace[Config::parse(config).get_int("tile")]));
    };
    add("mode=good tile=1 unroll=1", 1e-3);  // fastest, most memory
    add("mode=good tile=2 unroll=1", 2e-3);
    add("mode=good tile=3 unroll=1", 3e-3);  // dominated: slower and larger than tile=2
    add("mode=good tile=4 unroll=1", 5e-3);
    auto d = f.make();
    CHECK(d.lookup(p).config->text() == "mode=good tile=1 unroll=1");
    auto under = [&](std::size_t cap) {
        Selection s = d.lookup_under(p, cap);
        return s.tmpl ? s.config->text() : std::string("none");
    };
    CHECK(under(1 << 20) == "mode=good tile=1 unroll=1");
    CHECK(under(4000) == "mode=good tile=1 unroll=1");
    CHECK(under(3999) == "mode=good tile=2 unroll=1");
    CHECK(under(1999) == "mode=good tile=2 unroll=1");  // tile=3 is never the answer
    CHECK(under(999) == "mode=good tile=4 unroll=1");
    CHECK(d.lookup_under(p, 0).source == LookupSource::exact);
    // The store's front is the same rule: pruning keeps exactly these rows (and the fastest).
    auto rows = f.db->query({});
    std::vector<const Measurement*> ptrs;
    for (const auto& m : rows) ptrs.push_back(&m);
    std::vector<std::string> front;
    for (std::size_t i : pareto_front(ptrs)) front.push_back(rows[i].config.text());
    CHECK(front == std::vector<std::string>{"mode=good tile=1 unroll=1", "mode=good tile=2 unroll=1",
                                            "mode=good tile=4 unroll=1"});
    // An untuned shape: what lookup serves, when its template's workspace fits.
    Problem unseen = make_gemm(64, 64, 64);
    Selection s = d.lookup_under(unseen, 1 << 30);
    REQUIRE(s.tmpl != nullptr);
    CHECK(s.config->text() == d.lookup(unseen).config->text());
}

TEST_CASE("under a workspace cap a stored workspace figure that understates is not believed", "[dispatcher]") {
    Fixture f;
    f.fake().workspace_of = [](const Config& c) { return kTileWorkspace[c.get_int("tile")]; };
    Problem p = make_gemm(256, 512, 128);
    // A damaged (or edited) store claims the fastest config needs no workspace: it needs 4000.
    f.add(p, "mode=good tile=1 unroll=1", 1e-3, "v1", Status::ok, {}, 0);
    f.add(p, "mode=good tile=2 unroll=1", 2e-3, "v1", Status::ok, {}, 1000);
    f.add(p, "mode=good tile=4 unroll=1", 5e-3, "v1", Status::ok, {}, 0);
    auto d = f.make();
    auto under = [&](std::size_t cap) {
        Selection s = d.lookup_under(p, cap);
        return s.tmpl ? s.config->text() : std::string("none");
    };
    // The claim put tile=1 alone on the front (fastest and smallest): below its real 4000
    // bytes nothing is served, rather than a config over the cap.
    CHECK(under(3999) == "none");
    CHECK(under(4000) == "mode=good tile=1 unroll=1");
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

TEST_CASE("an untuned shape gets its template's default for that shape: decode rows the dot kernel", "[dispatcher]") {
    const DeviceInfo device = detect_cpu();
    if (!device.isa.avx512f) return;  // the dot-form kernels are AVX-512
    auto registry = std::make_shared<TemplateRegistry>();
    registry->add(make_cpu_gemm_template(device));
    auto db = make_memory_database();
    Dispatcher d(*db, registry, device);
    auto ukernel = [&](const Problem& p) {
        const Selection s = d.lookup(p);
        CHECK(s.source == LookupSource::default_config);
        return s.config->get_str("ukernel");
    };
    CHECK(ukernel(make_gemm(1, 256, 128, DType::f32, false, true)) == "avx512dot_1x8");
    CHECK(ukernel(make_gemm(2, 256, 128, DType::f32, false, true)) == "avx512dot_2x8");
    CHECK(ukernel(make_gemm(16, 256, 128, DType::f32, false, true)) == "avx512dot_4x6");
    const std::string packed = registry->find("cpu.gemm.blocked")->space(make_gemm(1, 1, 1))->default_config().get_str("ukernel");
    CHECK(ukernel(make_gemm(17, 256, 128, DType::f32, false, true)) == packed);
    CHECK(ukernel(make_gemm(1, 256, 128)) == packed);  // B k x n: no dot form
    // Interned: a second decode shape of the same class gets the same Config object.
    CHECK(d.lookup(make_gemm(1, 512, 64, DType::f32, false, true)).config ==
          d.lookup(make_gemm(1, 256, 128, DType::f32, false, true)).config);
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
    // An output that shares memory with an input is refused, not computed wrongly.
    void* onto_b[] = {b.data() + 6};
    CHECK_THROWS_WITH(d.run(p, {in, onto_b}), Catch::Contains("output C overlaps input B"));
    CHECK_THROWS_AS(d.run(p, {in, onto_b}), InvalidArgument);
    std::vector<float> r(6, 1.0f);
    const Problem with_residual = with_epilogue(p, false, Activation::none, true);
    const void* in_place[] = {a.data(), b.data(), c.data()};
    CHECK(overlapping_operands(with_residual, {in_place, out}) == "output C overlaps input residual");
    const void* separate[] = {a.data(), b.data(), r.data()};
    CHECK(overlapping_operands(with_residual, {separate, out}).empty());
}

TEST_CASE("attention outputs that share memory with an input or each other are named", "[dispatcher][attention]") {
    // 1 x 2 heads x 8 queries x 16 dims; K and V 1 x 1 head x 8 keys x 16.
    const Problem fwd = make_attention(1, 2, 1, 8, 8, 16, false, 0);
    std::vector<float> q(256), k(128), v(128), o(256), lse(16);
    const void* in[] = {q.data(), k.data(), v.data()};
    void* apart[] = {o.data(), lse.data()};
    CHECK(overlapping_operands(fwd, {in, apart}).empty());
    void* o_on_k[] = {k.data(), lse.data()};
    CHECK(overlapping_operands(fwd, {in, o_on_k}) == "output O overlaps input K");
    void* lse_in_v[] = {o.data(), v.data() + 100};
    CHECK(overlapping_operands(fwd, {in, lse_in_v}) == "output LSE overlaps input V");
    void* lse_in_o[] = {o.data(), o.data() + 250};
    CHECK(overlapping_operands(fwd, {in, lse_in_o}) == "output LSE overlaps output O");
    void* lse_after_o[] = {o.data(), o.data() + 256};  // adjacent, not overlapping
    CHECK(overlapping_operands(fwd, {in, lse_after_o}).empty());
    // Backward: dK onto dO; paged: O onto the block table.
    Problem bwd = fwd;
    bwd.set_dim("backward", 1);
    std::vector<float> dout(256), dq(256), dk(128), dv(128);
    const void* bin[] = {q.data(), k.data(), v.data(), o.data(), lse.data(), dout.data()};
    void* grads[] = {dq.data(), dk.data(), dv.data()};
    CHECK(overlapping_operands(bwd, {bin, grads}).empty());
    void* dk_on_dout[] = {dq.data(), dout.data() + 200, dv.data()};
    CHECK(overlapping_operands(bwd, {bin, dk_on_dout}) == "output dK overlaps input dO");
    Problem paged = fwd;
    paged.set_dim("page", 4);
    std::vector<std::int32_t> table(2);
    const void* pin[] = {q.data(), k.data(), v.data(), table.data()};
    void* o_on_table[] = {reinterpret_cast<float*>(table.data()), lse.data()};
    CHECK(overlapping_operands(paged, {pin, o_on_table}) == "output O overlaps input block table");
}

TEST_CASE("run builds a kernel once per shape and config and serves concurrent callers", "[dispatcher]") {
    Fixture f;
    const auto& counted = f.fake();
    // Two tuned shapes, one looser budget of the first (its own kernel), one unseen shape.
    const Problem a = make_gemm(4, 3, 5), b = make_gemm(6, 2, 7);
    Problem loose = a;
    loose.tolerance = 0.01;
    const Problem unseen = make_gemm(5, 3, 5);
    f.add(a, "mode=good tile=2 unroll=1", 1e-6);
    f.add(b, "mode=good tile=3 unroll=2", 1e-6);
    f.add(loose, "mode=good tile=4 unroll=1", 1e-6);
    const Dispatcher d(*f.db, f.registry, f.device);
    const std::vector<Problem> shapes = {a, b, loose, unseen};

    // k ones times k twos: every entry of C is 2k.
    auto run_all = [&](int rounds) {
        int wrong = 0;
        for (int r = 0; r < rounds; ++r)
            for (const Problem& p : shapes) {
                const GemmDims g = gemm_dims(p);
                std::vector<float> x(std::size_t(g.m * g.k), 1.0f), w(std::size_t(g.k * g.n), 2.0f), c(std::size_t(g.m * g.n), -1.0f);
                const void* in[] = {x.data(), w.data()};
                void* out[] = {c.data()};
                d.run(p, {in, out});
                for (float v : c) wrong += v != float(2 * g.k);
            }
        return wrong;
    };
    std::vector<int> wrong(4, -1);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { wrong[std::size_t(t)] = run_all(50); });
    for (auto& th : threads) th.join();
    for (int w : wrong) CHECK(w == 0);
    // Racing callers may each build a kernel once; after that every run finds one.
    const int built = counted.built.load();
    CHECK(built >= 4);
    CHECK(built <= 16);
    CHECK(run_all(20) == 0);
    CHECK(counted.built.load() == built);
}

TEST_CASE("the kernel cache of run stays bounded over ever new shapes", "[dispatcher]") {
    Fixture f;
    const auto& counted = f.fake();
    const Dispatcher d(*f.db, f.registry, f.device);  // nothing tuned: every shape by default
    // A decode loop's attention makes one new shape per token: here m grows instead.
    const std::int64_t shapes = std::int64_t(Dispatcher::kKernelCacheCapacity) + 200;
    std::size_t largest = 0;
    int wrong = 0;
    for (std::int64_t m = 1; m <= shapes; ++m) {
        std::vector<float> x(std::size_t(m * 3), 1.0f), w(6, 2.0f), c(std::size_t(m * 2), -1.0f);
        const void* in[] = {x.data(), w.data()};
        void* out[] = {c.data()};
        d.run(make_gemm(m, 2, 3), {in, out});
        for (float v : c) wrong += v != 6.0f;
        largest = std::max(largest, d.cached_kernels());
    }
    CHECK(wrong == 0);
    CHECK(largest == Dispatcher::kKernelCacheCapacity);
    CHECK(d.cached_kernels() <= 200);  // started over once
    CHECK(counted.built.load() == shapes);
    // A shape still cached is not built again.
    std::vector<float> x(std::size_t(shapes * 3), 1.0f), w(6, 2.0f), c(std::size_t(shapes * 2));
    const void* in[] = {x.data(), w.data()};
    void* out[] = {c.data()};
    d.run(make_gemm(shapes, 2, 3), {in, out});
    CHECK(counted.built.load() == shapes);
}

TEST_CASE("the kernel cache of run also stays under its byte bound", "[dispatcher]") {
    Fixture f;
    // Each kernel reports 40% of the bound as its workspace: the third starts the cache over.
    f.fake().workspace = Dispatcher::kKernelCacheBytes / 5 * 2;
    const Dispatcher d(*f.db, f.registry, f.device);
    std::vector<std::size_t> cached;
    for (std::int64_t m = 1; m <= 3; ++m) {
        std::vector<float> x(std::size_t(m * 3), 1.0f), w(6, 2.0f), c(std::size_t(m * 2));
        const void* in[] = {x.data(), w.data()};
        void* out[] = {c.data()};
        d.run(make_gemm(m, 2, 3), {in, out});
        cached.push_back(d.cached_kernels());
    }
    CHECK(cached == std::vector<std::size_t>{1, 2, 1});
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
        DispatcherOptions options;
        options.record_path = path;
        Dispatcher d(*f.db, f.registry, f.device, options);
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

TEST_CASE("a record file is checked at open, and a failed append keeps its counts for the next flush", "[dispatcher]") {
    namespace fs = std::filesystem;
    const fs::path path = fs::temp_directory_path() / ("libtune-record-fail-" + std::to_string(::getpid()) + ".jsonl");
    fs::remove_all(path);
    DispatcherOptions options;
    options.record_path = fs::path("/nonexistent-dir") / "record.jsonl";
    Fixture f;
    CHECK_THROWS_WITH(Dispatcher(*f.db, f.registry, f.device, options), Catch::Contains("/nonexistent-dir/record.jsonl"));
    options.record_path = path;
    {
        // No store at all (Dispatcher::open with no system store): defaults served, shapes recorded.
        auto d = Dispatcher::open("", "", options);
        for (int i = 0; i < 3; ++i) CHECK(d->lookup(make_gemm(40, 32, 32)).source == LookupSource::default_config);
        // The file becomes unwritable (a directory in its place): the flush fails, lookups go on.
        fs::remove(path);
        fs::create_directory(path);
        CHECK_THROWS_WITH(d->flush_record(), Catch::Contains(path.string()));
        CHECK(d->lookup(make_gemm(40, 32, 32)).source == LookupSource::default_config);
        fs::remove(path);
        d->flush_record();  // the 4 counts were kept
    }
    std::ifstream in(path);
    std::uint64_t count = 0;
    for (std::string line; std::getline(in, line);) count += nlohmann::json::parse(line)["count"].get<std::uint64_t>();
    CHECK(count == 4);
    fs::remove(path);
    CHECK_THROWS_WITH(Dispatcher::open("", "user.db"), Catch::Contains("needs a system store"));
}

TEST_CASE("bucket rules map a dim to its bucket's representative", "[dispatcher][buckets]") {
    auto pow2 = BucketRules::parse("m:pow2");
    CHECK(pow2.text() == "m:pow2");
    CHECK(pow2.representative(make_gemm(33, 8, 8)) == make_gemm(64, 8, 8));
    CHECK(pow2.representative(make_gemm(64, 8, 8)) == make_gemm(64, 8, 8));
    CHECK(pow2.representative(make_gemm(1, 8, 8)) == make_gemm(1, 8, 8));
    const BucketRule& r = pow2.rules()[0];
    CHECK(r.lower(64) == 33);
    CHECK(r.representatives(3, 20) == std::vector<std::int64_t>{4, 8, 16, 32});
    CHECK(r.samples(64, 2) == std::vector<std::int64_t>{33, 46});
    CHECK(r.samples(1, 2).empty());

    auto list = BucketRules::parse("m:1,16,64;k:pow2");
    CHECK(list.text() == "m:1,16,64;k:pow2");
    CHECK(list.representative(make_gemm(17, 8, 100)) == make_gemm(64, 8, 128));
    CHECK_FALSE(list.representative(make_gemm(65, 8, 8)).has_value());  // above the last bound
    CHECK(list.rules()[0].lower(16) == 2);
    CHECK(list.rules()[0].representatives(1, 4096) == std::vector<std::int64_t>{1, 16, 64});
    CHECK(BucketRules::parse("").empty());

    for (std::string bad : {"m", "m:", "x:pow2", "trans_a:pow2", "m:4,2", "m:1,1", "m:0,4", "m:a", "m:pow2;m:1"})
        CHECK_THROWS_AS(BucketRules::parse(bad), Error);
    CHECK_THROWS_WITH(BucketRules::parse("m:4,2"), Catch::Contains("m:4,2") && Catch::Contains("ascending"));
}

TEST_CASE("a shape without an entry is served its bucket representative's config, exact entries win",
          "[dispatcher][buckets]") {
    Fixture f;
    f.add(make_gemm(32, 16, 16), "mode=good tile=1 unroll=1", 1e-4);
    f.add(make_gemm(64, 16, 16), "mode=good tile=2 unroll=1", 2e-4);
    f.add(make_gemm(40, 16, 16), "mode=good tile=3 unroll=1", 1.5e-4);
    // Regret data: the bucket's config measured on m=50, slower than the best there.
    f.add(make_gemm(50, 16, 16), "mode=good tile=2 unroll=1", 3e-4);
    f.add(make_gemm(50, 16, 16), "mode=good tile=4 unroll=1", 2e-4);
    DispatcherOptions options;
    options.buckets = BucketRules::parse("m:pow2");
    Dispatcher d(*f.db, f.registry, f.device, options);

    Selection s = d.lookup(make_gemm(33, 16, 16));  // nearest would be m=32
    CHECK(s.source == LookupSource::bucket);
    CHECK(s.config->text() == "mode=good tile=2 unroll=1");
    CHECK(shape_key(*s.tuned_shape) == shape_key(make_gemm(64, 16, 16)));
    CHECK(d.lookup(make_gemm(40, 16, 16)).source == LookupSource::exact);
    CHECK(d.lookup(make_gemm(100, 16, 16)).source == LookupSource::nearest);  // bucket 128 not tuned
    CHECK(Dispatcher(*f.db, f.registry, f.device).lookup(make_gemm(33, 16, 16)).source == LookupSource::nearest);

    REQUIRE(d.bucket_regrets().size() == 1);
    const BucketRegret* r = d.bucket_regret(make_gemm(33, 16, 16));
    REQUIRE(r != nullptr);
    CHECK(r == &d.bucket_regrets()[0]);
    CHECK(r->config == "mode=good tile=2 unroll=1");
    REQUIRE(r->samples.size() == 1);  // m=40 never ran the bucket's config: no sample
    CHECK(r->samples[0].shape == make_gemm(50, 16, 16));
    CHECK(r->max_regret() == Approx(0.5));
    CHECK(d.bucket_regret(make_gemm(20, 16, 16)) == nullptr);
}

namespace {

// A fake template whose kernels wait at a gate before they build: a tuning job can be held
// in flight while the test looks up shapes on its own thread.
class GatedTemplate final : public Template {
public:
    const TemplateInfo& info() const override { return inner_.info(); }
    bool supports(const Problem& p) const override { return inner_.supports(p); }
    std::shared_ptr<const Space> space(const Problem& p) const override { return inner_.space(p); }
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        std::unique_lock lock(mutex_);
        entered_ = true;
        changed_.notify_all();
        if (!changed_.wait_for(lock, std::chrono::seconds(30), [&] { return open_; })) timed_out_ = true;
        return inner_.instantiate(p, c);
    }
    void wait_entered() {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return entered_; });
    }
    void open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }
    bool timed_out() const {
        std::lock_guard lock(mutex_);
        return timed_out_;
    }

private:
    testing::FakeGemmTemplate inner_;
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    mutable bool entered_ = false, open_ = false, timed_out_ = false;
};

struct OnlineFixture {
    std::unique_ptr<Database> system = make_memory_database(), user = make_memory_database();
    std::shared_ptr<TemplateRegistry> registry = std::make_shared<TemplateRegistry>();
    GatedTemplate* gate = nullptr;
    DeviceInfo device = detect_cpu();
    std::mutex mutex;
    std::condition_variable done;
    std::vector<std::string> tuned;

    explicit OnlineFixture(bool gated = false) {
        if (gated) {
            auto g = std::make_unique<GatedTemplate>();
            gate = g.get();
            registry->add(std::move(g));
        } else {
            registry->add(std::make_unique<testing::FakeGemmTemplate>());
        }
    }
    DispatcherOptions options(std::size_t after_misses) {
        DispatcherOptions o;
        o.online.after_misses = after_misses;
        o.online.store = user.get();
        o.online.tune.budget = 3;
        o.online.on_tuned = [this](const Problem& p, const std::optional<Measurement>& best) {
            std::lock_guard lock(mutex);
            tuned.push_back(shape_key(p) + (best ? "" : " (none)"));
            done.notify_all();
        };
        return o;
    }
    void wait_tuned(std::size_t n) {
        std::unique_lock lock(mutex);
        REQUIRE(done.wait_for(lock, std::chrono::seconds(60), [&] { return tuned.size() >= n; }));
    }
};

}  // namespace

TEST_CASE("online tuning: a shape missing N times is handed over exactly once", "[dispatcher][online]") {
    Fixture f;
    f.add(make_gemm(32, 32, 32), "mode=good tile=1 unroll=1", 1e-4);
    std::vector<std::string> requests;
    DispatcherOptions o;
    o.online.after_misses = 3;
    o.online.on_request = [&](const Problem& p) { requests.push_back(shape_key(p)); };
    Dispatcher d(*f.db, f.registry, f.device, o);
    for (int i = 0; i < 10; ++i) d.lookup(make_gemm(32, 32, 32));  // exact hits never count
    d.lookup(make_gemm(40, 32, 32));
    d.lookup(make_gemm(40, 32, 32));
    CHECK(requests.empty());
    d.lookup(make_gemm(40, 32, 32));
    CHECK(requests == std::vector<std::string>{shape_key(make_gemm(40, 32, 32))});
    for (int i = 0; i < 20; ++i) d.lookup(make_gemm(40, 32, 32));
    for (int i = 0; i < 3; ++i) d.lookup(make_gemm(48, 32, 32));
    CHECK(requests == std::vector<std::string>{shape_key(make_gemm(40, 32, 32)), shape_key(make_gemm(48, 32, 32))});
    CHECK(d.online_stats().requested == 2);

    // What the callback's tuner finds is served once published.
    Measurement m;
    m.problem = make_gemm(40, 32, 32);
    m.device_id = f.device.id();
    m.template_name = "test.gemm.fake";
    m.template_version = "v1";
    m.config = Config::parse("mode=good tile=4 unroll=1");
    m.stats.median_s = 1e-4;
    const std::string before = d.snapshot_id();
    CHECK(d.publish(m));
    CHECK(d.lookup(make_gemm(40, 32, 32)).source == LookupSource::exact);
    CHECK(d.lookup(make_gemm(40, 32, 32)).config->text() == "mode=good tile=4 unroll=1");
    CHECK(d.snapshot_id() != before);
    m.template_version = "v0";  // stale: refused
    m.problem = make_gemm(48, 32, 32);
    CHECK_FALSE(d.publish(m));

    // A publish in between keeps other shapes' counts: the third miss still asks.
    d.lookup(make_gemm(56, 32, 32));
    d.lookup(make_gemm(56, 32, 32));
    m.template_version = "v1";
    m.problem = make_gemm(64, 32, 32);
    REQUIRE(d.publish(m));
    d.lookup(make_gemm(56, 32, 32));
    CHECK(requests.back() == shape_key(make_gemm(56, 32, 32)));
    CHECK(d.online_stats().requested == 3);
}

TEST_CASE("online tuning: the background tuner's result is an exact hit for the next lookup", "[dispatcher][online]") {
    OnlineFixture f;
    Problem p = make_gemm(24, 16, 16);
    {
        Dispatcher d({{"system", f.system.get()}, {"user", f.user.get()}}, f.registry, f.device, f.options(2));
        CHECK(d.lookup(p).source == LookupSource::default_config);
        CHECK(d.lookup(p).source == LookupSource::default_config);
        f.wait_tuned(1);
        Selection s = d.lookup(p);
        CHECK(s.source == LookupSource::exact);
        CHECK(*s.store == "published");
        OnlineStats st = d.online_stats();
        CHECK(st.requested == 1);
        CHECK(st.tuned == 1);
        CHECK(st.spent_s > 0);
        for (int i = 0; i < 5; ++i) d.lookup(p);
        CHECK(d.online_stats().requested == 1);
    }
    // Written to the user store: the next process serves it without tuning.
    CHECK(f.tuned == std::vector<std::string>{shape_key(p)});
    Dispatcher next({{"system", f.system.get()}, {"user", f.user.get()}}, f.registry, f.device);
    CHECK(next.lookup(p).source == LookupSource::exact);
    CHECK(*next.lookup(p).store == "user");
}

TEST_CASE("online tuning never makes the caller wait, and shutdown joins the tuner", "[dispatcher][online]") {
    OnlineFixture f(/*gated=*/true);
    Problem p = make_gemm(24, 16, 16);
    auto d = std::make_unique<Dispatcher>(std::vector<StoreLayer>{{"user", f.user.get()}}, f.registry, f.device,
                                          f.options(1));
    d->lookup(p);        // queues p
    f.gate->wait_entered();  // the job is now inside tuning, held at the gate
    for (int m = 1; m <= 200; ++m) CHECK(d->lookup(make_gemm(m, 16, 16)).tmpl != nullptr);  // queue more shapes
    CHECK(d->lookup(p).source == LookupSource::default_config);
    f.gate->open();
    CHECK_FALSE(f.gate->timed_out());  // every lookup above returned while the job was held
    d.reset();  // stops after the candidate in flight; queued shapes are dropped
    CHECK(f.tuned.size() < 200);
}

TEST_CASE("online tuning respects the total time cap and frozen mode", "[dispatcher][online]") {
    SECTION("no time left: jobs are skipped") {
        OnlineFixture f;
        auto o = f.options(1);
        o.online.total_time_s = 0;
        Dispatcher d({{"user", f.user.get()}}, f.registry, f.device, o);
        d.lookup(make_gemm(24, 16, 16));
        for (int i = 0; i < 200 && d.online_stats().skipped == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        CHECK(d.online_stats().skipped == 1);
        CHECK(d.online_stats().tuned == 0);
    }
    SECTION("frozen: results are stored for the next process but never served in this one") {
        OnlineFixture f;
        auto o = f.options(1);
        o.frozen = true;
        Problem p = make_gemm(24, 16, 16);
        Dispatcher d({{"user", f.user.get()}}, f.registry, f.device, o);
        const std::string snapshot = d.snapshot_id();
        const Config* first = d.lookup(p).config;
        f.wait_tuned(1);
        CHECK(d.lookup(p).source == LookupSource::default_config);
        CHECK(d.lookup(p).config == first);
        CHECK(d.snapshot_id() == snapshot);
        CHECK_FALSE(f.user->best({}).empty());
    }
}
