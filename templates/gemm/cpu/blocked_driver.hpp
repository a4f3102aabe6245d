// The generic blocked GEMM driver (BLIS's five loops around a micro-kernel): NC/KC/MC cache
// blocking, optional packing of A and B, and the split of C over threads all come from
// Blocking; the only ISA-specific code is the micro-kernel it calls.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tune/problem.hpp"
#include "ukernel.hpp"

namespace tune {
class ThreadPool;
}

namespace tune::cpu_gemm {

enum class Split : std::uint8_t { m, n };  // which dim of C the threads share out

struct Blocking {
    const Ukernel* ukernel = nullptr;
    std::int64_t mc = 0, kc = 0, nc = 0;  // mc % mr == 0, nc % nr == 0
    bool pack_a = true, pack_b = true;    // pack_b required when trans_b
    int threads = 1;
    Split split = Split::m;
};

// Floats of scratch one thread needs (packed A block + packed B block, or the zero-padded
// edge panels when an operand is read in place), a multiple of 16.
std::size_t workspace_floats_per_thread(const GemmDims& d, const Blocking& b);

// C = op(A) * op(B) for every batch item (f32, row-major, layouts as in make_gemm).
// `workspace` holds b.threads * workspace_floats_per_thread(d, b) floats, 64-byte aligned.
// `pool` runs the b.threads parts (may be null when b.threads == 1).
void blocked_gemm(const GemmDims& d, const Blocking& b, const float* A, const float* B,
                  float* C, float* workspace, ThreadPool* pool);

}  // namespace tune::cpu_gemm
