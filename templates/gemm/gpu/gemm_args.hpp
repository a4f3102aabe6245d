// Host side of GemmParams (gemm_params.h): the kernel argument of a GPU GEMM call from the
// problem's dims and the call's device operands, shared by the CUDA and HIP templates.
#pragma once

#include <string>

#include "gemm_params.h"
#include "tune/error.hpp"
#include "tune/kernel.hpp"

namespace tune {

// Operands in the Problem's order: A, B, then bias and residual when the problem has them;
// output C. Throws tune::Error naming `what` when the counts do not match.
inline libtune::GemmParams gemm_params(const GemmDims& d, const OpArgs& args, const char* what) {
    const std::size_t inputs = 2 + (d.bias ? 1 : 0) + (d.residual ? 1 : 0);
    require(args.inputs.size() == inputs && args.outputs.size() == 1,
            std::string(what) + ": expected " + std::to_string(inputs) + " inputs and 1 output");
    libtune::GemmParams p{};
    p.a = args.inputs[0];
    p.b = args.inputs[1];
    std::size_t next = 2;
    if (d.bias) p.bias = static_cast<const float*>(args.inputs[next++]);
    if (d.residual) p.residual = static_cast<const float*>(args.inputs[next++]);
    p.c = static_cast<float*>(args.outputs[0]);
    p.m = d.m, p.n = d.n, p.k = d.k, p.batch = d.batch, p.k_per_split = d.k;
    return p;
}

// Kernel template argument EPI: bias 1, gelu 2, silu 4, residual 8 (gemm_params.h).
inline int epilogue_bits(const GemmDims& d) {
    return (d.bias ? libtune::kEpiBias : 0) | (d.act == Activation::gelu ? libtune::kEpiGelu : 0) |
           (d.act == Activation::silu ? libtune::kEpiSilu : 0) | (d.residual ? libtune::kEpiResidual : 0);
}

}  // namespace tune
