// "cpu.gemm.onednn": oneDNN's matmul primitive as a vendor template, for f32 and bf16 problems
// (bf16 A and B, f32 C; oneDNN runs bf16 on AMX or AVX512-BF16 where the CPU has them).
// Transposes are memory-descriptor strides (ab vs ba), a batch is a 3-D descriptor.
//
// Threads: Debian's oneDNN uses OpenMP. The knob `threads` is applied with
// omp_set_num_threads on the calling thread while the primitive is created (oneDNN fixes its
// work split then) and again around each execution; the caller's previous setting is
// restored. OpenMP keeps that setting per thread, so kernels with different thread counts do
// not race on it (unlike openblas_set_num_threads).
//
// Everything is built once in instantiate(): engine, stream, primitive, memory objects and a
// user-mode scratchpad. run() only points the memory objects at the caller's operands and
// executes; a mutex serialises concurrent run() calls on one kernel (they share those objects).
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "tune/buffer.hpp"
#include "tune/config.hpp"
#include "tune/error.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "omp_threads.hpp"

#ifndef LIBTUNE_ONEDNN_GEMM_VERSION
#define LIBTUNE_ONEDNN_GEMM_VERSION "unversioned"
#endif

namespace tune {
namespace {

constexpr const char* kName = "cpu.gemm.onednn";

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

using detail::with_omp_threads;

// "2.6.3" plus a hash of what changes the kernels oneDNN picks: its build (commit, runtimes)
// and the ISA it dispatches to on this CPU (DNNL_MAX_CPU_ISA can lower it).
std::string onednn_version() {
    const dnnl_version_t* v = dnnl::version();
    char text[64];
    std::snprintf(text, sizeof text, "%d.%d.%d", v->major, v->minor, v->patch);
    std::string build = std::string(text) + " " + v->hash + " cpu_runtime=" + std::to_string(v->cpu_runtime) +
                        " isa=" + std::to_string(static_cast<int>(dnnl::get_effective_cpu_isa()));
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(build)));
    return std::string(LIBTUNE_ONEDNN_GEMM_VERSION) + "-onednn" + text + "-" + hex;
}

// Row-major operand of `rows x cols` per batch item, stored transposed (cols x rows) when
// `transposed`: the same logical dims with swapped strides.
dnnl::memory::desc operand_desc(const GemmDims& d, std::int64_t rows, std::int64_t cols, bool transposed,
                                dt type) {
    const std::int64_t row_stride = transposed ? 1 : cols, col_stride = transposed ? rows : 1;
    if (d.batch == 1) return dnnl::memory::desc(dims{rows, cols}, type, dims{row_stride, col_stride});
    return dnnl::memory::desc(dims{d.batch, rows, cols}, type, dims{rows * cols, row_stride, col_stride});
}

struct MatmulSetup {
    dnnl::memory::desc a, b, c;
    dnnl::matmul::primitive_desc pd;
};

MatmulSetup make_matmul(const dnnl::engine& engine, const GemmDims& d, DType dtype) {
    const dt in = dtype == DType::bf16 ? dt::bf16 : dt::f32;
    MatmulSetup s;
    s.a = operand_desc(d, d.m, d.k, d.trans_a, in);
    s.b = operand_desc(d, d.k, d.n, d.trans_b, in);
    s.c = operand_desc(d, d.m, d.n, false, dt::f32);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // allocated once per kernel
    s.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(s.a, s.b, s.c), attr, engine);
    return s;
}

class OnednnGemmKernel final : public Kernel {
public:
    OnednnGemmKernel(const GemmDims& d, DType dtype, int threads)
        : threads_(threads), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
        with_omp_threads(threads_, [&] {
            MatmulSetup s = make_matmul(engine_, d, dtype);
            matmul_ = dnnl::matmul(s.pd);
            a_ = dnnl::memory(s.a, engine_, DNNL_MEMORY_NONE);
            b_ = dnnl::memory(s.b, engine_, DNNL_MEMORY_NONE);
            c_ = dnnl::memory(s.c, engine_, DNNL_MEMORY_NONE);
            const dnnl::memory::desc scratch_desc = s.pd.scratchpad_desc();
            scratch_bytes_ = scratch_desc.get_size();
            if (scratch_bytes_ > 0) {
                scratch_buffer_ = AlignedBuffer(scratch_bytes_);
                scratch_ = dnnl::memory(scratch_desc, engine_, scratch_buffer_.data());
            }
            // dnnl::memory objects are shared handles: these see run()'s set_data_handle.
            exec_args_ = {{DNNL_ARG_SRC, a_}, {DNNL_ARG_WEIGHTS, b_}, {DNNL_ARG_DST, c_}};
            if (scratch_bytes_ > 0) exec_args_.emplace(DNNL_ARG_SCRATCHPAD, scratch_);
            return 0;
        });
    }

    void run(const OpArgs& args) const override {
        if (args.inputs.size() != 2 || args.outputs.size() != 1)
            throw Error(std::string(kName) + ": expects inputs {A, B} and outputs {C}");
        if (!args.inputs[0] || !args.inputs[1] || !args.outputs[0])
            throw Error(std::string(kName) + ": null operand");
        std::lock_guard<std::mutex> lock(mutex_);
        a_.set_data_handle(const_cast<void*>(args.inputs[0]));
        b_.set_data_handle(const_cast<void*>(args.inputs[1]));
        c_.set_data_handle(args.outputs[0]);
        with_omp_threads(threads_, [&] {
            matmul_.execute(stream_, exec_args_);
            stream_.wait();
            return 0;
        });
    }

    std::size_t workspace_bytes() const override { return scratch_bytes_; }

private:
    int threads_;
    dnnl::engine engine_;
    mutable dnnl::stream stream_;
    dnnl::matmul matmul_;
    mutable dnnl::memory a_, b_, c_, scratch_;
    std::unordered_map<int, dnnl::memory> exec_args_;
    std::size_t scratch_bytes_ = 0;
    AlignedBuffer scratch_buffer_;
    mutable std::mutex mutex_;
};

// Whether oneDNN builds a matmul for `dtype` on this CPU at all (bf16 needs AVX-512).
bool engine_supports(DType dtype) {
    try {
        dnnl::engine engine(dnnl::engine::kind::cpu, 0);
        make_matmul(engine, GemmDims{1, 2, 2, 2, false, false}, dtype);
        return true;
    } catch (const dnnl::error&) {
        return false;
    }
}

class OnednnGemmTemplate final : public Template {
public:
    explicit OnednnGemmTemplate(const DeviceInfo& device)
        : info_{kName, OpKind::gemm, Backend::cpu, onednn_version(), true, kOnednnSettleSeconds},
          f32_(engine_supports(DType::f32)),
          bf16_(engine_supports(DType::bf16)) {
        const int cores = std::max(1, device.cores);
        std::vector<std::int64_t> threads;
        for (int t = 1; t <= cores; ++t) threads.push_back(t);
        auto s = std::make_shared<Space>();
        s->add(Knob::ints("threads", threads, cores, "OpenMP threads oneDNN creates and runs the matmul with"));
        space_ = std::move(s);
    }

    const TemplateInfo& info() const override { return info_; }

    bool supports(const Problem& p) const override {
        if (p.op != OpKind::gemm) return false;
        if (!(p.dtype == DType::f32 && f32_) && !(p.dtype == DType::bf16 && bf16_)) return false;
        return !gemm_dims(p).has_epilogue();  // epilogues (post-ops) come later
    }

    std::shared_ptr<const Space> space(const Problem&) const override { return space_; }

    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        if (!supports(p)) throw Error(std::string(kName) + ": unsupported problem " + shape_key(p));
        validate(p);
        space_->validate(c);
        try {
            return std::make_unique<OnednnGemmKernel>(gemm_dims(p), p.dtype, static_cast<int>(c.get_int("threads")));
        } catch (const dnnl::error& e) {
            throw Error(std::string(kName) + ": oneDNN could not build a matmul for " + shape_key(p) + ": " +
                        e.what());
        }
    }

private:
    TemplateInfo info_;
    bool f32_, bf16_;
    std::shared_ptr<const Space> space_;
};

}  // namespace

std::unique_ptr<Template> make_onednn_gemm_template(const DeviceInfo& device) {
    return std::make_unique<OnednnGemmTemplate>(device);
}

}  // namespace tune
