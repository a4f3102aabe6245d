// The launches of a loaded GPU attention config (templates/attention/gpu/attention_template.hpp),
// in every build: LoadedAttention on a fake Api that records what the CUDA and HIP backends
// would load and enqueue, forward (with and without split-KV) and backward (both passes).
#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "../templates/attention/gpu/attention_template.hpp"

using namespace tune;
using namespace tune::gpu_attention;

namespace {

const Target kCuda{"attention_flash", 32, true, 163 * 1024};
const Target kHip{"attention_flash_generic", 64, false, 64 * 1024, /*static_shared=*/true};
const Target kBackward{"attention_backward", 32, false, 163 * 1024};

// Records loads and launches instead of doing them; Params is the launched kernel argument.
template <class Params>
struct FakeApi {
    struct Program {
        std::string entry;
        unsigned dynamic_shared_bytes = 0;
    };
    struct Launched {
        std::string entry;
        Step step;
        Params params;
    };
    struct Runtime {
        mutable int made_current = 0;
        mutable std::vector<Program> loaded;
        mutable std::vector<Launched> launched;
    };
    struct Memory {
        Memory() = default;
        explicit Memory(std::size_t bytes) : data(bytes) {}
        std::vector<std::byte> data;
    };

    static inline const Runtime* runtime = nullptr;  // load() has no runtime: it records here

    static void make_current(const Runtime& rt) { ++rt.made_current; }
    static Program load(const CompileResult& compiled, unsigned dynamic_shared_bytes) {
        runtime->loaded.push_back({compiled.entry, dynamic_shared_bytes});
        return runtime->loaded.back();
    }
    static void* address(const Memory& m) { return m.data.empty() ? nullptr : const_cast<std::byte*>(m.data.data()); }
    static void launch(const Runtime& rt, const Program& p, const Step& s, void** params) {
        rt.launched.push_back({p.entry, s, *static_cast<const Params*>(params[0])});
    }
};

template <class Pass>
std::vector<CompileResult> compiled(const typename Pass::Launch& l) {
    std::vector<CompileResult> out;
    for (const std::string& instance : Pass::instances(l)) {
        CompileResult r;
        r.ok = true;
        r.entry = "entry " + instance;
        out.push_back(r);
    }
    return out;
}

template <class Pass>
auto load(const Problem& p, const Config& c, const Target& t) {
    using Api = FakeApi<typename Pass::Params>;
    auto rt = std::make_shared<typename Api::Runtime>();
    Api::runtime = rt.get();
    Plan<Pass> plan;
    plan.launch = Pass::launch(p, c, t);
    plan.steps = Pass::steps(plan.launch, t);
    const auto programs = compiled<Pass>(plan.launch);
    auto kernel = std::make_unique<LoadedAttention<Api, Pass>>(rt, attention_dims(p), plan, programs);
    return std::pair{rt, std::move(kernel)};
}

bool same_grid(const unsigned (&a)[3], const unsigned (&b)[3]) { return a[0] == b[0] && a[1] == b[1] && a[2] == b[2]; }

}  // namespace

TEST_CASE("a loaded forward config launches its kernel, then the combine with split-KV", "[gpu_attention]") {
    const Problem decode = make_attention(1, 32, 8, 1, 100, 128, true, 0, DType::bf16);
    Config c = build_space(decode, kCuda)->default_config();
    c.set("split_kv", std::int64_t{4});
    c.set("k_tile", std::int64_t{32});
    const Launch l = launch(decode, c, kCuda);
    auto [rt, kernel] = load<Forward>(decode, c, kCuda);
    CHECK(rt->made_current == 1);
    REQUIRE(rt->loaded.size() == 2);
    CHECK((rt->loaded[0].entry == "entry " + l.instance && rt->loaded[0].dynamic_shared_bytes == l.shared_bytes));
    CHECK((rt->loaded[1].entry == "entry " + l.combine_instance && rt->loaded[1].dynamic_shared_bytes == 0));
    CHECK(kernel->workspace_bytes() == l.workspace_bytes);

    std::vector<float> buffers(5);
    const void* in[] = {&buffers[0], &buffers[1], &buffers[2]};
    void* out[] = {&buffers[3], &buffers[4]};
    kernel->run(OpArgs{in, out});
    REQUIRE(rt->launched.size() == 2);
    const auto& main = rt->launched[0];
    CHECK(main.entry == "entry " + l.instance);
    CHECK(same_grid(main.step.grid, l.grid));
    CHECK((main.step.block == l.block && main.step.dynamic_shared_bytes == l.shared_bytes));
    CHECK((main.params.q == in[0] && main.params.lse == out[1] && main.params.splits == 4));
    CHECK(main.params.partial_o != nullptr);
    const auto& combine = rt->launched[1];
    CHECK(combine.entry == "entry " + l.combine_instance);
    CHECK(same_grid(combine.step.grid, {l.combine_blocks, 1, 1}));
    CHECK((combine.step.block == 256 && combine.step.dynamic_shared_bytes == 0));
    CHECK(combine.params.partial_o == main.params.partial_o);
    CHECK_THROWS_WITH(kernel->run(OpArgs{std::span<const void* const>(in, 2), out}), Catch::Contains("inputs {Q, K, V}"));
}

TEST_CASE("a loaded forward config without split-KV launches one kernel, with no dynamic shared memory for HIP's static LDS",
          "[gpu_attention]") {
    const Problem prefill = make_attention(1, 8, 2, 300, 300, 64, true, 0, DType::f16);
    std::vector<float> buffers(5);
    const void* in[] = {&buffers[0], &buffers[1], &buffers[2]};
    void* out[] = {&buffers[3], &buffers[4]};
    for (const Target& t : {kCuda, kHip}) {
        const Config c = build_space(prefill, t)->default_config();
        const Launch l = launch(prefill, c, t);
        auto [rt, kernel] = load<Forward>(prefill, c, t);
        kernel->run(OpArgs{in, out});
        const unsigned shared = t.static_shared ? 0 : l.shared_bytes;
        REQUIRE(rt->loaded.size() == 1);
        CHECK(rt->loaded[0].dynamic_shared_bytes == shared);
        REQUIRE(rt->launched.size() == 1);
        CHECK(same_grid(rt->launched[0].step.grid, l.grid));
        CHECK((rt->launched[0].step.block == l.block && rt->launched[0].step.dynamic_shared_bytes == shared));
        CHECK(rt->launched[0].params.partial_o == nullptr);
        CHECK(kernel->workspace_bytes() == 0);
    }
}

TEST_CASE("a loaded backward config launches its one kernel twice: dK and dV per key tile, then dQ per query tile",
          "[gpu_attention][backward]") {
    Problem p = make_attention(2, 8, 2, 100, 300, 64, true, 0, DType::bf16);
    p.set_dim("backward", 1);
    for (const std::string mode : {"recompute", "store"}) {
        Config c = build_backward_space(p, kBackward)->default_config();
        c.set("mode", mode);
        const BackwardLaunch l = backward_launch(p, c, kBackward);
        auto [rt, kernel] = load<Backward>(p, c, kBackward);
        REQUIRE(rt->loaded.size() == 1);
        CHECK(rt->loaded[0].dynamic_shared_bytes == l.shared_bytes);
        CHECK(kernel->workspace_bytes() == l.workspace_bytes);
        std::vector<float> buffers(9);
        const void* in[] = {&buffers[0], &buffers[1], &buffers[2], &buffers[3], &buffers[4], &buffers[5]};
        void* out[] = {&buffers[6], &buffers[7], &buffers[8]};
        kernel->run(OpArgs{in, out});
        REQUIRE(rt->launched.size() == 2);
        for (int pass = 0; pass < 2; ++pass) {
            const auto& launched = rt->launched[std::size_t(pass)];
            CHECK(launched.entry == "entry " + l.instance);
            CHECK(same_grid(launched.step.grid, pass == 0 ? l.key_grid : l.query_grid));
            CHECK((launched.step.block == l.block && launched.step.dynamic_shared_bytes == l.shared_bytes));
            CHECK(launched.params.pass == pass);
            CHECK((launched.params.dq == out[0] && launched.params.dout == in[5]));
            CHECK((launched.params.ds != nullptr) == (mode == "store"));
        }
    }
}
