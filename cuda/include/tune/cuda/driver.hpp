// RAII owners of CUDA driver objects (primary context, device memory, stream, event, module)
// and the device fingerprint. Every constructor throws tune::Error("no CUDA device: ...")
// on a machine without a driver or device.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "tune/cuda/api.hpp"
#include "tune/device.hpp"

namespace tune::cuda {

// The device's primary context, retained for this object's life and made current on the
// calling thread (make_current() again on another thread).
class Context {
public:
    explicit Context(int ordinal = 0);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    void make_current() const;
    CUdevice device() const { return device_; }
    void synchronize() const;

private:
    CUdevice device_ = 0;
    CUcontext ctx_ = nullptr;
};

class DeviceMemory {
public:
    DeviceMemory() = default;
    explicit DeviceMemory(std::size_t bytes);
    ~DeviceMemory();
    DeviceMemory(DeviceMemory&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = 0, o.bytes_ = 0; }
    DeviceMemory& operator=(DeviceMemory&& o) noexcept;
    CUdeviceptr get() const { return ptr_; }
    void* as_ptr() const { return reinterpret_cast<void*>(ptr_); }
    std::size_t bytes() const { return bytes_; }
    void upload(const void* host, std::size_t bytes);
    void download(void* host, std::size_t bytes) const;

private:
    CUdeviceptr ptr_ = 0;
    std::size_t bytes_ = 0;
};

class Stream {
public:
    Stream();
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    CUstream get() const { return stream_; }
    void synchronize() const;

private:
    CUstream stream_ = nullptr;
};

class Event {
public:
    Event();
    ~Event();
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    void record(CUstream stream) const;
    // Seconds from start to this event (both recorded; waits for this one).
    double seconds_since(const Event& start) const;

private:
    CUevent event_ = nullptr;
};

// A loaded cubin; functions stay valid while it lives.
class Module {
public:
    explicit Module(const std::string& binary);
    ~Module();
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    // Throws tune::Error naming the entry when absent.
    CUfunction function(const std::string& entry) const;
    // The entry, opted in to `dynamic_shared_bytes` of dynamic shared memory per block (a
    // launch above 48 KiB fails without it).
    CUfunction function(const std::string& entry, unsigned dynamic_shared_bytes) const;

private:
    CUmodule module_ = nullptr;
};

// Fingerprint of CUDA device `ordinal`: name, "sm_XY" (sm_90a on Hopper: the arch-specific
// features wgmma/TMA are what the kernels compile for), SMs, memory, L2, clocks, driver and
// NVRTC versions. Throws tune::Error("no CUDA device: ...") when there is none.
DeviceInfo detect_device(int ordinal = 0);

// Largest dynamic shared memory a block may opt into on an arch ("sm_80": 163 KiB,
// "sm_90a": 227 KiB); the spaces' shared-memory constraint reads it.
std::int64_t max_shared_bytes(const std::string& arch);

// A TMA descriptor for a rows x `inner` row-major tensor of 16-bit elements (bf16, or f16 when
// `f16`) at `base`, read in boxes of box_rows x 64 elements with 128-byte swizzle: the tile
// layout the sm_90a kernels' shared-memory descriptors assume. Throws on a driver error.
CUtensorMap tensor_map_2d(const void* base, std::uint64_t inner, std::uint64_t rows, std::uint32_t box_rows, bool f16);

}  // namespace tune::cuda
