// hip.gemm.mfma: knobs, constraints, compile plan and launch of gemm_mfma.hip (MFMA on gfx90a
// and gfx94x, the generic FMA path on other archs).
#include <map>
#include <mutex>

#include "gemm_args.hpp"
#include "tune/error.hpp"
#include "tune/hip/api.hpp"
#include "tune/hip/kernel_sources.hpp"
#include "tune/hip/runtime.hpp"
#include "tune/runtime_compile.hpp"
#include "tune/templates/hip_gemm.hpp"

namespace tune::hip {
namespace {

struct Launch {
    unsigned grid[2], block;
};

// A loaded instance; run() enqueues on the runtime's stream. Operands are device pointers
// (A, B, then bias and residual when the problem has them; C).
class MfmaKernel final : public Kernel {
public:
    MfmaKernel(std::shared_ptr<const Runtime> rt, const Problem& p, Launch launch, const CompileResult& binary)
        : rt_(std::move(rt)), d_(gemm_dims(p)), launch_(launch) {
        rt_->stream();  // the device current on this thread
        module_ = std::make_unique<Module>(binary.binary, binary.entry);
    }
    void run(const OpArgs& args) const override {
        libtune::GemmParams p = gemm_params(d_, args, "hip gemm");
        void* params[] = {&p};
        check(runtime_api().hipModuleLaunchKernel(static_cast<hipFunction_t>(module_->function()), launch_.grid[0],
                                                  launch_.grid[1], 1, launch_.block, 1, 1, 0,
                                                  static_cast<hipStream_t>(rt_->stream()), params, nullptr),
              "hipModuleLaunchKernel");
    }

private:
    std::shared_ptr<const Runtime> rt_;
    GemmDims d_;
    Launch launch_;
    std::unique_ptr<Module> module_;
};

class MfmaTemplate final : public Template, public RuntimeCompiled {
public:
    explicit MfmaTemplate(std::shared_ptr<Runtime> rt)
        : rt_(std::move(rt)), info_{"hip.gemm.mfma", OpKind::gemm, Backend::hip, LIBTUNE_HIP_GEMM_VERSION} {
        auto s = std::make_shared<Space>();
        s->add(Knob::ints("block_m", {64, 128}, 128, "rows of C per block"))
            .add(Knob::ints("block_n", {64, 128}, 128, "columns of C per block"))
            .add(Knob::ints("block_k", {16, 32}, 32, "k depth staged in LDS"))
            .add(Knob::ints("warp_m", {32, 64}, 64, "rows of C per wave (32 x 32 MFMA blocks)"))
            .add(Knob::ints("warp_n", {32, 64}, 64, "columns of C per wave"))
            .add(Knob::ints("group_m", {1, 4, 8}, 8, "block rasterisation: tile rows per group (L2 reuse)"));
        s->require("at_most_8_waves", [](const Config& c) {
            return (c.get_int("block_m") / c.get_int("warp_m")) * (c.get_int("block_n") / c.get_int("warp_n")) <= 8;
        });
        space_ = std::move(s);
    }
    const TemplateInfo& info() const override { return info_; }
    bool supports(const Problem& p) const override {
        return p.op == OpKind::gemm && (p.dtype == DType::bf16 || p.dtype == DType::f16) && !gemm_dims(p).trans_a &&
               gemm_dims(p).batch <= 65535;
    }
    std::shared_ptr<const Space> space(const Problem&) const override { return space_; }

    std::vector<CompileRequest> compile_requests(const Problem& p, const Config& c) const override {
        return {plan(p, c).second};
    }
    void precompile(const Problem& p, const Config& c) const override { rt_->compiler().submit(plan(p, c).second); }
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        auto [launch, request] = plan(p, c);
        return std::make_unique<MfmaKernel>(rt_, p, launch, rt_->compiler().get_or_throw(request));
    }

private:
    std::pair<Launch, CompileRequest> plan(const Problem& p, const Config& c) const {
        require(supports(p), "hip.gemm.mfma: problem not supported: " + shape_key(p));
        space_->validate(c);
        const GemmDims d = gemm_dims(p);
        const std::int64_t bm = c.get_int("block_m"), bn = c.get_int("block_n");
        const std::int64_t wm = c.get_int("warp_m"), wn = c.get_int("warp_n");
        std::string instance = "libtune::gemm_mfma<";
        for (std::int64_t v : {std::int64_t(p.dtype == DType::f16), bm, bn, c.get_int("block_k"), wm, wn,
                               c.get_int("group_m"), std::int64_t(epilogue_bits(d)), std::int64_t(d.trans_b)})
            instance += std::to_string(v) + ",";
        instance.back() = '>';
        const std::int64_t tiles = ((d.m + bm - 1) / bm) * ((d.n + bn - 1) / bn);
        require(tiles < (1ll << 31), "hip.gemm.mfma: grid too large for " + shape_key(p));
        Launch launch{{unsigned(tiles), unsigned(d.batch)}, unsigned((bm / wm) * (bn / wn) * 64)};
        return {launch, program_request(kernel_sources(), "gemm_mfma.hip", instance, rt_->arch())};
    }

    std::shared_ptr<Runtime> rt_;
    TemplateInfo info_;
    std::shared_ptr<const Space> space_;
};

}  // namespace
}  // namespace tune::hip

namespace tune {
std::unique_ptr<Template> make_hip_gemm_mfma_template(std::shared_ptr<hip::Runtime> runtime) {
    return std::make_unique<hip::MfmaTemplate>(std::move(runtime));
}
}  // namespace tune
