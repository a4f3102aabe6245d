// The generic blocked GEMM driver (BLIS's five loops around a micro-kernel): NC/KC/MC cache
// blocking, optional packing of A and B, and the split of C over threads all come from
// Blocking; the only ISA-specific code is the micro-kernel (and the epilogue) it calls.
// Epilogues vary what happens to a finished C tile: bias/activation/residual (GEMM) or
// silu(gate) * up from two B operands sharing each packed A block (SwiGLU).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tune/bf16.hpp"
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

// C = act(C + bias[n]) + residual[m x n]. bias is shared by the batch items, residual holds
// one m x n matrix per item; either may be null.
struct Epilogue {
    const float* bias = nullptr;
    Activation act = Activation::none;
    const float* residual = nullptr;
};

// Floats of scratch one thread needs (packed A block + packed B block, or the zero-padded
// edge panels when an operand is read in place), a multiple of 16.
std::size_t workspace_floats_per_thread(const GemmDims& d, const Blocking& b);

// C = op(A) * op(B) for every batch item (f32, row-major, layouts as in make_gemm), with
// `fused` (when not null) applied to each C tile right after its last k-block is stored.
// `workspace` holds b.threads * workspace_floats_per_thread(d, b) floats, 64-byte aligned.
// `pool` runs the b.threads parts (may be null when b.threads == 1).
void blocked_gemm(const GemmDims& d, const Blocking& b, const float* A, const float* B,
                  float* C, float* workspace, ThreadPool* pool, const Epilogue* fused = nullptr);
// The same with bf16 A and B (b.ukernel must be a bf16 kernel). A bf16 kernel given float
// operands (the overload above) rounds them to bf16 as it packs them.
void blocked_gemm(const GemmDims& d, const Blocking& b, const bf16* A, const bf16* B, float* C,
                  float* workspace, ThreadPool* pool, const Epilogue* fused = nullptr);

// The epilogue as a second pass over C (every batch item), threads split as in `b`.
void apply_epilogue(const GemmDims& d, const Blocking& b, const Epilogue& e, float* C, ThreadPool* pool);

// SwiGLU, d = {1, m, n, k, trans_a = 0, trans_b = 1}: out = silu(x Wg^T) * (x Wu^T).
// Fused: each packed x block feeds the gate and the up tile of the same (i, j); the gate
// accumulates in `out`, the up tile in the thread's workspace, and silu(g) * u is applied when
// the tile is last stored. Workspace: b.threads * swiglu_workspace_floats_per_thread(d, b).
std::size_t swiglu_workspace_floats_per_thread(const GemmDims& d, const Blocking& b);
void blocked_swiglu(const GemmDims& d, const Blocking& b, const float* x, const float* w_gate,
                    const float* w_up, float* out, float* workspace, ThreadPool* pool);
// The same with bf16 x and weights (b.ukernel a bf16 kernel); out stays f32.
void blocked_swiglu(const GemmDims& d, const Blocking& b, const bf16* x, const bf16* w_gate,
                    const bf16* w_up, float* out, float* workspace, ThreadPool* pool);

// out = silu(gate) * up elementwise over m x n (the unfused SwiGLU's last pass).
void apply_glu(const GemmDims& d, const Blocking& b, const float* gate, const float* up, float* out,
               ThreadPool* pool);

}  // namespace tune::cpu_gemm
