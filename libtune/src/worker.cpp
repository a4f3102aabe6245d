// Worker process for isolated measurement: fork, a socketpair carrying length-prefixed JSON
// frames, per-phase deadlines enforced with poll() and SIGKILL, and the exit status decoded
// into a crashed / timeout reason.
#include "worker.hpp"

#include <omp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <thread>
#include <nlohmann/json.hpp>

#include "tune/error.hpp"

namespace tune::detail {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string format_seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s);
    return buf;
}

// Writes all of `data`; false when the peer is gone.
bool write_all(int fd, const char* data, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        data += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

bool send_frame(int fd, const json& j) {
    std::string body = j.dump(-1, ' ', false, json::error_handler_t::replace);
    std::uint32_t len = static_cast<std::uint32_t>(body.size());
    unsigned char head[4] = {static_cast<unsigned char>(len), static_cast<unsigned char>(len >> 8),
                             static_cast<unsigned char>(len >> 16), static_cast<unsigned char>(len >> 24)};
    return write_all(fd, reinterpret_cast<const char*>(head), 4) && write_all(fd, body.data(), body.size());
}

bool read_all(int fd, char* data, std::size_t n) {
    while (n > 0) {
        ssize_t r = ::read(fd, data, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        data += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

// Blocking read of one frame (the worker side); false on EOF.
bool recv_frame(int fd, std::string& body) {
    unsigned char head[4];
    if (!read_all(fd, reinterpret_cast<char*>(head), 4)) return false;
    std::uint32_t len = head[0] | (head[1] << 8) | (head[2] << 16) | (std::uint32_t(head[3]) << 24);
    body.resize(len);
    return read_all(fd, body.data(), len);
}

// Pops one complete frame from the front of `buffer`.
bool pop_frame(std::string& buffer, std::string& body) {
    if (buffer.size() < 4) return false;
    auto* h = reinterpret_cast<const unsigned char*>(buffer.data());
    std::size_t len = h[0] | (h[1] << 8) | (h[2] << 16) | (std::size_t(h[3]) << 24);
    if (buffer.size() < 4 + len) return false;
    body.assign(buffer, 4, len);
    buffer.erase(0, 4 + len);
    return true;
}

std::int64_t mapped_bytes() {
    long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
        std::fclose(f);
    }
    return std::int64_t(pages) * ::sysconf(_SC_PAGESIZE);
}

}  // namespace

std::string signal_description(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    const char* text = ::strsignal(sig);
    std::string out = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
    if (text) out += std::string(" (") + text + ")";
    return out;
}

Worker::Worker(MeasureFn measure, WorkerLimits limits) : measure_(std::move(measure)), limits_(limits) {}

Worker::~Worker() { stop(); }

void Worker::start() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        throw Error(std::string("isolated measurer: socketpair failed: ") + std::strerror(errno));
    std::fflush(nullptr);  // the child must not inherit (and later repeat) buffered output
    // This thread's OpenMP pool (oneDNN run in process) ends here; it starts again at the next
    // parallel region. Inherited, it leaves libgomp's count of running threads above the
    // CPUs in the child, whose OpenMP threads then barely spin before sleeping: a 2-thread
    // oneDNN call of 50 us measured 100-130 us in such a worker.
    omp_pause_resource_all(omp_pause_hard);
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        ::close(sv[0]);
        ::close(sv[1]);
        throw Error(std::string("isolated measurer: fork failed: ") + std::strerror(err));
    }
    if (pid == 0) {
        ::close(sv[0]);
        // The worker dies with its parent (a killed tuner leaves no orphan measuring).
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(0);
        // Serve from a thread of the worker's own. OpenMP runtimes keep a thread's pool with
        // that thread, and libgomp has no fork handler: a forking thread's pool that the
        // pause above did not end (it cannot inside a parallel region) names threads the
        // child does not have, and its next parallel region (oneDNN's) waits for them for
        // ever. A new thread starts a new pool.
        try {
            std::thread([this, fd = sv[1]] { serve(fd); }).join();
        } catch (const std::system_error&) {
            serve(sv[1]);  // no thread to be had: serve here, which works unless OpenMP ran
        }
    }
    ::close(sv[1]);
    fd_ = sv[0];
    pid_ = pid;
    ++forks_;
}

void Worker::stop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
    }
    pid_ = -1;
}

void Worker::serve(int fd) {
    // A crash handler inherited from the host program (a test framework, a crash reporter)
    // must not run in the worker: the signal itself is the report.
    for (int sig : {SIGSEGV, SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGTRAP, SIGSYS, SIGTERM, SIGINT})
        ::signal(sig, SIG_DFL);
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    if (limits_.memory_limit_bytes > 0) {
        auto cap = static_cast<rlim_t>(mapped_bytes() + limits_.memory_limit_bytes);
        rlimit as{cap, cap};
        ::setrlimit(RLIMIT_AS, &as);
    }
    std::string body;
    while (recv_frame(fd, body)) {
        json reply;
        try {
            json req = json::parse(body);
            auto* t = reinterpret_cast<const Template*>(req.at("template").get<std::uintptr_t>());
            require(t->info().name == req.at("name").get<std::string>() &&
                        t->info().version == req.at("version").get<std::string>(),
                    "isolated measurer: template changed after the worker started");
            Problem p = req.at("problem").get<Problem>();
            Config c = req.at("config").get<Config>();
            PhaseFn phase = [fd](std::string_view name) {
                if (!send_frame(fd, json{{"phase", name}})) ::_exit(0);
            };
            reply = json{{"result", measure_(p, *t, c, phase)}};
        } catch (const std::exception& e) {
            reply = json{{"error", e.what()}};
        }
        if (!send_frame(fd, reply)) break;
    }
    ::_exit(0);
}

Measurement Worker::measure(const Problem& p, const Template& t, const Config& c) {
    if (!known_.contains(t.instance())) {
        stop();  // the live worker may predate this template: fork one that sees it
        known_.insert(t.instance());
    }
    json request{{"template", reinterpret_cast<std::uintptr_t>(&t)},
                 {"name", t.info().name},
                 {"version", t.info().version},
                 {"problem", p},
                 {"config", c}};
    for (int attempt = 0;; ++attempt) {
        if (pid_ < 0) start();
        if (send_frame(fd_, request)) break;
        stop();  // died while idle: one fresh worker, then give up
        if (attempt == 1) throw Error("isolated measurer: cannot reach a fresh worker");
    }

    Measurement m;
    auto fail = [&](Status s, std::string why) {
        m.status = s;
        m.reason = std::move(why);
        return m;
    };
    std::string phase = "setup", buffer, body;
    auto limit_for = [&](const std::string& ph) {
        return ph == "setup" ? limits_.setup_timeout_s : ph == "verify" ? limits_.verify_timeout_s : limits_.timing_timeout_s;
    };
    auto deadline = Clock::now() + std::chrono::duration<double>(limit_for(phase));
    char chunk[1 << 14];
    for (;;) {
        while (pop_frame(buffer, body)) {
            json msg;
            try {
                msg = json::parse(body);
            } catch (const std::exception& e) {
                stop();
                return fail(Status::failed, std::string("isolated measurer: bad reply: ") + e.what());
            }
            if (msg.contains("phase")) {
                phase = msg["phase"].get<std::string>();
                deadline = Clock::now() + std::chrono::duration<double>(limit_for(phase));
            } else if (msg.contains("result")) {
                try {
                    return msg["result"].get<Measurement>();
                } catch (const std::exception& e) {
                    return fail(Status::failed, std::string("isolated measurer: bad result: ") + e.what());
                }
            } else {
                return fail(Status::failed, msg.value("error", std::string("isolated measurer: empty reply")));
            }
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        pollfd pfd{fd_, POLLIN, 0};
        int ready = left > 0 ? ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1 << 30))) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) {
            stop();
            double limit = limit_for(phase);
            std::string what = phase == "verify" ? "the verification call" : phase == "time" ? "timing" : "setup";
            return fail(Status::timeout, what + " ran longer than " + format_seconds(limit) + " s; worker killed");
        }
        ssize_t r = ::read(fd_, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r > 0) {
            buffer.append(chunk, static_cast<std::size_t>(r));
            continue;
        }
        // EOF or error: the worker died. Collect its status for the reason.
        int status = 0;
        pid_t dead = pid_;
        ::close(fd_);
        fd_ = -1;
        pid_ = -1;
        while (::waitpid(dead, &status, 0) < 0 && errno == EINTR) {
        }
        std::string why = "worker ";
        if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            why += "killed by " + signal_description(sig);
            if (sig == SIGKILL) why += ", likely out of memory";
        } else if (WIFEXITED(status)) {
            why += "exited with status " + std::to_string(WEXITSTATUS(status));
        } else {
            why += "died";
        }
        return fail(Status::crashed, why + " during " + phase);
    }
}

}  // namespace tune::detail
