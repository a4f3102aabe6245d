// Rank 0 of a distributed tuning run: hands jobs to idle ranks, collects results and
// heartbeats, declares silent ranks lost and re-queues what they held, and sends heartbeats of
// its own so that the measuring ranks can tell when rank 0 is gone.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>

#include "transport.hpp"
#include "tune/error.hpp"

namespace tune::mpi {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

struct Coordinator::Impl {
    // returning: declared lost while measuring, then heard again (it was stalled, not dead).
    // It finishes the candidate it held, whose result is dropped (the candidate went to
    // another rank), and is idle again after that.
    enum class State { starting, idle, busy, lost, returning };
    struct Rank {
        int rank = 0;
        State state = State::starting;
        std::optional<Job> job;
        Clock::time_point last_heard;
        std::string host;   // from its hello: ranks of one host take turns measuring
        std::string where;  // "host/pid" from its hello
        std::string last_key;  // shape key of the last job: its operands are still set up there
    };

    Session& session;
    MPI_Comm comm;
    DeviceInfo device;
    const TemplateRegistry& registry;
    MeasureCandidateFn fallback;
    MpiOptions options;
    std::vector<Rank> ranks;  // ranks[r - 1] is rank r
    std::deque<Job> waiting;
    std::deque<JobResult> done;
    std::unordered_map<std::uint64_t, std::string> requeued;  // job id -> how its first rank was lost
    std::vector<std::string> lost;
    Outbox outbox;
    bool fallback_announced = false;
    std::size_t next_rank = 0;  // dispatch() starts looking here

    // Rank 0's heartbeat. The Tuner calls the coordinator only between its own steps (which
    // can take seconds: training a cost model, writing the store), so a thread of its own
    // tells the measuring ranks every heartbeat_s that rank 0 is alive; a rank that stops
    // hearing it stops instead of waiting for work forever. Both threads make MPI calls
    // (MPI_THREAD_SERIALIZED), so each holds `mpi` while it does; the pulse also reads
    // `ranks`, which the coordinator only changes while holding it.
    std::mutex mpi;
    std::condition_variable pulse_wake;
    bool pulse_stop = false;
    std::thread pulse;

    Impl(Session& s, DeviceInfo d, const TemplateRegistry& r, MeasureCandidateFn f, MpiOptions o)
        : session(s), comm(SessionAccess::of(s).comm), device(std::move(d)), registry(r), fallback(std::move(f)),
          options(std::move(o)) {
        for (int r = 1; r < SessionAccess::of(s).size; ++r) {
            Rank rank;
            rank.rank = r;
            rank.last_heard = Clock::now();
            ranks.push_back(std::move(rank));
        }
        pulse = std::thread([this] { pulse_loop(); });
    }
    ~Impl() { stop_all(); }

    void pulse_loop() {
        std::unique_lock lock(mpi);
        const auto interval = std::chrono::duration<double>(options.heartbeat_s);
        while (!pulse_wake.wait_for(lock, interval, [this] { return pulse_stop; })) {
            for (const Rank& r : ranks) {
                if (r.state == State::lost) continue;
                // Fire and forget, as the measuring ranks' own heartbeats.
                MPI_Request request = MPI_REQUEST_NULL;
                if (MPI_Isend(nullptr, 0, MPI_CHAR, r.rank, kHeartbeat, comm, &request) == MPI_SUCCESS)
                    MPI_Request_free(&request);
            }
        }
    }
    void stop_pulse() {
        if (!pulse.joinable()) return;
        {
            std::lock_guard lock(mpi);
            pulse_stop = true;
        }
        pulse_wake.notify_one();
        pulse.join();
    }

    void event(const std::string& what) {
        if (options.on_event) options.on_event(what);
    }
    std::string name(const Rank& r) const {
        return "rank " + std::to_string(r.rank) + (r.where.empty() ? "" : " (" + r.where + ")");
    }
    bool live(const Rank& r) const {
        return r.state == State::idle || r.state == State::busy || r.state == State::returning;
    }

    // Every rank reports its device and template versions; a mismatch is an error because
    // rank 0 keys the whole store by its own device and versions.
    void startup() {
        std::unique_lock lock(mpi);
        auto start = Clock::now();
        std::vector<std::string> errors;
        Backoff backoff;
        auto reported = [&] {
            return std::none_of(ranks.begin(), ranks.end(), [](const Rank& r) { return r.state == State::starting; });
        };
        while (!reported() && seconds_since(start) < options.startup_timeout_s) {
            auto m = try_receive(comm);
            if (!m) {
                lock.unlock();
                backoff.wait();
                lock.lock();
                continue;
            }
            backoff.reset();
            if (m->tag != kHello || m->source < 1 || m->source > static_cast<int>(ranks.size())) continue;
            Rank& r = ranks[static_cast<std::size_t>(m->source - 1)];
            try {
                check_hello(r, json::parse(m->body));
                r.state = State::idle;
            } catch (const std::exception& e) {
                r.state = State::lost;
                errors.push_back(e.what());
            }
        }
        for (Rank& r : ranks)
            if (r.state == State::starting) lose(r, "did not report within " + format_seconds(options.startup_timeout_s) + " s");
        if (!errors.empty()) {
            std::string all;
            for (const auto& e : errors) all += (all.empty() ? "" : "; ") + e;
            throw Error("MPI: " + all);
        }
    }

    void check_hello(Rank& r, const json& hello) {
        const std::string who = "rank " + std::to_string(r.rank);
        r.host = hello.at("host").get<std::string>();
        r.where = r.host + "/pid " + std::to_string(hello.at("pid").get<long>());
        DeviceInfo theirs = hello.at("device").get<DeviceInfo>();
        require(theirs.id() == device.id(), who + " measures on another device than rank 0 (" + theirs.summary() +
                                                ", id " + theirs.id() + " vs " + device.summary() + ", id " + device.id() +
                                                "); every rank must see the same device, e.g. mpirun --bind-to none");
        const json& versions = hello.at("templates");
        for (const Template* t : registry.all()) {
            const auto& info = t->info();
            require(versions.contains(info.name) && versions[info.name] == info.version,
                    who + " has template '" + info.name + "' " +
                        (versions.contains(info.name) ? "at version " + versions[info.name].dump() : "missing") +
                        ", rank 0 has version \"" + info.version + "\": run the same build on every rank");
        }
    }

    void lose(Rank& r, const std::string& why) {
        r.state = State::lost;
        std::string line = name(r) + ": " + why;
        lost.push_back(line);
        if (!r.job) {
            event(line);
            return;
        }
        Job job = std::move(*r.job);
        r.job.reset();
        if (auto [it, first] = requeued.try_emplace(job.id, line); first) {
            event(line + "; its candidate (" + job.tmpl->info().name + " " + job.config.text() + ") goes to another rank");
            waiting.push_front(std::move(job));
        } else {
            event(line + "; its candidate lost a rank before, recorded as crashed");
            Measurement m;
            m.problem = job.problem;
            m.device_id = device.id();
            m.template_name = job.tmpl->info().name;
            m.template_version = job.tmpl->info().version;
            m.config = job.config;
            m.status = Status::crashed;
            m.reason = "lost two ranks while measuring: " + it->second + "; " + line;
            done.push_back({job.id, std::move(m)});
        }
    }

    // Oldest job first, but a rank keeps to the problem it measured last when that has a job
    // waiting: switching problems costs a rank new operands and a new fp64 reference.
    std::deque<Job>::iterator pick_for(const Rank& r) {
        auto same = std::find_if(waiting.begin(), waiting.end(),
                                 [&](const Job& j) { return shape_key(j.problem) == r.last_key; });
        return same != waiting.end() ? same : waiting.begin();
    }

    // The host's measurement token: unless share_host, a rank measures only while no other
    // rank of its host does, so co-located ranks never time candidates on the same cores.
    bool host_free(const Rank& r) const {
        return options.share_host || std::none_of(ranks.begin(), ranks.end(), [&](const Rank& o) {
                   return (o.state == State::busy || o.state == State::returning) && o.host == r.host;
               });
    }

    // Candidates that can be measured at once: one per host with a live rank (share_host: one
    // per live rank).
    std::size_t concurrent() const {
        std::vector<std::string> hosts;
        for (const Rank& r : ranks)
            if (live(r) && (options.share_host || std::find(hosts.begin(), hosts.end(), r.host) == hosts.end()))
                hosts.push_back(r.host);
        return hosts.size();
    }

    // Idle ranks are served in turn, starting after the last one given a job, so ranks that
    // take turns on a host all measure (and a lost one is noticed by its work, not its silence).
    void dispatch() {
        for (std::size_t i = 0; i < ranks.size(); ++i) {
            if (waiting.empty()) return;
            const std::size_t index = (next_rank + i) % ranks.size();
            Rank& r = ranks[index];
            if (r.state != State::idle || !host_free(r)) continue;
            auto picked = pick_for(r);
            const Job& job = *picked;
            json message{{"id", job.id},
                         {"problem", job.problem},
                         {"template", job.tmpl->info().name},
                         {"version", job.tmpl->info().version},
                         {"config", job.config}};
            if (auto why = outbox.send(comm, r.rank, kJob, message.dump()); !why.empty()) {
                lose(r, "cannot send it a job: " + why);
                continue;
            }
            r.state = State::busy;
            next_rank = index + 1;
            r.last_key = shape_key(job.problem);
            r.job = std::move(*picked);
            r.last_heard = Clock::now();
            waiting.erase(picked);
        }
    }

    void handle(const Message& m) {
        if (m.source < 1 || m.source > static_cast<int>(ranks.size())) return;
        Rank& r = ranks[static_cast<std::size_t>(m.source - 1)];
        const double silent = seconds_since(r.last_heard);
        r.last_heard = Clock::now();
        if (r.state == State::lost || r.state == State::returning) {
            heard_again(r, m, silent);
            return;
        }
        if (m.tag != kResult) return;  // heartbeats only refresh last_heard
        if (r.state != State::busy) return;
        Job job = std::move(*r.job);
        r.job.reset();
        r.state = State::idle;
        Measurement result;
        try {
            json reply = json::parse(m.body);
            require(reply.at("id").get<std::uint64_t>() == job.id, "answers job " + reply.at("id").dump() +
                                                                       ", it was given job " + std::to_string(job.id));
            if (reply.contains("measurement")) {
                result = reply["measurement"].get<Measurement>();
            } else {
                result.status = Status::failed;
                result.reason = name(r) + ": " + reply.at("error").get<std::string>();
            }
        } catch (const std::exception& e) {
            result = Measurement{};
            result.status = Status::failed;
            result.reason = name(r) + " sent a malformed result: " + e.what();
        }
        // What was measured is what rank 0 asked for: the identity never comes from the wire.
        result.problem = job.problem;
        result.device_id = device.id();
        result.template_name = job.tmpl->info().name;
        result.template_version = job.tmpl->info().version;
        result.config = job.config;
        done.push_back({job.id, std::move(result)});
    }

    // A lost rank that speaks again was stalled, not dead (stopped, swapped out, a network
    // partition): it takes work again, but what it held went elsewhere and is never counted
    // twice. While it finishes that candidate it holds its host's token, so it does not time
    // over another rank of its host from then on.
    void heard_again(Rank& r, const Message& m, double silent) {
        const std::string after = name(r) + " answered again after " + format_seconds(silent) + " s";
        if (m.tag == kHello && r.state == State::lost && r.host.empty()) {
            try {
                check_hello(r, json::parse(m.body));
                r.state = State::idle;
                event(name(r) + " reported late; it measures from now on");
            } catch (const std::exception& e) {
                event(name(r) + " reported late and is not used: " + e.what());
            }
        } else if (m.tag == kHeartbeat && r.state == State::lost) {
            r.state = State::returning;
            event(after + ": it finishes the candidate it held (measured elsewhere; its result is dropped), then "
                          "measures again");
        } else if (m.tag == kResult) {
            if (r.state == State::lost) event(after + ": its late result is dropped (the candidate went elsewhere); it "
                                                      "measures again");
            r.state = State::idle;
        }
    }

    void check_deadlines() {
        for (Rank& r : ranks) {
            const double silent = seconds_since(r.last_heard);
            if (silent <= options.rank_timeout_s) continue;
            if (r.state == State::busy) lose(r, "silent for " + format_seconds(silent) + " s while measuring");
            else if (r.state == State::returning)
                lose(r, "silent again for " + format_seconds(silent) + " s while finishing a candidate");
        }
    }

    int live_count() const {
        return static_cast<int>(std::count_if(ranks.begin(), ranks.end(), [&](const Rank& r) { return live(r); }));
    }

    JobResult next() {
        std::unique_lock lock(mpi);
        Backoff backoff;
        for (;;) {
            if (!done.empty()) {
                JobResult out = std::move(done.front());
                done.pop_front();
                return out;
            }
            bool heard = false;
            while (auto m = try_receive(comm)) {
                handle(*m);
                heard = true;
            }
            outbox.progress();
            check_deadlines();
            dispatch();
            if (!done.empty()) continue;
            const bool busy = std::any_of(ranks.begin(), ranks.end(), [](const Rank& r) { return r.state == State::busy; });
            if (!busy && live_count() == 0 && !waiting.empty()) {
                if (!fallback_announced) event("no measuring rank left: rank 0 measures the remaining candidates itself");
                fallback_announced = true;
                Job job = std::move(waiting.front());
                waiting.pop_front();
                lock.unlock();  // the pulse goes on while rank 0 measures
                Measurement m = fallback(job.problem, *job.tmpl, job.config);
                lock.lock();
                done.push_back({job.id, std::move(m)});
                continue;
            }
            require(busy || !waiting.empty(), "MPI coordinator: wait_next with no job submitted");
            if (heard) {
                backoff.reset();
                continue;
            }
            lock.unlock();
            backoff.wait();
            lock.lock();
        }
    }

    // stop -> bye -> finalize: a rank that dies idle is noticed here (no bye), and then no
    // rank calls MPI_Finalize, which could wait for the dead one forever. A rank lost during
    // the run that answered again is asked like any other: when every rank says bye, all
    // finalize.
    void stop_all() {
        stop_pulse();  // the ranks' last messages from rank 0 are stop and finalize
        std::vector<int> answering;
        for (Rank& r : ranks) {
            if (!outbox.send(comm, r.rank, kStop, "{}").empty() && live(r)) lose(r, "cannot send it stop");
            if (live(r)) answering.push_back(r.rank);
        }
        auto start = Clock::now();
        std::vector<int> said_bye;
        Backoff backoff;
        const double limit = std::min(options.rank_timeout_s, 30.0);
        while (said_bye.size() < answering.size() && seconds_since(start) < limit) {
            std::optional<Message> m;
            try {
                m = try_receive(comm);
            } catch (const std::exception&) {
                break;
            }
            if (!m) {
                backoff.wait();
                continue;
            }
            if (m->tag == kBye && std::find(answering.begin(), answering.end(), m->source) != answering.end())
                said_bye.push_back(m->source);
        }
        for (Rank& r : ranks)
            if (live(r) && std::find(said_bye.begin(), said_bye.end(), r.rank) == said_bye.end())
                lose(r, "did not answer stop within " + format_seconds(limit) + " s");
        std::string gone;
        for (const Rank& r : ranks)
            if (r.state == State::lost) gone += (gone.empty() ? "" : ", ") + std::to_string(r.rank);
        const bool finalize = gone.empty();
        for (Rank& r : ranks) outbox.send(comm, r.rank, kFinalize, json{{"finalize", finalize}}.dump());
        outbox.drain(limit, said_bye);
        if (finalize) return;
        event("rank(s) " + gone + " lost: no rank calls MPI_Finalize (it could wait for a lost rank forever)");
        session.skip_finalize();
    }
};

Coordinator::Coordinator(Session& session, const DeviceInfo& device, const TemplateRegistry& registry,
                         MeasureCandidateFn fallback, MpiOptions options) {
    require(session.rank() == 0, "MPI: the coordinator runs on rank 0, this is rank " + std::to_string(session.rank()));
    require(static_cast<bool>(fallback), "MPI: the coordinator needs a fallback measure function");
    require(options.heartbeat_s > 0 && options.rank_timeout_s > options.heartbeat_s,
            "MPI: need 0 < heartbeat_s < rank_timeout_s");
    impl_ = std::make_unique<Impl>(session, device, registry, std::move(fallback), std::move(options));
    impl_->startup();
}

Coordinator::~Coordinator() = default;

const DeviceInfo& Coordinator::device() const { return impl_->device; }

std::size_t Coordinator::slots() const { return std::max<std::size_t>(1, impl_->concurrent()); }

void Coordinator::submit(Job job) {
    require(job.tmpl != nullptr, "MPI coordinator: job without a template");
    std::lock_guard lock(impl_->mpi);
    impl_->waiting.push_back(std::move(job));
    impl_->dispatch();
}

JobResult Coordinator::wait_next() { return impl_->next(); }

int Coordinator::measuring_ranks() const { return impl_->live_count(); }

std::vector<std::string> Coordinator::lost() const { return impl_->lost; }

}  // namespace tune::mpi
