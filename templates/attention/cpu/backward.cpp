// "cpu.attention.backward": attention gradients dQ, dK, dV from Q, K, V, the forward's O and LSE
// and dO, GEMM-backed (OpenBLAS sgemm). Per (batch, query head) and block of query rows:
//   P = exp(scale Q K^T - LSE) (masked), dV += P^T dO, dP = dO V^T,
//   dS = P (dP - rowsum(dO O)), dQ = scale dS K, dK += scale dS^T Q.
// Knob `mode`: `store` materialises P and dP for every query row of a head at once (workspace
// 2 q_len kv_len floats, what keeping the forward's probability matrix costs); `recompute` takes
// q_block rows at a time and recomputes their P from Q, K and the saved LSE (workspace
// 2 q_block kv_len floats: O(N)), visiting only the keys the block's rows can see.
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "../../gemm/cpu/blocking_knobs.hpp"
#include "common.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "kernels.hpp"
#include "tune/templates/cpu_attention.hpp"

#ifndef LIBTUNE_CPU_ATTENTION_VERSION
#define LIBTUNE_CPU_ATTENTION_VERSION "unversioned"
#endif

namespace tune {
namespace {

constexpr const char* kName = "cpu.attention.backward";

struct BackwardConfig {
    bool recompute;
    std::int64_t q_block;
    int threads;
};

std::int64_t block_rows(const AttentionDims& a, const BackwardConfig& c) {
    return c.recompute ? std::min(c.q_block, a.q_len) : a.q_len;
}

std::size_t workspace_bytes_of(const AttentionDims& a, const BackwardConfig& c) {
    return std::size_t(2 * block_rows(a, c) * a.kv_len) * sizeof(float);
}

class BackwardKernel final : public Kernel {
public:
    BackwardKernel(const AttentionDims& a, const BackwardConfig& c, std::shared_ptr<ThreadPool> pool)
        : a_(a), c_(c), pool_(std::move(pool)), scratch_(workspace_bytes_of(a, c)) {}

    void run(const OpArgs& args) const override {
        if (args.inputs.size() != 6 || args.outputs.size() != 3)
            throw Error(std::string(kName) + ": expects inputs {Q, K, V, O, LSE, dO} and outputs {dQ, dK, dV}");
        for (const void* in : args.inputs)
            if (!in) throw Error(std::string(kName) + ": null operand");
        for (void* out : args.outputs)
            if (!out) throw Error(std::string(kName) + ": null operand");
        const auto* q = static_cast<const float*>(args.inputs[0]);
        const auto* k = static_cast<const float*>(args.inputs[1]);
        const auto* v = static_cast<const float*>(args.inputs[2]);
        const auto* o = static_cast<const float*>(args.inputs[3]);
        const auto* lse = static_cast<const float*>(args.inputs[4]);
        const auto* dout = static_cast<const float*>(args.inputs[5]);
        auto* dq = static_cast<float*>(args.outputs[0]);
        auto* dk = static_cast<float*>(args.outputs[1]);
        auto* dv = static_cast<float*>(args.outputs[2]);

        auto lease = scratch_.take();
        const std::int64_t d = a_.head_dim, rows_max = block_rows(a_, c_);
        float* p = lease.floats();
        float* dp = p + rows_max * a_.kv_len;
        const auto scale = float(a_.scale);
        std::fill(dk, dk + a_.batch * a_.kv_heads * a_.kv_len * d, 0.0f);
        std::fill(dv, dv + a_.batch * a_.kv_heads * a_.kv_len * d, 0.0f);
        openblas_set_num_threads(c_.threads);
        for (std::int64_t b = 0; b < a_.batch; ++b)
            for (std::int64_t h = 0; h < a_.heads; ++h) {
                const std::int64_t bh = b * a_.heads + h, kv_off = (b * a_.kv_heads + h / a_.group()) * a_.kv_len * d;
                for (std::int64_t i0 = 0; i0 < a_.q_len; i0 += rows_max) {
                    const std::int64_t rows = std::min(rows_max, a_.q_len - i0), row0 = bh * a_.q_len + i0;
                    // Store mode keeps whole rows; recompute visits only the keys this block sees.
                    std::int64_t first = 0, last = a_.kv_len;
                    if (c_.recompute) {
                        first = a_.key_range(i0).first;
                        last = a_.key_range(i0 + rows - 1).second;
                    }
                    const int n = int(last - first);
                    std::fill(dq + row0 * d, dq + (row0 + rows) * d, 0.0f);
                    if (n <= 0) continue;
                    block(q + row0 * d, k + kv_off + first * d, v + kv_off + first * d, o + row0 * d, lse + row0,
                          dout + row0 * d, dq + row0 * d, dk + kv_off + first * d, dv + kv_off + first * d, i0, int(rows),
                          first, n, scale, p, dp);
                }
            }
    }

    std::size_t workspace_bytes() const override { return scratch_.bytes(); }

private:
    // One block of `rows` query rows (from i0) against keys [first, first + n).
    void block(const float* q, const float* k, const float* v, const float* o, const float* lse, const float* dout,
               float* dq, float* dk, float* dv, std::int64_t i0, int rows, std::int64_t first, int n, float scale,
               float* p, float* dp) const {
        const int d = int(a_.head_dim);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, scale, q, d, k, d, 0.0f, p, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, 1.0f, dout, d, v, d, 0.0f, dp, n);
        pool_->parallel_for(c_.threads, [&](int t) {
            for (int r = t; r < rows; r += c_.threads) {
                auto [lo, hi] = a_.key_range(i0 + r);
                float* pr = p + std::int64_t(r) * n;
                cpu_attention::exp_shifted(pr, n, int(std::max<std::int64_t>(lo - first, 0)),
                                           int(std::clamp<std::int64_t>(hi - first, 0, n)), lse[r]);
                double dot = 0;  // rowsum(dO O): one value per row, accumulated in double
                for (int e = 0; e < d; ++e) dot += double(dout[std::int64_t(r) * d + e]) * o[std::int64_t(r) * d + e];
                cpu_attention::softmax_grad(pr, dp + std::int64_t(r) * n, n, float(dot));
            }
        });
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, rows, 1.0f, p, n, dout, d, 1.0f, dv, d);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, n, scale, dp, n, k, d, 0.0f, dq, d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, rows, scale, dp, n, q, d, 1.0f, dk, d);
    }

    AttentionDims a_;
    BackwardConfig c_;
    std::shared_ptr<ThreadPool> pool_;
    cpu_gemm::ScratchPool scratch_;
};

BackwardConfig backward_config(const Config& c) {
    return {c.get_str("mode") == "recompute", c.get_int("q_block"), int(c.get_int("threads"))};
}

std::shared_ptr<const Space> backward_space(const DeviceInfo& device) {
    auto s = std::make_shared<Space>();
    s->add(Knob::categorical("mode", {"recompute", "store"}, "recompute",
                             "recompute P per block of query rows from Q, K and LSE (O(N) workspace), or store "
                             "P and dP for all rows of a head (O(N^2))"));
    s->add(Knob::ints("q_block", {32, 64, 128, 256, 512}, 128, "query rows per block (recompute)"));
    s->add(cpu_attention::threads_knob(std::max(1, device.cores),
                                       "OpenBLAS threads, and threads of the elementwise passes"));
    s->require("q_block_only_for_recompute",
               [](const Config& c) { return c.get_str("mode") == "recompute" || c.get_int("q_block") == 128; });
    return s;
}

class BackwardTemplate final : public cpu_attention::SingleSpaceTemplate {
public:
    explicit BackwardTemplate(const DeviceInfo& device)
        : SingleSpaceTemplate({kName, OpKind::attention, Backend::cpu, LIBTUNE_CPU_ATTENTION_VERSION, false,
                               kOpenblasSettleSeconds},
                              device,
                              true, backward_space(device)) {}

    std::size_t workspace_bytes(const Problem& p, const Config& c) const override {
        return workspace_bytes_of(attention_dims(p), backward_config(c));
    }

    // Recompute with a query block of at least q_len rows is one block (block_rows clips it).
    Config equivalence_key(const Problem& p, const Config& c) const override {
        if (p.op != OpKind::attention || !c.has("mode") || !c.has("q_block")) return c;
        const BackwardConfig b = backward_config(c);
        if (!b.recompute || b.q_block < attention_dims(p).q_len) return c;
        Config key = c;
        return key.set("q_block", std::int64_t{0});
    }

private:
    std::unique_ptr<Kernel> build(const AttentionDims& a, const Config& c,
                                  std::shared_ptr<ThreadPool> pool) const override {
        return std::make_unique<BackwardKernel>(a, backward_config(c), std::move(pool));
    }
};

}  // namespace

std::unique_ptr<Template> make_cpu_attention_backward_template(const DeviceInfo& device) {
    return std::make_unique<BackwardTemplate>(device);
}

}  // namespace tune
