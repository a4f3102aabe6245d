// "cpu.gemm.blocked": the Template around the blocked driver. Declares the knobs and their
// constraints (one space per trans_a/trans_b/epilogue class, built once), validates configs
// and turns them into a Blocking (+ epilogue placement) for the driver.
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "blocked_driver.hpp"
#include "blocking_knobs.hpp"
#include "tune/error.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "tune/thread_pool.hpp"

#ifndef LIBTUNE_CPU_GEMM_VERSION
#define LIBTUNE_CPU_GEMM_VERSION "unversioned"
#endif

namespace tune {
namespace {

using cpu_gemm::Blocking;
using cpu_gemm::Ukernel;

constexpr const char* kName = "cpu.gemm.blocked";

class BlockedGemmKernel final : public Kernel {
public:
    BlockedGemmKernel(const GemmDims& dims, DType dtype, const Blocking& blocking, bool fuse_epilogue,
                      std::shared_ptr<ThreadPool> pool)
        : dims_(dims), dtype_(dtype), blocking_(blocking), fuse_epilogue_(fuse_epilogue), pool_(std::move(pool)),
          scratch_(cpu_gemm::workspace_floats_per_thread(dims, blocking) * static_cast<std::size_t>(blocking.threads) *
                   sizeof(float)) {}

    void run(const OpArgs& args) const override {
        const std::size_t inputs = 2 + std::size_t(dims_.bias) + std::size_t(dims_.residual);
        if (args.inputs.size() != inputs || args.outputs.size() != 1)
            throw Error(std::string(kName) + ": expects inputs {A, B" + (dims_.bias ? ", bias" : "") +
                        (dims_.residual ? ", residual" : "") + "} and outputs {C}");
        for (const void* in : args.inputs)
            if (!in) throw Error(std::string(kName) + ": null operand");
        auto* C = static_cast<float*>(args.outputs[0]);
        if (!C) throw Error(std::string(kName) + ": null operand");
        cpu_gemm::Epilogue e;
        e.bias = dims_.bias ? static_cast<const float*>(args.inputs[2]) : nullptr;
        e.act = dims_.act;
        e.residual = dims_.residual ? static_cast<const float*>(args.inputs[inputs - 1]) : nullptr;

        auto lease = scratch_.take();
        const bool epilogue = dims_.has_epilogue();
        const cpu_gemm::Epilogue* fused = epilogue && fuse_epilogue_ ? &e : nullptr;
        if (dtype_ == DType::bf16) {
            cpu_gemm::blocked_gemm(dims_, blocking_, static_cast<const bf16*>(args.inputs[0]),
                                   static_cast<const bf16*>(args.inputs[1]), C, lease.floats(), pool_.get(), fused);
        } else {
            cpu_gemm::blocked_gemm(dims_, blocking_, static_cast<const float*>(args.inputs[0]),
                                   static_cast<const float*>(args.inputs[1]), C, lease.floats(), pool_.get(), fused);
        }
        if (epilogue && !fuse_epilogue_) cpu_gemm::apply_epilogue(dims_, blocking_, e, C, pool_.get());
    }

    std::size_t workspace_bytes() const override { return scratch_.bytes(); }

private:
    GemmDims dims_;
    DType dtype_;
    Blocking blocking_;
    bool fuse_epilogue_;
    std::shared_ptr<ThreadPool> pool_;
    cpu_gemm::ScratchPool scratch_;
};

class BlockedGemmTemplate final : public Template {
public:
    explicit BlockedGemmTemplate(const DeviceInfo& device)
        : info_{kName, OpKind::gemm, Backend::cpu, LIBTUNE_CPU_GEMM_VERSION, false},
          cores_(std::max(1, device.cores)), kernels_(device) {
        const auto specs = dim_specs(OpKind::gemm);
        for (std::size_t i = 0; i < specs.size(); ++i) {
            if (specs[i].name == "trans_a") trans_a_index_ = i;
            if (specs[i].name == "trans_b") trans_b_index_ = i;
            if (specs[i].name == "bias") bias_index_ = i;
            if (specs[i].name == "act") act_index_ = i;
            if (specs[i].name == "residual") residual_index_ = i;
        }
        if (!kernels_.has_f32()) return;
        for (std::size_t key = 0; key < 8; ++key) {
            const bool trans_b = (key & 1) != 0, epilogue = (key & 4) != 0, dot_layout = trans_b && (key & 2) == 0;
            spaces_[key] = build_space(kernels_.of(DType::f32, false, dot_layout), trans_b, epilogue);
            if (!kernels_.has_bf16()) continue;
            spaces_[key + 8] = build_space(kernels_.of(DType::bf16, false, dot_layout), trans_b, epilogue);
            spaces_[key + 16] = build_space(kernels_.of(DType::f32, true, dot_layout), trans_b, epilogue);
        }
        pool_ = shared_thread_pool(cores_);
    }

    const TemplateInfo& info() const override { return info_; }

    bool supports(const Problem& p) const override {
        if (p.op != OpKind::gemm || !kernels_.has_f32()) return false;
        return p.dtype == DType::f32 || (p.dtype == DType::bf16 && kernels_.has_bf16());
    }

    // Spaces are cached per class: bit 0 trans_b, bit 1 trans_a, bit 2 has an epilogue; then
    // +8 bf16 operands (bf16 micro-kernels only), +16 f32 operands whose tolerance admits bf16
    // compute (precision is then a choice: the f32 and the bf16 micro-kernels, the latter
    // rounding A and B to bf16 as they pack; the measurer rejects a candidate over the budget).
    std::shared_ptr<const Space> space(const Problem& p) const override {
        if (p.op != OpKind::gemm) throw Error(std::string(kName) + ": not a gemm problem");
        if (!kernels_.has_f32()) throw Error(std::string(kName) + ": no micro-kernel runs on this CPU");
        const bool bf16_operands = p.dtype == DType::bf16;
        if (bf16_operands && !kernels_.has_bf16())
            throw Error(std::string(kName) + ": no bf16 micro-kernel runs on this CPU");
        const bool epilogue = p.dims[bias_index_] != 0 || p.dims[act_index_] != 0 || p.dims[residual_index_] != 0;
        const std::size_t cls = (p.dims[trans_a_index_] != 0) * 2 + (p.dims[trans_b_index_] != 0) + epilogue * 4;
        if (bf16_operands) return spaces_[cls + 8];
        return spaces_[bf16_compute_allowed(p) ? cls + 16 : cls];
    }

    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        if (!supports(p)) throw Error(std::string(kName) + ": unsupported problem " + shape_key(p));
        validate(p);
        space(p)->validate(c);
        const GemmDims d = gemm_dims(p);
        const Blocking b = cpu_gemm::blocking_from_config(c, lookup(p), kName);
        const bool fuse = d.has_epilogue() && c.get_str("epilogue") == "fused";
        return std::make_unique<BlockedGemmKernel>(d, p.dtype, b, fuse, pool_);
    }

    Config default_config(const Problem& p) const override {
        return cpu_gemm::decode_default(*space(p), gemm_dims(p));
    }

    Config equivalence_key(const Problem& p, const Config& c) const override {
        if (!supports(p)) return c;
        return cpu_gemm::blocking_equivalence_key(gemm_dims(p), c, lookup(p));
    }

private:
    // Every micro-kernel a config of p's spaces may name (the space has already checked that a
    // dot-form kernel fits p's layout).
    const std::vector<const Ukernel*>& lookup(const Problem& p) const {
        return kernels_.of(p.dtype, bf16_compute_allowed(p), /*dot_layout=*/true);
    }

    bool bf16_compute_allowed(const Problem& p) const { return kernels_.has_bf16() && admits_bf16_compute(p); }

    std::shared_ptr<const Space> build_space(const std::vector<const Ukernel*>& kernels, bool trans_b,
                                             bool epilogue) const {
        auto s = std::make_shared<Space>();
        cpu_gemm::add_blocking_knobs(*s, kernels, cores_, trans_b);
        if (epilogue)
            s->add(Knob::categorical("epilogue", {"fused", "separate"}, "fused",
                                     "bias/activation/residual on each C tile as it is last stored (fused), "
                                     "or a second pass over C (separate)"));
        cpu_gemm::add_bf16_start(*s, kernels);
        return s;
    }

    TemplateInfo info_;
    int cores_;
    cpu_gemm::KernelSets kernels_;
    std::size_t trans_a_index_ = 4, trans_b_index_ = 5, bias_index_ = 6, act_index_ = 7, residual_index_ = 8;
    std::array<std::shared_ptr<const Space>, 24> spaces_;
    std::shared_ptr<ThreadPool> pool_;
};

}  // namespace

std::unique_ptr<Template> make_cpu_gemm_template(const DeviceInfo& device) {
    return std::make_unique<BlockedGemmTemplate>(device);
}

}  // namespace tune
