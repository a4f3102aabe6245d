// Blocked GEMM driver. Per thread and batch item, over the thread's part of C:
//   jc (NC columns) > pc (KC depth: pack B block) > ic (MC rows: pack A block)
//     > jr (NR micro-panel of B, stays in L1) > ir (MR micro-panel of A) > micro-kernel.
// Full tiles are written straight to C; edge tiles go through a local tile. Packed panels are
// zero-padded; an operand read in place has its partial edge panel packed instead.
#include "blocked_driver.hpp"

#include <algorithm>
#include <cstring>
#include <functional>

#include "tune/thread_pool.hpp"

namespace tune::cpu_gemm {
namespace {

std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }

struct Operands {
    const float* A;
    const float* B;
    float* C;
};

// Packs op(A)[i0 : i0+rows, p0 : p0+kb] into MR-row panels: panel q holds element (i, p) at
// [q * MR * kb + p * MR + i], rows past `rows` zero.
void pack_a(const GemmDims& d, const float* A, std::int64_t i0, std::int64_t rows,
            std::int64_t p0, std::int64_t kb, int MR, TransposeFn transpose, float* dst) {
    for (std::int64_t ir = 0; ir < rows; ir += MR, dst += MR * kb) {
        const int mr = static_cast<int>(std::min<std::int64_t>(MR, rows - ir));
        if (d.trans_a) {  // A is k x m: each p has the panel's rows contiguous
            const float* src = A + p0 * d.m + i0 + ir;
            for (std::int64_t p = 0; p < kb; ++p, src += d.m) {
                float* out = dst + p * MR;
                for (int i = 0; i < mr; ++i) out[i] = src[i];
                for (int i = mr; i < MR; ++i) out[i] = 0.0f;
            }
        } else {  // A is m x k: transpose, up to kMaxTransposeRows rows at a time
            for (int i = 0; i < mr; i += kMaxTransposeRows) {
                const int rows = std::min(kMaxTransposeRows, mr - i);
                transpose(A + (i0 + ir + i) * d.k + p0, d.k, rows, kb, dst + i, MR);
            }
            if (mr < MR)
                for (std::int64_t p = 0; p < kb; ++p)
                    for (int i = mr; i < MR; ++i) dst[p * MR + i] = 0.0f;
        }
    }
}

// Packs op(B)[p0 : p0+kb, j0 : j0+cols] into NR-column panels: panel q holds element (p, j)
// at [q * NR * kb + p * NR + j], columns past `cols` zero.
void pack_b(const GemmDims& d, const float* B, std::int64_t p0, std::int64_t kb,
            std::int64_t j0, std::int64_t cols, int NR, TransposeFn transpose, float* dst) {
    for (std::int64_t jr = 0; jr < cols; jr += NR, dst += NR * kb) {
        const int nr = static_cast<int>(std::min<std::int64_t>(NR, cols - jr));
        if (!d.trans_b) {  // B is k x n: rows of the panel are contiguous
            const float* src = B + p0 * d.n + j0 + jr;
            for (std::int64_t p = 0; p < kb; ++p, src += d.n) {
                float* out = dst + p * NR;
                for (int j = 0; j < nr; ++j) out[j] = src[j];
                for (int j = nr; j < NR; ++j) out[j] = 0.0f;
            }
        } else {  // B is n x k: transpose, up to kMaxTransposeRows columns at a time
            for (int j = 0; j < nr; j += kMaxTransposeRows) {
                const int rows = std::min(kMaxTransposeRows, nr - j);
                transpose(B + (j0 + jr + j) * d.k + p0, d.k, rows, kb, dst + j, NR);
            }
            if (nr < NR)
                for (std::int64_t p = 0; p < kb; ++p)
                    for (int j = nr; j < NR; ++j) dst[p * NR + j] = 0.0f;
        }
    }
}

struct Sizes {
    std::int64_t kc, a_floats, b_floats;
};

Sizes sizes(const GemmDims& d, const Blocking& b) {
    const int MR = b.ukernel->mr, NR = b.ukernel->nr;
    const std::int64_t kc = std::min(b.kc, d.k);
    const std::int64_t a_rows = b.pack_a ? std::min(b.mc, round_up(d.m, MR)) : MR;
    const std::int64_t b_cols = b.pack_b ? std::min(b.nc, round_up(d.n, NR)) : NR;
    return {kc, round_up(a_rows * kc, 16), round_up(b_cols * kc, 16)};
}

// One thread's rectangle C[r0:r1, c0:c1] of one batch item.
void gemm_part(const GemmDims& d, const Blocking& bl, Operands op, std::int64_t r0,
               std::int64_t r1, std::int64_t c0, std::int64_t c1, float* ws) {
    const Ukernel& uk = *bl.ukernel;
    const int MR = uk.mr, NR = uk.nr;
    const Sizes sz = sizes(d, bl);
    float* a_buf = ws;
    float* b_buf = ws + sz.a_floats;
    alignas(64) float tile[kMaxTileElems];

    for (std::int64_t jc = c0; jc < c1; jc += bl.nc) {
        const std::int64_t nb = std::min(bl.nc, c1 - jc);
        for (std::int64_t pc = 0; pc < d.k; pc += bl.kc) {
            const std::int64_t kb = std::min(bl.kc, d.k - pc);
            const bool accumulate = pc > 0;
            const std::int64_t b_edge = nb / NR * NR;  // first column of a partial panel
            if (bl.pack_b) {
                pack_b(d, op.B, pc, kb, jc, nb, NR, uk.transpose, b_buf);
            } else if (b_edge < nb) {
                pack_b(d, op.B, pc, kb, jc + b_edge, nb - b_edge, NR, uk.transpose, b_buf);
            }
            for (std::int64_t ic = r0; ic < r1; ic += bl.mc) {
                const std::int64_t mb = std::min(bl.mc, r1 - ic);
                const std::int64_t a_edge = mb / MR * MR;
                if (bl.pack_a) {
                    pack_a(d, op.A, ic, mb, pc, kb, MR, uk.transpose, a_buf);
                } else if (a_edge < mb) {
                    pack_a(d, op.A, ic + a_edge, mb - a_edge, pc, kb, MR, uk.transpose, a_buf);
                }
                for (std::int64_t jr = 0; jr < nb; jr += NR) {
                    const int nr = static_cast<int>(std::min<std::int64_t>(NR, nb - jr));
                    const float* b;
                    std::int64_t b_stride = NR;
                    if (bl.pack_b) {
                        b = b_buf + jr * kb;
                    } else if (jr < b_edge) {
                        b = op.B + pc * d.n + jc + jr;
                        b_stride = d.n;
                    } else {
                        b = b_buf;
                    }
                    for (std::int64_t ir = 0; ir < mb; ir += MR) {
                        const int mr = static_cast<int>(std::min<std::int64_t>(MR, mb - ir));
                        const float* a;
                        std::int64_t a_stride = MR;
                        UkernelFn fn = uk.contiguous;
                        if (bl.pack_a) {
                            a = a_buf + ir * kb;
                        } else if (ir >= a_edge) {
                            a = a_buf;
                        } else if (d.trans_a) {
                            a = op.A + pc * d.m + ic + ir;
                            a_stride = d.m;
                        } else {
                            a = op.A + (ic + ir) * d.k + pc;
                            a_stride = d.k;
                            fn = uk.strided_rows;
                        }
                        float* c = op.C + (ic + ir) * d.n + jc + jr;
                        if (mr == MR && nr == NR) {
                            fn(kb, a, a_stride, b, b_stride, c, d.n, accumulate);
                            continue;
                        }
                        fn(kb, a, a_stride, b, b_stride, tile, NR, false);
                        for (int i = 0; i < mr; ++i) {
                            float* crow = c + i * d.n;
                            const float* trow = tile + i * NR;
                            if (accumulate) {
                                for (int j = 0; j < nr; ++j) crow[j] += trow[j];
                            } else {
                                std::memcpy(crow, trow, sizeof(float) * static_cast<std::size_t>(nr));
                            }
                        }
                    }
                }
            }
        }
    }
}

}  // namespace

std::size_t workspace_floats_per_thread(const GemmDims& d, const Blocking& b) {
    const Sizes sz = sizes(d, b);
    return static_cast<std::size_t>(sz.a_floats + sz.b_floats);
}

void blocked_gemm(const GemmDims& d, const Blocking& bl, const float* A, const float* B,
                  float* C, float* workspace, ThreadPool* pool) {
    const int MR = bl.ukernel->mr, NR = bl.ukernel->nr;
    const std::size_t per_thread = workspace_floats_per_thread(d, bl);
    const std::int64_t tile = bl.split == Split::m ? MR : NR;
    const std::int64_t extent = bl.split == Split::m ? d.m : d.n;
    const std::int64_t tiles = (extent + tile - 1) / tile;

    auto part = [&](int t) {
        // Thread t owns a contiguous, tile-aligned range of rows (split m) or columns (split n).
        const std::int64_t lo = std::min(extent, tiles * t / bl.threads * tile);
        const std::int64_t hi = std::min(extent, tiles * (t + 1) / bl.threads * tile);
        if (lo >= hi) return;
        float* ws = workspace + per_thread * static_cast<std::size_t>(t);
        for (std::int64_t item = 0; item < d.batch; ++item) {
            const Operands op{A + item * d.m * d.k, B + item * d.k * d.n, C + item * d.m * d.n};
            if (bl.split == Split::m) {
                gemm_part(d, bl, op, lo, hi, 0, d.n, ws);
            } else {
                gemm_part(d, bl, op, 0, d.m, lo, hi, ws);
            }
        }
    };
    if (bl.threads == 1 || pool == nullptr) {
        for (int t = 0; t < bl.threads; ++t) part(t);
    } else {
        pool->parallel_for(bl.threads, part);
    }
}

}  // namespace tune::cpu_gemm
