#include "tune/tuner.hpp"

#include <algorithm>
#include <deque>
#include <exception>
#include <list>
#include <unordered_map>

#include "problem_tuning.hpp"
#include "tune/error.hpp"

namespace tune {
namespace {

// The templates that tune p under these options; throws when none applies.
std::vector<const Template*> templates_for(const TemplateRegistry& registry, const Problem& p, const TuneOptions& options) {
    validate(p);
    auto templates = registry.for_problem(p, options.backend);
    if (!options.templates.empty()) {
        for (const auto& name : options.templates)
            require(registry.find(name) != nullptr, "tune: unknown template '" + name + "'");
        std::erase_if(templates, [&](const Template* t) {
            return std::find(options.templates.begin(), options.templates.end(), t->info().name) ==
                   options.templates.end();
        });
    }
    require(!templates.empty(), "tune: no template can compute '" + shape_key(p) + "' on backend " +
                                    std::string(to_string(options.backend)));
    return templates;
}

}  // namespace

Tuner::Tuner(Database& db, const TemplateRegistry& registry, Measurer& measurer, std::int64_t run_id)
    : db_(db), registry_(registry), own_executor_(std::make_unique<LocalExecutor>(measurer)),
      executor_(*own_executor_), run_id_(run_id) {}

Tuner::Tuner(Database& db, const TemplateRegistry& registry, Executor& executor, std::int64_t run_id)
    : db_(db), registry_(registry), executor_(executor), run_id_(run_id) {}

Tuner::~Tuner() = default;

TuneResult Tuner::tune(const Problem& p, const TuneOptions& options, TuneProgress progress) {
    return drive({&p, 1}, options, [&](std::size_t) { return progress; }).front();
}

std::vector<TuneResult> Tuner::tune_all(std::span<const Problem> problems, const TuneOptions& options) {
    return drive(problems, options, [&](std::size_t i) {
        TuneProgress progress;
        progress.problem_index = i;
        progress.problem_count = problems.size();
        return progress;
    });
}

std::vector<TuneResult> Tuner::drive(std::span<const Problem> problems, const TuneOptions& options,
                                     const std::function<TuneProgress(std::size_t)>& progress_for) {
    require(options.budget >= 1, "tune: budget must be >= 1");
    require(options.batch >= 1, "tune: batch must be >= 1");
    std::vector<std::vector<const Template*>> templates;  // all checked before anything is measured
    for (const Problem& p : problems) templates.push_back(templates_for(registry_, p, options));

    struct Active {
        Active(std::size_t i, const Problem& p, detail::ProblemTuning::Args args)
            : index(i), key(shape_key(p)), tuning(p, std::move(args)) {}
        std::size_t index;
        std::string key;
        detail::ProblemTuning tuning;
    };
    struct Queued {
        Active* problem;
        detail::ProblemTuning::Pending candidate;
    };
    std::vector<TuneResult> results(problems.size());
    std::list<Active> active;  // stable addresses: queued and in-flight candidates point here
    std::deque<Queued> queue;  // candidates of open rounds, oldest problem first
    struct InFlight {
        Active* problem;
        std::size_t slot;
        std::optional<Confirmation> confirmation;
    };
    std::unordered_map<std::uint64_t, InFlight> in_flight;  // by job id
    std::size_t next_problem = 0;
    std::uint64_t next_job = 0;
    const std::string device_id = executor_.device().id();
    // Leaving by an exception (a store write failing, a progress hook ending the run), the
    // jobs still in the executor are waited out, expired so none is measured: the next drive()
    // on this executor must not meet them (their problems, which they point to, are gone).
    // A wait_next() that throws has taken its job (LocalExecutor: the measurement threw).
    bool unwinding = false, wait_threw = false;
    struct Drain {
        Executor& executor;
        const std::unordered_map<std::uint64_t, InFlight>& in_flight;
        bool& unwinding;
        const bool& wait_threw;
        const int exceptions = std::uncaught_exceptions();
        ~Drain() {
            if (std::uncaught_exceptions() == exceptions) return;
            unwinding = true;
            for (std::size_t n = in_flight.size() - (wait_threw && !in_flight.empty() ? 1 : 0); n > 0; --n) try {
                    executor.wait_next();
                } catch (...) {  // already leaving with an error
                }
        }
    } drain{executor_, in_flight, unwinding, wait_threw};

    // Queues the problem's next round, or retires the problem when it is done.
    auto advance = [&](Active& a) {
        auto pending = a.tuning.next_round();
        for (auto& c : pending) queue.push_back({&a, std::move(c)});
        if (pending.empty()) {
            results[a.index] = a.tuning.result();
            active.remove_if([&](const Active& x) { return &x == &a; });
        }
    };
    // A candidate not measured because its problem's time is up (before or after submission).
    auto skip = [&](Active& a, std::size_t slot) {
        a.tuning.skipped(slot);
        if (a.tuning.round_resolved()) advance(a);
    };
    // The same shape twice would measure its candidates twice: the second waits for the first.
    auto can_start = [&](const Problem& p) {
        std::string key = shape_key(p);
        return std::none_of(active.begin(), active.end(), [&](const Active& a) { return a.key == key; });
    };

    for (;;) {
        while (in_flight.size() < executor_.slots()) {
            if (!queue.empty()) {
                Queued q = std::move(queue.front());
                queue.pop_front();
                detail::ProblemTuning& t = q.problem->tuning;
                if (t.out_of_time()) {
                    skip(*q.problem, q.candidate.slot);
                    continue;
                }
                const std::uint64_t id = next_job++;
                in_flight.emplace(id, InFlight{q.problem, q.candidate.slot, std::move(q.candidate.confirmation)});
                // Checked again when it starts: with lookahead, the time limit may pass first.
                executor_.submit({id, t.problem(), q.candidate.tmpl, std::move(q.candidate.config),
                                  [&t, &unwinding] { return unwinding || t.out_of_time(); }});
                continue;
            }
            if (next_problem < problems.size() && can_start(problems[next_problem])) {
                const std::size_t i = next_problem++;
                active.emplace_back(i, problems[i],
                                    detail::ProblemTuning::Args{options, templates[i], db_, device_id, progress_for(i),
                                                                &executor_.device()});
                advance(active.back());
                continue;
            }
            break;
        }
        if (in_flight.empty()) {
            // Nothing measuring: every started problem is done (a waiting one would have started).
            require(queue.empty() && active.empty(), "tune: internal error: candidates left without a free slot");
            if (next_problem == problems.size()) break;
            continue;
        }
        JobResult done;
        try {
            done = executor_.wait_next();
        } catch (...) {
            wait_threw = true;
            throw;
        }
        auto it = in_flight.find(done.id);
        require(it != in_flight.end(), "tune: executor returned unknown job " + std::to_string(done.id));
        auto [problem, slot, confirmation] = std::move(it->second);
        in_flight.erase(it);
        if (done.skipped) {
            skip(*problem, slot);
            continue;
        }
        // Committed as it arrives: a killed run loses only the candidates in flight. A
        // confirmation re-measurement goes beside the config's first measurement, which stays.
        done.measurement.run_id = run_id_;
        if (!confirmation) {
            db_.record(done.measurement);
        } else if (done.measurement.status == Status::ok) {
            confirmation->stats = done.measurement.stats;
            confirmation->run_id = run_id_;
            db_.record_confirmation(*confirmation);
        }
        problem->tuning.measured(slot, std::move(done.measurement));
        if (problem->tuning.round_resolved()) advance(*problem);
    }
    return results;
}

}  // namespace tune
