// ProblemTuning: the tuning of one problem as a sequence of rounds, each a list of candidates
// that may be measured at once: every template's default and initial configs, then small
// vendor spaces whole, then one strategy batch at a time, then the optional confirmation. The
// Tuner drives rounds over an Executor. A round's
// results are folded in proposal order whatever order they arrive in, so the search and the
// best pick do not depend on how many candidates were measured at once.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tune/confirmation.hpp"
#include "tune/db/database.hpp"
#include "tune/search/strategy.hpp"
#include "tune/tuner.hpp"

namespace tune::detail {

class ProblemTuning {
public:
    struct Pending {
        std::size_t slot;  // position in the current round
        const Template* tmpl;
        Config config;
        // A re-measurement of the confirmation round: the record to store once it is timed.
        std::optional<Confirmation> confirmation;
    };

    struct Args {
        const TuneOptions& options;
        std::vector<const Template*> templates;  // those that apply (see Tuner)
        const Database& db;                      // stored results for them are reused
        const std::string& device_id;
        TuneProgress progress;
        const DeviceInfo* device = nullptr;      // for the model-guided strategies' features
    };
    ProblemTuning(const Problem& p, Args args);
    ProblemTuning(const ProblemTuning&) = delete;  // progress reports point into it
    ProblemTuning& operator=(const ProblemTuning&) = delete;

    const Problem& problem() const { return result_.problem; }
    bool out_of_time() const;

    // Closes the current round (results folded in order, the strategy informed) and opens the
    // next; returns its candidates that need measuring. Rounds answered entirely from the
    // store are passed through. Empty: the problem is done (see result()).
    std::vector<Pending> next_round();
    void measured(std::size_t slot, Measurement m);  // a candidate of the current round completed
    void skipped(std::size_t slot);                  // not measured: the time limit came first
    bool round_resolved() const { return unresolved_ == 0; }

    const TuneResult& result() const { return result_; }

private:
    struct Plan {
        const Template* t;
        std::shared_ptr<const Space> space;
        std::unordered_map<std::uint64_t, Measurement> stored;
        // This run's configs by equivalence class (Template::equivalence_key's hash): the
        // first one of each class, the one measured.
        std::unordered_map<std::uint64_t, Config> classes;
    };
    // A search proposal equivalent to a config of the run: not measured; the strategy observes
    // it with that config's result.
    struct Echo {
        Plan* plan;
        Config config, measured_as;
    };
    struct Slot {
        Plan* plan;
        Config config;
        std::optional<Measurement> m;
        int round = -1;  // confirmation round: which pass over the finalists
    };
    enum class Stage { defaults, vendor_spaces, search, confirm, contest, done };
    // A finalist of the confirmation and its ok re-measurements, fastest first.
    struct Finalist {
        const Slot* slot;
        std::vector<const Measurement*> ms;
    };

    bool open_round();
    bool open_search_round();
    bool open_confirm_round();
    bool open_contest_round();
    std::vector<Finalist> finalist_groups() const;
    static FinalistTimes times_of(const Finalist& f);
    void settle_confirmation();
    void close_round();
    // Template::default_config for this problem where it differs from the space's default,
    // with the fixed knobs applied; none when it then is the space's default or lies outside the
    // plan's (narrowed) space.
    std::optional<Config> shape_default(const Plan& plan) const;
    void add(Plan& plan, Config c);      // claims c's class, then enqueues it
    void enqueue(Plan& plan, Config c);  // a candidate of the open round
    // Registers c as its class's config when the class is new to the run and returns null;
    // else returns the run's config of c's class (c itself, or one c is equivalent to), so a
    // search proposal of a config the run already has costs no budget.
    const Config* claim_class(Plan& plan, const Config& c);
    std::vector<Trial> echo_trials();  // the pending echoes as trials (their configs' results)
    void resolve(std::size_t slot, Measurement m, bool reused);
    void report(bool finished);
    double elapsed() const;

    StrategyOptions strategy_options(const Plan& plan) const;

    TuneOptions options_;
    const Database& db_;
    std::string device_id_;
    const DeviceInfo* device_;
    TuneProgress progress_;
    TuneResult result_;
    std::chrono::steady_clock::time_point start_;
    std::vector<Plan> plans_;
    std::vector<Plan*> searched_;  // own templates, searched one after the other
    // Every ok result; the confirmation's pool, to which it adds the store's ok rows of the plans.
    std::vector<std::pair<Plan*, Measurement>> ok_;
    std::string finalists_;  // finalist_set_id of the confirmation round
    std::map<std::pair<std::string, int>, TimingStats> stored_confirmations_;  // (finalist key, round)
    std::vector<Slot> confirmed_;  // every re-measurement of the confirmation so far
    std::size_t contest_passes_ = 0;  // passes over a close call's finalists so far

    Stage stage_ = Stage::defaults;
    Stage round_stage_ = Stage::defaults;  // the stage the open round belongs to
    std::vector<Slot> round_;
    std::size_t unresolved_ = 0;
    std::size_t spent_ = 0;  // candidates taken from the budget
    std::size_t searching_ = 0;  // index into searched_
    std::unique_ptr<SearchStrategy> strategy_;
    std::size_t share_ = 0, used_ = 0;  // the searched template's share of the budget
    std::vector<Echo> echoes_;  // of the open search round
};

}  // namespace tune::detail
