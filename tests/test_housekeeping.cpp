// tune db stats / prune on a SQLite store: stale template versions, the best K per shape, the
// time/workspace front, and nothing dropped that the dispatcher or a re-tune needs.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "confirmations.hpp"
#include "fake_template.hpp"
#include "tune/db/housekeeping.hpp"
#include "tune/dispatcher.hpp"

using namespace tune;
namespace fs = std::filesystem;

namespace {

struct Store {
    fs::path path = fs::temp_directory_path() / ("libtune-prune-" + std::to_string(::getpid()) + ".db");
    std::unique_ptr<SqliteDatabase> db;
    DeviceInfo device = detect_cpu();
    std::int64_t run = 0;
    Store() {
        fs::remove(path);
        db = std::make_unique<SqliteDatabase>(path);
        run = db->start_run({0, "test", "manual", 0, "", ""}, device);
    }
    ~Store() {
        db.reset();
        for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
    }
    void add(const Problem& p, const std::string& tmpl, const std::string& version, const std::string& config,
             double seconds, std::int64_t workspace = 0, Status status = Status::ok) {
        Measurement m;
        m.run_id = run;
        m.problem = p;
        m.device_id = device.id();
        m.template_name = tmpl;
        m.template_version = version;
        m.config = Config::parse(config);
        m.status = status;
        m.reason = status == Status::ok ? "" : "broken";
        m.stats.median_s = m.stats.min_s = m.stats.mean_s = status == Status::ok ? seconds : 0;
        m.stats.count = 5;
        m.workspace_bytes = workspace;
        REQUIRE(db->record(m));
    }
    std::set<std::string> configs(const Problem& p) const {
        std::set<std::string> out;
        for (const auto& m : db->query({shape_key(p), "", "", "", std::nullopt}))
            out.insert(m.template_name + "@" + m.template_version + " " + m.config.text() + " " +
                       std::string(to_string(m.status)));
        return out;
    }
};

const TemplateVersions kCurrent{{"test.gemm.fake", "v1"}, {"test.gemm.fake2", "v1"}};

std::string cfg(int tile, int unroll) {
    return "mode=good tile=" + std::to_string(tile) + " unroll=" + std::to_string(unroll);
}

// A store with one shape measured many times: 6 ok rows of the current version (one with no
// workspace but slow, one of a second template), 2 stale rows, 1 failure, 1 unknown template.
void fill(Store& s, const Problem& p) {
    s.add(p, "test.gemm.fake", "v1", cfg(1, 1), 1.0e-3, 4096);
    s.add(p, "test.gemm.fake", "v1", cfg(2, 1), 1.1e-3, 4096);
    s.add(p, "test.gemm.fake", "v1", cfg(3, 1), 1.2e-3, 4096);
    s.add(p, "test.gemm.fake", "v1", cfg(4, 1), 1.3e-3, 8192);   // slow and bigger: dropped
    s.add(p, "test.gemm.fake", "v1", cfg(1, 2), 1.9e-3, 0);      // slow, but no workspace: front
    s.add(p, "test.gemm.fake2", "v1", cfg(1, 1), 2.5e-3, 4096);  // only row of its template
    s.add(p, "test.gemm.fake", "v0", cfg(1, 4), 0.5e-3);         // stale, even though fastest
    s.add(p, "test.gemm.fake", "v0", cfg(2, 4), 0.6e-3);
    s.add(p, "test.gemm.fake", "v1", cfg(2, 2), 0, 0, Status::crashed);
    s.add(p, "vendor.gone", "x", cfg(1, 1), 0.1e-3);
}

}  // namespace

TEST_CASE("db stats counts rows, keys, template versions and stale rows", "[housekeeping]") {
    Store s;
    fill(s, make_gemm(64, 64, 64));
    s.add(make_gemm(128, 64, 64), "test.gemm.fake", "v1", cfg(1, 1), 2e-3);
    StoreStats st = store_stats(*s.db, kCurrent);
    CHECK(st.rows == 11);
    CHECK(st.ok_rows == 10);
    CHECK(st.failed_rows == 1);
    CHECK(st.keys == 2);
    CHECK(st.stale_rows == 2);
    CHECK(st.unknown_rows == 1);
    CHECK(st.runs == 1);
    CHECK(st.file_bytes > 0);
    CHECK_FALSE(st.oldest.empty());
    CHECK(st.oldest <= st.newest);
    REQUIRE(st.templates.size() == 4);
    CHECK(st.templates[0].template_name == "test.gemm.fake");
    CHECK(st.templates[0].version == "v0");
    CHECK(st.templates[0].state == TemplateVersionStats::State::stale);
    CHECK(st.templates[1].rows == 7);  // test.gemm.fake v1: 6 ok, 1 crashed
    CHECK(st.templates[3].state == TemplateVersionStats::State::unknown);
}

TEST_CASE("db prune drops stale versions and slow rows but keeps the best K, each template's best and the front",
          "[housekeeping]") {
    Store s;
    Problem p = make_gemm(64, 64, 64), q = make_gemm(128, 64, 64);
    fill(s, p);
    s.add(q, "test.gemm.fake", "v1", cfg(1, 1), 2e-3);
    auto registry = std::make_shared<TemplateRegistry>();
    registry->add(std::make_unique<testing::FakeGemmTemplate>("test.gemm.fake", "v1"));
    registry->add(std::make_unique<testing::FakeGemmTemplate>("test.gemm.fake2", "v1"));
    const std::string served_before = Dispatcher(*s.db, registry, s.device).snapshot_id();
    const auto q_before = s.configs(q);

    PruneOptions dry;
    dry.keep = 2;
    dry.dry_run = true;
    PruneReport preview = prune_store(*s.db, kCurrent, dry);
    CHECK(preview.dropped_stale == 2);
    CHECK(preview.dropped_slow == 2);  // tile=3 (third fastest) and tile=4 (slow, bigger)
    CHECK(store_stats(*s.db, kCurrent).rows == 11);  // a dry run changes nothing

    PruneOptions keep2;
    keep2.keep = 2;
    PruneReport r = prune_store(*s.db, kCurrent, keep2);
    CHECK(r.dropped() == 4);
    CHECK(r.kept == 7);
    CHECK(r.kept_failed == 1);
    CHECK(r.kept_unknown == 1);
    CHECK(s.configs(p) == std::set<std::string>{
                             "test.gemm.fake@v1 " + cfg(1, 1) + " ok",  // best 2
                             "test.gemm.fake@v1 " + cfg(2, 1) + " ok",
                             "test.gemm.fake@v1 " + cfg(1, 2) + " ok",  // front: no workspace
                             "test.gemm.fake2@v1 " + cfg(1, 1) + " ok",  // its template's best
                             "test.gemm.fake@v1 " + cfg(2, 2) + " crashed",  // not re-measured later
                             "vendor.gone@x " + cfg(1, 1) + " ok",  // unknown template: left alone
                         });
    CHECK(s.configs(q) == q_before);
    // What the runtime serves is exactly what it served before.
    CHECK(Dispatcher(*s.db, registry, s.device).snapshot_id() == served_before);
    CHECK(s.db->verify().empty());
    // A second prune finds nothing more to drop; --drop-failed then takes the failure.
    CHECK(prune_store(*s.db, kCurrent, keep2).dropped() == 0);
    keep2.drop_failed = true;
    PruneReport failed = prune_store(*s.db, kCurrent, keep2);
    CHECK(failed.dropped_failed == 1);
    CHECK(failed.dropped() == 1);
}

TEST_CASE("db prune ranks only rows a runtime would serve, and leaves the others alone", "[housekeeping]") {
    Store s;
    Problem p = make_gemm(64, 64, 64);
    fill(s, p);
    // The fastest current row is one the runtime refuses (say its config left the space).
    PruneOptions keep1;
    keep1.keep = 1;
    keep1.servable = [](const Measurement& m) { return m.config.text() != cfg(1, 1) || m.template_name != "test.gemm.fake"; };
    PruneReport r = prune_store(*s.db, kCurrent, keep1);
    CHECK(r.kept_unservable == 1);
    CHECK(s.configs(p) == std::set<std::string>{
                             "test.gemm.fake@v1 " + cfg(1, 1) + " ok",   // refused: left alone, not ranked
                             "test.gemm.fake@v1 " + cfg(2, 1) + " ok",   // the fastest servable: kept
                             "test.gemm.fake@v1 " + cfg(1, 2) + " ok",   // front: no workspace
                             "test.gemm.fake2@v1 " + cfg(1, 1) + " ok",  // its template's best
                             "test.gemm.fake@v1 " + cfg(2, 2) + " crashed",
                             "vendor.gone@x " + cfg(1, 1) + " ok",
                         });
}

TEST_CASE("db prune keeps every row a confirmation round re-measured, so the store's pick stays", "[housekeeping]") {
    Store s;
    Problem p = make_gemm(64, 64, 64);
    fill(s, p);
    // tile=4 (the slowest first measurement, else pruned) was a finalist and won the round.
    for (int round = 0; round < 2; ++round)
        for (auto [config, seconds] : {std::pair{cfg(1, 1), 1.5e-3}, std::pair{cfg(4, 1), 1.0e-3}})
            REQUIRE(s.db->record_confirmation(testing::confirmation_of(p, s.device.id(), "test.gemm.fake", "v1",
                                                                       Config::parse(config), "00000000000000bb",
                                                                       round, seconds)));
    auto picked = [&] {
        auto best = s.db->best({shape_key(p), "", "test.gemm.fake", "v1", std::nullopt});
        REQUIRE(best.size() == 1);
        return best[0].config.text();
    };
    REQUIRE(picked() == cfg(4, 1));
    PruneOptions keep2;
    keep2.keep = 2;
    PruneReport r = prune_store(*s.db, kCurrent, keep2);
    CHECK(r.dropped_slow == 1);  // tile=3 only
    CHECK(s.configs(p).count("test.gemm.fake@v1 " + cfg(4, 1) + " ok") == 1);
    CHECK(picked() == cfg(4, 1));
}
