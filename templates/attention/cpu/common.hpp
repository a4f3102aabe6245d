// Pieces shared by the CPU attention templates: operand unpacking, the threads knob and the
// checks every template makes before building a kernel.
#pragma once

#include <memory>
#include <string>

#include "tune/error.hpp"
#include "tune/kernel.hpp"
#include "tune/thread_pool.hpp"

namespace tune::cpu_attention {

struct Operands {
    const float *q, *k, *v;
    float *o, *lse;
};

inline Operands unpack(const OpArgs& args, const std::string& name) {
    if (args.inputs.size() != 3 || args.outputs.size() != 2)
        throw Error(name + ": expects inputs {Q, K, V} and outputs {O, LSE}");
    Operands x{static_cast<const float*>(args.inputs[0]), static_cast<const float*>(args.inputs[1]),
               static_cast<const float*>(args.inputs[2]), static_cast<float*>(args.outputs[0]),
               static_cast<float*>(args.outputs[1])};
    if (!x.q || !x.k || !x.v || !x.o || !x.lse) throw Error(name + ": null operand");
    return x;
}

// Both templates need AVX-512F (their exp and dot-product kernels) and f32 operands whose
// lengths fit the int tile arithmetic.
bool supports_problem(const Problem& p, const DeviceInfo& device);

// threads = 1 .. cores, default cores.
Knob threads_knob(int cores, std::string help);

inline std::int64_t round16(std::int64_t n) { return (n + 15) / 16 * 16; }

}  // namespace tune::cpu_attention
