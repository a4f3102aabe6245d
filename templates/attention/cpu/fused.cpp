// "cpu.attention.fused": flash-style attention on the CPU. Each task takes a tile of query rows
// (q_tile positions, times the group's query heads when gqa_pack is on, so each K/V tile is read
// once for all heads sharing it) and walks the keys they can see in k_tile steps: scores into a
// k_tile-wide buffer, an online-softmax step per row, then P V into the rows' accumulators. The
// score matrix is never materialised, and key tiles no row sees are never visited. split_kv
// (decode spaces) cuts each task's key range into parts that run as separate tasks, merged by a
// combine pass through their log-sum-exps.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "../../gemm/cpu/blocking_knobs.hpp"
#include "common.hpp"
#include "kernels.hpp"
#include "tune/templates/cpu_attention.hpp"

#ifndef LIBTUNE_CPU_ATTENTION_VERSION
#define LIBTUNE_CPU_ATTENTION_VERSION "unversioned"
#endif

namespace tune {
namespace {

using cpu_attention::round16;

constexpr const char* kName = "cpu.attention.fused";
// Query lengths up to this are decode steps: their spaces add split_kv.
constexpr std::int64_t kDecodeQLen = 16;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct FusedConfig {
    std::int64_t q_tile, k_tile, split_kv;
    bool gqa_pack;
    int threads;
};

struct Layout {
    std::int64_t rows;      // query rows per task
    std::int64_t lds, ldo;  // score and accumulator row strides (floats)
    std::size_t per_thread_floats;
    std::size_t partial_floats;  // split_kv > 1: every split's normalised O and LSE
};

Layout layout(const AttentionDims& a, const FusedConfig& c) {
    Layout l;
    l.rows = std::min(c.q_tile, a.q_len) * (c.gqa_pack ? a.group() : 1);
    l.lds = round16(c.k_tile);
    l.ldo = round16(a.head_dim);
    // Scores, accumulators, and m, l, alpha per row (rounded to keep 64-byte alignment).
    l.per_thread_floats = std::size_t(l.rows * (l.lds + l.ldo) + round16(3 * l.rows));
    l.partial_floats = c.split_kv > 1 ? std::size_t(a.batch * a.heads * a.q_len * c.split_kv * (a.head_dim + 1)) : 0;
    return l;
}

std::size_t workspace_floats(const AttentionDims& a, const FusedConfig& c) {
    const Layout l = layout(a, c);
    return l.per_thread_floats * std::size_t(c.threads) + l.partial_floats;
}

class FusedKernel final : public Kernel {
public:
    FusedKernel(const AttentionDims& a, const FusedConfig& c, std::shared_ptr<ThreadPool> pool)
        : a_(a), c_(c), l_(layout(a, c)), pool_(std::move(pool)), scratch_(workspace_floats(a, c) * sizeof(float)) {}

    void run(const OpArgs& args) const override {
        const auto x = cpu_attention::unpack(args, kName);
        auto lease = scratch_.take();
        float* ws = lease.floats();
        float* partial = ws + l_.per_thread_floats * std::size_t(c_.threads);

        const std::int64_t head_units = c_.gqa_pack ? a_.kv_heads : a_.heads;
        const std::int64_t q_tiles = (a_.q_len + c_.q_tile - 1) / c_.q_tile;
        const std::int64_t tasks = a_.batch * head_units * q_tiles * c_.split_kv;
        std::atomic<std::int64_t> next{0};
        pool_->parallel_for(c_.threads, [&](int t) {
            float* mine = ws + l_.per_thread_floats * std::size_t(t);
            std::vector<const float*> q_rows(std::size_t(l_.rows));
            for (std::int64_t id; (id = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
                // Last query tiles first: under a causal mask they see the most keys.
                const std::int64_t split = id % c_.split_kv;
                std::int64_t rest = id / c_.split_kv;
                const std::int64_t tile = q_tiles - 1 - rest % q_tiles;
                rest /= q_tiles;
                run_task(x, rest / head_units, rest % head_units, tile * c_.q_tile, split, mine, q_rows, partial);
            }
        });
        if (c_.split_kv > 1) combine(x, partial);
    }

    std::size_t workspace_bytes() const override { return scratch_.bytes(); }

private:
    void run_task(const cpu_attention::Operands& x, std::int64_t b, std::int64_t unit, std::int64_t q0,
                  std::int64_t split, float* ws, std::vector<const float*>& q_rows, float* partial) const {
        const std::int64_t d = a_.head_dim, positions = std::min(c_.q_tile, a_.q_len - q0);
        const std::int64_t heads = c_.gqa_pack ? a_.group() : 1;
        const std::int64_t head0 = c_.gqa_pack ? unit * a_.group() : unit;
        const std::int64_t kvh = head0 / a_.group();
        const int rows = int(positions * heads);
        for (int r = 0; r < rows; ++r) {
            const std::int64_t h = head0 + r / positions, i = q0 + r % positions;
            q_rows[std::size_t(r)] = x.q + ((b * a_.heads + h) * a_.q_len + i) * d;
        }
        float* s = ws;
        float* o = s + l_.rows * l_.lds;
        float* m = o + l_.rows * l_.ldo;
        float* l = m + l_.rows;
        float* alpha = l + l_.rows;
        std::fill(o, o + rows * l_.ldo, 0.0f);
        std::fill(m, m + rows, kNegInf);
        std::fill(l, l + rows, 0.0f);

        // Keys any row of the tile sees (ranges move forward with the query), then this split's part.
        std::int64_t first = a_.key_range(q0).first, last = a_.key_range(q0 + positions - 1).second;
        if (c_.split_kv > 1) {
            const std::int64_t part = round16((last - first + c_.split_kv - 1) / c_.split_kv);
            last = std::min(last, first + (split + 1) * part);
            first = std::min(last, first + split * part);
        }
        const float* k = x.k + (b * a_.kv_heads + kvh) * a_.kv_len * d;
        const float* v = x.v + (b * a_.kv_heads + kvh) * a_.kv_len * d;
        const float scale = float(1.0 / std::sqrt(double(d)));
        for (std::int64_t j0 = first; j0 < last; j0 += c_.k_tile) {
            const int n = int(std::min(c_.k_tile, last - j0));
            cpu_attention::scores(q_rows.data(), rows, k + j0 * d, d, n, int(d), scale, s, l_.lds);
            for (int r = 0; r < rows; ++r) {
                auto [lo, hi] = a_.key_range(q0 + r % positions);
                alpha[r] = cpu_attention::softmax_step(s + r * l_.lds, n, int(std::max<std::int64_t>(lo - j0, -1)),
                                                       int(std::min<std::int64_t>(hi - j0, n)), m[r], l[r]);
            }
            cpu_attention::pv_update(s, l_.lds, rows, alpha, v + j0 * d, d, n, int(d), o, l_.ldo);
        }
        for (int r = 0; r < rows; ++r) {
            const std::int64_t h = head0 + r / positions, i = q0 + r % positions;
            const std::int64_t row = (b * a_.heads + h) * a_.q_len + i;
            float* dst = c_.split_kv > 1 ? partial + (split * a_.batch * a_.heads * a_.q_len + row) * (d + 1)
                                         : x.o + row * d;
            const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
            for (std::int64_t e = 0; e < d; ++e) dst[e] = o[r * l_.ldo + e] * inv;
            const float lse = l[r] > 0 ? m[r] + std::log(l[r]) : kNegInf;
            if (c_.split_kv > 1)
                dst[d] = lse;
            else
                x.lse[row] = lse;
        }
    }

    // O = sum_s w_s O_s / sum_s w_s with w_s = exp(lse_s - max lse): the splits' softmaxes merged.
    void combine(const cpu_attention::Operands& x, const float* partial) const {
        const std::int64_t rows = a_.batch * a_.heads * a_.q_len, d = a_.head_dim;
        const std::int64_t stride = rows * (d + 1);
        pool_->parallel_for(c_.threads, [&](int t) {
            for (std::int64_t row = t; row < rows; row += c_.threads) {
                float top = kNegInf;
                for (std::int64_t s = 0; s < c_.split_kv; ++s) top = std::max(top, partial[s * stride + row * (d + 1) + d]);
                float* out = x.o + row * d;
                std::fill(out, out + d, 0.0f);
                if (top == kNegInf) {
                    x.lse[row] = kNegInf;
                    continue;
                }
                float total = 0;
                for (std::int64_t s = 0; s < c_.split_kv; ++s) {
                    const float* part = partial + s * stride + row * (d + 1);
                    if (part[d] == kNegInf) continue;
                    const float w = std::exp(part[d] - top);
                    total += w;
                    for (std::int64_t e = 0; e < d; ++e) out[e] += w * part[e];
                }
                cpu_attention::scale_row(out, d, 1.0f / total);
                x.lse[row] = top + std::log(total);
            }
        });
    }

    AttentionDims a_;
    FusedConfig c_;
    Layout l_;
    std::shared_ptr<ThreadPool> pool_;
    cpu_gemm::ScratchPool scratch_;
};

FusedConfig fused_config(const Config& c) {
    return {c.get_int("q_tile"), c.get_int("k_tile"), c.has("split_kv") ? c.get_int("split_kv") : 1,
            c.has("gqa_pack") && c.get_int("gqa_pack") != 0, int(c.get_int("threads"))};
}

class FusedTemplate final : public Template {
public:
    explicit FusedTemplate(const DeviceInfo& device)
        : info_{kName, OpKind::attention, Backend::cpu, LIBTUNE_CPU_ATTENTION_VERSION, false}, device_(device) {
        const int cores = std::max(1, device.cores);
        // One space per (decode or not) x (grouped heads or not); built once.
        for (int decode = 0; decode < 2; ++decode)
            for (int grouped = 0; grouped < 2; ++grouped) {
                auto s = std::make_shared<Space>();
                if (decode)
                    s->add(Knob::ints("q_tile", {1, 4, 16}, 16, "query positions per task"));
                else
                    s->add(Knob::ints("q_tile", {8, 16, 32, 64, 128}, 32, "query positions per task"));
                s->add(Knob::ints("k_tile", {32, 64, 128, 256, 512}, decode ? 256 : 128,
                                  "keys per online-softmax step (the score buffer is rows x k_tile)"));
                if (grouped)
                    s->add(Knob::boolean("gqa_pack", true,
                                         "one task holds every query head of a KV head, so each K/V tile is read once"));
                if (decode)
                    s->add(Knob::ints("split_kv", {1, 2, 4, 8, 16}, 4,
                                      "parts each task's key range is cut into (separate tasks, merged by a combine pass)"));
                s->add(cpu_attention::threads_knob(cores, "threads taking tasks"));
                spaces_[decode][grouped] = std::move(s);
            }
        pool_ = std::make_shared<ThreadPool>(cores);
    }

    const TemplateInfo& info() const override { return info_; }
    bool supports(const Problem& p) const override { return cpu_attention::supports_problem(p, device_); }

    std::shared_ptr<const Space> space(const Problem& p) const override {
        const AttentionDims a = attention_dims(p);
        return spaces_[a.q_len <= kDecodeQLen][a.group() > 1];
    }

    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        if (!supports(p)) throw Error(std::string(kName) + ": unsupported problem " + shape_key(p));
        validate(p);
        space(p)->validate(c);
        return std::make_unique<FusedKernel>(attention_dims(p), fused_config(c), pool_);
    }

    std::size_t workspace_bytes(const Problem& p, const Config& c) const override {
        return workspace_floats(attention_dims(p), fused_config(c)) * sizeof(float);
    }

private:
    TemplateInfo info_;
    DeviceInfo device_;
    std::shared_ptr<const Space> spaces_[2][2];
    std::shared_ptr<ThreadPool> pool_;
};

}  // namespace

std::unique_ptr<Template> make_cpu_attention_fused_template(const DeviceInfo& device) {
    return std::make_unique<FusedTemplate>(device);
}

}  // namespace tune
