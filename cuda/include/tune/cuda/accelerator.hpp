// CudaAccelerator: the Measurer's device path on CUDA: operands in device memory, NaN
// poisoning with cuMemsetD32, CUDA events around the timed calls, L2 flushed by writing a
// buffer twice the L2 size.
#pragma once

#include <memory>
#include <vector>

#include "tune/accelerator.hpp"

namespace tune::cuda {

class Runtime;
class DeviceMemory;
class Event;

class CudaAccelerator final : public Accelerator {
public:
    // Throws tune::Error("no CUDA device: ...") for a compile-only runtime.
    explicit CudaAccelerator(std::shared_ptr<const Runtime> runtime);
    ~CudaAccelerator() override;

    OpArgs upload(const Workload& w) override;
    void poison_outputs() override;
    void download(Workload& w) override;
    double time_calls(const std::function<void()>& run, int calls, bool flush_l2) override;

private:
    std::shared_ptr<const Runtime> runtime_;
    OperandBuffers<DeviceMemory> buffers_;
    std::unique_ptr<DeviceMemory> flush_;
    std::unique_ptr<Event> start_, stop_;
};

}  // namespace tune::cuda
