// The HIP backend in one place: HiprtcCompiler (a KernelCompiler; no device needed), Runtime
// (target gfx arch, compile service with the on-disk binary cache, and the device's stream
// when there is one), device memory and modules, and HipAccelerator (the Measurer's device
// path: HIP events, L2 flush by a memset twice the L2 size).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tune/accelerator.hpp"
#include "tune/compile_service.hpp"
#include "tune/device.hpp"
#include "tune/runtime_compile.hpp"

namespace tune::hip {

class HiprtcCompiler final : public KernelCompiler {
public:
    // Throws tune::Error("hiprtc not available: ...") without libamdhip64.
    HiprtcCompiler();
    std::string version() const override { return version_; }
    CompileResult compile(const CompileRequest& request) const override;  // a code object

private:
    std::string version_;
};

bool hiprtc_available(std::string* why = nullptr);

struct RuntimeOptions {
    int compile_threads = 2;
    std::optional<std::filesystem::path> cache_dir;  // nullopt: default; empty: no disk cache
};

class Runtime {
public:
    // Device `ordinal` (throws "no HIP device: ..." without one, or when its arch is unknown or
    // newer than the loaded hiprtc).
    static std::shared_ptr<Runtime> for_device(int ordinal = 0, RuntimeOptions options = {});
    // Compiles for `arch` ("gfx90a", "gfx942"); launching throws "no HIP device". An arch the
    // templates do not know throws, and so does one the loaded hiprtc is too old for (gfx94x:
    // 5.7+), unless `compiler` replaces hiprtc (an offline compiler, e.g. for CPU-only checks).
    static std::shared_ptr<Runtime> compile_only(std::string arch, RuntimeOptions options = {},
                                                 std::shared_ptr<const KernelCompiler> compiler = nullptr);
    ~Runtime();

    const std::string& arch() const { return device_.arch; }
    const DeviceInfo& device() const { return device_; }
    CompileService& compiler() const { return *compiler_; }
    bool has_device() const { return stream_ != nullptr; }
    // The stream kernels run on (the device made current on the calling thread); throws
    // tune::Error("no HIP device: compile-only runtime for <arch>") without a device.
    void* stream() const;

private:
    Runtime() = default;
    DeviceInfo device_;
    int ordinal_ = 0;
    std::unique_ptr<CompileService> compiler_;
    void* stream_ = nullptr;  // hipStream_t
};

// Device 0's runtime, created on first use (LIBTUNE_KERNEL_CACHE, LIBTUNE_COMPILE_THREADS as
// for CUDA).
std::shared_ptr<Runtime> shared_runtime();

class DeviceMemory {
public:
    DeviceMemory() = default;
    explicit DeviceMemory(std::size_t bytes);
    ~DeviceMemory();
    DeviceMemory(DeviceMemory&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
    DeviceMemory& operator=(DeviceMemory&& o) noexcept;
    void* get() const { return ptr_; }
    std::size_t bytes() const { return bytes_; }

private:
    void* ptr_ = nullptr;
    std::size_t bytes_ = 0;
};

// A loaded code object and one of its kernels.
class Module {
public:
    Module(const std::string& binary, const std::string& entry);
    ~Module();
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    void* function() const { return function_; }  // hipFunction_t

private:
    void* module_ = nullptr;  // hipModule_t
    void* function_ = nullptr;
};

class HipAccelerator final : public Accelerator {
public:
    explicit HipAccelerator(std::shared_ptr<const Runtime> runtime);
    ~HipAccelerator() override;
    OpArgs upload(const Workload& w) override;
    void poison_outputs() override;
    void download(Workload& w) override;
    double time_calls(const std::function<void()>& run, int calls, bool flush_l2) override;

private:
    std::shared_ptr<const Runtime> runtime_;
    OperandBuffers<DeviceMemory> buffers_;
    DeviceMemory flush_;
    void* start_ = nullptr;  // hipEvent_t
    void* stop_ = nullptr;
};

}  // namespace tune::hip
