// tune model --buckets RULES [--regret]: tunes the representatives of the shape buckets that
// cover a token range, stores the rules with the DB (the dispatcher applies the same ones)
// and measures each bucket's regret: its config on other shapes of the bucket against a
// quick tune of each of them.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "cli.hpp"
#include "tune/buckets.hpp"
#include "tune/dispatcher.hpp"
#include "tune/error.hpp"

namespace tune::cli {
namespace {

std::string percent(double v) { return format_fixed(100 * v, 1) + "%"; }

// The bucket's config measured on `shape` (unless the store has it) and a quick tune there.
void measure_sample(const Problem& shape, const Selection& bucket, Tuner& tuner, Measurer& measurer,
                    SqliteDatabase& db, std::int64_t run, const TuneOptions& quick) {
    MeasurementFilter f{shape_key(shape), measurer.device().id(), bucket.tmpl->info().name,
                        bucket.tmpl->info().version, std::nullopt};
    auto stored = db.query(f);
    bool have = std::any_of(stored.begin(), stored.end(), [&](const Measurement& m) { return m.config == *bucket.config; });
    if (!have) {
        Measurement m = measurer.measure(shape, *bucket.tmpl, *bucket.config);
        m.run_id = run;
        db.record(m);
    }
    tuner.tune(shape, quick);
}

void report_regret(const std::vector<NamedProblem>& problems, const BucketRules& rules, const TuneArgs& a,
                   const BucketArgs& b, Tuner& tuner, Measurer& measurer, SqliteDatabase& db, std::int64_t run,
                   const TuneOptions& opt) {
    const BucketRule* rule = rules.rule_for("m");
    require(rule != nullptr, "--regret: the rules need a bucket rule for m (the token count)");
    DispatcherOptions options;
    options.buckets = rules;
    auto registry = std::make_shared<const TemplateRegistry>(builtin_registry(measurer.device()));
    TuneOptions quick = opt;
    quick.budget = b.regret_budget;
    quick.on_progress = {};
    {
        Dispatcher served({{a.db, &db}}, registry, measurer.device(), options);
        std::size_t done = 0, total = 0;
        for (const auto& np : problems) total += rule->samples(np.problem.dim("m"), b.samples).size();
        for (const auto& np : problems) {
            const Problem rep = a.with_budget(np.problem);
            Selection s = served.lookup(rep);
            if (s.source != LookupSource::exact) continue;  // no correct config for the representative
            for (std::int64_t m : rule->samples(rep.dim("m"), b.samples)) {
                Problem shape = rep;
                shape.set_dim("m", m);
                if (!a.quiet)
                    std::fprintf(stderr, "regret [%zu/%zu] %s m=%lld\n", ++done, total, np.name.c_str(), (long long)m);
                measure_sample(shape, s, tuner, measurer, db, run, quick);
            }
        }
    }
    // The regret is what the dispatcher computes from the store: one definition.
    Dispatcher served({{a.db, &db}}, registry, measurer.device(), options);
    std::map<std::string, std::string> names;
    for (const auto& np : problems) names[shape_key(a.with_budget(np.problem))] = np.name;
    Table t({"problem", "bucket m", "m", "bucket config", "there", "best there", "regret"});
    std::vector<double> all;
    for (const BucketRegret& r : served.bucket_regrets()) {
        auto name = names.find(shape_key(r.representative));
        if (name == names.end()) continue;
        const std::int64_t hi = r.representative.dim("m");
        for (const auto& sample : r.samples) {
            t.add({name->second, std::to_string(rule->lower(hi)) + ".." + std::to_string(hi),
                   std::to_string(sample.shape.dim("m")), r.template_name + " " + r.config,
                   format_seconds(sample.bucket_s), format_seconds(sample.best_s), percent(sample.regret())});
            all.push_back(sample.regret());
        }
    }
    std::printf("\nbucket regret: each bucket's config on other shapes of its bucket vs the best measured there "
                "(a quick tune of %zu candidates)\n%s",
                b.regret_budget, t.str().c_str());
    if (all.empty()) {
        std::printf("no regret measured (buckets with a single value have none)\n");
        return;
    }
    std::sort(all.begin(), all.end());
    std::printf("regret over %zu shapes: median %s, max %s\n", all.size(), percent(all[all.size() / 2]).c_str(),
                percent(all.back()).c_str());
}

}  // namespace

void add_bucket_options(CLI::App& cmd, BucketArgs& b) {
    cmd.add_option("--buckets", b.rules,
                   "shape buckets, stored with the DB: m:pow2 or m:1,16,64,256,1024,4096 (upper bounds; ';' between "
                   "dims). Tunes the representative (upper end) of every bucket the token range touches");
    cmd.add_flag("--regret", b.regret, "measure each bucket's config on other shapes of the bucket (needs --buckets)");
    cmd.add_option("--regret-samples", b.samples, "shapes per bucket the regret is measured on")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{64}));
    cmd.add_option("--regret-budget", b.regret_budget, "candidates of the quick tune of each of those shapes")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
}

void tune_model_buckets(const ModelShape& model, const std::vector<std::int64_t>& tokens, DType dtype,
                        WeightLayout weights, const BucketArgs& b, const TuneArgs& a, const std::string& command, const std::string& intro) {
    BucketRules rules;
    try {
        rules = BucketRules::parse(b.rules);
    } catch (const Error& e) {
        throw Error("--buckets: " + std::string(e.what()));
    }
    require(!rules.empty(), "--buckets: no rule given (e.g. m:pow2)");
    auto gemm_size_dim = [](const std::string& dim) {
        for (const DimSpec& d : dim_specs(OpKind::gemm))
            if (d.kind == DimKind::size && d.name == dim) return true;
        return false;
    };
    require(std::any_of(rules.rules().begin(), rules.rules().end(), [&](const BucketRule& r) { return gemm_size_dim(r.dim); }), "--buckets: no rule of '" + rules.text() +
                         "' buckets a GEMM size dim (m, n, k); --buckets tunes the layer's GEMMs only");
    std::vector<std::int64_t> counts = tokens;
    if (const BucketRule* m = rules.rule_for("m")) {
        for (std::int64_t t : tokens)
            require(m->representative(t).has_value(), "--buckets: token count " + std::to_string(t) +
                                                          " lies above the last bound of '" + m->text() + "'");
        auto [lo, hi] = std::minmax_element(tokens.begin(), tokens.end());
        counts = m->representatives(*lo, *hi);
    }
    std::vector<NamedProblem> problems;
    std::set<std::string> seen;
    for (NamedProblem np : layer_gemms(model, counts, dtype, weights)) {
        auto rep = rules.representative(np.problem);
        if (!rep)  // a rule applies to GEMMs: some size lies above its rule's last bound
            for (const BucketRule& r : rules.rules())
                if (gemm_size_dim(r.dim) && !r.representative(np.problem.dim(r.dim)))
                    throw Error("--buckets: " + np.name + " has " + r.dim + "=" + std::to_string(np.problem.dim(r.dim)) +
                                ", above the last bound of '" + r.text() + "'");
        require(rep.has_value(), "--buckets: " + shape_key(np.problem) + " has no bucket");
        np.problem = *rep;
        np.tokens = rep->dim("m");
        if (seen.insert(shape_key(np.problem)).second) problems.push_back(np);
    }
    {
        SqliteDatabase db(a.db);
        if (auto old = db.setting("buckets"); old && *old != rules.text())
            std::fprintf(stderr, "buckets: replacing the stored rules '%s' with '%s'\n", old->c_str(), rules.text().c_str());
        db.set_setting("buckets", rules.text());
    }
    std::fprintf(stderr,
                 "buckets: %s -> %zu bucket representatives to tune (the layer's GEMMs; its SwiGLU and attention "
                 "problems are tuned without --buckets)\n",
                 rules.text().c_str(), problems.size());
    AfterTuning after;
    if (b.regret)
        after = [&](Tuner& tuner, Measurer& measurer, SqliteDatabase& db, std::int64_t run, const TuneOptions& opt) {
            report_regret(problems, rules, a, b, tuner, measurer, db, run, opt);
        };
    run_tuning(problems, a, command, intro, after);
}

}  // namespace tune::cli
