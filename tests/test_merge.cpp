// tune db merge: stores of independent runs become one, every run kept as provenance and
// every measurement present once.
#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "scratch_dir.hpp"
#include "tune/cost_model/features.hpp"
#include "tune/cost_model/models.hpp"
#include "tune/cost_model/training.hpp"
#include "tune/db/sqlite_database.hpp"

#ifdef LIBTUNE_CLI_PATH
using namespace tune;

namespace {

int tune_cli(const std::string& args, std::string* out = nullptr) {
    auto r = testing::run_tune(args);
    if (out) *out = r.out;
    return r.code;
}

}  // namespace

TEST_CASE("tune db merge keeps every run and removes duplicates", "[merge][cli]") {
    testing::TempDir dir("merge");
    auto file = [&](const char* name) { return dir.file(name); };
    const std::string common = " --budget 4 --strategy random -q --time-limit 0";
    // Two runs overlap on the same shape (same seed: same candidates), one adds a new shape.
    REQUIRE(tune_cli("gemm --m 16 --n 16 --k 16 --seed 3 --db " + file("a.db") + common) == 0);
    REQUIRE(tune_cli("gemm --m 16 --n 16 --k 16 --seed 3 --db " + file("b.db") + common) == 0);
    REQUIRE(tune_cli("gemm --m 24 --n 8 --k 16 --seed 5 --db " + file("b.db") + common) == 0);
    std::size_t a_rows = SqliteDatabase(file("a.db"), SqliteDatabase::Mode::read_only).query({}).size();
    std::size_t b_rows = SqliteDatabase(file("b.db"), SqliteDatabase::Mode::read_only).query({}).size();

    std::string out;
    REQUIRE(tune_cli("db merge " + file("a.db") + " " + file("b.db") + " -o " + file("all.db"), &out) == 0);
    INFO(out);
    CHECK_THAT(out, Catch::Contains("merged 2 sources"));
    SqliteDatabase all(file("all.db"), SqliteDatabase::Mode::read_only);
    auto rows = all.query({});
    std::set<std::string> keys;
    for (const auto& m : rows)
        keys.insert(shape_key(m.problem) + m.device_id + m.template_name + m.template_version + m.config.hash_hex());
    CHECK(keys.size() == rows.size());
    CHECK(rows.size() < a_rows + b_rows);  // the overlap went in once
    std::size_t b_only = 0;
    SqliteDatabase b(file("b.db"), SqliteDatabase::Mode::read_only);
    for (const auto& m : b.query({})) b_only += gemm_dims(m.problem).m == 24;
    CHECK(rows.size() >= a_rows + b_only);
    auto runs = all.runs();
    CHECK(runs.size() == 3);  // a's run, b's two runs
    for (const auto& r : runs) CHECK_THAT(r.command, Catch::Contains("merged from"));
    CHECK(all.verify().empty());
    // Merging again adds nothing; a source as output is refused.
    REQUIRE(tune_cli("db merge " + file("b.db") + " -o " + file("all.db"), &out) == 0);
    CHECK_THAT(out, Catch::Contains(" 0 added"));
    CHECK(tune_cli("db merge " + file("a.db") + " -o " + file("a.db"), &out) != 0);
    CHECK_THAT(out, Catch::Contains("also a source"));
    CHECK(tune_cli("db merge " + file("missing.db") + " -o " + file("x.db"), &out) != 0);
    CHECK_FALSE(std::filesystem::exists(file("x.db")));
}

TEST_CASE("cost models travel with db merge and db export / import", "[merge][cli]") {
    testing::TempDir dir("merge");
    auto file = [&](const char* name) { return dir.file(name); };
    REQUIRE(tune_cli("gemm --m 16 --n 16 --k 16 --seed 3 --budget 3 --strategy random -q --time-limit 0 --db " +
                     file("a.db")) == 0);
    const std::string device = SqliteDatabase(file("a.db"), SqliteDatabase::Mode::read_only).devices().at(0).id();
    // Two small trained models that differ (their targets rise or fall with log_m).
    auto model = [&](double slope) {
        cost_model::Dataset d{{"log_m", "log_n"}, {}, {}};
        for (int i = 0; i < 8; ++i) {
            d.rows.push_back({double(i), double(i % 3)});
            d.targets.push_back(slope * i);
        }
        return cost_model::to_stored(*cost_model::GbdtModel::train(d), "cpu.gemm.blocked", device, 8);
    };
    const StoredModel ours = model(1), theirs = model(-1);
    REQUIRE(ours.body != theirs.body);
    SqliteDatabase(file("a.db")).save_model(ours);
    auto body_in = [&](const char* store) {
        auto m = SqliteDatabase(file(store), SqliteDatabase::Mode::read_only).load_model("gbdt", "cpu.gemm.blocked", device);
        return m ? m->body : std::string("(none)");
    };

    std::string out;
    REQUIRE(tune_cli("db merge " + file("a.db") + " -o " + file("merged.db"), &out) == 0);
    CHECK_THAT(out, Catch::Contains("cost models: 1 carried"));
    CHECK(body_in("merged.db") == ours.body);
    // An output with its own model keeps it.
    SqliteDatabase(file("mine.db")).save_model(theirs);
    REQUIRE(tune_cli("db merge " + file("a.db") + " -o " + file("mine.db"), &out) == 0);
    CHECK_THAT(out, Catch::Contains("cost models: 0 carried, 1 not"));
    CHECK(body_in("mine.db") == theirs.body);

    REQUIRE(tune_cli("db export --db " + file("a.db") + " -o " + file("a.json")) == 0);
    REQUIRE(tune_cli("db import " + file("a.json") + " --db " + file("imported.db"), &out) == 0);
    CHECK_THAT(out, Catch::Contains("cost models: 1 added"));
    CHECK(body_in("imported.db") == ours.body);
    // A damaged model in the file: refused, naming it, before the store is touched. Trees that
    // XGBoost cannot read are damage too, though every field is present.
    std::string text;
    {
        std::ifstream in(file("a.json"));
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto damaged = [&](const std::string& from, const std::string& to) {
        std::string t = text;
        const auto at = t.find(from);
        REQUIRE(at != std::string::npos);
        return t.replace(at, from.size(), to);
    };
    const std::string schema = "\"feature_schema\": " + std::to_string(cost_model::kFeatureSchema);
    std::ofstream(file("bad.json")) << damaged(schema, "\"feature_schema\": 0");
    std::ofstream(file("garbage.json")) << damaged(nlohmann::json(ours.body).dump(), "\"garbage\"");
    for (const char* bad : {"bad.json", "garbage.json"}) {
        INFO(bad);
        CHECK(tune_cli("db import " + file(bad) + " --db " + file("fresh.db"), &out) != 0);
        CHECK_THAT(out, Catch::Contains("models[0]") && !Catch::Contains("Stack trace"));
        CHECK_FALSE(std::filesystem::exists(file("fresh.db")));
    }
    // A merge source's damaged model stays behind, said so; its measurements still merge.
    StoredModel garbage = ours;
    garbage.body = "garbage";
    SqliteDatabase(file("a.db")).save_model(garbage);
    REQUIRE(tune_cli("db merge " + file("a.db") + " -o " + file("merged2.db"), &out) == 0);
    CHECK_THAT(out, Catch::Contains("the cost model of cpu.gemm.blocked is not carried") &&
                        Catch::Contains("cost models: 0 carried"));
    CHECK(body_in("merged2.db") == "(none)");
    CHECK(SqliteDatabase(file("merged2.db"), SqliteDatabase::Mode::read_only).query({}).size() ==
          SqliteDatabase(file("a.db"), SqliteDatabase::Mode::read_only).query({}).size());
}

TEST_CASE("tune db merge carries a confirmation round while it still ranks every candidate", "[merge][cli]") {
    testing::TempDir dir("merge-rounds");
    auto file = [&](const char* name) { return dir.file(name); };
    const std::string common = " --m 64 --n 64 --k 64 --strategy random -q --time-limit 0 --confirm-rounds 2";
    REQUIRE(tune_cli("gemm --seed 3 --budget 5 --db " + file("a.db") + common) == 0);
    REQUIRE(tune_cli("gemm --seed 11 --budget 12 --db " + file("b.db") + common) == 0);  // more candidates
    auto best_of = [](const std::string& path) {
        SqliteDatabase db(path, SqliteDatabase::Mode::read_only);
        auto best = db.best({});
        REQUIRE(best.size() >= 1);
        return best;
    };
    SqliteDatabase a(file("a.db"), SqliteDatabase::Mode::read_only);
    REQUIRE_FALSE(a.confirmations({}).empty());
    auto a_picks = confirmed_picks(a, {}, false);
    REQUIRE(a_picks.size() == 1);

    // Alone, a's round comes along and the merged store's pick is a's confirmed pick.
    std::string out;
    REQUIRE(tune_cli("db merge " + file("a.db") + " -o " + file("one.db"), &out) == 0);
    INFO(out);
    CHECK_THAT(out, Catch::Contains("confirmation rounds: 1 carried, 0 not"));
    SqliteDatabase one(file("one.db"), SqliteDatabase::Mode::read_only);
    CHECK(one.confirmations({}).size() == a.confirmations({}).size());
    auto one_picks = confirmed_picks(one, {}, false);
    REQUIRE(one_picks.size() == 1);
    CHECK(one_picks[0].measurement.config == a_picks[0].measurement.config);
    CHECK(one_picks[0].measurement.template_name == a_picks[0].measurement.template_name);
    CHECK(best_of(file("one.db"))[0].config == best_of(file("a.db"))[0].config);

    // b measured candidates a's round never saw, so a's round is not carried; b's is when b
    // measured every candidate of a too. Otherwise the merged pick is the fastest first measurement.
    REQUIRE(tune_cli("db merge " + file("a.db") + " " + file("b.db") + " -o " + file("both.db"), &out) == 0);
    SqliteDatabase both(file("both.db"), SqliteDatabase::Mode::read_only);
    SqliteDatabase b(file("b.db"), SqliteDatabase::Mode::read_only);
    REQUIRE(both.query({}).size() > a.query({}).size());
    std::set<std::string> in_b;
    for (const auto& m : b.query({})) in_b.insert(m.template_name + m.config.hash_hex());
    bool b_covers = true;
    for (const auto& m : a.query({})) b_covers = b_covers && in_b.count(m.template_name + m.config.hash_hex()) > 0;
    auto both_picks = confirmed_picks(both, {}, false);
    if (b_covers) {
        CHECK_THAT(out, Catch::Contains("confirmation rounds: 1 carried, 1 not"));
        CHECK(both.confirmations({}).size() == b.confirmations({}).size());
        REQUIRE(both_picks.size() == 1);
        CHECK(both_picks[0].measurement.config == confirmed_picks(b, {}, false).at(0).measurement.config);
    } else {
        CHECK_THAT(out, Catch::Contains("confirmation rounds: 0 carried, 2 not"));
        CHECK(both.confirmations({}).empty());
        CHECK(both_picks.empty());
    }
    CHECK(both.verify().empty());
}
TEST_CASE("tune db merge keeps each confirmation under the run that made it, one with no new rows too", "[merge][cli]") {
    testing::TempDir dir("merge-runs");
    auto file = [&](const char* name) { return dir.file(name); };
    const std::string common = " --m 16 --n 16 --k 16 --budget 3 --seed 3 --strategy random -q --time-limit 0";
    REQUIRE(tune_cli("gemm --db " + file("a.db") + common) == 0);
    // The second run measures nothing new (every candidate is reused) but adds rounds 3-5.
    REQUIRE(tune_cli("gemm --confirm-rounds 6 --db " + file("a.db") + common) == 0);
    SqliteDatabase a(file("a.db"), SqliteDatabase::Mode::read_only);
    std::map<std::pair<std::string, int>, std::int64_t> source_run;  // (finalist, round) -> run
    for (const Confirmation& c : a.confirmations({})) source_run[{c.template_name + c.config_hash, c.round}] = c.run_id;
    std::set<std::int64_t> confirming;
    for (const auto& [key, run] : source_run) confirming.insert(run);
    REQUIRE(confirming.size() == 2);

    std::string out;
    REQUIRE(tune_cli("db merge " + file("a.db") + " -o " + file("m.db"), &out) == 0);
    INFO(out);
    SqliteDatabase m(file("m.db"), SqliteDatabase::Mode::read_only);
    CHECK(m.verify().empty());
    const auto runs = m.runs();
    CHECK(runs.size() == 2);
    REQUIRE(m.confirmations({}).size() == source_run.size());
    for (const Confirmation& c : m.confirmations({})) {
        auto run = std::find_if(runs.begin(), runs.end(), [&](const RunInfo& r) { return r.id == c.run_id; });
        REQUIRE(run != runs.end());
        CHECK_THAT(run->command, Catch::Contains(" run " + std::to_string(source_run.at({c.template_name + c.config_hash, c.round})) +
                                                 " (started"));
    }
}

TEST_CASE("a store of an older schema is read only after tune db migrate", "[cli]") {
    testing::TempDir dir("migrate");
    const std::string db = dir.file("old.db");
    SqliteDatabase::create_at_version(db, 4);
    std::string out;
    CHECK(tune_cli("db list --db " + db, &out) != 0);  // read-only: refuses, and says how to migrate
    CHECK_THAT(out, Catch::Contains("schema version 4") && Catch::Contains("tune db migrate --db"));
    REQUIRE(tune_cli("db migrate --db " + db, &out) == 0);
    CHECK_THAT(out, Catch::Contains("schema v" + std::to_string(SqliteDatabase(db).schema_version())));
    CHECK(tune_cli("db list --db " + db) == 0);
    CHECK(tune_cli("db verify --db " + db) == 0);
}
#endif
