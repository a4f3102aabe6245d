// CompileService: compiles run-time kernel instances on worker threads, ahead of their
// measurement, through the on-disk BinaryCache; each instance is built at most once per process.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tune/binary_cache.hpp"
#include "tune/runtime_compile.hpp"

namespace tune {

// Compile threads for a GPU runtime: $LIBTUNE_COMPILE_THREADS (1..256; anything else throws
// tune::Error naming it), else the hardware threads less one (at least 1).
int default_compile_threads();

// A GPU runtime's compile service: cache_dir nullopt = BinaryCache::default_dir(), an empty
// path = no disk cache.
std::unique_ptr<class CompileService> make_compile_service(std::shared_ptr<const KernelCompiler> compiler,
                                                           const std::optional<std::filesystem::path>& cache_dir,
                                                           int threads);

class CompileService {
public:
    struct Stats {
        int compiled = 0;    // compiler invocations
        int cache_hits = 0;  // binaries read from disk
        int failures = 0;    // compile errors (kept in memory, never on disk)
        double compile_seconds = 0;
    };

    // threads >= 1 workers; no cache folder: every instance is compiled once per process.
    CompileService(std::shared_ptr<const KernelCompiler> compiler, std::optional<std::filesystem::path> cache_dir,
                   int threads);
    ~CompileService();  // finishes queued work, then joins
    CompileService(const CompileService&) = delete;
    CompileService& operator=(const CompileService&) = delete;

    // Queues the request unless it is already done or queued; returns at once. Results are
    // never exceptions: a compile error (or a cache I/O error) is a result with ok = false.
    std::shared_future<CompileResult> submit(const CompileRequest& request);
    CompileResult get(const CompileRequest& request) { return submit(request).get(); }
    // The compiled binary, or tune::Error naming the instance and architecture with the
    // compiler's log: what a template's instantiate() needs.
    CompileResult get_or_throw(const CompileRequest& request);

    const KernelCompiler& compiler() const { return *compiler_; }
    const BinaryCache* cache() const { return cache_ ? &*cache_ : nullptr; }
    Stats stats() const;

private:
    struct Task {
        BinaryKey key;
        CompileRequest request;
        std::promise<CompileResult> promise;
    };
    void worker_loop();
    CompileResult build(const Task& task);

    std::shared_ptr<const KernelCompiler> compiler_;
    std::optional<BinaryCache> cache_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Task> queue_;
    std::unordered_map<std::string, std::shared_future<CompileResult>> known_;  // by key text
    Stats stats_;
    bool stop_ = false;
    std::vector<std::thread> workers_;
};

}  // namespace tune
