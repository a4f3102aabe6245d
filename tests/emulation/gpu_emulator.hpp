// Host emulation of the GPU execution model, for unit tests of the kernel sources on machines
// without a GPU: a grid runs one block at a time, each block as one std::thread per GPU thread;
// __syncthreads is a block-wide std::barrier, and warp operations (shuffles, and in
// common.cuh's twin ldmatrix and mma.sync) exchange values through per-warp buffers between
// warp-wide barriers; warpgroup operations (hopper.cuh's twin wgmma) likewise per 128 threads,
// and mbarriers are per-block states that waiting threads sleep on. Include it before a kernel
// source (CUDA or HIP dialect).
#pragma once

#include <math.h>  // exp2f, expf, logf, fmaxf in the global namespace, as in device code

#include <barrier>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct dim3_like {
    unsigned x = 0, y = 0, z = 0;
};

namespace gpu_emulator {

// Every 16-bit value and address a warp's lanes exchange in one step.
struct Warp {
    explicit Warp(int lanes) : lanes(lanes), barrier(lanes), values(std::size_t(lanes) * 16), pointers(std::size_t(lanes)) {}
    int lanes;
    std::barrier<> barrier;
    std::vector<std::uint32_t> values;  // lane-major, 16 words per lane
    std::vector<const void*> pointers;
};

// A warpgroup's (128 threads') operands of one wgmma: accumulators, register A fragments.
struct WarpGroup {
    std::barrier<> barrier{128};
    std::vector<float> d = std::vector<float>(128 * 128);
    std::vector<std::uint32_t> a = std::vector<std::uint32_t>(128 * 4);
};

// An mbarrier: arrivals still expected in the current phase, transaction bytes outstanding,
// and the phase count (its parity is what try_wait.parity tests).
struct MBarrier {
    int count = 0, pending = 0;
    long long tx = 0;
    unsigned phase = 0;
};

struct Block {
    explicit Block(int threads, int warp_size) : barrier(threads) {
        for (int w = 0; w < (threads + warp_size - 1) / warp_size; ++w) warps.push_back(std::make_unique<Warp>(warp_size));
        for (int g = 0; g < threads / 128; ++g) warpgroups.push_back(std::make_unique<WarpGroup>());
    }
    std::barrier<> barrier;
    std::vector<std::unique_ptr<Warp>> warps;
    std::vector<std::unique_ptr<WarpGroup>> warpgroups;
    std::mutex mbar_mutex;
    std::condition_variable mbar_changed;
    std::map<const void*, MBarrier> mbars;  // by shared-memory address
};

struct ThreadState {
    dim3_like thread, block, grid_dim, block_dim;
    Block* group = nullptr;
    Warp* warp = nullptr;
    int lane = 0;
};
inline thread_local ThreadState self;

// Asynchronous global -> shared copies (cp.async): when they land, per emulated thread.
enum class CopyTiming { immediate, at_wait };
inline CopyTiming copy_timing = CopyTiming::immediate;  // set before a launch
struct AsyncCopy {
    void* dst;
    const void* src;
    bool valid;  // false: zero-fill
    void run() const {
        if (valid) std::memcpy(dst, src, 16);
        else std::memset(dst, 0, 16);
    }
};
struct AsyncCopies {
    std::vector<AsyncCopy> open;                   // issued since the last commit
    std::deque<std::vector<AsyncCopy>> committed;  // commit groups, oldest first
};
inline thread_local AsyncCopies copies;

// Runs kernel() for every block of `grid` with `threads` threads each (warp size 32 or 64).
inline void launch(const unsigned (&grid)[3], unsigned threads, int warp_size, const std::function<void()>& kernel) {
    for (unsigned z = 0; z < grid[2]; ++z)
        for (unsigned y = 0; y < grid[1]; ++y)
            for (unsigned x = 0; x < grid[0]; ++x) {
                Block block(int(threads), warp_size);
                std::vector<std::jthread> pool;
                for (unsigned t = 0; t < threads; ++t)
                    pool.emplace_back([&, t] {
                        self.thread = {t, 0, 0};
                        self.block = {x, y, z};
                        self.grid_dim = {grid[0], grid[1], grid[2]};
                        self.block_dim = {threads, 1, 1};
                        self.group = &block;
                        self.warp = block.warps[t / unsigned(warp_size)].get();
                        self.lane = int(t % unsigned(warp_size));
                        kernel();
                    });
            }
}

// Lane `lane` publishes `mine` (n words); after the exchange, `read(l, i)` is lane l's word i.
template <class Read>
inline void exchange(const std::uint32_t* mine, int n, Read&& read) {
    Warp& w = *self.warp;
    std::memcpy(&w.values[std::size_t(self.lane) * 16], mine, std::size_t(n) * 4);
    w.barrier.arrive_and_wait();
    read([&](int l, int i) { return w.values[std::size_t(l) * 16 + std::size_t(i)]; });
    w.barrier.arrive_and_wait();
}

}  // namespace gpu_emulator

// The dynamic shared memory of the emulated CUDA kernels (their `extern __shared__ smem_raw[]`,
// with __shared__ defined away): the sm_90a opt-in maximum, 1 KiB aligned.
namespace libtune {
alignas(1024) inline unsigned char smem_raw[227 * 1024];
}

#define threadIdx (gpu_emulator::self.thread)
#define blockIdx (gpu_emulator::self.block)
#define blockDim (gpu_emulator::self.block_dim)
#define gridDim (gpu_emulator::self.grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n)

inline void __syncthreads() { gpu_emulator::self.group->barrier.arrive_and_wait(); }
inline float __int_as_float(int bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}
inline float __int_as_float(unsigned bits) { return __int_as_float(int(bits)); }
inline float __uint_as_float(unsigned bits) { return __int_as_float(int(bits)); }
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __shfl_xor_sync(unsigned, float v, int mask) {
    const std::uint32_t mine = __float_as_uint(v);
    float out = 0;
    gpu_emulator::exchange(&mine, 1, [&](auto read) { out = __uint_as_float(read(gpu_emulator::self.lane ^ mask, 0)); });
    return out;
}
struct float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
namespace libtune {
template <class T>
inline T min(T a, T b) { return b < a ? b : a; }
}  // namespace libtune
