// "cpu.gemm.openblas": cblas_sgemm as a vendor template, the baseline a tuned pick must meet.
// One knob, `threads`, applied with openblas_set_num_threads before each call (OpenBLAS keeps
// it process-wide, so concurrent calls with different thread counts race on that setting).
// f32 only: Debian's OpenBLAS 0.3.21 declares cblas_sbgemm in cblas.h but is built without
// BUILD_BFLOAT16, so the library does not export it; bf16 problems go to cpu.gemm.onednn.
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "tune/config.hpp"
#include "tune/error.hpp"
#include "tune/templates/cpu_gemm.hpp"

#ifndef LIBTUNE_OPENBLAS_GEMM_VERSION
#define LIBTUNE_OPENBLAS_GEMM_VERSION "unversioned"
#endif

namespace tune {
namespace {

constexpr const char* kName = "cpu.gemm.openblas";

// Source hash plus a hash of the OpenBLAS build and the core kernels it picked at load time
// (OPENBLAS_CORETYPE changes them, and with them the speed).
std::string openblas_version() {
    std::string lib = openblas_get_config();
    lib += " core=";
    lib += openblas_get_corename();
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(lib)));
    return std::string(LIBTUNE_OPENBLAS_GEMM_VERSION) + "-" + hex;
}

class OpenblasGemmKernel final : public Kernel {
public:
    OpenblasGemmKernel(const GemmDims& d, int threads) : d_(d), threads_(threads) {}

    void run(const OpArgs& args) const override {
        if (args.inputs.size() != 2 || args.outputs.size() != 1)
            throw Error(std::string(kName) + ": expects inputs {A, B} and outputs {C}");
        const auto* A = static_cast<const float*>(args.inputs[0]);
        const auto* B = static_cast<const float*>(args.inputs[1]);
        auto* C = static_cast<float*>(args.outputs[0]);
        if (!A || !B || !C) throw Error(std::string(kName) + ": null operand");
        openblas_set_num_threads(threads_);
        const blasint m = static_cast<blasint>(d_.m), n = static_cast<blasint>(d_.n),
                      k = static_cast<blasint>(d_.k);
        for (std::int64_t item = 0; item < d_.batch; ++item) {
            cblas_sgemm(CblasRowMajor, d_.trans_a ? CblasTrans : CblasNoTrans,
                        d_.trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                        A + item * d_.m * d_.k, d_.trans_a ? m : k, B + item * d_.k * d_.n,
                        d_.trans_b ? k : n, 0.0f, C + item * d_.m * d_.n, n);
        }
    }

private:
    GemmDims d_;
    int threads_;
};

class OpenblasGemmTemplate final : public Template {
public:
    explicit OpenblasGemmTemplate(const DeviceInfo& device)
        : info_{kName, OpKind::gemm, Backend::cpu, openblas_version(), true, kOpenblasSettleSeconds} {
        const int cores = std::max(1, device.cores);
        std::vector<std::int64_t> threads;
        for (int t = 1; t <= cores; ++t) threads.push_back(t);
        auto s = std::make_shared<Space>();
        s->add(Knob::ints("threads", threads, cores, "OpenBLAS threads (openblas_set_num_threads)"));
        space_ = std::move(s);
    }

    const TemplateInfo& info() const override { return info_; }

    bool supports(const Problem& p) const override {
        if (p.op != OpKind::gemm || p.dtype != DType::f32) return false;
        const GemmDims d = gemm_dims(p);
        if (d.has_epilogue()) return false;  // cblas_sgemm has no epilogue
        // cblas takes int dims and leading dimensions.
        constexpr std::int64_t kMax = std::numeric_limits<blasint>::max();
        return d.m <= kMax && d.n <= kMax && d.k <= kMax;
    }

    std::shared_ptr<const Space> space(const Problem&) const override { return space_; }

    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        if (!supports(p)) throw Error(std::string(kName) + ": unsupported problem " + shape_key(p));
        validate(p);
        space_->validate(c);
        return std::make_unique<OpenblasGemmKernel>(gemm_dims(p), static_cast<int>(c.get_int("threads")));
    }

private:
    TemplateInfo info_;
    std::shared_ptr<const Space> space_;
};

}  // namespace

std::unique_ptr<Template> make_openblas_gemm_template(const DeviceInfo& device) {
    return std::make_unique<OpenblasGemmTemplate>(device);
}

}  // namespace tune
