#include "tune/model.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

#include "tune/error.hpp"

namespace tune {
namespace {

// Largest value accepted for any model size: far above real models, far below overflow.
constexpr std::int64_t kMaxModelDim = std::int64_t{1} << 24;

// First present key of `names`; 0 when none is present. A present key must be a positive
// integer within range.
std::int64_t read_dim(const nlohmann::json& j, std::initializer_list<const char*> names) {
    for (const char* name : names) {
        if (!j.contains(name) || j[name].is_null()) continue;
        const auto& v = j[name];
        require(v.is_number_integer(), std::string("config.json: '") + name + "' must be an integer, got " +
                                           std::string(v.type_name()));
        auto x = v.get<std::int64_t>();
        require(x >= 1 && x <= kMaxModelDim, std::string("config.json: '") + name + "' must be in [1, " +
                                                 std::to_string(kMaxModelDim) + "], got " + std::to_string(x));
        return x;
    }
    return 0;
}

}  // namespace

ModelShape parse_model_config(const nlohmann::json& j) {
    require(j.is_object(), "config.json: expected a JSON object");
    ModelShape m;
    if (j.contains("model_type") && j["model_type"].is_string()) m.model_type = j["model_type"].get<std::string>();
    if (m.model_type.empty()) m.model_type = "unknown";
    m.hidden_size = read_dim(j, {"hidden_size", "n_embd", "d_model"});
    require(m.hidden_size > 0, "config.json: missing 'hidden_size' (or 'n_embd' / 'd_model')");
    m.num_heads = read_dim(j, {"num_attention_heads", "n_head", "num_heads"});
    require(m.num_heads > 0, "config.json: missing 'num_attention_heads' (or 'n_head')");
    m.num_kv_heads = read_dim(j, {"num_key_value_heads", "n_kv_heads"});
    if (m.num_kv_heads == 0) m.num_kv_heads = m.num_heads;
    require(m.num_heads % m.num_kv_heads == 0, "config.json: 'num_attention_heads' (" + std::to_string(m.num_heads) +
                                                   ") must be a multiple of 'num_key_value_heads' (" +
                                                   std::to_string(m.num_kv_heads) + ")");
    m.head_dim = read_dim(j, {"head_dim"});
    if (m.head_dim == 0) {
        require(m.hidden_size % m.num_heads == 0, "config.json: 'hidden_size' (" + std::to_string(m.hidden_size) +
                                                      ") is not divisible by the head count; give 'head_dim'");
        m.head_dim = m.hidden_size / m.num_heads;
    }
    m.intermediate_size = read_dim(j, {"intermediate_size", "n_inner", "ffn_dim"});
    if (m.intermediate_size == 0) m.intermediate_size = 4 * m.hidden_size;
    std::string act;
    for (const char* key : {"hidden_act", "activation_function"})
        if (j.contains(key) && j[key].is_string()) act = j[key].get<std::string>();
    m.gated_mlp = act == "silu" || act == "swiglu" || act == "swish";
    m.sliding_window = read_dim(j, {"sliding_window"});
    return m;
}

ModelShape load_model_config(const std::filesystem::path& path) {
    std::ifstream in(path);
    require(in.good(), "config.json: cannot open '" + path.string() + "'");
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    require(!ec && size <= (std::uintmax_t{16} << 20), "config.json: '" + path.string() + "' is not a readable file under 16 MiB");
    nlohmann::json j;
    try {
        in >> j;
    } catch (const nlohmann::json::exception& e) {
        throw Error("config.json: '" + path.string() + "' is not valid JSON: " + e.what());
    }
    try {
        return parse_model_config(j);
    } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (in '" + path.string() + "')");
    }
}

std::vector<NamedProblem> layer_gemms(const ModelShape& m, const std::vector<std::int64_t>& tokens, DType dtype) {
    require(!tokens.empty(), "tokens: at least one token count is needed");
    std::vector<NamedProblem> out;
    const std::int64_t q = m.num_heads * m.head_dim, kv = m.num_kv_heads * m.head_dim;
    for (std::int64_t t : tokens) {
        require(t >= 1 && t <= kMaxModelDim, "tokens: each count must be in [1, " + std::to_string(kMaxModelDim) +
                                                 "], got " + std::to_string(t));
        auto add = [&](const char* name, std::int64_t n, std::int64_t k) {
            Problem p = make_gemm(t, n, k, dtype, false, true);
            validate(p);
            for (const auto& e : out)
                if (e.problem == p) return;
            out.push_back({name, t, p});
        };
        add("qkv_proj", q + 2 * kv, m.hidden_size);
        add("o_proj", m.hidden_size, q);
        add(m.gated_mlp ? "mlp_gate_up" : "mlp_up", m.intermediate_size, m.hidden_size);
        add("mlp_down", m.hidden_size, m.intermediate_size);
    }
    return out;
}

std::vector<NamedProblem> layer_attention(const ModelShape& m, const std::vector<std::int64_t>& tokens,
                                          std::int64_t decode_kv_len, DType dtype) {
    require(decode_kv_len >= 1 && decode_kv_len <= kMaxModelDim,
            "kv-len: must be in [1, " + std::to_string(kMaxModelDim) + "], got " + std::to_string(decode_kv_len));
    std::vector<NamedProblem> out;
    auto add = [&](const char* name, std::int64_t t, std::int64_t q_len, std::int64_t kv_len) {
        Problem p = make_attention(1, m.num_heads, m.num_kv_heads, q_len, kv_len, m.head_dim, true, m.sliding_window, dtype);
        validate(p);
        for (const auto& e : out)
            if (e.problem == p) return;
        out.push_back({name, t, p});
    };
    for (std::int64_t t : tokens) {
        require(t >= 1 && t <= kMaxModelDim, "tokens: each count must be in [1, " + std::to_string(kMaxModelDim) +
                                                 "], got " + std::to_string(t));
        if (t > 1) add("attention_prefill", t, t, t);
    }
    add("attention_decode", 1, 1, decode_kv_len);
    return out;
}

}  // namespace tune
