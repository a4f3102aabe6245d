#include "tune/workload.hpp"

#include <cblas.h>

#include <cmath>
#include <limits>
#include <random>

#include "tune/error.hpp"

namespace tune {
namespace {

// Counter-based fill so the same seed gives the same operands whatever the order.
void fill_uniform(float* data, std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::size_t i = 0; i < n; ++i) data[i] = dist(rng);
}

std::vector<double> widen(const float* x, std::size_t n, bool absolute) {
    std::vector<double> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = absolute ? std::fabs(double(x[i])) : double(x[i]);
    return out;
}

}  // namespace

Workload::Workload(const Problem& p, std::uint64_t seed) : problem_(p) {
    validate(p);
    require(p.op == OpKind::gemm, "workload: only gemm problems are supported so far");
    require(p.dtype == DType::f32, "workload: gemm dtype " + std::string(to_string(p.dtype)) + " is not supported yet");
    auto g = gemm_dims(p);
    constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
    require(g.m <= kIntMax && g.n <= kIntMax && g.k <= kIntMax, "workload: gemm dims must fit in 32 bits");
    const auto a_n = std::size_t(g.m * g.k), b_n = std::size_t(g.k * g.n), c_n = std::size_t(g.m * g.n);
    const auto batch = std::size_t(g.batch);
    inputs_.emplace_back(batch * a_n * sizeof(float));
    inputs_.emplace_back(batch * b_n * sizeof(float));
    outputs_.emplace_back(batch * c_n * sizeof(float));
    float* a = inputs_[0].as<float>();
    float* b = inputs_[1].as<float>();
    fill_uniform(a, batch * a_n, seed * 2 + 1);
    fill_uniform(b, batch * b_n, seed * 2 + 2);
    for (auto& in : inputs_) input_ptrs_.push_back(in.data());
    for (auto& out : outputs_) output_ptrs_.push_back(out.data());

    // fp64 reference and the elementwise |A||B| scale, both through dgemm on widened copies.
    reference_.assign(batch * c_n, 0.0);
    scale_.assign(batch * c_n, 0.0);
    const auto lda = g.trans_a ? g.m : g.k, ldb = g.trans_b ? g.k : g.n;
    for (std::size_t i = 0; i < batch; ++i) {
        for (bool absolute : {false, true}) {
            auto wa = widen(a + i * a_n, a_n, absolute);
            auto wb = widen(b + i * b_n, b_n, absolute);
            double* out = (absolute ? scale_.data() : reference_.data()) + i * c_n;
            cblas_dgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans,
                        int(g.m), int(g.n), int(g.k), 1.0, wa.data(), int(lda), wb.data(), int(ldb), 0.0, out,
                        int(g.n));
        }
    }
}

void Workload::poison_outputs() {
    for (auto& out : outputs_) {
        float* c = out.as<float>();
        std::fill(c, c + out.bytes() / sizeof(float), std::numeric_limits<float>::quiet_NaN());
    }
}

double Workload::error() const {
    const float* c = outputs_[0].as<float>();
    double worst = 0;
    for (std::size_t i = 0; i < reference_.size(); ++i) {
        double v = c[i];
        if (!std::isfinite(v)) return std::numeric_limits<double>::quiet_NaN();
        double err = std::fabs(v - reference_[i]) / std::max(scale_[i], std::numeric_limits<double>::min());
        worst = std::max(worst, err);
    }
    return worst;
}

std::size_t Workload::bytes() const {
    std::size_t n = 0;
    for (const auto& b : inputs_) n += b.bytes();
    for (const auto& b : outputs_) n += b.bytes();
    return n;
}

}  // namespace tune
