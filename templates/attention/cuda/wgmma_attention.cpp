// cuda.attention.wgmma: knobs, constraints, compile plan and launch of the Hopper attention
// forward (attention_wgmma.cu): Q, K and V tensor maps (rows x head_dim, 64-dim boxes with
// 128-byte swizzle), one thread block per (64 x consumers query rows, head).
#include "attention_template.hpp"
#include "cuda_gemm.hpp"
#include "tune/cuda/driver.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/error.hpp"
#include "tune/templates/gpu_attention.hpp"

#ifndef LIBTUNE_CUDA_ATTENTION_VERSION
#define LIBTUNE_CUDA_ATTENTION_VERSION "unversioned"
#endif

namespace tune::cuda {
namespace {

constexpr const char* kName = "cuda.attention.wgmma";

// Dynamic shared memory of a block: 1 KiB to align the tiles to the swizzle period, Q's column
// blocks, STAGES x (K's and V's column blocks), 2 x STAGES + 1 mbarriers.
std::int64_t wgmma_attention_shared_bytes(std::int64_t head_dim, std::int64_t k_tile, std::int64_t stages,
                                          std::int64_t consumers) {
    const std::int64_t blocks = head_dim / 64;
    return 1024 + blocks * 64 * consumers * 64 * 2 + stages * 2 * blocks * k_tile * 64 * 2 + (2 * stages + 1) * 8;
}

struct Plan {
    CompileRequest request;
    unsigned grid[2] = {1, 1};
    unsigned block = 0, shared_bytes = 0;
    unsigned rows = 0, k_tile = 0;  // TMA boxes: Q rows per block, keys per tile
    int element = 0;
};

class WgmmaAttentionKernel final : public Kernel {
public:
    WgmmaAttentionKernel(std::shared_ptr<const Runtime> rt, const AttentionDims& a, Plan plan, const CompileResult& bin)
        : rt_(std::move(rt)), a_(a), plan_(std::move(plan)) {
        rt_->context();  // modules load into the current context
        module_ = std::make_unique<Module>(bin.binary);
        function_ = module_->function(bin.entry, plan_.shared_bytes);
    }

    void run(const OpArgs& args) const override {
        libtune::AttentionParams p = gpu_attention::params(a_, args, gpu_attention::Launch{}, nullptr);
        auto maps = maps_.get({p.q, p.k, p.v}, [&](std::size_t i, const void* base) {
            return i == 0 ? map(base, a_.batch * a_.heads * a_.q_len, plan_.rows)
                          : map(base, a_.batch * a_.kv_heads * a_.kv_len, plan_.k_tile);
        });
        void* params[] = {&p, &maps[0], &maps[1], &maps[2]};
        check(driver().cuLaunchKernel(function_, plan_.grid[0], plan_.grid[1], 1, plan_.block, 1, 1, plan_.shared_bytes,
                                      rt_->stream().get(), params, nullptr),
              "cuLaunchKernel(cuda.attention.wgmma)");
    }

private:
    // rows x head_dim 16-bit elements, box `box_rows` x 64 with 128-byte swizzle.
    libtune::TmaDescriptor map(const void* base, long long rows, unsigned box_rows) const {
        return tma_descriptor(base, std::uint64_t(a_.head_dim), std::uint64_t(rows), box_rows, plan_.element == 1);
    }

    std::shared_ptr<const Runtime> rt_;
    AttentionDims a_;
    Plan plan_;
    std::unique_ptr<Module> module_;
    CUfunction function_ = nullptr;
    TmaDescriptorCache<3> maps_;  // Q, K, V
};

class WgmmaAttentionTemplate final : public Template, public RuntimeCompiled {
public:
    explicit WgmmaAttentionTemplate(std::shared_ptr<Runtime> rt)
        : rt_(std::move(rt)), info_{kName, OpKind::attention, Backend::cuda, LIBTUNE_CUDA_ATTENTION_VERSION} {
        require(rt_ != nullptr, std::string(kName) + ": no CUDA runtime");
    }

    const TemplateInfo& info() const override { return info_; }

    bool supports(const Problem& p) const override {
        if (rt_->arch() != "sm_90a" || !gpu_attention::supports(p)) return false;
        const AttentionDims a = attention_dims(p);
        // Prefill (64-row query tiles of one head), contiguous K and V (TMA rows), row
        // coordinates in int32.
        constexpr std::int64_t kRowMax = std::int64_t{1} << 31;
        return (a.head_dim == 64 || a.head_dim == 128) && a.q_len > gpu_attention::kDecodeQLen && a.page == 0 &&
               a.batch * a.heads * a.q_len < kRowMax && a.batch * a.kv_heads * a.kv_len < kRowMax;
    }

    std::shared_ptr<const Space> space(const Problem& p) const override {
        return spaces_.get(p, [&] { return build_space(p); });
    }

    std::size_t workspace_bytes(const Problem&, const Config&) const override { return 0; }

    std::vector<CompileRequest> compile_requests(const Problem& p, const Config& c) const override {
        return {plan(p, c).request};
    }
    void precompile(const Problem& p, const Config& c) const override { rt_->compiler().submit(plan(p, c).request); }

    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        Plan pl = plan(p, c);
        const CompileResult bin = rt_->compiler().get_or_throw(pl.request);
        return std::make_unique<WgmmaAttentionKernel>(rt_, attention_dims(p), std::move(pl), bin);
    }

private:
    std::shared_ptr<Space> build_space(const Problem& p) const {
        const AttentionDims a = attention_dims(p);
        const std::int64_t d = a.head_dim, max_shared = rt_->max_shared_bytes();
        auto s = std::make_shared<Space>();
        s->add(Knob::ints("k_tile", {64, 128}, 128, "keys per online-softmax step (the S wgmma's N)"))
            .add(Knob::ints("stages", {1, 2, 3, 4}, 2, "K/V tiles in the TMA ring"))
            .add(Knob::ints("consumers", {1, 2}, 2, "consumer warpgroups of 64 query rows (plus one producer)"))
            .add(Knob::ints("overlap", {0, 1}, 0, "issue the next tile's Q K^T before this tile's softmax (needs 2+ stages)"))
            .add(Knob::boolean("p_split", true,
                               "P V with P as two 16-bit terms (f32-level accuracy); off rounds P once "
                               "(needs a tolerance that admits it)"));
        const Problem prob = p;
        s->require("p_rounding_within_tolerance", [prob](const Config& c) {
            return c.get_int("p_split") != 0 ||
                   effective_tolerance(prob) >= gpu_attention::single_rounding_tolerance(prob);
        });
        // f32 registers per consumer thread: S (k_tile / 2, twice with overlap) and O (head_dim / 2).
        s->require("accumulators_fit_registers", [d](const Config& c) {
            return (1 + c.get_int("overlap")) * c.get_int("k_tile") / 2 + d / 2 <= 128;
        });
        s->require("overlap_needs_two_stages", [](const Config& c) { return c.get_int("overlap") == 0 || c.get_int("stages") >= 2; });
        s->require("shared_memory_limit", [d, max_shared](const Config& c) {
            return wgmma_attention_shared_bytes(d, c.get_int("k_tile"), c.get_int("stages"), c.get_int("consumers")) <=
                   max_shared;
        });
        return s;
    }

    Plan plan(const Problem& p, const Config& c) const {
        require(supports(p), std::string(kName) + ": problem not supported: " + shape_key(p));
        space(p)->validate(c);
        const AttentionDims a = attention_dims(p);
        const std::int64_t k_tile = c.get_int("k_tile"), stages = c.get_int("stages"), consumers = c.get_int("consumers");
        Plan pl;
        pl.element = p.dtype == DType::f16 ? 1 : 0;
        pl.request = kernel_request("attention_wgmma.cu",
                                    instance_name("attention_wgmma", {pl.element, a.head_dim, k_tile, stages, consumers,
                                                                      c.get_int("p_split"), c.get_int("overlap")}),
                                    rt_->arch());
        pl.rows = unsigned(64 * consumers);
        pl.k_tile = unsigned(k_tile);
        pl.grid[0] = unsigned((a.q_len + pl.rows - 1) / pl.rows);
        pl.grid[1] = unsigned(a.batch * a.heads);
        pl.block = unsigned((consumers + 1) * 128);
        pl.shared_bytes = unsigned(wgmma_attention_shared_bytes(a.head_dim, k_tile, stages, consumers));
        return pl;
    }

    std::shared_ptr<Runtime> rt_;
    TemplateInfo info_;
    SpaceCache spaces_;
};

}  // namespace
}  // namespace tune::cuda

namespace tune {
std::unique_ptr<Template> make_cuda_attention_wgmma_template(std::shared_ptr<cuda::Runtime> runtime) {
    return std::make_unique<cuda::WgmmaAttentionTemplate>(std::move(runtime));
}
}  // namespace tune
