// GPU attention templates (forward, bf16 / f16 inputs, f32 O and LSE), compiled at run time:
// CUDA with NVRTC, HIP with hiprtc. Each takes its backend's process runtime.
#pragma once

#include <memory>

#include "tune/kernel.hpp"

namespace tune {

namespace cuda {
class Runtime;
}
namespace hip {
class Runtime;
}

// "cuda.attention.flash": FlashAttention-2 style forward on mma.sync (sm_80+; f32 online
// softmax), GQA packing, causal / sliding-window tile skipping, split-KV decode with a combine
// kernel; head_dim 64, 80, 96, 128, 256. Knobs q_tile, k_tile, warps, stages (cp.async),
// p_split, gqa_pack (grouped heads), split_kv (q_len <= 16).
std::unique_ptr<Template> make_cuda_attention_flash_template(std::shared_ptr<cuda::Runtime> runtime);

// "hip.attention.flash": the same algorithm, space vocabulary and split-KV combine on the
// generic path (f32 scalar arithmetic, no MFMA); knobs q_tile, k_tile, warps, gqa_pack, split_kv.
std::unique_ptr<Template> make_hip_attention_flash_template(std::shared_ptr<hip::Runtime> runtime);

}  // namespace tune
