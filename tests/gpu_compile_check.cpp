// tune_gpu_compile: compiles GPU GEMM and attention template instances at run time, no GPU
// needed: --backend cuda (NVRTC; sm_80 and sm_90a) or --backend hip (hiprtc; GEMM for gfx90a
// with MFMA and gfx1030 on the generic path, attention for gfx90a).
//   --compiler clang (HIP): clang 19's AMDGPU backend instead of hiprtc, for archs this hiprtc
//   cannot target (default gfx942; GEMM and attention), with ROCm's headers and device
//   libraries; GEMM instances must then contain v_mfma on MFMA archs and none elsewhere.
//   --sample (default): a covering sample, every value of every knob and every problem variant
//   (GEMM: dtype, B layout, epilogue; attention: dtype, head_dim, prefill / GQA decode / backward) at
//   least once, per arch; the CI test.
//   --all: every valid config of every default space (scripts/compile-all.sh).
//   --op gemm|attention: only that op's templates.
//   --count: only print how many configs each would compile.
// Exit 0 when every instance compiled, 1 on any failure (logs printed), 77 without the
// compiler (or a build without the backend).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tune/error.hpp"
#include "tune/runtime_compile.hpp"
#ifdef LIBTUNE_WITH_CUDA
#include "tune/cuda/nvrtc.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/templates/cuda_gemm.hpp"
#endif
#if defined(LIBTUNE_WITH_CUDA) || defined(LIBTUNE_WITH_HIP)
#include "tune/templates/gpu_attention.hpp"
#endif
#ifdef LIBTUNE_WITH_HIP
#include "tune/hip/runtime.hpp"
#include "hip_clang_compiler.hpp"
#include "tune/templates/hip_gemm.hpp"
#endif

using namespace tune;

namespace {

struct Variant {
    Problem problem;
    std::string label;
    bool sweep = true;  // --all compiles its whole space (else only the default config)
};

// GEMM problem variants: element type x B layout x epilogue. k = 4096 leaves every split_k legal.
std::vector<Variant> gemm_variants() {
    std::vector<Variant> out;
    const std::vector<std::pair<DType, std::string>> dtypes = {{DType::bf16, "bf16"}, {DType::f16, "f16"}, {DType::f32, "tf32"}};
    struct Epi {
        bool bias;
        Activation act;
        bool residual;
        const char* name;
    };
    const std::vector<Epi> epis = {{false, Activation::none, false, "none"},
                                   {true, Activation::none, false, "bias"},
                                   {true, Activation::gelu, false, "bias+gelu"},
                                   {false, Activation::silu, false, "silu"},
                                   {false, Activation::none, true, "residual"}};
    for (const auto& [dtype, dname] : dtypes)
        for (int trans_b = 0; trans_b < 2; ++trans_b)
            for (const auto& e : epis) {
                Problem p = with_epilogue(make_gemm(512, 512, 4096, dtype, false, trans_b == 1), e.bias, e.act, e.residual);
                if (dtype == DType::f32) p.tolerance = bf16_compute_tolerance(p);  // admits tf32
                out.push_back({p, dname + std::string(trans_b ? " B^T " : " B ") + e.name, e.bias == false &&
                               e.act == Activation::none && !e.residual});
            }
    return out;
}

// Attention variants: element type x head_dim, prefill (causal, GQA group 4) and decode (one
// query, 8k keys, group 8: split_kv). Masks are run-time arguments, so they add no instances.
// The tolerance admits rounding P once, so both p_split values are legal.
std::vector<Variant> attention_variants() {
    std::vector<Variant> out;
    for (const auto& [dtype, dname] : {std::pair{DType::bf16, "bf16"}, std::pair{DType::f16, "f16"}})
        for (std::int64_t d : {64, 80, 96, 128, 256}) {
            Problem prefill = make_attention(1, 16, 4, 2048, 2048, d, true, 0, dtype);
            prefill.tolerance = 0.02;
            out.push_back({prefill, std::string(dname) + " d" + std::to_string(d) + " prefill"});
        }
    for (std::int64_t d : {64, 128}) {
        Problem decode = make_attention(1, 32, 4, 1, 8192, d, true, 0, d == 64 ? DType::f16 : DType::bf16);
        decode.tolerance = 0.02;
        out.push_back({decode, "d" + std::to_string(d) + " decode"});
    }
    // Backward: both element types, the smallest and largest head_dim (the backward space's
    // defaults and register shares change with it), f16 at a head_dim the tensor-core kernel
    // takes, and a tolerance that admits its single rounding (split = 0).
    for (const auto& [dtype, d, tolerance] : {std::tuple{DType::bf16, std::int64_t(64), 0.0},
                                              std::tuple{DType::f16, std::int64_t(256), 0.0},
                                              std::tuple{DType::f16, std::int64_t(96), 0.0},
                                              std::tuple{DType::bf16, std::int64_t(128), 0.02}}) {
        Problem backward = make_attention(1, 16, 4, 2048, 2048, d, true, 0, dtype);
        backward.set_dim("backward", 1);
        backward.tolerance = tolerance;
        out.push_back({backward, std::string(dtype == DType::bf16 ? "bf16" : "f16") + " d" + std::to_string(d) +
                                     " backward" + (tolerance > 0 ? " (tolerance 0.02)" : "")});
    }
    return out;
}

const std::vector<Variant>& variants(OpKind op) {
    static const std::vector<Variant> gemm = gemm_variants(), attention = attention_variants();
    return op == OpKind::attention ? attention : gemm;
}

struct Job {
    const Template* tmpl;
    Variant variant;
    Config config;
};

// Greedy covering: cycle through the variants a template supports; for each, take the valid
// config that covers the most (knob, value) pairs not yet covered; stop when every pair and
// every variant has been used.
std::vector<Job> covering_sample(const Template& t, const std::vector<Variant>& all) {
    std::vector<Variant> vs;
    for (const auto& v : all)
        if (t.supports(v.problem)) vs.push_back(v);
    std::vector<Job> jobs;
    if (vs.empty()) return jobs;
    std::set<std::string> covered, all_pairs;  // "knob=value" over every variant's space
    for (const auto& v : vs)
        for (const auto& k : t.space(v.problem)->knobs())
            for (const auto& value : k.values) all_pairs.insert(k.name + "=" + to_string(value));
    const std::size_t total_pairs = all_pairs.size();
    // Past the first round, a variant whose configs add nothing is passed over; a whole round of
    // those means no config of any variant covers what is left.
    for (std::size_t i = 0, idle = 0; (i < vs.size() || covered.size() < total_pairs) && idle < vs.size(); ++i) {
        const Variant& v = vs[i % vs.size()];
        const auto configs = t.space(v.problem)->enumerate_all();
        const Config* best = nullptr;
        std::size_t best_new = 0;
        for (const auto& c : configs) {
            std::size_t fresh = 0;
            for (const auto& [name, value] : c.values()) fresh += !covered.count(name + "=" + to_string(value));
            if (!best || fresh > best_new) best = &c, best_new = fresh;
        }
        if (i >= vs.size() && best_new == 0) {
            ++idle;
            continue;
        }
        idle = 0;
        for (const auto& [name, value] : best->values()) covered.insert(name + "=" + to_string(value));
        jobs.push_back({&t, v, *best});
    }
    if (covered.size() < total_pairs) {
        std::string missing;
        for (const auto& pair : all_pairs)
            if (!covered.count(pair)) missing += " " + pair;
        throw Error(t.info().name + ": no valid config of any variant has" + missing);
    }
    return jobs;
}

std::vector<Job> full_sweep(const Template& t, const std::vector<Variant>& all) {
    std::vector<Job> jobs;
    for (const auto& v : all) {
        if (!t.supports(v.problem)) continue;
        const auto space = t.space(v.problem);
        if (v.sweep) {
            for (const auto& c : space->enumerate_all()) jobs.push_back({&t, v, c});
        } else {
            jobs.push_back({&t, v, space->default_config()});  // epilogues: the default config
        }
    }
    return jobs;
}

// One arch's templates and their compile service (statistics).
struct Target {
    std::vector<std::unique_ptr<Template>> templates;
    CompileService* compiler = nullptr;
    std::shared_ptr<void> keep_alive;  // the backend's runtime
};

#ifdef LIBTUNE_WITH_HIP
// The offline HIP compiler with the paths CMake found; nullptr with *why when one is missing.
std::shared_ptr<const KernelCompiler> hip_clang(std::string* why) {
#if defined(LIBTUNE_HIP_CLANG) && defined(LIBTUNE_AMDGCN_BITCODE_DIR)
    try {
        return std::make_shared<HipClangCompiler>(
            HipClangSetup{LIBTUNE_HIP_CLANG, LIBTUNE_HIP_INCLUDE_DIR, LIBTUNE_AMDGCN_BITCODE_DIR});
    } catch (const Error& e) {
        *why = e.what();
        return nullptr;
    }
#else
    *why = "CMake found no clang-19 or no ROCm device libraries (install clang-19 rocm-device-libs)";
    return nullptr;
#endif
}

// The archs gemm_mfma.hip compiles with MFMA (LIBTUNE_HIP_MFMA).
bool mfma_arch(const std::string& arch) { return arch == "gfx90a" || arch.rfind("gfx94", 0) == 0; }
#endif

// Templates for `arch` of `backend` compiled by `compiler` ("" for the backend's own); nullopt
// with *why when the compiler is missing.
std::optional<Target> target(const std::string& backend, const std::string& compiler, const std::string& arch,
                             int threads, std::string* why) {
    Target t;
#ifdef LIBTUNE_WITH_CUDA
    if (backend == "cuda") {
        if (!cuda::nvrtc_available(why)) return std::nullopt;
        cuda::RuntimeOptions o;
        o.compile_threads = threads;
        o.cache_dir = std::filesystem::path();  // no disk cache: really compile everything
        auto rt = cuda::Runtime::compile_only(arch, o);
        t.templates.push_back(make_cuda_gemm_mma_template(rt));
        t.templates.push_back(make_cuda_gemm_wgmma_template(rt));
        t.templates.push_back(make_cuda_attention_flash_template(rt));
        t.templates.push_back(make_cuda_attention_wgmma_template(rt));
        t.templates.push_back(make_cuda_attention_flash_backward_template(rt));
        t.templates.push_back(make_cuda_attention_mma_backward_template(rt));
        t.compiler = &rt->compiler();
        t.keep_alive = rt;
        return t;
    }
#endif
#ifdef LIBTUNE_WITH_HIP
    if (backend == "hip") {
        std::shared_ptr<const KernelCompiler> offline;
        if (compiler == "clang" && !(offline = hip_clang(why))) return std::nullopt;
        if (!offline && !hip::hiprtc_available(why)) return std::nullopt;
        hip::RuntimeOptions o;
        o.compile_threads = threads;
        o.cache_dir = std::filesystem::path();
        auto rt = hip::Runtime::compile_only(arch, o, offline);
        t.templates.push_back(make_hip_gemm_mfma_template(rt));
        // One arch suffices for attention on hiprtc: its generic kernel is the same code on every
        // arch. clang compiles it with other headers, so it checks attention on its archs too.
        if (arch == "gfx90a" || offline) {
            t.templates.push_back(make_hip_attention_flash_template(rt));
            t.templates.push_back(make_hip_attention_flash_backward_template(rt));
        }
        t.compiler = &rt->compiler();
        t.keep_alive = rt;
        return t;
    }
#endif
    *why = "this build has no '" + backend + "' backend";
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    bool all = false, count_only = false;
    int threads = 2;
    std::string backend = "cuda", compiler, only_op;
    std::vector<std::string> archs;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--all") all = true;
        else if (a == "--sample") all = false;
        else if (a == "--count") count_only = true;
        else if (a == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
        else if (a == "--backend" && i + 1 < argc) backend = argv[++i];
        else if (a == "--compiler" && i + 1 < argc) compiler = argv[++i];
        else if (a == "--op" && i + 1 < argc) only_op = argv[++i];
        else if (a == "--arch" && i + 1 < argc) {
            archs.clear();
            std::stringstream ss(argv[++i]);
            for (std::string s; std::getline(ss, s, ',');) archs.push_back(s);
        } else {
            std::cerr << "usage: tune_gpu_compile [--backend cuda|hip] [--compiler clang] [--sample|--all] [--count] [--threads N] [--arch a,b] [--op gemm|attention]\n";
            return 2;
        }
    }
    if (!compiler.empty() && !(compiler == "clang" && backend == "hip")) {
        std::cerr << "tune_gpu_compile: --compiler clang is for --backend hip only\n";
        return 2;
    }
    if (archs.empty()) archs = compiler == "clang" ? std::vector<std::string>{"gfx942"}
                               : backend == "hip"  ? std::vector<std::string>{"gfx90a", "gfx1030"}
                                                   : std::vector<std::string>{"sm_80", "sm_90a"};
    const auto t0 = std::chrono::steady_clock::now();
    int instances = 0, failures = 0;
    for (const auto& arch : archs) {
        std::string why;
        auto tg = target(backend, compiler, arch, threads, &why);
        if (!tg) {
            std::cout << "skipped: " << backend << " compiler not available (" << why << ")\n";
            return 77;
        }
        std::vector<Job> jobs;
        for (const auto& t : tg->templates) {
            if (!only_op.empty() && only_op != to_string(t->info().op)) continue;
            const auto& vs = variants(t->info().op);
            auto js = all ? full_sweep(*t, vs) : covering_sample(*t, vs);
            std::cout << arch << " " << t->info().name << ": " << js.size() << " configs\n";
            jobs.insert(jobs.end(), js.begin(), js.end());
        }
        if (count_only) continue;
        // Queue everything first: the service compiles on `threads` workers.
        for (const auto& j : jobs) dynamic_cast<const RuntimeCompiled&>(*j.tmpl).precompile(j.variant.problem, j.config);
        std::set<std::string> seen;
        [[maybe_unused]] int mfma_checked = 0;
        for (const auto& j : jobs) {
            const auto& rc = dynamic_cast<const RuntimeCompiled&>(*j.tmpl);
            for (const auto& r : rc.compile_requests(j.variant.problem, j.config)) {
                if (!seen.insert(r.instance).second) continue;
                ++instances;
                CompileResult res = tg->compiler->get(r);
                if (!res.ok) {
                    ++failures;
                    std::cout << "FAILED " << arch << " " << r.instance << " [" << j.variant.label << "]\n" << res.log << "\n";
                }
#ifdef LIBTUNE_WITH_HIP
                // clang's binary is assembly: the GEMM takes the MFMA path exactly where it should.
                else if (compiler == "clang" && r.instance.rfind("libtune::gemm_mfma<", 0) == 0) {
                    ++mfma_checked;
                    if ((res.binary.find("v_mfma_f32_32x32x8") != std::string::npos) != mfma_arch(arch)) {
                        ++failures;
                        std::cout << "FAILED " << arch << " " << r.instance << ": v_mfma_f32_32x32x8 "
                                  << (mfma_arch(arch) ? "missing" : "present on a generic-path arch") << "\n";
                    }
                }
#endif
            }
        }
#ifdef LIBTUNE_WITH_HIP
        if (mfma_checked)
            std::printf("%s: %d GEMM instances checked for v_mfma_f32_32x32x8 (expected in %s)\n", arch.c_str(),
                        mfma_checked, mfma_arch(arch) ? "each" : "none");
#endif
        const auto st = tg->compiler->stats();
        std::printf("%s: %d compiles, %d failures, %.1f s compile time (summed over threads)\n", arch.c_str(),
                    st.compiled, st.failures, st.compile_seconds);
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %d instances, %d failures, %.1f s wall\n", all ? "all" : "sample", instances, failures, wall);
    return failures == 0 ? 0 : 1;
}
