// The measurement store: round trips, unique keys and resume, best per key, filters,
// migrations, corrupt and tampered files, read-only mode, JSON export/import, and the
// in-memory store held to the same rules.
#include <sqlite3.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

#include "confirmations.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/error.hpp"

using namespace tune;
namespace fs = std::filesystem;

namespace {

// A unique path under the temp directory; removes the DB and its -wal/-shm files.
class TempDb {
public:
    explicit TempDb(const std::string& tag) {
        static std::atomic<int> counter{0};
        path = fs::temp_directory_path() /
               ("libtune_test_db_" + tag + "_" + std::to_string(::getpid()) + "_" +
                std::to_string(counter++) + ".sqlite");
        remove();
    }
    ~TempDb() { remove(); }
    void remove() const {
        std::error_code ec;
        for (const char* suffix : {"", "-wal", "-shm", "-journal"})
            fs::remove(path.string() + suffix, ec);
    }
    fs::path path;
};

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
}

// Runs SQL on the file directly, bypassing the store, as a hostile tool would.
void raw_exec(const fs::path& p, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(p.c_str(), &db) == SQLITE_OK);
    char* message = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    std::string why = message ? message : "";
    sqlite3_free(message);
    sqlite3_close(db);
    INFO(sql << ": " << why);
    REQUIRE(rc == SQLITE_OK);
}

DeviceInfo test_device(const std::string& model = "Test CPU") {
    DeviceInfo d;
    d.model = model;
    d.arch = "x86_64";
    d.isa.avx2 = d.isa.fma = true;
    d.cores = 2;
    d.l1d_bytes = 48 << 10;
    d.l2_bytes = 2 << 20;
    d.l3_bytes = 100 << 20;
    d.memory_bytes = std::int64_t{16} << 30;
    d.versions = {{"libtune", "0.1.0"}, {"compiler", "gcc 12"}};
    return d;
}

Config config_of(std::int64_t tile, const std::string& ukernel = "avx512_8x32") {
    Config c;
    c.set("tile_m", tile).set("kc", std::int64_t{256}).set("ukernel", ukernel);
    return c;
}

Measurement sample(const Problem& p, const Config& c, double median_s, Status status = Status::ok,
                   const std::string& device_id = test_device().id(),
                   const std::string& template_name = "cpu_gemm",
                   const std::string& version = "v1") {
    Measurement m;
    m.problem = p;
    m.device_id = device_id;
    m.template_name = template_name;
    m.template_version = version;
    m.config = c;
    m.status = status;
    m.reason = status == Status::ok ? "" : "error 0.5 over tolerance";
    m.stats = {median_s, median_s * 0.9, median_s * 1.1, median_s * 0.05, 0.015, 21, 4, true};
    m.error = status == Status::ok ? 1.5e-6 : 0.5;
    m.workspace_bytes = 4096;
    return m;
}

void require_same(const Measurement& a, const Measurement& b) {
    CHECK(a.run_id == b.run_id);
    CHECK(a.problem == b.problem);
    CHECK(a.device_id == b.device_id);
    CHECK(a.template_name == b.template_name);
    CHECK(a.template_version == b.template_version);
    CHECK(a.config == b.config);
    CHECK(a.status == b.status);
    CHECK(a.reason == b.reason);
    CHECK(a.stats == b.stats);
    if (std::isnan(a.error)) CHECK(std::isnan(b.error));
    else CHECK(a.error == b.error);
    CHECK(a.workspace_bytes == b.workspace_bytes);
}

// The rules every Database keeps, whatever stores it.
void check_store_rules(Database& db) {
    std::int64_t run = db.start_run({0, "tune gemm", "random", 7, "", ""}, test_device());
    REQUIRE(run > 0);
    const Problem p = make_gemm(64, 128, 256);
    const Problem q = make_gemm(32, 32, 32);

    // Duplicate key: false, the first stays.
    auto first = sample(p, config_of(64), 2e-3);
    first.run_id = run;
    REQUIRE(db.record(first));
    auto again = first;
    again.stats.median_s = 1e-9;
    REQUIRE_FALSE(db.record(again));
    auto rows = db.query({});
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].stats.median_s == 2e-3);

    // Faster but wrong or failed rows never win; the fastest ok row does.
    REQUIRE(db.record(sample(p, config_of(32), 1e-3)));
    REQUIRE(db.record(sample(p, config_of(16), 1e-4, Status::wrong_result)));
    REQUIRE(db.record(sample(p, config_of(8), 1e-5, Status::failed)));
    REQUIRE(db.record(sample(q, config_of(8), 5e-4)));
    // Another template competes separately; a stale version and another device are
    // filtered out when the filter names the current ones.
    REQUIRE(db.record(sample(p, config_of(32), 3e-3, Status::ok, test_device().id(), "openblas")));
    REQUIRE(db.record(sample(p, config_of(4), 1e-6, Status::ok, test_device().id(), "cpu_gemm", "v0")));
    REQUIRE(db.record(sample(p, config_of(2), 1e-7, Status::ok, "other-device")));

    MeasurementFilter current;
    current.device_id = test_device().id();
    current.template_name = "cpu_gemm";
    current.template_version = "v1";
    auto best = db.best(current);
    REQUIRE(best.size() == 2);  // sorted by problem key: "... m=32 ..." < "... m=64 ..."
    CHECK(best[0].problem == q);
    CHECK(best[1].problem == p);
    CHECK(best[1].config == config_of(32));
    CHECK(best[1].stats.median_s == 1e-3);

    auto all_best = db.best({});
    REQUIRE(all_best.size() == 3);  // (p, cpu_gemm) across versions/devices, (p, openblas), q
    CHECK(all_best[1].template_name == "cpu_gemm");
    CHECK(all_best[1].stats.median_s == 1e-7);
    CHECK(all_best[2].template_name == "openblas");

    MeasurementFilter stale = current;
    stale.template_version = "v0";
    REQUIRE(db.best(stale).size() == 1);
    CHECK(db.best(stale)[0].config == config_of(4));
    for (const auto& m : db.query(current)) CHECK(m.template_version == "v1");
    CHECK(db.query(current).size() == 5);

    MeasurementFilter by_key;
    by_key.problem_key = shape_key(q);
    REQUIRE(db.query(by_key).size() == 1);
    MeasurementFilter wrong;
    wrong.status = Status::wrong_result;
    REQUIRE(db.query(wrong).size() == 1);
    CHECK(db.query(wrong)[0].config == config_of(16));

    // Oldest first.
    rows = db.query({});
    REQUIRE(rows.size() == 8);
    for (std::size_t i = 1; i < rows.size(); ++i) CHECK(rows[i - 1].id < rows[i].id);
    require_same(rows[0], first);

    // Ties go to the smaller config hash.
    const Problem t = make_gemm(8, 8, 8);
    Config a = config_of(1), b = config_of(2);
    REQUIRE(db.record(sample(t, a, 1e-3)));
    REQUIRE(db.record(sample(t, b, 1e-3)));
    by_key.problem_key = shape_key(t);
    auto tie = db.best(by_key);
    REQUIRE(tie.size() == 1);
    CHECK(tie[0].config.hash_hex() == std::min(a.hash_hex(), b.hash_hex()));

    // Fastest is by ranking_time: the fastest repetition, not the median (a slow period of
    // the machine lifts a median); a row whose fastest is inconsistent ranks by its median.
    const Problem r = make_gemm(16, 8, 8);
    auto steady = sample(r, config_of(1), 1.0e-3), interrupted = sample(r, config_of(2), 1.2e-3);
    steady.stats.min_s = 0.95e-3;
    interrupted.stats.min_s = 0.90e-3;
    auto inconsistent = sample(r, config_of(3), 1.1e-3);
    inconsistent.stats.min_s = 2e-3;  // above its median: not trusted, 1.1 ms counts
    REQUIRE(db.record(steady));
    REQUIRE(db.record(interrupted));
    REQUIRE(db.record(inconsistent));
    by_key.problem_key = shape_key(r);
    auto by_fastest = db.best(by_key);
    REQUIRE(by_fastest.size() == 1);
    CHECK(by_fastest[0].config == config_of(2));
    CHECK(ranking_time(inconsistent.stats) == 1.1e-3);

    // Resume: recording the same candidates again changes nothing.
    std::size_t before = db.query({}).size();
    for (const auto& m : db.query({})) CHECK_FALSE(db.record(m));
    CHECK(db.query({}).size() == before);

    // Unsound input is refused at the boundary.
    auto negative = sample(t, config_of(3), -1.0);
    CHECK_THROWS_AS(db.record(negative), Error);
    auto bad_shape = sample(t, config_of(3), 1e-3);
    bad_shape.problem.set_dim("m", 0);
    CHECK_THROWS_AS(db.record(bad_shape), Error);
    auto unknown_run = sample(t, config_of(3), 1e-3);
    unknown_run.run_id = 999;
    CHECK_THROWS_AS(db.record(unknown_run), Error);
    CHECK(db.query({}).size() == before);
}

Confirmation confirmation_of(const Measurement& m, const std::string& finalists, int round, double median_s) {
    return testing::confirmation_of(m.problem, m.device_id, m.template_name, m.template_version, m.config, finalists,
                                    round, median_s);
}

// The store's best follows a current confirmation round, whatever stores it.
void check_confirmed_rules(Database& db) {
    const Problem p = make_gemm(64, 128, 256);
    // First measurements: a looks 2x faster than b, the vendor row slower than both.
    auto a = sample(p, config_of(64), 1e-3), b = sample(p, config_of(32), 2e-3);
    auto v = sample(p, config_of(8), 3e-3, Status::ok, test_device().id(), "openblas");
    for (const auto* m : {&a, &b, &v}) REQUIRE(db.record(*m));
    const std::string set = finalist_set_id({"a", "b", "v"});
    // Re-measured three times in turn: b is the fastest, by far more than the noise.
    for (int r = 0; r < 3; ++r) {
        REQUIRE(db.record_confirmation(confirmation_of(a, set, r, 2.0e-3 + r * 1e-5)));
        REQUIRE(db.record_confirmation(confirmation_of(b, set, r, 1.5e-3 + r * 1e-5)));
        REQUIRE(db.record_confirmation(confirmation_of(v, set, r, 2.5e-3)));
    }
    CHECK_FALSE(db.record_confirmation(confirmation_of(a, set, 0, 1e-9)));  // stored once: resume
    auto bad = confirmation_of(a, set, 3, -1);
    CHECK_THROWS_WITH(db.record_confirmation(bad), Catch::Contains("median_s"));
    bad = confirmation_of(a, "", 3, 1e-3);
    CHECK_THROWS_WITH(db.record_confirmation(bad), Catch::Contains("finalists is empty"));
    REQUIRE(db.confirmations({}).size() == 9);
    CHECK(db.confirmations({shape_key(p), "", "openblas", "", std::nullopt}).size() == 3);

    auto best = db.best({});
    REQUIRE(best.size() == 2);
    CHECK(best[0].template_name == "cpu_gemm");
    CHECK(best[0].config == b.config);                  // the confirmed pick, not the first measurement
    CHECK(best[0].stats.median_s == 2e-3);              // the row as stored
    CHECK(best[1].config == v.config);
    auto picks = confirmed_picks(db, {}, false);
    REQUIRE(picks.size() == 1);
    CHECK(picks[0].measurement.config == b.config);
    CHECK(picks[0].choice.confirmed_s == Approx(1.51e-3));  // the fastest time it reached twice
    CHECK(picks[0].choice.tied == 1);
    CHECK(confirmed_picks(db, {}, true).size() == 2);
    CHECK(confirmed_picks(db, {"", "", "openblas", "", std::nullopt}, true).size() == 1);

    // A row of another version of a round's template (an imported old build) changes nothing.
    REQUIRE(db.record(sample(p, config_of(4), 1e-6, Status::ok, test_device().id(), "cpu_gemm", "v0")));
    REQUIRE(confirmed_picks(db, {}, false).size() == 1);
    CHECK(db.best({"", "", "cpu_gemm", "v1", std::nullopt})[0].config == b.config);
    // A later candidate of the shape makes the round out of date: the fastest serves again.
    REQUIRE(db.record(sample(p, config_of(16), 5e-3)));
    CHECK(confirmed_picks(db, {}, false).empty());
    best = db.best({"", "", "", "v1", std::nullopt});
    REQUIRE(best.size() == 2);
    CHECK(best[0].config == a.config);
}

// Finalists tied within the tie band: the library's kernel is the store's pick (as the Tuner's),
// although an own kernel is faster by a hair and sorts first by name; beyond the band, the
// faster one. The vendor flag round-trips.
void check_vendor_first_among_tied(Database& db) {
    const Problem p = make_gemm(32, 64, 128);
    auto own = sample(p, config_of(64), 1e-3);
    auto lib = sample(p, config_of(8), 1e-3, Status::ok, test_device().id(), "openblas");
    REQUIRE(db.record(own));
    REQUIRE(db.record(lib));
    const std::string set = finalist_set_id({"own", "lib"});
    for (int r = 0; r < 2; ++r) {
        REQUIRE(db.record_confirmation(confirmation_of(own, set, r, 1.000e-3)));
        Confirmation c = confirmation_of(lib, set, r, 1.015e-3);
        c.vendor = true;
        REQUIRE(db.record_confirmation(c));
    }
    auto stored = db.confirmations({shape_key(p), "", "", "", std::nullopt});
    REQUIRE(stored.size() == 4);
    for (const auto& c : stored) CHECK(c.vendor == (c.template_name == "openblas"));
    auto picks = confirmed_picks(db, {shape_key(p), "", "", "", std::nullopt}, false);
    REQUIRE(picks.size() == 1);
    CHECK(picks[0].measurement.template_name == "openblas");
    CHECK(picks[0].choice.tied == 2);
    // A round where the library is 5% slower: the own kernel, whatever the order.
    const Problem q = make_gemm(32, 64, 256);
    auto own2 = sample(q, config_of(64), 1e-3);
    auto lib2 = sample(q, config_of(8), 1e-3, Status::ok, test_device().id(), "openblas");
    REQUIRE(db.record(own2));
    REQUIRE(db.record(lib2));
    REQUIRE(db.record_confirmation(confirmation_of(own2, set, 0, 1.00e-3)));
    Confirmation c = confirmation_of(lib2, set, 0, 1.05e-3);
    c.vendor = true;
    REQUIRE(db.record_confirmation(c));
    picks = confirmed_picks(db, {shape_key(q), "", "", "", std::nullopt}, false);
    REQUIRE(picks.size() == 1);
    CHECK(picks[0].measurement.template_name == "cpu_gemm");
}

std::unique_ptr<SqliteDatabase> filled_db(const fs::path& path, int rows) {
    auto db = std::make_unique<SqliteDatabase>(path);
    std::int64_t run = db->start_run({0, "tune gemm", "exhaustive", 1, "", ""}, test_device());
    for (int i = 0; i < rows; ++i) {
        auto m = sample(make_gemm(16 + i, 64, 64), config_of(8 + i % 4), 1e-3 + i * 1e-6);
        m.run_id = run;
        REQUIRE(db->record(m));
    }
    return db;
}

}  // namespace

TEST_CASE("memory and SQLite stores keep the same rules", "[db]") {
    SECTION("memory") {
        auto db = make_memory_database();
        check_store_rules(*db);
    }
    SECTION("sqlite") {
        TempDb file("rules");
        SqliteDatabase db(file.path);
        check_store_rules(db);
        CHECK(db.verify().empty());
    }
}

TEST_CASE("memory and SQLite stores serve the confirmed pick while its round is current", "[db]") {
    SECTION("memory") {
        auto db = make_memory_database();
        db->start_run({}, test_device());
        check_confirmed_rules(*db);
    }
    SECTION("sqlite") {
        TempDb file("confirmed");
        SqliteDatabase db(file.path);
        db.start_run({}, test_device());
        check_confirmed_rules(db);
        CHECK(db.verify().empty());
    }
}

TEST_CASE("among tied finalists a library's kernel is the store's pick, in memory and in SQLite", "[db]") {
    SECTION("memory") {
        auto db = make_memory_database();
        db->start_run({}, test_device());
        check_vendor_first_among_tied(*db);
    }
    SECTION("sqlite, from a version 5 store") {
        TempDb file("vendor_tie");
        SqliteDatabase::create_at_version(file.path, 5);
        SqliteDatabase db(file.path);
        CHECK(db.schema_version() == SqliteDatabase::kSchemaVersion);
        db.start_run({}, test_device());
        check_vendor_first_among_tied(db);
        CHECK(db.verify().empty());
        raw_exec(file.path, "UPDATE confirmations SET vendor = 7 WHERE id = 1");
        auto problems = db.verify();
        REQUIRE(problems.size() == 1);
        CHECK_THAT(problems[0], Catch::StartsWith("confirmation 1") && Catch::Contains("vendor"));
    }
}

TEST_CASE("a damaged confirmation row is never trusted: skipped, reported, the fastest serves", "[db]") {
    TempDb file("confirmed_bad");
    const Problem p = make_gemm(16, 16, 16);
    auto a = sample(p, config_of(64), 1e-3), b = sample(p, config_of(32), 2e-3);
    const std::string set = finalist_set_id({"a", "b"});
    {
        SqliteDatabase db(file.path);
        REQUIRE(db.record(a));
        REQUIRE(db.record(b));
        REQUIRE(db.record_confirmation(confirmation_of(a, set, 0, 3e-3)));
        REQUIRE(db.record_confirmation(confirmation_of(b, set, 0, 1e-3)));
        REQUIRE(db.best({})[0].config == b.config);
    }
    raw_exec(file.path, "UPDATE confirmations SET median_s = 'fast' WHERE config_hash = '" + b.config.hash_hex() + "'");
    SqliteDatabase db(file.path);
    CHECK(db.confirmations({}).size() == 1);
    auto problems = db.verify();
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("confirmation 2") && Catch::Contains("median_s is not a number"));
    // Only a was re-measured soundly: a round of one finalist still ranks, and a wins.
    CHECK(db.best({})[0].config == a.config);
    raw_exec(file.path, "UPDATE confirmations SET config_hash = 'zz' WHERE id = 1");
    CHECK(db.confirmations({}).empty());
    CHECK(db.best({})[0].config == a.config);  // no round left: the fastest first measurement
}

TEST_CASE("a version 4 store migrates and keeps confirmation rounds from then on", "[db]") {
    TempDb file("migrate_v4");
    SqliteDatabase::create_at_version(file.path, 4);
    SqliteDatabase db(file.path);
    CHECK(db.schema_version() == SqliteDatabase::kSchemaVersion);
    const Problem p = make_gemm(16, 16, 16);
    auto a = sample(p, config_of(64), 1e-3);
    REQUIRE(db.record(a));
    REQUIRE(db.record_confirmation(confirmation_of(a, "0123456789abcdef", 0, 1e-3)));
    auto stored = db.confirmations({});
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].snapshot == db.query({})[0].id);
    CHECK(stored[0].round == 0);
    CHECK(db.verify().empty());
}

TEST_CASE("one store shared by several threads keeps every row", "[db]") {
    auto hammer = [](Database& db) {
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&db, t] {
                for (int i = 0; i < 25; ++i) {
                    db.record(sample(make_gemm(4 + i, 4, 4), config_of(t), 1e-3));
                    db.record(sample(make_gemm(4 + i, 4, 4), config_of(99), 1e-3));  // shared key
                    db.best({});
                }
            });
        for (auto& thread : threads) thread.join();
        CHECK(db.query({}).size() == 4 * 25 + 25);
    };
    SECTION("memory") { hammer(*make_memory_database()); }
    SECTION("sqlite") {
        TempDb file("threads");
        SqliteDatabase db(file.path);
        hammer(db);
    }
}

TEST_CASE("a measurement round-trips through SQLite with every field", "[db]") {
    TempDb file("roundtrip");
    auto device = test_device();
    Measurement ok = sample(make_gemm(512, 4096, 4096, DType::bf16, false, true, 2),
                            config_of(128, "amx_16x64"), 3.25e-4);
    Measurement wrong = sample(make_gemm(7, 9, 11), config_of(4), 2e-5, Status::wrong_result);
    wrong.error = std::nan("");
    wrong.reason = "NaN in output";
    wrong.workspace_bytes = 0;
    {
        SqliteDatabase db(file.path);
        CHECK(db.schema_version() == SqliteDatabase::kSchemaVersion);
        std::int64_t run = db.start_run({0, "tune gemm --m 512", "annealing", ~0ull, "", ""}, device);
        ok.run_id = wrong.run_id = run;
        REQUIRE(db.record(ok));
        REQUIRE(db.record(wrong));
    }
    SqliteDatabase db(file.path);
    auto rows = db.query({});
    REQUIRE(rows.size() == 2);
    require_same(rows[0], ok);
    require_same(rows[1], wrong);
    CHECK(rows[0].id > 0);
    CHECK(rows[0].created_at.size() == 24);
    CHECK(rows[0].created_at.back() == 'Z');

    auto runs = db.runs();
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].command == "tune gemm --m 512");
    CHECK(runs[0].strategy == "annealing");
    CHECK(runs[0].seed == ~0ull);
    CHECK(runs[0].device_id == device.id());
    CHECK_FALSE(runs[0].started_at.empty());
    REQUIRE(db.devices().size() == 1);
    CHECK(db.devices()[0] == device);
    CHECK(db.verify().empty());
}

TEST_CASE("re-running a tuning job resumes: the reopened DB refuses re-measured keys", "[db]") {
    TempDb file("resume");
    filled_db(file.path, 10);
    SqliteDatabase db(file.path);
    std::int64_t run = db.start_run({0, "tune gemm", "exhaustive", 1, "", ""}, test_device());
    int added = 0;
    for (int i = 0; i < 12; ++i) {
        auto m = sample(make_gemm(16 + i, 64, 64), config_of(8 + i % 4), 5.0);
        m.run_id = run;
        added += db.record(m);
    }
    CHECK(added == 2);
    auto rows = db.query({});
    REQUIRE(rows.size() == 12);
    CHECK(rows[0].stats.median_s == 1e-3);  // the first measurement stays
    CHECK(db.runs().size() == 2);
    CHECK(db.devices().size() == 1);  // one fingerprint, seen twice
}

TEST_CASE("several processes write one SQLite file concurrently without losing rows", "[db]") {
    TempDb file("concurrent");  // every writer creates and migrates the fresh file at once
    auto write_rows = [&](int worker) {
        SqliteDatabase db(file.path);
        int added = 0;
        for (int i = 0; i < 40; ++i)
            added += db.record(sample(make_gemm(8 + i, 8 + worker, 8), config_of(worker), 1e-3));
        return added;
    };
    std::vector<pid_t> children;
    for (int worker = 1; worker <= 2; ++worker) {
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int code = 1;
            try {
                code = write_rows(worker) == 40 ? 0 : 2;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "writer %d: %s\n", worker, e.what());
            }
            ::_exit(code);
        }
        children.push_back(pid);
    }
    std::thread in_process([&] { CHECK(write_rows(3) == 40); });  // and a thread of this one
    in_process.join();
    for (pid_t pid : children) {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    SqliteDatabase db(file.path);
    CHECK(db.query({}).size() == 120);
    CHECK(db.verify().empty());
}

TEST_CASE("an older schema is migrated with its rows, a newer one is refused", "[db]") {
    TempDb file("migrate");
    SqliteDatabase::create_at_version(file.path, 1);
    auto device = test_device();
    auto m = sample(make_gemm(64, 64, 64), config_of(32), 1e-3);
    m.stats = {1e-3, 9e-4, 1.1e-3, 5e-5, 0.015, 21, 4, true};  // as written in the SQL below
    auto quote = [](const std::string& s) {
        std::string out = "'";
        for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
        return out + "'";
    };
    raw_exec(file.path,
             "INSERT INTO devices VALUES(" + quote(device.id()) + ", " +
                 quote(nlohmann::json(device).dump()) + ", '2024-01-01T00:00:00Z');"
             "INSERT INTO runs VALUES(1, 'tune', 'random', 3, " + quote(device.id()) +
                 ", '2024-01-01T00:00:00Z');"
             "INSERT INTO measurements(run_id, problem_key, problem, device_id, template, "
             "template_version, config, config_hash, status, reason, median_s, min_s, mean_s, "
             "iqr_s, ci_rel, reps, inner, stable, error, created_at) VALUES(1, " +
                 quote(shape_key(m.problem)) + ", " + quote(nlohmann::json(m.problem).dump()) +
                 ", " + quote(m.device_id) + ", 'cpu_gemm', 'v1', " +
                 quote(nlohmann::json(m.config).dump()) + ", " + quote(m.config.hash_hex()) +
                 ", 'ok', '', 1e-3, 9e-4, 1.1e-3, 5e-5, 0.015, 21, 4, 1, 1.5e-6, "
                 "'2024-01-01T00:00:00Z')");
    SECTION("read-only refuses to migrate") {
        CHECK_THROWS_WITH(SqliteDatabase(file.path, SqliteDatabase::Mode::read_only),
                          Catch::Contains("version 1") && Catch::Contains("migrate"));
    }
    SECTION("read-write migrates") {
        SqliteDatabase db(file.path);
        CHECK(db.schema_version() == SqliteDatabase::kSchemaVersion);
        auto rows = db.query({});
        REQUIRE(rows.size() == 1);
        CHECK(rows[0].workspace_bytes == 0);
        CHECK(rows[0].run_id == 1);
        CHECK(rows[0].created_at == "2024-01-01T00:00:00Z");
        m.run_id = 1;
        m.workspace_bytes = 0;
        require_same(rows[0], m);
        CHECK_FALSE(db.record(m));
        CHECK(db.record(sample(make_gemm(64, 64, 64), config_of(16), 2e-3)));
        CHECK(db.verify().empty());
        CHECK(db.runs().size() == 1);
        CHECK(db.devices() == std::vector{device});
    }
    SECTION("a newer schema is refused, naming the file and both versions") {
        { SqliteDatabase db(file.path); }
        const std::string newer = std::to_string(SqliteDatabase::kSchemaVersion + 1);
        raw_exec(file.path, "PRAGMA user_version = " + newer);
        for (auto mode : {SqliteDatabase::Mode::read_write, SqliteDatabase::Mode::read_only})
            CHECK_THROWS_WITH(SqliteDatabase(file.path, mode),
                              Catch::Contains(file.path.string()) && Catch::Contains("version " + newer) &&
                                  Catch::Contains("version " + std::to_string(SqliteDatabase::kSchemaVersion)));
    }
}

TEST_CASE("a version 3 store (settings, no models table) migrates to 4 keeping its settings", "[db]") {
    TempDb file("migrate_v3");
    SqliteDatabase::create_at_version(file.path, 3);
    raw_exec(file.path, "INSERT INTO settings VALUES('buckets', 'm:pow2')");
    SqliteDatabase db(file.path);
    CHECK(db.schema_version() == SqliteDatabase::kSchemaVersion);
    CHECK(db.setting("buckets") == "m:pow2");
    CHECK_FALSE(db.load_model("gbdt", "cpu_gemm", "dev"));
    StoredModel model{"gbdt", "cpu_gemm", "dev", 1, "xgboost-json", {"m", "n"}, "{}", 10, ""};
    db.save_model(model);
    auto loaded = db.load_model("gbdt", "cpu_gemm", "dev");
    REQUIRE(loaded);
    CHECK(loaded->features == model.features);
    CHECK(loaded->trained_rows == 10);
    CHECK(db.verify().empty());
}

TEST_CASE("files that are not libtune databases give tune::Error naming the path", "[db]") {
    TempDb file("garbage");
    SECTION("garbage bytes") {
        std::string junk(8192, '\0');
        for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 131 + 7);
        write_bytes(file.path, junk);
        for (auto mode : {SqliteDatabase::Mode::read_write, SqliteDatabase::Mode::read_only})
            CHECK_THROWS_WITH(SqliteDatabase(file.path, mode), Catch::Contains(file.path.string()));
        CHECK(read_bytes(file.path) == junk);
    }
    SECTION("a missing file in read-only mode is not created") {
        CHECK_THROWS_WITH(SqliteDatabase(file.path, SqliteDatabase::Mode::read_only),
                          Catch::Contains(file.path.string()));
        CHECK_FALSE(fs::exists(file.path));
    }
    SECTION("a path that cannot be opened") {
        auto path = file.path / "no" / "such" / "dir.sqlite";
        CHECK_THROWS_WITH(SqliteDatabase(path), Catch::Contains(path.string()));
    }
    SECTION("another application's SQLite file is refused unchanged") {
        raw_exec(file.path, "CREATE TABLE notes(text TEXT)");
        const std::string before = read_bytes(file.path);
        CHECK_THROWS_WITH(SqliteDatabase(file.path), Catch::Contains("not a libtune database"));
        CHECK(read_bytes(file.path) == before);  // not switched to WAL on the way
        CHECK_FALSE(fs::exists(file.path.string() + "-wal"));
    }
    SECTION("a negative schema version") {
        raw_exec(file.path, "CREATE TABLE notes(text TEXT); PRAGMA user_version = -5");
        const std::string before = read_bytes(file.path);
        for (auto mode : {SqliteDatabase::Mode::read_write, SqliteDatabase::Mode::read_only})
            CHECK_THROWS_WITH(SqliteDatabase(file.path, mode),
                              Catch::Contains("not a libtune database") && Catch::Contains("schema version -5"));
        CHECK(read_bytes(file.path) == before);
    }
}

TEST_CASE("atomically: the writes of its body commit together or not at all", "[db]") {
    TempDb file("atomically");
    SqliteDatabase db(file.path);
    const DeviceInfo device = test_device();
    std::vector<Measurement> rows{sample(make_gemm(8, 8, 8), config_of(1), 1e-3), sample(make_gemm(9, 8, 8), config_of(1), 1e-3)};
    for (auto& m : rows) m.device_id = device.id();
    CHECK_THROWS_WITH(db.atomically([&] {
        CHECK(db.import_rows({0, "first", "", 0, "", ""}, {device}, {rows[0]}).added == 1);
        CHECK(db.query({}).size() == 1);  // visible inside
        db.import_rows({0, "second", "", 0, "", ""}, {device}, {rows[1]});
        throw Error("stop");
    }),
                      Catch::Contains("stop"));
    CHECK(db.query({}).empty());
    CHECK(db.runs().empty());
    // An inner import that fails rolls back alone; the body goes on and commits the rest.
    Measurement bad = rows[1];
    bad.stats.median_s = -1;
    SqliteDatabase::Imported first;
    db.atomically([&] {
        first = db.import_rows({0, "first", "", 0, "", ""}, {device}, {rows[0]});
        CHECK_THROWS(db.import_rows({0, "bad", "", 0, "", ""}, {device}, {bad}));
        db.import_rows({0, "second", "", 0, "", ""}, {device}, {rows[1]});
    });
    CHECK(db.query({}).size() == 2);
    REQUIRE(db.runs().size() == 2);
    CHECK(db.runs()[0].id == first.run_id);
    CHECK(db.runs()[0].command == "first");
    SqliteDatabase reader(file.path, SqliteDatabase::Mode::read_only);
    CHECK_THROWS_WITH(reader.atomically([] {}), Catch::Contains("read-only"));
}

TEST_CASE("a store in a directory this process cannot write is read all the same", "[db]") {
    TempDb file("shipped");
    filled_db(file.path, 20);
    const std::size_t rows = SqliteDatabase(file.path, SqliteDatabase::Mode::read_only).query({}).size();
    REQUIRE(rows > 0);
    // The store alone in a directory of its own, as a package ships it: mode 0555, and the
    // reader is not its owner (root ignores the mode, so a root test reads as nobody).
    const fs::path shipped_dir = file.path.string() + ".d", shipped = shipped_dir / "system.db";
    fs::create_directories(shipped_dir);
    fs::copy_file(file.path, shipped);
    REQUIRE(read_bytes(shipped).substr(18, 2) == std::string("\x02\x02"));  // a WAL store, as every store libtune writes
    fs::permissions(shipped_dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) _exit(3);
        try {
            SqliteDatabase db(shipped, SqliteDatabase::Mode::read_only);
            _exit(db.query({}).size() == rows && db.verify().empty() ? 0 : 1);
        } catch (...) {
            _exit(2);
        }
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    fs::permissions(shipped_dir, fs::perms::owner_all);
    fs::remove_all(shipped_dir);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // 2: the open or a read failed, 1: rows missing
}

// True when opening or checking the damaged file reports the damage as tune::Error or
// through verify(); a crash or another exception type fails the test.
bool damage_noticed(const fs::path& path) {
    bool noticed = false;
    try {
        SqliteDatabase db(path);
        noticed = !db.verify().empty();
        db.query({});
        db.best({});
    } catch (const Error&) {
        noticed = true;
    }
    return noticed;
}

TEST_CASE("a damaged DB file gives tune::Error or a verify report, never a crash", "[db]") {
    TempDb file("damaged");
    filled_db(file.path, 400);
    const std::string bytes = read_bytes(file.path);
    REQUIRE(bytes.size() > 16 * 4096);
    SECTION("truncated mid-way") {
        for (std::size_t keep : {bytes.size() / 2, bytes.size() - 4096, std::size_t{4096 + 100},
                                 std::size_t{50}}) {
            INFO("kept " << keep << " of " << bytes.size() << " bytes");
            write_bytes(file.path, bytes.substr(0, keep));
            CHECK(damage_noticed(file.path));
        }
    }
    SECTION("garbage over one page") {
        for (std::size_t page : {1, 3, 8, 20}) {
            INFO("page " << page);
            std::string damaged = bytes;
            for (std::size_t i = 0; i < 4096; ++i)
                damaged[page * 4096 + i] = static_cast<char>(i * 131 + 7);
            write_bytes(file.path, damaged);
            CHECK(damage_noticed(file.path));
        }
    }
}

TEST_CASE("tampered rows are skipped by query and best, and reported by verify", "[db]") {
    TempDb file("tampered");
    const Problem p = make_gemm(128, 128, 128);
    {
        SqliteDatabase db(file.path);
        for (int i = 0; i < 7; ++i) REQUIRE(db.record(sample(p, config_of(1 + i), 1e-3 * (1 + i))));
    }
    raw_exec(file.path,
             "UPDATE measurements SET config = '{\"tile_m\": [1, 2]}' WHERE id = 1;"
             "UPDATE measurements SET config_hash = '0123456789abcdef' WHERE id = 2;"
             "UPDATE measurements SET median_s = -1 WHERE id = 3;"
             "UPDATE measurements SET status = 'great' WHERE id = 4;"
             "UPDATE measurements SET problem = '{\"op\": \"gemm\"}' WHERE id = 5;"
             "UPDATE measurements SET reps = 'many' WHERE id = 6;");
    SqliteDatabase db(file.path);
    std::vector<std::int64_t> bad;
    auto rows = db.query({}, [&](std::int64_t id, const std::string& why) {
        INFO(why);
        CHECK_FALSE(why.empty());
        bad.push_back(id);
    });
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].id == 7);
    CHECK(bad == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
    CHECK(db.query({}).size() == 1);  // no callback: skipped all the same

    auto best = db.best({});  // the SQL winners (rows 1-3) cannot be trusted: row 7 serves
    REQUIRE(best.size() == 1);
    CHECK(best[0].id == 7);

    auto problems = db.verify();
    REQUIRE(problems.size() == 6);
    CHECK_THAT(problems[0], Catch::StartsWith("measurement 1:") && Catch::Contains("config"));
    CHECK_THAT(problems[1], Catch::Contains("config_hash"));
    CHECK_THAT(problems[2], Catch::Contains("median_s"));
    CHECK_THAT(problems[3], Catch::Contains("great"));
    CHECK_THAT(problems[4], Catch::Contains("problem"));
    CHECK_THAT(problems[5], Catch::Contains("reps"));
}

TEST_CASE("read-only mode refuses writes and never modifies the file", "[db]") {
    TempDb file("readonly");
    filled_db(file.path, 20);
    std::string bytes = read_bytes(file.path);
    auto mtime = fs::last_write_time(file.path);
    {
        SqliteDatabase db(file.path, SqliteDatabase::Mode::read_only);
        CHECK(db.query({}).size() == 20);
        CHECK(db.best({}).size() == 20);
        CHECK(db.verify().empty());
        CHECK(db.schema_version() == SqliteDatabase::kSchemaVersion);
        CHECK_THROWS_WITH(db.record(sample(make_gemm(1, 1, 1), config_of(1), 1e-3)),
                          Catch::Contains("read-only"));
        CHECK_THROWS_AS(db.start_run({}, test_device()), Error);
        std::istringstream empty(R"({"format":"libtune-db","version":1,"devices":[],"measurements":[]})");
        CHECK_THROWS_AS(import_json(db, empty), Error);
    }
    CHECK(read_bytes(file.path) == bytes);
    CHECK(fs::last_write_time(file.path) == mtime);
}

TEST_CASE("export then import round-trips into a fresh DB", "[db]") {
    TempDb source_file("export"), target_file("import");
    SqliteDatabase source(source_file.path);
    auto cpu = test_device(), other = test_device("Other CPU");
    std::int64_t run = source.start_run({0, "tune", "random", 1, "", ""}, cpu);
    source.start_run({0, "tune", "random", 2, "", ""}, other);
    std::vector<Measurement> recorded = {
        sample(make_gemm(64, 64, 64), config_of(8), 1e-3),
        sample(make_gemm(64, 64, 64), config_of(16), 1e-4, Status::wrong_result),
        sample(make_gemm(32, 64, 64), config_of(8), 2e-3, Status::ok, other.id()),
    };
    recorded[1].error = std::nan("");
    for (auto& m : recorded) {
        m.run_id = run;
        REQUIRE(source.record(m));
    }
    std::stringstream json;
    export_json(source, json);

    SqliteDatabase target(target_file.path);
    CHECK(import_json(target, json) == 3);
    auto imported = target.query({});
    auto original = source.query({});
    REQUIRE(imported.size() == 3);
    REQUIRE(target.runs().size() == 1);
    CHECK(target.runs()[0].command == "import");
    for (std::size_t i = 0; i < 3; ++i) {
        original[i].run_id = target.runs()[0].id;
        require_same(imported[i], original[i]);
        CHECK(imported[i].created_at == original[i].created_at);
    }
    CHECK(target.devices().size() == 2);
    CHECK(target.verify().empty());

    json.clear();
    json.seekg(0);
    CHECK(import_json(target, json) == 0);  // duplicates are skipped
    CHECK(target.query({}).size() == 3);

    MeasurementFilter only_other;
    only_other.device_id = other.id();
    std::stringstream partial;
    export_json(source, partial, only_other);
    auto doc = nlohmann::json::parse(partial.str());
    CHECK(doc["measurements"].size() == 1);
    REQUIRE(doc["devices"].size() == 1);
    CHECK(doc["devices"][0].get<DeviceInfo>() == other);
}

TEST_CASE("an import file with one bad row writes nothing", "[db]") {
    TempDb source_file("export_bad"), target_file("import_bad");
    {
        SqliteDatabase source(source_file.path);
        for (int i = 0; i < 4; ++i)
            REQUIRE(source.record(sample(make_gemm(8 + i, 8, 8), config_of(i + 1), 1e-3)));
    }
    std::stringstream out;
    export_json(SqliteDatabase(source_file.path, SqliteDatabase::Mode::read_only), out);
    const auto good = nlohmann::json::parse(out.str());
    SqliteDatabase target(target_file.path);

    auto expect_refused = [&](nlohmann::json doc, const std::string& needle) {
        std::istringstream in(doc.dump());
        CHECK_THROWS_WITH(import_json(target, in), Catch::Contains(needle));
        CHECK(target.query({}).empty());
        CHECK(target.runs().empty());
        CHECK(target.devices().empty());
    };
    auto doc = good;
    doc["measurements"][2]["config_hash"] = "deadbeefdeadbeef";
    expect_refused(doc, "measurements[2]: 'config_hash'");
    doc = good;
    doc["measurements"][3]["stats"]["median_s"] = -1.0;
    expect_refused(doc, "measurements[3]");
    doc = good;
    doc["measurements"][1]["problem"]["m"] = 0;
    expect_refused(doc, "measurements[1]");
    doc = good;
    doc["measurements"][0]["config"] = {{"tile_m", 1.5}};
    expect_refused(doc, "measurements[0]");
    doc = good;
    doc["measurements"][0]["status"] = "fast";
    expect_refused(doc, "fast");
    for (const char* time : {"2099-99-99T99:99:99Z", "2026-02-30T24:00:00Z", "2026-01-01T00:00:00garbageZ",
                             "2026-01-01T00:00:00.Z"}) {
        INFO(time);
        doc = good;
        doc["measurements"][2]["created_at"] = time;
        expect_refused(doc, "measurements[2]: 'created_at'");
    }
    doc = good;
    doc["measurements"][2]["created_at"] = "2026-12-08T01:02:03.456Z";
    {
        std::istringstream in(doc.dump());
        CHECK_NOTHROW(read_export_json(in));
    }
    doc = good;
    doc["format"] = "something-else";
    expect_refused(doc, "format");
    doc = good;
    doc["version"] = 2;
    expect_refused(doc, "version 2");
    std::istringstream broken("{\"format\": \"libtune-db\", ");
    CHECK_THROWS_WITH(import_json(target, broken), Catch::Contains("not valid JSON"));

    std::istringstream in(good.dump());
    CHECK(import_json(target, in) == 4);
}
