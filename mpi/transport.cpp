#include "transport.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "tune/error.hpp"

namespace tune::mpi {
namespace {

using Clock = std::chrono::steady_clock;

void check(int code, const char* what) {
    if (code != MPI_SUCCESS) throw Error(std::string("MPI: ") + what + " failed: " + error_text(code));
}

}  // namespace

std::string error_text(int code) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
    return std::string(text, static_cast<std::size_t>(length));
}

Session::Session() : impl_(std::make_unique<Impl>()) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    require(!initialized, "MPI: already initialised in this process");
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    if (provided < MPI_THREAD_SERIALIZED) {
        MPI_Finalize();
        throw Error("MPI: the library grants thread level " + std::to_string(provided) +
                    "; --mpi needs MPI_THREAD_SERIALIZED (ranks send heartbeats from a second thread)");
    }
    // Errors come back as codes: a lost rank must not abort the job from inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_dup(MPI_COMM_WORLD, &impl_->comm), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(impl_->comm, &impl_->rank);
    MPI_Comm_size(impl_->comm, &impl_->size);
}

Session::~Session() {
    // With a peer lost, MPI_Finalize can wait for it forever (OpenMPI 4 has no fault
    // tolerance there): the process ends without it; everything it produced is stored.
    if (!impl_->finalize) return;
    MPI_Comm_free(&impl_->comm);
    MPI_Finalize();
}

int Session::rank() const { return impl_->rank; }
int Session::size() const { return impl_->size; }
void Session::skip_finalize() { impl_->finalize = false; }

std::optional<Message> try_receive(MPI_Comm comm, int source) {
    int flag = 0;
    MPI_Status status;
    check(MPI_Iprobe(source, MPI_ANY_TAG, comm, &flag, &status), "MPI_Iprobe");
    if (!flag) return std::nullopt;
    int count = 0;
    check(MPI_Get_count(&status, MPI_CHAR, &count), "MPI_Get_count");
    Message m{status.MPI_SOURCE, status.MPI_TAG, std::string(static_cast<std::size_t>(count), '\0')};
    check(MPI_Recv(m.body.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, comm, MPI_STATUS_IGNORE),
          "MPI_Recv");
    return m;
}

std::string format_seconds(double s) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", s);
    return text;
}

void Backoff::wait() {
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    sleep_us_ = std::min(sleep_us_ * 2, 2000);
}

Outbox::~Outbox() {
    // Sends still pending go to a rank that is gone. MPI may still own their buffers, so
    // they are left to the end of the process rather than freed under it.
    for (auto& p : pending_) static_cast<void>(p.body.release());
}

std::string Outbox::send(MPI_Comm comm, int dest, int tag, std::string body) {
    progress();
    auto buffer = std::make_unique<std::string>(std::move(body));
    MPI_Request request = MPI_REQUEST_NULL;
    int code = MPI_Isend(buffer->data(), static_cast<int>(buffer->size()), MPI_CHAR, dest, tag, comm, &request);
    if (code != MPI_SUCCESS) return error_text(code);
    pending_.push_back({request, dest, std::move(buffer)});
    return {};
}

void Outbox::progress() {
    std::erase_if(pending_, [](Pending& p) {
        int done = 0;
        // An error completes the request as well: the peer is gone, nothing to wait for.
        return MPI_Test(&p.request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done;
    });
}

bool Outbox::drain(double timeout_s, const std::vector<int>& ranks) {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    auto waited_for = [&](const Pending& p) {
        return ranks.empty() || std::find(ranks.begin(), ranks.end(), p.dest) != ranks.end();
    };
    Backoff backoff;
    for (;;) {
        progress();
        if (std::none_of(pending_.begin(), pending_.end(), waited_for)) return true;
        if (Clock::now() >= deadline) return false;
        backoff.wait();
    }
}

std::optional<Message> receive_within(MPI_Comm comm, int source, double timeout_s, Outbox& outbox) {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    Backoff backoff;
    for (;;) {
        if (auto m = try_receive(comm, source)) return m;
        outbox.progress();
        if (timeout_s > 0 && Clock::now() >= deadline) return std::nullopt;
        backoff.wait();
    }
}

}  // namespace tune::mpi
