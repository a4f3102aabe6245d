// cuda.gemm.wgmma: Hopper (sm_90a) GEMM, bf16 / f16 inputs, f32 accumulate. Warp-specialised:
// warpgroup 0 is the producer (one thread issues TMA tile loads into a STAGES-deep ring of
// shared-memory buffers, each guarded by a "full" and an "empty" mbarrier); CONSUMERS
// warpgroups multiply with wgmma.mma_async straight from shared memory (128-byte swizzled,
// K-major A and B) and run the fused epilogue from registers. B is n x k (trans_b).
#include "common.cuh"
#include "hopper.cuh"
#include "wgmma_ops.cuh"

namespace libtune {

constexpr int kWgmmaBlockK = 64;  // one 128-byte swizzle row of bf16/f16

// Dynamic shared memory: STAGES x (A tile, B tile), then 2 x STAGES mbarriers; the host adds
// 1 KiB so the tiles can be aligned to 1024 bytes (the 128-byte swizzle's period).
// OVERLAP = 1 keeps one k tile's wgmma group in flight while the next is issued (its stage is
// released one tile later); 0 waits for each tile's products before the next.
template <int ELEM, int BM, int BN, int STAGES, int CONSUMERS, int GROUP_M, int EPI, int OVERLAP>
__global__ void __launch_bounds__((CONSUMERS + 1) * 128, 1)
    gemm_wgmma(GemmParams p, const __grid_constant__ TmaDescriptor tma_a, const __grid_constant__ TmaDescriptor tma_b) {
    constexpr int kRowsPerConsumer = BM / CONSUMERS;
    constexpr int kMTiles = kRowsPerConsumer / 64;
    static_assert(kRowsPerConsumer % 64 == 0 && (BN == 64 || BN == 128 || BN == 256), "tile shape");
    constexpr int kTileA = BM * kWgmmaBlockK, kTileB = BN * kWgmmaBlockK;  // elements
    constexpr unsigned kStageBytes = (kTileA + kTileB) * 2;

    extern __shared__ unsigned char smem_raw[];
    u16* smem = reinterpret_cast<u16*>((reinterpret_cast<unsigned long long>(smem_raw) + 1023) & ~1023ull);
    u16* smem_a = smem;
    u16* smem_b = smem + STAGES * kTileA;
    unsigned long long* full = reinterpret_cast<unsigned long long*>(smem_b + STAGES * kTileB);
    unsigned long long* empty = full + STAGES;

    // Tiles of every batch item in one sequence; block b takes tiles b, b + gridDim.x, ...
    // (one each when the grid covers them all; a persistent grid of one block per SM loads the
    // next tile's operands while the consumers store the last one).
    const int tiles_m = (int)((p.m + BM - 1) / BM), tiles_n = (int)((p.n + BN - 1) / BN);
    const int tiles = tiles_m * tiles_n, total = tiles * (int)p.batch;
    const int k_tiles = (int)((p.k + kWgmmaBlockK - 1) / kWgmmaBlockK);
    const int warpgroup = threadIdx.x / 128, tid = threadIdx.x % 128;

    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], CONSUMERS);
        }
        mbar_init_fence();
    }
    __syncthreads();

    if (warpgroup == 0) {
        set_max_registers_dec<40>();
        if (tid == 0) {
            int it = 0;  // k tiles loaded so far, over all of this block's tiles: the ring position
            for (int t = blockIdx.x; t < total; t += gridDim.x) {
                const long long batch = t / tiles;
                int tile_m, tile_n;
                tile_coords<GROUP_M>(t % tiles, tiles_m, tiles_n, tile_m, tile_n);
                // Operands are 2-D tensors of batch * rows: batch b's rows start at b * m (A) and
                // b * n (B); rows of a tile past m belong to the next batch or are zero-filled,
                // and the epilogue never stores them.
                const int a_row = (int)(batch * p.m + (long long)tile_m * BM);
                const int b_row = (int)(batch * p.n + (long long)tile_n * BN);
                for (int kt = 0; kt < k_tiles; ++kt, ++it) {
                    const int s = it % STAGES;
                    if (it >= STAGES) mbar_wait(&empty[s], ((it / STAGES) - 1) & 1);
                    mbar_expect_tx(&full[s], kStageBytes);
                    tma_load_2d(smem_a + s * kTileA, &tma_a, &full[s], kt * kWgmmaBlockK, a_row);
                    tma_load_2d(smem_b + s * kTileB, &tma_b, &full[s], kt * kWgmmaBlockK, b_row);
                }
            }
        }
        return;
    }

    set_max_registers_inc<(CONSUMERS == 1 ? 240 : 232)>();
    const int consumer = warpgroup - 1;
    const int warp = tid / 32, lane = tid % 32;
    int it = 0;  // k tiles consumed so far, as the producer counts them
    for (int t = blockIdx.x; t < total; t += gridDim.x) {
        const long long batch = t / tiles;
        int tile_m, tile_n;
        tile_coords<GROUP_M>(t % tiles, tiles_m, tiles_n, tile_m, tile_n);
        float acc[kMTiles][BN / 2];
#pragma unroll
        for (int m = 0; m < kMTiles; ++m)
#pragma unroll
            for (int i = 0; i < BN / 2; ++i) acc[m][i] = 0.f;

        for (int kt = 0; kt < k_tiles; ++kt, ++it) {
            const int s = it % STAGES;
            mbar_wait(&full[s], (it / STAGES) & 1);
            const u16* a_tile = smem_a + s * kTileA + consumer * kRowsPerConsumer * kWgmmaBlockK;
            const u16* b_tile = smem_b + s * kTileB;
            wgmma_fence();
#pragma unroll
            for (int m = 0; m < kMTiles; ++m)
#pragma unroll
                for (int kk = 0; kk < kWgmmaBlockK; kk += 16)
                    Wgmma<BN, ELEM>::run(acc[m], smem_descriptor(a_tile + m * 64 * kWgmmaBlockK + kk),
                                         smem_descriptor(b_tile + kk));
            wgmma_commit();
            // One arrival per consumer warpgroup frees a stage for the producer once the
            // products that read it are done.
            if constexpr (OVERLAP) {
                wgmma_wait<1>();  // the previous k tile's group
                if (tid == 0 && kt > 0) mbar_arrive(&empty[(it + STAGES - 1) % STAGES]);
            } else {
                wgmma_wait<0>();
                if (tid == 0) mbar_arrive(&empty[s]);
            }
        }
        wgmma_wait<0>();
        if constexpr (OVERLAP) {  // the tile's last stage, before the epilogue
            if (tid == 0 && k_tiles > 0) mbar_arrive(&empty[(it + STAGES - 1) % STAGES]);
        }

        // Accumulator layout of m64nN: warp w of the warpgroup holds rows 16 w + lane / 4 (+ 8);
        // each n8 block j holds columns 8 j + 2 (lane % 4) (+ 1).
#pragma unroll
        for (int m = 0; m < kMTiles; ++m) {
            const long long r = (long long)tile_m * BM + consumer * kRowsPerConsumer + m * 64 + warp * 16 + lane / 4;
#pragma unroll
            for (int j = 0; j < BN / 8; ++j) {
                const long long c = (long long)tile_n * BN + j * 8 + 2 * (lane % 4);
                store_element<EPI, false>(p, batch, r, c, acc[m][j * 4 + 0]);
                store_element<EPI, false>(p, batch, r, c + 1, acc[m][j * 4 + 1]);
                store_element<EPI, false>(p, batch, r + 8, c, acc[m][j * 4 + 2]);
                store_element<EPI, false>(p, batch, r + 8, c + 1, acc[m][j * 4 + 3]);
            }
        }
    }
}

}  // namespace libtune
