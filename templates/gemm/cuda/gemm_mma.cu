// cuda.gemm.mma: tensor-core GEMM for sm_80+ with mma.sync (bf16 / f16 inputs on m16n8k16,
// tf32 on m16n8k8; f32 accumulate), a cp.async multi-stage shared-memory pipeline, ldmatrix
// fragment loads, grouped rasterisation, optional split-K and a fused epilogue.
// Every knob is a template argument; the host instantiates one per config with NVRTC.
#include "common.cuh"

namespace libtune {

template <int ELEM, int BM, int BN, int BK, int WM, int WN, int STAGES, int GROUP_M, int EPI, int TRANS_B,
          int SPLIT_K>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32) gemm_mma(GemmParams p) {
    typedef typename pick<ELEM == kTf32, float, u16>::type T;
    constexpr int kElemBytes = sizeof(T);
    constexpr int kChunk = 16 / kElemBytes;  // elements per 16-byte cp.async
    constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN, kThreads = kWarpsM * kWarpsN * 32;
    constexpr int kMmaK = ELEM == kTf32 ? 8 : 16;
    constexpr int kMi = WM / 16, kNi = WN / 8;
    // Rows padded by 16 bytes (32 for tf32 B in k x n layout) so that ldmatrix and the
    // fragment loads of one warp hit 32 different banks.
    constexpr int kLdA = BK + kChunk;
    constexpr int kRowsB = TRANS_B ? BN : BK;
    constexpr int kLdB = TRANS_B ? BK + kChunk : BN + (ELEM == kTf32 ? 2 * kChunk : kChunk);
    constexpr int kStageA = BM * kLdA, kStageB = kRowsB * kLdB;
    static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 16 == 0 && BK % kMmaK == 0, "tile shape");

    extern __shared__ __align__(128) unsigned char smem_raw[];
    T* smem_a = reinterpret_cast<T*>(smem_raw);
    T* smem_b = smem_a + STAGES * kStageA;

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int warp_m = warp % kWarpsM, warp_n = warp / kWarpsM;
    const int tiles_m = (int)((p.m + BM - 1) / BM), tiles_n = (int)((p.n + BN - 1) / BN);
    int tile_m, tile_n;
    tile_coords<GROUP_M>(tiles_m, tiles_n, tile_m, tile_n);
    const long long batch = blockIdx.y;
    const long long row0 = (long long)tile_m * BM, col0 = (long long)tile_n * BN;
    const T* a = static_cast<const T*>(p.a) + batch * p.m * p.k;
    const T* b = static_cast<const T*>(p.b) + batch * p.k * p.n;
    const long long k_begin = (long long)blockIdx.z * p.k_per_split;
    const long long k_end = min(p.k, k_begin + p.k_per_split);
    const int k_tiles = k_end > k_begin ? (int)((k_end - k_begin + BK - 1) / BK) : 0;

    auto load_tile = [&](int stage, int kt) {
        const long long k0 = k_begin + (long long)kt * BK;
        T* sa = smem_a + stage * kStageA;
        for (int c = tid; c < BM * BK / kChunk; c += kThreads) {
            const int r = c / (BK / kChunk), kc = (c % (BK / kChunk)) * kChunk;
            const long long gr = row0 + r, gk = k0 + kc;
            const bool ok = gr < p.m && gk < k_end;
            cp_async16(sa + r * kLdA + kc, ok ? a + gr * p.k + gk : a, ok);
        }
        T* sb = smem_b + stage * kStageB;
        if constexpr (TRANS_B) {  // B stored n x k: rows of k, like A
            for (int c = tid; c < BN * BK / kChunk; c += kThreads) {
                const int r = c / (BK / kChunk), kc = (c % (BK / kChunk)) * kChunk;
                const long long gn = col0 + r, gk = k0 + kc;
                const bool ok = gn < p.n && gk < k_end;
                cp_async16(sb + r * kLdB + kc, ok ? b + gn * p.k + gk : b, ok);
            }
        } else {  // B stored k x n
            for (int c = tid; c < BK * BN / kChunk; c += kThreads) {
                const int r = c / (BN / kChunk), nc = (c % (BN / kChunk)) * kChunk;
                const long long gk = k0 + r, gn = col0 + nc;
                const bool ok = gk < k_end && gn < p.n;
                cp_async16(sb + r * kLdB + nc, ok ? b + gk * p.n + gn : b, ok);
            }
        }
    };

    float acc[kMi][kNi][4];
#pragma unroll
    for (int i = 0; i < kMi; ++i)
#pragma unroll
        for (int j = 0; j < kNi; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

    auto compute_stage = [&](int stage) {
        const T* sa = smem_a + stage * kStageA + warp_m * WM * kLdA;
        const T* sb = smem_b + stage * kStageB;
        const int g = lane / 4, t = lane % 4;
#pragma unroll
        for (int kk = 0; kk < BK; kk += kMmaK) {
            unsigned af[kMi][4], bf[kNi][2];
            if constexpr (ELEM == kTf32) {
#pragma unroll
                for (int i = 0; i < kMi; ++i) {
                    const T* s = sa + (i * 16 + g) * kLdA + kk + t;
                    af[i][0] = to_tf32(s[0]);
                    af[i][1] = to_tf32(s[8 * kLdA]);
                    af[i][2] = to_tf32(s[4]);
                    af[i][3] = to_tf32(s[8 * kLdA + 4]);
                }
#pragma unroll
                for (int j = 0; j < kNi; ++j) {
                    const int n = warp_n * WN + j * 8 + g;
                    if constexpr (TRANS_B) {
                        bf[j][0] = to_tf32(sb[n * kLdB + kk + t]);
                        bf[j][1] = to_tf32(sb[n * kLdB + kk + t + 4]);
                    } else {
                        bf[j][0] = to_tf32(sb[(kk + t) * kLdB + n]);
                        bf[j][1] = to_tf32(sb[(kk + t + 4) * kLdB + n]);
                    }
                }
            } else {
#pragma unroll
                for (int i = 0; i < kMi; ++i) ldmatrix_x4(af[i], sa + (i * 16 + lane % 16) * kLdA + kk + (lane / 16) * 8);
#pragma unroll
                for (int j = 0; j < kNi; j += 2) {
                    unsigned r[4];
                    if constexpr (TRANS_B) {
                        const int n = warp_n * WN + j * 8 + lane % 8 + (lane / 16) * 8;
                        ldmatrix_x4(r, sb + n * kLdB + kk + ((lane / 8) % 2) * 8);
                    } else {
                        const int k = kk + lane % 8 + ((lane / 8) % 2) * 8;
                        ldmatrix_x4_trans(r, sb + k * kLdB + warp_n * WN + j * 8 + (lane / 16) * 8);
                    }
                    bf[j][0] = r[0], bf[j][1] = r[1], bf[j + 1][0] = r[2], bf[j + 1][1] = r[3];
                }
            }
#pragma unroll
            for (int i = 0; i < kMi; ++i)
#pragma unroll
                for (int j = 0; j < kNi; ++j) mma<ELEM>(acc[i][j], af[i], bf[j]);
        }
    };

    // Multi-stage pipeline: STAGES - 1 tiles in flight while one is multiplied. One commit
    // group per k tile (empty ones past the end) keeps wait_group's count exact.
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < k_tiles) load_tile(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < k_tiles; ++kt) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();  // tile kt landed for all threads; stage (kt - 1) % STAGES is free
        const int next = kt + STAGES - 1;
        if (next < k_tiles) load_tile(next % STAGES, next);
        cp_async_commit();
        compute_stage(kt % STAGES);
    }
    cp_async_wait<0>();

    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int i = 0; i < kMi; ++i)
#pragma unroll
        for (int j = 0; j < kNi; ++j) {
            const long long r = row0 + warp_m * WM + i * 16 + g;
            const long long c = col0 + warp_n * WN + j * 8 + 2 * t;
            store_element<EPI, (SPLIT_K > 1)>(p, batch, r, c, acc[i][j][0]);
            store_element<EPI, (SPLIT_K > 1)>(p, batch, r, c + 1, acc[i][j][1]);
            store_element<EPI, (SPLIT_K > 1)>(p, batch, r + 8, c, acc[i][j][2]);
            store_element<EPI, (SPLIT_K > 1)>(p, batch, r + 8, c + 1, acc[i][j][3]);
        }
}

}  // namespace libtune
