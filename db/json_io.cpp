// JSON export/import of a SqliteDatabase: {"format":"libtune-db","version":1,"devices":[...],
// "measurements":[...],"models":[...]}. Import checks every row and model before it writes any.
// "models" is optional (files written before it had none; readers of version 1 ignore it).
#include <cmath>
#include <istream>
#include <limits>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>

#include "rows.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/error.hpp"

namespace tune {

namespace {

constexpr const char* kFormat = "libtune-db";
constexpr int kFormatVersion = 1;

// A non-finite error (NaN: nothing to compare) is written as JSON null and read back as NaN.
Measurement measurement_from(const nlohmann::json& j) {
    if (j.is_object() && j.contains("error") && j["error"].is_null()) {
        nlohmann::json copy = j;
        copy["error"] = 0.0;
        Measurement m = copy.get<Measurement>();
        m.error = std::nan("");
        return m;
    }
    return j.get<Measurement>();
}

nlohmann::json model_json(const StoredModel& m) {
    return {{"name", m.name},         {"template", m.template_name},     {"device_id", m.device_id},
            {"feature_schema", m.feature_schema}, {"format", m.format}, {"features", m.features},
            {"body", m.body},         {"trained_rows", m.trained_rows},  {"created_at", m.created_at}};
}

StoredModel model_from(const nlohmann::json& j) {
    require(j.is_object(), "expected an object");
    StoredModel m;
    j.at("name").get_to(m.name);
    j.at("template").get_to(m.template_name);
    j.at("device_id").get_to(m.device_id);
    require(j.at("feature_schema").is_number_integer(), "'feature_schema' must be an integer");
    const auto schema = j.at("feature_schema").get<std::int64_t>();
    require(schema >= 1 && schema <= std::numeric_limits<int>::max(), "'feature_schema' is out of range");
    m.feature_schema = static_cast<int>(schema);
    j.at("format").get_to(m.format);
    j.at("features").get_to(m.features);
    j.at("body").get_to(m.body);
    require(j.at("trained_rows").is_number_integer(), "'trained_rows' must be an integer");
    j.at("trained_rows").get_to(m.trained_rows);
    db_rules::require_sound_model(m);
    return m;
}

}  // namespace

std::size_t export_json(const SqliteDatabase& db, std::ostream& out, const MeasurementFilter& filter) {
    nlohmann::json doc = {{"format", kFormat}, {"version", kFormatVersion}};
    std::set<std::string> device_ids;
    nlohmann::json rows = nlohmann::json::array();
    std::size_t skipped = 0;
    for (const Measurement& m : db.query(filter, [&](std::int64_t, const std::string&) { ++skipped; })) {
        nlohmann::json row = m;
        row["config_hash"] = m.config.hash_hex();
        if (!std::isfinite(m.error)) row["error"] = nullptr;
        rows.push_back(std::move(row));
        device_ids.insert(m.device_id);
    }
    nlohmann::json devices = nlohmann::json::array();
    for (const DeviceInfo& d : db.devices())
        if (device_ids.contains(d.id())) devices.push_back(d);
    doc["devices"] = std::move(devices);
    doc["measurements"] = std::move(rows);
    // The cost models of what was exported: they rank configs for its devices' unseen shapes.
    nlohmann::json models = nlohmann::json::array();
    for (const StoredModel& m : db.models())
        if ((filter.device_id.empty() ? device_ids.contains(m.device_id) : m.device_id == filter.device_id) &&
            (filter.template_name.empty() || m.template_name == filter.template_name))
            models.push_back(model_json(m));
    doc["models"] = std::move(models);
    out << doc.dump(1) << '\n';
    require(out.good(), "export: write failed");
    return skipped;
}

ExportedRows read_export_json(std::istream& in) {
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("import: not valid JSON: ") + e.what());
    }
    require(doc.is_object(), "import: expected a JSON object");
    require(doc.contains("format") && doc["format"] == kFormat,
            std::string("import: 'format' must be \"") + kFormat + "\"");
    require(doc.contains("version") && doc["version"].is_number_integer(),
            "import: 'version' must be an integer");
    require(doc["version"] == kFormatVersion,
            "import: unsupported version " + doc["version"].dump() + " (this libtune reads " +
                std::to_string(kFormatVersion) + ")");
    for (const char* key : {"devices", "measurements"})
        require(doc.contains(key) && doc[key].is_array(),
                std::string("import: '") + key + "' must be an array");

    ExportedRows out;
    std::vector<DeviceInfo>& devices = out.devices;
    for (std::size_t i = 0; i < doc["devices"].size(); ++i) {
        try {
            devices.push_back(doc["devices"][i].get<DeviceInfo>());
        } catch (const std::exception& e) {
            throw Error("import: devices[" + std::to_string(i) + "]: " + e.what());
        }
    }
    std::vector<Measurement>& rows = out.rows;
    for (std::size_t i = 0; i < doc["measurements"].size(); ++i) {
        const nlohmann::json& row = doc["measurements"][i];
        std::string where = "import: measurements[" + std::to_string(i) + "]";
        Measurement m;
        try {
            m = measurement_from(row);
        } catch (const std::exception& e) {
            throw Error(where + ": " + e.what());
        }
        require(row.contains("config_hash") && row["config_hash"].is_string(),
                where + ": 'config_hash' must be a string");
        require(row["config_hash"] == m.config.hash_hex(),
                where + ": 'config_hash' " + row["config_hash"].dump() +
                    " does not match the config (" + m.config.hash_hex() + ")");
        if (auto why = db_rules::find_defect(m); !why.empty()) throw Error(where + ": " + why);
        require(m.created_at.empty() || db_rules::is_timestamp(m.created_at),
                where + ": 'created_at' is not an ISO-8601 UTC time");
        m.id = 0;
        rows.push_back(std::move(m));
    }
    if (doc.contains("models")) {
        require(doc["models"].is_array(), "import: 'models' must be an array");
        for (std::size_t i = 0; i < doc["models"].size(); ++i) {
            try {
                out.models.push_back(model_from(doc["models"][i]));
            } catch (const std::exception& e) {
                throw Error("import: models[" + std::to_string(i) + "]: " + e.what());
            }
        }
    }
    return out;
}

std::size_t add_missing_models(SqliteDatabase& db, const std::vector<StoredModel>& models) {
    std::size_t added = 0;
    for (const StoredModel& m : models)
        if (!db.load_model(m.name, m.template_name, m.device_id)) {
            db.save_model(m);
            ++added;
        }
    return added;
}

ImportedJson import_json(SqliteDatabase& db, const ExportedRows& exported) {
    RunInfo run;
    run.command = "import";
    run.strategy = "import";
    ImportedJson added;
    db.atomically([&] {
        added.rows = db.import_rows(run, exported.devices, exported.rows).added;
        added.models = add_missing_models(db, exported.models);
    });
    return added;
}

std::size_t import_json(SqliteDatabase& db, std::istream& in) { return import_json(db, read_export_json(in)).rows; }

}  // namespace tune
