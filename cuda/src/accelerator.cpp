#include "tune/cuda/accelerator.hpp"

#include <algorithm>

#include "tune/cuda/driver.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/error.hpp"

namespace tune::cuda {

CudaAccelerator::CudaAccelerator(std::shared_ptr<const Runtime> runtime) : runtime_(std::move(runtime)) {
    require(runtime_ != nullptr, "CudaAccelerator: null runtime");
    runtime_->context();  // throws "no CUDA device" for a compile-only runtime
    // Twice the L2, at least 64 MiB: one memset evicts whatever the kernel left there.
    const std::int64_t l2 = std::max<std::int64_t>(runtime_->device().l2_bytes, 32 << 20);
    flush_ = std::make_unique<DeviceMemory>(std::size_t(2 * l2));
    start_ = std::make_unique<Event>();
    stop_ = std::make_unique<Event>();
}

CudaAccelerator::~CudaAccelerator() {
    if (runtime_->has_device()) runtime_->context();  // frees below run in this context
}

OpArgs CudaAccelerator::upload(const Workload& w) {
    runtime_->context();
    return buffers_.upload(
        w, [](DeviceMemory& m, const void* host, std::size_t bytes) { m.upload(host, bytes); },
        [](const DeviceMemory& m) { return m.as_ptr(); });
}

void CudaAccelerator::poison_outputs() {
    const CUstream s = runtime_->stream().get();
    for (const auto& m : buffers_.outputs())  // quiet NaN in every f32 element
        check(driver().cuMemsetD32Async(m.get(), 0x7fc00000u, m.bytes() / 4, s), "cuMemsetD32Async");
}

void CudaAccelerator::download(Workload& w) {
    runtime_->stream().synchronize();
    buffers_.download(w, [](void* host, const DeviceMemory& m, std::size_t bytes) { m.download(host, bytes); });
}

double CudaAccelerator::time_calls(const std::function<void()>& run, int calls, bool flush_l2) {
    const CUstream s = runtime_->stream().get();
    if (flush_l2) check(driver().cuMemsetD8Async(flush_->get(), 0, flush_->bytes(), s), "cuMemsetD8Async(L2 flush)");
    start_->record(s);
    for (int i = 0; i < calls; ++i) run();
    stop_->record(s);
    return stop_->seconds_since(*start_) / calls;
}

}  // namespace tune::cuda
