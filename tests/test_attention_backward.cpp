// Attention backward: the fp64 gradient reference against finite differences of the forward
// reference, cpu.attention.backward in both modes against it (masks, GQA/MQA, odd dims, prime
// lengths), and the workspace of recompute vs store.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>

#include "../libtune/src/attention_reference.hpp"
#include "gemm_checks.hpp"
#include "tune/templates/cpu_attention.hpp"
#include "tune/workload.hpp"

using namespace tune;

namespace {

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

Problem backward(Problem p) {
    p.set_dim("backward", 1);
    return p;
}

}  // namespace

TEST_CASE("the attention gradient reference matches finite differences of the forward", "[attention][backward]") {
    for (bool causal : {false, true}) {
        // The causal case also takes a user scale (the default is 1/sqrt(4)).
        Problem p = backward(make_attention(1, 2, 1, 5, 7, 4, causal, causal ? 3 : 0));
        if (causal) p = with_scale(p, 0.8);
        const AttentionDims a = attention_dims(p);
        std::mt19937_64 rng(3);
        std::uniform_real_distribution<double> dist(-1, 1);
        auto random = [&](std::size_t n) {
            std::vector<double> x(n);
            for (auto& e : x) e = dist(rng);
            return x;
        };
        auto q = random(std::size_t(a.heads * a.q_len * a.head_dim)), k = random(std::size_t(a.kv_len * a.head_dim));
        auto v = random(k.size()), dout = random(q.size());
        std::vector<double> fwd, fwd_scale, grad, grad_scale;
        detail::attention_reference(a, q, k, v, fwd, fwd_scale);
        std::vector<double> o(fwd.begin(), fwd.begin() + std::ptrdiff_t(q.size())), lse(fwd.begin() + std::ptrdiff_t(q.size()), fwd.end());
        detail::attention_backward_reference(a, q, k, v, o, lse, dout, grad, grad_scale);
        // L = sum dO * O; dL/dx by central differences, x in Q, then K, then V (grad's order).
        auto loss = [&] {
            std::vector<double> out, s;
            detail::attention_reference(a, q, k, v, out, s);
            double sum = 0;
            for (std::size_t i = 0; i < dout.size(); ++i) sum += dout[i] * out[i];
            return sum;
        };
        std::size_t at = 0;
        for (std::vector<double>* x : {&q, &k, &v})
            for (std::size_t i = 0; i < x->size(); ++i, ++at) {
                const double keep = (*x)[i], h = 1e-5;
                (*x)[i] = keep + h;
                const double up = loss();
                (*x)[i] = keep - h;
                const double down = loss();
                (*x)[i] = keep;
                INFO("causal " << causal << " element " << at);
                CHECK(grad[at] == Approx((up - down) / (2 * h)).margin(1e-7));
            }
        CHECK(at == grad.size());
    }
}

TEST_CASE("cpu.attention.backward matches the fp64 gradients in both modes", "[attention][backward]") {
    if (!host().isa.avx512f) return;  // covered by "attention templates need AVX-512F"
    auto t = make_cpu_attention_backward_template(host());
    CHECK_FALSE(t->supports(make_attention(1, 2, 1, 4, 4, 8)));  // forward problems go elsewhere
    struct Case {
        std::int64_t heads, kv_heads, q_len, kv_len, head_dim;
        bool causal;
        std::int64_t window;
    };
    const Case kCases[] = {{2, 2, 1, 1, 64, false, 0},   {4, 2, 13, 13, 80, true, 0},  {3, 1, 31, 61, 96, false, 0},
                           {4, 4, 61, 31, 37, true, 0},  {2, 1, 67, 67, 128, true, 9}, {2, 2, 7, 131, 256, false, 5},
                           {4, 1, 1, 97, 64, true, 0},   {2, 2, 40, 40, 16, false, 0}};
    std::uint64_t seed = 1;
    for (const Case& c : kCases) {
        const Problem p = backward(make_attention(1 + std::int64_t(seed % 2), c.heads, c.kv_heads, c.q_len, c.kv_len,
                                                  c.head_dim, c.causal, c.window));
        REQUIRE(t->supports(p));
        const Space& s = *t->space(p);
        for (const char* mode : {"store", "recompute"}) {
            Config cfg = s.default_config();
            cfg.set("mode", std::string(mode));
            test::check_against_reference(*t, p, cfg, seed, 2);
        }
        Config sampled = s.default_config();
        sampled.set("mode", std::string("recompute")).set("q_block", std::int64_t{32});
        test::check_against_reference(*t, p, sampled, seed);
        ++seed;
    }
}

TEST_CASE("cpu.attention.backward: recompute blocks of at least q_len rows are one class, bit-identical",
          "[attention][backward]") {
    if (!host().isa.avx512f) return;  // covered by "attention templates need AVX-512F"
    auto t = make_cpu_attention_backward_template(host());
    const Problem p = backward(make_attention(1, 2, 1, 100, 120, 32, true));
    const Space& s = *t->space(p);
    Workload w(p, 4);
    std::vector<std::vector<float>> first;
    std::size_t first_ws = 0, same = 0;
    Config base = s.default_config();
    base.set("mode", std::string("recompute"));
    for (std::int64_t q_block : {32, 64, 128, 256, 512}) {
        Config c = base;
        c.set("q_block", q_block);
        Config at_most = base;
        at_most.set("q_block", std::int64_t{512});
        const bool past = q_block >= 100;
        CHECK((t->equivalence_key(p, c) == t->equivalence_key(p, at_most)) == past);
        if (!past) continue;
        w.poison_outputs();
        t->instantiate(p, c)->run(w.args());
        std::vector<std::vector<float>> out;
        for (std::size_t i = 0; i < 3; ++i) {
            const auto* o = static_cast<const float*>(w.args().outputs[i]);
            out.emplace_back(o, o + w.output_bytes(i) / sizeof(float));
        }
        if (first.empty()) {
            first = out;
            first_ws = t->workspace_bytes(p, c);
            continue;
        }
        ++same;
        CHECK(t->workspace_bytes(p, c) == first_ws);
        for (std::size_t i = 0; i < 3; ++i)
            CHECK(std::memcmp(out[i].data(), first[i].data(), out[i].size() * sizeof(float)) == 0);
    }
    CHECK(same == 2);
    Config store = base;
    store.set("mode", std::string("store"));
    CHECK(t->equivalence_key(p, store) == store);  // store mode: a class of its own
}

TEST_CASE("recompute needs at most an eighth of store's workspace at sequence 4096", "[attention][backward]") {
    if (!host().isa.avx512f) return;
    auto t = make_cpu_attention_backward_template(host());
    const Problem p = backward(make_attention(1, 32, 8, 4096, 4096, 128, true));
    const Space& s = *t->space(p);
    Config store = s.default_config(), recompute = s.default_config();
    store.set("mode", std::string("store"));
    const std::size_t store_bytes = t->workspace_bytes(p, store);
    CHECK(store_bytes == 2u * 4096u * 4096u * sizeof(float));  // P and dP of one head
    for (const auto& q_block : s.knob("q_block")->values) {
        recompute.set("q_block", q_block);
        CHECK(t->workspace_bytes(p, recompute) * 8 <= store_bytes);
    }
}
