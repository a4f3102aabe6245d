// cuda.gemm.cublaslt: cuBLASLt matmul as a vendor candidate. Its one knob `algo` indexes the
// list cublasLtMatmulAlgoGetHeuristic returns for the problem (index 0 = cuBLAS's own pick),
// so the tuner measures cuBLASLt's candidates beside ours: a tuned pick is never slower than
// cuBLAS's default. cuBLASLt is loaded with dlopen like the driver.
#include <memory>

#include "tune/cuda/api.hpp"
#include "tune/cuda/driver.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/error.hpp"
#include "tune/templates/cuda_gemm.hpp"

namespace tune::cuda {
namespace {

constexpr int kHeuristicCandidates = 16;
constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;

const CublasLtApi& lt() {
    std::string why;
    const CublasLtApi* api = cublaslt_api(&why);
    if (!api) throw Error("cuBLASLt not available: " + why);
    return *api;
}

void check_lt(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string(what) + ": cuBLAS status " + std::to_string(int(s)));
}

// Owners of the cuBLASLt objects (destroyed through the dlopen'd table).
struct Lt {
    cublasLtHandle_t handle = nullptr;
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    Lt() = default;
    Lt(const Lt&) = delete;
    Lt& operator=(const Lt&) = delete;
    ~Lt() {
        const CublasLtApi& api = lt();
        for (auto* l : {a, b, c})
            if (l) api.cublasLtMatrixLayoutDestroy(l);
        if (desc) api.cublasLtMatmulDescDestroy(desc);
        if (handle) api.cublasLtDestroy(handle);
    }
};

template <class T>
void set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& v) {
    check_lt(lt().cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof v), "cublasLtMatmulDescSetAttribute");
}

cudaDataType_t input_type(const Problem& p) {
    switch (p.dtype) {
        case DType::bf16: return CUDA_R_16BF;
        case DType::f16: return CUDA_R_16F;
        default: return CUDA_R_32F;
    }
}

// Row-major C = A B is column-major C^T = B^T A^T: cuBLASLt's first operand is our B, its
// second our A, and C^T (n x m column-major) is our C.
class LtKernel final : public Kernel {
public:
    LtKernel(std::shared_ptr<const Runtime> rt, const Problem& p, int algo_index) : rt_(std::move(rt)), d_(gemm_dims(p)) {
        rt_->context();
        const CublasLtApi& api = lt();
        check_lt(api.cublasLtCreate(&lt_.handle), "cublasLtCreate");
        const bool tf32 = p.dtype == DType::f32;
        check_lt(api.cublasLtMatmulDescCreate(&lt_.desc, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F),
                 "cublasLtMatmulDescCreate");
        // Column-major view: op(B) is n x k. B stored k x n row-major = n x k col-major (no
        // transpose); stored n x k (trans_b) = k x n col-major, transposed.
        const cublasOperation_t op_b = d_.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
        const cublasOperation_t op_a = d_.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
        set_desc(lt_.desc, CUBLASLT_MATMUL_DESC_TRANSA, op_b);
        set_desc(lt_.desc, CUBLASLT_MATMUL_DESC_TRANSB, op_a);
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
        if (d_.bias) epi = d_.act == Activation::gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
        else if (d_.act == Activation::gelu) epi = CUBLASLT_EPILOGUE_GELU;
        set_desc(lt_.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, epi);
        if (d_.bias) set_desc(lt_.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, CUDA_R_32F);

        const cudaDataType_t in = input_type(p);
        auto layout = [&](cublasLtMatrixLayout_t& l, cudaDataType_t type, std::int64_t rows, std::int64_t cols,
                          std::int64_t stride) {
            check_lt(api.cublasLtMatrixLayoutCreate(&l, type, rows, cols, rows), "cublasLtMatrixLayoutCreate");
            const int batch = int(d_.batch);
            check_lt(api.cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch),
                     "cublasLtMatrixLayoutSetAttribute");
            check_lt(api.cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                          sizeof stride),
                     "cublasLtMatrixLayoutSetAttribute");
        };
        // Stored shapes in column-major terms (rows = the contiguous dim).
        layout(lt_.b, in, d_.trans_b ? d_.k : d_.n, d_.trans_b ? d_.n : d_.k, d_.k * d_.n);
        layout(lt_.a, in, d_.trans_a ? d_.m : d_.k, d_.trans_a ? d_.k : d_.m, d_.m * d_.k);
        layout(lt_.c, CUDA_R_32F, d_.n, d_.m, d_.m * d_.n);

        cublasLtMatmulPreference_t pref = nullptr;
        check_lt(api.cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
        std::size_t ws = kWorkspaceBytes;
        api.cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
        cublasLtMatmulHeuristicResult_t results[kHeuristicCandidates] = {};
        int found = 0;
        const cublasStatus_t hs = api.cublasLtMatmulAlgoGetHeuristic(lt_.handle, lt_.desc, lt_.b, lt_.a, lt_.c, lt_.c,
                                                                     pref, kHeuristicCandidates, results, &found);
        api.cublasLtMatmulPreferenceDestroy(pref);
        check_lt(hs, "cublasLtMatmulAlgoGetHeuristic");
        require(algo_index < found, "cuBLASLt heuristic returned " + std::to_string(found) +
                                        " algorithms for this problem; algo=" + std::to_string(algo_index) + " does not exist");
        algo_ = results[algo_index].algo;
        workspace_ = DeviceMemory(std::max<std::size_t>(results[algo_index].workspaceSize, 1));
    }

    std::size_t workspace_bytes() const override { return workspace_.bytes(); }

    void run(const OpArgs& args) const override {
        const std::size_t inputs = 2 + (d_.bias ? 1 : 0) + (d_.residual ? 1 : 0);
        require(args.inputs.size() == inputs && args.outputs.size() == 1,
                "cuda.gemm.cublaslt: expected " + std::to_string(inputs) + " inputs and 1 output");
        std::size_t next = 2;
        if (d_.bias) set_desc(lt_.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, args.inputs[next++]);
        // Residual: D = AB + 1 * C with C the residual (only without an activation, see supports).
        const void* c_in = d_.residual ? args.inputs[next++] : args.outputs[0];
        const float alpha = 1.f, beta = d_.residual ? 1.f : 0.f;
        check_lt(lt().cublasLtMatmul(lt_.handle, lt_.desc, &alpha, args.inputs[1], lt_.b, args.inputs[0], lt_.a, &beta,
                                     c_in, lt_.c, args.outputs[0], lt_.c, &algo_, workspace_.as_ptr(),
                                     workspace_.bytes(), rt_->stream().get()),
                 "cublasLtMatmul");
    }

private:
    std::shared_ptr<const Runtime> rt_;
    GemmDims d_;
    Lt lt_;
    cublasLtMatmulAlgo_t algo_{};
    DeviceMemory workspace_;
};

class CublasLtTemplate final : public Template {
public:
    explicit CublasLtTemplate(std::shared_ptr<Runtime> rt)
        : rt_(std::move(rt)),
          info_{"cuda.gemm.cublaslt", OpKind::gemm, Backend::cuda, std::string(LIBTUNE_CUBLASLT_VERSION) + version_suffix(), true} {
        auto s = std::make_shared<Space>();
        s->add(Knob::ints("algo", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 0,
                          "index into cuBLASLt's heuristic list for the problem (0 = its default pick)"));
        space_ = std::move(s);
    }
    const TemplateInfo& info() const override { return info_; }
    bool supports(const Problem& p) const override {
        if (p.op != OpKind::gemm || cublaslt_api() == nullptr) return false;
        if (p.dtype != DType::bf16 && p.dtype != DType::f16 && !(p.dtype == DType::f32 && admits_bf16_compute(p)))
            return false;
        const GemmDims d = gemm_dims(p);
        // No SiLU epilogue; an activation is applied after beta * C, so no residual with one.
        return d.act != Activation::silu && !(d.residual && d.act != Activation::none) && d.batch < (1ll << 31);
    }
    std::shared_ptr<const Space> space(const Problem&) const override { return space_; }
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        require(supports(p), "cuda.gemm.cublaslt: problem not supported: " + shape_key(p));
        space_->validate(c);
        return std::make_unique<LtKernel>(rt_, p, int(c.get_int("algo")));
    }
    std::size_t workspace_bytes(const Problem&, const Config&) const override { return kWorkspaceBytes; }

private:
    // The cuBLASLt build is part of the version: a new library marks old results stale.
    static std::string version_suffix() {
        const CublasLtApi* api = cublaslt_api();
        return api ? "-cublaslt" + std::to_string(api->cublasLtGetVersion()) : "-nocublaslt";
    }
    std::shared_ptr<Runtime> rt_;
    TemplateInfo info_;
    std::shared_ptr<const Space> space_;
};

}  // namespace
}  // namespace tune::cuda

namespace tune {
std::unique_ptr<Template> make_cuda_gemm_cublaslt_template(std::shared_ptr<cuda::Runtime> runtime) {
    return std::make_unique<cuda::CublasLtTemplate>(std::move(runtime));
}
}  // namespace tune
