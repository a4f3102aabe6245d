// "cpu.attention.unfused": the textbook schedule, GEMM-backed. Per (batch, query head):
// S = scale * Q K^T with OpenBLAS sgemm, a masked softmax pass over S in place (the same exp
// kernel as the fused template), then O = P V with sgemm. The q_len x kv_len score matrix is
// materialised (its workspace), and masked scores are computed and then discarded: this is the
// baseline the fused template has to beat.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

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

constexpr const char* kName = "cpu.attention.unfused";

std::size_t score_bytes(const AttentionDims& a) { return std::size_t(a.q_len * a.kv_len) * sizeof(float); }

class UnfusedKernel final : public Kernel {
public:
    UnfusedKernel(const AttentionDims& a, int threads, std::shared_ptr<ThreadPool> pool)
        : a_(a), threads_(threads), pool_(std::move(pool)), scratch_(score_bytes(a)),
          gathered_(cpu_attention::paged_gather_bytes(a)) {}

    void run(const OpArgs& args) const override {
        auto x = cpu_attention::unpack(args, kName, a_);
        auto gathered = gathered_.take();
        cpu_attention::gather_paged(a_, x, gathered.floats());
        auto lease = scratch_.take();
        float* s = lease.floats();
        const int q = int(a_.q_len), kv = int(a_.kv_len), d = int(a_.head_dim);
        const auto scale = float(a_.scale);
        openblas_set_num_threads(threads_);
        for (std::int64_t b = 0; b < a_.batch; ++b)
            for (std::int64_t h = 0; h < a_.heads; ++h) {
                const std::int64_t bh = b * a_.heads + h, kvh = b * a_.kv_heads + h / a_.group();
                const float* k = x.k + kvh * a_.kv_len * d;
                const float* v = x.v + kvh * a_.kv_len * d;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q, kv, d, scale, x.q + bh * a_.q_len * d, d, k, d,
                            0.0f, s, kv);
                float* lse = x.lse + bh * a_.q_len;
                pool_->parallel_for(threads_, [&](int t) {
                    for (std::int64_t i = t; i < a_.q_len; i += threads_) {
                        float* row = s + i * kv;
                        auto [first, last] = a_.key_range(i);
                        float m = -std::numeric_limits<float>::infinity(), l = 0;
                        cpu_attention::softmax_step(row, kv, int(first), int(last), m, l);
                        if (l > 0) cpu_attention::scale_row(row, kv, 1.0f / l);
                        lse[i] = l > 0 ? m + std::log(l) : -std::numeric_limits<float>::infinity();
                    }
                });
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q, d, kv, 1.0f, s, kv, v, d, 0.0f,
                            x.o + bh * a_.q_len * d, d);
            }
    }

    std::size_t workspace_bytes() const override { return scratch_.bytes() + gathered_.bytes(); }

private:
    AttentionDims a_;
    int threads_;
    std::shared_ptr<ThreadPool> pool_;
    cpu_gemm::ScratchPool scratch_;
    cpu_gemm::ScratchPool gathered_;  // a paged cache's K and V, contiguous
};

std::shared_ptr<const Space> unfused_space(const DeviceInfo& device) {
    auto s = std::make_shared<Space>();
    s->add(cpu_attention::threads_knob(std::max(1, device.cores),
                                       "OpenBLAS threads for both GEMMs, and threads of the softmax pass"));
    return s;
}

class UnfusedTemplate final : public cpu_attention::SingleSpaceTemplate {
public:
    explicit UnfusedTemplate(const DeviceInfo& device)
        : SingleSpaceTemplate({kName, OpKind::attention, Backend::cpu, LIBTUNE_CPU_ATTENTION_VERSION, false,
                               kOpenblasSettleSeconds},
                              device,
                              false, unfused_space(device)) {}

    std::size_t workspace_bytes(const Problem& p, const Config&) const override {
        const AttentionDims a = attention_dims(p);
        return score_bytes(a) + cpu_attention::paged_gather_bytes(a);
    }

private:
    std::unique_ptr<Kernel> build(const AttentionDims& a, const Config& c,
                                  std::shared_ptr<ThreadPool> pool) const override {
        return std::make_unique<UnfusedKernel>(a, int(c.get_int("threads")), std::move(pool));
    }
};

}  // namespace

std::unique_ptr<Template> make_cpu_attention_unfused_template(const DeviceInfo& device) {
    return std::make_unique<UnfusedTemplate>(device);
}

}  // namespace tune
