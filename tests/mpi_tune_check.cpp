// tune_mpi_check: tunes a fixed set of small GEMMs with the test templates, in one process
// or under mpirun with --mpi, so that tests/test_mpi.cpp can compare the two stores exactly.
// Candidates are verified by the real Measurer, but an ok candidate's time is a fixed
// function of (shape, template, config): the search then takes the same path whatever the
// machine's load, and the comparison tests the distribution, not timing noise.
// --die-rank R --die-at K: rank R kills itself (SIGKILL) while measuring its K-th candidate
// (rank 0, which measures nothing: when it waits for its K-th result).
// --freeze-rank R --freeze-at K --freeze-s S: rank R stops (SIGSTOP) for S seconds at the
// start of its K-th candidate, as a rank swapped out or paused, and then goes on.
// --overlap-dir D: a measurement holds the file D/measuring; one that finds it taken (two
// ranks measuring at once) creates D/overlap. --distinct-hosts: each rank names its own host.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "fake_template.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/mpi/mpi_tuning.hpp"
#include "tune/tuner.hpp"

using namespace tune;

namespace {

struct Args {
    std::string db;
    bool mpi = false;
    std::uint64_t seed = 0;
    std::size_t budget = 10;
    std::string strategy = "annealing";
    int delay_ms = 20;
    int die_rank = -1, die_at = 0;
    int freeze_rank = -1, freeze_at = 0;
    double freeze_s = 0;
    double rank_timeout = 3;
    std::string overlap_dir;
    bool distinct_hosts = false;
};

TemplateRegistry test_registry() {
    TemplateRegistry r;
    r.add(std::make_unique<testing::FakeGemmTemplate>("test.gemm.fake", "v1"));
    r.add(std::make_unique<testing::FakeGemmTemplate>("test.gemm.fake2", "v1"));
    r.add(std::make_unique<testing::FakeGemmTemplate>("test.gemm.vendor", "v1", true));
    return r;
}

// The same shape twice: the second must reuse the first's results, also when problems overlap.
std::vector<Problem> test_problems() {
    return {make_gemm(4, 8, 8, DType::f32, false, true),   make_gemm(8, 8, 16, DType::f32, false, true),
            make_gemm(4, 8, 8, DType::f32, false, true),   make_gemm(16, 8, 8, DType::f32, false, false),
            make_gemm(2, 16, 8, DType::f32, false, true),  make_gemm(8, 16, 16, DType::f32, true, false)};
}

double synthetic_seconds(const Problem& p, const Template& t, const Config& c) {
    std::uint64_t h = std::hash<std::string>{}(shape_key(p) + "|" + t.info().name) ^ c.hash();
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return 1e-4 * (1.0 + double(h % 1000) / 100.0);
}

// Stops this whole process (its heartbeat thread too) for `seconds`: a child sends SIGCONT.
void freeze(double seconds) {
    const pid_t self = ::getpid();
    if (::fork() == 0) {
        ::usleep(static_cast<useconds_t>(seconds * 1e6));
        ::kill(self, SIGCONT);
        ::_exit(0);
    }
    ::raise(SIGSTOP);
}

// Rank 0 under --die-rank 0: dies (SIGKILL) when it waits for its K-th result.
class DyingExecutor final : public Executor {
public:
    DyingExecutor(Executor& inner, int die_at) : inner_(inner), die_at_(die_at) {}
    const DeviceInfo& device() const override { return inner_.device(); }
    std::size_t slots() const override { return inner_.slots(); }
    void submit(Job job) override { inner_.submit(std::move(job)); }
    JobResult wait_next() override {
        if (++waited_ == die_at_) ::raise(SIGKILL);
        return inner_.wait_next();
    }

private:
    Executor& inner_;
    int die_at_;
    int waited_ = 0;
};

MeasureCandidateFn synthetic_measure(Measurer& measurer, const Args& a, int rank) {
    auto count = std::make_shared<int>(0);
    return [&measurer, a, rank, count](const Problem& p, const Template& t, const Config& c) {
        ++*count;
        if (rank != 0 && rank == a.die_rank && *count == a.die_at) ::raise(SIGKILL);  // as kill -9 mid-measurement
        if (rank == a.freeze_rank && *count == a.freeze_at) freeze(a.freeze_s);
        const std::string busy = a.overlap_dir + "/measuring";
        int held = -1;
        if (!a.overlap_dir.empty()) {
            held = ::open(busy.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
            if (held < 0) ::close(::open((a.overlap_dir + "/overlap").c_str(), O_CREAT | O_WRONLY, 0644));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(a.delay_ms));
        if (held >= 0) {
            ::close(held);
            ::unlink(busy.c_str());
        }
        Measurement m = measurer.measure(p, t, c);
        if (m.status == Status::ok) {
            double s = synthetic_seconds(p, t, c);
            m.stats = {s, s, s, 0, 0, 5, 1, true};
        }
        return m;
    };
}

int run(const Args& a) {
    DeviceInfo device = detect_cpu();
    TemplateRegistry registry = test_registry();
    MeasureOptions mo;
    mo.warmup_s = 1e-4;
    mo.max_time_s = 1e-3;
    mo.min_reps = 1;
    mo.max_reps = 1;
    mo.pin_cpu = -1;
    Measurer measurer(device, mo);

    std::unique_ptr<mpi::Session> session;
    std::unique_ptr<mpi::Coordinator> coordinator;
    if (a.mpi) {
        session = std::make_unique<mpi::Session>();
        mpi::MpiOptions options;
        options.rank_timeout_s = a.rank_timeout;
        options.heartbeat_s = std::min(0.5, a.rank_timeout / 6);
        if (a.distinct_hosts) options.host = "node" + std::to_string(session->rank());
        options.on_event = [](const std::string& what) { std::fprintf(stderr, "mpi: %s\n", what.c_str()); };
        auto measure = synthetic_measure(measurer, a, session->rank());
        if (session->rank() != 0) {
            mpi::serve(*session, device, registry, measure, options);
            return 0;
        }
        coordinator = std::make_unique<mpi::Coordinator>(*session, device, registry, measure, options);
    }
    SqliteDatabase db(a.db);
    LocalExecutor local(device, synthetic_measure(measurer, a, 0));
    Executor& chosen = coordinator ? static_cast<Executor&>(*coordinator) : local;
    DyingExecutor dying(chosen, a.die_rank == 0 ? a.die_at : 0);
    Executor& executor = a.die_rank == 0 ? static_cast<Executor&>(dying) : chosen;
    Tuner tuner(db, registry, executor, db.start_run({0, "tune_mpi_check", a.strategy, a.seed, "", ""}, device));
    TuneOptions options;
    options.budget = a.budget;
    options.strategy = a.strategy;
    options.seed = a.seed;
    auto problems = test_problems();
    auto results = tuner.tune_all(problems, options);

    nlohmann::json out{{"measured", 0}, {"reused", 0}, {"best", nlohmann::json::array()}};
    for (const auto& r : results) {
        out["measured"] = out["measured"].get<std::size_t>() + r.measured;
        out["reused"] = out["reused"].get<std::size_t>() + r.reused;
        out["best"].push_back(r.best ? shape_key(r.problem) + " -> " + r.best->template_name + " " + r.best->config.text()
                                     : shape_key(r.problem) + " -> none");
    }
    out["lost"] = coordinator ? coordinator->lost() : std::vector<std::string>{};
    out["measuring_ranks"] = coordinator ? coordinator->measuring_ranks() : 0;
    out["slots"] = coordinator ? coordinator->slots() : 1;
    std::printf("%s\n", out.dump().c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Args a;
    CLI::App app{"tune_mpi_check: small deterministic tuning run for the MPI tests"};
    app.add_option("--db", a.db)->required();
    app.add_flag("--mpi", a.mpi);
    app.add_option("--seed", a.seed);
    app.add_option("--budget", a.budget);
    app.add_option("--strategy", a.strategy);
    app.add_option("--delay-ms", a.delay_ms);
    app.add_option("--die-rank", a.die_rank);
    app.add_option("--die-at", a.die_at);
    app.add_option("--freeze-rank", a.freeze_rank);
    app.add_option("--freeze-at", a.freeze_at);
    app.add_option("--freeze-s", a.freeze_s);
    app.add_option("--rank-timeout", a.rank_timeout);
    app.add_option("--overlap-dir", a.overlap_dir);
    app.add_flag("--distinct-hosts", a.distinct_hosts);
    CLI11_PARSE(app, argc, argv);
    try {
        return run(a);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tune_mpi_check: error: %s\n", e.what());
        return 1;
    }
}
