// Accelerator: what the Measurer needs from a GPU backend to measure a candidate on the
// device: device copies of a Workload's operands, outputs back for verification against the
// host fp64 reference, and a device-event timer with an optional L2 flush. OperandBuffers:
// the bookkeeping of those copies, shared by the backends' accelerators.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <vector>

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

// The device copies of one Workload's operands, kept by an Accelerator between uploads. Memory
// is the backend's device buffer, constructed from its size in bytes; the device work is the
// caller's: copy_in(memory, host, bytes), copy_out(host, memory, bytes), address(memory).
template <class Memory>
class OperandBuffers {
public:
    // Replaces the buffers with w's: inputs filled by copy_in, outputs uninitialised. The
    // returned args hold address() of each and stay valid until the next upload.
    template <class CopyIn, class Address>
    OpArgs upload(const Workload& w, CopyIn&& copy_in, Address&& address) {
        const OpArgs host = w.args();
        inputs_.clear();
        outputs_.clear();
        input_ptrs_.clear();
        output_ptrs_.clear();
        for (std::size_t i = 0; i < host.inputs.size(); ++i) {
            inputs_.emplace_back(w.input_bytes(i));
            copy_in(inputs_.back(), host.inputs[i], w.input_bytes(i));
        }
        for (std::size_t i = 0; i < host.outputs.size(); ++i) outputs_.emplace_back(w.output_bytes(i));
        for (Memory& m : inputs_) input_ptrs_.push_back(address(m));
        for (Memory& m : outputs_) output_ptrs_.push_back(address(m));
        return {input_ptrs_, output_ptrs_};
    }

    // Copies each output into w's host output of the same index.
    template <class CopyOut>
    void download(Workload& w, CopyOut&& copy_out) const {
        const OpArgs host = w.args();
        for (std::size_t i = 0; i < outputs_.size(); ++i) copy_out(host.outputs[i], outputs_[i], w.output_bytes(i));
    }

    std::span<Memory> outputs() { return outputs_; }
    std::span<const Memory> outputs() const { return outputs_; }

private:
    std::vector<Memory> inputs_, outputs_;
    std::vector<const void*> input_ptrs_;
    std::vector<void*> output_ptrs_;
};

}  // namespace tune
