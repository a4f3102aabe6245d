// SqliteDatabase: open modes, locking and the queries. The schema lives in schema.cpp, the
// row codec in sqlite_rows.cpp; db/README.md states the rules.
#include "tune/db/sqlite_database.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>

#include "rows.hpp"
#include "schema.hpp"
#include "sqlite.hpp"
#include "sqlite_rows.hpp"
#include "tune/error.hpp"

namespace tune {

using namespace sqlite_rows;
using schema::user_version;

namespace {

// A store in WAL mode (every store libtune has written) is read through its -shm file, which
// SQLite creates next to it: in a directory this process cannot write, e.g. a system store
// shipped read-only, a plain read-only open fails. Such a store is opened immutable when no
// -wal file holds pages it would need (none does after its last writer closed it cleanly),
// and nobody can write it there without write access to the directory.
std::string_view read_only_uri_query(const std::filesystem::path& path) {
    unsigned char header[20] = {};
    std::ifstream file(path, std::ios::binary);
    if (!file.read(reinterpret_cast<char*>(header), sizeof header)) return {};
    const bool wal = header[18] == 2 && header[19] == 2;
    const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    if (!wal || ::access(dir.c_str(), W_OK) == 0 || std::filesystem::exists(path.string() + "-wal", ec)) return {};
    return "immutable=1";
}

}  // namespace

struct SqliteDatabase::Impl {
    Impl(const std::filesystem::path& path, Mode mode)
        : read_only(mode == Mode::read_only),
          connection(path,
                     (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                         SQLITE_OPEN_NOMUTEX,
                     read_only ? read_only_uri_query(path) : std::string_view()) {}

    void require_writable(const char* what) const {
        if (read_only)
            throw Error(std::string(what) + ": database '" + connection.path().string() +
                        "' is open read-only");
    }

    bool read_only;
    mutable sqlite::Connection connection;
    mutable std::recursive_mutex mutex;  // one connection, many threads; held across atomically()
};

SqliteDatabase::SqliteDatabase(const std::filesystem::path& path, Mode mode)
    : impl_(std::make_unique<Impl>(path, mode)) {
    auto& c = impl_->connection;
    schema::configure(c);
    int version = user_version(c);  // first read: fails here when the file is not SQLite
    if (version > kSchemaVersion) throw Error(schema::newer_message(path, version));
    if (impl_->read_only) {
        c.exec("PRAGMA query_only = ON");
        if (version <= 0)
            throw Error("database '" + path.string() + "' is not a libtune database" +
                        (version < 0 ? " (schema version " + std::to_string(version) + ")" : std::string()));
        if (version < kSchemaVersion)
            throw Error("database '" + path.string() + "' has schema version " +
                        std::to_string(version) + ", older than version " +
                        std::to_string(kSchemaVersion) + "; migrate it first: tune db migrate --db '" +
                        path.string() + "'");
        return;
    }
    schema::require_store(c);  // before the WAL switch, which rewrites the file's header
    schema::use_wal(c);
    c.exec("PRAGMA synchronous = NORMAL");
    schema::migrate(c, kSchemaVersion);
}

SqliteDatabase::~SqliteDatabase() = default;

void SqliteDatabase::create_at_version(const std::filesystem::path& path, int version) {
    require(version >= 1 && version <= kSchemaVersion,
            "create_at_version: version " + std::to_string(version) + " is not in 1.." +
                std::to_string(kSchemaVersion));
    sqlite::Connection c(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    schema::configure(c);
    require(user_version(c) == 0,
            "create_at_version: database '" + path.string() + "' already exists");
    schema::migrate(c, version);
}

std::int64_t SqliteDatabase::start_run(const RunInfo& run, const DeviceInfo& device) {
    std::lock_guard lock(impl_->mutex);
    impl_->require_writable("start_run");
    auto& c = impl_->connection;
    sqlite::Transaction tx(c);
    insert_device(c, device);
    std::int64_t id = insert_run(c, run, device.id());
    tx.commit();
    return id;
}

bool SqliteDatabase::record(const Measurement& m) {
    db_rules::require_sound(m, "record");
    std::lock_guard lock(impl_->mutex);
    impl_->require_writable("record");
    return insert_measurement(impl_->connection, m, m.run_id, db_rules::utc_now());
}

void SqliteDatabase::atomically(const std::function<void()>& body) {
    std::lock_guard lock(impl_->mutex);
    impl_->require_writable("atomically");
    sqlite::Transaction tx(impl_->connection);
    body();
    tx.commit();
}

SqliteDatabase::Imported SqliteDatabase::import_rows(const RunInfo& run, const std::vector<DeviceInfo>& devices,
                                                     const std::vector<Measurement>& rows) {
    for (std::size_t i = 0; i < rows.size(); ++i) {
        db_rules::require_sound(rows[i], "import row " + std::to_string(i));
        require(rows[i].created_at.empty() || db_rules::is_timestamp(rows[i].created_at),
                "import row " + std::to_string(i) + ": created_at '" + rows[i].created_at +
                    "' is not an ISO-8601 UTC time");
    }
    std::lock_guard lock(impl_->mutex);
    impl_->require_writable("import");
    auto& c = impl_->connection;
    sqlite::Transaction tx(c);
    for (const DeviceInfo& d : devices) insert_device(c, d);
    Imported out;
    out.run_id = insert_run(c, run, "");
    std::string now = db_rules::utc_now();
    for (const Measurement& m : rows)
        out.added += insert_measurement(c, m, out.run_id, m.created_at.empty() ? now : m.created_at);
    tx.commit();
    return out;
}

std::vector<Measurement> SqliteDatabase::query(
    const MeasurementFilter& filter,
    const std::function<void(std::int64_t, const std::string&)>& on_bad_row) const {
    std::lock_guard lock(impl_->mutex);
    std::vector<std::string> args;
    std::string sql = std::string("SELECT ") + kColumns + " FROM measurements" +
                      where(filter, false, args) + " ORDER BY id";
    auto s = prepare_with(impl_->connection, sql, args);
    std::vector<Measurement> out;
    while (s.step()) {
        Measurement m;
        if (auto why = decode(s, m); why.empty()) out.push_back(std::move(m));
        else if (on_bad_row) on_bad_row(s.get_int(0).value_or(0), why);
    }
    return out;
}

std::vector<Measurement> SqliteDatabase::best(const MeasurementFilter& filter) const {
    return db_rules::with_confirmed_picks(*this, filter, fastest(filter));
}

bool SqliteDatabase::record_confirmation(const Confirmation& conf) {
    if (auto why = db_rules::find_confirmation_defect(conf); !why.empty())
        throw Error("record_confirmation: " + why);
    std::lock_guard lock(impl_->mutex);
    impl_->require_writable("record_confirmation");
    return insert_confirmation(impl_->connection, conf);
}

std::vector<Confirmation> SqliteDatabase::confirmations(const MeasurementFilter& filter) const {
    std::lock_guard lock(impl_->mutex);
    std::vector<std::string> args;
    MeasurementFilter any_status = filter;
    any_status.status = std::nullopt;
    auto s = prepare_with(impl_->connection, std::string("SELECT ") + kConfirmationColumns + " FROM confirmations" +
                                                 where(any_status, false, args) + " ORDER BY id",
                          args);
    std::vector<Confirmation> out;
    while (s.step()) {
        Confirmation c;
        if (decode_confirmation(s, c).empty()) out.push_back(std::move(c));
    }
    return out;
}

std::vector<Measurement> SqliteDatabase::fastest(const MeasurementFilter& filter) const {
    std::lock_guard lock(impl_->mutex);
    auto& c = impl_->connection;
    std::vector<std::string> args;
    std::string rows = std::string("SELECT ") + kColumns + " FROM measurements" +
                       where(filter, true, args);
    std::string sql = std::string("SELECT ") + kColumns + " FROM (SELECT " + kColumns +
                      ", ROW_NUMBER() OVER (PARTITION BY problem_key, template ORDER BY " + kRankingTime +
                      ", config_hash) AS rn FROM (" + rows + ")) WHERE rn = 1 "
                      "ORDER BY problem_key, template";
    auto s = prepare_with(c, sql, args);
    std::vector<Measurement> out;
    while (s.step()) {
        Measurement m;
        if (decode(s, m).empty()) {
            out.push_back(std::move(m));
            continue;
        }
        // The winner of this group cannot be trusted: take the fastest sound row instead.
        auto key = s.get_text(2), name = s.get_text(5);
        if (!key || !name) continue;
        std::vector<std::string> group_args = args;
        group_args.push_back(*key);
        group_args.push_back(*name);
        auto g = prepare_with(c, rows + " AND problem_key = ?" + std::to_string(args.size() + 1) +
                                     " AND template = ?" + std::to_string(args.size() + 2) +
                                     " ORDER BY " + kRankingTime + ", config_hash",
                              group_args);
        while (g.step()) {
            if (decode(g, m).empty()) {
                out.push_back(std::move(m));
                break;
            }
        }
    }
    return out;
}

std::optional<std::string> SqliteDatabase::setting(std::string_view name) const {
    std::lock_guard lock(impl_->mutex);
    auto s = impl_->connection.prepare("SELECT value FROM settings WHERE name = ?1");
    s.bind(1, name);
    if (!s.step()) return std::nullopt;
    auto value = s.get_text(0);
    if (!value) throw Error("database '" + impl_->connection.path().string() + "': setting '" + std::string(name) +
                            "' is not text");
    return value;
}

void SqliteDatabase::set_setting(std::string_view name, std::string_view value) {
    std::lock_guard lock(impl_->mutex);
    impl_->require_writable("set_setting");
    auto s = impl_->connection.prepare(
        "INSERT INTO settings(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value");
    s.bind(1, name).bind(2, value);
    s.run();
}

std::size_t SqliteDatabase::remove_measurements(const std::vector<std::int64_t>& ids) {
    std::lock_guard lock(impl_->mutex);
    impl_->require_writable("remove");
    auto& c = impl_->connection;
    sqlite::Transaction tx(c);
    auto s = c.prepare("DELETE FROM measurements WHERE id = ?1");
    std::size_t removed = 0;
    for (std::int64_t id : ids) {
        s.bind(1, id);
        s.run();
        removed += static_cast<std::size_t>(c.changes());
        s.reset();
    }
    tx.commit();
    return removed;
}

void SqliteDatabase::vacuum() {
    std::lock_guard lock(impl_->mutex);
    impl_->require_writable("vacuum");
    impl_->connection.exec("VACUUM");
    impl_->connection.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

const std::filesystem::path& SqliteDatabase::path() const { return impl_->connection.path(); }

int SqliteDatabase::schema_version() const {
    std::lock_guard lock(impl_->mutex);
    return user_version(impl_->connection);
}

std::vector<RunInfo> SqliteDatabase::runs() const {
    std::lock_guard lock(impl_->mutex);
    auto s = impl_->connection.prepare(
        "SELECT id, command, strategy, seed, device_id, started_at FROM runs ORDER BY id");
    std::vector<RunInfo> out;
    while (s.step()) {
        RunInfo r;
        r.id = s.get_int(0).value_or(0);
        r.command = s.get_text(1).value_or("");
        r.strategy = s.get_text(2).value_or("");
        r.seed = std::bit_cast<std::uint64_t>(s.get_int(3).value_or(0));
        r.device_id = s.get_text(4).value_or("");
        r.started_at = s.get_text(5).value_or("");
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<DeviceInfo> SqliteDatabase::devices() const {
    std::lock_guard lock(impl_->mutex);
    auto s = impl_->connection.prepare("SELECT id, info FROM devices ORDER BY first_seen, id");
    std::vector<DeviceInfo> out;
    while (s.step()) {
        DeviceInfo d;
        if (decode_device(s, d).empty()) out.push_back(std::move(d));
    }
    return out;
}

std::vector<std::string> SqliteDatabase::verify() const {
    std::vector<std::string> problems;
    auto section = [&](const char* name, auto&& body) {
        try {
            body();
        } catch (const std::exception& e) {
            problems.push_back(std::string(name) + ": " + e.what());
        }
    };
    auto& c = impl_->connection;
    {
        std::lock_guard lock(impl_->mutex);
        for (const char* pragma : {"integrity_check", "quick_check"}) {
            section(pragma, [&] {
                auto s = c.prepare(std::string("PRAGMA ") + pragma);
                while (s.step())
                    if (auto line = s.column_text(0); line != "ok") {
                        std::replace(line.begin(), line.end(), '\n', ' ');
                        problems.push_back(std::string(pragma) + ": " + line);
                    }
            });
        }
        section("foreign_key_check", [&] {
            auto s = c.prepare("PRAGMA foreign_key_check");
            while (s.step())
                problems.push_back("foreign key: " + s.column_text(0) + " row " +
                                   s.column_text(1) + " refers to a missing " + s.column_text(2));
        });
        section("schema", [&] {
            if (int v = user_version(c); v != kSchemaVersion)
                problems.push_back("schema: version " + std::to_string(v) + ", expected " +
                                   std::to_string(kSchemaVersion));
        });
        section("devices", [&] {
            auto s = c.prepare("SELECT id, info FROM devices ORDER BY id");
            while (s.step()) {
                DeviceInfo d;
                if (auto why = decode_device(s, d); !why.empty())
                    problems.push_back("device '" + s.column_text(0) + "': " + why);
            }
        });
    }
    section("measurements", [&] {
        query({}, [&](std::int64_t id, const std::string& why) {
            problems.push_back("measurement " + std::to_string(id) + ": " + why);
        });
    });
    section("confirmations", [&] {
        std::lock_guard lock(impl_->mutex);
        auto s = c.prepare(std::string("SELECT ") + kConfirmationColumns + " FROM confirmations ORDER BY id");
        while (s.step()) {
            Confirmation conf;
            if (auto why = decode_confirmation(s, conf); !why.empty())
                problems.push_back("confirmation " + std::to_string(s.get_int(0).value_or(0)) + ": " + why);
        }
    });
    return problems;
}

void SqliteDatabase::save_model(const StoredModel& model) {
    db_rules::require_sound_model(model);
    std::lock_guard lock(impl_->mutex);
    impl_->require_writable("save_model");
    auto s = impl_->connection.prepare(
        "INSERT OR REPLACE INTO models(name, template, device_id, feature_schema, format, features, body, "
        "trained_rows, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    s.bind(1, model.name).bind(2, model.template_name).bind(3, model.device_id);
    s.bind(4, std::int64_t{model.feature_schema}).bind(5, model.format);
    s.bind(6, nlohmann::json(model.features).dump()).bind(7, model.body);
    s.bind(8, model.trained_rows).bind(9, db_rules::utc_now());
    s.run();
}

std::optional<StoredModel> SqliteDatabase::load_model(const std::string& name, const std::string& template_name,
                                                      const std::string& device_id) const {
    std::lock_guard lock(impl_->mutex);
    auto& c = impl_->connection;
    auto s = c.prepare(
        "SELECT feature_schema, format, features, body, trained_rows, created_at FROM models "
        "WHERE name = ?1 AND template = ?2 AND device_id = ?3");
    s.bind(1, name).bind(2, template_name).bind(3, device_id);
    if (!s.step()) return std::nullopt;
    StoredModel m;
    m.name = name;
    m.template_name = template_name;
    m.device_id = device_id;
    const std::string where = "database '" + c.path().string() + "': cost model '" + name + "' for '" + template_name + "': ";
    auto schema = s.get_int(0);
    auto format = s.get_text(1), features = s.get_text(2), body = s.get_text(3), created = s.get_text(5);
    auto rows = s.get_int(4);
    if (!schema || !format || !features || !body || !rows || !created)
        throw Error(where + "a column has the wrong type");
    if (*schema < 1 || *schema > std::numeric_limits<int>::max())
        throw Error(where + "feature schema " + std::to_string(*schema) + " is out of range");
    m.feature_schema = static_cast<int>(*schema);
    m.format = *format;
    m.body = *body;
    m.trained_rows = *rows;
    m.created_at = *created;
    try {
        m.features = nlohmann::json::parse(*features).get<std::vector<std::string>>();
    } catch (const std::exception& e) {
        throw Error(where + "features are not a JSON list of names (" + e.what() + ")");
    }
    try {
        db_rules::require_sound_model(m);
    } catch (const Error& e) {
        throw Error("database '" + c.path().string() + "': " + e.what());
    }
    return m;
}

std::vector<StoredModel> SqliteDatabase::models() const {
    std::vector<std::array<std::string, 3>> keys;
    {
        std::lock_guard lock(impl_->mutex);
        auto& c = impl_->connection;
        auto s = c.prepare("SELECT name, template, device_id FROM models ORDER BY name, template, device_id");
        while (s.step()) {
            auto name = s.get_text(0), tmpl = s.get_text(1), device = s.get_text(2);
            if (!name || !tmpl || !device)
                throw Error("database '" + c.path().string() + "': a cost model's key has the wrong type");
            keys.push_back({*name, *tmpl, *device});
        }
    }
    std::vector<StoredModel> out;
    for (const auto& [name, tmpl, device] : keys)
        if (auto m = load_model(name, tmpl, device)) out.push_back(std::move(*m));
    return out;
}

}  // namespace tune
