// The one RAII wrapper over the SQLite C API: a connection, a prepared statement with
// bind/step/column helpers and a write transaction. Every failure is a tune::Error that
// names the file, the SQL and sqlite3_errmsg.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace tune::sqlite {

class Statement;

class Connection {
public:
    // `flags` are sqlite3_open_v2 flags (SQLITE_OPEN_READONLY, ...). A non-empty `uri_query`
    // (e.g. "immutable=1") opens the path as a file: URI with those parameters.
    Connection(const std::filesystem::path& path, int flags, std::string_view uri_query = {});
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Runs one or more statements that return no rows the caller needs.
    void exec(std::string_view sql);
    Statement prepare(std::string_view sql);
    // First column of the first row as an integer (PRAGMA user_version, COUNT(*), ...).
    std::int64_t query_int(std::string_view sql);

    // Primary result code of the last failed call (SQLITE_BUSY, ...).
    int error_code() const;
    std::int64_t last_insert_rowid() const;
    int changes() const;
    const std::filesystem::path& path() const { return path_; }
    sqlite3* handle() const { return db_; }

    // Throws tune::Error naming the file, the SQL and the connection's last error.
    [[noreturn]] void fail(std::string_view sql, int rc) const;

private:
    sqlite3* db_ = nullptr;
    std::filesystem::path path_;
};

class Statement {
public:
    Statement(Connection& connection, std::string_view sql);
    ~Statement();
    Statement(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    Statement& operator=(Statement&&) = delete;

    // Parameters are numbered from 1, as in SQLite.
    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, double value);  // NaN is stored as NULL
    Statement& bind(int index, std::string_view text);
    Statement& bind_null(int index);
    // Binds `text`, or NULL when it is empty.
    Statement& bind_text_or_null(int index, std::string_view text);

    // Advances; true while a row is available, false when done. Throws on error.
    bool step();
    // Runs a statement that returns no rows.
    void run();
    void reset();

    // Columns are numbered from 0. The typed getters return nullopt when the stored value
    // has another type (NULL included): nothing read back is trusted.
    bool is_null(int column) const;
    std::optional<std::int64_t> get_int(int column) const;
    std::optional<double> get_real(int column) const;  // accepts INTEGER values too
    std::optional<std::string> get_text(int column) const;
    std::string column_text(int column) const;  // NULL and non-text read as text by SQLite

    const std::string& sql() const { return sql_; }

private:
    Connection* connection_;
    sqlite3_stmt* stmt_ = nullptr;
    std::string sql_;
};

// BEGIN IMMEDIATE (take the write lock up front so concurrent writers wait in the busy
// handler instead of failing on lock upgrade); rolls back unless commit() was called. Inside
// another transaction it is a savepoint: its writes commit with the outer one, or roll back
// alone.
class Transaction {
public:
    explicit Transaction(Connection& connection);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Connection& connection_;
    bool nested_ = false;
    bool done_ = false;
};

}  // namespace tune::sqlite
