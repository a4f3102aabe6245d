// A tiny GEMM template for tests: a naive loop whose `mode` knob can also produce wrong
// results or throw, so tuner and dispatcher behaviour is checked without real kernels.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "tune/error.hpp"
#include "tune/kernel.hpp"

namespace tune::testing {

class FakeGemmTemplate final : public Template {
public:
    explicit FakeGemmTemplate(std::string name = "test.gemm.fake", std::string version = "v1", bool vendor = false,
                              double settle_s = 0)
        : info_{std::move(name), OpKind::gemm, Backend::cpu, std::move(version), vendor, settle_s} {
        auto s = std::make_shared<Space>();
        s->add(Knob::categorical("mode", {"good", "wrong", "throws"}, "good"));
        s->add(Knob::pow2("unroll", 1, 8, 1));
        s->add(Knob::ints("tile", {1, 2, 3, 4}, 1));
        s->require("wrong_needs_unroll_1", [](const Config& c) {
            return c.get_str("mode") != "wrong" || c.get_int("unroll") == 1;
        });
        // Shapes with m < 4 cannot use tiles larger than m: a shape-dependent constraint.
        auto narrow = std::make_shared<Space>(*s);
        narrow->require("tile_le_m_for_small_m", [](const Config& c) { return c.get_int("tile") <= 1; });
        space_ = std::move(s);
        narrow_space_ = std::move(narrow);
    }
    const TemplateInfo& info() const override { return info_; }
    bool supports(const Problem& p) const override { return p.op == OpKind::gemm && p.dtype == DType::f32; }
    std::shared_ptr<const Space> space(const Problem& p) const override {
        return gemm_dims(p).m < 4 ? narrow_space_ : space_;
    }
    Config equivalence_key(const Problem& p, const Config& c) const override {
        return equivalence ? equivalence(p, c) : c;
    }
    // Optional: Template::equivalence_key (unset: each config its own class).
    std::function<Config(const Problem&, const Config&)> equivalence;
    // Optional: Template::default_config(p) (unset: the space's default).
    std::function<Config(const Problem&)> shape_default;
    Config default_config(const Problem& p) const override {
        return shape_default ? shape_default(p) : Template::default_config(p);
    }
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        space(p)->validate(c);
        if (c.get_str("mode") == "throws") throw Error("fake: refuses to build");
        built.fetch_add(1, std::memory_order_relaxed);
        return std::make_unique<K>(gemm_dims(p), c.get_str("mode") == "wrong", c.get_int("unroll"), call_s,
                                   workspace_of ? workspace_of(c) : workspace);
    }
    mutable std::atomic<int> built{0};  // kernels instantiated
    double call_s = 0;                  // each call also sleeps this long (a slow, correct kernel)
    mutable std::size_t workspace = 0;  // what each kernel reports as its workspace_bytes() (set through a registry)
    mutable std::function<std::size_t(const Config&)> workspace_of;  // per config instead, when set

private:
    struct K final : Kernel {
        K(GemmDims d, bool wrong, std::int64_t unroll, double call_s, std::size_t workspace)
            : d(d), wrong(wrong), unroll(unroll), call_s(call_s), workspace(workspace) {}
        std::size_t workspace_bytes() const override { return workspace; }
        void run(const OpArgs& a) const override {
            if (call_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(call_s));
            auto* A = static_cast<const float*>(a.inputs[0]);
            auto* B = static_cast<const float*>(a.inputs[1]);
            auto* C = static_cast<float*>(a.outputs[0]);
            for (std::int64_t b = 0; b < d.batch; ++b)
                for (std::int64_t i = 0; i < d.m; ++i)
                    for (std::int64_t j = 0; j < d.n; ++j) {
                        double acc = 0;
                        for (std::int64_t k = 0; k < d.k; ++k) {
                            float x = d.trans_a ? A[b * d.m * d.k + k * d.m + i] : A[b * d.m * d.k + i * d.k + k];
                            float y = d.trans_b ? B[b * d.n * d.k + j * d.k + k] : B[b * d.n * d.k + k * d.n + j];
                            acc += double(x) * double(y);
                        }
                        // Larger unroll values just repeat the work: slower, same answer.
                        for (std::int64_t r = 1; r < unroll * unroll; ++r) acc = acc * 1.0;
                        C[b * d.m * d.n + i * d.n + j] = static_cast<float>(wrong ? acc + 1.0 : acc);
                    }
        }
        GemmDims d;
        bool wrong;
        std::int64_t unroll;
        double call_s;
        std::size_t workspace;
    };
    TemplateInfo info_;
    std::shared_ptr<const Space> space_, narrow_space_;
};

}  // namespace tune::testing
