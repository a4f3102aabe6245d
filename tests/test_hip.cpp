// HIP backend host logic, on any machine: the hip.gemm.mfma space and compile requests,
// "no HIP device" reporting, which archs the loaded hiprtc may target, and real hiprtc compiles
// (MFMA for gfx90a, a recorded compile error) when libamdhip64 is present.
#include <catch2/catch.hpp>

#include <cstdio>

#include "tune/backends.hpp"
#include "tune/error.hpp"
#include "tune/hip/runtime.hpp"
#include "tune/templates/gpu_attention.hpp"
#include "tune/templates/hip_gemm.hpp"

using namespace tune;

namespace {

hip::RuntimeOptions no_disk_cache() {
    hip::RuntimeOptions o;
    o.cache_dir = std::filesystem::path();
    return o;
}

}  // namespace

TEST_CASE("without a HIP device the backend says so, unknown archs are rejected by name", "[hip]") {
    if (!hip::hiprtc_available()) return;
    try {
        const DeviceInfo d = detect_device(Backend::hip);
        CHECK(d.backend == Backend::hip);  // a machine with an AMD GPU
        CHECK(d.arch.rfind("gfx", 0) == 0);
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::StartsWith("no HIP device: "));
    }
    CHECK_THROWS_WITH(hip::Runtime::compile_only("gfx123", no_disk_cache()),
                      Catch::Contains("'gfx123': not supported") && Catch::Contains("gfx942"));
}

TEST_CASE("gfx94x (MI300) needs hiprtc 5.7+: an older one is refused, naming both versions", "[hip]") {
    if (!hip::hiprtc_available()) return;
    // The ROCm release with its patch number ("hiprtc 5.2.21153"), not hiprtcVersion's constant 9.0.
    int major = 0, minor = 0, patch = 0;
    const std::string version = hip::HiprtcCompiler().version();
    REQUIRE(std::sscanf(version.c_str(), "hiprtc %d.%d.%d", &major, &minor, &patch) == 3);
    for (const std::string arch : {"gfx940", "gfx941", "gfx942"}) {
        if (major * 100 + minor >= 507) {
            CHECK(hip::Runtime::compile_only(arch, no_disk_cache())->arch() == arch);
        } else {
            CHECK_THROWS_WITH(hip::Runtime::compile_only(arch, no_disk_cache()),
                              Catch::Contains("'" + arch + "' needs hiprtc 5.7 or newer") &&
                                  Catch::Contains("the loaded hiprtc is " + version.substr(7)));
        }
    }
}

TEST_CASE("a compile-only runtime with another compiler takes gfx942 whatever the hiprtc", "[hip]") {
    struct Offline final : KernelCompiler {
        std::string version() const override { return "offline 1"; }
        CompileResult compile(const CompileRequest& r) const override {
            CompileResult out;
            out.log = "compiled for " + r.arch;
            return out;
        }
    };
    auto rt = hip::Runtime::compile_only("gfx942", no_disk_cache(), std::make_shared<Offline>());
    CHECK(rt->arch() == "gfx942");
    CHECK_FALSE(rt->has_device());
    CHECK_THROWS_WITH(hip::Runtime::compile_only("gfx123", no_disk_cache(), std::make_shared<Offline>()),
                      Catch::Contains("'gfx123': not supported"));
    auto t = make_hip_gemm_mfma_template(rt);
    const Problem p = make_gemm(256, 256, 256, DType::f16);
    const auto reqs = dynamic_cast<const RuntimeCompiled&>(*t).compile_requests(p, t->space(p)->default_config());
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].arch == "gfx942");
    CHECK(rt->compiler().get(reqs[0]).log == "compiled for gfx942");
}

TEST_CASE("hip.gemm.mfma: space, support and compile requests", "[hip]") {
    if (!hip::hiprtc_available()) return;
    auto t = make_hip_gemm_mfma_template(hip::Runtime::compile_only("gfx90a", no_disk_cache()));
    const Problem p = with_epilogue(make_gemm(300, 200, 100, DType::bf16, false, true), true, Activation::silu, false);
    REQUIRE(t->supports(p));  // element-wise staging: no alignment needed
    CHECK(t->supports(make_gemm(64, 64, 64, DType::f16)));
    CHECK_FALSE(t->supports(make_gemm(64, 64, 64, DType::f32)));
    CHECK_FALSE(t->supports(make_gemm(64, 64, 64, DType::bf16, true)));
    const auto s = t->space(p);
    CHECK_FALSE(s->violation(s->default_config()).has_value());
    Config c = s->default_config();
    c.set("warp_m", std::int64_t{32});
    c.set("warp_n", std::int64_t{32});  // 128 x 128 in 32 x 32 waves: 16 waves
    CHECK_THAT(*s->violation(c), Catch::Contains("at_most_8_waves"));
    const auto& rc = dynamic_cast<const RuntimeCompiled&>(*t);
    const auto reqs = rc.compile_requests(p, s->default_config());
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].instance == "libtune::gemm_mfma<0,128,128,32,64,64,8,5,1>");  // bias | silu, B^T
    CHECK(reqs[0].arch == "gfx90a");
    CHECK(reqs[0].source_name == "gemm_mfma.hip");
}

TEST_CASE("hiprtc compiles an MFMA instance for gfx90a, a compile error keeps the log", "[hip]") {
    if (!hip::hiprtc_available()) {
        WARN("hiprtc not available: real compiles not tested here");
        return;
    }
    auto rt = hip::Runtime::compile_only("gfx90a", no_disk_cache());
    auto t = make_hip_gemm_mfma_template(rt);
    const Problem p = make_gemm(256, 256, 256, DType::bf16);
    const auto req = dynamic_cast<const RuntimeCompiled&>(*t).compile_requests(p, t->space(p)->default_config())[0];
    const CompileResult r = rt->compiler().get(req);
    INFO(r.log);
    REQUIRE(r.ok);
    CHECK(r.binary.size() > 1000);
    CHECK(r.entry.find("gemm_mfma") != std::string::npos);
    CHECK_THROWS_WITH(t->instantiate(p, t->space(p)->default_config()), Catch::StartsWith("no HIP device"));

    hip::HiprtcCompiler hiprtc;
    CHECK(hiprtc.version().rfind("hiprtc ", 0) == 0);
    CompileRequest bad;
    bad.source_name = "broken.hip";
    bad.source = "template <int N> __global__ void k(float* x) { x[0] = undefined_name; }";
    bad.instance = "k<1>";
    bad.arch = "gfx90a";
    const CompileResult res = hiprtc.compile(bad);
    CHECK_FALSE(res.ok);
    CHECK_THAT(res.log, Catch::Contains("undefined_name"));
}

TEST_CASE("hiprtc compiles the generic attention instance and its split-KV combine for gfx90a", "[hip][attention]") {
    if (!hip::hiprtc_available()) {
        WARN("hiprtc not available: real compiles not tested here");
        return;
    }
    auto rt = hip::Runtime::compile_only("gfx90a", no_disk_cache());
    auto t = make_hip_attention_flash_template(rt);
    const Problem p = make_attention(1, 32, 8, 1, 4096, 128, true, 0, DType::f16);
    REQUIRE(t->supports(p));
    const Config c = t->space(p)->default_config();
    CHECK(t->space(p)->knob("stages") == nullptr);  // no cp.async pipeline on the generic path
    const auto reqs = dynamic_cast<const RuntimeCompiled&>(*t).compile_requests(p, c);
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].instance == "libtune::attention_flash_generic<1,128,16,32,1,1,1>");
    for (const auto& req : reqs) {
        const CompileResult r = rt->compiler().get(req);
        INFO(req.instance << "\n" << r.log);
        REQUIRE(r.ok);
        CHECK(r.binary.size() > 1000);
    }
    CHECK_THROWS_WITH(t->instantiate(p, c), Catch::StartsWith("no HIP device"));
}
