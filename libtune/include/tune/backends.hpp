// The device a command or runtime asked for (--backend cpu|cuda|hip): its fingerprint and,
// for a GPU, the accelerator the Measurer measures through. The one place that knows which
// backends this build has.
#pragma once

#include <memory>

#include "tune/accelerator.hpp"
#include "tune/device.hpp"

namespace tune {

// Whether this build includes the backend's code (not whether a device is present).
bool backend_built(Backend backend);

// The fingerprint of device 0 of `backend`. Throws tune::Error with a message that says why
// there is none: "no CUDA device: libcuda.so.1: cannot open shared object file", "this build
// has no HIP backend", ...
DeviceInfo detect_device(Backend backend);

// The accelerator for a GPU device returned by detect_device; nullptr for the CPU.
std::shared_ptr<Accelerator> make_accelerator(const DeviceInfo& device);

}  // namespace tune
