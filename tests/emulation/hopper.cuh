// Host twin of templates/gemm/cuda/hopper.cuh for kernel unit tests (gpu_emulator.hpp), written
// from the PTX ISA's definitions: mbarriers (arrivals, transaction bytes, phase parity; waiting
// threads sleep on the block's state), 2-D TMA tile loads with the 128-byte swizzle, and
// shared-memory matrix descriptors (here the tile's address; wgmma_ops.cuh's twin reads the
// tile through the same swizzle). The swizzle is a function of the shared-memory address: 16-byte
// chunk bits [4:6] XOR row bits [7:9], on 1024-byte aligned tiles, as TMA writes and wgmma reads.
// wgmma's fences, commits and waits are no-ops: the twin's products complete when issued.
#pragma once

#include <cstdint>
#include <cstring>

#include "common.cuh"
#include "gemm_params.h"

namespace gpu_emulator {

inline MBarrier& mbar_state(const void* bar) { return self.group->mbars[bar]; }

// A phase completes when every expected arrival came and every expected byte landed.
inline void mbar_settle(MBarrier& b) {
    if (b.pending == 0 && b.tx == 0) {
        ++b.phase;
        b.pending = b.count;
        self.group->mbar_changed.notify_all();
    }
}

inline std::uintptr_t swizzle128(std::uintptr_t addr) { return addr ^ (((addr >> 7) & 7) << 4); }

// The tensor map the tests hand the kernels in a TmaDescriptor's bytes: a row-major rows x
// inner tensor of 16-bit elements, read in boxes of box_rows x 64.
struct TensorMap {
    const void* base;
    long long inner, rows;
    int box_rows;
};

}  // namespace gpu_emulator

namespace libtune {

inline void mbar_init(unsigned long long* bar, unsigned count) {
    std::lock_guard lock(gpu_emulator::self.group->mbar_mutex);
    gpu_emulator::mbar_state(bar) = {int(count), int(count), 0, 0};
}
inline void mbar_init_fence() {}
inline void mbar_expect_tx(unsigned long long* bar, unsigned bytes) {  // arrive.expect_tx
    std::lock_guard lock(gpu_emulator::self.group->mbar_mutex);
    auto& b = gpu_emulator::mbar_state(bar);
    b.tx += bytes;
    --b.pending;
    gpu_emulator::mbar_settle(b);
}
inline void mbar_arrive(unsigned long long* bar) {
    std::lock_guard lock(gpu_emulator::self.group->mbar_mutex);
    auto& b = gpu_emulator::mbar_state(bar);
    --b.pending;
    gpu_emulator::mbar_settle(b);
}
// try_wait.parity succeeds once the phase of that parity has completed: the current phase's
// parity differs.
inline void mbar_wait(unsigned long long* bar, unsigned parity) {
    std::unique_lock lock(gpu_emulator::self.group->mbar_mutex);
    gpu_emulator::self.group->mbar_changed.wait(lock, [&] { return (gpu_emulator::mbar_state(bar).phase & 1u) != (parity & 1u); });
}

// cp.async.bulk.tensor.2d: the box at (c0 = column, c1 = row), zero outside the tensor, into a
// 1024-byte aligned tile of 128-byte rows through the swizzle; then its bytes complete on bar.
inline void tma_load_2d(void* smem, const TmaDescriptor* desc, unsigned long long* bar, int c0, int c1) {
    gpu_emulator::TensorMap m;
    std::memcpy(&m, desc, sizeof m);
    const auto* src = static_cast<const u16*>(m.base);
    const auto tile = reinterpret_cast<std::uintptr_t>(smem);
    for (int r = 0; r < m.box_rows; ++r)
        for (int col = 0; col < 64; ++col) {
            const long long row = (long long)c1 + r, column = (long long)c0 + col;
            const u16 v = row < m.rows && column < m.inner ? src[row * m.inner + column] : u16(0);
            std::memcpy(reinterpret_cast<void*>(gpu_emulator::swizzle128(tile + std::uintptr_t(r * 128 + col * 2))), &v, 2);
        }
    std::lock_guard lock(gpu_emulator::self.group->mbar_mutex);
    auto& b = gpu_emulator::mbar_state(bar);
    b.tx -= (long long)m.box_rows * 128;
    gpu_emulator::mbar_settle(b);
}

inline unsigned long long smem_descriptor(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

inline void wgmma_fence() {}
inline void wgmma_commit() {}
template <int N>
inline void wgmma_wait() {}
template <int REGS>
inline void set_max_registers_inc() {}
template <int REGS>
inline void set_max_registers_dec() {}

}  // namespace libtune
