// Distributed tuning on MPI: rank 0 owns the store and the search and hands candidates to
// the other ranks (a dynamic work queue), which measure them on their own device.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tune/executor.hpp"

namespace tune::mpi {

struct MpiOptions {
    double heartbeat_s = 0.5;         // a measuring rank (while it measures) and rank 0 say they are alive this often
    double rank_timeout_s = 30;       // a rank silent this long is lost: rank 0 re-queues its candidate,
                                      // a measuring rank that stops hearing rank 0 stops
    double startup_timeout_s = 120;   // every rank reports its device, and hears from rank 0, within this
    // Ranks on one host (the same MPI_Get_processor_name) share its cores and memory, so by
    // default rank 0 lets one of them measure at a time: their timings never overlap. Ranks on
    // different hosts measure at once. share_host: let co-located ranks measure at once too,
    // for ranks given their own cores (e.g. mpirun --bind-to core with threads=1 configs).
    bool share_host = false;
    std::string host;                 // a measuring rank's host name; empty: MPI_Get_processor_name
    std::function<void(const std::string&)> on_event;  // rank 0: a rank lost, fallback to rank 0
};

// MPI_Init_thread / MPI_Finalize for this process. The communicator returns errors instead of
// aborting the job. Throws tune::Error when MPI is unusable (already initialised, no
// MPI_THREAD_SERIALIZED). Finalize is skipped when a rank was lost (OpenMPI without ULFM
// cannot finalize with a dead peer; see the README).
class Session {
public:
    Session();
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    int rank() const;
    int size() const;
    void skip_finalize();  // a peer was lost: exit without MPI_Finalize

    struct Impl;

private:
    friend struct SessionAccess;  // the transport's own files reach the communicator
    std::unique_ptr<Impl> impl_;
};

// Rank 0: an Executor whose slots are the live measuring ranks (one per host unless
// share_host: see MpiOptions). Each rank reports its device
// and template versions first; they must match rank 0's (one store key). A rank that stops
// answering while it holds a candidate is declared lost: the candidate goes to another rank,
// once; a candidate that loses a second rank is recorded as crashed. A lost rank heard again
// (it was stalled, not dead) measures again; its late result is dropped. With no rank left,
// rank 0 measures the rest itself with `fallback`. A thread sends rank 0's heartbeat to the
// measuring ranks for the coordinator's lifetime. The destructor stops every rank.
class Coordinator final : public Executor {
public:
    Coordinator(Session& session, const DeviceInfo& device, const TemplateRegistry& registry,
                MeasureCandidateFn fallback, MpiOptions options = {});
    ~Coordinator() override;

    const DeviceInfo& device() const override;
    std::size_t slots() const override;
    void submit(Job job) override;
    JobResult wait_next() override;

    int measuring_ranks() const;           // ranks that reported in and are not lost
    std::vector<std::string> lost() const;  // one line per lost rank: which and why

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Every rank but 0: reports its device and templates, then measures what rank 0 sends with
// `measure` until rank 0 says stop. While measuring it sends a heartbeat every heartbeat_s.
// Throws tune::Error (and skips MPI_Finalize) when rank 0 is silent for rank_timeout_s.
void serve(Session& session, const DeviceInfo& device, const TemplateRegistry& registry,
           const MeasureCandidateFn& measure, MpiOptions options = {});

}  // namespace tune::mpi
