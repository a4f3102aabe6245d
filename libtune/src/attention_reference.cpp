#include "attention_reference.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace tune::detail {
namespace {

// Query rows per block: bounds the reference's score buffers to block * kv_len doubles.
constexpr std::int64_t kRowBlock = 128;

}  // namespace

// Error model, per query row with scaled scores s_j = c q.k_j (c = 1/sqrt(d)) and M the largest
// c |q|.|k_j| over the visible keys: an f32 score is off by at most gamma_d M, which moves each
// softmax weight p_j by a relative 2 gamma_d M (its own score and the max/denominator), the
// exponent's rounding adds u |s_j - m| <= u 2M, and the weighted sum adds gamma_kv. So
// |O - O_ref| <= gamma_(d+kv) (2 + 2M) sum_j p_j |v_j|, and |LSE - LSE_ref| <= gamma_(d+kv)
// (2 + 2M + |LSE|): the scales below, against the default tolerance gamma_(d+kv+8).
void attention_reference(const AttentionDims& a, const std::vector<double>& q, const std::vector<double>& k,
                         const std::vector<double>& v, std::vector<double>& reference, std::vector<double>& scale) {
    const std::int64_t d = a.head_dim, kv = a.kv_len, group = a.group();
    const double c = 1.0 / std::sqrt(double(d));
    const auto o_n = std::size_t(a.batch * a.heads * a.q_len * d);
    const auto rows_n = std::size_t(a.batch * a.heads * a.q_len);
    reference.assign(o_n + rows_n, 0.0);
    scale.assign(o_n + rows_n, 0.0);
    std::vector<double> qa(q.size()), ka(k.size()), va(v.size());
    std::transform(q.begin(), q.end(), qa.begin(), [](double x) { return std::fabs(x); });
    std::transform(k.begin(), k.end(), ka.begin(), [](double x) { return std::fabs(x); });
    std::transform(v.begin(), v.end(), va.begin(), [](double x) { return std::fabs(x); });

    const auto block = std::size_t(std::min(kRowBlock, a.q_len));
    std::vector<double> s(block * std::size_t(kv)), sa(s.size()), pv(block * std::size_t(d)), pva(pv.size());
    for (std::int64_t b = 0; b < a.batch; ++b)
        for (std::int64_t h = 0; h < a.heads; ++h) {
            const std::int64_t kvh = h / group;
            const std::size_t q_off = std::size_t(((b * a.heads + h) * a.q_len) * d);
            const std::size_t k_off = std::size_t(((b * a.kv_heads + kvh) * kv) * d);
            for (std::int64_t i0 = 0; i0 < a.q_len; i0 += kRowBlock) {
                const int rows = int(std::min(kRowBlock, a.q_len - i0));
                const double* qi = q.data() + q_off + std::size_t(i0 * d);
                const double* qai = qa.data() + q_off + std::size_t(i0 * d);
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, int(kv), int(d), c, qi, int(d),
                            k.data() + k_off, int(d), 0.0, s.data(), int(kv));
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, int(kv), int(d), c, qai, int(d),
                            ka.data() + k_off, int(d), 0.0, sa.data(), int(kv));
                std::vector<double> lse(static_cast<std::size_t>(rows)), big(static_cast<std::size_t>(rows));
                for (int r = 0; r < rows; ++r) {
                    double* sr = s.data() + std::size_t(r) * std::size_t(kv);
                    const double* sar = sa.data() + std::size_t(r) * std::size_t(kv);
                    auto [first, last] = a.key_range(i0 + r);
                    double m = -std::numeric_limits<double>::infinity(), l = 0, top = 0;
                    for (auto j = first; j < last; ++j) {
                        m = std::max(m, sr[j]);
                        top = std::max(top, sar[j]);
                    }
                    for (auto j = first; j < last; ++j) l += std::exp(sr[j] - m);
                    for (std::int64_t j = 0; j < kv; ++j) sr[j] = j >= first && j < last ? std::exp(sr[j] - m) / l : 0.0;
                    lse[std::size_t(r)] = last > first ? m + std::log(l) : -std::numeric_limits<double>::infinity();
                    big[std::size_t(r)] = top;
                }
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, int(d), int(kv), 1.0, s.data(), int(kv),
                            v.data() + k_off, int(d), 0.0, pv.data(), int(d));
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, int(d), int(kv), 1.0, s.data(), int(kv),
                            va.data() + k_off, int(d), 0.0, pva.data(), int(d));
                for (int r = 0; r < rows; ++r) {
                    const double grow = 2.0 + 2.0 * big[std::size_t(r)];
                    const std::size_t row = std::size_t((b * a.heads + h) * a.q_len + i0 + r);
                    for (std::int64_t e = 0; e < d; ++e) {
                        reference[row * std::size_t(d) + std::size_t(e)] = pv[std::size_t(r * d + e)];
                        // A row that sees no key must be exactly 0: any positive scale would do.
                        scale[row * std::size_t(d) + std::size_t(e)] = std::max(grow * pva[std::size_t(r * d + e)], 1e-300);
                    }
                    const double l = lse[std::size_t(r)];
                    reference[o_n + row] = l;
                    scale[o_n + row] = grow + (std::isfinite(l) ? std::fabs(l) : 0.0);
                }
            }
        }
}

}  // namespace tune::detail
