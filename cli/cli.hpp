// Shared pieces of the `tune` command line: subcommand registration and output helpers.
#pragma once

#include <CLI/CLI.hpp>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tune/executor.hpp"
#include "tune/measurer.hpp"
#include "tune/model.hpp"
#include "tune/problem.hpp"
#include "tune/tuner.hpp"
#include "tune/db/sqlite_database.hpp"

namespace tune::cli {

void add_tune_commands(CLI::App& app);  // model, recorded, retune, gemm, swiglu, attention, lookup
void add_db_commands(CLI::App& app);    // db list|show|export|import|verify
void add_report_command(CLI::App& app);  // report --db --html
void add_housekeeping_commands(CLI::App& db_cmd);  // db stats|prune
void add_model_commands(CLI::App& app);  // sweep, replay, model-train, model-report

// Options every tuning verb takes (--db, --budget, --strategy, accuracy budget, ...).
struct TuneArgs {
    std::string db = "tuned.db";
    std::string dtype = "f32";
    std::string backend = "cpu";
    std::size_t budget = 24;
    double time_limit = 60;
    std::size_t confirm_rounds = 3;  // TuneOptions::confirm_rounds
    std::size_t contest_rounds = 12;  // TuneOptions::contest_rounds
    std::string strategy = "annealing";
    std::uint64_t seed = 0;
    bool flush_cache = false;
    bool quiet = false;
    double tolerance = 0;
    bool allow_bf16 = false;
    bool in_process = false;
    bool mpi = false;
    double rank_timeout = 30;
    bool mpi_share_host = false;  // MpiOptions::share_host
    std::string max_workspace;  // e.g. "256MiB"; empty = no cap

    // The accuracy budget the user opted into, applied to each problem.
    Problem with_budget(Problem p) const {
        if (tolerance > 0) p.tolerance = tolerance;
        if (allow_bf16) p.tolerance = std::max(p.tolerance, bf16_compute_tolerance(p));
        return p;
    }
};

void add_tune_options(CLI::App& cmd, TuneArgs& a);
// Option checks: a finite number in [lo, hi] (CLI::Range lets NaN through), and a whole
// number that fits 64 unsigned bits (no sign, no wrap, no saturation).
CLI::Validator finite_range(double lo, double hi);
CLI::Validator whole_number();

// Throws tune::Error naming the option when a TuneArgs value is bad (backend, strategy,
// --max-workspace, --db path); run_tuning calls it before it opens the store. Returns the backend.
Backend check_tune_args(const TuneArgs& a);

// This machine's device for `--backend NAME`; a parse or detection error names the option.
DeviceInfo backend_device(const std::string& backend_name);

// files.cpp. For verbs that open an existing store read-write: opening would create a missing
// file, and a typo must not leave an empty store.
void require_existing(const std::string& path);
// An input file a verb reads (a record, an export): refused as "WHAT: ..." when it is a
// directory or cannot be opened.
std::ifstream open_input(const std::string& path, const std::string& what);
// A store path a verb writes results to: not empty and not ':memory:' (either keeps nothing).
void require_store_path(const std::string& path, const std::string& option);
// Writes an output file (an export, a report) through `write`, atomically: renamed into place
// only when complete. Refuses a directory and any of `stores`, the databases the verb reads.
void write_output(const std::string& path, const std::string& option, const std::vector<std::string>& stores,
                  const std::function<void(std::ostream&)>& write);

// Runs after the summary table with the same store, measurer and run (e.g. bucket regret).
using AfterTuning = std::function<void(Tuner&, Measurer&, SqliteDatabase&, std::int64_t run_id, const TuneOptions&)>;
// Tunes the problems into the DB and prints the summary table; `intro` is printed first. With
// --mpi only rank 0 does this; the other ranks measure for it.
void run_tuning(const std::vector<NamedProblem>& problems, const TuneArgs& a, const std::string& command,
                const std::string& intro = "", const AfterTuning& after = {});

// The shapes of this device in the store at `path` that `tune retune` re-tunes: those with rows
// of another version of one of the registry's templates and no ok row of its current version.
struct StaleShapes {
    std::vector<NamedProblem> problems;  // by shape key
    std::size_t bad_rows = 0;            // rows that failed to decode (skipped)
};
StaleShapes stale_shapes(const std::string& path, const DeviceInfo& device, const TemplateRegistry& registry);

// --buckets / --regret of `tune model`: stores the rules, tunes the bucket representatives
// of the token range and measures each bucket's regret (commands_buckets.cpp).
struct BucketArgs {
    std::string rules;          // empty = no buckets
    bool regret = false;
    std::size_t samples = 2;    // shapes per bucket the regret is measured on
    std::size_t regret_budget = 8;
};
void add_bucket_options(CLI::App& cmd, BucketArgs& b);
void tune_model_buckets(const ModelShape& model, const std::vector<std::int64_t>& tokens, DType dtype,
                        WeightLayout weights, const BucketArgs& b, const TuneArgs& a, const std::string& command, const std::string& intro);

// The --<dim> options of one or more ops (from dim_specs), kept as text until the op is
// known; then parsed by the one dim parser (labels by name, no silent clamping).
class DimOptions {
public:
    void add_to(CLI::App& cmd, std::initializer_list<OpKind> ops);
    // Throws tune::Error naming the flag: a missing size, a bad value, or a dim of another op.
    Problem problem(OpKind op, DType dtype) const;

private:
    std::map<std::string, std::string> given_;  // dim name -> text
};

// Plain text table with aligned columns.
class Table {
public:
    explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    std::string str() const;

private:
    std::vector<std::vector<std::string>> rows_;
};

// tune ... --mpi (mpi_run.cpp): rank 0 coordinates and stores, the other ranks measure.
class MpiRun {
public:
    virtual ~MpiRun() = default;
    // Rank 0: the executor the Tuner measures through. Null on a measuring rank, which has
    // already served rank 0 until the run ended when start_mpi returns.
    virtual Executor* coordinator() = 0;
    virtual std::string summary() const = 0;             // "3 ranks: ..."
    virtual std::vector<std::string> lost() const = 0;   // ranks lost during the run, and why
};
// Throws tune::Error when this build has no MPI. rank_timeout_s: a measuring rank silent
// this long is declared lost.
std::unique_ptr<MpiRun> start_mpi(const DeviceInfo& device, const TemplateRegistry& registry, Measurer& measurer,
                                  double rank_timeout_s, bool share_host);

std::string format_seconds(double s);
std::string format_fixed(double v, int digits);

}  // namespace tune::cli
