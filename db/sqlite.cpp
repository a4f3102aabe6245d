#include "sqlite.hpp"

#include <cerrno>
#include <cstring>

#include <sqlite3.h>

#include <cctype>
#include <cmath>
#include <utility>

#include "tune/error.hpp"

namespace tune::sqlite {

namespace {

std::string one_line(std::string_view sql) {
    std::string out;
    bool space = false;
    for (char c : sql) {
        if (c == '\n' || c == '\t' || c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    }
    if (out.size() > 200) out = out.substr(0, 197) + "...";
    return out;
}

// "file:" URI of a path: every byte but the unreserved ones and '/' percent-encoded.
std::string file_uri(const std::filesystem::path& path, std::string_view query) {
    static const char* kHex = "0123456789ABCDEF";
    std::string uri = "file:";
    for (unsigned char ch : std::filesystem::absolute(path).string()) {
        if (std::isalnum(ch) || ch == '/' || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            uri += char(ch);
        } else {
            uri += '%';
            uri += kHex[ch >> 4];
            uri += kHex[ch & 15];
        }
    }
    return uri + "?" + std::string(query);
}

}  // namespace

Connection::Connection(const std::filesystem::path& path, int flags, std::string_view uri_query) : path_(path) {
    const int rc = uri_query.empty() ? sqlite3_open_v2(path.c_str(), &db_, flags, nullptr)
                                     : sqlite3_open_v2(file_uri(path, uri_query).c_str(), &db_, flags | SQLITE_OPEN_URI, nullptr);
    if (rc != SQLITE_OK) {
        std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        throw DatabaseError("cannot open database '" + path.string() + "': " + why);
    }
    sqlite3_extended_result_codes(db_, 1);
}

Connection::~Connection() { sqlite3_close_v2(db_); }

void Connection::fail(std::string_view sql, int rc) const {
    std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    // A failed write says what usually causes it: a full disk or a file-size limit. SQLite
    // does not always keep the OS error, so name it only when it has one.
    int primary = rc & 0xff;
    int err = db_ ? sqlite3_system_errno(db_) : 0;
    if (primary == SQLITE_FULL || rc == SQLITE_IOERR_WRITE || rc == SQLITE_IOERR_FSYNC ||
        rc == SQLITE_IOERR_TRUNCATE || rc == SQLITE_IOERR_SHMSIZE)
        why = "could not write: the disk may be full or the file at its size limit; nothing of this "
              "statement was stored (" + why + (err ? std::string(": ") + std::strerror(err) : std::string()) + ")";
    else if (primary == SQLITE_IOERR && err)
        why += std::string(": ") + std::strerror(err);
    throw DatabaseError("database '" + path_.string() + "': " + why + " (in: " + one_line(sql) + ")");
}

void Connection::exec(std::string_view sql) {
    std::string text(sql);
    int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(sql, rc);
}

Statement Connection::prepare(std::string_view sql) { return Statement(*this, sql); }

std::int64_t Connection::query_int(std::string_view sql) {
    Statement s(*this, sql);
    if (!s.step()) throw DatabaseError("database '" + path_.string() + "': no row from " + one_line(sql));
    auto v = s.get_int(0);
    if (!v) throw DatabaseError("database '" + path_.string() + "': non-integer from " + one_line(sql));
    return *v;
}

int Connection::error_code() const { return sqlite3_errcode(db_) & 0xff; }

std::int64_t Connection::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Connection::changes() const { return sqlite3_changes(db_); }

Statement::Statement(Connection& connection, std::string_view sql)
    : connection_(&connection), sql_(sql) {
    int rc = sqlite3_prepare_v2(connection.handle(), sql_.data(), static_cast<int>(sql_.size()),
                                &stmt_, nullptr);
    if (rc != SQLITE_OK) connection.fail(sql_, rc);
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept
    : connection_(other.connection_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      sql_(std::move(other.sql_)) {}

Statement& Statement::bind(int index, std::int64_t value) {
    int rc = sqlite3_bind_int64(stmt_, index, value);
    if (rc != SQLITE_OK) connection_->fail(sql_, rc);
    return *this;
}

Statement& Statement::bind(int index, double value) {
    if (std::isnan(value)) return bind_null(index);
    int rc = sqlite3_bind_double(stmt_, index, value);
    if (rc != SQLITE_OK) connection_->fail(sql_, rc);
    return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
    int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    if (rc != SQLITE_OK) connection_->fail(sql_, rc);
    return *this;
}

Statement& Statement::bind_null(int index) {
    int rc = sqlite3_bind_null(stmt_, index);
    if (rc != SQLITE_OK) connection_->fail(sql_, rc);
    return *this;
}

Statement& Statement::bind_text_or_null(int index, std::string_view text) {
    return text.empty() ? bind_null(index) : bind(index, text);
}

bool Statement::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    connection_->fail(sql_, rc);
}

void Statement::run() {
    while (step()) {
    }
}

void Statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

bool Statement::is_null(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::optional<std::int64_t> Statement::get_int(int column) const {
    if (sqlite3_column_type(stmt_, column) != SQLITE_INTEGER) return std::nullopt;
    return sqlite3_column_int64(stmt_, column);
}

std::optional<double> Statement::get_real(int column) const {
    int type = sqlite3_column_type(stmt_, column);
    if (type != SQLITE_FLOAT && type != SQLITE_INTEGER) return std::nullopt;
    return sqlite3_column_double(stmt_, column);
}

std::optional<std::string> Statement::get_text(int column) const {
    if (sqlite3_column_type(stmt_, column) != SQLITE_TEXT) return std::nullopt;
    return column_text(column);
}

std::string Statement::column_text(int column) const {
    const auto* text = sqlite3_column_text(stmt_, column);
    if (!text) return {};
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

Transaction::Transaction(Connection& connection)
    : connection_(connection), nested_(sqlite3_get_autocommit(connection.handle()) == 0) {
    connection_.exec(nested_ ? "SAVEPOINT nested" : "BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
    if (done_) return;
    sqlite3_exec(connection_.handle(), nested_ ? "ROLLBACK TO nested; RELEASE nested" : "ROLLBACK", nullptr, nullptr,
                 nullptr);
}

void Transaction::commit() {
    connection_.exec(nested_ ? "RELEASE nested" : "COMMIT");
    done_ = true;
}

}  // namespace tune::sqlite
