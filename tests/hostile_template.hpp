// A GEMM template for isolation tests whose `mode` knob picks a misbehaving kernel: one that
// segfaults, executes an illegal instruction, aborts, hangs, allocates without bound or
// computes a wrong result, next to correct ones. Only safe to run in an isolated Measurer.
#pragma once

#include <csignal>
#include <cstdlib>
#include <memory>
#include <vector>

#include "tune/error.hpp"
#include "tune/kernel.hpp"

namespace tune::testing {

class HostileGemmTemplate final : public Template {
public:
    HostileGemmTemplate() : info_{"test.gemm.hostile", OpKind::gemm, Backend::cpu, "v1", false} {
        auto s = std::make_shared<Space>();
        s->add(Knob::categorical("mode", {"good", "slow", "segv", "sigill", "abort", "hang", "oom", "wrong"}, "slow"));
        space_ = std::move(s);
    }
    const TemplateInfo& info() const override { return info_; }
    bool supports(const Problem& p) const override { return p.op == OpKind::gemm && p.dtype == DType::f32; }
    std::shared_ptr<const Space> space(const Problem&) const override { return space_; }
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        space_->validate(c);
        return std::make_unique<K>(gemm_dims(p), c.get_str("mode"));
    }

private:
    struct K final : Kernel {
        K(GemmDims d, std::string mode) : d(d), mode(std::move(mode)) {}
        void run(const OpArgs& a) const override {
            if (mode == "segv") {
                static volatile std::uintptr_t address = 16;
                *reinterpret_cast<volatile int*>(address) = 1;
            } else if (mode == "sigill") {
                __builtin_trap();
            } else if (mode == "abort") {
                std::abort();
            } else if (mode == "hang") {
                static volatile bool forever = true;
                while (forever) {
                }
            } else if (mode == "oom") {
                std::vector<std::unique_ptr<char[]>> hoard;
                for (;;) {
                    hoard.emplace_back(new char[64 << 20]);
                    for (std::size_t i = 0; i < (64u << 20); i += 4096) hoard.back()[i] = 1;
                }
            }
            auto* A = static_cast<const float*>(a.inputs[0]);
            auto* B = static_cast<const float*>(a.inputs[1]);
            auto* C = static_cast<float*>(a.outputs[0]);
            const int repeat = mode == "slow" ? 20 : 1;
            for (int r = 0; r < repeat; ++r)
                for (std::int64_t i = 0; i < d.m; ++i)
                    for (std::int64_t j = 0; j < d.n; ++j) {
                        double acc = 0;
                        for (std::int64_t k = 0; k < d.k; ++k) {
                            float x = d.trans_a ? A[k * d.m + i] : A[i * d.k + k];
                            float y = d.trans_b ? B[j * d.k + k] : B[k * d.n + j];
                            acc += double(x) * double(y);
                        }
                        C[i * d.n + j] = static_cast<float>(mode == "wrong" ? acc * 0.5 - 3 : acc);
                    }
        }
        GemmDims d;
        std::string mode;
    };
    TemplateInfo info_;
    std::shared_ptr<const Space> space_;
};

}  // namespace tune::testing
