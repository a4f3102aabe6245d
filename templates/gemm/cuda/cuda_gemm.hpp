// Host side shared by the run-time compiled CUDA GEMM templates (cuda.gemm.mma,
// cuda.gemm.wgmma): problem checks, element and epilogue kinds, the compile plan of a config
// and the kernel object that launches a compiled instance on the runtime's stream.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "gemm_args.hpp"
#include "tune/kernel.hpp"
#include "tune/runtime_compile.hpp"
#include "tune/space_cache.hpp"

namespace tune::cuda {

class Runtime;

// Kernel template argument ELEM: 0 bf16, 1 f16, 2 tf32 (f32 problems whose tolerance admits
// bf16 compute, hence tf32); -1 when the dtype is not computed on tensor cores.
int element_kind(const Problem& p);

// Everything instantiate() needs besides the binaries: which programs, how to launch.
struct GemmPlan {
    CompileRequest main;
    std::optional<CompileRequest> reduce;  // split-K > 1: sums the partials, then the epilogue
    unsigned grid[3] = {1, 1, 1};
    unsigned block = 0, shared_bytes = 0;
    int element = 0;  // element_kind()
    int split_k = 1;
    long long k_per_split = 0;
    bool tma = false;  // wgmma: A and B tensor maps with these boxes (rows x 64 elements)
    int tma_rows_a = 0, tma_rows_b = 0;
    std::size_t workspace_bytes = 0;
};

// tensor_map_2d (tune/cuda/driver.hpp) as the kernels' __grid_constant__ argument type.
libtune::TmaDescriptor tma_descriptor(const void* base, std::uint64_t inner, std::uint64_t rows, std::uint32_t box_rows,
                                      bool f16);

// The TMA descriptors of a kernel's N operands, encoded again only when an operand moves:
// encoding is host work between the launches (a few microseconds, as much as a small kernel).
template <std::size_t N>
class TmaDescriptorCache {
public:
    using Descriptors = std::array<libtune::TmaDescriptor, N>;
    // encode(i, base): operand i's descriptor.
    template <class Encode>
    Descriptors get(const std::array<const void*, N>& bases, Encode&& encode) const {
        std::lock_guard lock(mutex_);
        if (!valid_ || bases != bases_) {
            for (std::size_t i = 0; i < N; ++i) descriptors_[i] = encode(i, bases[i]);
            bases_ = bases, valid_ = true;
        }
        return descriptors_;
    }

private:
    mutable std::mutex mutex_;
    mutable std::array<const void*, N> bases_{};
    mutable Descriptors descriptors_{};
    mutable bool valid_ = false;
};

// "libtune::<kernel><a,b,...>": a kernel template instantiated with the given arguments.
std::string instance_name(const std::string& kernel, std::initializer_list<long long> args);

// A CompileRequest for `instance` of the embedded program `source` ("gemm_mma.cu").
CompileRequest kernel_request(const std::string& source, const std::string& instance, const std::string& arch);

class RuntimeGemmTemplate : public Template, public RuntimeCompiled {
public:
    RuntimeGemmTemplate(std::shared_ptr<Runtime> runtime, TemplateInfo info);
    const TemplateInfo& info() const override { return info_; }
    std::shared_ptr<const Space> space(const Problem& p) const override;
    // Validates c, compiles (or takes from the cache) and loads the binaries: throws
    // tune::Error with the NVRTC log on a compile error, "no CUDA device" without one.
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override;
    std::size_t workspace_bytes(const Problem& p, const Config& c) const override;
    std::vector<CompileRequest> compile_requests(const Problem& p, const Config& c) const override;
    void precompile(const Problem& p, const Config& c) const override;

    // The validated plan of (p, c); throws tune::Error naming the violated constraint.
    GemmPlan plan(const Problem& p, const Config& c) const;

protected:
    virtual std::shared_ptr<Space> build_space(const Problem& p) const = 0;
    virtual GemmPlan make_plan(const Problem& p, const Config& c) const = 0;
    const Runtime& runtime() const { return *runtime_; }

private:
    std::shared_ptr<Runtime> runtime_;
    TemplateInfo info_;
    SpaceCache spaces_;
};

}  // namespace tune::cuda
