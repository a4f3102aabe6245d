// CUDA GEMM templates: run-time compiled (NVRTC) tensor-core kernels and the cuBLASLt vendor
// template. Built only with LIBTUNE_WITH_CUDA; each takes the process's CUDA runtime
// (tune/cuda/runtime.hpp: arch, compile service and binary cache, device when present).
#pragma once

#include <memory>

#include "tune/kernel.hpp"

namespace tune {

namespace cuda {
class Runtime;
}

// "cuda.gemm.mma": mma.sync tensor cores for sm_80+, bf16 / f16 (and tf32 for f32 problems
// whose tolerance admits bf16 compute); knobs block_m/n/k, warp_m/n, stages (cp.async),
// split_k, group_m (rasterisation); the problem's epilogue is fused.
std::unique_ptr<Template> make_cuda_gemm_mma_template(std::shared_ptr<cuda::Runtime> runtime);

// "cuda.gemm.wgmma": Hopper (sm_90a only) wgmma + TMA + warp specialisation, bf16 / f16,
// B stored n x k (trans_b); knobs block_m, block_n, stages, consumers, group_m.
std::unique_ptr<Template> make_cuda_gemm_wgmma_template(std::shared_ptr<cuda::Runtime> runtime);

// "cuda.gemm.cublaslt" (vendor): cuBLASLt matmul; knob `algo` = index into the heuristic
// list cuBLASLt returns for the problem (0 = its default). bf16 / f16 / tf32, bias and GELU
// epilogues, residual without an activation.
std::unique_ptr<Template> make_cuda_gemm_cublaslt_template(std::shared_ptr<cuda::Runtime> runtime);

}  // namespace tune
