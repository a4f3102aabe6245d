// Hopper (sm_90a) device helpers shared by libtune's warp-specialised kernels (cuda.gemm.wgmma,
// cuda.attention.wgmma): mbarriers, 2-D TMA tile loads, shared-memory matrix descriptors for
// 128-byte swizzled tiles, wgmma fences and groups, and setmaxnreg.
#pragma once

#include "common.cuh"

namespace libtune {

__device__ __forceinline__ void mbar_init(unsigned long long* bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
// Makes the barriers' initialisation visible to the async proxy (TMA) before first use.
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_expect_tx(unsigned long long* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned long long* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(unsigned long long* bar, unsigned parity) {
    unsigned done = 0;
    do {
        asm volatile(
            "{\n"
            ".reg .pred p;\n"
            "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
            "selp.u32 %0, 1, 0, p;\n"
            "}\n"
            : "=r"(done)
            : "r"(smem_addr(bar)), "r"(parity)
            : "memory");
    } while (!done);
}

// 2-D TMA tile load (coordinates innermost first) completing on `bar` with its byte count.
__device__ __forceinline__ void tma_load_2d(void* smem, const TmaDescriptor* desc, unsigned long long* bar, int c0,
                                            int c1) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], "
        "[%2];\n" ::"r"(smem_addr(smem)),
        "l"(reinterpret_cast<unsigned long long>(desc)), "r"(smem_addr(bar)), "r"(c0), "r"(c1)
        : "memory");
}

// Shared-memory matrix descriptor for a tile of 64-element (128-byte) rows written by TMA with
// 128-byte swizzle, 1024-byte aligned: stride between 8-row groups 1024 bytes. The same bits
// serve a K-major operand (rows along M or N) and an MN-major one 64 elements wide (rows along
// K, e.g. V as P V's B), whose one 64-element column block leaves the leading offset unused.
__device__ __forceinline__ unsigned long long smem_descriptor(const void* p) {
    const unsigned long long addr = smem_addr(p);
    return ((addr & 0x3FFFF) >> 4) | ((unsigned long long)(16 >> 4) << 16) |
           ((unsigned long long)(1024 >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

template <int REGS>
__device__ __forceinline__ void set_max_registers_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGS));
}
template <int REGS>
__device__ __forceinline__ void set_max_registers_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGS));
}

}  // namespace libtune
