// Workload: seeded operands for one Problem, its fp64 reference result, and the op's error
// metric. The only code that knows what a problem computes; every config is checked here.
#pragma once

#include <cstdint>
#include <vector>

#include "tune/buffer.hpp"
#include "tune/kernel.hpp"
#include "tune/problem.hpp"

namespace tune {

class Workload {
public:
    // Fills inputs with values uniform in [-1, 1) from `seed` and computes the reference.
    Workload(const Problem& p, std::uint64_t seed);

    const Problem& problem() const { return problem_; }
    OpArgs args() const { return {input_ptrs_, output_ptrs_}; }
    // Byte sizes of the operands args() points to (for copies to and from a device).
    std::size_t input_bytes(std::size_t i) const { return inputs_.at(i).bytes(); }
    std::size_t output_bytes(std::size_t i) const { return outputs_.at(i).bytes(); }
    // Poisons outputs with NaN so a kernel that skips an element fails verification.
    void poison_outputs();
    // Error of the current outputs: max |C - C_ref| / scale elementwise, where scale bounds
    // how far any correct evaluation order can drift (GEMM: |A||B|, grown by each epilogue
    // step; attention: see attention_reference.cpp, over O and LSE); NaN when any output is
    // NaN or infinite where the reference is not.
    double error() const;
    std::size_t bytes() const;

private:
    Problem problem_;
    std::vector<AlignedBuffer> inputs_, outputs_;
    std::vector<const void*> input_ptrs_;
    std::vector<void*> output_ptrs_;
    std::vector<double> reference_, scale_;  // scale: the elementwise |A||B| bound
};

}  // namespace tune
