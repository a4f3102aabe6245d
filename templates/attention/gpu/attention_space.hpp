// Host side shared by the GPU attention templates (cuda.attention.flash, hip.attention.flash):
// which problems they take, the knobs and constraints of a problem's space, and the launch
// plan of a config (grid, block, shared memory, split-KV workspace, kernel instances).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "attention_params.h"
#include "tune/config.hpp"
#include "tune/kernel.hpp"
#include "tune/problem.hpp"
#include "tune/space.hpp"

namespace tune::gpu_attention {

// What differs between the backends' kernels.
struct Target {
    std::string kernel;              // "attention_flash" (CUDA, mma.sync) / "attention_flash_generic" (HIP)
    int wave = 32;                   // threads per warp / wavefront
    bool tensor_cores = true;        // mma.sync: knobs stages (cp.async) and p_split
    std::int64_t max_shared_bytes;   // per block (opt-in limit)
    bool static_shared = false;      // the forward kernel declares its shared memory (HIP's LDS)
};

// Query lengths up to this are decode steps: their spaces add split_kv (as cpu.attention.fused).
inline constexpr std::int64_t kDecodeQLen = 16;

// bf16 / f16 attention problems (forward or backward) with head_dim 64, 80, 96, 128 or 256
// whose sizes fit the kernels' 32-bit tile indices and the grid (batch x heads <= 65535).
bool supported_shape(const Problem& p);
// The forward problems among them.
bool supports(const Problem& p);

// One config's knob values (absent knobs take their neutral value).
struct Shape {
    int element = 0;  // 0 bf16, 1 f16 (the kernels' ELEM)
    int head_dim = 0, q_tile = 0, k_tile = 0, warps = 0, stages = 1, split_kv = 1;
    bool gqa_pack = false, p_split = false;
    static Shape of(const Problem& p, const Config& c);
    int threads(const Target& t) const { return warps * t.wave; }
};

// Shared (CUDA: dynamic, HIP: static LDS) bytes of a block: mirrors the kernels' layouts.
std::int64_t shared_bytes(const Shape& s, const Target& t);
// The tolerance that admits rounding P once to the 16-bit input type in P V (p_split = 0).
double single_rounding_tolerance(const Problem& p);

std::shared_ptr<Space> build_space(const Problem& p, const Target& t);

struct Launch {
    unsigned grid[3] = {1, 1, 1};
    unsigned block = 0, shared_bytes = 0;
    int splits = 1;
    std::size_t workspace_bytes = 0;  // split-KV partials: splits x rows x (head_dim + 1) floats
    unsigned combine_blocks = 0;      // 256-thread blocks of the combine kernel (split-KV only)
    std::string instance;             // "libtune::attention_flash<...>"
    std::string combine_instance;     // empty without split-KV
};
Launch launch(const Problem& p, const Config& c, const Target& t);

// The kernel argument for one call: operands Q, K, V in, O and LSE out (device pointers, in
// the Problem's layouts); `workspace` holds the split-KV partials. Throws on wrong counts.
libtune::AttentionParams params(const AttentionDims& a, const OpArgs& args, const Launch& l, void* workspace);

}  // namespace tune::gpu_attention
