// tune db list | show | export | import | verify | merge | migrate
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "cli.hpp"
#include "tune/cost_model/training.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/dispatcher.hpp"
#include "tune/error.hpp"

namespace tune::cli {
namespace {

void print_bad_rows(std::size_t count) {
    if (count) std::fprintf(stderr, "warning: %zu rows failed validation and were skipped (see 'tune db verify')\n", count);
}

struct ShapeBest {
    std::size_t total = 0, ok = 0;
    const Measurement* best = nullptr;
    std::optional<ConfirmedChoice> confirmed;  // set when `best` is a confirmed pick
};

// Per shape key: the confirmed pick of a current confirmation round, else the fastest ok row.
std::map<std::string, ShapeBest> best_per_shape(const Database& db, const std::vector<Measurement>& rows) {
    std::map<std::string, ShapeBest> by_key;
    for (const auto& m : rows) {
        auto& s = by_key[shape_key(m.problem)];
        ++s.total;
        if (m.status != Status::ok) continue;
        ++s.ok;
        if (!s.best || ranking_time(m.stats) < ranking_time(s.best->stats)) s.best = &m;
    }
    for (const ConfirmedPick& pick : confirmed_picks(db, {}, false)) {
        auto& s = by_key[shape_key(pick.measurement.problem)];
        for (const auto& m : rows)
            if (m.id == pick.measurement.id) s.best = &m, s.confirmed = pick.choice;
    }
    return by_key;
}

}  // namespace

void add_db_commands(CLI::App& app) {
    auto* db_cmd = app.add_subcommand("db", "inspect, ship and check a tuning store");
    // Not require_subcommand: with it, a misspelt verb ("db lsit") only got "A subcommand is
    // required"; now it is named as unexpected, and a bare "db" lists the verbs.
    db_cmd->require_subcommand(0, 1);
    db_cmd->callback([db_cmd] {
        if (!db_cmd->get_subcommands().empty()) return;
        std::string verbs;
        for (const CLI::App* sub : db_cmd->get_subcommands([](const CLI::App*) { return true; }))
            verbs += (verbs.empty() ? "" : ", ") + sub->get_name();
        throw Error("db: give a verb: " + verbs);
    });
    auto path = std::make_shared<std::string>("tuned.db");
    auto add_db_option = [&](CLI::App* cmd) {
        cmd->add_option("--db", *path, "SQLite file")->capture_default_str();
    };

    auto* list = db_cmd->add_subcommand("list", "one line per tuned shape: measurements and the best config");
    add_db_option(list);
    list->callback([=] {
        SqliteDatabase db(*path, SqliteDatabase::Mode::read_only);
        std::size_t bad = 0;
        auto rows = db.query({}, [&](std::int64_t, const std::string&) { ++bad; });
        auto by_key = best_per_shape(db, rows);
        // "median" is the best config's first measurement; "confirmed" its confirmed time in the
        // confirmation round that picked it (what the pick was ranked by), when there was one.
        Table t({"shape key", "measured", "ok", "best template", "best config", "median", "GFLOP/s", "confirmed"});
        for (const auto& [key, s] : by_key) {
            if (s.best)
                t.add({key, std::to_string(s.total), std::to_string(s.ok), s.best->template_name, s.best->config.text(),
                       format_seconds(s.best->stats.median_s), format_fixed(s.best->gflops(), 1),
                       s.confirmed ? format_seconds(s.confirmed->confirmed_s) : "-"});
            else
                t.add({key, std::to_string(s.total), "0", "-", "-", "-", "-", "-"});
        }
        std::printf("%s%zu shapes, %zu measurements, %zu runs, %zu devices, schema v%d\n", t.str().c_str(), by_key.size(),
                    rows.size(), db.runs().size(), db.devices().size(), db.schema_version());
        print_bad_rows(bad);
    });

    auto* best = db_cmd->add_subcommand(
        "best", "the best config of each shape, tab-separated for diffs: key, template, config, how it was picked, time");
    add_db_option(best);
    best->callback([=] {
        SqliteDatabase db(*path, SqliteDatabase::Mode::read_only);
        std::size_t bad = 0;
        auto rows = db.query({}, [&](std::int64_t, const std::string&) { ++bad; });
        for (const auto& [key, s] : best_per_shape(db, rows)) {
            if (!s.best) continue;
            std::string how = "fastest single measurement", time = format_seconds(s.best->stats.median_s);
            if (s.confirmed) {
                how = "confirmed";
                if (s.confirmed->tied > 1)
                    how += ", " + std::to_string(s.confirmed->tied) + " within 2% of " +
                           format_seconds(s.confirmed->fastest_s) + ": a library first, then the smallest (template, config hash)";
                time = format_seconds(s.confirmed->confirmed_s);
            }
            std::printf("%s\t%s\t%s\t%s\t%s\n", key.c_str(), s.best->template_name.c_str(), s.best->config.text().c_str(),
                        how.c_str(), time.c_str());
        }
        print_bad_rows(bad);
    });

    auto* show = db_cmd->add_subcommand("show", "every measurement of one shape key (or all), fastest first");
    add_db_option(show);
    auto key = std::make_shared<std::string>();
    show->add_option("key", *key, "shape key as printed by 'tune db list', e.g. \"gemm f32 batch=1 m=16 ...\"");
    show->callback([=] {
        SqliteDatabase db(*path, SqliteDatabase::Mode::read_only);
        MeasurementFilter f;
        if (!key->empty()) f.problem_key = shape_key(parse_shape_key(*key));
        std::size_t bad = 0;
        auto rows = db.query(f, [&](std::int64_t, const std::string&) { ++bad; });
        std::stable_sort(rows.begin(), rows.end(), [](const Measurement& a, const Measurement& b) {
            if ((a.status == Status::ok) != (b.status == Status::ok)) return a.status == Status::ok;
            return a.stats.median_s < b.stats.median_s;
        });
        Table t({"shape key", "template", "config", "status", "median", "ci", "reps", "GFLOP/s", "error", "run", "reason"});
        for (const auto& m : rows)
            t.add({shape_key(m.problem), m.template_name, m.config.text(), std::string(to_string(m.status)),
                   m.status == Status::ok ? format_seconds(m.stats.median_s) : "-",
                   m.status == Status::ok ? format_fixed(100 * m.stats.ci_half_width_rel, 1) + "%" : "-",
                   std::to_string(m.stats.count), m.status == Status::ok ? format_fixed(m.gflops(), 1) : "-",
                   format_fixed(m.error, 9), std::to_string(m.run_id), m.reason});
        std::printf("%s%zu measurements\n", t.str().c_str(), rows.size());
        print_bad_rows(bad);
    });

    auto* exp = db_cmd->add_subcommand("export", "write the store as JSON (to ship tuned results)");
    add_db_option(exp);
    auto out = std::make_shared<std::string>("-");
    exp->add_option("-o,--out", *out, "output file, - for stdout")->capture_default_str();
    exp->callback([=] {
        SqliteDatabase db(*path, SqliteDatabase::Mode::read_only);
        std::size_t skipped = 0;
        if (*out == "-")
            skipped = export_json(db, std::cout);
        else
            write_output(*out, "export", {*path}, [&](std::ostream& f) { skipped = export_json(db, f); });
        print_bad_rows(skipped);
    });

    auto* imp = db_cmd->add_subcommand("import", "add the measurements of a JSON export (all rows checked first)");
    add_db_option(imp);
    auto in = std::make_shared<std::string>();
    imp->add_option("file", *in, "JSON file written by 'tune db export'")->required();
    imp->callback([=] {
        require_store_path(*path, "--db");
        std::ifstream f = open_input(*in, "import");
        const ExportedRows exported = read_export_json(f);  // a bad file is refused before the store is opened
        for (std::size_t i = 0; i < exported.models.size(); ++i) {
            try {
                cost_model::from_stored(exported.models[i]);  // XGBoost must read the trees
            } catch (const Error& e) {
                throw Error(*in + ": models[" + std::to_string(i) + "] (" + exported.models[i].template_name +
                            "): " + e.what());
            }
        }
        SqliteDatabase db(*path);
        const ImportedJson added = import_json(db, exported);
        std::printf("imported %zu new measurements into %s", added.rows, path->c_str());
        if (!exported.models.empty())
            std::printf("; cost models: %zu added, %zu kept the store's own", added.models,
                        exported.models.size() - added.models);
        std::printf("\n");
    });

    auto* merge = db_cmd->add_subcommand("merge", "merge stores of independent runs into one, duplicates removed");
    auto sources = std::make_shared<std::vector<std::string>>();
    auto merged = std::make_shared<std::string>();
    merge->add_option("sources", *sources, "SQLite files to merge (read only)")->required();
    merge->add_option("-o,--output", *merged, "the merged store (created, or added to when it exists)")->required();
    merge->callback([=] {
        namespace fs = std::filesystem;
        for (const auto& src : *sources) {
            std::error_code ec;
            require(!fs::exists(*merged) || !fs::equivalent(src, *merged, ec),
                    "merge: the output '" + *merged + "' is also a source");
        }
        // Every source is opened and decoded before the output is touched.
        struct Source {
            std::string path;
            std::vector<RunInfo> runs;
            std::vector<DeviceInfo> devices;
            std::map<std::int64_t, std::vector<Measurement>> by_run;
            std::size_t bad = 0;
            // The re-measurements of each current confirmation round, by (shape, device), with
            // the candidates the round ranked among (the shape's ok rows in the source).
            struct Round {
                std::vector<Confirmation> rows;
                std::set<std::string> candidates;
            };
            std::map<std::pair<std::string, std::string>, Round> rounds;
            std::vector<StoredModel> models;
        };
        std::vector<Source> loaded;
        for (const auto& src : *sources) {
            SqliteDatabase db(src, SqliteDatabase::Mode::read_only);
            Source s{src, db.runs(), db.devices(), {}, 0, {}, {}};
            for (StoredModel& m : db.models()) {
                try {
                    cost_model::from_stored(m);  // a damaged model stays behind, as damaged rows do
                    s.models.push_back(std::move(m));
                } catch (const Error& e) {
                    std::fprintf(stderr, "merge: %s: the cost model of %s is not carried: %s\n", src.c_str(),
                                 m.template_name.c_str(), e.what());
                }
            }
            for (auto& m : db.query({}, [&](std::int64_t, const std::string&) { ++s.bad; }))
                s.by_run[m.run_id].push_back(std::move(m));
            for (const ConfirmedPick& pick : confirmed_picks(db, {}, false)) {
                auto& round = s.rounds[{shape_key(pick.measurement.problem), pick.measurement.device_id}];
                for (auto& c : db.confirmations({shape_key(pick.measurement.problem), pick.measurement.device_id, "", "",
                                                 std::nullopt}))
                    if (c.finalists == pick.finalists) round.rows.push_back(std::move(c));
                for (const auto& m : db.query({shape_key(pick.measurement.problem), pick.measurement.device_id, "", "",
                                               Status::ok}))
                    round.candidates.insert(finalist_key(m.template_name, m.template_version, m.config.hash_hex()));
            }
            loaded.push_back(std::move(s));
        }
        // All or nothing: one transaction over the output, and a new output file that the
        // merge fails to fill is removed again.
        require_store_path(*merged, "-o");
        const bool created = !fs::exists(*merged);
        std::size_t added = 0, seen = 0, bad = 0, carried = 0, dropped = 0, models = 0, models_seen = 0;
        try {
            SqliteDatabase out(*merged);
            out.atomically([&] {
                // One output run per source run keeps provenance: its command, strategy and seed,
                // where it came from, and the rows' own timestamps. Duplicates (first source
                // wins) are skipped.
                std::vector<std::map<std::int64_t, std::int64_t>> output_run(loaded.size());  // source run -> output run
                auto import = [&](std::size_t source, std::int64_t source_run, const std::vector<Measurement>& rows) {
                    const Source& s = loaded[source];
                    auto run = std::find_if(s.runs.begin(), s.runs.end(), [&](const RunInfo& r) { return r.id == source_run; });
                    RunInfo copy{0, "merged from " + s.path + " (rows without a run)", "", 0, "", ""};
                    if (run != s.runs.end()) {
                        copy = *run;
                        copy.command = "merged from " + s.path + " run " + std::to_string(run->id) + " (started " +
                                       run->started_at + "): " + run->command;
                    }
                    const auto imported = out.import_rows(copy, s.devices, rows);
                    output_run[source][source_run] = imported.run_id;
                    seen += rows.size();
                    added += imported.added;
                };
                for (std::size_t i = 0; i < loaded.size(); ++i) {
                    bad += loaded[i].bad;
                    for (const auto& [run_id, rows] : loaded[i].by_run) import(i, run_id, rows);
                }
                // A source's confirmation round still ranks its shape in the merged store only
                // when no other source added a candidate the round did not see; otherwise the
                // merged best is the fastest first measurement until a new round (e.g. `tune`
                // with --confirm-rounds) ranks all. Its rows keep their run (a run that stored no
                // measurement gets its output run here).
                for (std::size_t i = 0; i < loaded.size(); ++i)
                    for (const auto& [shape, round] : loaded[i].rounds) {
                        bool covered = true;
                        for (const auto& m : out.query({shape.first, shape.second, "", "", Status::ok}))
                            covered = covered && round.candidates.count(
                                                     finalist_key(m.template_name, m.template_version, m.config.hash_hex())) > 0;
                        if (!covered) {
                            ++dropped;
                            continue;
                        }
                        for (Confirmation c : round.rows) {
                            if (!output_run[i].contains(c.run_id)) import(i, c.run_id, {});
                            c.run_id = output_run[i].at(c.run_id);
                            out.record_confirmation(c);
                        }
                        ++carried;
                    }
                // Cost models: the first source's for a (template, device) wins, and an output
                // that has one keeps it.
                for (const Source& s : loaded) {
                    models_seen += s.models.size();
                    models += add_missing_models(out, s.models);
                }
            });
        } catch (...) {
            if (created)
                for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
                    std::error_code ignored;
                    fs::remove(*merged + suffix, ignored);
                }
            throw;
        }
        std::printf("merged %zu sources into %s: %zu measurements read, %zu added, %zu duplicates skipped; "
                    "confirmation rounds: %zu carried, %zu not (their shape gained other sources' candidates); "
                    "cost models: %zu carried, %zu not (the output or an earlier source had one)\n",
                    loaded.size(), merged->c_str(), seen, added, seen - added, carried, dropped, models,
                    models_seen - models);
        print_bad_rows(bad);
    });

    auto* verify = db_cmd->add_subcommand("verify", "integrity check of the file and of every row");
    add_db_option(verify);
    verify->callback([=] {
        SqliteDatabase db(*path, SqliteDatabase::Mode::read_only);
        auto problems = db.verify();
        // What a runtime would refuse beyond that: each device's rows loaded as the Dispatcher
        // loads them (configs checked against this build's template spaces, cost models read).
        // Rows that fail to decode are listed above already ("measurement N").
        for (const DeviceInfo& device : db.devices()) {
            StoreLayer layer{"device " + device.id(), &db};
            Dispatcher runtime({layer}, std::make_shared<const TemplateRegistry>(builtin_registry(device)), device);
            for (const std::string& why : runtime.stats().rejections)
                if (!why.starts_with(layer.name + ": row ")) problems.push_back(why);
        }
        for (const auto& p : problems) std::printf("%s\n", p.c_str());
        if (!problems.empty()) throw Error("verify: " + std::to_string(problems.size()) + " problems found in " + *path);
        std::printf("ok: %s is healthy (schema v%d)\n", path->c_str(), db.schema_version());
    });

    auto* migrate = db_cmd->add_subcommand("migrate", "bring a store of an older schema to the current one (in place)");
    add_db_option(migrate);
    migrate->callback([=] {
        // A read-write open migrates; a path that does not exist must not become a new store.
        require(std::filesystem::exists(*path), "migrate: no such file '" + *path + "'");
        require_existing(*path);
        SqliteDatabase db(*path);
        std::printf("ok: %s is at schema v%d\n", path->c_str(), db.schema_version());
    });

    add_housekeeping_commands(*db_cmd);
}

}  // namespace tune::cli
