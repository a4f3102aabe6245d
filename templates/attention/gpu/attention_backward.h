// Attention gradients for libtune's GPU backward templates (cuda.attention.flash_backward,
// hip.attention.flash_backward): one kernel source for NVRTC and hiprtc (C++17). Plain f32
// scalar FMA arithmetic, no tensor cores: Q, K, V tiles stay 16-bit in shared memory and are
// converted on use; dO, P / dS and the row statistics are f32. Two passes of one instance:
//   pass 0, one block per (key tile, kv head): dV = sum P^T dO and dK = scale sum dS^T Q over
//     the group's query heads and the query tiles that see the key tile, in a fixed order
//     (deterministic: no atomics); STORE writes each dS tile to the O(N^2) workspace;
//   pass 1, one block per (query tile, query head): dQ = scale sum dS K over the key tiles the
//     tile sees, dS recomputed from Q, K, V, LSE and dO (STORE = 0) or read back (STORE = 1).
// P = exp(scale Q K^T - LSE) (masked) and dS = P (dO V^T - rowsum(dO O)); rowsum(dO O) is
// recomputed per query tile, so recompute mode needs no workspace. Both passes visit a
// (query tile, key tile) pair iff block_key_tiles says so, which is what lets pass 1 read back
// exactly the dS tiles pass 0 wrote.
#pragma once

#include "attention_params.h"

namespace libtune {

// bf16 / f16 bits to f32 without vendor headers (the same code on NVRTC, hiprtc and the host).
template <int ELEM>
__device__ inline float attention_input(unsigned short bits) {
    if constexpr (ELEM == 0) return __uint_as_float(unsigned(bits) << 16);
    const unsigned sign = (unsigned(bits) & 0x8000u) << 16, exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
    if (exponent == 0x1fu) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {  // zero or subnormal: mantissa x 2^-24
        const float f = float(mantissa) * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

template <int ELEM, int HEAD_DIM, int Q_TILE, int K_TILE, int THREADS, int STORE>
__global__ void __launch_bounds__(THREADS) attention_backward(AttentionBackwardParams b) {
    typedef unsigned short half_bits;
    constexpr int kKeyShare = K_TILE * HEAD_DIM / THREADS, kRowShare = Q_TILE * HEAD_DIM / THREADS;
    static_assert(kKeyShare * THREADS == K_TILE * HEAD_DIM && kRowShare * THREADS == Q_TILE * HEAD_DIM,
                  "each thread owns an equal share of the dK / dV and dQ tiles");
    // Layout mirrored by tune::gpu_attention::backward_shared_bytes; f32 arrays first (alignment).
    extern __shared__ float attention_backward_smem[];
    float* s_do = attention_backward_smem;  // Q_TILE x HEAD_DIM
    float* s_p = s_do + Q_TILE * HEAD_DIM;  // Q_TILE x K_TILE: P, then dS
    float* s_lse = s_p + Q_TILE * K_TILE;   // Q_TILE: LSE in base 2
    float* s_delta = s_lse + Q_TILE;        // Q_TILE: rowsum(dO O)
    half_bits* s_q = reinterpret_cast<half_bits*>(s_delta + Q_TILE);
    half_bits* s_k = s_q + Q_TILE * HEAD_DIM;
    half_bits* s_v = s_k + K_TILE * HEAD_DIM;

    const AttentionParams& p = b.a;
    const int tid = threadIdx.x;
    const RowMap map = row_map(p, 0);  // a row tile is one query head's positions
    const long long group = map.group, shift = p.kv_len - p.q_len;
    const float scale = p.scale_log2 * 0.6931471805599453f;
    const float log2e = 1.4426950408889634f;
    const half_bits* q = static_cast<const half_bits*>(p.q);
    const half_bits* k = static_cast<const half_bits*>(p.k);
    const half_bits* v = static_cast<const half_bits*>(p.v);

    // Rows [row0, row_end) of the query head whose first row is `head_row`: Q, dO, LSE, rowsum(dO O).
    auto load_rows = [&](long long head_row, long long row0, long long row_end) {
        for (int i = tid; i < Q_TILE * HEAD_DIM; i += THREADS) {
            const long long r = row0 + i / HEAD_DIM, at = (head_row + r) * HEAD_DIM + i % HEAD_DIM;
            s_q[i] = r < row_end ? q[at] : half_bits(0);
            s_do[i] = r < row_end ? b.dout[at] : 0.f;
        }
        for (int r = tid; r < Q_TILE; r += THREADS) {
            float delta = 0.f, lse = 0.f;
            if (row0 + r < row_end) {
                const long long row = head_row + row0 + r;
                for (int c = 0; c < HEAD_DIM; ++c) delta += b.dout[row * HEAD_DIM + c] * p.o[row * HEAD_DIM + c];
                lse = p.lse[row] * log2e;  // -inf only for a row that sees no key: never used
            }
            s_delta[r] = delta;
            s_lse[r] = lse;
        }
    };
    // Keys [key0, key0 + K_TILE) of the kv head whose first key is `kv_row` (zero past the end: never NaN).
    auto load_keys = [&](long long kv_row, long long key0, bool with_v) {
        for (int i = tid; i < K_TILE * HEAD_DIM; i += THREADS) {
            const long long key = key0 + i / HEAD_DIM, at = (kv_row + key) * HEAD_DIM + i % HEAD_DIM;
            s_k[i] = key < p.kv_len ? k[at] : half_bits(0);
            if (with_v) s_v[i] = key < p.kv_len ? v[at] : half_bits(0);
        }
    };
    // P of the tile: 0 where masked or past an end (so dS is 0 there too).
    auto probabilities = [&](long long row0, long long row_end, long long key0) {
        for (int i = tid; i < Q_TILE * K_TILE; i += THREADS) {
            const int r = i / K_TILE, j = i % K_TILE;
            const long long key = key0 + j;
            float pe = 0.f;
            if (row0 + r < row_end && key < p.kv_len) {
                long long first, last;
                attention_key_range(map.position(row0 + r) + shift, p.kv_len, p.causal, p.window, &first, &last);
                if (key >= first && key < last) {
                    float dot = 0.f;
                    for (int c = 0; c < HEAD_DIM; ++c)
                        dot += attention_input<ELEM>(s_q[r * HEAD_DIM + c]) * attention_input<ELEM>(s_k[j * HEAD_DIM + c]);
                    pe = exp2f(dot * p.scale_log2 - s_lse[r]);
                }
            }
            s_p[i] = pe;
        }
    };
    // dS = P (dO V^T - rowsum(dO O)) in place of P; STORE also writes it to the workspace.
    auto softmax_gradient = [&](long long head_row, long long row0, long long row_end, long long key0) {
        for (int i = tid; i < Q_TILE * K_TILE; i += THREADS) {
            const int r = i / K_TILE, j = i % K_TILE;
            float ds = 0.f;
            if (s_p[i] != 0.f) {
                float dp = 0.f;
                for (int c = 0; c < HEAD_DIM; ++c) dp += s_do[r * HEAD_DIM + c] * attention_input<ELEM>(s_v[j * HEAD_DIM + c]);
                ds = s_p[i] * (dp - s_delta[r]);
            }
            s_p[i] = ds;
            if (STORE && row0 + r < row_end && key0 + j < p.kv_len) b.ds[(head_row + row0 + r) * p.kv_len + key0 + j] = ds;
        }
    };

    if (b.pass == 0) {
        const long long batch = blockIdx.y / p.kv_heads, kv_head = blockIdx.y % p.kv_heads;
        const long long key0 = (long long)blockIdx.x * K_TILE, kv_row = (batch * p.kv_heads + kv_head) * p.kv_len;
        const int q_tiles = (int)((p.q_len + Q_TILE - 1) / Q_TILE);
        load_keys(kv_row, key0, true);
        float dk[kKeyShare], dv[kKeyShare];
        for (int x = 0; x < kKeyShare; ++x) dk[x] = dv[x] = 0.f;
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
                probabilities(row0, row_end, key0);
                __syncthreads();
                for (int x = 0; x < kKeyShare; ++x) {  // dV += P^T dO
                    const int e = tid + x * THREADS, j = e / HEAD_DIM, c = e % HEAD_DIM;
                    float acc = 0.f;
                    for (int r = 0; r < Q_TILE; ++r) acc += s_p[r * K_TILE + j] * s_do[r * HEAD_DIM + c];
                    dv[x] += acc;
                }
                __syncthreads();  // P is read: dS replaces it
                softmax_gradient(head_row, row0, row_end, key0);
                __syncthreads();
                for (int x = 0; x < kKeyShare; ++x) {  // dK += dS^T Q (scaled at the end)
                    const int e = tid + x * THREADS, j = e / HEAD_DIM, c = e % HEAD_DIM;
                    float acc = 0.f;
                    for (int r = 0; r < Q_TILE; ++r) acc += s_p[r * K_TILE + j] * attention_input<ELEM>(s_q[r * HEAD_DIM + c]);
                    dk[x] += acc;
                }
            }
        }
        for (int x = 0; x < kKeyShare; ++x) {
            const int e = tid + x * THREADS, j = e / HEAD_DIM, c = e % HEAD_DIM;
            if (key0 + j >= p.kv_len) continue;
            b.dk[(kv_row + key0 + j) * HEAD_DIM + c] = dk[x] * scale;
            b.dv[(kv_row + key0 + j) * HEAD_DIM + c] = dv[x];
        }
        return;
    }

    const long long batch = blockIdx.y / p.heads, head = blockIdx.y % p.heads;
    const long long head_row = (batch * p.heads + head) * p.q_len, kv_row = (batch * p.kv_heads + head / group) * p.kv_len;
    const long long row0 = (long long)blockIdx.x * Q_TILE;
    const long long row_end = row0 + Q_TILE < p.q_len ? row0 + Q_TILE : p.q_len;
    int begin, end;
    long long all_first, all_last;
    block_key_tiles(p, map, row0, row_end, K_TILE, &begin, &end, &all_first, &all_last);
    load_rows(head_row, row0, row_end);
    float dq[kRowShare];
    for (int x = 0; x < kRowShare; ++x) dq[x] = 0.f;
    for (int kt = begin; kt < end; ++kt) {
        const long long key0 = (long long)kt * K_TILE;
        __syncthreads();  // the previous tile's readers are done
        load_keys(kv_row, key0, !STORE);
        if (STORE) {
            for (int i = tid; i < Q_TILE * K_TILE; i += THREADS) {
                const int r = i / K_TILE, j = i % K_TILE;
                const bool ok = row0 + r < row_end && key0 + j < p.kv_len;
                s_p[i] = ok ? b.ds[(head_row + row0 + r) * p.kv_len + key0 + j] : 0.f;
            }
        }
        __syncthreads();
        if (!STORE) {
            probabilities(row0, row_end, key0);
            __syncthreads();
            softmax_gradient(head_row, row0, row_end, key0);
            __syncthreads();
        }
        for (int x = 0; x < kRowShare; ++x) {  // dQ += dS K (scaled at the end)
            const int e = tid + x * THREADS, r = e / HEAD_DIM, c = e % HEAD_DIM;
            float acc = 0.f;
            for (int j = 0; j < K_TILE; ++j) acc += s_p[r * K_TILE + j] * attention_input<ELEM>(s_k[j * HEAD_DIM + c]);
            dq[x] += acc;
        }
    }
    for (int x = 0; x < kRowShare; ++x) {
        const int e = tid + x * THREADS, r = e / HEAD_DIM, c = e % HEAD_DIM;
        if (row0 + r < row_end) b.dq[(head_row + row0 + r) * HEAD_DIM + c] = dq[x] * scale;
    }
}

}  // namespace libtune
