#include "attention_reference.hpp"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>

namespace tune::detail {
namespace {

// Query rows per block: bounds the reference's score buffers to block * kv_len doubles.
constexpr std::int64_t kRowBlock = 128;

// A softmax weight far below 1 is not computed to a relative error in f32: exp underflows
// near 1.2e-38 (and the kernels' exp clamps its argument there), so P is off by up to that
// much absolutely. In units of the smallest tolerance in use (above 1e-7) that is below
// 1e-30: the error model takes every visible weight as at least this much.
constexpr double kWeightFloor = 1e-30;

std::vector<double> absolute(const std::vector<double>& x) {
    std::vector<double> out(x.size());
    std::transform(x.begin(), x.end(), out.begin(), [](double e) { return std::fabs(e); });
    return out;
}

// Runs fn(unit) for every unit in [0, units) on up to one thread per hardware thread, with
// OpenBLAS single-threaded meanwhile (the units are the parallelism; its setting is restored):
// a long-sequence reference costs seconds instead of minutes on a many-core host.
template <class Fn>
void for_each_unit(std::int64_t units, const Fn& fn) {
    const auto hw = std::int64_t(std::max(1u, std::thread::hardware_concurrency()));
    const int threads = int(std::min(units, hw));
    if (threads <= 1) {
        for (std::int64_t u = 0; u < units; ++u) fn(u);
        return;
    }
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    std::atomic<std::int64_t> next{0};
    std::mutex error_mutex;
    std::exception_ptr error;
    {
        std::vector<std::jthread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&] {
                try {
                    for (std::int64_t u = next++; u < units; u = next++) fn(u);
                } catch (...) {
                    std::lock_guard lock(error_mutex);
                    if (!error) error = std::current_exception();
                    next = units;
                }
            });
    }
    openblas_set_num_threads(blas_threads);
    if (error) std::rethrow_exception(error);
}

}  // namespace

// Error model, per query row with scaled scores s_j = c q.k_j (c = the problem's scale) and M
// the largest c |q|.|k_j| over the visible keys: an f32 score is off by at most gamma_d M, which moves each
// softmax weight p_j by a relative 2 gamma_d M (its own score and the max/denominator), the
// exponent's rounding adds u |s_j - m| <= u 2M, and the weighted sum adds gamma_kv. So
// |O - O_ref| <= gamma_(d+kv) (2 + 2M) sum_j p_j |v_j|, and |LSE - LSE_ref| <= gamma_(d+kv)
// (2 + 2M + |LSE|): the scales below, against the default tolerance gamma_(d+kv+8).
void attention_reference(const AttentionDims& a, const std::vector<double>& q, const std::vector<double>& k,
                         const std::vector<double>& v, std::vector<double>& reference, std::vector<double>& scale) {
    const std::int64_t d = a.head_dim, kv = a.kv_len, group = a.group();
    const double c = a.scale;
    const auto o_n = std::size_t(a.batch * a.heads * a.q_len * d);
    const auto rows_n = std::size_t(a.batch * a.heads * a.q_len);
    reference.assign(o_n + rows_n, 0.0);
    scale.assign(o_n + rows_n, 0.0);
    const auto qa = absolute(q), ka = absolute(k), va = absolute(v);

    const auto block = std::size_t(std::min(kRowBlock, a.q_len));
    // One unit per (batch, head): each writes only its own rows.
    for_each_unit(a.batch * a.heads, [&](std::int64_t unit) {
        const std::int64_t b = unit / a.heads, h = unit % a.heads;
        std::vector<double> s(block * std::size_t(kv)), sa(s.size()), pv(block * std::size_t(d)), pva(pv.size());
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
            for (int r = 0; r < rows; ++r) {
                auto [first, last] = a.key_range(i0 + r);
                double* sr = s.data() + std::size_t(r) * std::size_t(kv);
                for (auto j = first; j < last; ++j) sr[j] = std::max(sr[j], kWeightFloor);
            }
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
    });
}

// Backward error model, per query row i (w_i = 2 + 2 M_i + |LSE_i| bounds P_ij's relative error
// in units of gamma, including the f32 rounding of the saved LSE): dP and rowsum(dO O) are off by
// gamma (|dO||V|^T)_ij and gamma sum|dO||O|, so dS_ij = P_ij (dP_ij - D_i) is off by at most
// gamma B_ij, B_ij = P_ij (w_i |dP_ij - D_i| + (|dO||V|^T)_ij + sum|dO_i||O_i|). The products with
// K, Q and dO add one summation each: scales c (B + |dS|) |K| for dQ, c (B + |dS|)^T |Q| for dK
// and ((w + 1) P)^T |dO| for dV, against gamma_(d + kv + q_len group) (default_tolerance).
void attention_backward_reference(const AttentionDims& a, const std::vector<double>& q, const std::vector<double>& k,
                                  const std::vector<double>& v, const std::vector<double>& o,
                                  const std::vector<double>& lse, const std::vector<double>& dout,
                                  std::vector<double>& reference, std::vector<double>& scale) {
    const std::int64_t d = a.head_dim, kv = a.kv_len, group = a.group();
    const double c = a.scale;
    const auto q_n = std::size_t(a.batch * a.heads * a.q_len * d), kv_n = std::size_t(a.batch * a.kv_heads * kv * d);
    reference.assign(q_n + 2 * kv_n, 0.0);
    scale.assign(reference.size(), 0.0);
    double* dq = reference.data();
    double* dk = dq + q_n;
    double* dv = dk + kv_n;
    double* sdq = scale.data();
    double* sdk = sdq + q_n;
    double* sdv = sdk + kv_n;
    const auto qa = absolute(q), ka = absolute(k), va = absolute(v), da = absolute(dout);

    const auto block = std::size_t(std::min(kRowBlock, a.q_len));
    const auto m = std::size_t(kv);
    // One unit per (batch, KV head) with its group's query heads: dK and dV sum over the group,
    // so no two units write the same gradient.
    for_each_unit(a.batch * a.kv_heads, [&](std::int64_t unit) {
        std::vector<double> p(block * m), sa(block * m), dp(block * m), ab(block * m), bt(block * m), pw(block * m);
        const std::int64_t b = unit / a.kv_heads, kvh = unit % a.kv_heads;
        for (std::int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            const std::size_t q_off = std::size_t(((b * a.heads + h) * a.q_len) * d);
            const std::size_t k_off = std::size_t(((b * a.kv_heads + h / group) * kv) * d);
            for (std::int64_t i0 = 0; i0 < a.q_len; i0 += kRowBlock) {
                const int rows = int(std::min(kRowBlock, a.q_len - i0));
                const std::size_t qo = q_off + std::size_t(i0 * d);
                auto gemm_nt = [&](double alpha, const double* x, const double* y, double* out) {
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, int(kv), int(d), alpha, x, int(d), y,
                                int(d), 0.0, out, int(kv));
                };
                gemm_nt(c, q.data() + qo, k.data() + k_off, p.data());
                gemm_nt(c, qa.data() + qo, ka.data() + k_off, sa.data());
                gemm_nt(1.0, dout.data() + qo, v.data() + k_off, dp.data());
                gemm_nt(1.0, da.data() + qo, va.data() + k_off, ab.data());
                for (int r = 0; r < rows; ++r) {
                    const std::size_t row = std::size_t((b * a.heads + h) * a.q_len + i0 + r), at = std::size_t(r) * m;
                    auto [first, last] = a.key_range(i0 + r);
                    double top = 0, dsum = 0, dabs = 0;
                    for (auto j = first; j < last; ++j) top = std::max(top, sa[at + std::size_t(j)]);
                    for (std::int64_t e = 0; e < d; ++e) {
                        dsum += dout[row * std::size_t(d) + std::size_t(e)] * o[row * std::size_t(d) + std::size_t(e)];
                        dabs += da[row * std::size_t(d) + std::size_t(e)] * std::fabs(o[row * std::size_t(d) + std::size_t(e)]);
                    }
                    const double w = 2.0 + 2.0 * top + (std::isfinite(lse[row]) ? std::fabs(lse[row]) : 0.0);
                    for (std::int64_t j = 0; j < kv; ++j) {
                        const std::size_t x = at + std::size_t(j);
                        const bool visible = j >= first && j < last;
                        const double pij = visible ? std::exp(p[x] - lse[row]) : 0.0;
                        const double bound = visible ? std::max(pij, kWeightFloor) : 0.0;
                        const double ds = pij * (dp[x] - dsum);
                        bt[x] = bound * (w * std::fabs(dp[x] - dsum) + ab[x] + dabs) + std::fabs(ds);
                        pw[x] = (w + 1.0) * bound;
                        p[x] = pij;
                        dp[x] = ds;
                    }
                }
                // dQ rows of this block; dK, dV accumulate over blocks and the group's heads.
                auto gemm_nn = [&](double alpha, const double* x, const double* y, double* out) {
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, int(d), int(kv), alpha, x, int(kv), y,
                                int(d), 0.0, out, int(d));
                };
                auto gemm_tn = [&](double alpha, const double* x, const double* y, double* out) {
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(kv), int(d), rows, alpha, x, int(kv), y,
                                int(d), 1.0, out, int(d));
                };
                gemm_nn(c, dp.data(), k.data() + k_off, dq + qo);
                gemm_nn(c, bt.data(), ka.data() + k_off, sdq + qo);
                gemm_tn(c, dp.data(), q.data() + qo, dk + k_off);
                gemm_tn(c, bt.data(), qa.data() + qo, sdk + k_off);
                gemm_tn(1.0, p.data(), dout.data() + qo, dv + k_off);
                gemm_tn(1.0, pw.data(), da.data() + qo, sdv + k_off);
            }
        }
    });
    // A gradient no query reaches (a key outside every mask) must be exactly 0.
    for (auto& s : scale) s = std::max(s, 1e-300);
}

}  // namespace tune::detail
