// Housekeeping of a SQLite store: what it holds (stats) and pruning what is no longer worth
// keeping (stale template versions, slow configs), so a store does not grow without bound.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tune/db/sqlite_database.hpp"

namespace tune {

// Template name -> version hash of the templates built into this library: rows for another
// version of a known template are stale. Rows of templates unknown here are never called
// stale (they may come from a build with other templates) and are never pruned.
using TemplateVersions = std::map<std::string, std::string>;

struct TemplateVersionStats {
    std::string template_name, version;
    enum class State : std::uint8_t { current, stale, unknown } state = State::unknown;
    std::size_t rows = 0;
};
std::string_view to_string(TemplateVersionStats::State s);

struct StoreStats {
    std::uintmax_t file_bytes = 0, wal_bytes = 0;
    std::size_t rows = 0, ok_rows = 0, failed_rows = 0;  // failed: every status but ok
    std::size_t keys = 0;                                 // distinct problem keys
    std::size_t devices = 0, runs = 0;
    std::size_t stale_rows = 0, unknown_rows = 0;         // see TemplateVersions
    std::size_t bad_rows = 0;                             // fail to decode (see verify)
    std::string oldest, newest;                           // created_at of the rows
    std::vector<TemplateVersionStats> templates;          // sorted by name, version
};
StoreStats store_stats(const SqliteDatabase& db, const TemplateVersions& current);

struct PruneOptions {
    std::size_t keep = 3;      // fastest ok rows kept per (problem key, device)
    bool drop_failed = false;  // also drop failed rows of current versions (see README)
    bool dry_run = false;      // report what would go, change nothing
    // Whether a runtime would serve an ok row (its config valid in its template's space);
    // empty: every row. A row it refuses is not ranked, so it cannot push a servable row out
    // of the kept ones, and is left alone (tune db verify names it).
    std::function<bool(const Measurement&)> servable;
};

struct PruneReport {
    std::size_t rows_before = 0, kept = 0;
    std::size_t dropped_stale = 0, dropped_slow = 0, dropped_failed = 0;
    std::size_t kept_failed = 0, kept_unknown = 0, kept_unservable = 0, bad_rows = 0;
    std::uintmax_t bytes_before = 0, bytes_after = 0;  // file + WAL
    std::size_t dropped() const { return dropped_stale + dropped_slow + dropped_failed; }
};

// Per (problem key, device), among ok rows of current template versions, keeps: the `keep`
// fastest (ties to the smaller config hash), the fastest of each template, every row on the
// Pareto front of (median time, workspace bytes) and every row re-measured in a confirmation
// round (the store's pick is ranked among them). Drops every row of a stale template
// version, the other ok rows, and failed rows only with drop_failed. Rows that fail to decode,
// rows of unknown templates and ok rows `servable` refuses are left alone. The deletion is one transaction (a crash
// leaves the store as it was), followed by VACUUM and a WAL checkpoint to return the space.
PruneReport prune_store(SqliteDatabase& db, const TemplateVersions& current, const PruneOptions& options);

}  // namespace tune
