// What every template on the blocked driver shares: the micro-kernels a device runs, the
// blocking knobs (declared once, read by cpu.gemm.blocked and cpu.swiglu.blocked alike), the
// config -> Blocking translation, and per-kernel scratch reuse.
#pragma once

#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "blocked_driver.hpp"
#include "tune/buffer.hpp"
#include "tune/device.hpp"
#include "tune/space.hpp"

namespace tune {
class ThreadPool;
}

namespace tune::cpu_gemm {

// The micro-kernels `device` can run, AVX-512 first (empty: no template on this driver applies).
std::vector<const Ukernel*> device_ukernels(const DeviceInfo& device);

// The bf16 micro-kernels (VNNI-packed operands) `device` can run: AMX (when the device has
// amx_tile and amx_bf16 and the Linux kernel grants AMX) and AVX512-BF16.
std::vector<const Ukernel*> device_bf16_ukernels(const DeviceInfo& device);

// The dot-form kernels (Ukernel::is_dot) `device` runs, for f32 and for bf16 operands. They
// apply only to A m x k times B n x k (trans_b, not trans_a): spaces of other layouts omit them.
std::vector<const Ukernel*> device_dot_ukernels(const DeviceInfo& device);
std::vector<const Ukernel*> device_bf16_dot_ukernels(const DeviceInfo& device);

// A template's micro-kernels by precision class, in preference order: f32 operands, bf16
// operands, and f32 operands whose accuracy budget admits bf16 compute (both families; the bf16
// kernels round A and B to bf16 as they pack them). Each class comes with and without the
// dot-form kernels, which join only spaces of A m x k times B n x k.
struct KernelSets {
    explicit KernelSets(const DeviceInfo& device);
    // The class of a problem of `dtype` (bf16_compute: an f32 problem whose budget admits bf16
    // compute) in the layout `dot_layout` says. Empty when the device runs none.
    const std::vector<const Ukernel*>& of(DType dtype, bool bf16_compute, bool dot_layout) const;
    bool has_f32() const { return !f32.empty(); }
    bool has_bf16() const { return !bf16.empty(); }

    std::vector<const Ukernel*> f32, bf16, mixed;           // packed-panel kernels
    std::vector<const Ukernel*> f32_dot, bf16_dot, mixed_dot;  // the same with the dot-form kernels
};

// For a space whose first kernel is f32 but that also offers bf16 kernels (mixed precision):
// local search also starts from the default blocking on the first (fastest) bf16 kernel, a
// region one neighbour step among dozens rarely reaches. No-op for other spaces.
void add_bf16_start(Space& s, const std::vector<const Ukernel*>& ukernels);

// Adds ukernel, mc, kc, nc, pack_a, pack_b, threads, split and their constraints
// (mc_multiple_of_tile_rows, nc_multiple_of_tile_cols, pack_b_needed_for_trans_b when
// trans_b, bf16_ukernel_packs when `ukernels` has bf16 kernels, split_m_when_single_thread). `ukernels` must outlive the space.
void add_blocking_knobs(Space& s, const std::vector<const Ukernel*>& ukernels, int cores, bool trans_b);

// The Blocking a config valid in such a space names. Throws tune::Error naming `who` when the
// micro-kernel is unknown or its ISA is missing on this host.
Blocking blocking_from_config(const Config& c, const std::vector<const Ukernel*>& ukernels, std::string_view who);

// Template::default_config for dims d in such a space: the space's default, except at decode
// sizes (m <= 16, A m x k and B n x k) where the space offers dot-form kernels: the dot kernel
// whose MR fits m (1x8 for one row, 2x8 for two, else 4x6): the Tuner's pick on every 1-token
// and most 16-token layer GEMMs of Llama-3-8B and Qwen2-7B measured (docs/performance.md).
Config decode_default(const Space& s, const GemmDims& d);

// Template::equivalence_key for a config of such a space at dims d (one product of a batch):
// a block at least as large as the (tile-rounded) dim it blocks is one block whatever its
// size, with the same loops, packing and scratch, so mc >= m, kc >= k and nc >= n each become
// 0 in the key. At decode sizes (m <= 24) every mc value is one class. A dot-form kernel reads
// none of mc, kc, nc, pack_a and pack_b: all become 0. A config whose
// micro-kernel is not in `ukernels` is its own class.
Config blocking_equivalence_key(const GemmDims& d, const Config& c, const std::vector<const Ukernel*>& ukernels);

// Scratch buffers reused across a kernel's calls; concurrent callers each get their own.
class ScratchPool {
public:
    explicit ScratchPool(std::size_t bytes) : bytes_(bytes) {}
    class Lease {
    public:
        Lease(const ScratchPool& pool, AlignedBuffer b) : pool_(pool), buffer_(std::move(b)) {}
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease() { pool_.give_back(std::move(buffer_)); }
        float* floats() { return buffer_.as<float>(); }

    private:
        const ScratchPool& pool_;
        AlignedBuffer buffer_;
    };
    Lease take() const;
    std::size_t bytes() const { return bytes_; }

private:
    void give_back(AlignedBuffer b) const;
    std::size_t bytes_;
    mutable std::mutex mutex_;
    mutable std::vector<AlignedBuffer> free_;
};

}  // namespace tune::cpu_gemm
