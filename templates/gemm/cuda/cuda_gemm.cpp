#include "cuda_gemm.hpp"

#include <cstring>

#include "gemm_args.hpp"
#include "tune/cuda/driver.hpp"
#include "tune/cuda/kernel_sources.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/error.hpp"

namespace tune::cuda {

int element_kind(const Problem& p) {
    if (p.dtype == DType::bf16) return 0;
    if (p.dtype == DType::f16) return 1;
    if (p.dtype == DType::f32 && admits_bf16_compute(p)) return 2;
    return -1;
}

std::string instance_name(const std::string& kernel, std::initializer_list<long long> args) {
    std::string out = "libtune::" + kernel + "<";
    for (long long a : args) out += std::to_string(a) + ",";
    out.back() = '>';
    return out;
}

libtune::TmaDescriptor tma_descriptor(const void* base, std::uint64_t inner, std::uint64_t rows, std::uint32_t box_rows,
                                      bool f16) {
    static_assert(sizeof(libtune::TmaDescriptor) == sizeof(CUtensorMap), "TmaDescriptor is a CUtensorMap");
    const CUtensorMap map = tensor_map_2d(base, inner, rows, box_rows, f16);
    libtune::TmaDescriptor out;
    std::memcpy(&out, &map, sizeof out);
    return out;
}

CompileRequest kernel_request(const std::string& source, const std::string& instance, const std::string& arch) {
    return program_request(kernel_sources(), source, instance, arch);
}

namespace {

// A compiled and loaded GEMM instance. run() enqueues on the runtime's stream and returns:
// operands are device pointers (A, B, then bias and residual when the problem has them; C).
class GemmKernel final : public Kernel {
public:
    GemmKernel(std::shared_ptr<const Runtime> rt, const Problem& p, GemmPlan plan, const CompileResult& main,
               const CompileResult* reduce)
        : rt_(std::move(rt)), dims_(gemm_dims(p)), plan_(std::move(plan)) {
        rt_->context();  // modules load into the current context
        module_ = std::make_unique<Module>(main.binary);
        function_ = module_->function(main.entry, plan_.shared_bytes);
        if (reduce) {
            reduce_module_ = std::make_unique<Module>(reduce->binary);
            reduce_function_ = reduce_module_->function(reduce->entry);
            workspace_ = DeviceMemory(plan_.workspace_bytes);
        }
    }

    std::size_t workspace_bytes() const override { return plan_.workspace_bytes; }

    void run(const OpArgs& args) const override {
        libtune::GemmParams p = gemm_params(dims_, args, "cuda gemm");
        p.workspace = static_cast<float*>(workspace_.as_ptr());
        p.k_per_split = plan_.k_per_split;
        CUstream stream = rt_->stream().get();
        const DriverApi& d = driver();
        if (plan_.tma) {
            auto maps = maps_.get({p.a, p.b}, [&](std::size_t i, const void* base) {
                return i == 0 ? tensor_map(base, dims_.batch * dims_.m, plan_.tma_rows_a)
                              : tensor_map(base, dims_.batch * dims_.n, plan_.tma_rows_b);
            });
            void* params[] = {&p, &maps[0], &maps[1]};
            check(d.cuLaunchKernel(function_, plan_.grid[0], plan_.grid[1], plan_.grid[2], plan_.block, 1, 1,
                                   plan_.shared_bytes, stream, params, nullptr),
                  "cuLaunchKernel");
        } else {
            void* params[] = {&p};
            check(d.cuLaunchKernel(function_, plan_.grid[0], plan_.grid[1], plan_.grid[2], plan_.block, 1, 1,
                                   plan_.shared_bytes, stream, params, nullptr),
                  "cuLaunchKernel");
        }
        if (reduce_function_) {
            int splits = plan_.split_k;
            void* params[] = {&p, &splits};
            const long long total = dims_.batch * dims_.m * dims_.n;
            const unsigned blocks = unsigned(std::min<long long>((total + 255) / 256, 65535));
            check(d.cuLaunchKernel(reduce_function_, blocks, 1, 1, 256, 1, 1, 0, stream, params, nullptr),
                  "cuLaunchKernel(split-K reduce)");
        }
    }

private:
    // 2-D tensor map over `rows` x k elements, box `box_rows` x 64, 128-byte swizzle.
    libtune::TmaDescriptor tensor_map(const void* base, long long rows, int box_rows) const {
        return tma_descriptor(base, std::uint64_t(dims_.k), std::uint64_t(rows), std::uint32_t(box_rows), plan_.element == 1);
    }

    std::shared_ptr<const Runtime> rt_;
    GemmDims dims_;
    GemmPlan plan_;
    std::unique_ptr<Module> module_;
    CUfunction function_ = nullptr;
    std::unique_ptr<Module> reduce_module_;
    CUfunction reduce_function_ = nullptr;
    DeviceMemory workspace_;
    TmaDescriptorCache<2> maps_;  // A, B (wgmma)
};

}  // namespace

RuntimeGemmTemplate::RuntimeGemmTemplate(std::shared_ptr<Runtime> runtime, TemplateInfo info)
    : runtime_(std::move(runtime)), info_(std::move(info)) {
    require(runtime_ != nullptr, info_.name + ": no CUDA runtime");
}

std::shared_ptr<const Space> RuntimeGemmTemplate::space(const Problem& p) const {
    return spaces_.get(p, [&] { return build_space(p); });
}

GemmPlan RuntimeGemmTemplate::plan(const Problem& p, const Config& c) const {
    require(supports(p), info_.name + ": problem not supported: " + shape_key(p));
    space(p)->validate(c);
    return make_plan(p, c);
}

std::vector<CompileRequest> RuntimeGemmTemplate::compile_requests(const Problem& p, const Config& c) const {
    GemmPlan pl = plan(p, c);
    std::vector<CompileRequest> out = {std::move(pl.main)};
    if (pl.reduce) out.push_back(std::move(*pl.reduce));
    return out;
}

void RuntimeGemmTemplate::precompile(const Problem& p, const Config& c) const {
    for (const auto& r : compile_requests(p, c)) runtime_->compiler().submit(r);
}

std::size_t RuntimeGemmTemplate::workspace_bytes(const Problem& p, const Config& c) const {
    return plan(p, c).workspace_bytes;
}

std::unique_ptr<Kernel> RuntimeGemmTemplate::instantiate(const Problem& p, const Config& c) const {
    GemmPlan pl = plan(p, c);
    precompile(p, c);  // both programs compile in parallel
    CompileResult main = runtime_->compiler().get_or_throw(pl.main);
    std::optional<CompileResult> reduce;
    if (pl.reduce) reduce = runtime_->compiler().get_or_throw(*pl.reduce);
    return std::make_unique<GemmKernel>(runtime_, p, std::move(pl), main, reduce ? &*reduce : nullptr);
}

}  // namespace tune::cuda
