// HIP GEMM templates, compiled at run time with hiprtc. Built only with LIBTUNE_WITH_HIP; each
// takes the process's HIP runtime (tune/hip/runtime.hpp).
#pragma once

#include <memory>

#include "tune/kernel.hpp"

namespace tune {

namespace hip {
class Runtime;
}

// "hip.gemm.mfma": bf16 / f16 inputs, f32 accumulate; MFMA 32x32x8 on gfx90a and gfx94x, the
// same tiling with scalar FMAs elsewhere; knobs block_m/n/k, warp_m/n (per wave), group_m; the
// problem's epilogue is fused.
std::unique_ptr<Template> make_hip_gemm_mfma_template(std::shared_ptr<hip::Runtime> runtime);

}  // namespace tune
