// Accelerator: what the Measurer needs from a GPU backend to measure a candidate on the
// device: device copies of a Workload's operands, outputs back for verification against the
// host fp64 reference, and a device-event timer with an optional L2 flush.
#pragma once

#include <functional>

#include "tune/kernel.hpp"
#include "tune/workload.hpp"

namespace tune {

class Accelerator {
public:
    virtual ~Accelerator() = default;
    // Device copies of w's inputs and (uninitialised) outputs; the returned args hold device
    // pointers and stay valid until the next upload.
    virtual OpArgs upload(const Workload& w) = 0;
    // Fills the device outputs with NaN, so an element a kernel never writes fails verification.
    virtual void poison_outputs() = 0;
    // Waits for the device, then copies the device outputs into w's host outputs.
    virtual void download(Workload& w) = 0;
    // Device seconds per call of `calls` back-to-back run() calls between two events (run()
    // enqueues work); the L2 cache is flushed first when flush_l2 is set.
    virtual double time_calls(const std::function<void()>& run, int calls, bool flush_l2) = 0;
};

}  // namespace tune
