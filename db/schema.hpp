// The SQLite store's schema: the ordered migration steps (kept in schema.cpp, the one place
// the tables are defined), the settings every connection gets and the version checks.
#pragma once

#include <filesystem>
#include <string>

#include "sqlite.hpp"

namespace tune::schema {

int user_version(sqlite::Connection& c);

// "database '<path>' has schema version N, newer than version M that this libtune supports".
std::string newer_message(const std::filesystem::path& path, int version);

// Busy timeout (10 s, so several processes can write one file) and foreign keys.
void configure(sqlite::Connection& c);

// Switches to WAL mode, retrying while a concurrent opener holds the file.
void use_wal(sqlite::Connection& c);

// Throws unless the file can be a libtune store: a version from 1 up to this build's, or 0
// with no table yet (a new file); returns that version. Names the path and what it is instead.
int require_store(sqlite::Connection& c);

// Applies the steps after the DB's version up to `target`, in one transaction. Refuses a
// newer version and a SQLite file that has tables but no version (not a libtune DB).
void migrate(sqlite::Connection& c, int target);

}  // namespace tune::schema
