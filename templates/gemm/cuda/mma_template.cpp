// cuda.gemm.mma: knobs, constraints and compile plan of the mma.sync kernel (gemm_mma.cu).
#include <algorithm>

#include "cuda_gemm.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/error.hpp"
#include "tune/templates/cuda_gemm.hpp"

namespace tune::cuda {
namespace {

struct MmaShape {
    int element, block_m, block_n, block_k, warp_m, warp_n, stages, split_k, group_m;
    bool trans_b;
    static MmaShape of(const Problem& p, const Config& c) {
        return {element_kind(p),           int(c.get_int("block_m")), int(c.get_int("block_n")),
                int(c.get_int("block_k")), int(c.get_int("warp_m")),  int(c.get_int("warp_n")),
                int(c.get_int("stages")),  int(c.get_int("split_k")), int(c.get_int("group_m")),
                gemm_dims(p).trans_b};
    }
    int element_bytes() const { return element == 2 ? 4 : 2; }
    int chunk() const { return 16 / element_bytes(); }  // elements per 16-byte copy
    int threads() const { return (block_m / warp_m) * (block_n / warp_n) * 32; }
    // Mirrors the padded layout in gemm_mma.cu (kLdA, kLdB, kStageA, kStageB).
    std::int64_t shared_bytes() const {
        const int ld_a = block_k + chunk();
        const int rows_b = trans_b ? block_n : block_k;
        const int ld_b = trans_b ? block_k + chunk() : block_n + (element == 2 ? 2 : 1) * chunk();
        return std::int64_t(stages) * (block_m * ld_a + rows_b * ld_b) * element_bytes();
    }
};

class MmaTemplate final : public RuntimeGemmTemplate {
public:
    explicit MmaTemplate(std::shared_ptr<Runtime> rt)
        : RuntimeGemmTemplate(std::move(rt), {"cuda.gemm.mma", OpKind::gemm, Backend::cuda, LIBTUNE_CUDA_GEMM_VERSION}) {}

    bool supports(const Problem& p) const override {
        if (p.op != OpKind::gemm || element_kind(p) < 0) return false;
        const GemmDims d = gemm_dims(p);
        const int chunk = p.dtype == DType::f32 ? 4 : 8;
        // 16-byte cp.async: rows of A (and of B) must start on 16-byte boundaries.
        return !d.trans_a && d.k % chunk == 0 && (d.trans_b || d.n % chunk == 0);
    }

protected:
    std::shared_ptr<Space> build_space(const Problem& p) const override {
        const std::int64_t k = gemm_dims(p).k;
        const std::int64_t max_shared = runtime().max_shared_bytes();
        auto s = std::make_shared<Space>();
        s->add(Knob::ints("block_m", {64, 128, 256}, 128, "rows of C per thread block"))
            .add(Knob::ints("block_n", {64, 128, 256}, 128, "columns of C per thread block"))
            .add(Knob::ints("block_k", {32, 64}, 32, "depth of one pipeline stage"))
            .add(Knob::ints("warp_m", {32, 64}, 64, "rows of C per warp"))
            .add(Knob::ints("warp_n", {32, 64}, 64, "columns of C per warp"))
            .add(Knob::ints("stages", {2, 3, 4, 5}, 3, "shared-memory buffers in flight (cp.async)"))
            .add(Knob::ints("split_k", {1, 2, 4, 8}, 1, "k split over blocks, partials summed by a second kernel"))
            .add(Knob::ints("group_m", {1, 4, 8, 16}, 8, "block rasterisation: tile rows per group (L2 reuse)"));
        s->require("at_most_8_warps", [](const Config& c) {
            return (c.get_int("block_m") / c.get_int("warp_m")) * (c.get_int("block_n") / c.get_int("warp_n")) <= 8;
        });
        const Problem prob = p;
        s->require("shared_memory_limit", [prob, max_shared](const Config& c) {
            return MmaShape::of(prob, c).shared_bytes() <= max_shared;
        });
        // Every thread issues the same number of 16-byte copies per tile (no idle lanes).
        s->require("copies_divide_threads", [prob](const Config& c) {
            const MmaShape m = MmaShape::of(prob, c);
            const int chunks_a = m.block_m * m.block_k / m.chunk(), chunks_b = m.block_n * m.block_k / m.chunk();
            return chunks_a % m.threads() == 0 && chunks_b % m.threads() == 0;
        });
        s->require("split_k_leaves_a_block_per_split", [k](const Config& c) {
            const std::int64_t split = c.get_int("split_k");
            return split == 1 || (k + split - 1) / split >= c.get_int("block_k");
        });
        return s;
    }

    GemmPlan make_plan(const Problem& p, const Config& c) const override {
        const GemmDims d = gemm_dims(p);
        const MmaShape m = MmaShape::of(p, c);
        const int epi = epilogue_bits(d);
        GemmPlan plan;
        plan.element = m.element;
        plan.main = kernel_request("gemm_mma.cu",
                                   instance_name("gemm_mma", {m.element, m.block_m, m.block_n, m.block_k, m.warp_m,
                                                              m.warp_n, m.stages, m.group_m, epi, m.trans_b, m.split_k}),
                                   runtime().arch());
        const long long tiles = ((d.m + m.block_m - 1) / m.block_m) * ((d.n + m.block_n - 1) / m.block_n);
        require(tiles < (1ll << 31) && d.batch <= 65535, "cuda.gemm.mma: grid too large for " + shape_key(p));
        plan.grid[0] = unsigned(tiles);
        plan.grid[1] = unsigned(d.batch);
        plan.grid[2] = unsigned(m.split_k);
        plan.block = unsigned(m.threads());
        plan.shared_bytes = unsigned(m.shared_bytes());
        plan.split_k = m.split_k;
        const long long per_split = (d.k + m.split_k - 1) / m.split_k;
        plan.k_per_split = (per_split + m.block_k - 1) / m.block_k * m.block_k;
        if (m.split_k > 1) {
            plan.reduce = kernel_request("gemm_mma.cu", instance_name("splitk_reduce", {epi}), runtime().arch());
            plan.workspace_bytes = std::size_t(m.split_k) * d.batch * d.m * d.n * sizeof(float);
        }
        return plan;
    }
};

}  // namespace
}  // namespace tune::cuda

namespace tune {
std::unique_ptr<Template> make_cuda_gemm_mma_template(std::shared_ptr<cuda::Runtime> runtime) {
    return std::make_unique<cuda::MmaTemplate>(std::move(runtime));
}
}  // namespace tune
