// Reading Hugging Face config.json files and deriving a layer's GEMMs.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

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
    CHECK(gemm_dims(gemms[0].problem).n == 3 * 768);
}

TEST_CASE("every sample model parses", "[model]") {
    for (const char* name : {"bert-base-uncased.json", "gpt2.json", "llama-3-8b.json", "mistral-7b.json", "qwen2-7b.json"}) {
        INFO(name);
        ModelShape m = load_model_config(model_path(name));
        CHECK(m.head_dim * m.num_heads > 0);
        CHECK_FALSE(layer_gemms(m, {1, 16}, DType::f32).empty());
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
    CHECK_THROWS_AS(parse_model_config(json::parse("[1,2]")), Error);
    CHECK_THROWS_WITH(load_model_config("/nonexistent/config.json"), Catch::Contains("/nonexistent/config.json"));
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
