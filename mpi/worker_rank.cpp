// A measuring rank: reports its device, then measures the jobs rank 0 sends until told to
// stop. A second thread sends heartbeats while a measurement runs, so rank 0 can tell a long
// candidate from a dead rank.
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "transport.hpp"
#include "tune/error.hpp"

namespace tune::mpi {
namespace {

using nlohmann::json;

// Sends an empty heartbeat to rank 0 every interval for its lifetime. The owning thread makes
// no MPI call meanwhile (MPI_THREAD_SERIALIZED).
class Heartbeat {
public:
    Heartbeat(MPI_Comm comm, double interval_s)
        : comm_(comm), interval_(std::chrono::duration<double>(interval_s)), thread_([this] { loop(); }) {}
    ~Heartbeat() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }
    Heartbeat(const Heartbeat&) = delete;
    Heartbeat& operator=(const Heartbeat&) = delete;

private:
    void loop() {
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, interval_, [this] { return stop_; })) {
            // Fire and forget: a heartbeat that cannot be delivered must not block the rank.
            MPI_Request request = MPI_REQUEST_NULL;
            if (MPI_Isend(nullptr, 0, MPI_CHAR, 0, kHeartbeat, comm_, &request) == MPI_SUCCESS)
                MPI_Request_free(&request);
        }
    }

    MPI_Comm comm_;
    std::chrono::duration<double> interval_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;  // last: starts after the members it uses
};

// The host as MPI names it: ranks with the same name share a machine's cores.
std::string processor_name() {
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int length = 0;
    if (MPI_Get_processor_name(name, &length) != MPI_SUCCESS) return "unknown";
    return std::string(name, static_cast<std::size_t>(length));
}

json measure_job(const json& job, const TemplateRegistry& registry, const MeasureCandidateFn& measure,
                 MPI_Comm comm, double heartbeat_s) {
    json reply{{"id", job.at("id")}};
    try {
        const std::string name = job.at("template").get<std::string>();
        const Template* t = registry.find(name);
        require(t != nullptr, "unknown template '" + name + "'");
        require(t->info().version == job.at("version").get<std::string>(),
                "template '" + name + "' is at another version here");
        Problem p = job.at("problem").get<Problem>();
        Config c = job.at("config").get<Config>();
        Measurement m;
        {
            Heartbeat alive(comm, heartbeat_s);
            m = measure(p, *t, c);
        }
        reply["measurement"] = m;
    } catch (const std::exception& e) {
        reply["error"] = e.what();
    }
    return reply;
}

}  // namespace

void serve(Session& session, const DeviceInfo& device, const TemplateRegistry& registry,
           const MeasureCandidateFn& measure, MpiOptions options) {
    require(session.rank() != 0, "MPI: rank 0 coordinates; serve() runs on the other ranks");
    require(options.heartbeat_s > 0 && options.rank_timeout_s > options.heartbeat_s,
            "MPI: need 0 < heartbeat_s < rank_timeout_s");
    MPI_Comm comm = SessionAccess::of(session).comm;
    Outbox outbox;
    json templates = json::object();
    for (const Template* t : registry.all()) templates[t->info().name] = t->info().version;
    json hello{{"device", device}, {"templates", templates}, {"host", options.host.empty() ? processor_name() : options.host}, {"pid", static_cast<long>(::getpid())}};
    if (auto why = outbox.send(comm, 0, kHello, hello.dump()); !why.empty())
        throw Error("MPI: rank " + std::to_string(session.rank()) + " cannot reach rank 0: " + why);
    // Rank 0 sends a heartbeat every heartbeat_s from the moment it coordinates. Silence for
    // rank_timeout_s (startup_timeout_s before its first message) means it is gone: without
    // this a rank would wait for work forever once rank 0 died under mpirun --enable-recovery.
    double limit = options.startup_timeout_s;
    auto lost_rank0 = [&](const std::string& why) {
        session.skip_finalize();  // MPI_Finalize could wait for the dead rank 0 forever
        return Error("MPI: rank " + std::to_string(session.rank()) + " stops: " + why);
    };
    for (;;) {
        auto m = receive_within(comm, 0, limit, outbox);
        if (!m) throw lost_rank0("no word from rank 0 for " + format_seconds(limit) + " s (rank 0 is lost)");
        limit = options.rank_timeout_s;
        if (m->tag == kJob) {
            json reply;
            try {
                reply = measure_job(json::parse(m->body), registry, measure, comm, options.heartbeat_s);
            } catch (const std::exception& e) {
                // No id to answer with: rank 0 records its job as failed with this reason.
                reply = json{{"error", std::string("malformed job: ") + e.what()}};
            }
            if (auto why = outbox.send(comm, 0, kResult, reply.dump()); !why.empty())
                throw lost_rank0("cannot send rank 0 a result: " + why);
        } else if (m->tag == kStop) {
            outbox.send(comm, 0, kBye, "");
            // Rank 0 stopped its heartbeat before stop, but ones sent earlier may still be
            // queued ahead of the decision.
            bool finalize = false;
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
            while (auto decision = receive_within(
                       comm, 0,
                       std::max(1e-3, std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count()),
                       outbox)) {
                if (decision->tag != kFinalize) continue;
                try {
                    finalize = json::parse(decision->body).at("finalize").get<bool>();
                } catch (const std::exception&) {
                    finalize = false;
                }
                break;
            }
            if (!finalize) session.skip_finalize();
            outbox.drain(10);
            return;
        }
        // kHeartbeat: rank 0 is alive, which receiving it has already shown.
    }
}

}  // namespace tune::mpi
