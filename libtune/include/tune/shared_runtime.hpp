// shared_device_runtime: the one runtime of a GPU backend that a process shares (its
// accelerator, templates and dispatcher), on device 0, made on first use.
#pragma once

#include <memory>
#include <mutex>

#include "tune/compile_service.hpp"

namespace tune {

// Runtime::for_device(0, options) with default_compile_threads(), made once and shared after;
// when making it throws (no device), the error propagates and the next call tries again.
template <class Runtime, class Options>
std::shared_ptr<Runtime> shared_device_runtime() {
    static std::mutex mutex;
    static std::shared_ptr<Runtime> runtime;
    std::lock_guard lock(mutex);
    if (!runtime) {
        Options o;
        o.compile_threads = default_compile_threads();
        runtime = Runtime::for_device(0, o);
    }
    return runtime;
}

}  // namespace tune
