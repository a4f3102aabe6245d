// cuda.attention.mma_backward: the attention gradients of attention_backward.h (same two passes,
// same dS workspace, same tile visits) with every product on mma.sync m16n8k16 (sm_80+, bf16 /
// f16 in, f32 accumulate). Each warp owns 16 or 32 rows of its block's tile:
//   pass 0, one block per (key tile, kv head), warps split the keys: S^T = K Q^T, P^T, then
//     dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - D), dK += dS^T Q over the group's query
//     heads and the query tiles that see the key tile. Computing the transposes keeps P^T and
//     dS^T in registers as A operands (the accumulator layout is the A layout), so no tile goes
//     through shared memory; the sums run in a fixed order (deterministic, no atomics);
//   pass 1, one block per (query tile, query head), warps split the rows: dQ += dS K, with dS
//     recomputed (S = Q K^T, dP = dO V^T) or read back from the workspace (STORE).
// dO, P and dS enter the products rounded to the 16-bit input type; with SPLIT each also enters
// as its rounding residual (a second 16-bit term), which brings bf16 to f32-level accuracy.
#include "common.cuh"
#include "attention_softmax.cuh"

namespace libtune {

template <int M, int N>
__device__ __forceinline__ void zero_tiles(float (&x)[M][N][4]) {
#pragma unroll
    for (int i = 0; i < M; ++i)
#pragma unroll
        for (int j = 0; j < N; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) x[i][j][e] = 0.f;
}

// acc0 += A B0 and acc1 += A B1 for one 16-row A fragment `a` and the two 8-column halves of
// an ldmatrix x4 B load `r` (B0 = r[0..1], B1 = r[2..3]), in this order: A B, then with A_LO
// the residual a_lo times B, then with B_LO A times B's residual (the load `rl`).
template <int ELEM, int A_LO, int B_LO>
__device__ __forceinline__ void mma_pair(float (&acc0)[4], float (&acc1)[4], const unsigned (&a)[4],
                                         const unsigned (&a_lo)[4], const unsigned (&r)[4], const unsigned (&rl)[4]) {
    const unsigned b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
    mma<ELEM>(acc0, a, b0);
    mma<ELEM>(acc1, a, b1);
    if constexpr (A_LO != 0) {
        mma<ELEM>(acc0, a_lo, b0);
        mma<ELEM>(acc1, a_lo, b1);
    }
    if constexpr (B_LO != 0) {
        const unsigned l0[2] = {rl[0], rl[1]}, l1[2] = {rl[2], rl[3]};
        mma<ELEM>(acc0, a, l0);
        mma<ELEM>(acc1, a, l1);
    }
}

// acc[i][j] += A B^T over K_EXT columns for a warp: A is MI 16-row slices of `a`, B the n x k
// tile `b` whose rows (8 per j) are the n dimension; rows of all tiles are ld elements apart.
// A_LO / B_LO: a_lo / b_lo hold the rounding residual of A / B, and its product is added too.
template <int ELEM, int K_EXT, int A_LO, int B_LO, int MI, int NI>
__device__ __forceinline__ void mma_nk(float (&acc)[MI][NI][4], const u16* a, const u16* a_lo, const u16* b,
                                       const u16* b_lo, int ld, int lane) {
#pragma unroll
    for (int kk = 0; kk < K_EXT; kk += 16) {
        unsigned af[MI][4], al[MI][4];
#pragma unroll
        for (int i = 0; i < MI; ++i) {
            ldmatrix_x4(af[i], a + (i * 16 + lane % 16) * ld + kk + (lane / 16) * 8);
            if constexpr (A_LO != 0) ldmatrix_x4(al[i], a_lo + (i * 16 + lane % 16) * ld + kk + (lane / 16) * 8);
        }
#pragma unroll
        for (int j = 0; j < NI; j += 2) {
            const int at = (j * 8 + lane % 8 + (lane / 16) * 8) * ld + kk + ((lane / 8) % 2) * 8;
            unsigned r[4], rl[4];
            ldmatrix_x4(r, b + at);
            if constexpr (B_LO != 0) ldmatrix_x4(rl, b_lo + at);
#pragma unroll
            for (int i = 0; i < MI; ++i) mma_pair<ELEM, A_LO, B_LO>(acc[i][j], acc[i][j + 1], af[i], al[i], r, rl);
        }
    }
}

// acc[i][j] += S B for a warp: S the f32 accumulators s (their layout is the A layout; its
// NS 8-column slices are the k dimension) rounded to 16 bits, B the k x n tile `b` whose rows
// are k (ldmatrix .trans), ld elements apart. S_LO: S's rounding residual is multiplied too;
// B_LO: b_lo holds B's rounding residual, multiplied by the rounded S.
template <int ELEM, int S_LO, int B_LO, int MI, int NS, int ND>
__device__ __forceinline__ void mma_kn(float (&acc)[MI][ND][4], const float (&s)[MI][NS][4], const u16* b,
                                       const u16* b_lo, int ld, int lane) {
#pragma unroll
    for (int kk = 0; kk < NS * 8; kk += 16) {
        unsigned sa[MI][4], sl[MI][4];
#pragma unroll
        for (int i = 0; i < MI; ++i) p_fragments<ELEM, S_LO>(&s[i][kk / 8][0], sa[i], sl[i]);
#pragma unroll
        for (int j = 0; j < ND; j += 2) {
            const int at = (kk + lane % 8 + ((lane / 8) % 2) * 8) * ld + j * 8 + (lane / 16) * 8;
            unsigned r[4], rl[4];
            ldmatrix_x4_trans(r, b + at);
            if constexpr (B_LO != 0) ldmatrix_x4_trans(rl, b_lo + at);
#pragma unroll
            for (int i = 0; i < MI; ++i) mma_pair<ELEM, S_LO, B_LO>(acc[i][j], acc[i][j + 1], sa[i], sl[i], r, rl);
        }
    }
}

template <int ELEM, int HEAD_DIM, int Q_TILE, int K_TILE, int WARPS, int STORE, int SPLIT>
__global__ void __launch_bounds__(WARPS * 32) attention_backward_mma(AttentionBackwardParams b) {
    constexpr int kThreads = WARPS * 32, kLd = HEAD_DIM + 8, kChunks = HEAD_DIM / 8;
    constexpr int kKeyRows = K_TILE / WARPS, kQueryRows = Q_TILE / WARPS;  // a warp's rows: pass 0, pass 1
    constexpr int kMiK = kKeyRows / 16, kMiQ = kQueryRows / 16;
    // Scores are computed in chunks of at most 32 query columns (pass 0) or keys (pass 1), so
    // the registers they take do not grow with the tiles.
    constexpr int kSubQ = Q_TILE < 32 ? Q_TILE : 32, kSubK = K_TILE < 32 ? K_TILE : 32;
    constexpr int kNiSubQ = kSubQ / 8, kNiSubK = kSubK / 8, kNiD = HEAD_DIM / 8;
    static_assert(kKeyRows % 16 == 0 && kQueryRows % 16 == 0 && HEAD_DIM % 16 == 0, "tile shape");
    static_assert(kNiSubQ % 2 == 0 && kNiSubK % 2 == 0 && kNiD % 2 == 0, "B fragments load in pairs of 8 columns");

    // Layout mirrored by tune::gpu_attention::backward_mma_shared_bytes; rows padded by 8 elements.
    extern __shared__ __align__(128) unsigned char smem_raw[];
    u16* sq = reinterpret_cast<u16*>(smem_raw);  // Q_TILE x kLd
    u16* sdo = sq + Q_TILE * kLd;                // Q_TILE x kLd: dO rounded
    u16* sdl = sdo + Q_TILE * kLd;               // SPLIT: dO's rounding residual
    u16* sk = sdl + (SPLIT ? Q_TILE * kLd : 0);  // K_TILE x kLd
    u16* sv = sk + K_TILE * kLd;                 // K_TILE x kLd
    float* s_lse = reinterpret_cast<float*>(sv + K_TILE * kLd);  // Q_TILE: LSE in base 2
    float* s_delta = s_lse + Q_TILE;                             // Q_TILE: rowsum(dO O)

    const AttentionParams& p = b.a;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
    const RowMap map = row_map(p, 0);  // a row tile is one query head's positions
    const long long group = map.group, shift = p.kv_len - p.q_len;
    const float log2e = 1.4426950408889634f, scale = p.scale_log2 * 0.6931471805599453f;
    const u16* q = static_cast<const u16*>(p.q);
    const u16* k = static_cast<const u16*>(p.k);
    const u16* v = static_cast<const u16*>(p.v);

    // Rows [row0, row_end) of the query head whose first row is `head_row`: Q, dO (rounded and
    // its residual), LSE and rowsum(dO O); zero past the end. Waits for every copy in flight.
    auto load_rows = [&](long long head_row, long long row0, long long row_end) {
        for (int c = tid; c < Q_TILE * kChunks; c += kThreads) {
            const int r = c / kChunks, col = (c % kChunks) * 8;
            const bool ok = row0 + r < row_end;
            cp_async16(sq + r * kLd + col, ok ? q + (head_row + row0 + r) * HEAD_DIM + col : q, ok);
        }
        cp_async_commit();
        for (int c = tid; c < Q_TILE * HEAD_DIM / 2; c += kThreads) {
            const int r = c / (HEAD_DIM / 2), col = (c % (HEAD_DIM / 2)) * 2;
            float x0 = 0.f, x1 = 0.f;
            if (row0 + r < row_end) {
                const float* d = b.dout + (head_row + row0 + r) * HEAD_DIM + col;
                x0 = d[0], x1 = d[1];
            }
            const unsigned hi = pack_half2<ELEM>(x0, x1);
            *reinterpret_cast<unsigned*>(sdo + r * kLd + col) = hi;
            if constexpr (SPLIT != 0) {
                float lo0, lo1;
                unpack_half2<ELEM>(hi, lo0, lo1);
                *reinterpret_cast<unsigned*>(sdl + r * kLd + col) = pack_half2<ELEM>(x0 - lo0, x1 - lo1);
            }
        }
        for (int r = warp; r < Q_TILE; r += WARPS) {  // a warp per row: lanes split the head dim
            const long long row = head_row + row0 + r;
            const bool ok = row0 + r < row_end;
            float delta = 0.f;
            if (ok)
                for (int c = lane; c < HEAD_DIM; c += 32) delta += b.dout[row * HEAD_DIM + c] * p.o[row * HEAD_DIM + c];
#pragma unroll
            for (int m = 16; m >= 1; m /= 2) delta += __shfl_xor_sync(0xffffffffu, delta, m);
            if (lane == 0) {
                s_delta[r] = delta;
                s_lse[r] = ok ? p.lse[row] * log2e : 0.f;  // -inf only for a row that sees no key: never used
            }
        }
        cp_async_wait<0>();
    };
    // Keys [key0, key0 + K_TILE) of (batch, kv_head): K, and V when `with_v`; zero past the end.
    auto load_keys = [&](long long batch, long long kv_head, long long key0, bool with_v) {
        for (int c = tid; c < K_TILE * kChunks; c += kThreads) {
            const int r = c / kChunks, col = (c % kChunks) * 8;
            const bool ok = key0 + r < p.kv_len;
            const long long at = ok ? kv_offset(p, batch, kv_head, key0 + r, HEAD_DIM) + col : 0;
            cp_async16(sk + r * kLd + col, k + at, ok);
            if (with_v) cp_async16(sv + r * kLd + col, v + at, ok);
        }
        cp_async_commit();
    };
    if (b.pass == 0) {
        const long long batch = blockIdx.y / p.kv_heads, kv_head = blockIdx.y % p.kv_heads;
        const long long key0 = (long long)blockIdx.x * K_TILE, kv_row = (batch * p.kv_heads + kv_head) * p.kv_len;
        const long long warp_key0 = key0 + warp * kKeyRows;
        const int q_tiles = (int)((p.q_len + Q_TILE - 1) / Q_TILE);
        const u16* kw = sk + warp * kKeyRows * kLd;
        const u16* vw = sv + warp * kKeyRows * kLd;
        load_keys(batch, kv_head, key0, true);  // waited for with the first row tile
        float dk[kMiK][kNiD][4], dv[kMiK][kNiD][4];
        zero_tiles(dk);
        zero_tiles(dv);

        for (long long member = 0; member < group; ++member) {
            const long long head_row = (batch * p.heads + kv_head * group + member) * p.q_len;
            for (int qt = 0; qt < q_tiles; ++qt) {
                const long long row0 = (long long)qt * Q_TILE;
                const long long row_end = row0 + Q_TILE < p.q_len ? row0 + Q_TILE : p.q_len;
                int begin, end;
                long long all_first, all_last;
                block_key_tiles(p, map, row0, row_end, K_TILE, &begin, &end, &all_first, &all_last);
                if ((int)blockIdx.x < begin || (int)blockIdx.x >= end) continue;  // the same for every thread
                __syncthreads();  // the previous tile's readers are done
                load_rows(head_row, row0, row_end);
                __syncthreads();
                // Keys some row of the tile does not see, keys past the end or rows past the end.
                const bool masked = !(key0 >= all_first && key0 + K_TILE <= all_last) || row_end - row0 < Q_TILE;
                // The query columns in chunks of kSubQ: the scores of one chunk live in registers.
#pragma unroll 1
                for (int c0 = 0; c0 < Q_TILE; c0 += kSubQ) {
                    const u16* qc = sq + c0 * kLd;
                    const u16* dc = sdo + c0 * kLd;
                    const u16* lc = sdl + c0 * kLd;
                    // S^T = K Q^T and dP^T = V dO^T: the warp's keys are the A operands, the
                    // chunk's query rows the n x k operands.
                    float st[kMiK][kNiSubQ][4], dpt[kMiK][kNiSubQ][4];
                    zero_tiles(st);
                    zero_tiles(dpt);
                    mma_nk<ELEM, HEAD_DIM, 0, 0>(st, kw, kw, qc, qc, kLd, lane);
                    mma_nk<ELEM, HEAD_DIM, 0, SPLIT>(dpt, vw, vw, dc, lc, kLd, lane);
                    // P^T = exp2(scale S^T - LSE of the query), 0 where masked. Element e of
                    // slice (i, j): key row g + 8 (e / 2), query column c0 + 8 j + 2 t + e % 2.
#pragma unroll
                    for (int i = 0; i < kMiK; ++i)
#pragma unroll
                        for (int j = 0; j < kNiSubQ; ++j)
#pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                const int col = c0 + j * 8 + 2 * t + e % 2;
                                const long long key = warp_key0 + i * 16 + g + 8 * (e / 2);
                                bool visible = true;
                                if (masked) {
                                    visible = row0 + col < row_end && key < p.kv_len;
                                    if (visible) {
                                        long long first, last;
                                        attention_key_range(map.position(row0 + col) + shift, p.kv_len, p.causal,
                                                            p.window, &first, &last);
                                        visible = key >= first && key < last;
                                    }
                                }
                                st[i][j][e] = visible ? exp2f(st[i][j][e] * p.scale_log2 - s_lse[col]) : 0.f;
                            }
                    // dV += P^T dO: P^T from registers (its accumulator layout is the A layout),
                    // dO the k x n operand (query rows are k).
                    mma_kn<ELEM, SPLIT, SPLIT>(dv, st, dc, lc, kLd, lane);
                    // dS^T = P^T (dP^T - D) in place of P^T; STORE writes it out.
#pragma unroll
                    for (int i = 0; i < kMiK; ++i)
#pragma unroll
                        for (int j = 0; j < kNiSubQ; ++j)
#pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                const int col = c0 + j * 8 + 2 * t + e % 2;
                                const long long key = warp_key0 + i * 16 + g + 8 * (e / 2);
                                st[i][j][e] *= dpt[i][j][e] - s_delta[col];
                                if (STORE && row0 + col < row_end && key < p.kv_len)
                                    b.ds[(head_row + row0 + col) * p.kv_len + key] = st[i][j][e];
                            }
                    // dK += dS^T Q: Q the k x n operand.
                    mma_kn<ELEM, SPLIT, 0>(dk, st, qc, qc, kLd, lane);
                }
            }
        }
        cp_async_wait<0>();  // a key tile no query tile sees still has its copies in flight
#pragma unroll
        for (int i = 0; i < kMiK; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const long long key = warp_key0 + i * 16 + g + 8 * h;
                if (key >= p.kv_len) continue;
#pragma unroll
                for (int j = 0; j < kNiD; ++j) {
                    const long long at = (kv_row + key) * HEAD_DIM + j * 8 + 2 * t;
                    *reinterpret_cast<float2*>(b.dk + at) = make_float2(dk[i][j][2 * h] * scale, dk[i][j][2 * h + 1] * scale);
                    *reinterpret_cast<float2*>(b.dv + at) = make_float2(dv[i][j][2 * h], dv[i][j][2 * h + 1]);
                }
            }
        return;
    }

    const long long batch = blockIdx.y / p.heads, head = blockIdx.y % p.heads, kv_head = head / group;
    const long long head_row = (batch * p.heads + head) * p.q_len;
    const long long row0 = (long long)blockIdx.x * Q_TILE;
    const long long row_end = row0 + Q_TILE < p.q_len ? row0 + Q_TILE : p.q_len;
    const int warp_row = warp * kQueryRows;  // the warp's first row in the tile
    int begin, end;
    long long all_first, all_last;
    block_key_tiles(p, map, row0, row_end, K_TILE, &begin, &end, &all_first, &all_last);
    load_rows(head_row, row0, row_end);  // the first key tile's barrier publishes them
    const u16* qw = sq + warp_row * kLd;
    const u16* dw = sdo + warp_row * kLd;
    const u16* lw = sdl + warp_row * kLd;
    // The key range of each row this lane holds: rows g and g + 8 of each 16-row slice.
    long long first[kMiQ][2], last[kMiQ][2];
#pragma unroll
    for (int i = 0; i < kMiQ; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const long long r = row0 + warp_row + i * 16 + g + 8 * h;
            first[i][h] = last[i][h] = 0;
            if (r < row_end) attention_key_range(map.position(r) + shift, p.kv_len, p.causal, p.window, &first[i][h], &last[i][h]);
        }
    float dq[kMiQ][kNiD][4];
    zero_tiles(dq);

    for (int kt = begin; kt < end; ++kt) {
        const long long key0 = (long long)kt * K_TILE;
        __syncthreads();  // the previous tile's readers are done
        load_keys(batch, kv_head, key0, !STORE);
        cp_async_wait<0>();
        __syncthreads();
        const bool masked = !(key0 >= all_first && key0 + K_TILE <= all_last);
        // The keys in chunks of kSubK: the scores of one chunk live in registers.
#pragma unroll 1
        for (int c0 = 0; c0 < K_TILE; c0 += kSubK) {
            const u16* kc = sk + c0 * kLd;
            const u16* vc = sv + c0 * kLd;
            // dS of the chunk; element e of slice (i, j): row g + 8 (e / 2), key c0 + 8 j + 2 t + e % 2.
            float s[kMiQ][kNiSubK][4];
            if constexpr (STORE != 0) {
#pragma unroll
                for (int i = 0; i < kMiQ; ++i)
#pragma unroll
                    for (int j = 0; j < kNiSubK; ++j)
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const long long r = row0 + warp_row + i * 16 + g + 8 * (e / 2);
                            const long long key = key0 + c0 + j * 8 + 2 * t + e % 2;
                            s[i][j][e] = r < row_end && key < p.kv_len ? b.ds[(head_row + r) * p.kv_len + key] : 0.f;
                        }
            } else {
                float dp[kMiQ][kNiSubK][4];
                zero_tiles(s);
                zero_tiles(dp);
                // S = Q K^T and dP = dO V^T: K and V rows (keys) are the n x k operands.
                mma_nk<ELEM, HEAD_DIM, 0, 0>(s, qw, qw, kc, kc, kLd, lane);
                mma_nk<ELEM, HEAD_DIM, SPLIT, 0>(dp, dw, lw, vc, vc, kLd, lane);
#pragma unroll
                for (int i = 0; i < kMiQ; ++i)
#pragma unroll
                    for (int j = 0; j < kNiSubK; ++j)
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int h = e / 2, local = warp_row + i * 16 + g + 8 * h;
                            const long long key = key0 + c0 + j * 8 + 2 * t + e % 2;
                            // A row past the end has the empty key range [0, 0): it sees nothing.
                            const bool visible = !masked || (key >= first[i][h] && key < last[i][h]);
                            const bool live = visible && row0 + local < row_end;
                            const float pe = live ? exp2f(s[i][j][e] * p.scale_log2 - s_lse[local]) : 0.f;
                            s[i][j][e] = pe * (dp[i][j][e] - s_delta[local]);
                        }
            }
            // dQ += dS K: dS from registers, K the k x n operand (keys are k).
            mma_kn<ELEM, SPLIT, 0>(dq, s, kc, kc, kLd, lane);
        }
    }
#pragma unroll
    for (int i = 0; i < kMiQ; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const long long r = row0 + warp_row + i * 16 + g + 8 * h;
            if (r >= row_end) continue;
#pragma unroll
            for (int j = 0; j < kNiD; ++j)
                *reinterpret_cast<float2*>(b.dq + (head_row + r) * HEAD_DIM + j * 8 + 2 * t) =
                    make_float2(dq[i][j][2 * h] * scale, dq[i][j][2 * h + 1] * scale);
        }
}

}  // namespace libtune
