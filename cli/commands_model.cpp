// tune sweep | replay | model-train | model-report: recording whole (reduced) spaces, replaying search strategies
// against them offline, and training / reporting the learned cost model.
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_set>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "cli.hpp"
#include "tune/accelerator.hpp"
#include "tune/backends.hpp"
#include "tune/confirmation.hpp"
#include "tune/cost_model/replay.hpp"
#include "tune/cost_model/subspace.hpp"
#include "tune/cost_model/training.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/error.hpp"
#include "tune/measurer.hpp"
#include "tune/search/strategy.hpp"

namespace tune::cli {
namespace {

// Measures every config of a template's space (restricted by --only) for one problem: the
// exhaustive record that `tune replay` replays. Resumes: stored configs are not re-measured.
void sweep(const Problem& p, const std::string& db_path, const std::string& template_name, const std::string& only,
           const std::string& backend_name, bool quiet) {
    validate(p);
    const DeviceInfo device = backend_device(backend_name);
    TemplateRegistry registry = builtin_registry(device);
    const Template* t = registry.find(template_name);
    require(t != nullptr, "--template: unknown template '" + template_name + "'");
    require(t->supports(p), "--template: " + template_name + " cannot compute '" + shape_key(p) + "' here");
    auto space = cost_model::restrict_space(*t->space(p), only);
    auto configs = space->enumerate_all();
    require(!configs.empty(), "--only: no valid config is left in the restricted space");

    SqliteDatabase db(db_path);
    MeasureOptions mo;
    mo.max_time_s = 0.25;  // thousands of candidates: a tighter timing cap than a tuning run's
    // CPU candidates run in a worker process (a crash costs one candidate); a GPU context does
    // not survive fork(), so GPU candidates run here.
    std::shared_ptr<Accelerator> accelerator = make_accelerator(device);
    mo.isolate = !accelerator;
    Measurer measurer = accelerator ? Measurer(device, mo, accelerator) : Measurer(device, mo);
    std::int64_t run = db.start_run({0, "tune sweep " + shape_key(p) + " --only '" + only + "'", "sweep", 0, "", ""}, device);
    std::unordered_set<std::uint64_t> stored;
    for (const auto& m : db.query({shape_key(p), device.id(), t->info().name, t->info().version, std::nullopt}))
        stored.insert(m.config.hash());
    std::size_t measured = 0, failed = 0;
    for (std::size_t i = 0; i < configs.size(); ++i) {
        if (stored.contains(configs[i].hash())) continue;
        Measurement m = measurer.measure(p, *t, configs[i]);
        m.run_id = run;
        db.record(m);
        ++measured;
        failed += m.status != Status::ok;
        if (!quiet && (i + 1) % 25 == 0) std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, configs.size(), shape_key(p).c_str());
    }
    std::printf("%s: %zu configs in the space, %zu measured now (%zu failed), %zu already stored\n",
                shape_key(p).c_str(), configs.size(), measured, failed, configs.size() - measured);
}

// A store to read: a SQLite file, or a `tune db export` JSON file loaded into memory.
std::unique_ptr<SqliteDatabase> open_store(const std::string& path) {
    if (path.size() > 5 && path.ends_with(".json")) {
        std::ifstream in(path);
        require(in.good(), "--db: cannot read '" + path + "'");
        auto db = std::make_unique<SqliteDatabase>(":memory:");
        import_json(*db, in);
        return db;
    }
    require(std::filesystem::exists(path), "--db: no such file '" + path + "'");
    return std::make_unique<SqliteDatabase>(path, SqliteDatabase::Mode::read_only);
}

// This machine's templates: what a recorded template's default, classes and re-measurements
// are taken from; built once per command.
std::shared_ptr<const TemplateRegistry> host_registry() {
    return std::make_shared<const TemplateRegistry>(builtin_registry(detect_cpu()));
}

// The recorded spaces of one or more stores (recordings of the same spaces combine: each
// config keeps its fastest run); a shape's default is the one its template declares for it
// (Template::default_config, what the Tuner measures first).
std::vector<cost_model::RecordedShape> load_recorded(const std::vector<std::string>& paths, std::size_t min_configs,
                                                     const TemplateRegistry& registry) {
    std::vector<Measurement> rows;
    std::vector<DeviceInfo> devices;
    for (const auto& path : paths) {
        auto store = open_store(path);
        auto more = store->query({});
        rows.insert(rows.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
        for (auto& d : store->devices()) devices.push_back(std::move(d));
    }
    auto shapes = cost_model::recorded_shapes(rows, devices, min_configs,
                                              [&registry](const cost_model::RecordedShape& s) -> std::optional<Config> {
                                                  const Template* t = registry.find(s.template_name);
                                                  if (!t || !t->supports(s.problem)) return std::nullopt;
                                                  return t->default_config(s.problem);
                                              });
    require(!shapes.empty(), "the store holds no recorded space (a shape with at least " + std::to_string(min_configs) +
                                 " configs measured); record one with 'tune sweep'");
    return shapes;
}

// Template::equivalence_key of the recorded template, as the Tuner applies it (a template this
// build lacks: each config its own class).
cost_model::Equivalence recorded_equivalence(
    std::shared_ptr<const TemplateRegistry> registry) {
    return [registry = std::move(registry)](const cost_model::RecordedShape& s, const Config& c) {
        const Template* t = registry->find(s.template_name);
        return t && t->supports(s.problem) ? t->equivalence_key(s.problem, c).hash() : c.hash();
    };
}

std::string percent(double fraction) { return format_fixed(100 * fraction, 1) + "%"; }

void print_replay(const std::vector<cost_model::RecordedShape>& shapes, const cost_model::ReplayOptions& o) {
    std::size_t configs = 0;
    for (const auto& s : shapes) configs += s.configs.size();
    std::printf("%zu recorded shapes, %zu configs (%.0f per shape), %zu seeds, batch %zu, up to %zu trials%s\n",
                shapes.size(), configs, double(configs) / double(shapes.size()), o.seeds, o.batch, o.max_trials,
                o.transfer ? ", model/bo warm-started from the other shapes" : "");
    std::vector<std::string> header{"strategy", "trials to 95%", "to 99%", "95% at % of space", "runs reaching 95%"};
    for (auto b : o.budgets) header.push_back("best@" + std::to_string(b));
    header.push_back("best@10% of space");
    Table table(header);
    auto median_mean = [](double median, double mean) { return percent(median) + " (" + percent(mean) + ")"; };
    for (const auto& r : cost_model::replay(shapes, o)) {
        std::vector<std::string> row{r.strategy, format_fixed(r.trials_95, 1), format_fixed(r.trials_99, 1),
                                     percent(r.space_fraction_95), percent(r.reached_95)};
        for (std::size_t b = 0; b < r.fraction_at_budget.size(); ++b)
            row.push_back(median_mean(r.fraction_at_budget[b], r.mean_at_budget[b]));
        row.push_back(median_mean(r.fraction_at_tenth, r.mean_at_tenth));
        table.add(row);
    }
    std::printf("%s(medians over shapes x seeds, means in parentheses; a run that never reaches a level counts as\n"
                " %zu trials; 10%% of space: of each shape's, rounded up, at most %zu)\n",
                table.str().c_str(), o.max_trials + 1, o.max_trials);
}

// The largest of a report column; 0 when empty.
double worst(const std::vector<double>& v) { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }

// The unseen pick of one held-out shape re-measured beside the shape's recorded best on this
// machine, in alternating order, `rounds` times each: pick / best - 1 by the Tuner's rule
// (confirmed_time: each config's second-fastest ranking_time). One run's side-by-side ratio,
// free of the drift between recordings and of the recorded best's luck (a minimum over
// hundreds of noisy times is biased low).
double verified_loss(const cost_model::RecordedShape& s, const Config& pick, const Config& best, int rounds,
                     const TemplateRegistry& registry, Measurer& measurer) {
    if (pick == best) return 0;
    const DeviceInfo& device = measurer.device();
    require(device.id() == s.device.id(), "--verify: " + shape_key(s.problem) + " was recorded on device '" +
                                              s.device.id() + "', this machine is '" + device.id() + "'");
    const Template* t = registry.find(s.template_name);
    const std::string& version = s.ok_rows.front().template_version;
    require(t != nullptr && t->info().version == version,
            "--verify: " + s.template_name + " version " + version + " is not this build's");
    std::vector<double> times[2];
    for (int r = 0; r < rounds; ++r)
        for (int k = 0; k < 2; ++k) {
            const int which = (r + k) % 2;  // alternate which goes first
            Measurement m = measurer.measure(s.problem, *t, which == 0 ? pick : best);
            require(m.status == Status::ok, "--verify: " + shape_key(s.problem) + " config '" +
                                                (which == 0 ? pick : best).text() + "': " + m.reason);
            times[which].push_back(ranking_time(m.stats));
        }
    return confirmed_time(times[0]) / confirmed_time(times[1]) - 1;
}

void print_model_report(const std::vector<cost_model::RecordedShape>& shapes, const cost_model::UnseenPolicy& policy,
                        int verify_rounds, bool by_class, const TemplateRegistry& registry) {
    std::vector<std::string> header{"held-out shape", "configs", "spearman", "top-10 recall", "unseen pick loss",
                                    "nearest-shape loss"};
    if (verify_rounds > 0) header.push_back("pick loss re-measured");
    Table table(header);
    std::vector<double> rho, recall, loss, nearest, verified;
    // Set up once for every shape to re-measure (only when asked to).
    std::optional<Measurer> measurer;
    if (verify_rounds > 0) measurer.emplace(detect_cpu());
    for (const auto& r : cost_model::model_report(shapes, policy)) {
        std::vector<std::string> row{r.shape, std::to_string(r.configs), format_fixed(r.spearman, 3),
                                     percent(r.recall_top10), percent(r.predicted_pick_loss),
                                     percent(r.nearest_pick_loss)};
        if (verify_rounds > 0) {
            auto s = std::find_if(shapes.begin(), shapes.end(),
                                  [&](const cost_model::RecordedShape& x) { return shape_key(x.problem) == r.shape; });
            verified.push_back(verified_loss(*s, r.pick, r.best, verify_rounds, registry, *measurer));
            row.push_back(percent(verified.back()));
        }
        table.add(row);
        rho.push_back(r.spearman);
        recall.push_back(r.recall_top10);
        loss.push_back(r.predicted_pick_loss);
        nearest.push_back(r.nearest_pick_loss);
    }
    using cost_model::median;
    std::vector<std::string> median_row{"median", "", format_fixed(median(rho), 3), percent(median(recall)),
                                        percent(median(loss)), percent(median(nearest))};
    std::vector<std::string> worst_row{"worst", "", "", "", percent(worst(loss)), percent(worst(nearest))};
    if (verify_rounds > 0) {
        median_row.push_back(percent(median(verified)));
        worst_row.push_back(percent(worst(verified)));
    }
    table.add(median_row);
    table.add(worst_row);
    std::printf("%s(each shape held out in turn: trees trained on the other shapes only; unseen pick among the\n"
                " default and %zu neighbour winners, scored by their losses on the %zu nearest shapes weighted\n"
                " exp(-octaves / %g), the model filling unmeasured ones, model weight %g; times are each config's\n"
                " fastest repetition, its fastest over the recordings given%s)\n",
                table.str().c_str(), policy.neighbours, policy.evidence, policy.bandwidth, policy.model_weight,
                by_class ? ",\n and a config's losses are its equivalence class's (the fastest member's) at that shape"
                         : "");
    if (verify_rounds > 0)
        std::printf("(re-measured: the pick and the shape's recorded best measured here in turn, %d times each;\n"
                    " the ratio of their second-fastest times, as the Tuner's confirmation ranks; 0 when the pick is\n"
                    " the best)\n",
                    verify_rounds);
}

void print_nested_report(const std::vector<cost_model::RecordedShape>& shapes) {
    const auto grid = cost_model::unseen_policy_grid();
    auto settings = [](const cost_model::UnseenPolicy& p) {
        return std::to_string(p.neighbours) + " / " + std::to_string(p.evidence) + " / " + format_fixed(p.bandwidth, 1);
    };
    Table table({"held-out shape", "by mean: settings", "inner mean", "unseen pick loss", "by worst: settings",
                 "inner worst", "unseen pick loss"});
    std::vector<double> loss, loss_minimax;
    for (const auto& r : cost_model::nested_unseen_report(shapes, grid)) {
        table.add({r.shape, settings(r.chosen), percent(r.inner_mean_loss), percent(r.pick_loss),
                   settings(r.chosen_minimax), percent(r.inner_worst_loss), percent(r.pick_loss_minimax)});
        loss.push_back(r.pick_loss);
        loss_minimax.push_back(r.pick_loss_minimax);
    }
    using cost_model::median;
    table.add({"median", "", "", percent(median(loss)), "", "", percent(median(loss_minimax))});
    table.add({"worst", "", "", percent(worst(loss)), "", "", percent(worst(loss_minimax))});
    std::printf("%s(nested: per held-out shape, the settings (neighbours / evidence / bandwidth) of lowest mean,\n"
                " and of lowest worst, pick loss over the other shapes, each held out in turn from the rest, among\n"
                " %zu (neighbours 2-12, evidence 2-8, bandwidth 0.5-8, model weight 0); the held-out shape takes\n"
                " no part in choosing them)\n",
                table.str().c_str(), grid.size());
}

// Trains the boosted trees on every ok measurement of one template on this device (current
// template version) and stores them: the prior for tuning new shapes and the ranker the
// dispatcher uses for shapes it has no entry for.
void train_model(const std::string& db_path, const std::string& template_name) {
    DeviceInfo device = detect_cpu();
    TemplateRegistry registry = builtin_registry(device);
    const Template* t = registry.find(template_name);
    require(t != nullptr, "--template: unknown template '" + template_name + "'");
    require(std::filesystem::exists(db_path), "--db: no such file '" + db_path + "'");
    SqliteDatabase db(db_path);
    auto rows = db.query({"", device.id(), t->info().name, t->info().version, Status::ok});
    require(rows.size() >= 16, "model-train: '" + db_path + "' holds " + std::to_string(rows.size()) +
                                   " ok measurements of " + template_name +
                                   " on this device (current version); at least 16 are needed");
    std::set<std::string> shapes;
    for (const auto& m : rows) shapes.insert(shape_key(m.problem));
    auto data = cost_model::training_set(rows, [t](const Problem& p) { return t->space(p); }, device);
    auto model = cost_model::GbdtModel::train(data);
    db.save_model(cost_model::to_stored(*model, t->info().name, device.id(), std::int64_t(rows.size())));
    std::printf("trained %s on %zu measurements of %zu shapes (%zu features, schema %d) into %s\n",
                cost_model::kGbdtName, rows.size(), shapes.size(), data.names.size(), cost_model::kFeatureSchema,
                db_path.c_str());
}

}  // namespace

void add_model_commands(CLI::App& app) {
    {
        auto* cmd = app.add_subcommand("replay", "replay search strategies offline against recorded (exhaustive) spaces");
        auto db = std::make_shared<std::vector<std::string>>();
        auto o = std::make_shared<cost_model::ReplayOptions>();
        auto names = std::make_shared<std::vector<std::string>>();
        auto min_configs = std::make_shared<std::size_t>(16);
        cmd->add_option("--db", *db, "recorded store (SQLite, or a 'tune db export' JSON file); repeat to combine "
                                     "recordings of the same spaces (each config keeps its fastest run)")
            ->required();
        cmd->add_option("--strategy", *names, "strategies to replay (repeat; default: random annealing model bo)");
        cmd->add_option("--seeds", o->seeds, "runs per shape and strategy")->capture_default_str()->check(CLI::Range(1, 10000));
        cmd->add_option("--max-trials", o->max_trials, "trials per run")->capture_default_str()->check(CLI::Range(1, 1 << 20));
        cmd->add_option("--min-configs", *min_configs, "configs a shape needs to count as recorded")
            ->capture_default_str()->check(CLI::Range(2, 1 << 20));
        cmd->add_flag("--transfer", o->transfer, "model and bo start from trees trained on the other recorded shapes");
        auto each_config = std::make_shared<bool>(false);
        cmd->add_flag("--no-equivalence", *each_config,
                      "count every proposal as a trial, also one equivalent to a config already tried at the "
                      "shape's sizes (the Tuner measures one config per class)");
        cmd->add_flag("--count-equivalent", o->count_equivalent,
                      "time configs by their class as with the equivalence, but count every proposal as a "
                      "trial (isolates what skipping equivalent configs saves)");
        cmd->callback([=] {
            if (!names->empty()) o->strategies = *names;
            require(!(*each_config && o->count_equivalent), "--count-equivalent needs the equivalence (drop --no-equivalence)");
            std::erase_if(o->budgets, [&](std::size_t b) { return b > o->max_trials; });  // not replayed that far
            for (const auto& n : o->strategies) make_strategy(n, std::make_shared<Space>(), {});  // unknown names fail first
            const auto registry = host_registry();
            if (!*each_config) o->equivalence = recorded_equivalence(registry);
            print_replay(load_recorded(*db, *min_configs, *registry), *o);
        });
    }
    {
        auto* train = app.add_subcommand("model-train", "train the cost model (boosted trees) on a store's measurements, save it there");
        auto db = std::make_shared<std::string>("tuned.db");
        auto tmpl = std::make_shared<std::string>("cpu.gemm.blocked");
        train->add_option("--db", *db, "store to train on and save into")->capture_default_str();
        train->add_option("--template", *tmpl, "template whose measurements are learned")->capture_default_str();
        train->callback([=] { train_model(*db, *tmpl); });
        auto* report = app.add_subcommand("model-report", "cost model quality on held-out shapes of a recorded store");
        auto rdb = std::make_shared<std::vector<std::string>>();
        auto min_configs = std::make_shared<std::size_t>(16);
        report->add_option("--db", *rdb, "recorded store (SQLite, or a 'tune db export' JSON file); repeat to "
                                         "combine recordings (each config keeps its fastest run)")
            ->required();
        report->add_option("--min-configs", *min_configs, "configs a shape needs to count as recorded")
            ->capture_default_str()->check(CLI::Range(2, 1 << 20));
        auto policy = std::make_shared<cost_model::UnseenPolicy>();
        report->add_option("--neighbours", policy->neighbours, "unseen pick: neighbour winners scored")
            ->capture_default_str()->check(CLI::Range(1, 1 << 10));
        report->add_option("--evidence", policy->evidence, "unseen pick: nearest shapes whose measurements score them")
            ->capture_default_str()->check(CLI::Range(0, 1 << 10));
        report->add_option("--bandwidth", policy->bandwidth, "unseen pick: octaves over which a shape's weight falls by e")
            ->capture_default_str()->check(CLI::Range(0.01, 100.0));
        report->add_option("--model-weight", policy->model_weight,
                           "unseen pick: weight of the model's prediction beside a measured shape at distance 0")
            ->capture_default_str()->check(CLI::Range(0.0, 100.0));
        auto nested = std::make_shared<bool>(false);
        report->add_flag("--nested", *nested,
                         "also choose the unseen-pick settings out of sample: per held-out shape, from a small grid "
                         "scored on the other shapes only");
        auto verify = std::make_shared<int>(0);
        report->add_option("--verify", *verify,
                           "re-measure each held-out shape's unseen pick beside its recorded best on this machine, "
                           "this many times each in turn (0: no measuring; needs the recording's device)")
            ->capture_default_str()->check(CLI::Range(0, 100));
        auto each_config = std::make_shared<bool>(false);
        report->add_flag("--no-equivalence", *each_config,
                         "time every config by its own measurements, not by its equivalence class at that shape "
                         "(the fastest of the configs that run the same kernel there, as the Tuner and the "
                         "dispatcher's evidence count them)");
        report->callback([=] {
            const auto registry = host_registry();
            auto shapes = load_recorded(*rdb, *min_configs, *registry);
            if (!*each_config) shapes = cost_model::timed_by_class(std::move(shapes), recorded_equivalence(registry));
            print_model_report(shapes, *policy, *verify, !*each_config, *registry);
            if (*nested) print_nested_report(shapes);
        });
    }
    {
        auto* cmd = app.add_subcommand("sweep", "measure every config of a (restricted) space for one GEMM: a replay record");
        auto dims = std::make_shared<DimOptions>();
        auto db = std::make_shared<std::string>("recorded.db");
        auto tmpl = std::make_shared<std::string>("cpu.gemm.blocked");
        auto only = std::make_shared<std::string>();
        auto dtype = std::make_shared<std::string>("f32");
        auto quiet = std::make_shared<bool>(false);
        auto backend = std::make_shared<std::string>("cpu");
        dims->add_to(*cmd, {OpKind::gemm});
        cmd->add_option("--db", *db, "SQLite file to record into")->capture_default_str();
        cmd->add_option("--template", *tmpl, "template whose space is swept")->capture_default_str();
        cmd->add_option("--only", *only, "knob values kept, e.g. 'mc=48,96 kc=128,256 threads=1'");
        cmd->add_option("--dtype", *dtype, "element type")->capture_default_str();
        cmd->add_option("--backend", *backend, "cpu, cuda or hip (the template's backend)")->capture_default_str();
        cmd->add_flag("-q,--quiet", *quiet, "no progress lines");
        cmd->callback([=] {
            sweep(dims->problem(OpKind::gemm, parse_dtype(*dtype, "--dtype")), *db, *tmpl, *only, *backend, *quiet);
        });
    }
}

}  // namespace tune::cli
