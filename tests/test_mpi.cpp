// Distributed tuning under mpirun -np 3 (rank 0 coordinates, two ranks measure), compared
// with one process tuning the same problems with the same seed and budget. Built only when
// MPI and mpirun are found (tests/CMakeLists.txt registers a skipped test otherwise).
#ifdef LIBTUNE_MPIEXEC
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "scratch_dir.hpp"
#include "tune/db/sqlite_database.hpp"

using namespace tune;
namespace fs = std::filesystem;

namespace {

struct Run {
    int code = -1;
    std::string out, err;
    nlohmann::json summary;  // tune_mpi_check's last stdout line, when it printed one
};

using testing::TempDir;

Run shell(const std::string& command, const TempDir& dir) {
    // mpirun refuses root unless told; harmless for other users.
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    const std::string err_file = dir.file("stderr.txt");
    FILE* p = ::popen((command + " 2> " + err_file).c_str(), "r");
    REQUIRE(p != nullptr);
    Run r;
    std::array<char, 4096> buf;
    while (std::size_t n = std::fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
    int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(err_file);
    r.err.assign(std::istreambuf_iterator<char>(in), {});
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty() && line.front() == '{') r.summary = nlohmann::json::parse(line);
    return r;
}

std::string mpirun(const std::string& extra = "") {
    return std::string(LIBTUNE_MPIEXEC) + " -np 3 --oversubscribe --bind-to none " + extra + " ";
}

std::string check_tool(const std::string& args) { return std::string(LIBTUNE_MPI_CHECK_PATH) + " " + args; }

// (shape key, template, config, status) of every stored measurement, sorted.
using Row = std::tuple<std::string, std::string, std::string, std::string>;
std::vector<Row> stored_rows(const std::string& db_path) {
    SqliteDatabase db(db_path, SqliteDatabase::Mode::read_only);
    std::vector<Row> rows;
    for (const auto& m : db.query({}))
        rows.emplace_back(shape_key(m.problem), m.template_name, m.config.text(), std::string(to_string(m.status)));
    std::sort(rows.begin(), rows.end());
    return rows;
}

std::vector<std::string> best_table(const std::string& db_path) {
    SqliteDatabase db(db_path, SqliteDatabase::Mode::read_only);
    std::vector<std::string> out;
    for (const auto& m : db.best({})) out.push_back(shape_key(m.problem) + " " + m.template_name + " " + m.config.text());
    std::sort(out.begin(), out.end());
    return out;
}

// Each (shape, template, config) at most once: a candidate measured twice would show here
// (the store keeps the first and refuses the second, so also compare with the run's count).
bool each_once(const std::vector<Row>& rows) {
    std::set<std::tuple<std::string, std::string, std::string>> seen;
    for (const auto& [key, tmpl, config, status] : rows)
        if (!seen.insert({key, tmpl, config}).second) return false;
    return true;
}

const std::string kArgs = "--seed 11 --budget 10 --delay-ms 20";

// Rank 2 was declared lost mid-run and the run still completed with exactly the single
// process's candidates, each stored once, and its best configs.
void check_rank_2_lost_nothing(const Run& spread, const Run& single, const TempDir& dir) {
    INFO(spread.out << spread.err);
    REQUIRE(spread.code == 0);
    REQUIRE(spread.summary.is_object());
    REQUIRE(spread.summary["lost"].size() == 1);
    CHECK_THAT(spread.summary["lost"][0].get<std::string>(), Catch::StartsWith("rank 2"));
    CHECK_THAT(spread.err, Catch::Contains("goes to another rank"));
    auto rows = stored_rows(dir.file("mpi.db"));
    CHECK(rows.size() == spread.summary["measured"].get<std::size_t>());
    CHECK(each_once(rows));
    CHECK(rows == stored_rows(dir.file("single.db")));
    CHECK(spread.summary["best"] == single.summary["best"]);
}

}  // namespace

TEST_CASE("mpirun -np 3 tunes the same candidates and best configs as one process", "[mpi]") {
    TempDir dir("mpi");
    Run single = shell(check_tool(kArgs + " --db " + dir.file("single.db")), dir);
    INFO(single.err);
    REQUIRE(single.code == 0);
    Run spread = shell(mpirun() + check_tool(kArgs + " --mpi --db " + dir.file("mpi.db")), dir);
    INFO(spread.out << spread.err);
    REQUIRE(spread.code == 0);
    REQUIRE(spread.summary.is_object());
    CHECK(spread.summary["measuring_ranks"] == 2);
    CHECK(spread.summary["lost"].empty());

    auto rows = stored_rows(dir.file("mpi.db"));
    CHECK(rows.size() == spread.summary["measured"].get<std::size_t>());  // nothing measured twice
    CHECK(each_once(rows));
    CHECK(rows.size() > 30);
    CHECK(spread.summary["reused"].get<std::size_t>() >= 10);  // the repeated shape reused, not re-measured
    CHECK(rows == stored_rows(dir.file("single.db")));
    CHECK(spread.summary["best"] == single.summary["best"]);
    CHECK(best_table(dir.file("mpi.db")) == best_table(dir.file("single.db")));
}

TEST_CASE("ranks on one host take turns measuring, ranks on different hosts measure at once", "[mpi]") {
    TempDir dir("mpi");
    Run single = shell(check_tool(kArgs + " --db " + dir.file("single.db")), dir);
    REQUIRE(single.code == 0);
    fs::create_directories(dir.path / "same");
    Run same = shell(mpirun() + check_tool(kArgs + " --mpi --overlap-dir " + (dir.path / "same").string() +
                                           " --db " + dir.file("same.db")),
                     dir);
    INFO(same.out << same.err);
    REQUIRE(same.code == 0);
    CHECK(same.summary["measuring_ranks"] == 2);
    CHECK(same.summary["slots"] == 1);                 // one host: one measurement at a time
    CHECK_FALSE(fs::exists(dir.path / "same" / "overlap"));  // never two at once
    CHECK(stored_rows(dir.file("same.db")) == stored_rows(dir.file("single.db")));

    Run apart = shell(mpirun() + check_tool(kArgs + " --mpi --distinct-hosts --db " + dir.file("apart.db")), dir);
    INFO(apart.out << apart.err);
    REQUIRE(apart.code == 0);
    CHECK(apart.summary["slots"] == 2);                // two hosts: both measure
    CHECK(stored_rows(dir.file("apart.db")) == stored_rows(dir.file("single.db")));
    CHECK(apart.summary["best"] == single.summary["best"]);
}

TEST_CASE("a measuring rank killed mid-run loses nothing: its candidate goes to another rank", "[mpi]") {
    TempDir dir("mpi");
    Run single = shell(check_tool(kArgs + " --db " + dir.file("single.db")), dir);
    REQUIRE(single.code == 0);
    // OpenMPI ends the whole job when a rank dies unless recovery is enabled.
    Run spread = shell(mpirun("--enable-recovery") +
                           check_tool(kArgs + " --mpi --die-rank 2 --die-at 3 --rank-timeout 2 --db " + dir.file("mpi.db")),
                       dir);
    check_rank_2_lost_nothing(spread, single, dir);
}

TEST_CASE("a rank stalled past --rank-timeout measures again when it wakes and every rank finalizes", "[mpi]") {
    TempDir dir("mpi");
    Run single = shell(check_tool(kArgs + " --db " + dir.file("single.db")), dir);
    REQUIRE(single.code == 0);
    // Rank 2 stops for 4 s at its third candidate; after 2 s rank 0 declares it lost and
    // hands its candidate on. The 100 ms per candidate keep the run going until it wakes.
    Run spread = shell(mpirun() + check_tool("--seed 11 --budget 10 --delay-ms 100 --mpi --freeze-rank 2 --freeze-at 3 "
                                             "--freeze-s 4 --rank-timeout 2 --db " + dir.file("mpi.db")),
                       dir);
    // Exit 0 also says every rank finalized: mpirun fails a job where one skipped it.
    check_rank_2_lost_nothing(spread, single, dir);  // nor stored its late result twice
    CHECK_THAT(spread.err, Catch::Contains("answered again"));
    CHECK_THAT(spread.err, !Catch::Contains("MPI_Finalize"));
    CHECK(spread.summary["measuring_ranks"] == 2);
}

TEST_CASE("measuring ranks stop when rank 0 dies instead of waiting for work forever", "[mpi]") {
    TempDir dir("mpi");
    Run single = shell(check_tool(kArgs + " --db " + dir.file("single.db")), dir);
    REQUIRE(single.code == 0);
    const std::string db = dir.file("mpi.db");
    // --enable-recovery keeps ranks 1 and 2 running after rank 0 dies; only rank 0's silence
    // tells them. `timeout` ends the job if they wait regardless.
    Run orphaned = shell("timeout 60 " + mpirun("--enable-recovery") +
                             check_tool(kArgs + " --mpi --die-rank 0 --die-at 8 --rank-timeout 2 --db " + db),
                         dir);
    INFO(orphaned.err);
    CHECK(orphaned.code != 124);
    CHECK_THAT(orphaned.err, Catch::Contains("rank 1 stops: no word from rank 0"));
    CHECK_THAT(orphaned.err, Catch::Contains("rank 2 stops: no word from rank 0"));
    auto partial = stored_rows(db);
    CHECK(!partial.empty());
    auto all = stored_rows(dir.file("single.db"));
    CHECK(std::includes(all.begin(), all.end(), partial.begin(), partial.end()));
}

TEST_CASE("when mpirun ends the job on a dead rank, the store keeps every completed result for a rerun", "[mpi]") {
    TempDir dir("mpi");
    Run single = shell(check_tool(kArgs + " --db " + dir.file("single.db")), dir);
    REQUIRE(single.code == 0);
    const std::string db = dir.file("mpi.db");
    Run aborted = shell(mpirun() + check_tool(kArgs + " --mpi --die-rank 2 --die-at 3 --db " + db), dir);
    INFO(aborted.err);
    CHECK(aborted.code != 0);  // without --enable-recovery OpenMPI aborts the job
    auto partial = stored_rows(db);
    CHECK(!partial.empty());
    auto all = stored_rows(dir.file("single.db"));
    CHECK(std::includes(all.begin(), all.end(), partial.begin(), partial.end()));

    Run rerun = shell(check_tool(kArgs + " --db " + db), dir);  // resumes in one process
    REQUIRE(rerun.code == 0);
    CHECK(stored_rows(db) == all);
    CHECK(rerun.summary["measured"].get<std::size_t>() == all.size() - partial.size());  // none repeated
    CHECK(rerun.summary["best"] == single.summary["best"]);
}

#ifdef LIBTUNE_CLI_PATH
TEST_CASE("tune gemm --mpi under mpirun measures the same candidates as one process", "[mpi][cli]") {
    TempDir dir("mpi");
    const std::string args = "gemm --m 8 --n 64 --k 32 --strategy random --seed 4 --budget 8 --time-limit 0 -q --db ";
    Run single = shell(std::string(LIBTUNE_CLI_PATH) + " " + args + dir.file("single.db"), dir);
    INFO(single.err);
    REQUIRE(single.code == 0);
    Run spread = shell(mpirun() + LIBTUNE_CLI_PATH + " " + args + dir.file("mpi.db") + " --mpi", dir);
    INFO(spread.out << spread.err);
    REQUIRE(spread.code == 0);
    CHECK_THAT(spread.err, Catch::Contains("rank 0 coordinates and stores, 2 measure"));
    CHECK_THAT(spread.out, Catch::Contains("best config"));

    // Real timings differ between runs, so the best pick may too; the candidates may not
    // (random search proposes independently of the measured times).
    auto without_status = [](std::vector<Row> rows) {
        for (auto& r : rows) std::get<3>(r).clear();
        return rows;
    };
    auto rows = stored_rows(dir.file("mpi.db"));
    CHECK(rows.size() == 8);
    CHECK(each_once(rows));
    CHECK(without_status(rows) == without_status(stored_rows(dir.file("single.db"))));
}
#endif  // LIBTUNE_CLI_PATH
#endif  // LIBTUNE_MPIEXEC
