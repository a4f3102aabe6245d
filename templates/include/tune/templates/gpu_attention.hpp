// GPU attention templates (forward: bf16 / f16 inputs, f32 O and LSE; backward: f32 dQ, dK, dV
// from bf16 / f16 Q, K, V and f32 O, LSE, dO), compiled at run time:
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

// "cuda.attention.wgmma": Hopper (sm_90a) forward for prefill (q_len > 16, head_dim 64 / 128,
// contiguous K/V): TMA producer warpgroup, wgmma consumer warpgroups of 64 query rows, P V
// with P from registers. Knobs k_tile, stages, consumers, p_split.
std::unique_ptr<Template> make_cuda_attention_wgmma_template(std::shared_ptr<cuda::Runtime> runtime);

// "hip.attention.flash": the same algorithm, space vocabulary and split-KV combine on the
// generic path (f32 scalar arithmetic, no MFMA); knobs q_tile, k_tile, warps, gqa_pack, split_kv.
std::unique_ptr<Template> make_hip_attention_flash_template(std::shared_ptr<hip::Runtime> runtime);

// "cuda.attention.flash_backward" / "hip.attention.flash_backward": attention gradients (dim
// backward = 1) in plain f32 scalar arithmetic (no tensor cores): a dK/dV pass per key tile,
// summing over the GQA group without atomics, then a dQ pass per query tile; causal /
// sliding-window tile skipping. Knob mode = recompute (dS recomputed in the dQ pass, no
// workspace) or store (dS kept between the passes, batch x heads x q_len x kv_len floats of
// workspace), plus q_tile, k_tile, warps.
std::unique_ptr<Template> make_cuda_attention_flash_backward_template(std::shared_ptr<cuda::Runtime> runtime);
std::unique_ptr<Template> make_hip_attention_flash_backward_template(std::shared_ptr<hip::Runtime> runtime);

// "cuda.attention.mma_backward": the same gradients, passes, modes and workspace on mma.sync
// (sm_80+, head_dim <= 128): in the dK/dV pass each warp computes S^T, P^T, dP^T and dS^T for
// its keys, so P^T and dS^T feed dV and dK from registers. Knobs mode, q_tile, k_tile, warps,
// split (dO, P and dS also enter as their 16-bit rounding residuals: f32-level accuracy; off
// needs a tolerance that admits one rounding).
std::unique_ptr<Template> make_cuda_attention_mma_backward_template(std::shared_ptr<cuda::Runtime> runtime);

}  // namespace tune
