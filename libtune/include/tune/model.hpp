// Model: reads a Hugging Face config.json and derives the problems of one transformer layer for
// given token counts: its GEMMs (QKV and output projections, dense MLP or mixture-of-experts
// projections) and its attention (prefill, decode step, local-window and encoder variants).
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
    std::string section;              // "" or "text_config": where the layer sizes were read (multimodal configs)
    std::int64_t hidden_size = 0;     // hidden_size | n_embd | d_model
    std::int64_t num_heads = 0;       // num_attention_heads | n_head | num_heads | n_heads
    std::int64_t num_kv_heads = 0;    // num_key_value_heads | num_kv_heads | multi_query; default num_heads (MHA)
    std::int64_t head_dim = 0;        // head_dim | d_kv | kv_channels; default hidden_size / num_heads
    std::int64_t intermediate_size = 0;  // dense MLP width; default 4 * hidden
    bool gated_mlp = false;           // gate and up projections (SwiGLU, GeGLU) instead of one up projection
    std::string mlp_activation;       // as the config spells it ("silu", "gelu_new", ...); "" when absent

    // Which attention the layers run. A decoder: causal self-attention and a decode step. An
    // encoder (BERT family, or the encoder half of T5 / BART): bidirectional self-attention.
    bool decoder = true;
    bool encoder = false;
    std::int64_t sliding_window = 0;     // keys per query for the layers with a local window; 0 = none
    bool full_attention_layers = true;   // some layers attend to every key (with a window: Gemma 2/3-style mixes)
    double attention_scale = 0;          // factor on Q K^T; 0 = 1 / sqrt(head_dim)

    // Mixture of experts (num_experts = 0: a dense MLP in every layer).
    std::int64_t num_experts = 0;
    std::int64_t experts_per_token = 0;              // top-k routing
    std::int64_t expert_intermediate_size = 0;       // one expert's MLP width
    std::int64_t shared_expert_intermediate_size = 0;  // always-on shared experts, summed; 0 = none
    bool dense_mlp_layers = true;     // some layers keep the dense MLP of intermediate_size

    // The weights' dtype as the config states it ("bfloat16", "float16", ...; "" when absent).
    std::string weights_dtype;

    // What the derived problems leave out (e.g. attention logit soft-capping): printed for the user.
    std::vector<std::string> unmodelled;

    // Rows one expert's GEMMs see at `tokens` tokens under balanced routing: ceil(tokens * k / E).
    std::int64_t expert_tokens(std::int64_t tokens) const;
    // The MLP is gated with silu (SwiGLU): out = silu(x W_gate^T) * (x W_up^T), then W_down.
    bool swiglu_mlp() const;
};

// Throws tune::Error naming the key (and the file, for the path overload) when a required
// key is missing, has the wrong type, or the sizes are inconsistent, and for architectures
// whose layers are not the projections derived here (multi-head latent attention).
ModelShape parse_model_config(const nlohmann::json& config);
ModelShape load_model_config(const std::filesystem::path& path);

// One line: "llama hidden 4096, heads 32/8, head_dim 128, mlp 14336 (gated), ...".
std::string describe(const ModelShape& model);

struct NamedProblem {
    std::string name;  // "qkv_proj", "o_proj", "mlp_gate_up", "expert_down", "attention_prefill", ...
    std::int64_t tokens = 0;
    Problem problem;
    std::size_t budget = 0;  // candidates for this problem; 0 = the run's budget
};

// How a runtime holds the projection weights: [out, in] as PyTorch's nn.Linear stores them
// (y = x W^T, trans_b = 1), or [in, out] as GPT-2's Conv1D checkpoints do (y = x W, trans_b = 0).
// The GEMM problems, and so the keys a runtime looks up, follow the layout.
enum class WeightLayout { out_in, in_out };
WeightLayout parse_weight_layout(const std::string& text);  // "out-in" | "in-out"; else throws
const char* to_string(WeightLayout layout);
// How the model type's checkpoints store them: in_out for GPT-2's Conv1D family (gpt2,
// openai-gpt, imagegpt), out_in otherwise.
WeightLayout checkpoint_layout(const ModelShape& model);

// One layer's GEMMs for each token count, weights held in `layout`. Dense models: qkv_proj, o_proj, mlp_gate_up (mlp_up when not gated), mlp_down.
// Mixture of experts: moe_router (tokens x experts), expert_gate_up / expert_down at
// expert_tokens(t) rows, shared_expert_gate_up / _down when the model has shared experts, and
// the dense MLP only when some layers keep it. Shapes that coincide appear once.
std::vector<NamedProblem> layer_gemms(const ModelShape& model, const std::vector<std::int64_t>& tokens,
                                      DType dtype, WeightLayout layout = WeightLayout::out_in);

// One layer's gated MLPs as fused SwiGLU problems (make_swiglu: x tokens x hidden, both weights
// width x hidden), for models whose MLP is SwiGLU (none otherwise): "mlp_swiglu", and for a
// mixture of experts "expert_swiglu" at expert_tokens(t) rows and "shared_expert_swiglu", named
// as layer_gemms names the gate/up GEMM each replaces. Shapes that coincide appear once.
std::vector<NamedProblem> layer_swiglu(const ModelShape& model, const std::vector<std::int64_t>& tokens,
                                       DType dtype);

// One layer's attention (batch 1, Q/K/V in `dtype`, the model's scale). A decoder gets
// "attention_prefill" for each token count > 1 (q_len = kv_len = tokens, causal) and one
// "attention_decode" step (q_len 1 against decode_kv_len cached keys), with the model's window;
// a model mixing windowed and full layers gets both, the windowed ones named "..._local". An
// encoder gets "attention_prefill" without a mask ("attention_encoder" in an encoder-decoder).
std::vector<NamedProblem> layer_attention(const ModelShape& model, const std::vector<std::int64_t>& tokens,
                                          std::int64_t decode_kv_len, DType dtype = DType::f32);

}  // namespace tune
