// The MPI transport's internals: message tags, JSON text frames over MPI, and waiting that
// sleeps between polls (OpenMPI's blocking calls spin, which would steal the cores a
// measuring rank on the same machine is timing on).
#pragma once

#include <mpi.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tune/mpi/mpi_tuning.hpp"

namespace tune::mpi {

struct Session::Impl {
    MPI_Comm comm = MPI_COMM_NULL;
    int rank = 0, size = 1;
    bool finalize = true;
};

struct SessionAccess {
    static Session::Impl& of(Session& s) { return *s.impl_; }
};

// Worker -> rank 0: hello, result, heartbeat, bye. Rank 0 -> worker: job, stop, finalize.
enum Tag : int { kHello = 1, kJob = 2, kResult = 3, kHeartbeat = 4, kStop = 5, kBye = 6, kFinalize = 7 };

struct Message {
    int source = -1;
    int tag = 0;
    std::string body;
};

// "MPI_ERR_...: text" for an MPI error code.
std::string error_text(int code);

// Seconds in messages: 3 significant digits ("2", "0.25", "121").
std::string format_seconds(double s);

// One message that has arrived (from `source`, or any rank); nullopt when none is waiting.
// Throws tune::Error when MPI reports an error.
std::optional<Message> try_receive(MPI_Comm comm, int source = MPI_ANY_SOURCE);

// Sleeps between polls: 50 us at first, growing to 2 ms while nothing happens.
class Backoff {
public:
    void wait();
    void reset() { sleep_us_ = 50; }

private:
    int sleep_us_ = 50;
};

// Sends without waiting for the receiver; keeps each buffer until MPI is done with it.
class Outbox {
public:
    Outbox() = default;
    Outbox(const Outbox&) = delete;
    Outbox& operator=(const Outbox&) = delete;
    ~Outbox();

    // Empty string when MPI accepted the send, else why not (the peer is likely gone).
    std::string send(MPI_Comm comm, int dest, int tag, std::string body);
    void progress();  // forgets finished sends
    // Waits until every send to a rank in `ranks` (all when empty) finished; false on timeout.
    bool drain(double timeout_s, const std::vector<int>& ranks = {});

private:
    struct Pending {
        MPI_Request request;
        int dest;
        std::unique_ptr<std::string> body;  // stable address while MPI reads it
    };
    std::vector<Pending> pending_;
};

// Waits for a message from `source`, keeping `outbox` moving; nullopt after timeout_s
// (<= 0: no limit).
std::optional<Message> receive_within(MPI_Comm comm, int source, double timeout_s, Outbox& outbox);

}  // namespace tune::mpi
