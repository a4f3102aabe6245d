// The fp64 reference and error metric every candidate is judged by.
#include <catch2/catch.hpp>
#include <cmath>
#include <set>

#include "tune/bf16.hpp"
#include "tune/workload.hpp"

using namespace tune;

namespace {
// Naive float evaluation of the problem straight from its definition.
void naive(const Problem& p, const OpArgs& args) {
    auto* out = static_cast<float*>(args.outputs[0]);
    if (p.op == OpKind::swiglu) {
        const std::int64_t m = p.dims[0], n = p.dims[1], k = p.dims[2];
        auto x = static_cast<const float*>(args.inputs[0]), wg = static_cast<const float*>(args.inputs[1]),
             wu = static_cast<const float*>(args.inputs[2]);
        for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < n; ++j) {
                float g = 0, u = 0;
                for (std::int64_t q = 0; q < k; ++q) {
                    g += x[i * k + q] * wg[j * k + q];
                    u += x[i * k + q] * wu[j * k + q];
                }
                out[i * n + j] = float(silu(g)) * u;
            }
        return;
    }
    auto g = gemm_dims(p);
    auto value = [&](int operand, std::int64_t idx) {
        if (p.dtype == DType::bf16) return to_float(static_cast<const bf16*>(args.inputs[operand])[idx]);
        return static_cast<const float*>(args.inputs[operand])[idx];
    };
    std::size_t next = 2;
    const float* bias = g.bias ? static_cast<const float*>(args.inputs[next++]) : nullptr;
    const float* res = g.residual ? static_cast<const float*>(args.inputs[next++]) : nullptr;
    for (std::int64_t i = 0; i < g.m; ++i)
        for (std::int64_t j = 0; j < g.n; ++j) {
            float acc = 0;
            for (std::int64_t q = 0; q < g.k; ++q)
                acc += value(0, g.trans_a ? q * g.m + i : i * g.k + q) * value(1, g.trans_b ? j * g.k + q : q * g.n + j);
            if (bias) acc += bias[j];
            if (g.act == Activation::gelu) acc = float(gelu(acc));
            if (g.act == Activation::silu) acc = float(silu(acc));
            if (res) acc += res[i * g.n + j];
            out[i * g.n + j] = acc;
        }
}
}  // namespace

TEST_CASE("a correct float evaluation passes and a perturbed one fails", "[workload]") {
    std::vector<Problem> problems{
        make_gemm(7, 13, 29),
        make_gemm(5, 9, 300, DType::bf16, false, true),
        with_epilogue(make_gemm(6, 10, 40, DType::f32, true, false), true, Activation::gelu, false),
        with_epilogue(make_gemm(6, 10, 40), true, Activation::silu, true),
        with_epilogue(make_gemm(3, 4, 5, DType::bf16), false, Activation::none, true),
        make_swiglu(5, 12, 33),
    };
    for (const auto& p : problems) {
        INFO(shape_key(p));
        Workload w(p, 3);
        w.poison_outputs();
        CHECK(std::isnan(w.error()));
        naive(p, w.args());
        CHECK(w.error() <= default_tolerance(p));
        // One element off by a small absolute amount is caught.
        static_cast<float*>(w.args().outputs[0])[1] += 0.05f;
        CHECK(w.error() > default_tolerance(p));
    }
}

TEST_CASE("bf16 inputs are the rounded values the reference sees", "[workload]") {
    CHECK(to_float(to_bf16(1.0f)) == 1.0f);
    CHECK(to_float(to_bf16(1.00390625f)) == 1.0f);       // tie rounds to even
    CHECK(to_float(to_bf16(1.01171875f)) == 1.015625f);  // tie rounds to even (up)
    CHECK(std::isnan(to_float(to_bf16(std::nanf("")))));
}

TEST_CASE("f16 operands hold the half-precision values the reference sees", "[workload]") {
    Workload w(make_gemm(8, 8, 8, DType::f16), 5);
    CHECK(w.input_bytes(0) == 8 * 8 * 2);
    const auto* a = static_cast<const _Float16*>(w.args().inputs[0]);
    bool some_fraction = false;
    for (int i = 0; i < 64; ++i) {
        const float x = static_cast<float>(a[i]);
        CHECK(std::fabs(x) <= 1.0f);
        some_fraction |= x != std::nearbyint(x);
    }
    CHECK(some_fraction);  // not truncated to integers, not all zero
    CHECK(static_cast<float>(static_cast<_Float16>(1.00048828125f)) == 1.0f);  // tie rounds to even
}

TEST_CASE("the portable f16 conversion matches the compiler's _Float16 bit for bit", "[workload]") {
    auto bits_of = [](_Float16 h) {
        std::uint16_t b;
        std::memcpy(&b, &h, sizeof b);
        return b;
    };
    auto check_one = [&](float f) {
        const std::uint16_t ours = to_f16(f).bits, theirs = bits_of(static_cast<_Float16>(f));
        if (std::isnan(f)) {
            CHECK((ours & 0x7c00u) == 0x7c00u);  // NaN stays NaN (payload bits may differ)
            CHECK((ours & 0x3ffu) != 0);
        } else {
            INFO(f);
            CHECK(ours == theirs);
        }
        // Half -> float is exact: every one of the 65536 patterns round-trips through float.
        if (!std::isnan(f)) CHECK(to_float(f16{theirs}) == static_cast<float>(static_cast<_Float16>(f)));
    };
    // Every float whose low 13 bits make the rounding cases (below, at and above a tie, odd and
    // even) across every exponent: normals, subnormals, overflow to inf, underflow to zero.
    for (std::uint32_t e = 0; e < 256; ++e)
        for (std::uint32_t m : {0u, 1u, 0xfffu, 0x1000u, 0x1001u, 0x1fffu, 0x2000u, 0x3000u, 0x7fffffu, 0x400000u,
                                0x7fe000u, 0x7ff000u, 0x7fefffu, 0x12345u})
            for (std::uint32_t s : {0u, 0x80000000u}) {
                const std::uint32_t u = s | (e << 23) | m;
                float f;
                std::memcpy(&f, &u, sizeof f);
                check_one(f);
            }
    std::mt19937 rng(7);
    std::uniform_int_distribution<std::uint32_t> any;
    for (int i = 0; i < 200000; ++i) {
        const std::uint32_t u = any(rng);
        float f;
        std::memcpy(&f, &u, sizeof f);
        check_one(f);
    }
    for (std::uint32_t h = 0; h < 0x10000u; ++h) {  // every half decodes as the compiler's does
        _Float16 x;
        const auto b = static_cast<std::uint16_t>(h);
        std::memcpy(&x, &b, sizeof x);
        const float want = static_cast<float>(x), got = to_float(f16{b});
        if (std::isnan(want)) CHECK(std::isnan(got));
        else CHECK(got == want);
    }
}

TEST_CASE("a paged KV workload holds the same keys and values in shuffled pages through its block table", "[workload][paged]") {
    const Problem plain = make_attention(2, 4, 2, 3, 45, 16, true, 0, DType::bf16);
    Problem paged = plain;
    paged.set_dim("page", 8);  // 6 pages per sequence, the last one 5 keys full
    const Workload w0(plain, 5), w1(paged, 5);
    const OpArgs a0 = w0.args(), a1 = w1.args();
    REQUIRE(a0.inputs.size() == 3);
    REQUIRE(a1.inputs.size() == 4);
    const auto* table = static_cast<const std::int32_t*>(a1.inputs[3]);
    const std::int64_t pages = 6, page = 8, kv_heads = 2, d = 16, kv = 45;
    std::set<std::int32_t> seen(table, table + 2 * pages);
    CHECK(seen.size() == 12);  // a permutation of the pool's pages
    CHECK(*seen.begin() == 0);
    CHECK(*seen.rbegin() == 11);
    bool identity = true;
    for (std::int32_t i = 0; i < 12; ++i) identity = identity && table[i] == i;
    CHECK_FALSE(identity);
    for (int which : {1, 2}) {  // K, then V
        const auto* contiguous = static_cast<const bf16*>(a0.inputs[std::size_t(which)]);
        const auto* pool = static_cast<const bf16*>(a1.inputs[std::size_t(which)]);
        for (std::int64_t b = 0; b < 2; ++b)
            for (std::int64_t h = 0; h < kv_heads; ++h)
                for (std::int64_t j = 0; j < pages * page; ++j)
                    for (std::int64_t e = 0; e < d; ++e) {
                        const std::int64_t slot = (table[b * pages + j / page] * page + j % page) * kv_heads + h;
                        const float got = to_float(pool[slot * d + e]);
                        const float want = j < kv ? to_float(contiguous[((b * kv_heads + h) * kv + j) * d + e]) : 0.f;
                        if (got != want) FAIL("b " << b << " head " << h << " key " << j << " element " << e);
                    }
    }
}
