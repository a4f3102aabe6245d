// Durability and concurrency of the SQLite store: kill -9 of a tuning run at random moments
// loses and repeats nothing, concurrent writer processes lose no rows and never see "database
// is locked", and a full disk gives a clear error while every earlier row survives.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include "scratch_dir.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/error.hpp"

extern char** environ;

using namespace tune;
namespace fs = std::filesystem;

namespace {

using testing::TempDir;

Measurement sample(std::int64_t m_dim, std::int64_t run_id, const std::string& device_id) {
    Measurement m;
    m.run_id = run_id;
    m.problem = make_gemm(m_dim, 64, 64);
    m.device_id = device_id;
    m.template_name = "test.gemm.writer";
    m.template_version = "v1";
    m.config = Config::parse("tile=4");
    m.status = Status::ok;
    m.stats = {1e-5, 0.9e-5, 1.1e-5, 1e-7, 0.01, 10, 1, true};
    m.error = 1e-6;
    return m;
}

// Runs `f` in a forked child; returns its exit code (or 128 + signal).
template <class F>
pid_t spawn_child(F f) {
    std::fflush(nullptr);  // the child must not repeat the parent's buffered output
    pid_t pid = ::fork();
    if (pid == 0) {
        int code = 1;
        try {
            code = f();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: %s\n", e.what());
            code = 2;
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    return pid;
}

int wait_code(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Unique key of a row -> (id, created_at): a repeated measurement would get a new id and time.
using RowSet = std::map<std::string, std::pair<std::int64_t, std::string>>;

RowSet rows_of(const fs::path& db_path) {
    RowSet out;
    if (!fs::exists(db_path)) return out;
    SqliteDatabase db(db_path, SqliteDatabase::Mode::read_only);
    for (const auto& m : db.query({})) {
        std::string key = shape_key(m.problem) + "|" + m.device_id + "|" + m.template_name + "|" +
                          m.template_version + "|" + m.config.hash_hex();
        REQUIRE(out.emplace(key, std::make_pair(m.id, m.created_at)).second);  // exactly once
    }
    return out;
}

}  // namespace

#ifdef LIBTUNE_CLI_PATH
TEST_CASE("kill -9 of a tuning run at random moments loses and repeats no measurement", "[durability]") {
    TempDir dir("durability-kill");
    const std::string db = dir.file("tuned.db");
    const char* argv[] = {LIBTUNE_CLI_PATH, "gemm", "--m", "96", "--n", "80", "--k", "64", "--budget", "40",
                          "--strategy", "random", "--seed", "7", "-q", "--db", db.c_str(), nullptr};
    auto start = [&] {
        pid_t pid = -1;
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
        REQUIRE(posix_spawn(&pid, argv[0], &actions, nullptr, const_cast<char**>(argv), environ) == 0);
        posix_spawn_file_actions_destroy(&actions);
        return pid;
    };
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> delay_ms(20, 400);
    RowSet seen;
    const int cycles = 5;
    for (int cycle = 0; cycle < cycles; ++cycle) {
        pid_t pid = start();
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
        ::kill(pid, SIGKILL);
        wait_code(pid);
        RowSet now = rows_of(db);
        for (const auto& [key, row] : seen) {
            INFO("cycle " << cycle << ": " << key);
            REQUIRE(now.count(key) == 1);
            CHECK(now.at(key) == row);  // same id and time: kept, not measured again
        }
        seen = std::move(now);
    }
    pid_t pid = start();
    REQUIRE(wait_code(pid) == 0);
    RowSet final_rows = rows_of(db);
    for (const auto& [key, row] : seen) {
        REQUIRE(final_rows.count(key) == 1);
        CHECK(final_rows.at(key) == row);
    }
    CHECK(final_rows.size() >= 24);  // the budget once complete, distinct configs only
    SqliteDatabase check(db, SqliteDatabase::Mode::read_only);
    CHECK(check.verify().empty());
    std::cout << "kill/resume: " << cycles << " cycles, " << seen.size() << " rows before the last run, "
              << final_rows.size() << " after, 0 lost\n";
}
#endif

TEST_CASE("four writer processes x 500 measurements lose no row and never see a locked DB", "[durability]") {
    TempDir dir("durability-writers");
    const fs::path db = dir.file("shared.db");  // not created yet: the WAL switch races too
    const int writers = 4, per_writer = 500;
    std::vector<pid_t> pids;
    for (int w = 0; w < writers; ++w)
        pids.push_back(spawn_child([&, w] {
            SqliteDatabase store(db);
            DeviceInfo device = detect_cpu();
            auto run = store.start_run({0, "writer " + std::to_string(w), "test", 0, "", ""}, device);
            for (int i = 0; i < per_writer; ++i)
                if (!store.record(sample(1 + w * per_writer + i, run, device.id()))) return 3;
            return 0;
        }));
    for (pid_t pid : pids) CHECK(wait_code(pid) == 0);
    SqliteDatabase store(db, SqliteDatabase::Mode::read_only);
    CHECK(store.query({}).size() == std::size_t(writers * per_writer));
    CHECK(store.runs().size() == std::size_t(writers));
    CHECK(store.verify().empty());
}

TEST_CASE("a full disk while writing gives a clear error and keeps every earlier row", "[durability]") {
    TempDir dir("durability-full");
    const fs::path db = dir.file("full.db");
    {
        SqliteDatabase store(db);  // created with room to spare
        store.start_run({0, "setup", "test", 0, "", ""}, detect_cpu());
    }
    // The child may grow files to 256 KiB only: writes past it fail with EFBIG.
    int pipefd[2];
    REQUIRE(::pipe(pipefd) == 0);
    pid_t pid = spawn_child([&] {
        ::close(pipefd[0]);
        ::signal(SIGXFSZ, SIG_IGN);
        rlimit limit{256 << 10, 256 << 10};
        ::setrlimit(RLIMIT_FSIZE, &limit);
        SqliteDatabase store(db);
        DeviceInfo device = detect_cpu();
        int committed = 0;
        std::string message;
        try {
            for (int i = 0; i < 100000; ++i) {
                store.record(sample(1 + i, 1, device.id()));
                committed = i + 1;
            }
        } catch (const Error& e) {
            message = e.what();
        }
        std::string report = std::to_string(committed) + "\n" + message;
        if (::write(pipefd[1], report.data(), report.size()) < 0) return 4;
        return message.empty() ? 5 : 0;
    });
    ::close(pipefd[1]);
    std::string report;
    char buf[4096];
    for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) report.append(buf, std::size_t(n));
    ::close(pipefd[0]);
    REQUIRE(wait_code(pid) == 0);
    auto newline = report.find('\n');
    REQUIRE(newline != std::string::npos);
    int committed = std::stoi(report.substr(0, newline));
    std::string message = report.substr(newline + 1);
    INFO("error: " << message);
    CHECK(committed > 10);
    CHECK_THAT(message, Catch::Contains("full.db"));
    CHECK_THAT(message, Catch::Contains("disk may be full"));
    SqliteDatabase store(db, SqliteDatabase::Mode::read_only);
    CHECK(store.verify().empty());
    CHECK(store.query({}).size() == std::size_t(committed));
    std::cout << "full disk: " << committed << " rows committed before: " << message << "\n";
}
