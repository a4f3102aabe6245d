#include "tune/model.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>

#include "tune/error.hpp"

namespace tune {
namespace {

// Largest value accepted for any model size: far above real models, far below overflow.
constexpr std::int64_t kMaxModelDim = std::int64_t{1} << 24;

// Hugging Face leaves out keys equal to the model class's defaults (often in a text_config).
constexpr const char* kOmittedDefaults =
    "; configs may omit values equal to the model's defaults: add the key with the model's value";

// Families whose layers attend bidirectionally and never decode (is_decoder: true overrides).
constexpr std::array<std::string_view, 18> kEncoderTypes{
    "bert",      "roberta", "xlm-roberta", "distilbert", "albert",     "electra",  "deberta", "deberta-v2", "camembert",
    "mpnet",     "ernie",   "nomic_bert",  "modernbert", "xlm",        "vit",      "dinov2",  "clip_vision_model",
    "siglip_vision_model"};

// Families with a gated MLP whose activation is not silu (GeGLU).
constexpr std::array<std::string_view, 4> kGatedGeluTypes{"gemma", "gemma2", "gemma3", "gemma3_text"};

// Families whose MLP is SwiGLU in the model code, with no activation key in the config.
constexpr std::array<std::string_view, 1> kSwigluTypes{"chatglm"};

// Families whose config may leave out head_dim (and, for Gemma 2/3, query_pre_attn_scalar):
// the model class's default of 256 for both, not hidden / heads.
constexpr std::array<std::string_view, 4> kGemmaTypes{"gemma", "gemma2", "gemma3", "gemma3_text"};

// Families whose attention takes Q K^T unscaled (T5's initialisation folds the factor in).
constexpr std::array<std::string_view, 4> kUnscaledTypes{"t5", "mt5", "umt5", "longt5"};

// Families that alternate windowed and full-attention layers without saying so per layer.
constexpr std::array<std::string_view, 4> kMixedWindowTypes{"gemma2", "gemma3", "gemma3_text", "cohere2"};

template <std::size_t N>
bool in(const std::array<std::string_view, N>& set, const std::string& s) {
    return std::find(set.begin(), set.end(), s) != set.end();
}

// Reads keys of one JSON object; `scope` ("" or "text_config.") prefixes the names in errors.
class Reader {
public:
    Reader(const nlohmann::json& j, std::string scope) : j_(j), scope_(std::move(scope)) {}

    bool has(const char* name) const { return j_.contains(name) && !j_[name].is_null(); }
    const nlohmann::json& at(const char* name) const { return j_[name]; }
    std::string name(const char* key) const { return scope_ + key; }
    std::string quoted(const char* key) const { return "config.json: '" + name(key) + "'"; }

    // First present key of `names` as an integer in [lo, hi]; nullopt when none is present.
    std::optional<std::int64_t> integer(std::initializer_list<const char*> names, std::int64_t lo = 1,
                                        std::int64_t hi = kMaxModelDim) const {
        for (const char* name : names) {
            if (!has(name)) continue;
            const auto& v = j_[name];
            require(v.is_number_integer(), quoted(name) + " must be an integer, got " + std::string(v.type_name()));
            const auto x = v.get<std::int64_t>();
            require(x >= lo && x <= hi && !(v.is_number_unsigned() && x < 0),  // above INT64_MAX reads negative
                    quoted(name) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump());
            return x;
        }
        return std::nullopt;
    }
    std::int64_t dim(std::initializer_list<const char*> names) const { return integer(names).value_or(0); }

    std::optional<bool> boolean(const char* name) const {
        if (!has(name)) return std::nullopt;
        require(at(name).is_boolean(), quoted(name) + " must be true or false, got " + std::string(at(name).type_name()));
        return at(name).get<bool>();
    }

    // A finite number > 0 (integers included); nullopt when absent.
    std::optional<double> positive(const char* name) const {
        if (!has(name)) return std::nullopt;
        const auto& v = at(name);
        require(v.is_number(), quoted(name) + " must be a number, got " + std::string(v.type_name()));
        const double x = v.get<double>();
        require(std::isfinite(x) && x > 0, quoted(name) + " must be a finite number > 0");
        return x;
    }

    std::string string(std::initializer_list<const char*> names) const {
        for (const char* name : names)
            if (has(name)) {
                require(at(name).is_string(), quoted(name) + " must be a string, got " + std::string(at(name).type_name()));
                return at(name).get<std::string>();
            }
        return {};
    }

private:
    const nlohmann::json& j_;
    std::string scope_;
};

bool has_any(const nlohmann::json& j, std::initializer_list<const char*> names) {
    return std::any_of(names.begin(), names.end(), [&](const char* n) { return j.contains(n) && !j[n].is_null(); });
}

void read_attention_layout(const Reader& r, ModelShape& m) {
    require(!r.has("kv_lora_rank"), r.quoted("kv_lora_rank") +
                                        ": multi-head latent attention (DeepSeek-V2/V3 style) is not supported; its "
                                        "low-rank projections are not the q/k/v GEMMs and attention derived here");
    // DBRX keeps its sizes in nested objects, which this reader does not take apart: refused,
    // not derived from the top-level keys alone.
    for (const char* nested : {"attn_config", "ffn_config"})
        require(!(r.has(nested) && r.at(nested).is_object()),
                r.quoted(nested) + ": nested attention/MLP configs (DBRX style) are not read; the layer would be "
                                   "derived wrongly");
    // BART, Whisper, Marian, Pegasus: the decoder's counts (its self-attention is what decodes).
    m.num_heads = r.dim({"num_attention_heads", "n_head", "num_heads", "n_heads", "decoder_attention_heads"});
    require(m.num_heads > 0, "config.json: missing '" + r.name("num_attention_heads") + "' (or 'n_head')" + kOmittedDefaults);
    m.num_kv_heads = r.dim({"num_key_value_heads", "n_kv_heads", "num_kv_heads", "n_head_kv"});  // n_head_kv: RW Falcon
    if (m.num_kv_heads == 0 && r.boolean("multi_query_attention").value_or(false)) {  // ChatGLM
        m.num_kv_heads = r.dim({"multi_query_group_num"});
        require(m.num_kv_heads > 0, r.quoted("multi_query_group_num") + " is needed with multi_query_attention");
    }
    if (m.num_kv_heads == 0 && r.boolean("multi_query").value_or(false)) m.num_kv_heads = 1;  // Falcon-7B, StarCoder
    if (m.num_kv_heads == 0) m.num_kv_heads = m.num_heads;
    require(m.num_heads % m.num_kv_heads == 0, "config.json: 'num_attention_heads' (" + std::to_string(m.num_heads) +
                                                   ") must be a multiple of 'num_key_value_heads' (" +
                                                   std::to_string(m.num_kv_heads) + ")");
    m.head_dim = r.dim({"head_dim", "d_kv", "kv_channels"});
    if (m.head_dim == 0 && in(kGemmaTypes, m.model_type)) m.head_dim = 256;
    if (m.head_dim == 0) {
        require(m.hidden_size % m.num_heads == 0, "config.json: 'hidden_size' (" + std::to_string(m.hidden_size) +
                                                      ") is not divisible by the head count; give 'head_dim'");
        m.head_dim = m.hidden_size / m.num_heads;
    }
    if (in(kUnscaledTypes, m.model_type)) m.attention_scale = 1;
    if (const auto s = r.positive("query_pre_attn_scalar")) m.attention_scale = 1 / std::sqrt(*s);  // Gemma 2/3
    else if (m.model_type != "gemma" && in(kGemmaTypes, m.model_type)) m.attention_scale = 1 / std::sqrt(256.0);
    if (const auto s = r.positive("attention_multiplier")) m.attention_scale = *s;                  // Granite

    if (const auto d = r.boolean("is_decoder")) {
        m.decoder = *d || !in(kEncoderTypes, m.model_type);
    } else {
        m.decoder = !in(kEncoderTypes, m.model_type);
    }
    m.encoder = !m.decoder || r.boolean("is_encoder_decoder").value_or(false);
}

// Which layers use a local window: Mistral-style (all), Gemma 2/3 and layer_types (a mix),
// Qwen2-style use_sliding_window / max_window_layers (none, all or a mix).
void read_window(const Reader& r, ModelShape& m) {
    m.sliding_window = r.integer({"sliding_window"}, 0).value_or(0);
    if (!r.boolean("use_sliding_window").value_or(true)) m.sliding_window = 0;
    bool windowed = m.sliding_window > 0, full = !windowed;
    if (r.has("layer_types")) {
        const auto& types = r.at("layer_types");
        require(types.is_array(), r.quoted("layer_types") + " must be an array of strings");
        windowed = full = false;
        std::set<std::string> other;
        for (const auto& t : types) {
            require(t.is_string(), r.quoted("layer_types") + " must be an array of strings");
            const std::string type = t.get<std::string>();
            if (type == "sliding_attention") windowed = true;
            else if (type == "full_attention") full = true;
            else other.insert(type);
        }
        // Other kinds (linear attention, chunked attention, ...) are not tuned as attention:
        // said, not read as full attention.
        for (const std::string& type : other)
            m.unmodelled.push_back("layers of type '" + type + "' (layer_types)");
        require(!windowed || m.sliding_window > 0,
                r.quoted("layer_types") + " names sliding_attention layers but 'sliding_window' is not set");
    } else if (windowed && (in(kMixedWindowTypes, m.model_type) || r.has("sliding_window_pattern"))) {
        full = true;
    } else if (windowed && r.boolean("use_sliding_window").value_or(false) && r.has("max_window_layers")) {
        // Layers from max_window_layers on use the window (Qwen2).
        const std::int64_t first = *r.integer({"max_window_layers"}, 0);
        const std::int64_t layers = r.integer({"num_hidden_layers"}).value_or(kMaxModelDim);
        windowed = first < layers;
        full = first > 0;
    }
    if (!windowed) m.sliding_window = 0;
    m.full_attention_layers = full;
}

void read_mlp(const Reader& r, ModelShape& m) {
    m.intermediate_size =
        r.dim({"intermediate_size_mlp", "intermediate_size", "n_inner", "ffn_dim", "d_ff", "ffn_hidden_size", "decoder_ffn_dim"});
    if (m.intermediate_size == 0) m.intermediate_size = 4 * m.hidden_size;
    std::string act = r.string({"hidden_act", "hidden_activation", "activation_function"});
    const std::string ff = r.string({"feed_forward_proj"});  // T5: "relu", "gated-gelu"
    bool gated_ff = false;
    if (!ff.empty()) {
        gated_ff = ff.rfind("gated-", 0) == 0;
        if (act.empty()) act = gated_ff ? ff.substr(6) : ff;
    }
    m.mlp_activation = act;
    if (act.empty() && in(kSwigluTypes, m.model_type)) m.mlp_activation = act = "silu";
    m.gated_mlp = act == "silu" || act == "swiglu" || act == "swish" || act == "geglu" || gated_ff ||
                  in(kGatedGeluTypes, m.model_type) || in(kSwigluTypes, m.model_type);

    // 0 or 1 expert (some dense configs carry the key): a dense MLP.
    m.num_experts = r.integer({"num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"}, 0).value_or(0);
    if (m.num_experts <= 1) {
        m.num_experts = 0;
        return;
    }
    m.experts_per_token = r.dim({"num_experts_per_tok", "num_experts_per_token", "moe_top_k"});
    require(m.experts_per_token > 0, "config.json: a mixture of experts needs 'num_experts_per_tok'");
    require(m.experts_per_token <= m.num_experts, "config.json: 'num_experts_per_tok' (" +
                                                      std::to_string(m.experts_per_token) + ") exceeds the " +
                                                      std::to_string(m.num_experts) + " experts");
    m.expert_intermediate_size = r.integer({"moe_intermediate_size", "expert_intermediate_size"}, 0).value_or(0);
    // Llama 4: intermediate_size is an expert's width (intermediate_size_mlp the dense layers').
    if (m.expert_intermediate_size == 0 && r.has("intermediate_size_mlp"))
        m.expert_intermediate_size = r.dim({"intermediate_size"});
    if (m.expert_intermediate_size == 0) m.expert_intermediate_size = m.intermediate_size;  // Mixtral
    m.shared_expert_intermediate_size = r.dim({"shared_expert_intermediate_size"});
    if (m.shared_expert_intermediate_size == 0)
        m.shared_expert_intermediate_size = r.integer({"n_shared_experts", "num_shared_experts"}, 0).value_or(0) *
                                            m.expert_intermediate_size;
    // Llama 4's MoE layers always run one shared expert of an expert's width.
    if (m.shared_expert_intermediate_size == 0 && (m.model_type == "llama4" || m.model_type == "llama4_text"))
        m.shared_expert_intermediate_size = m.expert_intermediate_size;
    // Dense layers beside the sparse ones: DeepSeek's first layers, Qwen-MoE's mlp_only_layers and
    // sparse steps, Llama 4's and Jamba's interleaving.
    bool dense = r.integer({"first_k_dense_replace"}, 0).value_or(0) > 0 ||
                 r.integer({"decoder_sparse_step", "moe_layer_freq", "interleave_moe_layer_step", "expert_layer_period"},
                           0)
                         .value_or(1) > 1;
    if (r.has("mlp_only_layers")) {
        require(r.at("mlp_only_layers").is_array(), r.quoted("mlp_only_layers") + " must be an array");
        dense = dense || !r.at("mlp_only_layers").empty();
    }
    m.dense_mlp_layers = dense;
}

void read_unmodelled(const Reader& r, ModelShape& m) {
    if (r.has("attn_logit_softcapping")) m.unmodelled.push_back("attention logit soft-capping (attn_logit_softcapping)");
    if (r.boolean("alibi").value_or(false) || m.model_type == "bloom" || m.model_type == "mpt")
        m.unmodelled.push_back("ALiBi position biases");
    if (r.has("relative_attention_num_buckets")) m.unmodelled.push_back("relative position biases");
    if (r.has("attention_chunk_size") && !r.has("layer_types"))
        m.unmodelled.push_back("chunked local attention on some layers (attention_chunk_size)");
    if (m.encoder && m.decoder) m.unmodelled.push_back("the decoder's cross-attention over the encoder output");
}

}  // namespace

std::int64_t ModelShape::expert_tokens(std::int64_t tokens) const {
    if (num_experts == 0) return tokens;
    return std::max<std::int64_t>(1, (tokens * experts_per_token + num_experts - 1) / num_experts);
}

bool ModelShape::swiglu_mlp() const {
    return gated_mlp && (mlp_activation == "silu" || mlp_activation == "swiglu" || mlp_activation == "swish");
}

ModelShape parse_model_config(const nlohmann::json& top) {
    require(top.is_object(), "config.json: expected a JSON object");
    const std::initializer_list<const char*> hidden_keys{"hidden_size", "n_embd", "d_model"};
    const nlohmann::json* j = &top;
    ModelShape m;
    // Multimodal configs (LLaVA, Gemma 3, Mistral 3, ...) keep the language model in text_config.
    if (!has_any(top, hidden_keys) && top.contains("text_config")) {
        require(top["text_config"].is_object(), "config.json: 'text_config' must be an object");
        j = &top["text_config"];
        m.section = "text_config";
    }
    const Reader r(*j, m.section.empty() ? "" : m.section + ".");
    m.model_type = r.string({"model_type"});
    if (m.model_type.empty() && top.contains("model_type") && top["model_type"].is_string())
        m.model_type = top["model_type"].get<std::string>();
    if (m.model_type.empty()) m.model_type = "unknown";
    m.hidden_size = r.dim(hidden_keys);
    require(m.hidden_size > 0,
            "config.json: missing '" + r.name("hidden_size") + "' (or 'n_embd' / 'd_model')" + kOmittedDefaults);
    read_attention_layout(r, m);
    read_window(r, m);
    read_mlp(r, m);
    read_unmodelled(r, m);
    // torch_dtype (or the newer "dtype") may sit beside text_config rather than in it.
    m.weights_dtype = r.string({"torch_dtype", "dtype"});
    if (m.weights_dtype.empty()) m.weights_dtype = Reader(top, "").string({"torch_dtype", "dtype"});
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
        j = nlohmann::json::parse(in);  // the whole file: text after the object is an error too
    } catch (const nlohmann::json::exception& e) {
        throw Error("config.json: '" + path.string() + "' is not valid JSON: " + e.what());
    }
    try {
        return parse_model_config(j);
    } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (in '" + path.string() + "')");
    }
}

std::string describe(const ModelShape& m) {
    std::string s = m.model_type + (m.section.empty() ? "" : " (" + m.section + ")") + " hidden " +
                    std::to_string(m.hidden_size) + ", heads " + std::to_string(m.num_heads) + "/" +
                    std::to_string(m.num_kv_heads) + ", head_dim " + std::to_string(m.head_dim);
    if (m.num_experts == 0 || m.dense_mlp_layers)
        s += ", mlp " + std::to_string(m.intermediate_size) + (m.gated_mlp ? " (gated)" : "");
    if (m.num_experts > 0) {
        s += ", " + std::to_string(m.num_experts) + " experts (top " + std::to_string(m.experts_per_token) + ", " +
             std::to_string(m.expert_intermediate_size) + (m.gated_mlp ? " gated" : "") + " each";
        if (m.shared_expert_intermediate_size > 0) s += ", shared " + std::to_string(m.shared_expert_intermediate_size);
        s += ")";
    }
    if (m.sliding_window > 0)
        s += ", window " + std::to_string(m.sliding_window) + (m.full_attention_layers ? " on some layers" : "");
    if (m.encoder) s += m.decoder ? ", encoder-decoder" : ", encoder";
    return s;
}

WeightLayout parse_weight_layout(const std::string& text) {
    if (text == "out-in") return WeightLayout::out_in;
    if (text == "in-out") return WeightLayout::in_out;
    throw Error("weight layout: expected out-in or in-out, got '" + text + "'");
}

const char* to_string(WeightLayout layout) { return layout == WeightLayout::in_out ? "in-out" : "out-in"; }

WeightLayout checkpoint_layout(const ModelShape& m) {
    for (const char* conv1d : {"gpt2", "openai-gpt", "imagegpt"})
        if (m.model_type == conv1d) return WeightLayout::in_out;
    return WeightLayout::out_in;
}

std::vector<NamedProblem> layer_gemms(const ModelShape& m, const std::vector<std::int64_t>& tokens, DType dtype,
                                      WeightLayout layout) {
    require(!tokens.empty(), "tokens: at least one token count is needed");
    std::vector<NamedProblem> out;
    const std::int64_t q = m.num_heads * m.head_dim, kv = m.num_kv_heads * m.head_dim;
    for (std::int64_t t : tokens) {
        require(t >= 1 && t <= kMaxModelDim, "tokens: each count must be in [1, " + std::to_string(kMaxModelDim) +
                                                 "], got " + std::to_string(t));
        auto add = [&](const std::string& name, std::int64_t rows, std::int64_t n, std::int64_t k) {
            Problem p = make_gemm(rows, n, k, dtype, false, layout == WeightLayout::out_in);
            validate(p);
            for (const auto& e : out)
                if (e.problem == p) return;
            out.push_back({name, t, p});
        };
        auto mlp = [&](const std::string& prefix, std::int64_t rows, std::int64_t width) {
            add(prefix + (m.gated_mlp ? "_gate_up" : "_up"), rows, width, m.hidden_size);
            add(prefix + "_down", rows, m.hidden_size, width);
        };
        add("qkv_proj", t, q + 2 * kv, m.hidden_size);
        add("o_proj", t, m.hidden_size, q);
        if (m.num_experts == 0 || m.dense_mlp_layers) mlp("mlp", t, m.intermediate_size);
        if (m.num_experts > 0) {
            add("moe_router", t, m.num_experts, m.hidden_size);
            mlp("expert", m.expert_tokens(t), m.expert_intermediate_size);
            if (m.shared_expert_intermediate_size > 0) mlp("shared_expert", t, m.shared_expert_intermediate_size);
        }
    }
    return out;
}

std::vector<NamedProblem> layer_swiglu(const ModelShape& m, const std::vector<std::int64_t>& tokens, DType dtype) {
    require(!tokens.empty(), "tokens: at least one token count is needed");
    std::vector<NamedProblem> out;
    if (!m.swiglu_mlp()) return out;
    for (std::int64_t t : tokens) {
        require(t >= 1 && t <= kMaxModelDim, "tokens: each count must be in [1, " + std::to_string(kMaxModelDim) +
                                                 "], got " + std::to_string(t));
        auto add = [&](const std::string& name, std::int64_t rows, std::int64_t width) {
            Problem p = make_swiglu(rows, width, m.hidden_size, dtype);
            validate(p);
            for (const auto& e : out)
                if (e.problem == p) return;
            out.push_back({name, t, p});
        };
        if (m.num_experts == 0 || m.dense_mlp_layers) add("mlp_swiglu", t, m.intermediate_size);
        if (m.num_experts > 0) {
            add("expert_swiglu", m.expert_tokens(t), m.expert_intermediate_size);
            if (m.shared_expert_intermediate_size > 0) add("shared_expert_swiglu", t, m.shared_expert_intermediate_size);
        }
    }
    return out;
}

std::vector<NamedProblem> layer_attention(const ModelShape& m, const std::vector<std::int64_t>& tokens,
                                          std::int64_t decode_kv_len, DType dtype) {
    require(decode_kv_len >= 1 && decode_kv_len <= kMaxModelDim,
            "kv-len: must be in [1, " + std::to_string(kMaxModelDim) + "], got " + std::to_string(decode_kv_len));
    std::vector<NamedProblem> out;
    auto add = [&](const std::string& name, std::int64_t t, std::int64_t q_len, std::int64_t kv_len, bool causal,
                   std::int64_t window) {
        Problem p = make_attention(1, m.num_heads, m.num_kv_heads, q_len, kv_len, m.head_dim, causal, window, dtype);
        if (m.attention_scale > 0) p = with_scale(p, m.attention_scale);
        validate(p);
        for (const auto& e : out)
            if (e.problem == p) return;
        out.push_back({name, t, p});
    };
    // The decoder's self-attention variants: full layers, windowed layers, or both.
    const bool local = m.sliding_window > 0, mixed = local && m.full_attention_layers;
    auto decoder = [&](const char* name, std::int64_t t, std::int64_t q_len, std::int64_t kv_len) {
        if (m.full_attention_layers || !local) add(name, t, q_len, kv_len, true, 0);
        if (local) add(std::string(name) + (mixed ? "_local" : ""), t, q_len, kv_len, true, m.sliding_window);
    };
    for (std::int64_t t : tokens) {
        require(t >= 1 && t <= kMaxModelDim, "tokens: each count must be in [1, " + std::to_string(kMaxModelDim) +
                                                 "], got " + std::to_string(t));
        if (t == 1) continue;
        if (m.encoder) add(m.decoder ? "attention_encoder" : "attention_prefill", t, t, t, false, 0);
        if (m.decoder) decoder("attention_prefill", t, t, t);
    }
    if (m.decoder) decoder("attention_decode", 1, 1, decode_kv_len);
    return out;
}

}  // namespace tune
