// Checks shared by the GEMM template tests: run a config on a seeded workload against the
// fp64 reference, and pick configs by micro-kernel label.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tune/kernel.hpp"
#include "tune/workload.hpp"

namespace tune::test {

// Runs `c` `calls` times on poisoned outputs (a second call reuses the kernel's scratch) and
// checks the error of each against the problem's default tolerance.
inline void check_against_reference(const Template& t, const Problem& p, const Config& c, std::uint64_t seed,
                                    int calls = 1) {
    INFO(shape_key(p) << " | " << c.text());
    Workload w(p, seed);
    auto kernel = t.instantiate(p, c);
    for (int i = 0; i < calls; ++i) {
        w.poison_outputs();
        kernel->run(w.args());
        CHECK(w.error() <= default_tolerance(p));
    }
}

inline std::vector<std::string> ukernel_labels(const Space& s) {
    std::vector<std::string> out;
    for (const auto& v : s.knob("ukernel")->values) out.push_back(std::get<std::string>(v));
    return out;
}

// A uniformly sampled valid config that uses the given micro-kernel.
inline Config sample_with_ukernel(const Space& s, std::mt19937_64& rng, const std::string& label) {
    for (;;) {
        auto c = s.sample(rng);
        REQUIRE(c.has_value());
        if (c->get_str("ukernel") == label) return *c;
    }
}

}  // namespace tune::test
