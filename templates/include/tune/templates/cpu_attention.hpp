// CPU attention templates: the fused (online-softmax) kernel and the unfused GEMM-backed one, so
// the tuner picks per shape and the unfused one is the baseline the fused one is measured against.
#pragma once

#include <memory>

#include "tune/kernel.hpp"

namespace tune {

// "cpu.attention.fused": never materialises the scores; knobs q_tile, k_tile, inner, gqa_pack
// (grouped heads), split_kv and loop_order (decode), threads; f32 or bf16 Q/K/V, a paged KV cache
// read in place. Needs AVX-512F.
std::unique_ptr<Template> make_cpu_attention_fused_template(const DeviceInfo& device);

// "cpu.attention.unfused": per head, S = Q K^T (OpenBLAS sgemm), a masked softmax pass, O = P V
// (sgemm); the q_len x kv_len score matrix is its workspace. Knob threads.
std::unique_ptr<Template> make_cpu_attention_unfused_template(const DeviceInfo& device);

// "cpu.attention.backward": dQ, dK, dV on OpenBLAS sgemm; knob mode = recompute (P per block of
// q_block query rows from Q, K and the saved LSE: O(N) workspace) or store (P and dP of all rows:
// O(N^2)), threads.
std::unique_ptr<Template> make_cpu_attention_backward_template(const DeviceInfo& device);

}  // namespace tune
