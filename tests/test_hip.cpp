// HIP backend host logic, on any machine: the hip.gemm.mfma space and compile requests,
// "no HIP device" reporting, which archs the loaded hiprtc may target, real hiprtc compiles
// (MFMA for gfx90a, a recorded compile error) when libamdhip64 is present, and the loader's
// choice among ROCm releases on stand-in libraries (tests/fake_rocm).
#include <catch2/catch.hpp>

#include <cstdio>

#include "tune/backends.hpp"
#include "gpu_device_checks.hpp"
#include "tune/error.hpp"
#include "tune/hip/api.hpp"
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

// Stands in for hiprtc where only the host side is under test.
struct Offline final : KernelCompiler {
    std::string version() const override { return "offline 1"; }
    CompileResult compile(const CompileRequest& r) const override {
        CompileResult out;
        out.log = "compiled for " + r.arch;
        return out;
    }
};

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

namespace {

const std::string fake_rocm = LIBTUNE_FAKE_ROCM_DIR;

// Switches the stand-in runtime's properties to garbage for one scope.
struct ScrambledProperties {
    void (*set)(int);
    explicit ScrambledProperties(const hip::HipApi& api)
        : set(reinterpret_cast<void (*)(int)>(api.lib->symbol("fake_hip_scramble_properties"))) {
        set(1);
    }
    ~ScrambledProperties() { set(0); }
};

}  // namespace

TEST_CASE("hiprtc is looked for beside the runtime, with the runtime's major version", "[hip]") {
    CHECK(hip::hiprtc_library_for("/opt/rocm-6.4.3/lib/libamdhip64.so.6") == "/opt/rocm-6.4.3/lib/libhiprtc.so.6");
    CHECK(hip::hiprtc_library_for("libamdhip64.so.7") == "libhiprtc.so.7");
    CHECK(hip::hiprtc_library_for("libamdhip64.so") == "libhiprtc.so");
    CHECK(hip::hiprtc_library_for("/x/libother.so.6") == "/x/libhiprtc.so");
}

TEST_CASE("the HIP runtime is looked for under ROCM_PATH first, then on the search path, then in /opt/rocm", "[hip]") {
    // Newest release first in each place: a machine with ROCm 5 and 6 compiles with 6's hiprtc.
    const std::vector<std::string> releases{"libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5", "libamdhip64.so"};
    std::vector<std::string> expected = releases;
    for (const auto& r : releases) expected.push_back("/opt/rocm/lib/" + r);
    CHECK(hip::hip_runtime_candidates(nullptr) == expected);
    CHECK(hip::hip_runtime_candidates("") == expected);  // set but empty: as unset
    std::vector<std::string> with_path;
    for (const auto& r : releases) with_path.push_back("/x/rocm-6.4.3/lib/" + r);
    with_path.insert(with_path.end(), expected.begin(), expected.end());
    CHECK(hip::hip_runtime_candidates("/x/rocm-6.4.3") == with_path);
}

TEST_CASE("a ROCm 6 runtime is loaded with its separate libhiprtc, and fingerprints its device", "[hip]") {
    const auto loaded = hip::load_hip_api({fake_rocm + "/rocm6/libamdhip64.so.6"});
    INFO(loaded.why);
    REQUIRE(loaded.api);
    const hip::HipApi& api = *loaded.api;
    CHECK(api.lib->name() == fake_rocm + "/rocm6/libamdhip64.so.6");
    CHECK(api.rtc_lib->name() == fake_rocm + "/rocm6/libhiprtc.so.6");
    CHECK(std::string(api.hiprtcGetErrorString(HIPRTC_SUCCESS)) == "fake hiprtc in libhiprtc");
    const hip::HiprtcVersion v = hip::hiprtc_version(api);
    CHECK(v.major_minor == 604);
    CHECK(v.text == "6.4.43482");

    const DeviceInfo d = hip::detect_device(api, 0);
    CHECK(d.backend == Backend::hip);
    CHECK(d.model == "Fake Instinct MI300X");
    CHECK(d.arch == "gfx942");
    CHECK(d.cores == 304);
    CHECK(d.l2_bytes == 4 << 20);
    CHECK(d.memory_bytes == std::int64_t{192} << 30);
    CHECK(d.versions.at("gcn_arch_name") == "gfx942:sramecc+:xnack-");
    CHECK(d.versions.at("sm_clock_mhz") == "2100");
    CHECK(d.versions.at("hiprtc") == "6.4.43482");
    CHECK(d.versions.at("hip_runtime_library") == api.lib->name());
    CHECK_THROWS_WITH(hip::detect_device(api, 1), Catch::Contains("hipGetDeviceProperties"));
}

TEST_CASE("device properties in a layout this build does not read are refused, not taken", "[hip]") {
    const auto loaded = hip::load_hip_api({fake_rocm + "/rocm6/libamdhip64.so.6"});
    REQUIRE(loaded.api);
    ScrambledProperties scrambled(*loaded.api);
    CHECK_THROWS_WITH(hip::detect_device(*loaded.api, 0),
                      Catch::Contains("did not fill ROCm 5's property layout") &&
                          Catch::Contains(fake_rocm + "/rocm6/libamdhip64.so.6") && Catch::Contains("HIP 6.4.43482") &&
                          Catch::Contains("0 compute units"));
}

TEST_CASE("a runtime without its hiprtc is passed over for the next release, and the reasons are kept", "[hip]") {
    const std::string alone = fake_rocm + "/rocm6-no-hiprtc/libamdhip64.so.6";
    const auto only_alone = hip::load_hip_api({alone});
    CHECK_FALSE(only_alone.api);
    CHECK_THAT(only_alone.why, Catch::Contains(alone + " has no hiprtc") &&
                                   Catch::Contains(fake_rocm + "/rocm6-no-hiprtc/libhiprtc.so.6"));

    const auto loaded = hip::load_hip_api({fake_rocm + "/rocm7/libamdhip64.so.7", alone, fake_rocm + "/rocm5/libamdhip64.so.5"});
    INFO(loaded.why);
    REQUIRE(loaded.api);
    // ROCm 5: hiprtc inside the runtime.
    CHECK(loaded.api->lib->name() == fake_rocm + "/rocm5/libamdhip64.so.5");
    CHECK(loaded.api->rtc_lib == loaded.api->lib);
    CHECK(std::string(loaded.api->hiprtcGetErrorString(HIPRTC_SUCCESS)) == "fake hiprtc in libamdhip64");
    CHECK(hip::hiprtc_version(*loaded.api).major_minor == 507);
    CHECK(loaded.why.empty());

    const auto none = hip::load_hip_api({fake_rocm + "/rocm7/libamdhip64.so.7"});
    CHECK_FALSE(none.api);
    CHECK_THAT(none.why, Catch::Contains("rocm7/libamdhip64.so.7"));
}

TEST_CASE("the installed ROCm 5 runtime carries its own hiprtc", "[hip]") {
    const hip::HipApi* api = hip::hip_api();
    if (!api) {
        WARN("no HIP runtime installed: the loader is tested on stand-ins only");
        return;
    }
    if (hip::hiprtc_version(*api).major_minor >= 600) {
        CHECK(api->rtc_lib->name().find("libhiprtc") != std::string::npos);
    } else {
        CHECK(api->rtc_lib == api->lib);
    }
}

TEST_CASE("every problem and config the HIP device tests run is supported and valid", "[hip]") {
    // tune_hip_device_tests runs only on an AMD GPU; its lists are checked here on any machine.
    using namespace tune::device_checks;
    auto rt = hip::Runtime::compile_only("gfx90a", no_disk_cache(), std::make_shared<Offline>());
    std::size_t checked = 0;
    const auto gemm = make_hip_gemm_mfma_template(rt);
    for (DType dt : {DType::bf16, DType::f16})
        for (bool tb : {false, true}) checked += expect_valid(*gemm, defaults(*gemm, gemm_variants(dt, tb)));
    checked += expect_valid(*gemm, covering_cases(*gemm, {make_gemm(520, 392, 1032, DType::bf16, false, false),
                                        make_gemm(520, 392, 1032, DType::bf16, false, true)}));
    const auto flash = make_hip_attention_flash_template(rt);
    checked += expect_valid(*flash, defaults(*flash, attention_default_problems()));
    checked += expect_valid(*flash, covering_cases(*flash, attention_covering_problems()));
    const auto backward = make_hip_attention_flash_backward_template(rt);
    checked += expect_valid(*backward, backward_mode_cases(*backward));
    checked += expect_valid(*backward, covering_cases(*backward, backward_covering_problems()));
    CHECK(checked > 100);
}
