// Runtime: what libtune's CUDA templates share in one process: the target arch, the NVRTC
// compile service with its on-disk binary cache, and, when a device is present, its context
// and stream. A compile-only runtime (no device) builds spaces and binaries for any arch.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "tune/compile_service.hpp"
#include "tune/device.hpp"

namespace tune::cuda {

class Context;
class Stream;

struct RuntimeOptions {
    int compile_threads = 2;  // NVRTC compiles ahead of measurement on this many threads
    // Kernel binary cache folder; nullopt = BinaryCache::default_dir(). Empty path = no disk cache.
    std::optional<std::filesystem::path> cache_dir;
};

class Runtime {
public:
    // The device `ordinal`: its fingerprint, arch and context. Throws tune::Error
    // ("no CUDA device: ...") without a driver or device, or when NVRTC is missing.
    static std::shared_ptr<Runtime> for_device(int ordinal = 0, RuntimeOptions options = {});
    // Compiles for `arch` ("sm_80", "sm_90a"); launching anything throws "no CUDA device".
    static std::shared_ptr<Runtime> compile_only(std::string arch, RuntimeOptions options = {});
    ~Runtime();

    const std::string& arch() const { return arch_; }
    const DeviceInfo& device() const { return device_; }  // arch only when compile-only
    std::int64_t max_shared_bytes() const { return max_shared_bytes_; }
    CompileService& compiler() const { return *compiler_; }

    bool has_device() const { return context_ != nullptr; }
    // Make the context current on the calling thread and return the stream kernels run on.
    // Throw tune::Error("no CUDA device: compile-only runtime for <arch>") when there is none.
    const Stream& stream() const;
    const Context& context() const;

private:
    Runtime() = default;
    std::string arch_;
    DeviceInfo device_;
    std::int64_t max_shared_bytes_ = 0;
    std::unique_ptr<CompileService> compiler_;
    std::unique_ptr<Context> context_;
    std::unique_ptr<Stream> stream_;
};

// The process's runtime for device 0 (created on first use, then shared by the registry,
// the accelerator and the dispatcher); throws tune::Error("no CUDA device: ...") when absent.
// Options from the environment: LIBTUNE_KERNEL_CACHE (binary cache folder),
// LIBTUNE_COMPILE_THREADS (NVRTC threads, a whole number 1..256; default: hardware threads - 1, at least 1).
std::shared_ptr<Runtime> shared_runtime();

}  // namespace tune::cuda
