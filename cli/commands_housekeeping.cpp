// tune db stats | prune: what a store holds, and dropping what is no longer worth keeping.
#include <cstdio>
#include <map>
#include <memory>

#include "cli.hpp"
#include "tune/db/housekeeping.hpp"
#include "tune/error.hpp"
#include "tune/kernel.hpp"

namespace tune::cli {
namespace {

// The versions of the templates built into this tune binary: what "stale" is measured against.
TemplateVersions current_versions() {
    TemplateVersions out;
    const TemplateRegistry registry = builtin_registry(detect_cpu());
    for (const Template* t : registry.all()) out[t->info().name] = t->info().version;
    return out;
}

std::string format_bytes(std::uintmax_t n) {
    if (n >= (1u << 20)) return format_fixed(double(n) / (1u << 20), 2) + " MiB";
    if (n >= (1u << 10)) return format_fixed(double(n) / (1u << 10), 1) + " KiB";
    return std::to_string(n) + " B";
}

}  // namespace

void add_housekeeping_commands(CLI::App& db_cmd) {
    auto path = std::make_shared<std::string>("tuned.db");

    auto* stats = db_cmd.add_subcommand("stats", "size, rows, keys, template versions (stale ones), runs, age");
    stats->add_option("--db", *path, "SQLite file")->capture_default_str();
    stats->callback([=] {
        SqliteDatabase db(*path, SqliteDatabase::Mode::read_only);
        StoreStats st = store_stats(db, current_versions());
        std::printf("file:      %s (%s, WAL %s)\n", path->c_str(), format_bytes(st.file_bytes).c_str(),
                    format_bytes(st.wal_bytes).c_str());
        std::printf("rows:      %zu (%zu ok, %zu failed)\n", st.rows, st.ok_rows, st.failed_rows);
        std::printf("keys:      %zu shapes\n", st.keys);
        std::printf("stale:     %zu rows of another version of a built-in template\n", st.stale_rows);
        std::printf("unknown:   %zu rows of templates not built into this tune\n", st.unknown_rows);
        std::printf("runs:      %zu, devices: %zu\n", st.runs, st.devices);
        std::printf("oldest:    %s\nnewest:    %s\n", st.oldest.empty() ? "-" : st.oldest.c_str(),
                    st.newest.empty() ? "-" : st.newest.c_str());
        Table t({"template", "version", "state", "rows"});
        for (const auto& v : st.templates)
            t.add({v.template_name, v.version, std::string(to_string(v.state)), std::to_string(v.rows)});
        std::printf("%s", t.str().c_str());
        if (st.bad_rows)
            std::printf("warning: %zu rows failed validation (see 'tune db verify')\n", st.bad_rows);
    });

    auto* prune = db_cmd.add_subcommand(
        "prune", "drop stale template versions and all but the best rows per shape, then VACUUM");
    auto options = std::make_shared<PruneOptions>();
    auto prune_path = std::make_shared<std::string>("tuned.db");
    prune->add_option("--db", *prune_path, "SQLite file")->capture_default_str();
    prune->add_option("--keep", options->keep, "fastest measurements kept per shape and device")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
    prune->add_flag("--drop-failed", options->drop_failed,
                    "also drop failed/wrong/crashed rows (a later tune then measures those candidates again)");
    prune->add_flag("--dry-run", options->dry_run, "print what would be dropped, change nothing");
    prune->callback([=] {
        require_existing(*prune_path);
        // A dry run changes nothing, not even the file's schema version or journal mode.
        SqliteDatabase db(*prune_path, options->dry_run ? SqliteDatabase::Mode::read_only
                                                        : SqliteDatabase::Mode::read_write);
        // A row is servable when its device's templates (as this build has them) accept its
        // config, as the Dispatcher checks it; a row of a device without a fingerprint is ranked.
        std::map<std::string, TemplateRegistry> registries;
        for (const DeviceInfo& d : db.devices()) registries.emplace(d.id(), builtin_registry(d));
        PruneOptions with_check = *options;
        with_check.servable = [&](const Measurement& m) {
            auto registry = registries.find(m.device_id);
            if (registry == registries.end()) return true;
            const Template* t = registry->second.find(m.template_name);
            return t == nullptr || !refusal(*t, m.problem, m.config);
        };
        PruneReport r = prune_store(db, current_versions(), with_check);
        std::printf("%s %zu of %zu rows: %zu of stale template versions, %zu slower than the best %zu per shape "
                    "(not on the time/workspace front), %zu failed\n",
                    options->dry_run ? "would drop" : "dropped", r.dropped(), r.rows_before, r.dropped_stale,
                    r.dropped_slow, options->keep, r.dropped_failed);
        std::printf("kept %zu rows (%zu failed rows of current versions, %zu of unknown templates, %zu a runtime "
                    "would refuse)\n",
                    r.kept, r.kept_failed, r.kept_unknown, r.kept_unservable);
        if (!options->dry_run)
            std::printf("size: %s -> %s\n", format_bytes(r.bytes_before).c_str(), format_bytes(r.bytes_after).c_str());
        if (r.bad_rows) std::printf("warning: %zu rows failed validation and were left alone (see 'tune db verify')\n", r.bad_rows);
    });
}

}  // namespace tune::cli
