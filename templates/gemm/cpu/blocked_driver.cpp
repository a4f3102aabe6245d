// Blocked GEMM driver. Per thread and batch item, over the thread's part of C:
//   jc (NC columns) > pc (KC depth: pack B block) > ic (MC rows: pack A block)
//     > jr (NR micro-panel of B, stays in L1) > ir (MR micro-panel of A) > micro-kernel.
// Full tiles are written straight to C; edge tiles go through a local tile. Packed panels are
// zero-padded; an operand read in place has its partial edge panel packed instead. When one MC
// block covers the thread's rows, B is packed panel by panel just before use (no reuse to gain
// from a whole packed block). After a tile's last k-block, the epilogue (bias/act/residual, or
// SwiGLU's silu(gate) * up) is applied to it while it is still in L1.
#include "blocked_driver.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>

#include "tune/bf16.hpp"
#include "tune/error.hpp"
#include "tune/thread_pool.hpp"

namespace tune::cpu_gemm {
namespace {

// One thread's work on one batch item: A times one or two B operands. Operand 0 lands in C;
// operand 1 (SwiGLU's up) in a rows x ld_up scratch covering the thread's rows and the
// current NC block. `finish` runs on each C tile after its last k-block.
struct Job {
    const void* A;     // S (the operands' element type, see gemm_part)
    const void* B[2];
    int operands;
    float* C;
    float* up;
    std::int64_t ld_up;
    const Epilogue* epilogue;  // operands == 1 only; null = plain store
    const float* residual;     // this item's residual (epilogue->residual offset)
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

inline std::uint16_t bf16_bits(float x) { return to_bf16(x).bits; }
inline std::uint16_t bf16_bits(bf16 x) { return x.bits; }

// Packing for bf16 kernels (S = float rounds to bf16, S = bf16 copies) to depth kb2 (kb
// rounded up to the kernel's k_align, an even number), zero past kb. A: panel q holds element
// (i, p) at [q * MR * kb2 + (p / 2) * 2 * MR + 2 * i + p % 2] (VNNI pairs), or at
// [q * MR * kb2 + i * kb2 + p] when `rows_layout`; rows past `rows` zero.
template <class S>
void pack_a_vnni(const GemmDims& d, const S* A, std::int64_t i0, std::int64_t rows, std::int64_t p0,
                 std::int64_t kb, std::int64_t kb2, int MR, bool rows_layout, std::uint16_t* dst) {
    // Position of (i, p) in the panel.
    const std::int64_t row_step = rows_layout ? kb2 : 2;
    auto at = [&](std::int64_t p) { return rows_layout ? p : (p >> 1) * 2 * MR + (p & 1); };
    for (std::int64_t ir = 0; ir < rows; ir += MR, dst += MR * kb2) {
        const int mr = static_cast<int>(std::min<std::int64_t>(MR, rows - ir));
        if (d.trans_a) {  // A is k x m: rows contiguous for each p
            for (std::int64_t p = 0; p < kb2; ++p) {
                std::uint16_t* out = dst + at(p);
                const S* src = A + (p0 + p) * d.m + i0 + ir;
                const int valid = p < kb ? mr : 0;
                for (int i = 0; i < valid; ++i) out[i * row_step] = bf16_bits(src[i]);
                for (int i = valid; i < MR; ++i) out[i * row_step] = 0;
            }
        } else {  // A is m x k: each row's depth contiguous
            for (int i = 0; i < MR; ++i) {
                std::uint16_t* out = dst + i * row_step;
                const S* src = A + (i0 + ir + i) * d.k + p0;
                const std::int64_t valid = i < mr ? kb : 0;
                if (rows_layout) {
                    for (std::int64_t p = 0; p < valid; ++p) out[p] = bf16_bits(src[p]);
                    for (std::int64_t p = valid; p < kb2; ++p) out[p] = 0;
                } else {
                    for (std::int64_t p = 0; p < valid; ++p) out[at(p)] = bf16_bits(src[p]);
                    for (std::int64_t p = valid; p < kb2; ++p) out[at(p)] = 0;
                }
            }
        }
    }
}

// B is n x k in bf16 with an even row length (p0 and so kb even too): the VNNI pair (p, p+1) of column j
// is one 32-bit word of that column, so a panel is the 32-bit transpose of its columns' words,
// done 16 x 16 in registers by the ISA's f32 transpose (moves only: bit patterns are kept).
// Before, each bf16 was stored on its own at a 2 * NR stride: that made B packing the
// bottleneck of bf16 decode shapes, where each packed panel is used by only a few rows.
void pack_b_vnni_words(const GemmDims& d, const bf16* B, std::int64_t p0, std::int64_t kb, std::int64_t kb2,
                       std::int64_t j0, int nr, int NR, TransposeFn transpose, std::uint16_t* dst) {
    const std::int64_t ld = d.k / 2, words = kb / 2;  // kb is even too
    const auto* src = reinterpret_cast<const float*>(B + j0 * d.k + p0);
    auto* out = reinterpret_cast<float*>(dst);
    for (int j = 0; j < nr; j += kMaxTransposeRows)
        transpose(src + j * ld, ld, std::min(kMaxTransposeRows, nr - j), words, out + j, NR);
    if (nr < NR)
        for (std::int64_t q = 0; q < words; ++q)
            std::memset(dst + (q * NR + nr) * 2, 0, sizeof(std::uint32_t) * static_cast<std::size_t>(NR - nr));
    std::memset(dst + words * NR * 2, 0, sizeof(std::uint32_t) * static_cast<std::size_t>((kb2 / 2 - words) * NR));
}

// B (VNNI pairs): panel q holds element (p, j) at [q * NR * kb2 + (p / 2) * 2 * NR + 2 * j + p % 2],
// columns past `cols` zero.
template <class S>
void pack_b_vnni(const GemmDims& d, const S* B, std::int64_t p0, std::int64_t kb, std::int64_t kb2,
                 std::int64_t j0, std::int64_t cols, int NR, TransposeFn transpose, std::uint16_t* dst) {
    for (std::int64_t jr = 0; jr < cols; jr += NR, dst += NR * kb2) {
        const int nr = static_cast<int>(std::min<std::int64_t>(NR, cols - jr));
        if constexpr (std::is_same_v<S, bf16>) {
            if (d.trans_b && d.k % 2 == 0 && p0 % 2 == 0) {
                pack_b_vnni_words(d, B, p0, kb, kb2, j0 + jr, nr, NR, transpose, dst);
                continue;
            }
        }
        if (!d.trans_b) {  // B is k x n: a pair of rows interleaves into one panel row
            for (std::int64_t p = 0; p < kb2; p += 2) {
                std::uint16_t* out = dst + p * NR;
                const S* r0 = B + (p0 + p) * d.n + j0 + jr;
                const S* r1 = r0 + d.n;
                const int first = p < kb ? nr : 0, second = p + 1 < kb ? nr : 0;
                for (int j = 0; j < second; ++j) {
                    out[2 * j] = bf16_bits(r0[j]);
                    out[2 * j + 1] = bf16_bits(r1[j]);
                }
                for (int j = second; j < first; ++j) {
                    out[2 * j] = bf16_bits(r0[j]);
                    out[2 * j + 1] = 0;
                }
                for (int j = first; j < NR; ++j) out[2 * j] = out[2 * j + 1] = 0;
            }
        } else {  // B is n x k: each column's depth contiguous
            for (int j = 0; j < NR; ++j) {
                std::uint16_t* out = dst + 2 * j;
                const S* src = B + (j0 + jr + j) * d.k + p0;
                const std::int64_t valid = j < nr ? kb : 0;
                for (std::int64_t p = 0; p < valid; ++p) out[(p >> 1) * 2 * NR + (p & 1)] = bf16_bits(src[p]);
                for (std::int64_t p = valid; p < kb2; ++p) out[(p >> 1) * 2 * NR + (p & 1)] = 0;
            }
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
    // bf16 panels hold 2-byte elements at a depth padded to k_align (k = 1 still packs a full
    // k_align-deep panel): floats = ceil(elements / 2).
    const std::int64_t depth = b.ukernel->bf16 ? (round_up(kc, b.ukernel->k_align) + 1) / 2 : kc;
    return {kc, round_up(a_rows * depth, 16), round_up(b_cols * depth, 16)};
}

// Computes one MR x NR (or edge mr x nr) tile into c (ldc): full tiles directly, edge tiles
// through a local tile so nothing past the edge is written.
// kernel(c, ldc, accumulate) runs the micro-kernel on the tile's operands.
template <class Kern>
inline void compute_tile(Kern&& kernel, float* c, std::int64_t ldc, int mr, int nr, int MR, int NR, bool accumulate,
                         float* tile) {
    if (mr == MR && nr == NR) {
        kernel(c, ldc, accumulate);
        return;
    }
    kernel(tile, NR, false);
    for (int i = 0; i < mr; ++i) {
        float* crow = c + i * ldc;
        const float* trow = tile + i * NR;
        if (accumulate) {
            for (int j = 0; j < nr; ++j) crow[j] += trow[j];
        } else {
            std::memcpy(crow, trow, sizeof(float) * static_cast<std::size_t>(nr));
        }
    }
}

// One thread's rectangle C[r0:r1, c0:c1] of one batch item; the operands hold S (float, or
// bf16 for a bf16 kernel). A bf16 kernel (uk.bf16) always packs both operands, VNNI-style
// (packing rounds float operands to bf16); the f32 kernels take S = float.
template <class S>
void gemm_part(const GemmDims& d, const Blocking& bl, const Job& job, std::int64_t r0,
               std::int64_t r1, std::int64_t c0, std::int64_t c1, float* ws) {
    const Ukernel& uk = *bl.ukernel;
    const int MR = uk.mr, NR = uk.nr;
    const bool vnni = uk.bf16 != nullptr;
    const Sizes sz = sizes(d, bl);
    const S* A = static_cast<const S*>(job.A);
    const S* B[2] = {static_cast<const S*>(job.B[0]), static_cast<const S*>(job.B[1])};
    float* a_buf = ws;
    float* b_buf[2] = {ws + sz.a_floats, ws + sz.a_floats + sz.b_floats};
    alignas(64) float tile[kMaxTileElems];
    // Packed bf16 panels live in the same scratch (sized for the padded depth by sizes()).
    auto* a_vnni = reinterpret_cast<std::uint16_t*>(a_buf);
    std::uint16_t* b_vnni[2] = {reinterpret_cast<std::uint16_t*>(b_buf[0]), reinterpret_cast<std::uint16_t*>(b_buf[1])};
    auto padded = [&](std::int64_t kb) { return round_up(kb, uk.k_align); };
    auto pack_b_block = [&](int q, std::int64_t p0, std::int64_t kb, std::int64_t j0, std::int64_t cols) {
        if (vnni) {
            pack_b_vnni(d, B[q], p0, kb, padded(kb), j0, cols, NR, uk.transpose, b_vnni[q]);
        } else if constexpr (std::is_same_v<S, float>) {
            pack_b(d, B[q], p0, kb, j0, cols, NR, uk.transpose, b_buf[q]);
        }
    };
    auto pack_a_block = [&](std::int64_t i0, std::int64_t rows, std::int64_t p0, std::int64_t kb) {
        if (vnni) {
            pack_a_vnni(d, A, i0, rows, p0, kb, padded(kb), MR, uk.a_rows, a_vnni);
        } else if constexpr (std::is_same_v<S, float>) {
            pack_a(d, A, i0, rows, p0, kb, MR, uk.transpose, a_buf);
        }
    };

    for (std::int64_t jc = c0; jc < c1; jc += bl.nc) {
        const std::int64_t nb = std::min(bl.nc, c1 - jc);
        for (std::int64_t pc = 0; pc < d.k; pc += bl.kc) {
            const std::int64_t kb = std::min(bl.kc, d.k - pc);
            const bool accumulate = pc > 0;
            const bool last = pc + kb >= d.k;
            const std::int64_t b_edge = nb / NR * NR;  // first column of a partial panel
            // When one MC block covers the thread's rows (decode), a packed B panel is used
            // once: pack each NR panel right before its use, into one panel-sized buffer that
            // stays in L1, instead of the whole block through L2.
            const bool pack_b_per_panel = bl.pack_b && r1 - r0 <= bl.mc;
            const std::int64_t kb2 = vnni ? padded(kb) : kb;  // packed panel depth
            for (int q = 0; q < job.operands; ++q) {
                if (pack_b_per_panel) {
                    // packed in the jr loop
                } else if (bl.pack_b) {
                    pack_b_block(q, pc, kb, jc, nb);
                } else if (b_edge < nb) {
                    pack_b_block(q, pc, kb, jc + b_edge, nb - b_edge);
                }
            }
            for (std::int64_t ic = r0; ic < r1; ic += bl.mc) {
                const std::int64_t mb = std::min(bl.mc, r1 - ic);
                const std::int64_t a_edge = mb / MR * MR;
                if (bl.pack_a) {
                    pack_a_block(ic, mb, pc, kb);
                } else if (a_edge < mb) {
                    pack_a_block(ic + a_edge, mb - a_edge, pc, kb);
                }
                for (std::int64_t jr = 0; jr < nb; jr += NR) {
                    const int nr = static_cast<int>(std::min<std::int64_t>(NR, nb - jr));
                    const float* b[2] = {nullptr, nullptr};
                    const std::uint16_t* bv[2] = {nullptr, nullptr};
                    std::int64_t b_stride = NR;
                    for (int q = 0; q < job.operands; ++q) {
                        if (pack_b_per_panel) {
                            pack_b_block(q, pc, kb, jc + jr, nr);
                            b[q] = b_buf[q];
                            bv[q] = b_vnni[q];
                        } else if (bl.pack_b) {
                            b[q] = b_buf[q] + jr * kb;
                            bv[q] = b_vnni[q] + jr * kb2;
                        } else if constexpr (std::is_same_v<S, float>) {
                            if (jr < b_edge) {
                                b[q] = B[q] + pc * d.n + jc + jr;
                                b_stride = d.n;
                            } else {
                                b[q] = b_buf[q];
                            }
                        }
                    }
                    // Operand by operand, so each B micro-panel stays in L1 across the ir loop;
                    // the MR x NR tiles of earlier operands (mb x NR of C) are still in L1/L2
                    // when the last operand's tile at the same (i, j) finishes them.
                    for (int q = 0; q < job.operands; ++q) {
                        const bool finish = last && q == job.operands - 1;
                        for (std::int64_t ir = 0; ir < mb; ir += MR) {
                            const int mr = static_cast<int>(std::min<std::int64_t>(MR, mb - ir));
                            const float* a = nullptr;
                            const std::uint16_t* av = a_vnni + ir * kb2;
                            std::int64_t a_stride = MR;
                            UkernelFn fn = uk.contiguous;
                            if (bl.pack_a) {
                                a = a_buf + ir * kb;
                            } else if (ir >= a_edge) {
                                a = a_buf;
                            } else if constexpr (std::is_same_v<S, float>) {
                                if (d.trans_a) {
                                    a = A + pc * d.m + ic + ir;
                                    a_stride = d.m;
                                } else {
                                    a = A + (ic + ir) * d.k + pc;
                                    a_stride = d.k;
                                    fn = uk.strided_rows;
                                }
                            }
                            const std::int64_t row = ic + ir, col = jc + jr;
                            float* c = job.C + row * d.n + col;
                            float* u = q == 1 ? job.up + (row - r0) * job.ld_up + (col - jc) : nullptr;
                            auto kernel = [&](float* out, std::int64_t ldo, bool acc) {
                                if (vnni) {
                                    uk.bf16(kb2 / 2, av, bv[q], out, ldo, acc);
                                } else {
                                    fn(kb, a, a_stride, b[q], b_stride, out, ldo, acc);
                                }
                            };
                            if (q == 0) {
                                compute_tile(kernel, c, d.n, mr, nr, MR, NR, accumulate, tile);
                            } else {
                                compute_tile(kernel, u, job.ld_up, mr, nr, MR, NR, accumulate, tile);
                            }
                            if (!finish) continue;
                            if (job.operands == 2) {
                                uk.glu(c, d.n, c, d.n, u, job.ld_up, mr, nr);
                            } else if (job.epilogue) {
                                const Epilogue& e = *job.epilogue;
                                uk.epilogue(c, d.n, mr, nr, e.bias ? e.bias + col : nullptr, e.act,
                                            job.residual ? job.residual + row * d.n + col : nullptr, d.n);
                            }
                        }
                    }
                }
            }
        }
    }
}

// One thread's rectangle C[r0:r1, c0:c1] of one batch item with a dot-form kernel: A (m x k)
// and the B operands (n x k) are read in place; NR rows of B at a time against every MR-row
// group of the thread's rows (the NR weight rows stay in L2 while A's rows pass), each tile
// finished (epilogue, or silu(gate) * up) as soon as its last operand is done.
template <class S>
void dot_part(const GemmDims& d, const Blocking& bl, const Job& job, std::int64_t r0, std::int64_t r1,
              std::int64_t c0, std::int64_t c1) {
    const Ukernel& uk = *bl.ukernel;
    const int MR = uk.mr, NR = uk.nr;
    const S* A = static_cast<const S*>(job.A);
    alignas(64) float up[kMaxTileElems];
    auto dot = [&](std::int64_t ic, int mr, const S* b, int nr, float* out, std::int64_t ldo) {
        if constexpr (std::is_same_v<S, float>) {
            uk.dot(d.k, A + ic * d.k, d.k, mr, b, d.k, nr, out, ldo, false);
        } else {
            uk.dot_bf16(d.k, reinterpret_cast<const std::uint16_t*>(A + ic * d.k), d.k, mr,
                        reinterpret_cast<const std::uint16_t*>(b), d.k, nr, out, ldo, false);
        }
    };
    if (job.operands == 2 && r1 - r0 <= MR) {
        // SwiGLU with one row group (decode): no weight row is read twice, so the gate rows of a
        // chunk of up to 1024 columns go first, then the chunk's up rows (into `up`), then
        // silu(g) * u. Reading each weight in long runs instead of switching every NR rows took
        // the fused form at one token from 0.92-0.98x the two GEMMs to 0.99-1.06x (bf16 and f32).
        const std::int64_t chunk = NR * std::max(1, kMaxTileElems / (MR * NR));
        const int mr = static_cast<int>(r1 - r0);
        float* c = job.C + r0 * d.n;
        for (std::int64_t j0 = c0; j0 < c1; j0 += chunk) {
            const std::int64_t cols = std::min(chunk, c1 - j0);
            for (int q = 0; q < 2; ++q)
                for (std::int64_t jr = 0; jr < cols; jr += NR) {
                    const int nr = static_cast<int>(std::min<std::int64_t>(NR, cols - jr));
                    const S* b = static_cast<const S*>(job.B[q]) + (j0 + jr) * d.k;
                    if (q == 0) {
                        dot(r0, mr, b, nr, c + j0 + jr, d.n);
                    } else {
                        dot(r0, mr, b, nr, up + jr, chunk);
                    }
                }
            uk.glu(c + j0, d.n, c + j0, d.n, up, chunk, mr, cols);
        }
        return;
    }
    for (std::int64_t jc = c0; jc < c1; jc += NR) {
        const int nr = static_cast<int>(std::min<std::int64_t>(NR, c1 - jc));
        for (std::int64_t ic = r0; ic < r1; ic += MR) {
            const int mr = static_cast<int>(std::min<std::int64_t>(MR, r1 - ic));
            float* c = job.C + ic * d.n + jc;
            for (int q = 0; q < job.operands; ++q) {
                const S* b = static_cast<const S*>(job.B[q]) + jc * d.k;
                float* out = q == 0 ? c : up;
                dot(ic, mr, b, nr, out, q == 0 ? d.n : NR);
            }
            if (job.operands == 2) {
                uk.glu(c, d.n, c, d.n, up, NR, mr, nr);
            } else if (job.epilogue) {
                const Epilogue& e = *job.epilogue;
                uk.epilogue(c, d.n, mr, nr, e.bias ? e.bias + jc : nullptr, e.act,
                            job.residual ? job.residual + ic * d.n + jc : nullptr, d.n);
            }
        }
    }
}

// A dot-form kernel needs A m x k and B n x k, and operands of its own element type.
template <class S>
void check_dot(const GemmDims& d, const Ukernel& uk) {
    if (d.trans_a || !d.trans_b)
        throw Error("blocked GEMM: dot-form micro-kernel " + std::string(uk.label) +
                    " needs A m x k and B n x k (trans_b, not trans_a)");
    const bool takes_s = std::is_same_v<S, float> ? uk.dot != nullptr : uk.dot_bf16 != nullptr;
    if (!takes_s)
        throw Error("blocked GEMM: micro-kernel " + std::string(uk.label) + " does not take " +
                    (std::is_same_v<S, float> ? "f32" : "bf16") + " operands");
}

// A thread's rectangle of C: rows [r0, r1) x columns [c0, c1).
struct Rect {
    std::int64_t r0, r1, c0, c1;
};

// Runs part(t, rect) for each thread t over its contiguous, tile-aligned range of rows (split
// m: all columns) or columns (split n: all rows); empty ranges are skipped.
template <class Part>
void for_each_part(const GemmDims& d, const Blocking& bl, ThreadPool* pool, Part&& part) {
    const bool by_rows = bl.split == Split::m;
    const std::int64_t tile = by_rows ? bl.ukernel->mr : bl.ukernel->nr;
    const std::int64_t extent = by_rows ? d.m : d.n;
    const std::int64_t tiles = (extent + tile - 1) / tile;
    auto run = [&](int t) {
        const std::int64_t lo = std::min(extent, tiles * t / bl.threads * tile);
        const std::int64_t hi = std::min(extent, tiles * (t + 1) / bl.threads * tile);
        if (lo < hi) part(t, by_rows ? Rect{lo, hi, 0, d.n} : Rect{0, d.m, lo, hi});
    };
    if (bl.threads == 1 || pool == nullptr) {
        for (int t = 0; t < bl.threads; ++t) run(t);
    } else {
        pool->parallel_for(bl.threads, run);
    }
}

// Rows of C one thread can own (bounds the SwiGLU up scratch).
std::int64_t max_part_rows(const GemmDims& d, const Blocking& bl) {
    if (bl.split == Split::n) return d.m;
    const std::int64_t MR = bl.ukernel->mr, tiles = (d.m + MR - 1) / MR;
    return std::min(d.m, (tiles + bl.threads - 1) / bl.threads * MR);
}

}  // namespace

std::size_t workspace_floats_per_thread(const GemmDims& d, const Blocking& b) {
    if (b.ukernel->is_dot()) return 0;
    const Sizes sz = sizes(d, b);
    return static_cast<std::size_t>(sz.a_floats + sz.b_floats);
}

namespace {

template <class S>
void blocked_gemm_impl(const GemmDims& d, const Blocking& bl, const S* A, const S* B, float* C, float* workspace,
                       ThreadPool* pool, const Epilogue* fused) {
    const std::size_t per_thread = workspace_floats_per_thread(d, bl);
    const bool dot = bl.ukernel->is_dot();
    if (dot) check_dot<S>(d, *bl.ukernel);
    for_each_part(d, bl, pool, [&](int t, const Rect& r) {
        float* ws = workspace + per_thread * static_cast<std::size_t>(t);
        for (std::int64_t item = 0; item < d.batch; ++item) {
            const Job job{A + item * d.m * d.k, {B + item * d.k * d.n, nullptr}, 1, C + item * d.m * d.n, nullptr, 0,
                          fused, fused && fused->residual ? fused->residual + item * d.m * d.n : nullptr};
            if (dot) {
                dot_part<S>(d, bl, job, r.r0, r.r1, r.c0, r.c1);
            } else {
                gemm_part<S>(d, bl, job, r.r0, r.r1, r.c0, r.c1, ws);
            }
        }
        if (bl.ukernel->release) bl.ukernel->release();
    });
}

}  // namespace

void blocked_gemm(const GemmDims& d, const Blocking& bl, const float* A, const float* B, float* C, float* workspace,
                  ThreadPool* pool, const Epilogue* fused) {
    blocked_gemm_impl(d, bl, A, B, C, workspace, pool, fused);
}

void blocked_gemm(const GemmDims& d, const Blocking& bl, const bf16* A, const bf16* B, float* C, float* workspace,
                  ThreadPool* pool, const Epilogue* fused) {
    blocked_gemm_impl(d, bl, A, B, C, workspace, pool, fused);
}

void apply_epilogue(const GemmDims& d, const Blocking& bl, const Epilogue& e, float* C, ThreadPool* pool) {
    const EpilogueFn fn = bl.ukernel->epilogue;
    for_each_part(d, bl, pool, [&](int, const Rect& r) {
        for (std::int64_t item = 0; item < d.batch; ++item) {
            const std::int64_t at = item * d.m * d.n + r.r0 * d.n + r.c0;
            fn(C + at, d.n, r.r1 - r.r0, r.c1 - r.c0, e.bias ? e.bias + r.c0 : nullptr, e.act,
               e.residual ? e.residual + at : nullptr, d.n);
        }
    });
}

std::size_t swiglu_workspace_floats_per_thread(const GemmDims& d, const Blocking& bl) {
    if (bl.ukernel->is_dot()) return 0;  // the up tile lives on the stack
    const Sizes sz = sizes(d, bl);
    const std::int64_t up = round_up(max_part_rows(d, bl) * std::min(bl.nc, d.n), 16);
    return static_cast<std::size_t>(sz.a_floats + 2 * sz.b_floats + up);
}

namespace {

template <class S>
void blocked_swiglu_impl(const GemmDims& d, const Blocking& bl, const S* x, const S* w_gate, const S* w_up, float* out,
                         float* workspace, ThreadPool* pool) {
    if (bl.ukernel->is_dot()) {
        check_dot<S>(d, *bl.ukernel);
        for_each_part(d, bl, pool, [&](int, const Rect& r) {
            const Job job{x, {w_gate, w_up}, 2, out, nullptr, 0, nullptr, nullptr};
            dot_part<S>(d, bl, job, r.r0, r.r1, r.c0, r.c1);
        });
        return;
    }
    const Sizes sz = sizes(d, bl);
    const std::size_t per_thread = swiglu_workspace_floats_per_thread(d, bl);
    for_each_part(d, bl, pool, [&](int t, const Rect& r) {
        float* ws = workspace + per_thread * static_cast<std::size_t>(t);
        const Job job{x, {w_gate, w_up}, 2, out, ws + sz.a_floats + 2 * sz.b_floats, std::min(bl.nc, d.n), nullptr,
                      nullptr};
        gemm_part<S>(d, bl, job, r.r0, r.r1, r.c0, r.c1, ws);
        if (bl.ukernel->release) bl.ukernel->release();
    });
}

}  // namespace

void blocked_swiglu(const GemmDims& d, const Blocking& bl, const float* x, const float* w_gate, const float* w_up,
                    float* out, float* workspace, ThreadPool* pool) {
    blocked_swiglu_impl(d, bl, x, w_gate, w_up, out, workspace, pool);
}

void blocked_swiglu(const GemmDims& d, const Blocking& bl, const bf16* x, const bf16* w_gate, const bf16* w_up,
                    float* out, float* workspace, ThreadPool* pool) {
    blocked_swiglu_impl(d, bl, x, w_gate, w_up, out, workspace, pool);
}

void apply_glu(const GemmDims& d, const Blocking& bl, const float* gate, const float* up, float* out,
               ThreadPool* pool) {
    const GluFn fn = bl.ukernel->glu;
    for_each_part(d, bl, pool, [&](int, const Rect& r) {
        const std::int64_t at = r.r0 * d.n + r.c0;
        fn(out + at, d.n, gate + at, d.n, up + at, d.n, r.r1 - r.r0, r.c1 - r.c0);
    });
}

}  // namespace tune::cpu_gemm
