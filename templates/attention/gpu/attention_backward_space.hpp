// Host side of the GPU attention backward templates (cuda.attention.flash_backward,
// hip.attention.flash_backward on scalar f32 arithmetic; cuda.attention.mma_backward on
// mma.sync): which problems they take, the knobs of a problem's space (mode = recompute |
// store, tiles, warps, split), and the launch plan of a config (the two passes' grids, shared
// memory, the store mode's dS workspace, the kernel instance).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "attention_space.hpp"

namespace tune::gpu_attention {

// bf16 / f16 backward problems (dim backward = 1) with the forward's head_dim and size limits.
bool supports_backward(const Problem& p);

// One config's knob values.
struct BackwardShape {
    int element = 0;  // 0 bf16, 1 f16
    int head_dim = 0, q_tile = 0, k_tile = 0, threads = 0;
    bool store = false;  // mode = store: dS materialised between the passes
    bool split = false;  // mma kernel: dO, P and dS also enter as their 16-bit rounding residuals
    static BackwardShape of(const Problem& p, const Config& c, const Target& t);
};

// Dynamic shared bytes of a block: mirrors attention_backward.h's layout.
std::int64_t backward_shared_bytes(const BackwardShape& s);
// Workspace of a config: store mode's dS, batch x heads x q_len x kv_len floats; 0 for recompute.
std::size_t backward_workspace_bytes(const AttentionDims& a, bool store);

std::shared_ptr<Space> build_backward_space(const Problem& p, const Target& t);

// The tensor-core kernel (attention_backward_mma.cu): backward problems with head_dim <= 128
// (its dK and dV accumulators live in registers), its shared bytes, and the tolerance that
// admits rounding dO, P and dS once to the 16-bit input type (split = 0).
bool supports_backward_mma(const Problem& p);
std::int64_t backward_mma_shared_bytes(const BackwardShape& s);
double backward_single_rounding_tolerance(const Problem& p);
std::shared_ptr<Space> build_backward_mma_space(const Problem& p, const Target& t);

struct BackwardLaunch {
    unsigned key_grid[3] = {1, 1, 1};    // pass 0 (dK, dV): key tiles x (batch x kv_heads)
    unsigned query_grid[3] = {1, 1, 1};  // pass 1 (dQ): query tiles x (batch x heads)
    unsigned block = 0, shared_bytes = 0;
    std::size_t workspace_bytes = 0;
    std::string instance;  // "libtune::attention_backward<...>"
};
BackwardLaunch backward_launch(const Problem& p, const Config& c, const Target& t);
BackwardLaunch backward_mma_launch(const Problem& p, const Config& c, const Target& t);

// The kernel argument of `pass` for one call: inputs Q, K, V, O, LSE, dO and outputs dQ, dK,
// dV (device pointers, the Problem's layouts); `workspace` holds dS in store mode. Throws on
// wrong operand counts or a missing workspace.
libtune::AttentionBackwardParams backward_params(const AttentionDims& a, const OpArgs& args, const BackwardLaunch& l,
                                                 void* workspace, int pass);

}  // namespace tune::gpu_attention
