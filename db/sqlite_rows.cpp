// Row codec of the SQLite store: writes measurements, devices and runs, and reads them back
// checking every value.
#include "sqlite_rows.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "rows.hpp"

namespace tune::sqlite_rows {

namespace {

constexpr const char* kInsert = R"(
INSERT INTO measurements(run_id, problem_key, problem, device_id, template, template_version,
    config, config_hash, status, reason, median_s, min_s, mean_s, iqr_s, ci_rel, reps, inner,
    stable, error, workspace_bytes, created_at)
VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
    ?20, ?21)
ON CONFLICT(problem_key, device_id, template, template_version, config_hash) DO NOTHING)";

constexpr std::int64_t kMaxCount = 1'000'000'000;

// Both tables keep the timing columns in one order: median_s, min_s, mean_s, iqr_s, ci_rel,
// reps, inner; bind_stats writes them from parameter `first` on.
void bind_stats(sqlite::Statement& s, int first, const TimingStats& t) {
    s.bind(first, t.median_s)
        .bind(first + 1, t.min_s)
        .bind(first + 2, t.mean_s)
        .bind(first + 3, t.iqr_s)
        .bind(first + 4, t.ci_half_width_rel)
        .bind(first + 5, std::int64_t{t.count})
        .bind(first + 6, std::int64_t{t.inner});
}

// Column readers of the decoders: each returns why the value is unusable, or "".
std::string read_text(const sqlite::Statement& s, int column, const char* name, std::string& v) {
    auto t = s.get_text(column);
    if (!t) return std::string(name) + " is not text";
    v = std::move(*t);
    return {};
}

std::string read_real(const sqlite::Statement& s, int column, const char* name, double& v) {
    auto r = s.get_real(column);
    if (!r) return std::string(name) + " is not a number";
    v = *r;
    return {};
}

std::string read_int(const sqlite::Statement& s, int column, const char* name, std::int64_t lo, std::int64_t hi,
                     std::int64_t& v) {
    auto i = s.get_int(column);
    if (!i) return std::string(name) + " is not an integer";
    if (*i < lo || *i > hi) return std::string(name) + " out of range (" + std::to_string(*i) + ")";
    v = *i;
    return {};
}

// The timing columns bind_stats writes, read from result column `first` on.
std::string read_stats(const sqlite::Statement& s, int first, TimingStats& t) {
    std::int64_t reps = 0, inner = 0;
    for (auto&& why : {read_real(s, first, "median_s", t.median_s), read_real(s, first + 1, "min_s", t.min_s),
                       read_real(s, first + 2, "mean_s", t.mean_s), read_real(s, first + 3, "iqr_s", t.iqr_s),
                       read_real(s, first + 4, "ci_rel", t.ci_half_width_rel),
                       read_int(s, first + 5, "reps", 0, kMaxCount, reps),
                       read_int(s, first + 6, "inner", 1, kMaxCount, inner)}) {
        if (!why.empty()) return why;
    }
    t.count = static_cast<int>(reps);
    t.inner = static_cast<int>(inner);
    return {};
}

}  // namespace

void insert_device(sqlite::Connection& c, const DeviceInfo& device) {
    c.prepare("INSERT INTO devices(id, info, first_seen) VALUES(?1, ?2, ?3) "
              "ON CONFLICT(id) DO NOTHING")
        .bind(1, device.id())
        .bind(2, nlohmann::json(device).dump())
        .bind(3, db_rules::utc_now())
        .run();
}

std::int64_t insert_run(sqlite::Connection& c, const RunInfo& run, const std::string& device_id) {
    c.prepare("INSERT INTO runs(command, strategy, seed, device_id, started_at) "
              "VALUES(?1, ?2, ?3, ?4, ?5)")
        .bind(1, run.command)
        .bind(2, run.strategy)
        .bind(3, std::bit_cast<std::int64_t>(run.seed))
        .bind_text_or_null(4, device_id)
        .bind(5, db_rules::utc_now())
        .run();
    return c.last_insert_rowid();
}

bool insert_measurement(sqlite::Connection& c, const Measurement& m, std::int64_t run_id,
                        const std::string& created_at) {
    auto s = c.prepare(kInsert);
    if (run_id > 0) s.bind(1, run_id);
    else s.bind_null(1);
    s.bind(2, shape_key(m.problem))
        .bind(3, nlohmann::json(m.problem).dump())
        .bind(4, m.device_id)
        .bind(5, m.template_name)
        .bind(6, m.template_version)
        .bind(7, nlohmann::json(m.config).dump())
        .bind(8, m.config.hash_hex())
        .bind(9, to_string(m.status))
        .bind(10, m.reason);
    bind_stats(s, 11, m.stats);
    s.bind(18, std::int64_t{m.stats.stable ? 1 : 0})
        .bind(19, m.error)
        .bind(20, m.workspace_bytes)
        .bind(21, created_at)
        .run();
    return c.changes() == 1;
}

std::string decode(const sqlite::Statement& s, Measurement& out) {
    Measurement m;
    m.id = s.get_int(0).value_or(0);
    if (!s.is_null(1)) {
        auto run = s.get_int(1);
        if (!run) return "run_id is not an integer";
        m.run_id = *run;
    }
    std::string key, problem_json, config_json, hash, status;
    std::int64_t stable = 0;
    for (auto&& check : {
             read_text(s, 2, "problem_key", key), read_text(s, 3, "problem", problem_json),
             read_text(s, 4, "device_id", m.device_id), read_text(s, 5, "template", m.template_name),
             read_text(s, 6, "template_version", m.template_version), read_text(s, 7, "config", config_json),
             read_text(s, 8, "config_hash", hash), read_text(s, 9, "status", status),
             read_text(s, 10, "reason", m.reason), read_stats(s, 11, m.stats),
             read_int(s, 18, "stable", 0, 1, stable),
             read_int(s, 20, "workspace_bytes", 0, INT64_MAX, m.workspace_bytes),
             read_text(s, 21, "created_at", m.created_at)}) {
        if (!check.empty()) return check;
    }
    m.stats.stable = stable != 0;
    if (s.is_null(19)) m.error = std::nan("");
    else if (auto r = read_real(s, 19, "error", m.error); !r.empty()) return r;
    try {
        m.problem = nlohmann::json::parse(problem_json).get<Problem>();
    } catch (const std::exception& e) {
        return std::string("problem: ") + e.what();
    }
    if (shape_key(m.problem) != key) return "problem_key does not match the problem JSON";
    try {
        m.config = nlohmann::json::parse(config_json).get<Config>();
    } catch (const std::exception& e) {
        return std::string("config: ") + e.what();
    }
    if (m.config.hash_hex() != hash)
        return "config_hash " + hash + " does not match the config (" + m.config.hash_hex() + ")";
    try {
        m.status = parse_status(status);
    } catch (const std::exception& e) {
        return std::string("status: ") + e.what();
    }
    if (!db_rules::is_timestamp(m.created_at)) return "created_at is not an ISO-8601 UTC time";
    if (auto defect = db_rules::find_defect(m); !defect.empty()) return defect;
    out = std::move(m);
    return {};
}

bool insert_confirmation(sqlite::Connection& c, const Confirmation& conf) {
    auto s = c.prepare(
        "INSERT OR IGNORE INTO confirmations(run_id, problem_key, device_id, template, template_version, config_hash, "
        "finalists, round, median_s, min_s, mean_s, iqr_s, ci_rel, reps, inner, snapshot, created_at, vendor) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
        "(SELECT IFNULL(MAX(id), 0) FROM measurements WHERE problem_key = ?2 AND device_id = ?3), ?16, ?17)");
    if (conf.run_id > 0) s.bind(1, conf.run_id);
    else s.bind_null(1);
    s.bind(2, conf.problem_key)
        .bind(3, conf.device_id)
        .bind(4, conf.template_name)
        .bind(5, conf.template_version)
        .bind(6, conf.config_hash)
        .bind(7, conf.finalists)
        .bind(8, std::int64_t{conf.round});
    bind_stats(s, 9, conf.stats);
    s.bind(16, db_rules::utc_now()).bind(17, std::int64_t{conf.vendor ? 1 : 0}).run();
    return c.changes() == 1;
}

std::string decode_confirmation(const sqlite::Statement& s, Confirmation& out) {
    Confirmation c;
    auto id = s.get_int(0);
    if (!id) return "id is not an integer";
    c.id = *id;
    if (!s.is_null(1)) {
        auto run = s.get_int(1);
        if (!run) return "run_id is not an integer";
        c.run_id = *run;
    }
    std::int64_t round = 0, vendor = 0;
    for (auto&& check : {
             read_text(s, 2, "problem_key", c.problem_key), read_text(s, 3, "device_id", c.device_id),
             read_text(s, 4, "template", c.template_name), read_text(s, 5, "template_version", c.template_version),
             read_text(s, 6, "config_hash", c.config_hash), read_text(s, 7, "finalists", c.finalists),
             read_int(s, 8, "round", 0, kMaxCount, round), read_stats(s, 9, c.stats),
             read_int(s, 16, "snapshot", 0, INT64_MAX, c.snapshot), read_text(s, 17, "created_at", c.created_at),
             read_int(s, 18, "vendor", 0, 1, vendor)}) {
        if (!check.empty()) return check;
    }
    c.round = static_cast<int>(round);
    c.vendor = vendor != 0;
    c.stats.stable = true;
    if (c.config_hash.size() != 16 || c.config_hash.find_first_not_of("0123456789abcdef") != std::string::npos)
        return "config_hash '" + c.config_hash + "' is not 16 hex digits";
    if (!db_rules::is_timestamp(c.created_at)) return "created_at is not an ISO-8601 UTC time";
    if (auto defect = db_rules::find_confirmation_defect(c); !defect.empty()) return defect;
    out = std::move(c);
    return {};
}

// WHERE clause for a filter; parameters are the returned strings in order.
std::string where(const MeasurementFilter& f, bool ok_only, std::vector<std::string>& args) {
    std::string sql = " WHERE 1";
    auto add = [&](const char* column, const std::string& value) {
        if (value.empty()) return;
        args.push_back(value);
        sql += std::string(" AND ") + column + " = ?" + std::to_string(args.size());
    };
    add("problem_key", f.problem_key);
    add("device_id", f.device_id);
    add("template", f.template_name);
    add("template_version", f.template_version);
    if (ok_only) add("status", std::string(to_string(Status::ok)));
    else if (f.status) add("status", std::string(to_string(*f.status)));
    return sql;
}

sqlite::Statement prepare_with(sqlite::Connection& c, const std::string& sql,
                               const std::vector<std::string>& args) {
    auto s = c.prepare(sql);
    for (std::size_t i = 0; i < args.size(); ++i) s.bind(static_cast<int>(i + 1), args[i]);
    return s;
}

// Decodes one devices row; returns why it cannot be trusted, or "".
std::string decode_device(const sqlite::Statement& s, DeviceInfo& out) {
    auto id = s.get_text(0), info = s.get_text(1);
    if (!id || !info) return "id or info is not text";
    try {
        out = nlohmann::json::parse(*info).get<DeviceInfo>();
    } catch (const std::exception& e) {
        return std::string("info: ") + e.what();
    }
    if (out.id() != *id) return "id does not match the fingerprint (" + out.id() + ")";
    return {};
}

}  // namespace tune::sqlite_rows
