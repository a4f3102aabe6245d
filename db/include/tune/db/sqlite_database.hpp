// SQLite implementation of Database: versioned schema with migrations, WAL mode, every
// measurement keyed by problem, device, template name + version and config hash.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "tune/db/database.hpp"

namespace tune {

class SqliteDatabase final : public Database {
public:
    static constexpr int kSchemaVersion = 6;
    enum class Mode { read_write, read_only };

    // Opens (creating when read_write and absent) and migrates to kSchemaVersion. read_only
    // never writes: it refuses a missing file and an older schema instead. Throws
    // tune::Error naming the path when the file is not a libtune SQLite DB, is from a newer
    // schema, or cannot be opened.
    explicit SqliteDatabase(const std::filesystem::path& path, Mode mode = Mode::read_write);
    ~SqliteDatabase() override;
    SqliteDatabase(const SqliteDatabase&) = delete;
    SqliteDatabase& operator=(const SqliteDatabase&) = delete;

    std::int64_t start_run(const RunInfo& run, const DeviceInfo& device) override;
    bool record(const Measurement& m) override;
    std::vector<Measurement> query(
        const MeasurementFilter& filter,
        const std::function<void(std::int64_t, const std::string&)>& on_bad_row = {})
        const override;
    std::vector<Measurement> best(const MeasurementFilter& filter) const override;
    bool record_confirmation(const Confirmation& c) override;
    std::vector<Confirmation> confirmations(const MeasurementFilter& filter) const override;
    void save_model(const StoredModel& model) override;
    std::optional<StoredModel> load_model(const std::string& name, const std::string& template_name,
                                          const std::string& device_id) const override;

    // Registers `run` (its device_id is ignored) and the devices, then records every row
    // under that run in ONE transaction: all or nothing. Rows keep their created_at when set;
    // rows already stored are skipped. Throws tune::Error naming the index of an unsound row.
    // Used by import_json and by merging databases.
    struct Imported {
        std::size_t added = 0;    // rows not stored before
        std::int64_t run_id = 0;  // the run registered for them
    };
    Imported import_rows(const RunInfo& run, const std::vector<DeviceInfo>& devices,
                         const std::vector<Measurement>& rows);

    // Runs `body` as one transaction: the writes it makes through this store (from this
    // thread; others wait) commit together, or not at all when it throws.
    void atomically(const std::function<void()>& body);

    // Every stored cost model (a model that fails to decode throws, as load_model does).
    std::vector<StoredModel> models() const;

    int schema_version() const;
    std::vector<RunInfo> runs() const;
    std::vector<DeviceInfo> devices() const;
    // integrity_check, quick_check, foreign_key_check, schema version and every device,
    // measurement or confirmation row that fails to decode: one line per problem; empty = healthy.
    std::vector<std::string> verify() const;

    // Named settings stored with the measurements (e.g. "buckets"); nullopt when unset.
    std::optional<std::string> setting(std::string_view name) const;
    void set_setting(std::string_view name, std::string_view value);

    // Deletes these measurement rows in ONE transaction (all or none); returns how many went.
    std::size_t remove_measurements(const std::vector<std::int64_t>& ids);
    // Rebuilds the file without free pages and truncates the WAL, returning space to the disk.
    void vacuum();
    const std::filesystem::path& path() const;

    // Creates a DB at an older schema version; tests use it to exercise migrations.
    static void create_at_version(const std::filesystem::path& path, int version);

private:
    std::vector<Measurement> fastest(const MeasurementFilter& filter) const;  // best() before confirmation

    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// JSON export/import for shipping tuned results: {"format":"libtune-db","version":1,
// "devices":[...],"measurements":[...],"models":[...]} ("models" optional: the cost models of
// the exported devices and templates). Import validates every row and model before writing any.
// Returns the number of rows left out because they failed to decode (as query() skips them).
std::size_t export_json(const SqliteDatabase& db, std::ostream& out, const MeasurementFilter& filter = {});
// Import in two steps (so a bad file is refused before a store is opened): read and check
// every device, row and model, then add them to a store under one "import" run (a model the
// store already has for the same name, template and device stays: the store's own is kept).
struct ExportedRows {
    std::vector<DeviceInfo> devices;
    std::vector<Measurement> rows;
    std::vector<StoredModel> models;
};
ExportedRows read_export_json(std::istream& in);
// Adds `models` the store lacks (by name, template and device); returns how many.
std::size_t add_missing_models(SqliteDatabase& db, const std::vector<StoredModel>& models);
struct ImportedJson {
    std::size_t rows = 0;    // measurements not stored before
    std::size_t models = 0;  // cost models the store lacked
};
ImportedJson import_json(SqliteDatabase& db, const ExportedRows& exported);
std::size_t import_json(SqliteDatabase& db, std::istream& in);  // both steps; the rows added

}  // namespace tune
