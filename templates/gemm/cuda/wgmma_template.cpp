// cuda.gemm.wgmma: knobs, constraints and compile plan of the Hopper kernel (gemm_wgmma.cu).
#include <algorithm>

#include "cuda_gemm.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/error.hpp"
#include "tune/templates/cuda_gemm.hpp"

namespace tune::cuda {
namespace {

constexpr int kBlockK = 64;  // gemm_wgmma.cu kWgmmaBlockK

std::int64_t wgmma_shared_bytes(const Config& c) {
    const std::int64_t stages = c.get_int("stages");
    // Tiles, two mbarriers per stage, and 1 KiB to align the tiles to the swizzle period.
    return stages * (c.get_int("block_m") + c.get_int("block_n")) * kBlockK * 2 + stages * 16 + 1024;
}

class WgmmaTemplate final : public RuntimeGemmTemplate {
public:
    explicit WgmmaTemplate(std::shared_ptr<Runtime> rt)
        : RuntimeGemmTemplate(std::move(rt), {"cuda.gemm.wgmma", OpKind::gemm, Backend::cuda, LIBTUNE_CUDA_GEMM_VERSION}) {}

    bool supports(const Problem& p) const override {
        if (p.op != OpKind::gemm || runtime().arch() != "sm_90a") return false;
        if (p.dtype != DType::bf16 && p.dtype != DType::f16) return false;
        const GemmDims d = gemm_dims(p);
        // TMA: K-major A and B (B as n x k), 16-byte row strides, int32 row coordinates.
        return !d.trans_a && d.trans_b && d.k % 8 == 0 && d.batch * std::max(d.m, d.n) < (1ll << 31);
    }

protected:
    std::shared_ptr<Space> build_space(const Problem&) const override {
        const std::int64_t max_shared = runtime().max_shared_bytes();
        auto s = std::make_shared<Space>();
        s->add(Knob::ints("block_m", {64, 128, 256}, 128, "rows of C per thread block"))
            .add(Knob::ints("block_n", {64, 128, 256}, 256, "columns of C per block (the wgmma N)"))
            .add(Knob::ints("stages", {2, 3, 4, 5, 6}, 4, "TMA buffers in the ring"))
            .add(Knob::ints("consumers", {1, 2}, 2, "consumer warpgroups (plus one producer)"))
            .add(Knob::ints("group_m", {1, 4, 8, 16}, 8, "block rasterisation: tile rows per group (L2 reuse)"))
            .add(Knob::ints("overlap", {0, 1}, 1, "wgmma groups of consecutive k tiles in flight together (1) or one at a time (0)"))
            .add(Knob::ints("persistent", {0, 1}, 0, "one block per SM looping over tiles (1) or one block per tile (0)"));
        s->require("rows_per_consumer_multiple_of_64",
                   [](const Config& c) { return c.get_int("block_m") % (64 * c.get_int("consumers")) == 0; });
        // f32 accumulators per consumer thread: 64-row tiles x block_n / 2; more spills.
        s->require("accumulators_fit_registers", [](const Config& c) {
            return c.get_int("block_m") / c.get_int("consumers") / 64 * c.get_int("block_n") / 2 <= 128;
        });
        s->require("shared_memory_limit", [max_shared](const Config& c) { return wgmma_shared_bytes(c) <= max_shared; });
        return s;
    }

    GemmPlan make_plan(const Problem& p, const Config& c) const override {
        const GemmDims d = gemm_dims(p);
        const int bm = int(c.get_int("block_m")), bn = int(c.get_int("block_n"));
        const int consumers = int(c.get_int("consumers"));
        GemmPlan plan;
        plan.element = element_kind(p);
        plan.main = kernel_request("gemm_wgmma.cu",
                                   instance_name("gemm_wgmma", {plan.element, bm, bn, c.get_int("stages"), consumers,
                                                                c.get_int("group_m"), epilogue_bits(d),
                                                                c.get_int("overlap")}),
                                   runtime().arch());
        // The kernel walks the tiles of all batch items; a persistent grid has one block per SM.
        const std::int64_t tiles = ((d.m + bm - 1) / bm) * ((d.n + bn - 1) / bn) * d.batch;
        const std::int64_t sms = runtime().device().cores;
        plan.grid[0] = unsigned(c.get_int("persistent") && sms > 0 ? std::min(tiles, sms) : tiles);
        plan.grid[1] = 1;
        plan.block = unsigned((consumers + 1) * 128);
        plan.shared_bytes = unsigned(wgmma_shared_bytes(c));
        plan.k_per_split = d.k;
        plan.tma = true;
        plan.tma_rows_a = bm;
        plan.tma_rows_b = bn;
        return plan;
    }
};

}  // namespace
}  // namespace tune::cuda

namespace tune {
std::unique_ptr<Template> make_cuda_gemm_wgmma_template(std::shared_ptr<cuda::Runtime> runtime) {
    return std::make_unique<cuda::WgmmaTemplate>(std::move(runtime));
}
}  // namespace tune
