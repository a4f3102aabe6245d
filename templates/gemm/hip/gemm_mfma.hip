// hip.gemm.mfma: GEMM for AMD GPUs, bf16 / f16 inputs, f32 accumulate. On gfx90a and gfx94x
// (CDNA2, CDNA3) each wave (64 lanes) multiplies 32 x 32 blocks with MFMA
// (v_mfma_f32_32x32x8{bf16_1k,f16}, both kept by gfx94x, which dropped the older bf16 forms); on
// other archs the same lanes compute the same output elements with scalar FMAs (the generic path),
// so the tiling, the epilogue and the results are shared. Knobs are template arguments;
// compiled at run time with hiprtc.
#include "gemm_epilogue.h"

namespace libtune {

typedef unsigned short u16;
typedef short short4_t __attribute__((ext_vector_type(4)));
typedef _Float16 half4_t __attribute__((ext_vector_type(4)));
typedef float float16_t __attribute__((ext_vector_type(16)));

#if defined(__gfx90a__) || defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__)
#define LIBTUNE_HIP_MFMA 1
#else
#define LIBTUNE_HIP_MFMA 0
#endif

template <int ELEM>
__device__ inline float to_float(u16 bits) {
    if constexpr (ELEM == 0) return __uint_as_float(unsigned(bits) << 16);  // bf16
    else return float(__builtin_bit_cast(_Float16, bits));                  // f16
}

// Output element `item` (0..15) of a lane in a 32 x 32 MFMA block: the v_mfma_f32_32x32x8
// accumulator layout, used by both paths.
__device__ inline int block_row(int lane, int item) { return 8 * (item / 4) + 4 * (lane / 32) + item % 4; }
__device__ inline int block_col(int lane) { return lane % 32; }

template <int ELEM, int BM, int BN, int BK, int WM, int WN, int GROUP_M, int EPI, int TRANS_B>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 64) gemm_mfma(GemmParams p) {
    constexpr int kWavesM = BM / WM, kWavesN = BN / WN, kThreads = kWavesM * kWavesN * 64;
    constexpr int kLd = BK + 4;  // padding staggers LDS banks between rows
    static_assert(WM % 32 == 0 && WN % 32 == 0 && BK % 8 == 0, "tile shape");
    __shared__ u16 smem_a[BM * kLd];
    __shared__ u16 smem_b[BN * kLd];  // B kept as n x k in LDS for both layouts

    const int tid = threadIdx.x, lane = tid % 64, wave = tid / 64;
    const int wave_m = wave % kWavesM, wave_n = wave / kWavesM;
    const int tiles_m = (int)((p.m + BM - 1) / BM), tiles_n = (int)((p.n + BN - 1) / BN);
    int tile_m, tile_n;
    tile_coords<GROUP_M>(tiles_m, tiles_n, tile_m, tile_n);
    const long long batch = blockIdx.y;
    const long long row0 = (long long)tile_m * BM, col0 = (long long)tile_n * BN;
    const u16* a = static_cast<const u16*>(p.a) + batch * p.m * p.k;
    const u16* b = static_cast<const u16*>(p.b) + batch * p.k * p.n;

    float16_t acc[WM / 32][WN / 32];
    for (int i = 0; i < WM / 32; ++i)
        for (int j = 0; j < WN / 32; ++j)
            for (int e = 0; e < 16; ++e) acc[i][j][e] = 0.f;

    for (long long k0 = 0; k0 < p.k; k0 += BK) {
        for (int i = tid; i < BM * BK; i += kThreads) {
            const int r = i / BK, kk = i % BK;
            const long long gr = row0 + r, gk = k0 + kk;
            smem_a[r * kLd + kk] = gr < p.m && gk < p.k ? a[gr * p.k + gk] : u16(0);
        }
        for (int i = tid; i < BN * BK; i += kThreads) {
            // Consecutive threads read consecutive global elements in either layout.
            const int n = TRANS_B ? i / BK : i % BN, kk = TRANS_B ? i % BK : i / BN;
            const long long gn = col0 + n, gk = k0 + kk;
            const bool ok = gn < p.n && gk < p.k;
            smem_b[n * kLd + kk] = ok ? (TRANS_B ? b[gn * p.k + gk] : b[gk * p.n + gn]) : u16(0);
        }
        __syncthreads();
        for (int kk = 0; kk < BK; kk += 8) {
            const int k_lane = kk + (lane / 32) * 4;  // this lane's 4 k values
            for (int i = 0; i < WM / 32; ++i)
                for (int j = 0; j < WN / 32; ++j) {
                    const u16* ra = smem_a + (wave_m * WM + i * 32 + lane % 32) * kLd + k_lane;
                    const u16* rb = smem_b + (wave_n * WN + j * 32 + lane % 32) * kLd + k_lane;
#if LIBTUNE_HIP_MFMA
                    if constexpr (ELEM == 0) {
                        const short4_t va = {short(ra[0]), short(ra[1]), short(ra[2]), short(ra[3])};
                        const short4_t vb = {short(rb[0]), short(rb[1]), short(rb[2]), short(rb[3])};
                        acc[i][j] = __builtin_amdgcn_mfma_f32_32x32x8bf16_1k(va, vb, acc[i][j], 0, 0, 0);
                    } else {
                        half4_t va, vb;
                        for (int e = 0; e < 4; ++e) {
                            va[e] = __builtin_bit_cast(_Float16, ra[e]);
                            vb[e] = __builtin_bit_cast(_Float16, rb[e]);
                        }
                        acc[i][j] = __builtin_amdgcn_mfma_f32_32x32x8f16(va, vb, acc[i][j], 0, 0, 0);
                    }
#else
                    // Generic path: the lane's 16 accumulator elements, 8 k values each.
                    const u16* ba = smem_a + (wave_m * WM + i * 32) * kLd + kk;
                    const u16* bb = smem_b + (wave_n * WN + j * 32 + block_col(lane)) * kLd + kk;
                    for (int e = 0; e < 16; ++e) {
                        const u16* row = ba + block_row(lane, e) * kLd;
                        float s = acc[i][j][e];
                        for (int q = 0; q < 8; ++q) s += to_float<ELEM>(row[q]) * to_float<ELEM>(bb[q]);
                        acc[i][j][e] = s;
                    }
                    (void)ra, (void)rb;
#endif
                }
        }
        __syncthreads();
    }

    for (int i = 0; i < WM / 32; ++i)
        for (int j = 0; j < WN / 32; ++j)
            for (int e = 0; e < 16; ++e) {
                const long long r = row0 + wave_m * WM + i * 32 + block_row(lane, e);
                const long long c = col0 + wave_n * WN + j * 32 + block_col(lane);
                store_element<EPI, false>(p, batch, r, c, acc[i][j][e]);
            }
}

}  // namespace libtune
