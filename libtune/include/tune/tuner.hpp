// Tuner: orchestrates the tuning of problems: each applicable template's space, a search
// strategy, an executor (the measurer here, or remote ranks) and the store. Resumes from the
// store and never re-measures a stored candidate; only the optional confirmation round (see
// TuneOptions::confirm_rounds) times finalists again, and stores those re-measurements too.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tune/db/database.hpp"
#include "tune/executor.hpp"
#include "tune/kernel.hpp"
#include "tune/measurer.hpp"

namespace tune {

struct TuneProgress {
    std::size_t problem_index = 0, problem_count = 1;  // set by the caller for multi-problem runs
    const Problem* problem = nullptr;
    std::size_t done = 0, budget = 0;                  // candidates finished (measured or reused)
    std::size_t measured = 0, reused = 0, failed = 0;
    std::optional<Measurement> best;                   // best ok so far
    double elapsed_s = 0, remaining_s = 0;             // remaining: estimate from the rate so far
    bool finished = false;                             // the problem's last report
};

struct TuneOptions {
    std::size_t budget = 24;      // candidates per problem, all templates together
    double time_limit_s = 0;      // per problem; 0 = no limit
    std::string strategy = "annealing";
    std::uint64_t seed = 0;
    std::size_t batch = 4;        // configs proposed per round
    // Strategies model and bo: warm-start from the store's cost model for the template (saved
    // by `tune model-train`), else from one trained on the store's other shapes.
    bool transfer = true;
    std::vector<std::string> templates;  // restrict to these names; empty = all that apply
    // Memory cap: configs whose kernel would hold more workspace are outside the space (the
    // constraint `max_workspace`), never measured. 0 = no cap.
    std::size_t max_workspace_bytes = 0;
    Backend backend = Backend::cpu;
    // Knob values every candidate must have, for the knobs a template's space has (e.g.
    // threads=1 for a runtime that gives each GEMM one core); others are outside the space.
    Config fixed_knobs;
    // Configs measured right after the defaults, per template name (a known-good list, like
    // Triton's autotune configs); they take from the budget before the search does.
    std::map<std::string, std::vector<Config>> initial_configs;
    // Confirmation round, part of the measurement protocol: candidates measured minutes apart
    // saw different machine load, so a single measurement can put a slower one first. After
    // the search, each template's fastest and the `confirm_top` fastest overall are measured
    // again `confirm_rounds` times, interleaved (A B C A B C ...), and ranked by
    // choose_confirmed (tune/confirmation.hpp): the fastest time reached twice over the
    // re-measurements, and among finalists within 2% of the fastest a library's kernel first,
    // then the smallest (template, config hash), so runs with the same seed agree. Each
    // re-measurement is stored as it completes (Database::record_confirmation) beside the
    // config's first measurement, so the store's best() is this pick and a resumed run
    // re-measures no finalist. 0 rounds: rank by the single measurement. With an executor of
    // several slots the re-measurements may run on different ranks at once.
    std::size_t confirm_rounds = 0;
    std::size_t confirm_top = 3;
    // Close calls (tune/confirmation.hpp: contested): while another finalist is within 6% of
    // the fastest and not every finalist of that call has repeated its fastest time (two
    // re-measurements within 1%), those finalists are measured once more, in turn, up to this
    // many passes, so which side of the tie band they land on rests on a floor hit twice.
    // Settled or clear rankings cost nothing more. 0: settle after confirm_rounds.
    std::size_t contest_rounds = 0;
    std::function<void(const TuneProgress&)> on_progress;
};

struct TuneResult {
    Problem problem;
    std::optional<Measurement> best;           // fastest ok, any template
    std::optional<Measurement> default_config; // the first own template's default for this problem (Template::default_config)
    std::optional<Measurement> vendor_best;    // fastest ok among vendor templates
    std::map<std::string, Measurement> template_best;  // fastest ok per template name
    std::size_t measured = 0, reused = 0, failed = 0;
    // Search proposals equivalent to a config already in the run (Template::equivalence_key):
    // not measured, not counted against the budget; the strategy saw that config's result.
    std::size_t equivalent = 0;
    // Re-measurements of the confirmation round made by this run (not in `measured`; those
    // reused from the store are not counted). With a confirmation round, best, vendor_best and
    // the finalists' template_best are its picks and carry the confirmed timing: the
    // re-measurement with the confirmed (fastest) time.
    std::size_t confirmed = 0;
    double elapsed_s = 0;  // from the problem's start to its last result
};

class Tuner {
public:
    // run_id: from db.start_run(); every measurement is recorded under it, as it completes.
    Tuner(Database& db, const TemplateRegistry& registry, Measurer& measurer, std::int64_t run_id);
    // Measures through `executor` (e.g. MPI ranks); results are stored under its device.
    Tuner(Database& db, const TemplateRegistry& registry, Executor& executor, std::int64_t run_id);
    ~Tuner();

    TuneResult tune(const Problem& p, const TuneOptions& options, TuneProgress progress = {});

    // Tunes every problem; results in the same order. With an executor of several slots the
    // problems overlap: a free slot takes the next candidate of a started problem, else
    // starts the next problem (two problems with the same shape key never overlap). Each
    // problem's candidates and best pick are the same as when tuned alone, given the same
    // measurements. Progress reports carry the problem's index.
    std::vector<TuneResult> tune_all(std::span<const Problem> problems, const TuneOptions& options);

private:
    std::vector<TuneResult> drive(std::span<const Problem> problems, const TuneOptions& options,
                                  const std::function<TuneProgress(std::size_t)>& progress_for);

    Database& db_;
    const TemplateRegistry& registry_;
    std::unique_ptr<Executor> own_executor_;  // with the Measurer constructor
    Executor& executor_;
    std::int64_t run_id_;
};

}  // namespace tune
