#include "tune/compile_service.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "tune/error.hpp"
#include "environment.hpp"

namespace tune {

CompileRequest program_request(const SourceFiles& files, const std::string& source, const std::string& instance,
                               const std::string& arch) {
    CompileRequest r;
    r.source_name = source;
    r.instance = instance;
    r.arch = arch;
    bool found = false;
    for (const auto& [name, text] : files) {
        if (name == source) {
            r.source = text;
            found = true;
        } else if (name.ends_with(".h") || name.ends_with(".cuh")) {
            r.headers.emplace_back(name, text);
        }
    }
    require(found, "kernel source '" + source + "' is not embedded in this build");
    return r;
}

int default_compile_threads() {
    if (auto threads = detail::int_from_env("LIBTUNE_COMPILE_THREADS", 1, 256, "")) return *threads;
    return std::max(1, int(std::thread::hardware_concurrency()) - 1);
}

std::unique_ptr<CompileService> make_compile_service(std::shared_ptr<const KernelCompiler> compiler,
                                                     const std::optional<std::filesystem::path>& cache_dir,
                                                     int threads) {
    std::optional<std::filesystem::path> dir = cache_dir ? *cache_dir : BinaryCache::default_dir();
    if (dir && dir->empty()) dir.reset();
    return std::make_unique<CompileService>(std::move(compiler), dir, threads);
}

CompileService::CompileService(std::shared_ptr<const KernelCompiler> compiler,
                               std::optional<std::filesystem::path> cache_dir, int threads)
    : compiler_(std::move(compiler)) {
    require(compiler_ != nullptr, "CompileService: no compiler");
    require(threads >= 1, "CompileService: threads must be >= 1, got " + std::to_string(threads));
    if (cache_dir) cache_.emplace(*cache_dir);
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

CompileService::~CompileService() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
}

std::shared_future<CompileResult> CompileService::submit(const CompileRequest& request) {
    BinaryKey key = binary_key(request, *compiler_);
    std::string text = key.text();
    std::lock_guard lock(mutex_);
    if (auto it = known_.find(text); it != known_.end()) return it->second;
    Task task{std::move(key), request, {}};
    auto future = task.promise.get_future().share();
    known_.emplace(std::move(text), future);
    queue_.push_back(std::move(task));
    wake_.notify_one();
    return future;
}

CompileService::Stats CompileService::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

CompileResult CompileService::get_or_throw(const CompileRequest& request) {
    CompileResult result = get(request);
    if (!result.ok) throw Error("compile error in " + request.instance + " (" + request.arch + "):\n" + result.log);
    return result;
}

CompileResult CompileService::build(const Task& task) {
    if (cache_) {
        if (auto hit = cache_->load(task.key)) {
            std::lock_guard lock(mutex_);
            ++stats_.cache_hits;
            return *hit;
        }
    }
    auto t0 = std::chrono::steady_clock::now();
    CompileResult r = compiler_->compile(task.request);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    {
        std::lock_guard lock(mutex_);
        ++stats_.compiled;
        stats_.compile_seconds += r.seconds;
        if (!r.ok) ++stats_.failures;
    }
    if (r.ok && cache_) {
        try {
            cache_->store(task.key, r);
        } catch (const std::exception& e) {
            // A full or read-only disk costs a recompile next time, not this kernel.
            r.log += std::string("\n(kernel cache: not stored: ") + e.what() + ")";
        }
    }
    return r;
}

void CompileService::worker_loop() {
    while (true) {
        Task task;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stop_ and drained
            task = std::move(queue_.front());
            queue_.pop_front();
        }
        CompileResult r;
        try {
            r = build(task);
        } catch (const std::exception& e) {
            r.ok = false;
            r.log = std::string("compile: ") + e.what();
        }
        task.promise.set_value(std::move(r));
    }
}

}  // namespace tune
