// "cpu.swiglu.blocked": SwiGLU (out = silu(x W_gate^T) * (x W_up^T)) on the blocked GEMM
// driver. Knob `fusion`: `fused` computes the gate and up tiles of each (i, j) from one packed
// x block and applies silu(g) * u as the tile is last stored; `unfused` runs two GEMMs into a
// workspace and then an elementwise pass. The blocking knobs are the GEMM template's, and so is
// precision: bf16 operands (bf16 x and weights, f32 accumulation and output) use the bf16
// kernels, and an f32 problem whose budget admits bf16 compute also offers them.
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "../../gemm/cpu/blocked_driver.hpp"
#include "../../gemm/cpu/blocking_knobs.hpp"
#include "tune/error.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "tune/thread_pool.hpp"

#ifndef LIBTUNE_CPU_SWIGLU_VERSION
#define LIBTUNE_CPU_SWIGLU_VERSION "unversioned"
#endif

namespace tune {
namespace {

using cpu_gemm::Blocking;
using cpu_gemm::Ukernel;

constexpr const char* kName = "cpu.swiglu.blocked";

// x is m x k, both weights n x k: each projection is a GEMM with trans_b.
GemmDims projection_dims(const Problem& p) { return {1, p.dims[0], p.dims[1], p.dims[2], false, true}; }

// Floats of one m x n intermediate, rounded so the next buffer stays 64-byte aligned.
std::size_t matrix_floats(const GemmDims& d) { return (static_cast<std::size_t>(d.m * d.n) + 15) / 16 * 16; }

std::size_t scratch_floats(const GemmDims& d, const Blocking& b, bool fused) {
    const auto threads = static_cast<std::size_t>(b.threads);
    if (fused) return cpu_gemm::swiglu_workspace_floats_per_thread(d, b) * threads;
    // gate and up (m x n each), then the GEMMs' packing scratch.
    return 2 * matrix_floats(d) + cpu_gemm::workspace_floats_per_thread(d, b) * threads;
}

class BlockedSwigluKernel final : public Kernel {
public:
    BlockedSwigluKernel(const GemmDims& dims, DType dtype, const Blocking& blocking, bool fused,
                        std::shared_ptr<ThreadPool> pool)
        : dims_(dims), dtype_(dtype), blocking_(blocking), fused_(fused), pool_(std::move(pool)),
          scratch_(scratch_floats(dims, blocking, fused) * sizeof(float)) {}

    void run(const OpArgs& args) const override {
        if (args.inputs.size() != 3 || args.outputs.size() != 1)
            throw Error(std::string(kName) + ": expects inputs {x, W_gate, W_up} and outputs {out}");
        if (!args.inputs[0] || !args.inputs[1] || !args.inputs[2] || !args.outputs[0])
            throw Error(std::string(kName) + ": null operand");
        if (dtype_ == DType::bf16) {
            run_as(static_cast<const bf16*>(args.inputs[0]), static_cast<const bf16*>(args.inputs[1]),
                   static_cast<const bf16*>(args.inputs[2]), static_cast<float*>(args.outputs[0]));
        } else {
            run_as(static_cast<const float*>(args.inputs[0]), static_cast<const float*>(args.inputs[1]),
                   static_cast<const float*>(args.inputs[2]), static_cast<float*>(args.outputs[0]));
        }
    }

    std::size_t workspace_bytes() const override { return scratch_.bytes(); }

private:
    template <class S>
    void run_as(const S* x, const S* w_gate, const S* w_up, float* out) const {
        auto lease = scratch_.take();
        float* ws = lease.floats();
        if (fused_) {
            cpu_gemm::blocked_swiglu(dims_, blocking_, x, w_gate, w_up, out, ws, pool_.get());
            return;
        }
        float* gate = ws;
        float* up = ws + matrix_floats(dims_);
        float* packing = ws + 2 * matrix_floats(dims_);
        cpu_gemm::blocked_gemm(dims_, blocking_, x, w_gate, gate, packing, pool_.get());
        cpu_gemm::blocked_gemm(dims_, blocking_, x, w_up, up, packing, pool_.get());
        cpu_gemm::apply_glu(dims_, blocking_, gate, up, out, pool_.get());
    }

    GemmDims dims_;
    DType dtype_;
    Blocking blocking_;
    bool fused_;
    std::shared_ptr<ThreadPool> pool_;
    cpu_gemm::ScratchPool scratch_;
};

class BlockedSwigluTemplate final : public Template {
public:
    explicit BlockedSwigluTemplate(const DeviceInfo& device)
        : info_{kName, OpKind::swiglu, Backend::cpu, LIBTUNE_CPU_SWIGLU_VERSION, false},
          cores_(std::max(1, device.cores)), kernels_(device) {
        if (!kernels_.has_f32()) return;
        // Both weights are n x k: the dot-form kernels apply in every class.
        spaces_[0] = build_space(kernels_.of(DType::f32, false, true));
        if (kernels_.has_bf16()) {
            spaces_[1] = build_space(kernels_.of(DType::bf16, false, true));
            spaces_[2] = build_space(kernels_.of(DType::f32, true, true));
        }
        pool_ = shared_thread_pool(cores_);
    }

    const TemplateInfo& info() const override { return info_; }

    bool supports(const Problem& p) const override {
        if (p.op != OpKind::swiglu || !kernels_.has_f32()) return false;
        return p.dtype == DType::f32 || (p.dtype == DType::bf16 && kernels_.has_bf16());
    }

    // One space per precision class: f32 operands, bf16 operands, f32 operands whose budget
    // admits bf16 compute (see cpu.gemm.blocked).
    std::shared_ptr<const Space> space(const Problem& p) const override {
        if (p.op != OpKind::swiglu) throw Error(std::string(kName) + ": not a swiglu problem");
        if (!kernels_.has_f32()) throw Error(std::string(kName) + ": no micro-kernel runs on this CPU");
        if (p.dtype == DType::bf16) {
            if (!kernels_.has_bf16()) throw Error(std::string(kName) + ": no bf16 micro-kernel runs on this CPU");
            return spaces_[1];
        }
        return spaces_[bf16_compute_allowed(p) ? 2 : 0];
    }

    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        if (!supports(p)) throw Error(std::string(kName) + ": unsupported problem " + shape_key(p));
        validate(p);
        space(p)->validate(c);
        const Blocking b = cpu_gemm::blocking_from_config(c, lookup(p), kName);
        return std::make_unique<BlockedSwigluKernel>(projection_dims(p), p.dtype, b, c.get_str("fusion") == "fused",
                                                     pool_);
    }

    Config default_config(const Problem& p) const override {
        return cpu_gemm::decode_default(*space(p), projection_dims(p));
    }

    Config equivalence_key(const Problem& p, const Config& c) const override {
        return supports(p) ? cpu_gemm::blocking_equivalence_key(projection_dims(p), c, lookup(p)) : c;
    }

private:
    const std::vector<const Ukernel*>& lookup(const Problem& p) const {
        return kernels_.of(p.dtype, bf16_compute_allowed(p), /*dot_layout=*/true);
    }

    bool bf16_compute_allowed(const Problem& p) const { return kernels_.has_bf16() && admits_bf16_compute(p); }

    std::shared_ptr<const Space> build_space(const std::vector<const Ukernel*>& kernels) const {
        auto s = std::make_shared<Space>();
        cpu_gemm::add_blocking_knobs(*s, kernels, cores_, /*trans_b=*/true);
        s->add(Knob::categorical("fusion", {"fused", "unfused"}, "fused",
                                 "gate and up tiles from one packed x block, silu(g) * u in the store (fused), "
                                 "or two GEMMs into a workspace and an elementwise pass (unfused)"));
        cpu_gemm::add_bf16_start(*s, kernels);
        return s;
    }

    TemplateInfo info_;
    int cores_;
    cpu_gemm::KernelSets kernels_;
    std::array<std::shared_ptr<const Space>, 3> spaces_;
    std::shared_ptr<ThreadPool> pool_;
};

}  // namespace

std::unique_ptr<Template> make_cpu_swiglu_template(const DeviceInfo& device) {
    return std::make_unique<BlockedSwigluTemplate>(device);
}

}  // namespace tune
