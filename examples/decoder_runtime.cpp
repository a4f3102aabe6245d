// Reference runtime: one transformer decoder layer of a Hugging Face config.json with random
// weights (RMSNorm, QKV projection, attention with GQA and a KV cache, output projection,
// SwiGLU MLP), running a prefill and then token-by-token decode. Every GEMM, SwiGLU and attention
// call goes through one of three back ends, run side by side in the same process on the same
// weights and inputs:
//   tuned     the Dispatcher on the tuned store
//   defaults  the Dispatcher with no store (each template's default config)
//   openblas  OpenBLAS GEMMs (libtune's cpu.gemm.openblas template, all cores), the MLP as two
//             GEMMs and an elementwise pass; attention as in defaults, so the two differ only in
//             their GEMMs
// --dtype bf16 keeps the weights and the KV cache in bf16 and rounds each projection's input to
// bf16 (f32 accumulation, f32 outputs, f32 norms and residual stream); the library back end is
// then oneDNN (bf16 GEMMs), as OpenBLAS has none.
// The Dispatcher back ends run the MLP's gate and up projections as one fused SwiGLU problem
// (--mlp swiglu) or as two GEMMs and an elementwise pass (--mlp gemms); --mlp auto (the default)
// picks per token count from the store: the fused problem unless both forms are tuned and the
// two GEMMs measured faster (the GEMM's tuned pick may be a library kernel the fused template
// cannot use).
// The KV cache is head-major ([kv_head][position][head_dim]), so attention runs once per KV head
// (batch 1, the group's query heads, one KV head) on the cache in place; only the step's query
// rows are regrouped head-major.
// No RoPE and no LM head: the layer's output at the last position is fed back as the next
// input, which keeps decode deterministic.
//
//   decoder_runtime CONFIG.json TUNED.db [--prompt 64] [--decode 32] [--reps 3] [--mlp auto|swiglu|gemms]
//                   [--dtype f32|bf16]
// Tune the store first for the two token counts it uses (GEMMs, SwiGLU and attention):
//   tune model CONFIG.json --tokens 1,64 [--dtype bf16] --db TUNED.db
#include <tune/bf16.hpp>
#include <tune/dispatcher.hpp>
#include <tune/error.hpp>
#include <tune/model.hpp>
#include <tune/openblas_env.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

using tune::Problem;

float silu(float g) { return g / (1 + std::exp(-g)); }

// The bf16 operands of a bf16 run: weights once, projection inputs and KV rows every step.
void round_to_bf16(const float* src, std::size_t n, tune::bf16* dst) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = tune::to_bf16(src[i]);
}

// Runs C[m x n] = A[m x k] W[n x k]^T, the SwiGLU MLP's first half and attention (outputs O
// and LSE) for one back end. Inputs are in the problem's dtype (f32 or bf16); outputs f32.
class GemmBackend {
public:
    virtual ~GemmBackend() = default;
    virtual void gemm(const Problem& p, const void* a, const void* w, float* c) = 0;
    virtual void attention(const Problem& p, const void* q, const void* k, const void* v, float* o, float* lse) = 0;
    // out[m x n] = silu(x W_gate^T) * (x W_up^T) for p = make_swiglu(m, n, k). Here: two GEMMs
    // and an elementwise pass, as a runtime without a fused kernel runs it.
    virtual void swiglu(const Problem& p, const void* x, const void* w_gate, const void* w_up, float* out) {
        const std::int64_t m = p.dims[0], n = p.dims[1], k = p.dims[2];
        const Problem g = tune::make_gemm(m, n, k, p.dtype, false, true);
        up_.resize(std::size_t(m * n));
        gemm(g, x, w_gate, out);
        gemm(g, x, w_up, up_.data());
        for (std::size_t i = 0; i < up_.size(); ++i) out[i] = silu(out[i]) * up_[i];
    }

private:
    std::vector<float> up_;
};

void run_attention(const tune::Dispatcher& d, const Problem& p, const void* q, const void* k, const void* v, float* o,
                   float* lse) {
    const void* in[] = {q, k, v};
    void* out[] = {o, lse};
    d.run(p, {in, out});
}

enum class MlpForm { auto_pick, swiglu, gemms };

// --mlp auto: the fused problem, unless the store holds both forms for this shape and two of
// the gate/up GEMM took less time than the fused problem.
bool fused_mlp(const tune::Dispatcher& d, MlpForm form, const Problem& swiglu) {
    if (form != MlpForm::auto_pick) return form == MlpForm::swiglu;
    const auto fused = d.lookup(swiglu);
    const auto gemm = d.lookup(tune::make_gemm(swiglu.dims[0], swiglu.dims[1], swiglu.dims[2], swiglu.dtype, false, true));
    const auto exact = tune::LookupSource::exact;
    return !(fused.source == exact && gemm.source == exact && 2 * gemm.tuned_median_s < fused.tuned_median_s);
}

class DispatchBackend final : public GemmBackend {
public:
    DispatchBackend(const tune::Dispatcher& d, MlpForm form) : d_(d), form_(form) {}
    void gemm(const Problem& p, const void* a, const void* w, float* c) override {
        const void* in[] = {a, w};
        void* out[] = {c};
        d_.run(p, {in, out});
    }
    void attention(const Problem& p, const void* q, const void* k, const void* v, float* o, float* lse) override {
        run_attention(d_, p, q, k, v, o, lse);
    }
    void swiglu(const Problem& p, const void* x, const void* w_gate, const void* w_up, float* out) override {
        auto [it, added] = fused_.try_emplace(p.dims[0], false);
        if (added) it->second = fused_mlp(d_, form_, p);  // decided once per token count
        if (!it->second) return GemmBackend::swiglu(p, x, w_gate, w_up, out);
        const void* in[] = {x, w_gate, w_up};
        void* outs[] = {out};
        d_.run(p, {in, outs});
    }

private:
    const tune::Dispatcher& d_;
    MlpForm form_;
    std::map<std::int64_t, bool> fused_;  // by token count
};

// One GEMM template at its default config (for OpenBLAS and oneDNN: all cores; kernels built
// once per shape); attention through the given Dispatcher, so that this back end differs from
// that Dispatcher's only in its GEMMs.
class TemplateBackend final : public GemmBackend {
public:
    TemplateBackend(const tune::Template& gemm, const tune::Dispatcher& attention) : gemm_(gemm), attention_(attention) {}
    void gemm(const Problem& p, const void* a, const void* w, float* c) override {
        auto& k = kernels_[p];
        if (!k) k = gemm_.instantiate(p, gemm_.space(p)->default_config());
        const void* in[] = {a, w};
        void* out[] = {c};
        k->run({in, out});
    }
    void attention(const Problem& p, const void* q, const void* k, const void* v, float* o, float* lse) override {
        run_attention(attention_, p, q, k, v, o, lse);
    }

private:
    const tune::Template& gemm_;
    const tune::Dispatcher& attention_;
    std::unordered_map<Problem, std::unique_ptr<tune::Kernel>, tune::ProblemHash> kernels_;  // no key text per call
};

// A projection's weight [out, in] in the run's operand type: f32 as drawn, or rounded to bf16 once.
class Matrix {
public:
    Matrix() = default;
    Matrix(std::vector<float> values, tune::DType dtype) {
        if (dtype == tune::DType::f32) {
            f32_ = std::move(values);
            return;
        }
        bf16_.resize(values.size());
        round_to_bf16(values.data(), values.size(), bf16_.data());
    }
    const void* data() const { return f32_.empty() ? static_cast<const void*>(bf16_.data()) : f32_.data(); }

private:
    std::vector<float> f32_;
    std::vector<tune::bf16> bf16_;
};

struct Weights {
    tune::DType dtype = tune::DType::f32;  // of the projections and the KV cache
    std::vector<float> norm1, norm2;
    Matrix qkv, o, gate, up, down;
};

std::vector<float> random_vector(std::size_t n, float scale, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-scale, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng);
    return v;
}

class DecoderLayer {
public:
    DecoderLayer(const tune::ModelShape& m, const Weights& w, std::int64_t max_positions)
        : m_(m), w_(w), q_(m.num_heads * m.head_dim), kv_(m.num_kv_heads * m.head_dim), max_(max_positions),
          k_cache_(std::size_t(max_positions * kv_) * tune::dtype_bytes(w.dtype)),
          v_cache_(std::size_t(max_positions * kv_) * tune::dtype_bytes(w.dtype)) {}

    // x: [tokens x hidden], updated in place; positions pos0 .. pos0 + tokens - 1.
    void forward(GemmBackend& be, std::vector<float>& x, std::int64_t tokens, std::int64_t pos0) {
        const std::int64_t h = m_.hidden_size, inter = m_.intermediate_size;
        rms_norm(x, w_.norm1, tokens, normed_);
        resize(qkv_, tokens * (q_ + 2 * kv_));
        be.gemm(gemm(tokens, q_ + 2 * kv_, h), operand(normed_), w_.qkv.data(), qkv_.data());
        append_kv(tokens, pos0);
        attention(be, tokens, pos0);
        resize(proj_, tokens * h);
        be.gemm(gemm(tokens, h, q_), operand(attn_), w_.o.data(), proj_.data());
        for (std::size_t i = 0; i < proj_.size(); ++i) x[i] += proj_[i];

        rms_norm(x, w_.norm2, tokens, normed_);
        resize(gate_, tokens * inter);
        be.swiglu(tune::make_swiglu(tokens, inter, h, w_.dtype), operand(normed_), w_.gate.data(), w_.up.data(),
                  gate_.data());
        be.gemm(gemm(tokens, h, inter), operand(gate_), w_.down.data(), proj_.data());
        for (std::size_t i = 0; i < proj_.size(); ++i) x[i] += proj_[i];
    }

private:
    Problem gemm(std::int64_t m, std::int64_t n, std::int64_t k) const {
        return tune::make_gemm(m, n, k, w_.dtype, false, true);  // weights [out, in]
    }
    static void resize(std::vector<float>& v, std::int64_t n) { v.resize(std::size_t(n)); }

    // x as a projection's input: itself (f32), or rounded to bf16 into a scratch buffer.
    const void* operand(const std::vector<float>& x) {
        if (w_.dtype == tune::DType::f32) return x.data();
        rounded_.resize(x.size());
        round_to_bf16(x.data(), x.size(), rounded_.data());
        return rounded_.data();
    }

    void rms_norm(const std::vector<float>& x, const std::vector<float>& weight, std::int64_t tokens,
                  std::vector<float>& out) const {
        const std::int64_t h = m_.hidden_size;
        resize(out, tokens * h);
        for (std::int64_t t = 0; t < tokens; ++t) {
            double ss = 0;
            for (std::int64_t i = 0; i < h; ++i) ss += double(x[std::size_t(t * h + i)]) * x[std::size_t(t * h + i)];
            const float scale = float(1 / std::sqrt(ss / double(h) + 1e-5));
            for (std::int64_t i = 0; i < h; ++i)
                out[std::size_t(t * h + i)] = x[std::size_t(t * h + i)] * scale * weight[std::size_t(i)];
        }
    }

    // Copies n floats to dst (element index at) in the cache's dtype.
    void store(const float* src, std::vector<unsigned char>& cache, std::size_t at, std::int64_t n) const {
        if (w_.dtype == tune::DType::f32) {
            std::memcpy(cache.data() + at * sizeof(float), src, sizeof(float) * std::size_t(n));
            return;
        }
        round_to_bf16(src, std::size_t(n), reinterpret_cast<tune::bf16*>(cache.data()) + at);
    }

    // Appends this step's K and V rows to the head-major cache.
    void append_kv(std::int64_t tokens, std::int64_t pos0) {
        const std::int64_t d = m_.head_dim, row = q_ + 2 * kv_;
        for (std::int64_t t = 0; t < tokens; ++t)
            for (std::int64_t g = 0; g < m_.num_kv_heads; ++g) {
                const float* src = &qkv_[std::size_t(t * row + q_ + g * d)];
                const std::size_t dst = std::size_t((g * max_ + pos0 + t) * d);
                store(src, k_cache_, dst, d);
                store(src + kv_, v_cache_, dst, d);
            }
    }

    // Causal GQA attention over the cache, one call per KV head: its group of query heads
    // (gathered head-major from the QKV rows) against that head's cache rows 0 .. pos0+tokens.
    void attention(GemmBackend& be, std::int64_t tokens, std::int64_t pos0) {
        const std::int64_t d = m_.head_dim, group = m_.num_heads / m_.num_kv_heads, row = q_ + 2 * kv_;
        const Problem p = tune::make_attention(1, group, 1, tokens, pos0 + tokens, d, true, m_.sliding_window, w_.dtype);
        resize(attn_, tokens * q_);
        resize(q_heads_, group * tokens * d);
        resize(o_heads_, group * tokens * d);
        resize(lse_, group * tokens);
        const std::size_t bytes = sizeof(float) * std::size_t(d);
        for (std::int64_t g = 0; g < m_.num_kv_heads; ++g) {
            for (std::int64_t i = 0; i < group; ++i)
                for (std::int64_t t = 0; t < tokens; ++t)
                    std::memcpy(&q_heads_[std::size_t((i * tokens + t) * d)], &qkv_[std::size_t(t * row + (g * group + i) * d)], bytes);
            const std::size_t cache = std::size_t(g * max_ * d) * tune::dtype_bytes(w_.dtype);
            be.attention(p, operand(q_heads_), &k_cache_[cache], &v_cache_[cache], o_heads_.data(), lse_.data());
            for (std::int64_t i = 0; i < group; ++i)
                for (std::int64_t t = 0; t < tokens; ++t)
                    std::memcpy(&attn_[std::size_t(t * q_ + (g * group + i) * d)], &o_heads_[std::size_t((i * tokens + t) * d)], bytes);
        }
    }

    const tune::ModelShape& m_;
    const Weights& w_;
    std::int64_t q_, kv_, max_;
    std::vector<unsigned char> k_cache_, v_cache_;  // [kv_head][max_][head_dim] of w_.dtype
    std::vector<float> normed_, qkv_, attn_, proj_, gate_, q_heads_, o_heads_, lse_;
    std::vector<tune::bf16> rounded_;  // a bf16 projection input
};

struct RunTimes {
    double prefill_s = 0, decode_s = 0;
    std::vector<float> last;  // final hidden state, to compare back ends
};

RunTimes generate(GemmBackend& be, const tune::ModelShape& m, const Weights& w, const std::vector<float>& prompt,
                  std::int64_t prompt_len, std::int64_t decode_len) {
    using clock = std::chrono::steady_clock;
    DecoderLayer layer(m, w, prompt_len + decode_len);
    std::vector<float> x = prompt;
    RunTimes r;
    auto t0 = clock::now();
    layer.forward(be, x, prompt_len, 0);
    auto t1 = clock::now();
    std::vector<float> token(x.end() - m.hidden_size, x.end());
    for (std::int64_t s = 0; s < decode_len; ++s) layer.forward(be, token, 1, prompt_len + s);
    auto t2 = clock::now();
    r.prefill_s = std::chrono::duration<double>(t1 - t0).count();
    r.decode_s = std::chrono::duration<double>(t2 - t1).count();
    r.last = token;
    return r;
}

// The value after flag `name`, or null. Unknown flags are errors.
const char* flag_value(int argc, char** argv, const char* name) {
    static constexpr const char* kFlags[] = {"--prompt", "--decode", "--reps", "--mlp", "--dtype"};
    for (int i = 3; i + 1 < argc; i += 2)
        tune::require(std::any_of(std::begin(kFlags), std::end(kFlags), [&](const char* f) { return std::strcmp(argv[i], f) == 0; }),
                      std::string("unknown option '") + argv[i] + "' (expected --prompt, --decode, --reps, --mlp or --dtype)");
    for (int i = 3; i + 1 < argc; i += 2)
        if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
    return nullptr;
}

std::int64_t option(int argc, char** argv, const char* name, std::int64_t fallback) {
    const char* text = flag_value(argc, argv, name);
    if (!text) return fallback;
    char* end = nullptr;
    long long v = std::strtoll(text, &end, 10);
    tune::require(end && *end == '\0' && v >= 1 && v <= 1 << 16,
                  std::string(name) + ": expected an integer in [1, 65536], got '" + text + "'");
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    tune::use_best_openblas_core(argv);  // the OpenBLAS baseline at its best
    if (argc < 3 || (argc - 3) % 2 != 0) {
        std::fprintf(stderr,
                     "usage: %s CONFIG.json TUNED.db [--prompt 64] [--decode 32] [--reps 3] [--mlp auto|swiglu|gemms] "
                     "[--dtype f32|bf16]\n",
                     argv[0]);
        return 2;
    }
    try {
        const tune::ModelShape m = tune::load_model_config(argv[1]);
        // What this one-layer runtime implements: a dense decoder, SwiGLU MLP, one attention kind.
        std::string unsupported;
        if (!m.swiglu_mlp())
            unsupported += "; the MLP is not gated with silu (SwiGLU), activation '" + m.mlp_activation + "'";
        if (m.num_experts > 0) unsupported += "; it is a mixture of experts";
        if (m.encoder) unsupported += "; it has an encoder";
        if (m.sliding_window > 0 && m.full_attention_layers) unsupported += "; it mixes windowed and full attention layers";
        tune::require(unsupported.empty(), "the config (" + tune::describe(m) + ") is not one this runtime runs" + unsupported);
        const std::int64_t prompt_len = option(argc, argv, "--prompt", 64), decode_len = option(argc, argv, "--decode", 32),
                           reps = option(argc, argv, "--reps", 3);
        const char* mlp = flag_value(argc, argv, "--mlp");
        const std::string mlp_mode = mlp ? mlp : "auto";
        tune::require(mlp_mode == "auto" || mlp_mode == "swiglu" || mlp_mode == "gemms",
                      "--mlp: expected auto, swiglu or gemms, got '" + mlp_mode + "'");
        const MlpForm form = mlp_mode == "auto" ? MlpForm::auto_pick : mlp_mode == "swiglu" ? MlpForm::swiglu : MlpForm::gemms;
        const char* dtype_flag = flag_value(argc, argv, "--dtype");
        const std::string dtype_name = dtype_flag ? dtype_flag : "f32";
        tune::require(dtype_name == "f32" || dtype_name == "bf16", "--dtype: expected f32 or bf16, got '" + dtype_name + "'");
        const tune::DType dtype = dtype_name == "bf16" ? tune::DType::bf16 : tune::DType::f32;

        std::mt19937 rng(42);
        const std::int64_t h = m.hidden_size, q = m.num_heads * m.head_dim, kv = m.num_kv_heads * m.head_dim,
                           inter = m.intermediate_size;
        auto scaled = [&](std::int64_t out, std::int64_t in) {
            return random_vector(std::size_t(out * in), float(1 / std::sqrt(double(in))), rng);
        };
        Weights w;
        w.dtype = dtype;
        w.norm1 = std::vector<float>(std::size_t(h), 1.0f);
        w.norm2 = w.norm1;
        w.qkv = Matrix(scaled(q + 2 * kv, h), dtype);
        w.o = Matrix(scaled(h, q), dtype);
        w.gate = Matrix(scaled(inter, h), dtype);
        w.up = Matrix(scaled(inter, h), dtype);
        w.down = Matrix(scaled(h, inter), dtype);
        const std::vector<float> prompt = random_vector(std::size_t(prompt_len * h), 1.0f, rng);

        auto tuned = tune::Dispatcher::open(argv[2]);
        auto empty = tune::make_memory_database();
        auto registry = std::make_shared<const tune::TemplateRegistry>(tune::builtin_registry(tuned->device()));
        tune::Dispatcher defaults(*empty, registry, tuned->device());
        // The library baseline: OpenBLAS for f32, oneDNN for bf16 (OpenBLAS has no bf16 GEMM here).
        const std::string library = dtype == tune::DType::bf16 ? "onednn" : "openblas";
        const tune::Template* library_gemm = registry->find("cpu.gemm." + library);
        tune::require(library_gemm != nullptr, "decoder_runtime: this build has no cpu.gemm." + library + " template");
        const Problem probe = tune::make_gemm(1, 8, 8, dtype, false, true);
        tune::require(library_gemm->supports(probe) && !registry->for_problem(probe, tune::Backend::cpu).empty() &&
                          !registry->for_problem(tune::make_swiglu(1, 8, 8, dtype), tune::Backend::cpu).empty(),
                      "decoder_runtime: --dtype " + dtype_name + " needs bf16 kernels this CPU lacks (AVX512-BF16)");

        // Which of the layer's GEMMs and fused MLPs the tuned store answers exactly, and which
        // MLP form the tuned back end runs at each token count.
        int exact = 0, total = 0, swiglu_exact = 0, swiglu_total = 0;
        for (const auto& g : tune::layer_gemms(m, {prompt_len, 1}, dtype)) {
            ++total;
            exact += tuned->lookup(g.problem).source == tune::LookupSource::exact;
        }
        std::string forms;
        for (const auto& s : tune::layer_swiglu(m, {prompt_len, 1}, dtype)) {
            ++swiglu_total;
            swiglu_exact += tuned->lookup(s.problem).source == tune::LookupSource::exact;
            forms += std::string(forms.empty() ? "" : ", ") + std::to_string(s.tokens) + " tokens " +
                     (fused_mlp(*tuned, form, s.problem) ? "fused SwiGLU" : "two GEMMs + elementwise");
        }
        std::printf("model: hidden %lld, heads %lld (kv %lld, head_dim %lld), intermediate %lld; %s weights and KV cache\n",
                    (long long)h, (long long)m.num_heads, (long long)m.num_kv_heads, (long long)m.head_dim,
                    (long long)inter, dtype_name.c_str());
        std::printf("store: %s, %d of %d GEMM shapes and %d of %d SwiGLU shapes tuned exactly (snapshot %s)\n", argv[2],
                    exact, total, swiglu_exact, swiglu_total, tuned->snapshot_id().c_str());
        // Rows of another version of a template (stored by an earlier build) are not served: the
        // shapes they tuned fall back to a nearby shape's config or the default.
        if (const std::size_t stale = tuned->stats().stale)
            std::printf("store: %zu rows are for other template versions and are ignored; "
                        "'tune retune --db %s' re-tunes their shapes with this build\n",
                        stale, argv[2]);
        std::printf("mlp (--mlp %s): tuned runs %s; %s two GEMMs + elementwise\n", mlp_mode.c_str(), forms.c_str(),
                    library.c_str());
        std::printf("attention: per KV head through each back end; prompt %lld tokens, decode %lld tokens, %lld reps\n",
                    (long long)prompt_len, (long long)decode_len, (long long)reps);

        // Without a store `auto` has no times to compare and runs the fused problem.
        DispatchBackend tuned_be(*tuned, form), default_be(defaults, form);
        TemplateBackend library_be(*library_gemm, defaults);
        struct Mode {
            const char* name;
            GemmBackend* backend;
            std::vector<double> prefill, decode;
            std::vector<float> last;
        };
        Mode modes[] = {{"tuned", &tuned_be, {}, {}, {}}, {"defaults", &default_be, {}, {}, {}},
                        {library.c_str(), &library_be, {}, {}, {}}};
        // Library threads keep spinning after a library's last call (OpenBLAS for 0.15 s): each
        // mode starts after the longest such window, so none runs beside another's spinning
        // threads (that cost the mode after the openblas one up to 25% of its prefill).
        double settle_s = 0;
        for (const tune::Template* t : registry->all()) settle_s = std::max(settle_s, t->info().settle_s);
        auto settle = [&] { std::this_thread::sleep_for(std::chrono::duration<double>(settle_s)); };
        for (auto& mode : modes) generate(*mode.backend, m, w, prompt, prompt_len, 2);  // warm: build kernels
        for (std::int64_t r = 0; r < reps; ++r)  // interleaved, so load on the machine hits every mode alike
            for (auto& mode : modes) {
                settle();
                RunTimes t = generate(*mode.backend, m, w, prompt, prompt_len, decode_len);
                mode.prefill.push_back(t.prefill_s);
                mode.decode.push_back(t.decode_s);
                mode.last = std::move(t.last);
            }
        auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v[v.size() / 2];
        };
        const double base_decode = median(modes[2].decode);
        std::printf("%-9s %14s %14s %16s\n", "back end", "prefill tok/s", "decode tok/s", ("decode vs " + library).c_str());
        for (auto& mode : modes)
            std::printf("%-9s %14.1f %14.1f %15.2fx\n", mode.name, double(prompt_len) / median(mode.prefill),
                        double(decode_len) / median(mode.decode), base_decode / median(mode.decode));

        // Every back end computes the same layer: the outputs must agree to f32 rounding, or with
        // bf16 operands to the rounding of each projection's input, which a last-bit difference
        // in f32 can flip (2^-8 relative) and which the layer carries on.
        const double agree = dtype == tune::DType::bf16 ? 2e-2 : 1e-3;
        double worst = 0, scale = 0;
        for (std::size_t i = 0; i < modes[2].last.size(); ++i) {
            scale = std::max(scale, double(std::fabs(modes[2].last[i])));
            for (int k = 0; k < 2; ++k) worst = std::max(worst, double(std::fabs(modes[k].last[i] - modes[2].last[i])));
        }
        std::printf("outputs: max difference to %s %.3g (scale %.3g)\n", library.c_str(), worst, scale);
        if (!(worst <= agree * std::max(scale, 1.0))) {
            std::fprintf(stderr, "decoder_runtime: back ends disagree\n");
            return 1;
        }
        return 0;
    } catch (const tune::Error& e) {
        std::fprintf(stderr, "decoder_runtime: %s\n", e.what());
        return 1;
    }
}
