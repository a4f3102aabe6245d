// Schema history and open settings of the SQLite store.
#include "schema.hpp"

#include <sqlite3.h>

#include <chrono>
#include <iterator>
#include <thread>

#include "tune/db/sqlite_database.hpp"
#include "tune/error.hpp"

namespace tune::schema {

namespace {

// The schema history, oldest first: step N brings a DB from version N-1 to N. A new schema
// version appends one step here and bumps SqliteDatabase::kSchemaVersion.
struct Migration {
    int version;
    const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"(
CREATE TABLE devices(
    id TEXT PRIMARY KEY NOT NULL,
    info TEXT NOT NULL,
    first_seen TEXT NOT NULL);
CREATE TABLE runs(
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    strategy TEXT NOT NULL,
    seed INTEGER NOT NULL,
    device_id TEXT REFERENCES devices(id),
    started_at TEXT NOT NULL);
CREATE TABLE measurements(
    id INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs(id),
    problem_key TEXT NOT NULL,
    problem TEXT NOT NULL,
    device_id TEXT NOT NULL,
    template TEXT NOT NULL,
    template_version TEXT NOT NULL,
    config TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    median_s REAL NOT NULL,
    min_s REAL NOT NULL,
    mean_s REAL NOT NULL,
    iqr_s REAL NOT NULL,
    ci_rel REAL NOT NULL,
    reps INTEGER NOT NULL,
    inner INTEGER NOT NULL,
    stable INTEGER NOT NULL,
    error REAL,
    created_at TEXT NOT NULL,
    UNIQUE(problem_key, device_id, template, template_version, config_hash));
)"},
    // Version 2: workspace memory becomes an objective (Pareto front, "fastest under a memory
    // cap"), and best() gets an index that serves its status filter, grouping and ordering.
    {2, R"(
ALTER TABLE measurements ADD COLUMN workspace_bytes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX measurements_best ON measurements(status, problem_key, template, median_s, config_hash);
)"},
    // Version 3: settings that travel with the store, e.g. the shape-bucket rules the
    // dispatcher applies ("buckets" -> "m:pow2").
    {3, R"(
CREATE TABLE settings(
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL);
)"},
    // Version 4: learned cost models, stored as data with the feature schema they read.
    {4, R"(
CREATE TABLE models(
    name TEXT NOT NULL,
    template TEXT NOT NULL,
    device_id TEXT NOT NULL,
    feature_schema INTEGER NOT NULL,
    format TEXT NOT NULL,
    features TEXT NOT NULL,
    body TEXT NOT NULL,
    trained_rows INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY(name, template, device_id));
)"},
    // Version 5: the confirmation round's re-measurements, so the store's best per shape is
    // the Tuner's confirmed pick and a resumed run re-measures no finalist twice. A finalist is
    // named by its measurement's unique key; `snapshot` is the shape's newest measurement id
    // when the row was stored (a later candidate makes the round out of date).
    {5, R"(
CREATE TABLE confirmations(
    id INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs(id),
    problem_key TEXT NOT NULL,
    device_id TEXT NOT NULL,
    template TEXT NOT NULL,
    template_version TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    finalists TEXT NOT NULL,
    round INTEGER NOT NULL,
    median_s REAL NOT NULL,
    min_s REAL NOT NULL,
    mean_s REAL NOT NULL,
    iqr_s REAL NOT NULL,
    ci_rel REAL NOT NULL,
    reps INTEGER NOT NULL,
    inner INTEGER NOT NULL,
    snapshot INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE(problem_key, device_id, template, template_version, config_hash, finalists, round));
)"},
    // Version 6: whether a finalist wraps a library, so the store ranks a round as the Tuner
    // did (a library first among tied finalists). Older rounds read as own kernels.
    {6, R"(
ALTER TABLE confirmations ADD COLUMN vendor INTEGER NOT NULL DEFAULT 0;
)"},
};

static_assert(std::size(kMigrations) == SqliteDatabase::kSchemaVersion);

}  // namespace

int user_version(sqlite::Connection& c) {
    return static_cast<int>(c.query_int("PRAGMA user_version"));
}

std::string newer_message(const std::filesystem::path& path, int version) {
    return "database '" + path.string() + "' has schema version " + std::to_string(version) +
           ", newer than version " + std::to_string(SqliteDatabase::kSchemaVersion) +
           " that this libtune supports; use a newer libtune";
}

int require_store(sqlite::Connection& c) {
    // One statement: the version and the tables of one snapshot, while a concurrent opener may
    // be creating the store (its tables and version commit together).
    auto s = c.prepare("SELECT (SELECT user_version FROM pragma_user_version), (SELECT COUNT(*) FROM sqlite_schema)");
    s.step();
    const int version = static_cast<int>(s.get_int(0).value_or(0));
    const std::int64_t tables = s.get_int(1).value_or(0);
    if (version > SqliteDatabase::kSchemaVersion) throw Error(newer_message(c.path(), version));
    if (version < 0)
        throw Error("database '" + c.path().string() + "' is not a libtune database (schema version " +
                    std::to_string(version) + ")");
    if (version == 0 && tables > 0)
        throw Error("database '" + c.path().string() +
                    "' is a SQLite file but not a libtune database (tables without a version)");
    return version;
}

// Brings the DB to `target` in one transaction. The version is read again under the write
// lock, so concurrent openers of a fresh file migrate it exactly once.
void migrate(sqlite::Connection& c, int target) {
    if (user_version(c) >= target) return;
    sqlite::Transaction tx(c);
    const int version = require_store(c);
    for (const Migration& step : kMigrations)
        if (step.version > version && step.version <= target) c.exec(step.sql);
    c.exec("PRAGMA user_version = " + std::to_string(target));
    tx.commit();
}

constexpr std::chrono::milliseconds kBusyTimeout{10'000};

void configure(sqlite::Connection& c) {
    sqlite3_busy_timeout(c.handle(), static_cast<int>(kBusyTimeout.count()));
    c.exec("PRAGMA foreign_keys = ON");
}

// Switching to WAL takes an exclusive lock for which SQLite does not call the busy handler,
// so concurrent openers of a fresh file retry here, up to the busy timeout.
void use_wal(sqlite::Connection& c) {
    auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
    for (;;) {
        try {
            {
                auto s = c.prepare("PRAGMA journal_mode");
                if (s.step() && s.column_text(0) == "wal") return;
            }
            c.exec("PRAGMA journal_mode = WAL");
            return;
        } catch (const Error&) {
            int code = c.error_code();
            if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) ||
                std::chrono::steady_clock::now() > deadline)
                throw;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

}  // namespace tune::schema
