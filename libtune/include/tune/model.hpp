// Model: reads a Hugging Face config.json and derives the GEMM problems of one transformer
// layer for given token counts (QKV projection, output projection, MLP up/gate, down).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "tune/problem.hpp"

namespace tune {

struct ModelShape {
    std::string model_type;           // "llama", "gpt2", ...; "unknown" when absent
    std::int64_t hidden_size = 0;     // hidden_size | n_embd | d_model
    std::int64_t num_heads = 0;       // num_attention_heads | n_head
    std::int64_t num_kv_heads = 0;    // num_key_value_heads; default num_heads (MHA)
    std::int64_t head_dim = 0;        // head_dim; default hidden_size / num_heads
    std::int64_t intermediate_size = 0;  // intermediate_size | n_inner | ffn_dim; default 4 * hidden
    bool gated_mlp = false;           // SwiGLU-style gate + up (silu activations)
    std::int64_t sliding_window = 0;  // 0 = none
};

// Throws tune::Error naming the key (and the file, for the path overload) when a required
// key is missing, has the wrong type, or the sizes are inconsistent.
ModelShape parse_model_config(const nlohmann::json& config);
ModelShape load_model_config(const std::filesystem::path& path);

struct NamedProblem {
    std::string name;  // "qkv_proj", "o_proj", "mlp_gate_up", "mlp_down", "attention_prefill", ...
    std::int64_t tokens = 0;
    Problem problem;
    std::size_t budget = 0;  // candidates for this problem; 0 = the run's budget
};

// One layer's GEMMs for each token count; weights stored [out, in] (trans_b = 1) as in
// PyTorch. Shapes that coincide (gate and up) appear once.
std::vector<NamedProblem> layer_gemms(const ModelShape& model, const std::vector<std::int64_t>& tokens,
                                      DType dtype);

}  // namespace tune

namespace tune {

// One layer's attention (batch 1, Q/K/V in `dtype`): "attention_prefill" for each token count
// > 1 (q_len = kv_len = tokens, causal, the model's sliding window), and one "attention_decode"
// step (q_len 1 against decode_kv_len cached keys).
std::vector<NamedProblem> layer_attention(const ModelShape& model, const std::vector<std::int64_t>& tokens,
                                          std::int64_t decode_kv_len, DType dtype = DType::f32);

}  // namespace tune
