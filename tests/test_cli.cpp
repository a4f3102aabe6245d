// The tune command line: end to end on a tiny problem, and every bad input gives a clear
// message and a non-zero exit without touching the store.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "scratch_dir.hpp"
#include "tune/config.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/problem.hpp"

namespace fs = std::filesystem;
using tune::testing::run_tune;
using tune::testing::TempDir;
using tune::SqliteDatabase;

namespace {

std::string models() { return std::string(LIBTUNE_SOURCE_DIR) + "/examples/models/"; }

// Imports every row of `from` into `into` as an older build would have stored it: each row's
// template version changed (stale for this build).
void import_as_older_build(const std::string& from, const std::string& into, const TempDir& dir) {
    const std::string json = dir.file("rows.json"), old_json = dir.file("old.json");
    REQUIRE(run_tune("db export --db " + from + " -o " + json).code == 0);
    {
        std::ifstream in(json);
        auto doc = nlohmann::json::parse(in);
        for (auto& row : doc["measurements"]) row["template_version"] = "old-" + row["template_version"].get<std::string>();
        std::ofstream(old_json) << doc.dump();
    }
    REQUIRE(run_tune("db import " + old_json + " --db " + into).code == 0);
}

}  // namespace

TEST_CASE("tune gemm, lookup and db verbs work end to end", "[cli]") {
    TempDir dir("cli");
    std::string db = dir.file("t.db");
    auto r = run_tune("gemm --m 8 --n 40 --k 24 --budget 6 --time-limit 30 --seed 3 -q --db " + db);
    REQUIRE(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("best config") && Catch::Contains("vs OpenBLAS"));

    auto again = run_tune("gemm --m 8 --n 40 --k 24 --budget 6 --time-limit 30 --seed 3 --db " + db);
    REQUIRE(again.code == 0);
    CHECK_THAT(again.out, Catch::Contains("6 reused"));

    auto exact = run_tune("lookup gemm --m 8 --n 40 --k 24 --db " + db);
    CHECK(exact.code == 0);
    CHECK_THAT(exact.out, Catch::Contains("source:   exact"));
    auto nearest = run_tune("lookup gemm --m 9 --n 40 --k 24 --db " + db);
    CHECK_THAT(nearest.out, Catch::Contains("source:   nearest"));
    auto fallback = run_tune("lookup gemm --m 9 --n 40 --k 24 --trans-a 1 --db " + db);
    CHECK_THAT(fallback.out, Catch::Contains("source:   default"));

    auto list = run_tune("db list --db " + db);
    CHECK(list.code == 0);
    CHECK_THAT(list.out, Catch::Contains("gemm f32 batch=1 m=8 n=40 k=24"));
    auto show = run_tune("db show --db " + db + " \"gemm f32 batch=1 m=8 n=40 k=24 trans_a=0 trans_b=0 bias=0 act=none residual=0\"");
    CHECK(show.code == 0);
    CHECK_THAT(show.out, Catch::Contains("6 measurements"));
    CHECK(run_tune("db verify --db " + db).code == 0);

    std::string json = dir.file("t.json"), db2 = dir.file("copy.db");
    REQUIRE(run_tune("db export --db " + db + " -o " + json).code == 0);
    auto imp = run_tune("db import " + json + " --db " + db2);
    CHECK(imp.code == 0);
    CHECK_THAT(imp.out, Catch::Contains("imported 6"));
    CHECK_THAT(run_tune("lookup gemm --m 8 --n 40 --k 24 --db " + db2).out, Catch::Contains("source:   exact"));
}

TEST_CASE("tune model tunes a config.json's layer GEMMs and attention", "[cli]") {
    TempDir dir("cli");
    std::string cfg = dir.file("tiny.json");
    std::ofstream(cfg) << R"({"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,
                             "intermediate_size":96,"hidden_act":"silu"})";
    auto r = run_tune("model " + cfg + " --tokens 1,3 --budget 3 --kv-len 64 -q --db " + dir.file("m.db"));
    REQUIRE(r.code == 0);
    // 8 GEMMs, the fused SwiGLU at 1 and 3 tokens, a causal prefill at 3 tokens and a decode step.
    CHECK_THAT(r.out, Catch::Contains("qkv_proj") && Catch::Contains("mlp_gate_up") && Catch::Contains("mlp_swiglu") &&
                          Catch::Contains("attention_prefill") && Catch::Contains("attention_decode") &&
                          Catch::Contains("12 problems tuned"));
    CHECK_THAT(run_tune("db list --db " + dir.file("m.db")).out, Catch::Contains("swiglu f32 m=3 n=96 k=64"));
    // --swiglu-budget 0 leaves the fused MLP out; a model whose MLP is not SwiGLU has none.
    auto no_swiglu = run_tune("model " + cfg + " --tokens 1,3 --swiglu-budget 0 --list --db " + dir.file("none.db"));
    REQUIRE(no_swiglu.code == 0);
    CHECK_THAT(no_swiglu.out, !Catch::Contains("swiglu") && Catch::Contains("-> 10 problems"));
    // A serving engine's decode step reads a paged KV cache: --kv-page makes the decode problem paged.
    auto paged = run_tune("model " + cfg + " --tokens 3 --budget 3 --kv-len 64 --kv-page 16 -q --db " + dir.file("m.db"));
    REQUIRE(paged.code == 0);
    CHECK_THAT(paged.out, Catch::Contains("paged 16"));
    auto keys = run_tune("db list --db " + dir.file("m.db"));
    CHECK_THAT(keys.out, Catch::Contains("kv_len=64 head_dim=16 causal=1 window=0 backward=0 page=16"));
    CHECK(run_tune("model " + cfg + " --kv-page -1 --db " + dir.file("m.db")).code != 0);
    // --list prints what a config yields and measures nothing: no store is created.
    auto listed = run_tune("model " + models() + "gemma-2-9b.json --tokens 1,64 --list --db " + dir.file("none.db"));
    REQUIRE(listed.code == 0);
    CHECK_THAT(listed.out, Catch::Contains("gemma2 hidden 3584") && Catch::Contains("not modelled: attention logit") &&
                               Catch::Contains("attention_prefill_local") && Catch::Contains("window 4096 scale 0.0625") &&
                               !Catch::Contains("swiglu"));  // GeGLU
    CHECK_FALSE(std::filesystem::exists(dir.file("none.db")));
    CHECK(run_tune("model " + cfg + " --list --buckets m:pow2 --db " + dir.file("none.db")).code != 0);
}

TEST_CASE("tune model keys the GEMMs by the layout the runtime holds the weights in", "[cli]") {
    TempDir dir("cli");
    std::string cfg = dir.file("gpt2.json"), db = dir.file("m.db");
    std::ofstream(cfg) << R"({"model_type":"gpt2","n_embd":64,"n_head":4,"n_layer":2})";
    // A runtime multiplying GPT-2's Conv1D weights as stored ([in, out]) looks up trans_b = 0.
    auto r = run_tune("model " + cfg + " --tokens 2 --budget 2 --attention-budget 0 --weight-layout in-out -q --db " + db);
    REQUIRE(r.code == 0);
    CHECK_THAT(r.out, !Catch::Contains("note: gpt2 checkpoints"));
    CHECK_THAT(run_tune("lookup gemm --m 2 --n 192 --k 64 --trans-b 0 --db " + db).out, Catch::Contains("source:   exact"));
    CHECK_THAT(run_tune("lookup gemm --m 2 --n 192 --k 64 --trans-b 1 --db " + db).out, !Catch::Contains("source:   exact"));
    // The default is nn.Linear's [out, in]; for GPT-2 the listing says how its checkpoints differ.
    auto listed = run_tune("model " + cfg + " --tokens 2 --list --db " + dir.file("none.db"));
    REQUIRE(listed.code == 0);
    CHECK_THAT(listed.out, Catch::Contains("note: gpt2 checkpoints store the weights in-out; these GEMMs hold them "
                                           "out-in (--weight-layout)"));
}

TEST_CASE("tune attention tunes one problem, forward or backward, under a workspace cap", "[cli][attention]") {
    TempDir dir("cli");
    const std::string db = dir.file("a.db");
    const std::string shape = "attention --heads 4 --kv-heads 2 --q-len 33 --kv-len 33 --head-dim 32 --causal";
    auto r = run_tune(shape + " --budget 4 --max-workspace 64KiB -q --db " + db);
    REQUIRE(r.code == 0);
    // The unfused template's 33 x 33 score matrix fits 64 KiB; the table names the winner.
    CHECK_THAT(r.out, Catch::Contains("4/2h 33x33 d32 causal") && Catch::Contains("cpu.attention."));
    r = run_tune(shape + " --backward --budget 3 -q --db " + db);
    REQUIRE(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("backward") && Catch::Contains("cpu.attention.backward"));
    r = run_tune("db list --db " + db);
    CHECK_THAT(r.out, Catch::Contains("backward=1") && Catch::Contains("backward=0"));
}

TEST_CASE("bad input names the problem and exits non-zero", "[cli]") {
    TempDir dir("cli");
    std::string db = dir.file("x.db");
    struct Case {
        std::string args, expect;
    };
    std::string bad_json = dir.file("bad.json"), no_hidden = dir.file("nohidden.json"), garbage_db = dir.file("garbage.db");
    std::ofstream(bad_json) << "{\"hidden_size\": 64,";
    std::ofstream(no_hidden) << R"({"num_attention_heads": 4})";
    std::ofstream(garbage_db) << std::string(5000, 'x');
    std::string latent = dir.file("latent.json"), junk = dir.file("junk.json"), record_dir = dir.file("records");
    std::ofstream(latent) << R"({"hidden_size": 64, "num_attention_heads": 4, "kv_lora_rank": 16})";
    std::ofstream(junk) << R"({"hidden_size": 64, "num_attention_heads": 4} garbage)";
    fs::create_directories(record_dir);
    const std::string empty = dir.file("empty.db");
    std::ofstream{empty};
    const std::string gemm = "gemm --m 4 --n 4 --k 4 ";
    std::vector<Case> cases{
        {"model /nonexistent/config.json --db " + db, "cannot open"},
        {"model " + bad_json + " --db " + db, "not valid JSON"},
        {"model " + no_hidden + " --db " + db, "hidden_size"},
        {"model " + latent + " --db " + db, "multi-head latent attention"},
        {"model " + models() + "gpt2.json --tokens 1,x --db " + db, "--tokens"},
        {"model " + models() + "gpt2.json --tokens 1, --db " + db, "--tokens: '' is not"},
        {"gemm --m 0 --n 4 --k 4 --db " + db, "'m' must be >= 1"},
        {"gemm --m -5 --n 4 --k 4 --db " + db, "'m'"},
        {"gemm --m 4 --n 99999999999999999999 --k 4 --db " + db, "--n"},
        {"gemm --m 4000000000 --n 4000000000 --k 4000000000 --db " + db, "overflows"},
        {"gemm --m 4 --n 4 --k 4 --dtype f8 --db " + db, "--dtype"},
        {"gemm --m 4 --n 4 --k 4 --backend tpu --db " + db, "--backend"},
        {"sweep --m 4 --n 4 --k 4 --backend tpu --db " + db, "--backend"},
        {"sweep --m 4 --n 4 --k 4 --template cpu.gemm.nonexistent --db " + db, "unknown template"},
        {"gemm --m 4 --n 4 --k 4 --strategy magic --db " + db, "magic"},
        {"gemm --m 4 --n 4 --db " + db, "--k"},
        {"lookup conv --m 4", "unknown value 'conv'"},
        {"lookup swiglu --m 4 --n 4 --k 4 --trans-b 1 --db " + db, "--trans-b: does not apply to swiglu"},
        {"gemm --m 4 --n 4 --k 4 --act relu --db " + db, "gelu"},
        {"gemm --m 4 --n 4 --k 4 --tolerance -1 --db " + db, "--tolerance"},
        {"lookup gemm --m 4 --n 4 --k 4 --db " + garbage_db, garbage_db},
        {"lookup gemm --m 4 --n 4 --k 4 --db " + dir.file("missing.db"), "missing.db"},
        {"db verify --db " + garbage_db, garbage_db},
        {"db import /nonexistent.json --db " + db, "nonexistent.json"},
        {"db migrate --db " + dir.file("missing.db"), "no such file"},
        {"attention --heads 6 --kv-heads 4 --q-len 8 --kv-len 8 --head-dim 16 --db " + db, "multiple of kv_heads"},
        {"attention --heads 4 --kv-heads 2 --q-len 8 --head-dim 16 --db " + db, "--kv-len"},
        {"attention --heads 4 --kv-heads 2 --q-len 8 --kv-len 8 --head-dim 16 --causal 2 --db " + db, "'causal'"},
        {"attention --heads 4 --kv-heads 2 --q-len 8 --kv-len 8 --head-dim 16 --max-workspace 12XB --db " + db,
         "--max-workspace"},
        {"model " + junk + " --list", "not valid JSON"},
        {gemm + "--db ''", "--db: the database path is empty"},
        {gemm + "--db :memory:", "':memory:' would keep nothing"},
        {gemm + "--tolerance nan --db " + db, "--tolerance"},
        {gemm + "--time-limit nan --db " + db, "--time-limit"},
        {gemm + "--seed -1 --db " + db, "--seed"},
        {gemm + "--seed 99999999999999999999 --db " + db, "--seed"},
        {gemm + "--dtype f16 --db " + db, "no template can compute"},
        {"model " + models() + "gpt2.json --attention-budget -1 --db " + db, "--attention-budget"},
        {"model " + models() + "gpt2.json --list --strategy magic --db " + db, "magic"},
        {"model " + models() + "gpt2.json --list --regret --db " + db, "--regret: needs --buckets"},
        {"model " + models() + "gpt2.json --list --weight-layout io --db " + db, "expected out-in or in-out, got 'io'"},
        {"model " + models() + "gpt2.json --tokens 1,8 --buckets m:1,4 --db " + db, "token count 8 lies above the last bound of 'm:1,4'"},
        {"model " + models() + "gpt2.json --tokens 1,8 --buckets kv_len:pow2 --db " + db, "buckets a GEMM size dim"},
        {"model " + models() + "gpt2.json --tokens 1,8 --buckets 'm:pow2;k:1,2' --db " + db, "has k=768, above the last bound of 'k:1,2'"},
        {"recorded --from " + record_dir + " --db " + db, "is a directory"},
        {"db import " + record_dir + " --db " + db, "is a directory"},
        {"db import " + bad_json + " --db " + db, "not valid JSON"},
        {"db import " + bad_json + " --db ''", "--db: the database path is empty"},
        {"db prune --db " + empty, "is an empty file"},
        {"db lsit", "not expected: lsit"},
        {"db", "give a verb: list, best"},
        {"retune --db " + empty, "is an empty file"},
        {"db migrate --db " + empty, "is an empty file"},
    };
    for (const auto& c : cases) {
        INFO(c.args);
        auto r = run_tune(c.args);
        CHECK(r.code != 0);
        CHECK_THAT(r.out, Catch::Contains(c.expect));
    }
    // Failed commands never created or damaged a store: each checks its input before it opens one.
    CHECK_FALSE(fs::exists(dir.file("missing.db")));
    CHECK_FALSE(fs::exists(db));
    CHECK(fs::file_size(empty) == 0);
    std::ifstream g(garbage_db);
    std::string content((std::istreambuf_iterator<char>(g)), {});
    CHECK(content == std::string(5000, 'x'));
}

TEST_CASE("an output never replaces the store it is made from, and a failed write is an error", "[cli]") {
    TempDir dir("cli-out");
    const std::string db = dir.file("t.db");
    REQUIRE(run_tune("gemm --m 4 --n 8 --k 8 --budget 2 --time-limit 10 -q --db " + db).code == 0);
    auto bytes = [](const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        return std::string((std::istreambuf_iterator<char>(in)), {});
    };
    const std::string before = bytes(db);
    struct Case {
        std::string args, expect;
    };
    for (const Case& c : std::vector<Case>{{"db export --db " + db + " -o " + db, "writing it would destroy it"},
                                           {"db export --db " + db + " -o " + dir.path.string() + "/./t.db", "writing it would destroy it"},
                                           {"report --db " + db + " --html " + db, "writing it would destroy it"},
                                           {"db export --db " + db + " -o " + dir.path.string(), "is a directory"},
                                           {"db export --db " + db + " > /dev/full", "standard output"},
                                           {"db list --db " + db + " > /dev/full", "standard output"}}) {
        INFO(c.args);
        auto r = run_tune(c.args);
        CHECK(r.code != 0);
        if (c.args.find("/dev/full") == std::string::npos) CHECK_THAT(r.out, Catch::Contains(c.expect));
    }
    CHECK(bytes(db) == before);
    CHECK(run_tune("db verify --db " + db).code == 0);
    for (const auto& entry : fs::directory_iterator(dir.path))  // no partial output left behind
        CHECK(entry.path().extension() != ".partial");
}

TEST_CASE("tune db verify reports the rows a runtime would refuse: configs their template spaces reject", "[cli]") {
    TempDir dir("cli-verify");
    const std::string db = dir.file("t.db"), json = dir.file("rows.json"), bad = dir.file("bad.db");
    REQUIRE(run_tune("gemm --m 4 --n 8 --k 8 --budget 3 --time-limit 10 -q --db " + db).code == 0);
    REQUIRE(run_tune("db export --db " + db + " -o " + json).code == 0);
    nlohmann::json doc;
    {
        std::ifstream in(json);
        doc = nlohmann::json::parse(in);
    }
    // One ok row of the own template gets a config its space refuses, with a matching hash:
    // the file is sound, the row is not servable.
    bool changed = false;
    for (auto& row : doc["measurements"]) {
        if (changed || row["template"] != "cpu.gemm.blocked" || row["status"] != "ok") continue;
        row["config"]["threads"] = 999;
        row["config_hash"] = row["config"].get<tune::Config>().hash_hex();
        changed = true;
    }
    REQUIRE(changed);
    std::ofstream(dir.file("bad.json")) << doc.dump();
    REQUIRE(run_tune("db import " + dir.file("bad.json") + " --db " + bad).code == 0);
    auto r = run_tune("db verify --db " + bad);
    CHECK(r.code != 0);
    CHECK_THAT(r.out, Catch::Contains("cpu.gemm.blocked config") && Catch::Contains("threads"));
    CHECK(run_tune("db verify --db " + db).code == 0);
    // Prune leaves such a row alone and does not rank it.
    auto pruned = run_tune("db prune --keep 1 --dry-run --db " + bad);
    CHECK(pruned.code == 0);
    CHECK_THAT(pruned.out, Catch::Contains("1 a runtime would refuse"));
}

TEST_CASE("LIBTUNE_NUM_THREADS limits the threads of every measured config and a bad value stops the run", "[cli]") {
    TempDir dir("cli_threads");
    const std::string db = dir.file("t.db");
    struct Restore {
        ~Restore() { ::unsetenv("LIBTUNE_NUM_THREADS"); }
    } restore;
    ::setenv("LIBTUNE_NUM_THREADS", "1", 1);
    auto r = run_tune("gemm --m 8 --n 40 --k 24 --budget 6 --time-limit 30 --seed 3 -q --db " + db);
    REQUIRE(r.code == 0);
    const auto show = run_tune("db show --db " + db);
    REQUIRE(show.code == 0);
    CHECK_THAT(show.out, Catch::Contains("threads=1"));
    CHECK_THAT(show.out, !Catch::Contains("threads=2"));

    ::setenv("LIBTUNE_NUM_THREADS", "lots", 1);
    const auto bad = run_tune("gemm --m 8 --n 40 --k 24 --budget 6 -q --db " + dir.file("bad.db"));
    CHECK(bad.code != 0);
    CHECK_THAT(bad.out, Catch::Contains("LIBTUNE_NUM_THREADS='lots'"));
    CHECK_FALSE(fs::exists(dir.file("bad.db")));
}

TEST_CASE("tune db stats and prune report and shrink a store with stale rows", "[cli][housekeeping]") {
    TempDir dir("cli");
    std::string db = dir.file("h.db");
    REQUIRE(run_tune("gemm --m 8 --n 40 --k 24 --budget 6 --in-process -q --db " + db).code == 0);
    // Rows of an older build of the same templates next to the current ones.
    import_as_older_build(db, db, dir);
    auto before = run_tune("lookup gemm --m 8 --n 40 --k 24 --db " + db);

    auto stats = run_tune("db stats --db " + db);
    REQUIRE(stats.code == 0);
    CHECK_THAT(stats.out, Catch::Contains("rows:      12") && Catch::Contains("stale:     6 rows") &&
                              Catch::Contains("keys:      1 shapes") && Catch::Contains("runs:      2"));
    auto dry = run_tune("db prune --keep 1 --dry-run --db " + db);
    REQUIRE(dry.code == 0);
    CHECK_THAT(dry.out, Catch::Contains("would drop") && Catch::Contains("6 of stale template versions"));
    CHECK_THAT(run_tune("db stats --db " + db).out, Catch::Contains("rows:      12"));
    // A dry run on an older store writes nothing: it says to migrate instead of migrating.
    const std::string old_store = dir.file("v5.db");
    SqliteDatabase::create_at_version(old_store, 5);
    auto old_dry = run_tune("db prune --dry-run --db " + old_store);
    CHECK(old_dry.code != 0);
    CHECK_THAT(old_dry.out, Catch::Contains("migrate it first"));
    CHECK_THROWS_WITH(SqliteDatabase(old_store, SqliteDatabase::Mode::read_only), Catch::Contains("schema version 5"));

    auto prune = run_tune("db prune --keep 1 --db " + db);
    REQUIRE(prune.code == 0);
    CHECK_THAT(prune.out, Catch::Contains("dropped") && Catch::Contains("size:"));
    CHECK_THAT(run_tune("db stats --db " + db).out, Catch::Contains("stale:     0 rows"));
    CHECK(run_tune("db verify --db " + db).code == 0);
    // The runtime's answer is unchanged: same template, config and snapshot id (only the
    // count of stale rows it skipped differs).
    auto after = run_tune("lookup gemm --m 8 --n 40 --k 24 --db " + db);
    auto answer = [](const std::string& text) { return text.substr(0, text.find("store:")); };
    CHECK(answer(after.out) == answer(before.out));
    auto snapshot = [](const std::string& text) { return text.substr(text.find("snapshot ")); };
    CHECK(snapshot(after.out) == snapshot(before.out));

    std::string garbage = dir.file("garbage.db");
    std::ofstream(garbage) << std::string(3000, 'x');
    for (std::string verb : {"stats", "prune"}) {
        auto missing = run_tune("db " + verb + " --db " + dir.file("nope.db"));
        CHECK(missing.code != 0);
        CHECK_THAT(missing.out, Catch::Contains("nope.db"));
        auto bad = run_tune("db " + verb + " --db " + garbage);
        CHECK(bad.code != 0);
        CHECK_THAT(bad.out, Catch::Contains("garbage.db"));
    }
    CHECK_FALSE(fs::exists(dir.file("nope.db")));
    CHECK(run_tune("db prune --keep 0 --db " + db).code != 0);
}

TEST_CASE("tune retune re-tunes the shapes whose rows are all of older template versions", "[cli][housekeeping]") {
    TempDir dir("cli_retune");
    const std::string fresh = dir.file("fresh.db"), db = dir.file("upgraded.db");
    REQUIRE(run_tune("gemm --m 8 --n 40 --k 24 --budget 4 --in-process -q --db " + fresh).code == 0);
    REQUIRE(run_tune("gemm --m 3 --n 16 --k 8 --budget 4 --in-process -q --db " + fresh).code == 0);
    // A store written by an older build only.
    import_as_older_build(fresh, db, dir);
    CHECK_THAT(run_tune("lookup gemm --m 8 --n 40 --k 24 --db " + db).out, !Catch::Contains("source:   exact"));

    auto retune = run_tune("retune --db " + db + " --budget 4 --in-process -q");
    REQUIRE(retune.code == 0);
    CHECK_THAT(retune.out, Catch::Contains("2 shapes with rows of older template versions"));
    CHECK_THAT(retune.out, Catch::Contains("2 problems tuned"));
    for (const std::string dims : {"--m 8 --n 40 --k 24", "--m 3 --n 16 --k 8"})
        CHECK_THAT(run_tune("lookup gemm " + dims + " --db " + db).out, Catch::Contains("source:   exact"));

    // Every shape now has current rows: nothing left to do, and nothing measured.
    auto again = run_tune("retune --db " + db + " --budget 4 --in-process -q");
    REQUIRE(again.code == 0);
    CHECK_THAT(again.out, Catch::Contains("nothing to re-tune"));
    CHECK_THAT(run_tune("db stats --db " + db).out, Catch::Contains("runs:      2"));  // the import's and the retune's

    auto missing = run_tune("retune --db " + dir.file("nope.db"));
    CHECK(missing.code != 0);
    CHECK_THAT(missing.out, Catch::Contains("nope.db") && Catch::Contains("does not exist"));
    CHECK_FALSE(fs::exists(dir.file("nope.db")));
}

TEST_CASE("tune recorded tunes recorded attention shapes too", "[cli][attention]") {
    TempDir dir("cli_recorded");
    const std::string record = dir.file("seen.jsonl"), db = dir.file("r.db");
    std::ofstream(record) << nlohmann::json{{"problem", tune::make_attention(1, 4, 2, 5, 9, 16, true)}, {"count", 3}}.dump()
                          << "\n"
                          << nlohmann::json{{"problem", tune::make_gemm(3, 16, 8)}, {"count", 1}}.dump() << "\n";
    auto r = run_tune("recorded --from " + record + " --budget 2 --in-process -q --db " + db);
    REQUIRE(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("2 distinct shapes") && Catch::Contains("2 problems tuned"));
    CHECK_THAT(r.out, Catch::Contains("attention (seen 3x)"));
}

TEST_CASE("tune model --buckets tunes bucket representatives, and lookups serve them with their regret", "[cli][buckets]") {
    TempDir dir("cli");
    std::string cfg = dir.file("tiny.json"), db = dir.file("b.db");
    std::ofstream(cfg) << R"({"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,
                             "intermediate_size":96,"hidden_act":"silu"})";
    auto r = run_tune("model " + cfg + " --tokens 1,8 --buckets m:1,4,8 --regret --regret-samples 1 --regret-budget 2 "
                  "--budget 2 --in-process -q --db " + db);
    REQUIRE(r.code == 0);
    // Representatives m = 1, 4, 8; regret on m = 2 (bucket 2..4) and m = 5 (bucket 5..8).
    CHECK_THAT(r.out, Catch::Contains("12 problems tuned") && Catch::Contains("bucket regret") &&
                          Catch::Contains("5..8") && Catch::Contains("regret over 8 shapes"));
    auto bucket = run_tune("lookup gemm --m 3 --n 64 --k 64 --trans-b 1 --db " + db);
    CHECK(bucket.code == 0);
    CHECK_THAT(bucket.out, Catch::Contains("source:   bucket") && Catch::Contains("m=4 n=64") &&
                               Catch::Contains("m:1,4,8") && Catch::Contains("regret:"));
    CHECK_THAT(run_tune("lookup gemm --m 4 --n 64 --k 64 --trans-b 1 --db " + db).out, Catch::Contains("source:   exact"));
    CHECK_THAT(run_tune("lookup gemm --m 9 --n 64 --k 64 --trans-b 1 --db " + db).out, Catch::Contains("source:   nearest"));

    auto bad = run_tune("model " + cfg + " --buckets m:4,2 --db " + db);
    CHECK(bad.code != 0);
    CHECK_THAT(bad.out, Catch::Contains("--buckets") && Catch::Contains("ascending"));
    auto no_buckets = run_tune("model " + cfg + " --regret --db " + db);
    CHECK(no_buckets.code != 0);
    CHECK_THAT(no_buckets.out, Catch::Contains("--regret"));
}

TEST_CASE("tune sweep records spaces, and model-report re-measures each unseen pick beside the best", "[cli][cost_model]") {
    TempDir dir("cli");
    std::string db = dir.file("rec.db");
    // One blocking, every micro-kernel this CPU has: a few configs per shape, on any x86-64.
    const std::string only = " --trans-b 1 --only 'mc=48 kc=128 nc=384 pack_a=0 pack_b=1 threads=1 split=m' -q --db " + db;
    for (const char* dims : {"--m 8 --n 64 --k 64", "--m 16 --n 64 --k 64", "--m 32 --n 64 --k 128"}) {
        auto sweep = run_tune(std::string("sweep ") + dims + only);
        REQUIRE(sweep.code == 0);
        CHECK_THAT(sweep.out, Catch::Contains("0 failed"));
    }
    auto report = run_tune("model-report --min-configs 2 --verify 2 --db " + db);
    REQUIRE(report.code == 0);
    CHECK_THAT(report.out, Catch::Contains("pick loss re-measured") && Catch::Contains("m=16 n=64 k=64"));
    CHECK_THAT(report.out, !Catch::Contains("inf%") && !Catch::Contains("nan%"));
    auto bad = run_tune("model-report --min-configs 2 --verify 101 --db " + db);
    CHECK(bad.code != 0);
    CHECK_THAT(bad.out, Catch::Contains("--verify"));
}
