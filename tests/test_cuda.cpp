// CUDA backend host logic, on any machine: spaces and constraints of the CUDA GEMM templates,
// compile requests and cache keys, "no CUDA device" reporting, and one real NVRTC compile
// (success and a recorded compile error) when NVRTC is present.
#include <catch2/catch.hpp>

#include "gpu_device_checks.hpp"
#include "tune/cuda/api.hpp"
#include "tune/cuda/nvrtc.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/error.hpp"
#include "tune/templates/cuda_gemm.hpp"
#include "tune/templates/gpu_attention.hpp"

using namespace tune;

namespace {

cuda::RuntimeOptions no_disk_cache() {
    cuda::RuntimeOptions o;
    o.cache_dir = std::filesystem::path();
    return o;
}

Config mma_config(int bm, int bn, int bk, int wm, int wn, int stages, int split, int group) {
    return Config{{"block_m", bm}, {"block_n", bn}, {"block_k", bk}, {"warp_m", wm}, {"warp_n", wn},
                  {"stages", stages}, {"split_k", split}, {"group_m", group}};
}

bool nvrtc_here() { return cuda::nvrtc_available(); }

}  // namespace

TEST_CASE("without a driver or device the CUDA backend says so instead of crashing", "[cuda]") {
    std::string why;
    if (cuda::driver_api(&why) != nullptr) {
        const DeviceInfo d = cuda::Runtime::for_device(0, no_disk_cache())->device();
        CHECK(d.backend == Backend::cuda);
        CHECK(d.arch.rfind("sm_", 0) == 0);
        CHECK(d.cores > 0);
        CHECK(d.memory_bytes > 0);
        CHECK(d.versions.count("cuda_driver") == 1);
        return;
    }
    CHECK_FALSE(why.empty());
    CHECK_THROWS_WITH(cuda::driver(), Catch::StartsWith("no CUDA device: "));
    if (!nvrtc_here()) return;
    CHECK_THROWS_WITH(cuda::Runtime::for_device(0, no_disk_cache()), Catch::StartsWith("no CUDA device: "));
}

TEST_CASE("unknown CUDA arch is rejected by name", "[cuda]") {
    if (!nvrtc_here()) return;
    CHECK_THROWS_WITH(cuda::Runtime::compile_only("sm_70", no_disk_cache()), Catch::Contains("sm_70"));
}

TEST_CASE("cuda.gemm.mma space: shared memory per arch, warps, copies, split-K depth", "[cuda]") {
    if (!nvrtc_here()) return;
    auto sm80 = make_cuda_gemm_mma_template(cuda::Runtime::compile_only("sm_80", no_disk_cache()));
    auto sm90 = make_cuda_gemm_mma_template(cuda::Runtime::compile_only("sm_90a", no_disk_cache()));
    const Problem p = make_gemm(4096, 4096, 4096, DType::bf16, false, true);
    REQUIRE(sm80->supports(p));
    const auto s80 = sm80->space(p), s90 = sm90->space(p);
    CHECK_FALSE(s80->violation(s80->default_config()).has_value());
    // Stages x (256 + 128) rows x 72 bf16 (64 + 8 padding): 3 stages = 162 KiB fits sm_80
    // (163 KiB); 4 stages = 216 KiB only fits sm_90a (227 KiB); 5 stages = 270 KiB neither.
    CHECK_THAT(*s80->violation(mma_config(256, 128, 64, 64, 64, 5, 1, 8)), Catch::Contains("shared_memory_limit"));
    CHECK_THAT(*s90->violation(mma_config(256, 128, 64, 64, 64, 5, 1, 8)), Catch::Contains("shared_memory_limit"));
    CHECK_FALSE(s80->violation(mma_config(256, 128, 64, 64, 64, 3, 1, 8)).has_value());
    CHECK_THAT(*s80->violation(mma_config(256, 128, 64, 64, 64, 4, 1, 8)), Catch::Contains("shared_memory_limit"));
    CHECK_FALSE(s90->violation(mma_config(256, 128, 64, 64, 64, 4, 1, 8)).has_value());
    CHECK_THAT(*s80->violation(mma_config(256, 256, 32, 32, 32, 2, 1, 8)), Catch::Contains("at_most_8_warps"));
    // 64 x 32 bf16 = 256 copies of A over 8 warps (256 threads): balanced; 64 x 64 block with
    // 32 x 32 warps is 4 warps = 128 threads: still balanced; tf32 halves the copy width.
    CHECK_FALSE(s80->violation(mma_config(64, 64, 32, 32, 32, 2, 1, 1)).has_value());
    CHECK(s80->count() > 100);
    const Problem small_k = make_gemm(4096, 4096, 64, DType::bf16, false, true);
    const auto sk = sm80->space(small_k);
    CHECK_THAT(*sk->violation(mma_config(128, 128, 32, 64, 64, 3, 4, 8)), Catch::Contains("split_k_leaves_a_block_per_split"));
    CHECK_FALSE(sk->violation(mma_config(128, 128, 32, 64, 64, 3, 2, 8)).has_value());
    // Values outside a knob's list are named.
    CHECK_THAT(*s80->violation(mma_config(96, 128, 32, 64, 64, 3, 1, 8)), Catch::Contains("block_m"));
}

TEST_CASE("cuda.gemm.mma supports tensor-core dtypes with 16-byte rows, wgmma only sm_90a with B as n x k", "[cuda]") {
    if (!nvrtc_here()) return;
    auto rt80 = cuda::Runtime::compile_only("sm_80", no_disk_cache());
    auto rt90 = cuda::Runtime::compile_only("sm_90a", no_disk_cache());
    auto mma = make_cuda_gemm_mma_template(rt80);
    CHECK(mma->supports(make_gemm(128, 128, 128, DType::bf16)));
    CHECK(mma->supports(make_gemm(128, 128, 128, DType::f16, false, true)));
    CHECK_FALSE(mma->supports(make_gemm(128, 128, 100, DType::bf16)));      // k rows not 16-byte aligned
    CHECK_FALSE(mma->supports(make_gemm(128, 100, 128, DType::bf16)));      // B (k x n) rows not aligned
    CHECK(mma->supports(make_gemm(128, 100, 128, DType::bf16, false, true)));  // B^T rows are k long
    CHECK_FALSE(mma->supports(make_gemm(128, 128, 128, DType::bf16, true)));   // A stored k x m
    Problem f32 = make_gemm(128, 128, 128, DType::f32);
    CHECK_FALSE(mma->supports(f32));  // f32 accuracy: not on tensor cores
    f32.tolerance = bf16_compute_tolerance(f32);
    CHECK(mma->supports(f32));  // tf32 admitted
    auto wg80 = make_cuda_gemm_wgmma_template(rt80);
    auto wg90 = make_cuda_gemm_wgmma_template(rt90);
    const Problem bt = make_gemm(4096, 4096, 4096, DType::bf16, false, true);
    CHECK_FALSE(wg80->supports(bt));
    CHECK(wg90->supports(bt));
    CHECK_FALSE(wg90->supports(make_gemm(4096, 4096, 4096, DType::bf16)));
    const auto s = wg90->space(bt);
    CHECK_FALSE(s->violation(s->default_config()).has_value());
    Config c = s->default_config();
    c.set("block_m", std::int64_t{64});  // 2 consumers x 64 rows > 64
    CHECK_THAT(*s->violation(c), Catch::Contains("rows_per_consumer_multiple_of_64"));
    c.set("consumers", std::int64_t{1});
    c.set("block_m", std::int64_t{128});  // one consumer: 2 x 128 accumulators per thread
    CHECK_THAT(*s->violation(c), Catch::Contains("accumulators_fit_registers"));
    c.set("block_n", std::int64_t{128});
    c.set("stages", std::int64_t{6});
    CHECK_FALSE(s->violation(c).has_value());  // 6 x 32 KiB + 1 KiB fits 227 KiB
    c.set("block_m", std::int64_t{256});
    c.set("consumers", std::int64_t{2});
    CHECK_THAT(*s->violation(c), Catch::Contains("shared_memory_limit"));  // 6 x 48 KiB
}

TEST_CASE("compile requests name every knob value as a template argument, per arch and epilogue", "[cuda]") {
    if (!nvrtc_here()) return;
    auto mma = make_cuda_gemm_mma_template(cuda::Runtime::compile_only("sm_80", no_disk_cache()));
    const auto& rc = dynamic_cast<const RuntimeCompiled&>(*mma);
    Problem p = with_epilogue(make_gemm(1024, 1024, 4096, DType::bf16, false, true), true, Activation::gelu, false);
    const auto reqs = rc.compile_requests(p, mma_config(128, 256, 64, 64, 64, 2, 2, 16));
    REQUIRE(reqs.size() == 2);  // split-K: GEMM and reduction
    CHECK(reqs[0].instance == "libtune::gemm_mma<0,128,256,64,64,64,2,16,3,1,2>");
    CHECK(reqs[1].instance == "libtune::splitk_reduce<3>");
    CHECK(reqs[0].arch == "sm_80");
    CHECK(reqs[0].source_name == "gemm_mma.cu");
    CHECK(reqs[0].headers.size() >= 3);
    CHECK(rc.compile_requests(p, mma_config(128, 256, 64, 64, 64, 2, 1, 16)).size() == 1);
    CHECK(mma->workspace_bytes(p, mma_config(128, 256, 64, 64, 64, 2, 2, 16)) == 2u * 1024 * 1024 * 4);
    CHECK_THROWS_WITH(rc.compile_requests(p, mma_config(96, 256, 64, 64, 64, 2, 2, 16)), Catch::Contains("block_m"));
}

TEST_CASE("NVRTC compiles a GEMM instance, instantiate without a device says no CUDA device", "[cuda]") {
    if (!nvrtc_here()) {
        WARN("NVRTC not available: real compiles not tested here");
        return;
    }
    auto rt = cuda::Runtime::compile_only("sm_80", no_disk_cache());
    auto mma = make_cuda_gemm_mma_template(rt);
    const Problem p = make_gemm(256, 256, 256, DType::bf16, false, true);
    const Config c = mma->space(p)->default_config();
    const auto reqs = dynamic_cast<const RuntimeCompiled&>(*mma).compile_requests(p, c);
    const CompileResult r = rt->compiler().get(reqs[0]);
    INFO(r.log);
    REQUIRE(r.ok);
    CHECK(r.binary.size() > 1000);
    CHECK(r.binary.substr(1, 3) == "ELF");  // a cubin
    CHECK(r.entry.rfind("_ZN7libtune8gemm_mma", 0) == 0);
    if (cuda::driver_api() == nullptr) CHECK_THROWS_WITH(mma->instantiate(p, c), Catch::StartsWith("no CUDA device"));
}

TEST_CASE("a later process instantiates from the disk cache without compiling (the Dispatcher's path)", "[cuda]") {
    if (!nvrtc_here()) return;
    const auto dir = std::filesystem::temp_directory_path() / ("libtune-cuda-cache-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    cuda::RuntimeOptions o;
    o.cache_dir = dir;
    const Problem p = make_gemm(256, 256, 256, DType::bf16, false, true);
    Config c;
    {
        auto tuning = cuda::Runtime::compile_only("sm_80", o);  // the tuning process
        auto mma = make_cuda_gemm_mma_template(tuning);
        c = mma->space(p)->default_config();
        dynamic_cast<const RuntimeCompiled&>(*mma).precompile(p, c);
        REQUIRE(tuning->compiler().get(dynamic_cast<const RuntimeCompiled&>(*mma).compile_requests(p, c)[0]).ok);
        CHECK(tuning->compiler().stats().compiled == 1);
    }
    auto serving = cuda::Runtime::compile_only("sm_80", o);  // a runtime process later
    auto mma = make_cuda_gemm_mma_template(serving);
    // The binary comes from the cache; a compile-only runtime then has no context to load it
    // into, with a driver or without one.
    CHECK_THROWS_WITH(mma->instantiate(p, c), Catch::StartsWith("no CUDA device"));
    CHECK(serving->compiler().stats().compiled == 0);
    CHECK(serving->compiler().stats().cache_hits == 1);
    std::filesystem::remove_all(dir);
}

TEST_CASE("an NVRTC compile error is a result with the compiler's log, not an exception", "[cuda]") {
    if (!nvrtc_here()) return;
    cuda::NvrtcCompiler nvrtc;
    CHECK(nvrtc.version().rfind("nvrtc ", 0) == 0);
    CompileRequest r;
    r.source_name = "broken.cu";
    r.source = "template <int N> __global__ void k(float* x) { x[0] = undefined_name; }";
    r.instance = "k<1>";
    r.arch = "sm_80";
    const CompileResult res = nvrtc.compile(r);
    CHECK_FALSE(res.ok);
    CHECK_THAT(res.log, Catch::Contains("undefined_name"));
    CHECK(res.binary.empty());
}

TEST_CASE("cuda.attention.flash: shared memory per arch, instances per config, split-KV adds the combine", "[cuda][attention]") {
    if (!nvrtc_here()) return;
    auto sm80 = make_cuda_attention_flash_template(cuda::Runtime::compile_only("sm_80", no_disk_cache()));
    auto sm90 = make_cuda_attention_flash_template(cuda::Runtime::compile_only("sm_90a", no_disk_cache()));
    const Problem p = make_attention(1, 32, 8, 4096, 4096, 256, true, 0, DType::bf16);
    REQUIRE(sm80->supports(p));
    CHECK_FALSE(sm80->supports(make_attention(1, 32, 8, 4096, 4096, 128, true, 0, DType::f32)));
    Config c = sm80->space(p)->default_config();
    c.set("k_tile", std::int64_t{64});
    c.set("stages", std::int64_t{3});
    // (64 + 2 x 3 x 64) x 264 x 2 bytes = 236 KiB: neither arch; 2 stages = 167 KiB: sm_90a only.
    CHECK_THAT(*sm90->space(p)->violation(c), Catch::Contains("shared_memory_limit"));
    c.set("stages", std::int64_t{2});
    CHECK_THAT(*sm80->space(p)->violation(c), Catch::Contains("shared_memory_limit"));
    CHECK_FALSE(sm90->space(p)->violation(c).has_value());

    const auto& rc = dynamic_cast<const RuntimeCompiled&>(*sm80);
    const Problem decode = make_attention(1, 32, 8, 1, 8192, 128, true, 0, DType::f16);
    Config d = sm80->space(decode)->default_config();
    const auto reqs = rc.compile_requests(decode, d);
    REQUIRE(reqs.size() == 2);  // split-KV (default 8 parts): the kernel and the combine
    CHECK(reqs[0].instance == "libtune::attention_flash<1,128,16,64,1,2,1,1,1>");
    CHECK(reqs[1].instance == "libtune::attention_combine<128>");
    CHECK(reqs[0].source_name == "attention_flash.cu");
    CHECK(sm80->workspace_bytes(decode, d) == std::size_t(8) * 32 * 129 * 4);
    d.set("split_kv", std::int64_t{1});
    CHECK(rc.compile_requests(decode, d).size() == 1);
    CHECK(sm80->workspace_bytes(decode, d) == 0);
    d.set("q_tile", std::int64_t{48});
    CHECK_THROWS_WITH(rc.compile_requests(decode, d), Catch::Contains("q_tile"));
}

TEST_CASE("cuda.attention.flash_backward: one instance per config from attention_backward.cu, workspace per mode", "[cuda][attention]") {
    if (!nvrtc_here()) return;
    auto t = make_cuda_attention_flash_backward_template(cuda::Runtime::compile_only("sm_80", no_disk_cache()));
    Problem p = make_attention(2, 16, 4, 1000, 1500, 128, true, 0, DType::bf16);
    CHECK_FALSE(t->supports(p));  // the forward
    p.set_dim("backward", 1);
    REQUIRE(t->supports(p));
    Config c = t->space(p)->default_config();
    CHECK(c.get_str("mode") == "recompute");
    const auto reqs = dynamic_cast<const RuntimeCompiled&>(*t).compile_requests(p, c);
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].instance == "libtune::attention_backward<0,128,32,32,128,0>");
    CHECK(reqs[0].source_name == "attention_backward.cu");
    CHECK(t->workspace_bytes(p, c) == 0);
    c.set("mode", std::string("store"));
    CHECK(t->workspace_bytes(p, c) == std::size_t(2) * 16 * 1000 * 1500 * sizeof(float));
    c.set("warps", std::int64_t{3});
    CHECK_THROWS_WITH(t->workspace_bytes(p, c), Catch::Contains("warps"));
}

TEST_CASE("NVRTC compiles a split-KV attention instance and its combine, instantiate without a device says no CUDA device", "[cuda][attention]") {
    if (!nvrtc_here()) {
        WARN("NVRTC not available: real compiles not tested here");
        return;
    }
    auto rt = cuda::Runtime::compile_only("sm_80", no_disk_cache());
    auto t = make_cuda_attention_flash_template(rt);
    const Problem p = make_attention(1, 16, 2, 4, 4096, 80, true, 0, DType::bf16);
    const Config c = t->space(p)->default_config();
    const auto reqs = dynamic_cast<const RuntimeCompiled&>(*t).compile_requests(p, c);
    REQUIRE(reqs.size() == 2);
    for (const auto& req : reqs) {
        const CompileResult r = rt->compiler().get(req);
        INFO(req.instance << "\n" << r.log);
        REQUIRE(r.ok);
        CHECK(r.binary.substr(1, 3) == "ELF");
    }
    if (cuda::driver_api() == nullptr) CHECK_THROWS_WITH(t->instantiate(p, c), Catch::StartsWith("no CUDA device"));
}

TEST_CASE("cuda.attention.wgmma: sm_90a prefill only, shared memory bounds the ring, one instance per config, compiles", "[cuda][attention]") {
    if (!nvrtc_here()) return;
    auto rt = cuda::Runtime::compile_only("sm_90a", no_disk_cache());
    auto t = make_cuda_attention_wgmma_template(rt);
    auto sm80 = make_cuda_attention_wgmma_template(cuda::Runtime::compile_only("sm_80", no_disk_cache()));
    const Problem p = make_attention(2, 32, 8, 1000, 1500, 128, true, 0, DType::bf16);
    REQUIRE(t->supports(p));
    CHECK_FALSE(sm80->supports(p));  // wgmma and TMA are Hopper instructions
    CHECK(t->supports(make_attention(1, 8, 8, 64, 64, 64, false, 0, DType::f16)));
    CHECK_FALSE(t->supports(make_attention(1, 8, 8, 16, 4096, 128, true, 0, DType::bf16)));  // a decode step
    CHECK_FALSE(t->supports(make_attention(1, 8, 8, 512, 512, 96, true, 0, DType::bf16)));  // head_dim 64 / 128 only
    CHECK_FALSE(t->supports(make_attention(1, 8, 8, 512, 512, 128, true, 0, DType::f32)));
    Problem paged = p, backward = p;
    paged.set_dim("page", 16);
    backward.set_dim("backward", 1);
    CHECK_FALSE(t->supports(paged));
    CHECK_FALSE(t->supports(backward));

    Config c = t->space(p)->default_config();
    CHECK(t->workspace_bytes(p, c) == 0);
    // 1 KiB + Q 2 x 128 x 64 x 2 + stages x 2 x 2 x 128 x 64 x 2 (+ barriers): 3 stages fit 227 KiB, 4 do not.
    c.set("stages", std::int64_t{3});
    CHECK_FALSE(t->space(p)->violation(c).has_value());
    c.set("stages", std::int64_t{4});
    CHECK_THAT(*t->space(p)->violation(c), Catch::Contains("shared_memory_limit"));
    c.set("stages", std::int64_t{2});
    // Rounding P once needs a tolerance that admits it.
    c.set("p_split", std::int64_t{0});
    CHECK_THAT(*t->space(p)->violation(c), Catch::Contains("p_rounding_within_tolerance"));
    Problem loose = p;
    loose.tolerance = 0.02;
    CHECK_FALSE(t->space(loose)->violation(c).has_value());

    const auto& rc = dynamic_cast<const RuntimeCompiled&>(*t);
    const auto reqs = rc.compile_requests(loose, c);
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].instance == "libtune::attention_wgmma<0,128,128,2,2,0,0>");
    Config both = c;  // overlapping S with the softmax holds two S tiles: not at k_tile 128, head_dim 128
    both.set("overlap", std::int64_t{1});
    CHECK_THAT(*t->space(loose)->violation(both), Catch::Contains("accumulators_fit_registers"));
    both.set("k_tile", std::int64_t{64});
    CHECK_FALSE(t->space(loose)->violation(both).has_value());
    both.set("stages", std::int64_t{1});
    CHECK_THAT(*t->space(loose)->violation(both), Catch::Contains("overlap_needs_two_stages"));
    CHECK(reqs[0].source_name == "attention_wgmma.cu");
    const CompileResult r = rt->compiler().get(reqs[0]);
    INFO(r.log);
    REQUIRE(r.ok);
    CHECK(r.binary.substr(1, 3) == "ELF");
    CHECK_THROWS_WITH(t->instantiate(loose, c), Catch::StartsWith("no CUDA device"));  // a compile-only runtime
}

TEST_CASE("every problem and config the CUDA device tests run is supported and valid on sm_90a", "[cuda]") {
    // tune_cuda_device_tests runs only on an NVIDIA GPU; its lists are checked here on any machine.
    if (!nvrtc_here()) return;
    using namespace tune::device_checks;
    auto rt = cuda::Runtime::compile_only("sm_90a", no_disk_cache());
    std::size_t checked = 0;
    const auto mma = make_cuda_gemm_mma_template(rt);
    for (DType dt : {DType::bf16, DType::f32})
        for (bool tb : {false, true}) checked += expect_valid(*mma, defaults(*mma, gemm_variants(dt, tb)));
    checked += expect_valid(*mma, covering_cases(*mma, {make_gemm(520, 392, 1032, DType::bf16, false, false),
                                      make_gemm(520, 392, 1032, DType::bf16, false, true)}));
    const auto wgmma = make_cuda_gemm_wgmma_template(rt);
    checked += expect_valid(*wgmma, defaults(*wgmma, gemm_variants(DType::bf16, true)));
    checked += expect_valid(*wgmma, covering_cases(*wgmma, {make_gemm(520, 392, 1032, DType::bf16, false, true, 2)}));
    const auto flash = make_cuda_attention_flash_template(rt);
    checked += expect_valid(*flash, defaults(*flash, attention_default_problems()));
    checked += expect_valid(*flash, covering_cases(*flash, attention_covering_problems()));
    const auto backward = make_cuda_attention_flash_backward_template(rt);
    checked += expect_valid(*backward, backward_mode_cases(*backward));
    checked += expect_valid(*backward, covering_cases(*backward, backward_covering_problems()));
    CHECK(checked > 100);
}
