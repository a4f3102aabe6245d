// cpu.attention.fused's bf16 inner loops (see fused.cpp's file comment): K and V rounded to bf16
// (copied, when the problem stores them as bf16) once per call into the GEMM's bf16
// micro-kernels' VNNI B panels, then per task S = (scale Q) K^T
// and O += P V on those kernels, the online softmax in f32 between them.
#include <algorithm>
#include <atomic>
#include <limits>
#include <utility>

#include "fused.hpp"
#include "kernels.hpp"

namespace tune::cpu_attention {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::int64_t staging(const Layout& l) { return std::max({l.o_rows * l.depth, l.o_rows * l.lds, kKeyPanel * l.depth}); }

}  // namespace

void bf16_layout(const AttentionDims& a, const FusedConfig& c, Layout& l) {
    const std::int64_t d = a.head_dim;
    l.o_rows = round_up(l.rows, c.ukernel->mr);
    l.lds = c.k_tile;  // a multiple of kKeyPanel
    l.ldo = round_up(d, 32);
    l.depth = round_up(d, c.ukernel->k_align);
    l.kv_pad = round_up(a.kv_len, kKeyPanel);
    // Q (bf16), a row-major staging area (Q and P before the transposition into VNNI A panels,
    // and the K panel being packed), scores, P (bf16), accumulators, m / l / alpha, key ranges.
    l.per_thread_floats = std::size_t(bf16_floats(l.o_rows * l.depth) + bf16_floats(staging(l)) + l.o_rows * l.lds +
                                      bf16_floats(l.o_rows * l.lds) + l.o_rows * l.ldo + 5 * round16(l.o_rows));
    l.packed_kv_floats = std::size_t(bf16_floats(a.batch * a.kv_heads * l.kv_pad * (l.depth + l.ldo)));
}

// One task per 32-key panel: K as VNNI panels of 32 keys (pair (e, e + 1) of key j at
// [(e / 2 * 32 + j) * 2], depth padded), V as VNNI panels of 32 columns over all key pairs
// ([((col / 32) * kv_pad / 2 + j / 2) * 64 + (col % 32) * 2 + j % 2]). Padding is zero.
void pack_kv_bf16(const AttentionDims& a, const FusedConfig& c, const Layout& l, const Operands& x,
                  std::uint16_t* packed, float* ws, ThreadPool& pool) {
    const cpu_gemm::Ukernel& u = *c.ukernel;
    const std::int64_t d = a.head_dim, depth = l.depth, kv_pad = l.kv_pad, ldo = l.ldo;
    const std::int64_t heads = a.batch * a.kv_heads, panels = kv_pad / kKeyPanel;
    std::uint16_t* packed_v = packed + heads * kv_pad * depth;
    std::atomic<std::int64_t> next{0};
    pool.parallel_for(c.threads, [&](int t) {
        // The thread's staging area: the panel's keys row-major, before the transposition.
        auto* rows = reinterpret_cast<std::uint16_t*>(ws + l.per_thread_floats * std::size_t(t) +
                                                      bf16_floats(l.o_rows * depth));
        for (std::int64_t id; (id = next.fetch_add(1, std::memory_order_relaxed)) < heads * panels;) {
            const std::int64_t head = id / panels, j0 = id % panels * kKeyPanel;
            const int keys = int(std::min(kKeyPanel, a.kv_len - j0));
            const std::int64_t at = (head * a.kv_len + j0) * d;
            const float* k = x.bf16() ? nullptr : x.k + at;
            const float* v = x.bf16() ? nullptr : x.v + at;
            for (int j = 0; j < kKeyPanel; ++j) {
                std::uint16_t* row = rows + j * depth;
                if (!x.bf16()) {
                    to_bf16(j < keys ? k + j * d : nullptr, j < keys ? int(d) : 0, 1.0f, row, int(depth));
                } else {  // already bf16: copied as stored
                    const std::int64_t n = j < keys ? d : 0;
                    std::copy(x.k16 + at + j * d, x.k16 + at + j * d + n, row);
                    std::fill(row + n, row + depth, std::uint16_t{0});
                }
            }
            // Pairs as 32-bit elements: the f32 transposing copy moves them unchanged.
            float* panel = reinterpret_cast<float*>(packed + (head * kv_pad + j0) * depth);
            for (int r = 0; r < kKeyPanel; r += cpu_gemm::kMaxTransposeRows)
                u.transpose(reinterpret_cast<const float*>(rows + r * depth), depth / 2, cpu_gemm::kMaxTransposeRows,
                            depth / 2, panel + r, kKeyPanel);
            for (std::int64_t col = 0; col < ldo; col += 32)
                for (int j = 0; j < kKeyPanel; j += 2) {
                    const int cols = int(std::min<std::int64_t>(32, d - col));
                    std::uint16_t* dst = packed_v + head * kv_pad * ldo + col * kv_pad + (j0 + j) * 32;
                    if (!x.bf16()) {
                        interleave_bf16(j < keys ? v + j * d + col : nullptr,
                                        j + 1 < keys ? v + (j + 1) * d + col : nullptr, cols, dst, 32);
                        continue;
                    }
                    const std::uint16_t* r0 = x.v16 + at + j * d + col;
                    for (int e = 0; e < 32; ++e) {  // pairs (key j, key j + 1) per column, zeros past the ends
                        dst[2 * e] = j < keys && e < cols ? r0[e] : 0;
                        dst[2 * e + 1] = j + 1 < keys && e < cols ? r0[d + e] : 0;
                    }
                }
        }
    });
}

Accumulators bf16_tiles(const AttentionDims& a, const FusedConfig& c, const Layout& lay, const TaskRows& t,
                        const std::uint16_t* kp, const std::uint16_t* vp, std::int64_t first, std::int64_t last,
                        float* ws) {
    const cpu_gemm::Ukernel& u = *c.ukernel;
    const int MR = u.mr;
    const std::int64_t d = a.head_dim, lds = lay.lds, ldo = lay.ldo, depth = lay.depth, o_rows = lay.o_rows;
    auto* qa = reinterpret_cast<std::uint16_t*>(ws);
    auto* stage = reinterpret_cast<std::uint16_t*>(ws + bf16_floats(o_rows * depth));
    float* s = ws + bf16_floats(o_rows * depth) + bf16_floats(staging(lay));
    auto* pa = reinterpret_cast<std::uint16_t*>(s + o_rows * lds);
    float* o = s + o_rows * lds + bf16_floats(o_rows * lds);
    float* m = o + o_rows * ldo;
    float* l = m + round16(o_rows);
    float* alpha = l + round16(o_rows);
    auto* lo = reinterpret_cast<std::int32_t*>(alpha + round16(o_rows));
    auto* hi = lo + round16(o_rows);

    // Rows of `width` bf16 (row-major in `from`) as the kernel's A operand in `to`: row-major
    // (AMX: `from` is `to`), or VNNI panels of MR rows (pair q of row i at (q * MR + i) * 2).
    const auto as_a_operand = [&](const std::uint16_t* from, std::int64_t width, std::uint16_t* to) {
        if (u.a_rows) return;
        for (std::int64_t i0 = 0; i0 < o_rows; i0 += MR)
            u.transpose(reinterpret_cast<const float*>(from + i0 * width), width / 2, MR, width / 2,
                        reinterpret_cast<float*>(to + i0 * width), MR);
    };
    std::uint16_t* q_rm = u.a_rows ? qa : stage;
    for (std::int64_t r = 0; r < o_rows; ++r)
        to_bf16(r < t.rows ? t.q[r] : nullptr, r < t.rows ? int(d) : 0, float(a.scale), q_rm + r * depth, int(depth));
    as_a_operand(q_rm, depth, qa);
    for (std::int64_t r = 0; r < o_rows; ++r) {
        auto [f, e] = r < t.rows ? a.key_range(t.q0 + r % t.positions) : std::pair<std::int64_t, std::int64_t>{0, 0};
        lo[r] = std::int32_t(f);
        hi[r] = std::int32_t(e);
    }
    std::fill(o, o + o_rows * ldo, 0.0f);
    std::fill(m, m + o_rows, kNegInf);
    std::fill(l, l + o_rows, 0.0f);

    std::uint16_t* p_rm = u.a_rows ? pa : stage;
    for (std::int64_t j0 = first; j0 < last; j0 += c.k_tile) {
        const int n = int(std::min(c.k_tile, last - j0));
        const std::int64_t width = round_up(n, kKeyPanel);  // keys past n are masked to P = 0
        for (std::int64_t jc = 0; jc < width; jc += kKeyPanel)
            for (std::int64_t i0 = 0; i0 < o_rows; i0 += MR)
                u.bf16(depth / 2, qa + i0 * depth, kp + (j0 + jc) * depth, s + i0 * lds + jc, lds, false);
        softmax_rows_bf16(s, lds, int(o_rows), n, int(width), std::int32_t(j0), lo, hi, m, l, alpha, p_rm, width);
        scale_rows(o, ldo, int(o_rows), int(ldo), alpha);
        as_a_operand(p_rm, width, pa);
        for (std::int64_t col = 0; col < ldo; col += 32)
            for (std::int64_t i0 = 0; i0 < o_rows; i0 += MR)
                u.bf16(width / 2, pa + i0 * width, vp + col * lay.kv_pad + j0 * 32, o + i0 * ldo + col, ldo, true);
    }
    return {o, m, l};
}

}  // namespace tune::cpu_attention
