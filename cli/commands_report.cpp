// tune report: gathers a store's measurements into the report's data and writes the HTML page.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "cli.hpp"
#include "report.hpp"
#include "tune/cost_model/features.hpp"
#include "tune/cost_model/models.hpp"
#include "tune/cost_model/training.hpp"
#include "tune/cost_model/unseen.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/error.hpp"
#include "tune/kernel.hpp"

namespace tune::cli {

namespace {

// "gemm f32 m=16 n=256 k=128 trans_b=1": the size dims and only the flags that differ from
// their defaults, so chart labels stay short (the full key is in the page's tooltips).
std::string short_shape(const Problem& p) {
    std::string out = std::string(to_string(p.op)) + " " + std::string(to_string(p.dtype));
    auto specs = dim_specs(p.op);
    for (std::size_t i = 0; i < specs.size(); ++i)
        if ((specs[i].kind == DimKind::size && !(specs[i].name == "batch" && p.dims[i] == 1)) ||
            p.dims[i] != specs[i].default_value)
            out += " " + std::string(specs[i].name) + "=" + dim_text(specs[i], p.dims[i]);
    if (p.tolerance > 0) out += " tol=" + format_fixed(p.tolerance, 6);
    return out;
}

}  // namespace

ReportData collect_report(const SqliteDatabase& db, const TemplateRegistry& registry, const std::string& store) {
    ReportData d;
    d.store = store;
    std::size_t bad = 0;
    const auto rows = db.query({}, [&](std::int64_t, const std::string&) { ++bad; });  // oldest first
    const auto devices = db.devices();
    d.facts.push_back(std::to_string(rows.size()) + " measurements, " + std::to_string(db.runs().size()) + " runs, " +
                      std::to_string(devices.size()) + " devices" +
                      (bad ? ", " + std::to_string(bad) + " rows failed validation and are left out" : ""));
    for (const auto& dev : devices) d.facts.push_back("device " + dev.id() + ": " + dev.summary());

    // One group per (device, shape): timings from different machines are never compared.
    struct Group {
        std::vector<const Measurement*> trials;
        std::map<std::string, double> best_per_template;
    };
    std::map<std::pair<std::string, std::string>, Group> groups;
    for (const auto& m : rows) {
        auto& g = groups[{m.device_id, shape_key(m.problem)}];
        g.trials.push_back(&m);
        if (m.status != Status::ok) continue;
        auto [it, fresh] = g.best_per_template.try_emplace(m.template_name, m.stats.median_s);
        if (!fresh) it->second = std::min(it->second, m.stats.median_s);
    }
    for (const auto& [where, g] : groups) {
        const Problem& p = g.trials.front()->problem;
        const std::string shape = short_shape(p) + (devices.size() > 1 ? " @" + where.first : "");
        ReportData::Progress progress{shape, {}};
        double best = 0;
        for (const Measurement* m : g.trials) {
            progress.trial_gflops.push_back(m->status == Status::ok ? m->gflops() : 0);
            if (m->status == Status::ok && (best == 0 || m->stats.median_s < best)) best = m->stats.median_s;
        }
        d.progress.push_back(std::move(progress));
        if (best == 0) continue;

        // Baselines: the first own template's default config, and each vendor template's best.
        ReportData::Speedup speedup{shape, {}};
        for (const Template* t : registry.for_problem(p, Backend::cpu)) {
            if (t->info().vendor) continue;
            const std::string default_text = t->space(p)->default_config().text();
            for (const Measurement* m : g.trials)
                if (m->status == Status::ok && m->template_name == t->info().name && m->config.text() == default_text) {
                    speedup.over.emplace_back("default config", m->stats.median_s / best);
                    break;
                }
            break;
        }
        for (const auto& [name, median] : g.best_per_template) {
            const Template* t = registry.find(name);
            if (t && t->info().vendor) speedup.over.emplace_back(name, median / best);
        }
        if (!speedup.over.empty()) d.speedups.push_back(std::move(speedup));

        if (p.op == OpKind::attention) {
            ReportData::Tradeoff tradeoff{shape, {}};
            for (const Measurement* m : g.trials)
                if (m->status == Status::ok) tradeoff.points.emplace_back(double(m->workspace_bytes), m->stats.median_s);
            d.attention.push_back(std::move(tradeoff));
        }
    }

    // Each stored cost model against the rows it speaks for (its template's current version on
    // its device): predicted seconds are the shape's fastest time there x e^(predicted loss),
    // as the model is trained (cost_model::training_set).
    for (const StoredModel& stored : db.models()) {
        const Template* t = registry.find(stored.template_name);
        auto device = std::find_if(devices.begin(), devices.end(), [&](const DeviceInfo& x) { return x.id() == stored.device_id; });
        if (!t || device == devices.end()) continue;
        std::shared_ptr<const cost_model::GbdtModel> model;
        try {
            model = cost_model::from_stored(stored);
        } catch (const Error&) {
            continue;  // a damaged or older model: `tune db verify` names it
        }
        std::vector<Measurement> own;
        for (const Measurement& m : rows)
            if (m.status == Status::ok && m.device_id == stored.device_id && m.template_name == t->info().name &&
                m.template_version == t->info().version)
                own.push_back(m);
        if (own.empty()) continue;
        const cost_model::Dataset data =
            cost_model::training_set(own, [t](const Problem& p) { return t->space(p); }, *device);
        const std::vector<int> map = cost_model::column_map(data.names, model->names());
        std::vector<std::vector<double>> features;
        for (const auto& row : data.rows) features.push_back(cost_model::remap(row, map));
        const std::vector<double> predicted = model->predict(features);
        std::map<std::string, double> fastest;
        for (const Measurement& m : own) {
            auto [it, fresh] = fastest.try_emplace(shape_key(m.problem), ranking_time(m.stats));
            if (!fresh) it->second = std::min(it->second, ranking_time(m.stats));
        }
        for (std::size_t i = 0; i < own.size(); ++i)  // training_set keeps the ok rows' order
            d.predicted_vs_measured.emplace_back(
                fastest[shape_key(own[i].problem)] * std::exp(cost_model::predicted_loss(predicted[i])),
                ranking_time(own[i].stats));
    }
    return d;
}

void add_report_command(CLI::App& app) {
    struct Args {
        std::string db, html;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("report", "write a self-contained HTML page with plots of a store's tuning results");
    cmd->add_option("--db", args->db, "SQLite store to report on")->required();
    cmd->add_option("--html", args->html, "HTML file to write")->required();
    cmd->callback([args] {
        SqliteDatabase db(args->db, SqliteDatabase::Mode::read_only);
        TemplateRegistry registry = builtin_registry(detect_cpu());
        ReportData data = collect_report(db, registry, args->db);
        std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
        char stamp[32];
        std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
        data.generated = stamp;
        write_output(args->html, "--html", {args->db}, [&](std::ostream& out) { out << render_html(data); });
        std::printf("report: %zu shapes, %zu with baselines, %zu attention -> %s\n", data.progress.size(),
                    data.speedups.size(), data.attention.size(), args->html.c_str());
    });
}

}  // namespace tune::cli
