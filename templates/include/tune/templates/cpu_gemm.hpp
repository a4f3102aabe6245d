// CPU GEMM templates: the BLIS-style blocked template (own micro-kernels, blocking as knobs)
// and the OpenBLAS vendor template, so a tuned pick is compared with and can be the library.
#pragma once

#include <memory>

#include "tune/kernel.hpp"

namespace tune {

// "cpu.gemm.blocked": f32, register tile from the micro-kernels this CPU can run (AVX-512,
// AVX2), MC/KC/NC cache blocking, packing on/off, threads and their split as knobs.
std::unique_ptr<Template> make_cpu_gemm_template(const DeviceInfo& device);

// "cpu.gemm.openblas": cblas_sgemm with the thread count as its only knob.
std::unique_ptr<Template> make_openblas_gemm_template(const DeviceInfo& device);

}  // namespace tune
