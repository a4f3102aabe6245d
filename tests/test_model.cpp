// Reading Hugging Face config.json files and deriving a layer's GEMMs.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tune/error.hpp"
#include "tune/model.hpp"

using namespace tune;

namespace {
std::string model_path(const char* name) { return std::string(LIBTUNE_SOURCE_DIR) + "/examples/models/" + name; }
}  // namespace

TEST_CASE("Llama-3-8B yields its four layer GEMMs per token count", "[model]") {
    ModelShape m = load_model_config(model_path("llama-3-8b.json"));
    CHECK(m.hidden_size == 4096);
    CHECK(m.num_heads == 32);
    CHECK(m.num_kv_heads == 8);
    CHECK(m.head_dim == 128);
    CHECK(m.intermediate_size == 14336);
    CHECK(m.gated_mlp);
    auto gemms = layer_gemms(m, {1, 512}, DType::f32);
    REQUIRE(gemms.size() == 8);
    auto qkv = gemm_dims(gemms[0].problem);
    CHECK(gemms[0].name == "qkv_proj");
    CHECK((qkv.m == 1 && qkv.n == 6144 && qkv.k == 4096 && qkv.trans_b));
    CHECK(gemms[1].name == "o_proj");
    CHECK(gemm_dims(gemms[1].problem).n == 4096);
    CHECK(gemms[2].name == "mlp_gate_up");
    CHECK(gemm_dims(gemms[2].problem).n == 14336);
    CHECK(gemms[3].name == "mlp_down");
    CHECK(gemm_dims(gemms[3].problem).k == 14336);
    CHECK(gemm_dims(gemms[4].problem).m == 512);

    CHECK(m.swiglu_mlp());
    auto swiglu = layer_swiglu(m, {1, 512}, DType::bf16);
    REQUIRE(swiglu.size() == 2);
    CHECK(swiglu[0].name == "mlp_swiglu");
    CHECK(swiglu[0].problem == make_swiglu(1, 14336, 4096, DType::bf16));
    CHECK(swiglu[1].tokens == 512);
    CHECK(swiglu[1].problem == make_swiglu(512, 14336, 4096, DType::bf16));
    CHECK(layer_swiglu(m, {16, 16}, DType::f32).size() == 1);  // shapes that coincide appear once
    CHECK_THROWS_WITH(layer_swiglu(m, {0}, DType::f32), Catch::Contains("tokens"));
}

TEST_CASE("GPT-2 spellings and defaults are understood", "[model]") {
    ModelShape m = load_model_config(model_path("gpt2.json"));
    CHECK(m.hidden_size == 768);
    CHECK(m.num_heads == 12);
    CHECK(m.num_kv_heads == 12);        // default: MHA
    CHECK(m.head_dim == 64);            // default: hidden / heads
    CHECK(m.intermediate_size == 3072); // default: 4 * hidden
    CHECK_FALSE(m.gated_mlp);
    auto gemms = layer_gemms(m, {16}, DType::f32);
    CHECK(gemms[2].name == "mlp_up");
    CHECK_FALSE(m.swiglu_mlp());
    CHECK(layer_swiglu(m, {16}, DType::f32).empty());
    CHECK(gemm_dims(gemms[0].problem).n == 3 * 768);
}

TEST_CASE("the GEMMs follow the layout a runtime holds the weights in", "[model]") {
    ModelShape gpt2 = load_model_config(model_path("gpt2.json")), llama = load_model_config(model_path("llama-3-8b.json"));
    CHECK(checkpoint_layout(gpt2) == WeightLayout::in_out);  // Conv1D checkpoints: [in, out]
    CHECK(checkpoint_layout(llama) == WeightLayout::out_in);
    auto linear = layer_gemms(gpt2, {1, 16}, DType::f32), conv1d = layer_gemms(gpt2, {1, 16}, DType::f32, WeightLayout::in_out);
    REQUIRE(linear.size() == conv1d.size());
    for (std::size_t i = 0; i < linear.size(); ++i) {
        const GemmDims l = gemm_dims(linear[i].problem), c = gemm_dims(conv1d[i].problem);
        CHECK((l.trans_b && !c.trans_b && !l.trans_a && !c.trans_a));
        CHECK((l.m == c.m && l.n == c.n && l.k == c.k && linear[i].name == conv1d[i].name));
    }
    CHECK(parse_weight_layout(to_string(WeightLayout::in_out)) == WeightLayout::in_out);
    CHECK(parse_weight_layout(to_string(WeightLayout::out_in)) == WeightLayout::out_in);
    CHECK_THROWS_WITH(parse_weight_layout("in_out"), Catch::Contains("expected out-in or in-out, got 'in_out'"));
}

TEST_CASE("every sample model parses", "[model]") {
    for (const char* name : {"bert-base-uncased.json", "gpt2.json", "llama-3-8b.json", "mistral-7b.json", "qwen2-7b.json",
                             "mixtral-8x7b.json", "gemma-2-9b.json", "qwen1.5-moe-a2.7b.json"}) {
        INFO(name);
        ModelShape m = load_model_config(model_path(name));
        CHECK(m.head_dim * m.num_heads > 0);
        CHECK_FALSE(layer_gemms(m, {1, 16}, DType::f32).empty());
        CHECK_FALSE(layer_attention(m, {1, 16}, 64).empty());
        CHECK_FALSE(describe(m).empty());
    }
    CHECK(load_model_config(model_path("mistral-7b.json")).sliding_window == 4096);
    CHECK(load_model_config(model_path("qwen2-7b.json")).head_dim == 128);
}

TEST_CASE("bad config.json contents are named in the error", "[model]") {
    using nlohmann::json;
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"num_attention_heads": 8})")), Catch::Contains("hidden_size"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"hidden_size": "big", "num_attention_heads": 8})")),
                      Catch::Contains("'hidden_size'") && Catch::Contains("integer"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"hidden_size": -4, "num_attention_heads": 8})")),
                      Catch::Contains("'hidden_size'"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"hidden_size": 64, "num_attention_heads": 6, "num_key_value_heads": 4})")),
                      Catch::Contains("num_key_value_heads"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"hidden_size": 100, "num_attention_heads": 7})")),
                      Catch::Contains("head_dim"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"hidden_size": 99999999999, "num_attention_heads": 8})")),
                      Catch::Contains("'hidden_size'"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"hidden_size": 18446744073709551615, "num_attention_heads": 8})")),
                      Catch::Contains("got 18446744073709551615"));
    CHECK_THROWS_AS(parse_model_config(json::parse("[1,2]")), Error);
    CHECK_THROWS_WITH(load_model_config("/nonexistent/config.json"), Catch::Contains("/nonexistent/config.json"));
    // Text after the object (a second object, a stray word) makes the file invalid.
    const auto junk = std::filesystem::temp_directory_path() / ("libtune-junk-config-" + std::to_string(::getpid()) + ".json");
    for (const char* tail : {" garbage", R"( {"hidden_size": 32})"}) {
        std::ofstream(junk) << R"({"hidden_size": 64, "num_attention_heads": 4})" << tail;
        CHECK_THROWS_WITH(load_model_config(junk), Catch::Contains("not valid JSON"));
    }
    std::ofstream(junk) << R"({"hidden_size": 64, "num_attention_heads": 4})" << "\n\n";
    CHECK(load_model_config(junk).hidden_size == 64);  // trailing blank lines are fine
    std::filesystem::remove(junk);
    CHECK_THROWS_WITH(layer_gemms(parse_model_config(json::parse(R"({"hidden_size": 64, "num_attention_heads": 8})")), {0}, DType::f32),
                      Catch::Contains("tokens"));
}

TEST_CASE("a layer's attention problems carry the requested dtype (bf16 for the GPU templates)", "[model]") {
    ModelShape m = load_model_config(model_path("llama-3-8b.json"));
    const auto problems = layer_attention(m, {1, 512}, 8192, DType::bf16);
    REQUIRE(problems.size() == 2);  // prefill at 512 tokens, one decode step
    for (const auto& np : problems) {
        CHECK(np.problem.dtype == DType::bf16);
        CHECK(attention_dims(np.problem).head_dim == 128);
    }
    CHECK(attention_dims(problems[1].problem).kv_len == 8192);
    CHECK(layer_attention(m, {512}, 64).front().problem.dtype == DType::f32);  // the default
}

namespace {
const NamedProblem& named(const std::vector<NamedProblem>& v, const std::string& name, std::int64_t tokens) {
    for (const auto& np : v)
        if (np.name == name && np.tokens == tokens) return np;
    FAIL("no problem named " << name << " at " << tokens << " tokens");
    throw std::logic_error("unreachable");
}
bool has_name(const std::vector<NamedProblem>& v, const std::string& name) {
    for (const auto& np : v)
        if (np.name == name) return true;
    return false;
}
}  // namespace

TEST_CASE("a mixture of experts yields router and expert GEMMs at the rows one expert sees", "[model]") {
    ModelShape m = load_model_config(model_path("mixtral-8x7b.json"));
    CHECK(m.num_experts == 8);
    CHECK(m.experts_per_token == 2);
    CHECK(m.expert_intermediate_size == 14336);  // Mixtral: intermediate_size is one expert's
    CHECK_FALSE(m.dense_mlp_layers);
    CHECK(m.sliding_window == 0);  // "sliding_window": null
    CHECK(m.expert_tokens(1) == 1);
    CHECK(m.expert_tokens(16) == 4);
    CHECK(m.expert_tokens(512) == 128);
    auto gemms = layer_gemms(m, {16, 512}, DType::f32);
    CHECK_FALSE(has_name(gemms, "mlp_gate_up"));  // no dense MLP in any layer
    auto router = gemm_dims(named(gemms, "moe_router", 16).problem);
    CHECK((router.m == 16 && router.n == 8 && router.k == 4096));
    auto up = gemm_dims(named(gemms, "expert_gate_up", 512).problem);
    CHECK((up.m == 128 && up.n == 14336 && up.k == 4096 && up.trans_b));
    auto down = gemm_dims(named(gemms, "expert_down", 16).problem);
    CHECK((down.m == 4 && down.n == 4096 && down.k == 14336));
    auto experts = layer_swiglu(m, {16, 512}, DType::f32);  // one expert's fused MLP, no dense one
    REQUIRE(experts.size() == 2);
    CHECK(experts[0].name == "expert_swiglu");
    CHECK(experts[0].problem == make_swiglu(4, 14336, 4096));
    CHECK(experts[1].problem == make_swiglu(128, 14336, 4096));

    ModelShape q = load_model_config(model_path("qwen1.5-moe-a2.7b.json"));
    CHECK(q.num_experts == 60);
    CHECK(q.expert_intermediate_size == 1408);
    CHECK(q.shared_expert_intermediate_size == 5632);
    CHECK(q.sliding_window == 0);  // use_sliding_window: false
    CHECK(q.expert_tokens(512) == 35);  // ceil(512 * 4 / 60)
    auto qg = layer_gemms(q, {512}, DType::f32);
    CHECK(gemm_dims(named(qg, "expert_gate_up", 512).problem).m == 35);
    CHECK(gemm_dims(named(qg, "shared_expert_gate_up", 512).problem).n == 5632);
    CHECK(gemm_dims(named(qg, "shared_expert_down", 512).problem).m == 512);
    auto qs = layer_swiglu(q, {512}, DType::f32);
    REQUIRE(qs.size() == 2);
    CHECK(named(qs, "expert_swiglu", 512).problem == make_swiglu(35, 1408, 2048));
    CHECK(named(qs, "shared_expert_swiglu", 512).problem == make_swiglu(512, 5632, 2048));

    using nlohmann::json;
    auto moe = [](const char* extra) {
        return parse_model_config(json::parse(std::string(R"({"hidden_size": 64, "num_attention_heads": 4, "hidden_act": "silu",
            "intermediate_size": 128, "num_experts": 8, "moe_intermediate_size": 32)") + extra + "}"));
    };
    CHECK(moe(R"(, "num_experts_per_tok": 2, "first_k_dense_replace": 1)").dense_mlp_layers);  // DeepSeek-MoE
    CHECK(moe(R"(, "num_experts_per_tok": 2, "decoder_sparse_step": 2)").dense_mlp_layers);
    CHECK(moe(R"(, "num_experts_per_tok": 2, "mlp_only_layers": [0, 5])").dense_mlp_layers);
    CHECK(moe(R"(, "num_experts_per_tok": 2, "n_shared_experts": 2)").shared_expert_intermediate_size == 64);
    auto dense_too = layer_gemms(moe(R"(, "num_experts_per_tok": 2, "mlp_only_layers": [0])"), {4}, DType::f32);
    CHECK(gemm_dims(named(dense_too, "mlp_gate_up", 4).problem).n == 128);
    CHECK(gemm_dims(named(dense_too, "expert_gate_up", 4).problem).n == 32);
    CHECK_THROWS_WITH(moe(""), Catch::Contains("num_experts_per_tok"));
    CHECK_THROWS_WITH(moe(R"(, "num_experts_per_tok": 9)"), Catch::Contains("exceeds"));
    CHECK_THROWS_WITH(moe(R"(, "num_experts_per_tok": 2, "mlp_only_layers": 3)"), Catch::Contains("'mlp_only_layers'"));
    CHECK(moe(R"(, "num_experts": 1)").num_experts == 0);  // one expert is a dense MLP
    CHECK(moe(R"(, "num_experts": 0)").num_experts == 0);
    CHECK_THROWS_WITH(moe(R"(, "num_experts": -2)"), Catch::Contains("'num_experts'"));
}

TEST_CASE("Gemma 2: GeGLU, its scale, mixed windowed and full layers, soft-capping named", "[model]") {
    ModelShape m = load_model_config(model_path("gemma-2-9b.json"));
    CHECK(m.gated_mlp);  // gelu_pytorch_tanh, but gated
    CHECK_FALSE(m.swiglu_mlp());  // GeGLU: no fused SwiGLU problem
    CHECK(layer_swiglu(m, {16}, DType::f32).empty());
    CHECK(m.mlp_activation == "gelu_pytorch_tanh");
    CHECK(m.head_dim == 256);
    CHECK(m.attention_scale == Approx(1.0 / 16));
    CHECK(m.sliding_window == 4096);
    CHECK(m.full_attention_layers);
    REQUIRE(m.unmodelled.size() == 1);
    CHECK_THAT(m.unmodelled[0], Catch::Contains("soft-capping"));
    CHECK(gemm_dims(layer_gemms(m, {1}, DType::f32)[0].problem).n == 16 * 256 + 2 * 8 * 256);
    auto attn = layer_attention(m, {512}, 8192);
    REQUIRE(attn.size() == 4);
    CHECK(attention_dims(named(attn, "attention_prefill", 512).problem).window == 0);
    CHECK(attention_dims(named(attn, "attention_prefill_local", 512).problem).window == 4096);
    CHECK(attention_dims(named(attn, "attention_decode", 1).problem).window == 0);
    auto local = attention_dims(named(attn, "attention_decode_local", 1).problem);
    CHECK((local.window == 4096 && local.kv_len == 8192 && local.causal));
    CHECK(local.scale == Approx(1.0 / 16));

    // Mistral: every layer windowed, one variant under the plain names.
    auto mistral = layer_attention(load_model_config(model_path("mistral-7b.json")), {512}, 8192);
    REQUIRE(mistral.size() == 2);
    CHECK(attention_dims(named(mistral, "attention_prefill", 512).problem).window == 4096);
}

TEST_CASE("which layers use a window follows layer_types, use_sliding_window and max_window_layers", "[model]") {
    using nlohmann::json;
    auto parse = [](const char* extra) {
        return parse_model_config(json::parse(std::string(R"({"hidden_size": 64, "num_attention_heads": 4)") + extra + "}"));
    };
    auto all_local = parse(R"(, "sliding_window": 16, "layer_types": ["sliding_attention", "sliding_attention"])");
    CHECK((all_local.sliding_window == 16 && !all_local.full_attention_layers));
    auto mixed = parse(R"(, "sliding_window": 16, "layer_types": ["sliding_attention", "full_attention"])");
    CHECK((mixed.sliding_window == 16 && mixed.full_attention_layers));
    auto none = parse(R"(, "sliding_window": 16, "layer_types": ["full_attention"])");
    CHECK((none.sliding_window == 0 && none.full_attention_layers));
    CHECK(parse(R"(, "sliding_window": 16, "use_sliding_window": false)").sliding_window == 0);
    // Qwen2: layers from max_window_layers on are windowed.
    auto qwen = R"(, "sliding_window": 16, "use_sliding_window": true, "num_hidden_layers": 28, "max_window_layers": )";
    auto q_none = parse((std::string(qwen) + "28").c_str());
    CHECK(q_none.sliding_window == 0);
    auto q_mixed = parse((std::string(qwen) + "20").c_str());
    CHECK((q_mixed.sliding_window == 16 && q_mixed.full_attention_layers));
    auto q_all = parse((std::string(qwen) + "0").c_str());
    CHECK((q_all.sliding_window == 16 && !q_all.full_attention_layers));
    CHECK_THROWS_WITH(parse(R"(, "layer_types": "full_attention")"), Catch::Contains("'layer_types'"));
    CHECK_THROWS_WITH(parse(R"(, "layer_types": ["sliding_attention"])"), Catch::Contains("sliding_window"));
    CHECK_THROWS_WITH(parse(R"(, "use_sliding_window": "yes")"), Catch::Contains("'use_sliding_window'"));
    // A kind this runtime does not model is said, not read as full attention.
    auto other = parse(R"(, "sliding_window": 16, "layer_types": ["sliding_attention", "slidng_attention"])");
    CHECK((other.sliding_window == 16 && !other.full_attention_layers));
    REQUIRE(other.unmodelled.size() == 1);
    CHECK_THAT(other.unmodelled[0], Catch::Contains("'slidng_attention'"));
}

TEST_CASE("encoders attend bidirectionally and never decode", "[model]") {
    ModelShape bert = load_model_config(model_path("bert-base-uncased.json"));
    CHECK((bert.encoder && !bert.decoder));
    auto attn = layer_attention(bert, {1, 128}, 4096);
    REQUIRE(attn.size() == 1);  // no decode step, nothing at one token
    CHECK(attn[0].name == "attention_prefill");
    CHECK_FALSE(attention_dims(attn[0].problem).causal);

    using nlohmann::json;
    // T5: d_model / d_kv / d_ff spellings, a gated FFN, an encoder and a decoder.
    auto t5 = parse_model_config(json::parse(R"({"model_type": "t5", "d_model": 1024, "num_heads": 128, "d_kv": 128,
        "d_ff": 2816, "feed_forward_proj": "gated-gelu", "is_encoder_decoder": true, "relative_attention_num_buckets": 32})"));
    CHECK((t5.encoder && t5.decoder));
    CHECK(t5.head_dim == 128);
    CHECK(t5.intermediate_size == 2816);
    CHECK((t5.gated_mlp && t5.mlp_activation == "gelu"));
    CHECK(t5.unmodelled.size() == 2);  // relative position biases, cross-attention
    CHECK(t5.attention_scale == 1);    // T5 takes Q K^T unscaled
    auto t5_attn = layer_attention(t5, {64}, 512);
    CHECK_FALSE(attention_dims(named(t5_attn, "attention_encoder", 64).problem).causal);
    CHECK(attention_dims(named(t5_attn, "attention_prefill", 64).problem).causal);
    CHECK(has_name(t5_attn, "attention_decode"));
    // A BERT used as a causal LM is a decoder.
    auto causal_bert = parse_model_config(json::parse(R"({"model_type": "bert", "hidden_size": 64, "num_attention_heads": 4, "is_decoder": true})"));
    CHECK((causal_bert.decoder && !causal_bert.encoder));
}

TEST_CASE("families whose configs leave sizes to the model code are derived as the model runs them", "[model]") {
    using nlohmann::json;
    auto parse = [](const char* text) { return parse_model_config(json::parse(text)); };
    // ChatGLM: SwiGLU in the code, no activation key.
    auto glm = parse(R"({"model_type": "chatglm", "hidden_size": 4096, "num_attention_heads": 32, "multi_query_attention": true,
                         "multi_query_group_num": 2, "kv_channels": 128, "ffn_hidden_size": 13696})");
    CHECK((glm.gated_mlp && glm.swiglu_mlp() && glm.intermediate_size == 13696 && glm.num_kv_heads == 2));
    // BART / Whisper: the decoder's head count and FFN width.
    auto bart = parse(R"({"model_type": "bart", "d_model": 768, "encoder_attention_heads": 12, "decoder_attention_heads": 12,
                          "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072, "activation_function": "gelu", "is_encoder_decoder": true})");
    CHECK((bart.num_heads == 12 && bart.head_dim == 64 && bart.intermediate_size == 3072 && bart.decoder && bart.encoder));
    // Gemma 3 leaves out head_dim and query_pre_attn_scalar: 256 each, not hidden / heads.
    auto gemma3 = parse(R"({"model_type": "gemma3_text", "hidden_size": 3840, "num_attention_heads": 16, "num_key_value_heads": 8})");
    CHECK(gemma3.head_dim == 256);
    CHECK(gemma3.attention_scale == Approx(1.0 / 16));
    // RefinedWeb Falcon-40B: n_head_kv.
    CHECK(parse(R"({"model_type": "RefinedWeb", "hidden_size": 8192, "n_head": 128, "n_head_kv": 8})").num_kv_heads == 8);
    // Llama 4: experts of intermediate_size, dense layers of intermediate_size_mlp, one shared
    // expert always on; chunked attention named when layer_types does not say it.
    auto llama4 = parse(R"({"model_type": "llama4_text", "hidden_size": 5120, "num_attention_heads": 40, "num_key_value_heads": 8,
                            "head_dim": 128, "intermediate_size": 8192, "intermediate_size_mlp": 16384, "num_local_experts": 128,
                            "num_experts_per_tok": 1, "interleave_moe_layer_step": 2, "hidden_act": "silu",
                            "attention_chunk_size": 8192})");
    CHECK((llama4.intermediate_size == 16384 && llama4.expert_intermediate_size == 8192 &&
           llama4.shared_expert_intermediate_size == 8192 && llama4.dense_mlp_layers));
    REQUIRE(llama4.unmodelled.size() == 1);
    CHECK_THAT(llama4.unmodelled[0], Catch::Contains("attention_chunk_size"));
    // DBRX's sizes sit in nested objects: refused rather than derived from the top level alone.
    CHECK_THROWS_WITH(parse(R"({"model_type": "dbrx", "d_model": 6144, "n_heads": 48, "attn_config": {"kv_n_heads": 8},
                                "ffn_config": {"moe_num_experts": 16}})"),
                      Catch::Contains("'attn_config'") && Catch::Contains("DBRX"));
}

TEST_CASE("multi-query spellings, nested text configs and unsupported attention", "[model]") {
    using nlohmann::json;
    auto falcon = parse_model_config(json::parse(R"({"model_type": "falcon", "hidden_size": 4544, "num_attention_heads": 71, "multi_query": true})"));
    CHECK(falcon.num_kv_heads == 1);
    CHECK(falcon.head_dim == 64);
    auto falcon40 = parse_model_config(json::parse(R"({"hidden_size": 8192, "num_attention_heads": 128, "num_kv_heads": 8, "new_decoder_architecture": true})"));
    CHECK(falcon40.num_kv_heads == 8);
    auto glm = parse_model_config(json::parse(R"({"hidden_size": 4096, "num_attention_heads": 32, "kv_channels": 128, "ffn_hidden_size": 13696,
        "multi_query_attention": true, "multi_query_group_num": 2})"));
    CHECK((glm.num_kv_heads == 2 && glm.head_dim == 128 && glm.intermediate_size == 13696));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"hidden_size": 64, "num_attention_heads": 4, "multi_query_attention": true})")),
                      Catch::Contains("multi_query_group_num"));

    auto llava = parse_model_config(json::parse(R"({"model_type": "llava", "vision_config": {"hidden_size": 1024},
        "text_config": {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
        "intermediate_size": 14336, "hidden_act": "silu"}})"));
    CHECK(llava.section == "text_config");
    CHECK(llava.weights_dtype.empty());
    CHECK(load_model_config(model_path("llama-3-8b.json")).weights_dtype == "bfloat16");
    CHECK(parse_model_config(json::parse(R"({"torch_dtype": "float16", "text_config": {"hidden_size": 64, "num_attention_heads": 4}})"))
              .weights_dtype == "float16");
    CHECK(llava.model_type == "llama");
    CHECK(llava.num_kv_heads == 8);
    CHECK_THAT(describe(llava), Catch::Contains("text_config"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"model_type": "llava", "text_config": {"hidden_size": 64, "num_attention_heads": "x"}})")),
                      Catch::Contains("'text_config.num_attention_heads'"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"text_config": [1]})")), Catch::Contains("'text_config'"));

    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"model_type": "deepseek_v3", "hidden_size": 7168, "num_attention_heads": 128,
        "kv_lora_rank": 512, "q_lora_rank": 1536})")), Catch::Contains("multi-head latent attention"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"hidden_size": 64, "num_attention_heads": 4, "query_pre_attn_scalar": -1})")),
                      Catch::Contains("'query_pre_attn_scalar'"));
    CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"hidden_size": 64, "num_attention_heads": 4, "hidden_act": 3})")),
                      Catch::Contains("'hidden_act'"));
}
