// Tuner: orchestrates the tuning of one problem: each applicable template's space, a search
// strategy, the measurer and the store. Resumes from the store and never re-measures.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tune/db/database.hpp"
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
};

struct TuneOptions {
    std::size_t budget = 24;      // candidates per problem, all templates together
    double time_limit_s = 0;      // per problem; 0 = no limit
    std::string strategy = "annealing";
    std::uint64_t seed = 0;
    std::size_t batch = 4;        // configs proposed per round
    std::vector<std::string> templates;  // restrict to these names; empty = all that apply
    Backend backend = Backend::cpu;
    std::function<void(const TuneProgress&)> on_progress;
};

struct TuneResult {
    Problem problem;
    std::optional<Measurement> best;           // fastest ok, any template
    std::optional<Measurement> default_config; // the first own template's default config
    std::optional<Measurement> vendor_best;    // fastest ok among vendor templates
    std::map<std::string, Measurement> template_best;  // fastest ok per template name
    std::size_t measured = 0, reused = 0, failed = 0;
    double elapsed_s = 0;
};

class Tuner {
public:
    // run_id: from db.start_run(); every measurement is recorded under it.
    Tuner(Database& db, const TemplateRegistry& registry, Measurer& measurer, std::int64_t run_id);

    TuneResult tune(const Problem& p, const TuneOptions& options, TuneProgress progress = {});

private:
    Database& db_;
    const TemplateRegistry& registry_;
    Measurer& measurer_;
    std::int64_t run_id_;
};

}  // namespace tune
